"""Training augmentation: each transform against a direct measurement (click positions, sine
frequencies, RMS levels), the seeded window chain, and stacking of labels."""

import numpy as np
import pytest

from softloc.data.augment import (
    AugmentSettings,
    add_noise,
    add_reverb,
    apply_gain,
    augment_window,
    change_rate,
    pitch_shift,
    random_eq,
    stack,
    time_stretch,
)
from softloc.data.generators.recording import rms_db

SR = 16000


def _clicks(times_s, dur_s=1.5, sr=SR):
    x = np.zeros(int(dur_s * sr))
    for t in times_s:
        x[int(round(t * sr))] = 1.0
    return x


def _sine(f_hz, dur_s=1.0, sr=SR):
    return 0.5 * np.sin(2 * np.pi * f_hz * np.arange(int(dur_s * sr)) / sr)


def _peak_hz(x, sr=SR):
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return np.fft.rfftfreq(x.size, 1 / sr)[np.argmax(spec)]


def _envelope_peak_s(y, lo_s, hi_s, sr=SR):
    seg = np.abs(y[int(lo_s * sr):int(hi_s * sr)])
    return lo_s + np.argmax(seg) / sr


@pytest.mark.parametrize("factor", [7 / 8, 1.0, 1.06, 9 / 8 - 1e-9])
def test_change_rate_moves_clicks_to_t_over_factor_and_scales_pitch(factor):
    times = np.array([0.2, 0.71, 1.3])
    y, t = change_rate(_clicks(times), times, factor=factor, sample_rate=SR)
    assert np.allclose(t, times / factor)
    assert abs(y.size - 1.5 * SR / factor) <= 1
    for expected in times / factor:
        assert _envelope_peak_s(y, expected - 0.02, expected + 0.02) == pytest.approx(
            expected, abs=0.001)
    s, _ = change_rate(_sine(440.0), factor=factor, sample_rate=SR)
    assert _peak_hz(s) == pytest.approx(440.0 * factor, rel=0.01)


