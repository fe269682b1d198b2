"""The recording chain: each stage against a textbook measurement, the chain seeded and causal."""

import numpy as np
import pytest
from scipy import signal

from softloc.data.generators.recording import (
    apply_recording_chain,
    apply_reverb,
    backing_music,
    colour_eq,
    compress,
    draw_recording_chain,
    mix_at_ratio,
    noise_floor,
    rms_db,
    synthetic_rir,
)

SR = 16000


def _sine(f_hz, dur_s=1.0, amp=0.5, sr=SR):
    return (amp * np.sin(2 * np.pi * f_hz * np.arange(int(dur_s * sr)) / sr)).astype(np.float64)


@pytest.mark.parametrize("rt60_s", [0.2, 0.5, 1.0])
def test_rir_decays_60_db_in_rt60_by_schroeder_integration(rt60_s):
    rir = synthetic_rir(rng=np.random.default_rng(0), sample_rate=SR, rt60_s=rt60_s,
                        predelay_ms=0.0, hf_rt60_ratio=1.0, direct_to_reverb_db=0.0)
    tail = rir[1:]
    edc = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail ** 2))
    i5, i25 = np.argmax(edc < -5), np.argmax(edc < -25)  # T20 fit range of ISO 3382
    t = np.arange(tail.size) / SR
    slope = np.polyfit(t[i5:i25], edc[i5:i25], 1)[0]  # dB per second
    assert -60 / slope == pytest.approx(rt60_s, rel=0.1)


def test_rir_direct_sound_predelay_and_direct_to_reverb_ratio():
    rir = synthetic_rir(rng=np.random.default_rng(1), sample_rate=SR, rt60_s=0.3,
                        predelay_ms=10.0, direct_to_reverb_db=6.0)
    pre = int(0.010 * SR)
    assert rir[0] == 1.0 and not np.any(rir[1:pre + 1])
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(6.0, abs=1e-6)
    x = np.zeros(2000)
    x[100] = 1.0
    assert np.allclose(apply_reverb(x, rir)[100:2000], rir[:1900])


def _gain_db(y, x):
    n = y.size // 2  # steady state: second half
    return rms_db(y[n:]) - rms_db(x[n:])


def test_colour_eq_gains_match_the_requested_db():
    x = _sine(1000.0)
    assert _gain_db(colour_eq(x, sample_rate=SR), x) == pytest.approx(0.0, abs=0.1)
    y = colour_eq(x, sample_rate=SR, peak_hz=1000.0, peak_db=6.0, peak_q=1.0)
    assert _gain_db(y, x) == pytest.approx(6.0, abs=0.1)
    hi = _sine(7000.0)  # well above a 2 kHz high shelf
    y = colour_eq(hi, sample_rate=SR, high_shelf_db=-9.0, high_shelf_hz=2000.0)
    assert _gain_db(y, hi) == pytest.approx(-9.0, abs=0.6)
    lo = _sine(40.0)
    y = colour_eq(lo, sample_rate=SR, highpass_hz=400.0)  # 2nd order: -12 dB/oct, 3.3 oct
    assert _gain_db(y, lo) < -35
    assert colour_eq(x.astype(np.float32), sample_rate=SR).dtype == np.float32


@pytest.mark.parametrize("ratio", [2.0, 4.0])
def test_compressor_steady_state_follows_threshold_and_ratio(ratio):
    x = _sine(200.0, amp=0.5)
    level = rms_db(x)
    thr = level - 12.0
    y = compress(x, sample_rate=SR, threshold_db=thr, ratio=ratio, attack_ms=5, release_ms=50)
    assert _gain_db(y, x) == pytest.approx(-12.0 * (1 - 1 / ratio), abs=0.3)
    below = compress(x, sample_rate=SR, threshold_db=level + 3, ratio=ratio)
    assert np.allclose(below, x)


# 4 s, and a length with a prime factor of 50021 (a rate-changed rendition): its FFT runs on a
# padded fast length, cut back.
@pytest.mark.parametrize("n", [4 * SR, 2 * 50021])
@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_floor_has_unit_rms_and_the_spectral_slope_of_its_colour(colour, slope, n):
    x = noise_floor(n, rng=np.random.default_rng(2), sample_rate=SR, colour=colour)
    assert x.shape == (n,)
    assert rms_db(x) == pytest.approx(0.0, abs=1e-6)
    f, p = signal.welch(x, fs=SR, nperseg=4096)
    band = (f > 100) & (f < 6000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)
    with pytest.raises(ValueError, match="`colour` must be"):
        noise_floor(10, rng=np.random.default_rng(0), sample_rate=SR, colour="blue")


