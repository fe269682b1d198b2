"""Tests of softloc.noise: sample moments vs analytic/scipy values, seeding, clipping, parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from softloc.noise import (
    BinaryNoise,
    NoiseModel,
    NormalNoise,
    RoundedNormalNoise,
    ShiftNoise,
    SkewNormalNoise,
    parse_noise,
    perturb_events,
)

N_DRAWS = 20_000
CENTRE_S = 500.0  # far from both ends, so clipping never acts on the moment tests
DURATION_S = 1000.0


def _offsets(model, seed=0):
    times = np.full(N_DRAWS, CENTRE_S)
    moved, _ = perturb_events(times, model=model, duration_s=DURATION_S, seed=seed)
    return moved - CENTRE_S


def _skewnorm_mean_std(shape, scale):
    """Independent reference: scipy's skew-normal moments (location 0)."""
    mean, var = stats.skewnorm.stats(shape, loc=0.0, scale=scale, moments="mv")
    return float(mean), math.sqrt(float(var))


@pytest.mark.parametrize(
    ("model", "mean", "std"),
    [
        (NormalNoise(0.1), 0.0, 0.1),
        (BinaryNoise(0.05), 0.0, 0.05),
        (ShiftNoise(-0.02), -0.02, 0.0),
        (SkewNormalNoise(-2.0, 0.1), *_skewnorm_mean_std(-2.0, 0.1)),
        (SkewNormalNoise(3.0, 0.04), *_skewnorm_mean_std(3.0, 0.04)),
    ],
)
def test_sample_mean_and_std_match_analytic_values(model, mean, std):
    offsets = _offsets(model)
    tol = 5 * std / math.sqrt(N_DRAWS) + 1e-9  # 5 standard errors of the mean
    assert offsets.mean() == pytest.approx(mean, abs=tol)
    assert offsets.std() == pytest.approx(std, rel=0.03, abs=1e-9)
    assert model.mean_s == pytest.approx(mean, rel=1e-12, abs=1e-15)
    assert model.std_s == pytest.approx(std, rel=1e-12, abs=1e-15)


def test_skew_normal_original_setting_is_not_zero_mean():
    # the time-series original: shape -2, mean ~ -0.714 * scale (facts §2.7)
    model = SkewNormalNoise(-2.0, 1.0)
    assert model.mean_s == pytest.approx(-2 / math.sqrt(5) * math.sqrt(2 / math.pi))
    assert model.mean_s == pytest.approx(-0.7136, abs=1e-4)


def test_binary_noise_takes_only_plus_minus_delta_with_equal_probability():
    offsets = _offsets(BinaryNoise(0.05))
    np.testing.assert_allclose(np.abs(offsets), 0.05, atol=1e-9)
    assert abs((offsets > 0).mean() - 0.5) < 5 * 0.5 / math.sqrt(N_DRAWS)


def test_rounded_normal_lands_on_frame_grid_with_rounded_normal_std():
    rate = 100.0
    model = RoundedNormalNoise(1.5, rate)
    times = np.full(N_DRAWS, 5.003)  # off-grid: snapped to frame 500 first
    moved, _ = perturb_events(times, model=model, duration_s=20.0, seed=1)
    frames = moved * rate
    np.testing.assert_allclose(frames, np.round(frames), atol=1e-9)
    shifts = np.round(frames).astype(int) - 500
    # independent reference: distribution of round(N(0, 1.5^2)) by numeric integration
    k = np.arange(-20, 21)
    pr = stats.norm.cdf((k + 0.5) / 1.5) - stats.norm.cdf((k - 0.5) / 1.5)
    ref_std = math.sqrt(np.sum(k**2 * pr))
    assert shifts.std() == pytest.approx(ref_std, rel=0.03)
    assert shifts.mean() == pytest.approx(0.0, abs=5 * ref_std / math.sqrt(N_DRAWS))
    assert model.std_s == pytest.approx(ref_std / rate, rel=1e-9)
    assert (np.abs(shifts) <= 12).all()