@pytest.mark.parametrize("rate", [0.8, 0.9, 1.0, 1.1, 1.25])
def test_time_stretch_moves_clicks_to_t_over_rate_within_half_a_frame_and_keeps_pitch(rate):
    n_fft = 512
    times = np.array([0.25, 0.8, 1.2])
    y, t = time_stretch(_clicks(times), times, rate=rate, n_fft=n_fft, hop=n_fft // 4)
    assert np.allclose(t, times / rate)
    assert y.size == round(1.5 * SR / rate)
    for expected in times / rate:
        lo = int((expected - 0.05) * SR)
        energy = y[lo:lo + int(0.1 * SR)] ** 2
        centroid = (lo + np.sum(energy * np.arange(energy.size)) / energy.sum()) / SR
        assert centroid == pytest.approx(expected, abs=n_fft / 2 / SR), (expected, centroid)
    s, _ = time_stretch(_sine(440.0), rate=rate)
    assert _peak_hz(s[1024:-1024]) == pytest.approx(440.0, abs=SR / (s.size - 2048) * 2)


def test_time_stretch_at_rate_one_reconstructs_the_input():
    x = np.random.default_rng(0).standard_normal(SR)
    y, _ = time_stretch(x, rate=1.0)
    assert np.allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("semitones", [-2.0, 1.0, 3.0])
def test_pitch_shift_scales_frequency_and_keeps_length(semitones):
    y = pitch_shift(_sine(440.0), semitones=semitones, sample_rate=SR)
    assert y.size == SR
    assert _peak_hz(y[2048:-2048]) == pytest.approx(440.0 * 2 ** (semitones / 12), rel=0.01)


@pytest.mark.parametrize("gain_db", [-12.0, 0.0, 5.5])
def test_gain_changes_rms_by_the_requested_db(gain_db):
    x = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    y = apply_gain(x, gain_db=gain_db)
    assert y.dtype == np.float32
    assert rms_db(y) - rms_db(x) == pytest.approx(gain_db, abs=1e-4)


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_noise_is_added_at_the_requested_snr(snr_db):
    x = _sine(300.0)
    y = add_noise(x, rng=np.random.default_rng(2), snr_db=snr_db, sample_rate=SR)
    assert rms_db(x) - rms_db(y - x) == pytest.approx(snr_db, abs=1e-6)


def test_eq_and_reverb_are_seeded_and_keep_length():
    x = np.random.default_rng(3).standard_normal(SR)
    for f in (lambda r: random_eq(x, rng=r, sample_rate=SR),
              lambda r: add_reverb(x, rng=r, sample_rate=SR, rt60_s=0.4)):
        a, b = f(np.random.default_rng(4)), f(np.random.default_rng(4))
        assert np.array_equal(a, b) and a.shape == x.shape and not np.allclose(a, x)
    flat = random_eq(_sine(1000.0), rng=np.random.default_rng(5), sample_rate=SR, max_db=0.0)
    assert rms_db(flat[SR // 2:]) == pytest.approx(rms_db(_sine(1000.0)[SR // 2:]), abs=0.05)


def test_stacking_sums_audio_and_counts_ors_targets_and_merges_times():
    a, b = _sine(200.0), _sine(300.0)
    ta = np.zeros((3, 10))
    tb = np.zeros((3, 10))
    ta[0, 2] = ta[1, 5] = 1
    tb[0, 2] = tb[2, 7] = 1
    out = stack(a, b, gain_db=-6.0, counts_a=np.array([1, 1, 0]), counts_b=np.array([1, 0, 2]),
                targets_a=ta, targets_b=tb, times_a=[0.5, 0.2], times_b=[0.3])
    assert np.allclose(out["audio"], a + b * 10 ** (-6 / 20))
    assert out["counts"].tolist() == [2, 1, 2]
    assert out["targets"].sum() == 3 and out["targets"][0, 2] == 1 and out["targets"][2, 7] == 1
    assert out["times_s"].tolist() == [0.2, 0.3, 0.5]
    assert stack(a, b)["counts"] is None
    with pytest.raises(ValueError, match="must have one shape"):
        stack(a, b[:-1])
    with pytest.raises(ValueError, match="both or neither of the two `counts`"):
        stack(a, b, counts_a=np.array([1]))


def test_augment_window_is_seeded_maps_times_with_its_factor_and_keeps_counts():
    times = np.array([0.1, 0.5, 0.9, 1.45])
    x = _clicks(times) + 0.01 * np.random.default_rng(6).standard_normal(int(1.5 * SR))
    settings = AugmentSettings(p_stretch=0.5, p_pitch=0.3, p_noise=0.5, p_reverb=0.5)
    factors = set()
    for seed in range(8):
        y, t, info = augment_window(x, times, rng=np.random.default_rng(seed), sample_rate=SR,
                                    settings=settings)
        y2, t2, info2 = augment_window(x, times, rng=np.random.default_rng(seed), sample_rate=SR,
                                       settings=settings)
        assert np.array_equal(y, y2) and np.array_equal(t, t2) and info == info2
        assert np.allclose(t * info["time_factor"], times)
        assert np.all(t < y.size / SR)  # every event stays in the window: counts unchanged
        factors.add(round(info["time_factor"], 6))
        if "rate" in info:
            assert 7 / 8 <= info["rate"] < 9 / 8
    assert len(factors) == 8  # continuous factors


def test_polarity_inversion_negates_and_costs_no_random_draw_when_off():
    x = np.random.default_rng(1).standard_normal(SR // 2)
    plain = AugmentSettings(p_rate=0.0, p_eq=0.0, p_noise=0.0, p_reverb=0.0, gain_db=(0.0, 0.0))
    flip = AugmentSettings(**{**plain.__dict__, "p_invert": 1.0})
    y, _, info = augment_window(x, rng=np.random.default_rng(2), sample_rate=SR, settings=flip)
    assert np.allclose(y, -x) and info["inverted"] == 1.0
    # p_invert = 0 must leave the random stream of existing recipes (shipped models) unchanged:
    # with every other step off, the chain draws exactly 7 numbers (stretch, rate, pitch, EQ,
    # reverb, gain, noise), none for the polarity
    rng_a, ref = np.random.default_rng(5), np.random.default_rng(5)
    ya, _, info_a = augment_window(x, rng=rng_a, sample_rate=SR, settings=plain)
    ref.random(7)
    assert np.array_equal(ya, x) and "inverted" not in info_a
    assert rng_a.random() == ref.random()
    with pytest.raises(ValueError, match="`p_invert` must lie in"):
        AugmentSettings(p_invert=-0.1)


def test_augment_settings_and_inputs_are_validated():
    with pytest.raises(ValueError, match="`p_noise` must lie in"):
        AugmentSettings(p_noise=1.5)
    with pytest.raises(ValueError, match="`rate_range` must be"):
        AugmentSettings(rate_range=(1.2, 1.0))
    with pytest.raises(ValueError, match="1-D float array"):
        change_rate(np.zeros((2, 100)), factor=1.0, sample_rate=SR)
    with pytest.raises(ValueError, match="`factor` must be > 0"):
        change_rate(np.zeros(100), factor=0.0, sample_rate=SR)
