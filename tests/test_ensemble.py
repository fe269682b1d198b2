"""Test-time augmentation: Nadaraya–Watson ensembling and the cleaning decoder, against brute
force re-implementations of the official rules (facts §5.2-5.3) and on clicks through a
Detector."""

import math

import numpy as np
import pytest
import torch

from softloc.config import apply_overrides, load_preset
from softloc.decode import window_mass_events
from softloc.inference import Detector
from softloc.inference.ensemble import (
    cleaning_events,
    nadaraya_watson_map,
    nw_ensemble_events,
    trigger_density,
)


def _nw_brute(b, factor, n, h):
    """Every copy frame, no truncation, float64 loops."""
    out = np.zeros((b.shape[0], n))
    j = np.arange(b.shape[1])
    for i in range(n):
        w = np.exp(-0.5 * ((i - j * factor) / h) ** 2)
        out[:, i] = (b * w).sum(axis=1) / w.sum()
    return out


def _greedy_brute(triggers, factors, n, h, mass, sup):
    """The original loop: recompute every NW map after each event."""
    found = []
    for c in range(triggers[0].shape[0]):
        b = [t[c:c + 1].astype(float).copy() for t in triggers]
        while True:
            total = sum(_nw_brute(x, f, n, h)[0] for x, f in zip(b, factors, strict=True))
            i = int(np.argmax(total))
            if not total[i] > mass:
                break
            found.append((i, c))
            for x, f in zip(b, factors, strict=True):
                j = int(i / f)
                x[0, max(0, j - sup): j + sup + 1] = 0.0
    return sorted(found)


@pytest.mark.parametrize("factor", [0.875, 1.0, 1.0625])
def test_nw_map_matches_brute_force_kernel_regression(factor):
    rng = np.random.default_rng(0)
    b = (rng.random((2, 150)) < 0.1).astype(float)
    n = int(149 * factor) + 1  # the original frames the copy covers
    fast = nadaraya_watson_map(b, factor=factor, n_frames=n, bandwidth_frames=5.0)
    np.testing.assert_allclose(fast, _nw_brute(b, factor, n, 5.0), atol=2e-5)


def test_one_isolated_trigger_peaks_at_one_over_h_sqrt_2pi():
    b = np.zeros((1, 200))
    b[0, 100] = 1.0
    m = nadaraya_watson_map(b, factor=1.0, n_frames=200, bandwidth_frames=5.0)
    assert int(np.argmax(m)) == 100
    assert m.max() == pytest.approx(1 / (5 * math.sqrt(2 * math.pi)), rel=1e-4)  # 0.0798


def test_greedy_extraction_matches_the_original_loop():
    rng = np.random.default_rng(1)
    factors = [1.0, 0.9, 1.1, 0.95]
    n = 120
    triggers = []
    for f in factors:
        t = np.zeros((2, int(n / f) + 1))
        for c, centres in enumerate(([20, 60, 100], [40, 41, 90])):
            for e in centres:
                j = int(round(e / f)) + int(rng.integers(-1, 2))
                t[c, j: j + int(rng.integers(1, 4))] = 1.0
        t[:, rng.integers(0, t.shape[1], 3)] = 1.0  # stray triggers
        triggers.append(t)
    events = nw_ensemble_events(triggers, factors=factors, n_frames=n, frame_rate=100.0,
                                bandwidth_frames=5.0, min_mass=0.25, suppression_frames=9)
    expected = _greedy_brute(triggers, factors, n, 5.0, 0.25, 9)
    assert sorted(zip(events.frames.tolist(), events.classes.tolist(), strict=True)) == expected
    assert len(expected) >= 5
    np.testing.assert_allclose(events.times_s, events.frames / 100.0)


def test_an_event_needs_copies_to_agree():
    n, factors = 200, [1.0, 0.9, 0.95, 1.05, 1.1, 0.875, 1.125]
    lone = [np.zeros((1, int(n / f) + 1)) for f in factors]
    lone[0][0, 50] = 1.0
    assert len(nw_ensemble_events(lone, factors=factors, n_frames=n, frame_rate=200.0)) == 0
    agree = [np.zeros((1, int(n / f) + 1)) for f in factors]
    for t, f in zip(agree, factors, strict=True):
        t[0, int(round(120 / f))] = 1.0
    ev = nw_ensemble_events(agree, factors=factors, n_frames=n, frame_rate=200.0)
    assert ev.frames.tolist() == [120] and ev.scores[0] > 0.25


def test_trigger_density_averages_the_windows_binary_outputs():
    # three windows of 6 frames at hop 2 over 10 frames; the middle one triggers at file frame 4
    probs = np.zeros((3, 1, 6))
    probs[0, 0, 4] = 0.9  # file frame 4
    probs[1, 0, 2] = 0.9  # file frame 4
    probs[2, 0, 0] = 0.3  # file frame 4, below the threshold
    d = trigger_density(probs, thresholds=[0.5], hop_frames=2, total_frames=10,
                        valid_frames=[6, 6, 6])
    expected = np.zeros((1, 10))
    expected[0, 4] = 2 / 3  # frame 4 is covered by all three windows
    np.testing.assert_allclose(d, expected)


