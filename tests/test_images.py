"""The Hilbert-image input stage of the Detector: reading images, decoding to pixel centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.config import RunConfig
from softloc.hilbert import sequence_centres_px
from softloc.inference import Detector
from softloc.inference.images import (
    HilbertImageInput,
    decode_detections,
    detections_px,
    read_image,
)
from softloc.models import build_model
from softloc.models.digits import CONV_PRESETS


def test_decode_detections_places_one_detection_per_run_at_its_cell_centre():
    probs = np.full((10, 16), 0.01)
    probs[3, 5] = 0.9
    probs[7, [9, 10, 11]] = [0.6, 0.8, 0.7]  # one run -> one detection at the peak (step 10)
    probs[2, 0] = 0.5  # not above the (strict) threshold
    centres, classes, scores = decode_detections(
        probs, image_px=32, granularity_px=8, threshold=0.5
    )
    table = sequence_centres_px(32, 8)
    order = np.argsort(classes)
    np.testing.assert_array_equal(classes[order], [3, 7])
    np.testing.assert_array_equal(centres[order], table[[5, 10]])
    np.testing.assert_allclose(scores[order], [0.9, 0.8])




def test_read_image_takes_npy_png_and_arrays(tmp_path):
    import matplotlib.image

    grey = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    np.save(tmp_path / "a.npy", grey)
    np.save(tmp_path / "b.npy", np.round(grey * 255).astype(np.uint8))
    levels = np.round(grey * 255).astype(np.uint8)
    matplotlib.image.imsave(tmp_path / "c.png", np.repeat(levels[..., None], 3, axis=-1))
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), grey[None])
    for name in ("b.npy", "c.png"):  # 8-bit: within half a grey level
        np.testing.assert_allclose(read_image(tmp_path / name), grey[None], atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(read_image(torch.from_numpy(grey)), grey[None])
    with pytest.raises(ValueError, match=r"image values must lie in \[0, 1\]"):
        read_image(grey * 2)
    with pytest.raises(ValueError, match=r"\(height, width\) or \(channel, height, width\)"):
        read_image(np.zeros(5))
    with pytest.raises(FileNotFoundError, match="no such image file"):
        read_image(tmp_path / "none.png")
    with pytest.raises(TypeError, match="file path or an array"):
        read_image(3)


def test_detector_on_an_image_model_finds_events_at_cell_centres():
    torch.manual_seed(0)
    model = build_model("digits", image_px=32, granularity_px=8, window_px=8,
                        conv_channels=CONV_PRESETS["tiny"], lstm_units=4, hidden_units=3)
    config = RunConfig(classes=tuple(str(c) for c in range(10)))
    det = Detector(model, config, input_stage=HilbertImageInput(config))
    det = det.with_settings(threshold=0.3)
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    probs = det.probabilities(image)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(image)[None, None]))[0].numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    events = det.events_from_probabilities(probs)
    found = det.detect(image)
    assert [(t, int(det.classes.index(lab))) for t, lab, _ in found] == [
        (float(t), int(c)) for t, c in zip(events.times_s, events.classes, strict=True)]
    # event times are curve steps; their pixel centres are the cells' centres
    np.testing.assert_array_equal(detections_px(events, model),
                                  sequence_centres_px(32, 8)[events.frames].reshape(-1, 2))
    with pytest.raises(ValueError, match="no test-time augmentation"):
        det.with_settings(tta_factors=[1.1]).detect(image)
