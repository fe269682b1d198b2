"""softloc.models.pan_tompkins: the classical QRS detector, against known beat times.

References are the beat times a synthetic ECG was built from, and the cardiologists' beat
annotations of shared MIT-BIH records (matched with softloc.metrics, i.e. mir_eval).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from softloc.metrics import onset_scores
from softloc.models.pan_tompkins import locate_r_peaks, pan_tompkins, qrs_energy

MITBIH = Path("/work/shared/data/mitbih")
_alt = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mitbih"
if _alt.is_dir():
    MITBIH = _alt
needs_mitbih = pytest.mark.skipif(not (MITBIH / "100.hea").is_file(),
                                  reason="shared MIT-BIH folder absent")


def _synthetic_ecg(seed: int, *, seconds: float = 60.0, rate: float = 360.0,
                   t_amp: float = 0.3, amps=None, rr_s=(0.55, 1.2)):
    """P-QRS-T complexes at random RR intervals, baseline wander and noise; returns (x, beats_s)."""
    rng = np.random.default_rng(seed)
    beats = np.cumsum(rng.uniform(*rr_s, size=int(seconds)))
    beats = beats[beats < seconds - 1.0]
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 0.25 * t) + rng.normal(scale=0.02, size=t.size)
    amps = np.ones(beats.size) if amps is None else amps(beats.size)
    for b, a in zip(beats, amps, strict=True):
        x += a * np.exp(-0.5 * ((t - b) / 0.012) ** 2)            # R
        x -= 0.15 * a * np.exp(-0.5 * ((t - b - 0.03) / 0.008) ** 2)  # S
        x += 0.1 * np.exp(-0.5 * ((t - b + 0.16) / 0.02) ** 2)   # P
        x += t_amp * np.exp(-0.5 * ((t - b - 0.28) / 0.045) ** 2)  # T
    return x, beats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_every_synthetic_beat_within_a_few_ms(seed):
    x, beats = _synthetic_ecg(seed)
    res = pan_tompkins(x, 360.0)
    s = onset_scores(beats, res.times_s, tolerance_s=0.05)
    assert s["f1"] == 1.0
    assert abs(s["time_error_mean_s"]) < 0.004 and s["time_error_std_s"] < 0.004
    np.testing.assert_array_equal(res.samples, np.round(res.times_s * 360.0).astype(int))


def test_tall_t_waves_are_not_beats():
    x, beats = _synthetic_ecg(3, t_amp=0.6)
    s = onset_scores(beats, pan_tompkins(x, 360.0).times_s, tolerance_s=0.05)
    assert s["fp"] == 0 and s["fn"] == 0


def test_search_back_recovers_small_beats_after_large_ones():
    def amps(n):
        a = np.ones(n)
        a[10::7] = 0.45  # every 7th beat: a fifth of the others' energy, below THRESHOLD_I1
        return a

    x, beats = _synthetic_ecg(4, amps=amps, rr_s=(0.8, 0.9))
    with_sb = onset_scores(beats, pan_tompkins(x, 360.0).times_s, tolerance_s=0.05)
    without = onset_scores(beats, pan_tompkins(x, 360.0, search_back=False).times_s,
                           tolerance_s=0.05)
    assert with_sb["recall"] == 1.0
    assert without["recall"] < with_sb["recall"]


def test_works_at_other_sampling_rates():
    x, beats = _synthetic_ecg(5, rate=250.0)
    s = onset_scores(beats, pan_tompkins(x, 250.0).times_s, tolerance_s=0.05)
    assert s["f1"] == 1.0


def test_integrated_energy_peaks_at_the_qrs():
    x, beats = _synthetic_ecg(6)
    energy, slope = qrs_energy(x, 360.0)
    assert energy.shape == slope.shape == x.shape
    at_beats = energy[np.round(beats * 360).astype(int)]
    between = energy[np.round((beats[:-1] + 0.45) * 360).astype(int)]  # after T, before P
    assert at_beats.min() > 5 * between.max() and at_beats.min() > 100 * np.median(between)


def test_locate_r_peaks_moves_rough_times_onto_the_r_waves():
    x, beats = _synthetic_ecg(7)
    rough = beats + np.random.default_rng(0).uniform(-0.04, 0.04, beats.size)
    located = locate_r_peaks(x, 360.0, rough, window_s=0.075)
    assert located.size == beats.size
    assert np.abs(located / 360.0 - beats).max() < 0.004
    with pytest.raises(ValueError, match="`times_s` must be finite"):
        locate_r_peaks(x, 360.0, np.array([np.nan]))


def test_input_validation():
    with pytest.raises(ValueError, match=r"pan_tompkins: `rate_hz` must be >= 100 Hz"):
        pan_tompkins(np.zeros(1000), 50.0)
    with pytest.raises(ValueError, match="at least 2 s"):
        pan_tompkins(np.zeros(100), 360.0)
    with pytest.raises(ValueError, match=r"one ECG lead, shape \(samples,\)"):
        pan_tompkins(np.zeros((2, 1000)), 360.0)
    with pytest.raises(ValueError, match="finite"):
        pan_tompkins(np.full(1000, np.nan), 360.0)
    with pytest.raises(TypeError, match="numpy array"):
        pan_tompkins([0.0] * 1000, 360.0)
    with pytest.raises(ValueError, match="`band_hz` must satisfy"):
        qrs_energy(np.zeros(1000), 360.0, band_hz=(15.0, 5.0))


@needs_mitbih
@pytest.mark.parametrize("record", ["100", "114"])
def test_mitbih_beat_f1_above_095_at_150ms(record):
    from softloc.data.physionet import read_wfdb, read_wfdb_events

    sig = read_wfdb(MITBIH / record)
    ref = [t for t, _ in read_wfdb_events(MITBIH / record)]
    s = onset_scores(ref, pan_tompkins(sig.data, sig.rate_hz).times_s, tolerance_s=0.15)
    assert s["f1"] > 0.95, s
