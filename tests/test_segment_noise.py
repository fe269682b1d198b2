"""Misalignment of frame labellings: shifts with edge padding, random sign, boundary noise."""

from __future__ import annotations

import numpy as np
import pytest

from softloc.metrics.segments import segment_bounds
from softloc.noise import NormalNoise, SkewNormalNoise
from softloc.segment_noise import perturb_boundaries, random_shift, shift_labels


def _naive_shift(labels, k):
    """Frame t of the result is frame t - k of the input, clamped to the sequence."""
    n = len(labels)
    return np.array([labels[min(max(t - k, 0), n - 1)] for t in range(n)])


@pytest.mark.parametrize("k", [-12, -10, -3, -1, 0, 1, 4, 10, 12])
def test_shift_matches_clamped_index_lookup(k):
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0, 3, 3])
    np.testing.assert_array_equal(shift_labels(labels, k), _naive_shift(labels, k))


def test_shift_keeps_segment_order_and_moves_boundaries():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10)
    shifted = shift_labels(labels, 3)
    classes, starts, _ = segment_bounds(shifted)
    assert classes.tolist() == [0, 1, 2] and starts.tolist() == [0, 13, 23]
    assert labels.tolist() == [0] * 10 + [1] * 10 + [2] * 10  # input untouched


def test_random_shift_sign_is_drawn_per_sequence_and_magnitude_is_delta():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 50 + [1] * 50)
    frames = [random_shift(labels, 0.5, frame_rate=30.0, seed=rng)[1] for _ in range(400)]
    assert set(frames) == {15, -15}
    assert 0.4 < np.mean(np.array(frames) > 0) < 0.6
    out, k = random_shift(labels, 0.5, frame_rate=30.0, seed=3)
    np.testing.assert_array_equal(out, _naive_shift(labels, k))
    assert random_shift(labels, 0.0, frame_rate=30.0, seed=1)[1] == 0


def test_boundary_noise_keeps_class_order_and_length():
    labels = np.repeat(np.array([0, 1, 2, 1, 3]), 40)
    for model in (NormalNoise(0.5), SkewNormalNoise(-2.0, 0.5)):
        out = perturb_boundaries(labels, model=model, frame_rate=30.0, seed=1)
        assert out.shape == labels.shape
        classes = segment_bounds(out)[0].tolist()
        assert classes == [0, 1, 2, 1, 3]  # 0.5 s = 15 frames << 40-frame segments


def test_boundary_noise_statistics_follow_the_model():
    # one boundary per sequence: its displacement (frames / rate) has the model's mean and std
    labels = np.array([0] * 3000 + [1] * 3000)
    rng = np.random.default_rng(0)
    model = SkewNormalNoise(-2.0, 1.0)
    moves = []
    for _ in range(2000):
        out = perturb_boundaries(labels, model=model, frame_rate=100.0, seed=rng)
        moves.append((segment_bounds(out)[1][1] - 3000) / 100.0)
    assert np.mean(moves) == pytest.approx(model.mean_s, abs=0.05)
    assert np.std(moves) == pytest.approx(model.std_s, abs=0.05)


def test_zero_noise_is_identity_and_constant_labelling_is_untouched():
    labels = np.repeat(np.array([2, 0, 1]), 7)
    np.testing.assert_array_equal(
        perturb_boundaries(labels, model=NormalNoise(0.0), frame_rate=10.0, seed=0), labels
    )
    np.testing.assert_array_equal(
        perturb_boundaries(np.zeros(5, int), model=NormalNoise(1.0), frame_rate=10.0, seed=0),
        np.zeros(5, int),
    )


def test_errors_name_function_and_argument():
    with pytest.raises(ValueError, match=r"shift_labels: `labels` must be 1-D"):
        shift_labels(np.zeros((2, 2), int), 1)
    with pytest.raises(TypeError, match=r"shift_labels: `labels` must hold integer"):
        shift_labels(np.zeros(3), 1)
    with pytest.raises(TypeError, match=r"shift_labels: `shift_frames`"):
        shift_labels(np.zeros(3, int), 1.5)
    with pytest.raises(ValueError, match=r"random_shift: `delta_s` must be >= 0"):
        random_shift(np.zeros(3, int), -1.0, frame_rate=10.0, seed=0)
    with pytest.raises(TypeError, match=r"random_shift: `seed`"):
        random_shift(np.zeros(3, int), 1.0, frame_rate=10.0, seed=None)
    with pytest.raises(TypeError, match=r"perturb_boundaries: `model`"):
        perturb_boundaries(np.zeros(3, int), model="normal:1s", frame_rate=10.0, seed=0)
    with pytest.raises(ValueError, match=r"`labels` must hold at least one frame"):
        shift_labels(np.zeros(0, int), 0)