def test_cleaning_in_seconds_is_window_mass_events_in_frames():
    rng = np.random.default_rng(3)
    d = (rng.random((2, 400)) < 0.05) * rng.choice([1 / 3, 2 / 3, 1.0], (2, 400))
    got = cleaning_events(d, frame_rate=200.0, window_s=0.045, min_mass_s=0.0025)
    ref = window_mass_events(d, window_frames=9, min_mass=0.5, frame_rate=200.0)
    assert got.frames.tolist() == ref.frames.tolist()
    assert got.classes.tolist() == ref.classes.tolist()


def test_nw_ensemble_validates():
    with pytest.raises(ValueError, match="one factor per trigger series"):
        nw_ensemble_events([np.zeros((1, 5))], factors=[1.0, 0.9], n_frames=5, frame_rate=100.0)
    with pytest.raises(ValueError, match="same classes"):
        nw_ensemble_events([np.zeros((1, 5)), np.zeros((2, 5))], factors=[1.0, 0.9], n_frames=5,
                           frame_rate=100.0)
    with pytest.raises(ValueError, match="`factor` must be > 0"):
        nadaraya_watson_map(np.zeros((1, 5)), factor=0.0, n_frames=5, bandwidth_frames=5.0)


# ------------------------------------------------------------------ through a Detector

SR = 44100
CLICKS_S = [0.31, 0.72, 1.18, 1.61, 2.05, 2.54, 2.93, 3.37]


class _ClickModel(torch.nn.Module):
    """p(t) ~ 1 on frames whose mel energy exceeds ``level`` (every class alike)."""

    def __init__(self, level: float):
        super().__init__()
        self.register_buffer("level", torch.tensor(level))

    def forward(self, mel, lengths):
        e = mel.sum(dim=1, keepdim=True)  # (B, 1, T)
        return (20 * (torch.log10(e + 1e-12) - torch.log10(self.level))).expand(-1, 3, -1)


def _click_detector():
    config = apply_overrides(load_preset("demo"), ["classes=[HH, KD, SD]"])
    click = np.zeros(SR, dtype=np.float32)
    click[SR // 2] = 0.5
    stage = Detector(_ClickModel(1.0), config).input_stage  # reads at the preset's rate
    peak = float(stage.features(stage.read((click, SR))).sum(dim=0).max())
    return Detector(_ClickModel(0.3 * peak), config)


def _audio():
    x = np.random.default_rng(0).normal(scale=1e-5, size=int(3.8 * SR)).astype(np.float32)
    for t in CLICKS_S:
        x[int(t * SR)] += 0.5
    return x


@pytest.mark.parametrize("decoder", ["threshold", "clean"])
@pytest.mark.parametrize("ensemble", ["none", "mean", "nw"])
def test_every_pipeline_finds_the_clicks(decoder, ensemble):
    det = _click_detector()
    factors = () if ensemble == "none" else (0.875, 0.9375, 1.0625, 1.125)
    det = det.with_settings(decoder=decoder, tta_factors=factors,
                            tta_ensemble="nw" if ensemble == "nw" else "mean")
    events = det.events((_audio(), SR))
    frame_s = 1 / det.frame_rate
    for c in range(3):
        times = events.per_class()[c]
        assert len(times) == len(CLICKS_S), (decoder, ensemble, times)
        # the cleaning rule emits a run's first frame, the others its peak or NW centre
        assert np.abs(times - np.array(CLICKS_S)).max() <= 3 * frame_s


def test_cleaning_reports_the_first_frame_of_a_run_and_offsets_apply_per_class():
    det = _click_detector().with_settings(decoder="clean", class_offsets_s=(0.0, 0.1, -0.1))
    peak = _click_detector().events((_audio(), SR)).per_class()[0]
    ev = det.events((_audio(), SR)).per_class()
    assert np.all(ev[0] <= peak + 1e-9)
    np.testing.assert_allclose(ev[1], ev[0] + 0.1)
    np.testing.assert_allclose(ev[2], ev[0] - 0.1)


def test_load_runs_small_models_on_one_thread_and_restores_the_setting(tmp_path):
    from softloc.inference import save_model_file
    from softloc.models import model_from_config

    config = apply_overrides(load_preset("demo"), ["classes=[HH, KD, SD]"])
    save_model_file(tmp_path / "model.pt", model_from_config(config), config)
    det = Detector.load(tmp_path / "model.pt")
    assert det.threads == 1
    assert Detector.load(tmp_path / "model.pt", threads=None).threads is None
    assert Detector.load(tmp_path / "model.pt", threads=2).threads == 2
    before = torch.get_num_threads()
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, mel, lengths):
            seen.append(torch.get_num_threads())
            return torch.zeros(mel.shape[0], 3, mel.shape[-1])

    spy = Detector(Spy(), config, threads=1)
    spy.detect((_audio(), SR))
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="cannot use device"):
        Detector.load(tmp_path / "model.pt", device="nonsense")
    with pytest.raises(ValueError, match="`threads` must be"):
        Detector.load(tmp_path / "model.pt", threads="many")