def test_noise_floor_of_a_fast_length_is_the_plain_fft_formula():
    # Whole seconds at the usual rates keep the output the generator wrote before padding existed.
    n = 3 * 22050
    rng = np.random.default_rng(9)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec *= np.maximum(np.fft.rfftfreq(n, 1 / 22050), 20.0) ** -0.5
    want = np.fft.irfft(spec, n)
    want /= np.sqrt(np.mean(want ** 2)) + 1e-30
    got = noise_floor(n, rng=np.random.default_rng(9), sample_rate=22050, colour="pink")
    assert np.array_equal(got, want)


def test_hum_adds_a_line_at_the_mains_frequency():
    x = noise_floor(4 * SR, rng=np.random.default_rng(3), sample_rate=SR, colour="white",
                    hum_hz=50.0, hum_db=0.0)
    f, p = signal.welch(x, fs=SR, nperseg=8192)
    assert f[np.argmax(p)] == pytest.approx(50.0, abs=2.0)


def test_backing_music_is_tonal_unit_rms_and_seeded():
    m = backing_music(3 * SR, rng=np.random.default_rng(4), sample_rate=SR, bpm=120.0)
    assert m.shape == (3 * SR,) and rms_db(m) == pytest.approx(0.0, abs=1e-6)
    assert np.array_equal(m, backing_music(3 * SR, rng=np.random.default_rng(4), sample_rate=SR,
                                           bpm=120.0))
    _, p = signal.welch(m, fs=SR, nperseg=4096)
    flatness = np.exp(np.mean(np.log(p + 1e-20))) / np.mean(p)  # 1 for white noise
    assert flatness < 0.05


@pytest.mark.parametrize("n,bpm", [(1, 90.0), (8726, 120.0), (20 * SR + 123, None),
                                   (3 * SR - 7, 177.0)])
def test_backing_music_of_any_length(n, bpm):
    for seed in range(4):
        m = backing_music(n, rng=np.random.default_rng(seed), sample_rate=SR, bpm=bpm)
        assert m.shape == (n,) and np.all(np.isfinite(m))


def test_mix_at_ratio_sets_the_rms_ratio():
    a = _sine(100.0, amp=0.3)
    b = noise_floor(a.size, rng=np.random.default_rng(5), sample_rate=SR)
    y = mix_at_ratio(a, b, ratio_db=9.0)
    assert rms_db(a) - rms_db(y - a) == pytest.approx(9.0, abs=1e-6)
    with pytest.raises(ValueError, match="must have one shape"):
        mix_at_ratio(a, b[:10], ratio_db=0.0)


def test_chain_is_seeded_keeps_length_peak_and_click_onsets():
    x = np.zeros(2 * SR)
    clicks = [0.25, 0.8, 1.43]
    burst = np.exp(-np.arange(200) / 30.0) * np.random.default_rng(6).standard_normal(200)
    for t in clicks:
        x[int(t * SR):int(t * SR) + 200] = burst
    for seed in range(6):
        chain = draw_recording_chain(rng=np.random.default_rng(seed), backing_music_probability=0)
        y = apply_recording_chain(x, chain, rng=np.random.default_rng(seed), sample_rate=SR)
        y2 = apply_recording_chain(x, chain, rng=np.random.default_rng(seed), sample_rate=SR)
        assert np.array_equal(y, y2) and y.dtype == np.float32 and y.shape == x.shape
        assert 20 * np.log10(np.abs(y).max()) == pytest.approx(chain.peak_dbfs, abs=0.01)
        env = np.abs(y)
        for t in clicks:  # nothing arrives before the click; the click is there within 1 ms
            i = int(t * SR)
            before = env[i - 400:i - 5].max()
            assert env[i:i + 16].max() > 4 * before, (seed, t, chain)


def test_draw_chain_music_probability_is_respected_and_validated():
    rng = np.random.default_rng(7)
    assert all(draw_recording_chain(rng=rng).music_ratio_db is None for _ in range(20))
    assert all(draw_recording_chain(rng=rng, backing_music_probability=1.0).music_ratio_db
               is not None for _ in range(20))
    with pytest.raises(ValueError, match="backing_music_probability"):
        draw_recording_chain(rng=rng, backing_music_probability=1.5)