def test_rounded_normal_clips_to_last_whole_frame_inside_duration():
    model = RoundedNormalNoise(50.0, 10.0)
    moved, _ = perturb_events(np.full(500, 1.0), model=model, duration_s=2.05, seed=0)
    assert moved.min() == 0.0 and moved.max() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "model",
    [NormalNoise(0.2), BinaryNoise(0.1), SkewNormalNoise(-2.0, 0.2), RoundedNormalNoise(3.0, 50.0)],
)
def test_same_seed_reproduces_and_different_seeds_differ(model):
    times = np.linspace(0.5, 9.5, 40)
    a, _ = perturb_events(times, model=model, duration_s=10.0, seed=123)
    b, _ = perturb_events(times, model=model, duration_s=10.0, seed=123)
    c, _ = perturb_events(times, model=model, duration_s=10.0, seed=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(
        perturb_events(times, model=model, duration_s=10.0, seed=g1)[0],
        perturb_events(times, model=model, duration_s=10.0, seed=g2)[0],
    )


@pytest.mark.parametrize(
    "model", [NormalNoise(1.0), BinaryNoise(0.5), ShiftNoise(-0.7), SkewNormalNoise(-2.0, 1.0)]
)
def test_results_are_clipped_to_zero_and_duration(model):
    times = np.array([0.0, 0.1, 0.2, 1.8, 1.9, 2.0] * 50)
    moved, _ = perturb_events(times, model=model, duration_s=2.0, seed=3)
    assert moved.min() >= 0.0 and moved.max() <= 2.0
    assert moved.size == times.size
    assert (moved == 0.0).any()
    shifted, _ = perturb_events([1.8], model=ShiftNoise(0.5), duration_s=2.0, seed=0)
    assert shifted.tolist() == [2.0]


def test_output_sorted_with_labels_kept_paired_and_input_not_mutated():
    times = [3.0, 1.0, 2.0, 0.5, 2.5]
    labels = ["a", "b", "c", "d", "e"]
    times_np = np.array(times)
    before = (list(times), list(labels), times_np.copy())
    moved, moved_labels = perturb_events(
        times_np, labels, model=NormalNoise(0.8), duration_s=4.0, seed=11
    )
    assert times == before[0] and labels == before[1]
    np.testing.assert_array_equal(times_np, before[2])
    assert moved is not times_np and moved_labels is not labels
    assert np.all(np.diff(moved) >= 0)
    # pairing: re-derive the same offsets with the same seed and match label -> time
    rng = np.random.default_rng(11)
    expected = np.clip(np.array(times) + rng.normal(0.0, 0.8, 5), 0.0, 4.0)
    assert dict(zip(moved_labels, moved.tolist(), strict=True)) == pytest.approx(
        dict(zip(labels, expected.tolist(), strict=True))
    )
    shifted, shifted_labels = perturb_events(
        times, labels, model=ShiftNoise(0.1), duration_s=4.0, seed=0
    )
    assert shifted_labels == ["d", "b", "c", "e", "a"]
    np.testing.assert_allclose(shifted, [0.6, 1.1, 2.1, 2.6, 3.1])


def test_empty_events_and_no_labels():
    moved, labels = perturb_events([], model=NormalNoise(0.1), duration_s=1.0, seed=0)
    assert moved.shape == (0,) and moved.dtype == np.float64 and labels is None
    moved, labels = perturb_events([], [], model=BinaryNoise(0.1), duration_s=1.0, seed=0)
    assert labels == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("normal:100ms", NormalNoise(0.1)),
        ("normal:0.1s", NormalNoise(0.1)),
        (" Normal : 100ms ", NormalNoise(0.1)),
        ("normal:4frames", NormalNoise(0.02)),
        ("binary:50ms", BinaryNoise(0.05)),
        ("shift:-20ms", ShiftNoise(-0.02)),
        ("shift:+1.5s", ShiftNoise(1.5)),
        ("skew-normal:-2:100ms", SkewNormalNoise(-2.0, 0.1)),
        ("skew-normal:0.5:1e-2s", SkewNormalNoise(0.5, 0.01)),
        ("rounded-normal:2frames", RoundedNormalNoise(2.0, 200.0)),
        ("rounded-normal:10ms", RoundedNormalNoise(2.0, 200.0)),
    ],
)
def test_parse_noise_examples(spec, expected):
    assert parse_noise(spec, frame_rate=200.0) == expected


