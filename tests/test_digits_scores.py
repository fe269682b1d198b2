"""The scores of the digits experiment on oracle probabilities with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.data.digits import make_canvases
from softloc.experiments.digits_scores import (
    evaluate_detections,
    predict_probabilities,
    recognition_accuracy,
)
from softloc.hilbert import hilbert_index
from softloc.models import build_model
from softloc.models.digits import CONV_PRESETS


def _oracle_probs(canvases, granularity_px, drop_last=False):
    """p = 0.999 at the cell holding each true centre, 1e-4 elsewhere."""
    image_px = canvases.images.shape[-1]
    n_side = image_px // granularity_px
    probs = np.full((len(canvases), 10, n_side * n_side), 1e-4)
    for i in range(len(canvases)):
        cells = np.floor(canvases.centres_px[i] / granularity_px).astype(int)
        idx = hilbert_index(cells[:, 0], cells[:, 1], n_side)
        keep = len(idx) - 1 if drop_last else len(idx)
        probs[i, canvases.labels[i][:keep], idx[:keep]] = 0.999
    return probs


def test_oracle_probabilities_score_perfectly_with_the_quantisation_distance():
    rng = np.random.default_rng(0)
    digits = rng.random((10, 8, 8)).astype(np.float32)
    cv = make_canvases(digits, np.arange(10), n_canvases=40, canvas_px=64, max_digits=4, rng=rng)
    probs = _oracle_probs(cv, 8)
    scores = evaluate_detections(
        probs, cv, granularity_px=8, threshold=0.5, tolerance_px=8.0, k_max=5
    )
    assert scores["detection_precision"] == scores["detection_recall"] == 1.0
    assert scores["detection_f1"] == 1.0
    assert scores["count_accuracy"] == scores["count_accuracy_from_detections"] == 1.0
    # Independent: distance from each centre to the centre of the 8 px cell holding it.
    centres = np.concatenate(cv.centres_px)
    cell_centres = (np.floor(centres / 8) + 0.5) * 8
    expected = np.linalg.norm(centres - cell_centres, axis=1).mean()
    assert scores["centre_distance_px"] == pytest.approx(expected)
    assert scores["n_reference"] == scores["n_matched"] == len(centres)


def test_missing_detections_lower_recall_and_counts_but_not_precision():
    rng = np.random.default_rng(1)
    digits = rng.random((10, 8, 8)).astype(np.float32)
    cv = make_canvases(
        digits, np.arange(10), n_canvases=20, canvas_px=64, min_digits=2, max_digits=2, rng=rng
    )
    scores = evaluate_detections(
        _oracle_probs(cv, 8, drop_last=True),
        cv,
        granularity_px=8,
        threshold=0.5,
        tolerance_px=8.0,
        k_max=3,
    )
    assert scores["detection_precision"] == 1.0
    assert scores["detection_recall"] == pytest.approx(0.5)
    assert scores["detection_f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert scores["count_accuracy"] == 0.0 and scores["count_accuracy_from_detections"] == 0.0
    assert scores["count_class_accuracy"] == pytest.approx(0.9)  # one class of 10 wrong


def test_no_detections_leave_precision_and_distance_undefined():
    rng = np.random.default_rng(2)
    cv = make_canvases(
        rng.random((3, 8, 8)), np.arange(3), n_canvases=3, canvas_px=32, max_digits=2, rng=rng
    )
    scores = evaluate_detections(
        np.full((3, 10, 16), 1e-3), cv, granularity_px=8, threshold=0.5, tolerance_px=8, k_max=3
    )
    assert scores["detection_precision"] is None and scores["centre_distance_px"] is None
    assert scores["detection_recall"] == 0.0 and scores["detection_f1"] == 0.0




class _IntensityModel(torch.nn.Module):
    """A stand-in detector whose class is the canvas's brightest pixel value x 10: its logits are
    high for that class at one step and low elsewhere."""

    image_px = 16
    n_classes = 10
    n_steps = 4

    def forward(self, images, lengths=None):
        peak = images.flatten(1).amax(dim=1)  # (B, 1, H, W) -> (B,)
        cls = torch.round(peak * 10).long().clamp(0, 9)
        logits = torch.full((len(images), 10, self.n_steps), -9.0)
        logits[torch.arange(len(images)), cls, 1] = 9.0
        return logits


def test_recognition_accuracy_is_the_share_of_digits_whose_class_wins_the_expected_count():
    labels = np.arange(10) % 10
    digits = np.stack([np.full((4, 4), c / 10, dtype=np.float32) for c in labels])
    wrong = labels.copy()
    wrong[[2, 5, 7]] = (wrong[[2, 5, 7]] + 1) % 10  # three labels that the model cannot match
    rng = np.random.default_rng(0)
    assert recognition_accuracy(_IntensityModel(), digits, labels, rng=rng) == 1.0
    assert recognition_accuracy(_IntensityModel(), digits, wrong, rng=rng) == pytest.approx(0.7)


def test_predicted_probabilities_are_the_sigmoid_of_the_logits_in_any_batch_size():
    model = build_model("digits", image_px=32, granularity_px=8, window_px=8,
                        conv_channels=CONV_PRESETS["tiny"], lstm_units=4, hidden_units=3)
    images = np.random.default_rng(1).random((5, 1, 32, 32)).astype(np.float32)
    probs = predict_probabilities(model, images, batch_size=2)
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(torch.from_numpy(images))).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert predict_probabilities(model, images[:0]).shape == (0, 10, 16)