@pytest.mark.parametrize(
    "model",
    [
        NormalNoise(0.1),
        NormalNoise(0.0123456789),
        NormalNoise(1 / 3),
        BinaryNoise(0.05),
        ShiftNoise(-0.02),
        ShiftNoise(0.3),
        SkewNormalNoise(-2.0, 0.1),
        SkewNormalNoise(0.7, 1 / 7),
        RoundedNormalNoise(2.5, 100.0),
    ],
)
def test_parse_noise_round_trips_to_spec(model):
    assert isinstance(model, NoiseModel)
    assert parse_noise(model.to_spec(), frame_rate=getattr(model, "frame_rate", None)) == model
    assert str(model) == model.to_spec()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("normal", "cannot parse 'normal': missing ':'"),
        ("gauss:100ms", "unknown kind 'gauss'"),
        ("normal:100", "bad duration '100'"),
        ("normal:abcms", "bad duration"),
        ("normal:-100ms", "duration must be >= 0"),
        ("binary:", "bad duration"),
        ("skew-normal:100ms", "skew-normal needs '<shape>:<dur>'"),
        ("skew-normal:x:100ms", "skew-normal needs '<shape>:<dur>'"),
        ("normal:2frames", "a duration in frames needs `frame_rate`"),
        ("rounded-normal:2frames", "rounded-normal needs `frame_rate`"),
        ("", "cannot parse ''"),
    ],
)
def test_parse_noise_rejects_garbage_naming_string_and_format(spec, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_noise(spec)
    assert "expected 'normal:<dur>'" in str(info.value) or "frame_rate" in str(info.value)


def test_validation_errors():
    with pytest.raises(TypeError, match="parse_noise: `spec` must be a str"):
        parse_noise(100)
    with pytest.raises(ValueError, match="parse_noise: `frame_rate` must be a number > 0"):
        parse_noise("normal:1ms", frame_rate=0)
    with pytest.raises(ValueError, match="NormalNoise: `sigma_s` must be >= 0"):
        NormalNoise(-0.1)
    with pytest.raises(ValueError, match="BinaryNoise: `delta_s` must be finite"):
        BinaryNoise(math.inf)
    with pytest.raises(TypeError, match="ShiftNoise: `delta_s` must be a real number"):
        ShiftNoise("20ms")
    with pytest.raises(ValueError, match="RoundedNormalNoise: `frame_rate` must be > 0"):
        RoundedNormalNoise(1.0, 0.0)
    with pytest.raises(ValueError, match="SkewNormalNoise: `scale_s` must be >= 0"):
        SkewNormalNoise(-2.0, -1.0)
    model = NormalNoise(0.1)
    with pytest.raises(TypeError, match="perturb_events: `model` must be a NoiseModel"):
        perturb_events([1.0], model="normal:100ms", duration_s=2.0, seed=0)
    with pytest.raises(TypeError, match="perturb_events: `labels` got a NoiseModel"):
        perturb_events([1.0], model, model=model, duration_s=2.0, seed=0)
    with pytest.raises(TypeError, match="perturb_events: `seed` must be an int or a numpy"):
        perturb_events([1.0], model=model, duration_s=2.0, seed=None)
    with pytest.raises(ValueError, match="perturb_events: `duration_s` must be > 0"):
        perturb_events([1.0], model=model, duration_s=0.0, seed=0)
    with pytest.raises(ValueError, match=r"perturb_events: `times_s` must be 1-D"):
        perturb_events([[1.0]], model=model, duration_s=2.0, seed=0)
    with pytest.raises(ValueError, match="perturb_events: `times_s` must be finite"):
        perturb_events([math.nan], model=model, duration_s=2.0, seed=0)
    with pytest.raises(
        ValueError, match=r"perturb_events: `times_s` must lie in \[0, duration_s=2\]"
    ):
        perturb_events([2.5], model=model, duration_s=2.0, seed=0)
    with pytest.raises(ValueError, match=r"perturb_events: `labels` must have one entry per event"):
        perturb_events([1.0, 1.5], ["a"], model=model, duration_s=2.0, seed=0)
