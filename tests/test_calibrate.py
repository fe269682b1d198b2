import numpy as np
import pytest
import torch

from softloc.config import InferenceConfig, apply_overrides, load_preset
from softloc.data.formats import CountWindow
from softloc.features import FrontEndConfig, mel_power, onset_strength
from softloc.inference import (
    THRESHOLD_GRID,
    Detector,
    calibrate,
    calibrate_from_timestamps,
    calibrate_time_offset,
    calibration_source,
    onset_alignment_offset,
    onset_alignment_offsets,
)


class _MelIsLogit(torch.nn.Module):
    """Stub network: p(t) of class c is mel band c, so a test can place peaks directly."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, mel, lengths=None):
        return torch.logit(mel[:, : self.n_classes, :])  # (B, M, T) -> (B, C, T)


def _config(*extra):
    # the demo preset aligns offsets to the audio; the tests ask for it where they test it
    return apply_overrides(load_preset("demo"), ["inference.align_to_onsets=none", *extra])


def _mel(cfg, seconds, peaks):
    """A power mel whose band c holds p(t) = 0.01 except at `peaks[c] = {time_s: height}`."""
    fr = cfg.features.frame_rate
    mel = torch.full((cfg.features.n_mels, int(seconds * fr)), 0.01)
    for c, items in enumerate(peaks):
        for t, h in items.items():
            mel[c, round(t * fr)] = h
    return mel


def test_calibrate_time_offset_is_minus_the_median_error():
    ref = [np.array([1.0, 2.0, 3.0]), np.array([0.5])]
    est = [np.array([1.02, 2.03, 3.02, 7.0]), np.array([0.52])]
    # matched errors 0.02, 0.03, 0.02, 0.02 (7.0 unmatched): median 0.02
    assert calibrate_time_offset(est, ref) == pytest.approx(-0.02)
    assert calibrate_time_offset([np.array([])], [np.array([1.0])]) == 0.0


def test_threshold_grid_is_010_to_070_in_steps_of_005():
    assert THRESHOLD_GRID == tuple(round(0.10 + 0.05 * i, 2) for i in range(13))


def test_count_calibration_picks_the_threshold_that_reproduces_validation_counts():
    """Class A: true events peak at 0.62, distractors at 0.27, so thresholds 0.30 ... 0.60 count
    exactly; with the configured threshold at 0.2 the nearest of those, 0.30, is chosen. Class B:
    every peak is an event (0.5 and 0.15), so only thresholds <= 0.15 count right: 0.10 or 0.15,
    and 0.15 is nearer to 0.2."""
    cfg = _config("classes=[A, B]", "inference.threshold=0.2", "inference.calibrate_with=counts",
                  "inference.calibrate_min_events=0")
    mel = _mel(cfg, 6, [{0.5: 0.62, 2.2: 0.62, 4.1: 0.62, 1.3: 0.27, 3.3: 0.27},
                        {0.7: 0.5, 2.9: 0.15, 5.0: 0.5}])
    windows = [CountWindow("v", 0.0, 3.0, {"A": 2, "B": 2}),
               CountWindow("v", 3.0, 6.0, {"A": 1, "B": 1})]
    new_cfg, info = calibrate(Detector(_MelIsLogit(2), cfg), {"v": mel},
                              events={"v": [(0.5, "A")]}, count_windows={"v": windows})
    assert new_cfg.inference.class_thresholds == (0.3, 0.15)
    assert info["valid_count_abs_error"] == {"A": 0.0, "B": 0.0}
    assert new_cfg.inference.class_offsets_s == cfg.inference.class_offsets_s
    assert info["source"].startswith("validation counts of 2 windows")


def test_classes_with_few_counted_events_take_the_threshold_of_all_classes_pooled():
    """A: 12 events peaking at 0.62 plus 12 distractors at 0.27 (thresholds 0.30-0.60 count
    exactly); B: 2 events at 0.5 and 0.12 (alone it would need 0.10). With at least 3 events
    per class required, B takes the pooled choice: the summed error is 1 from 0.30 on (B misses
    its 0.12 peak), 12 at 0.10 and 13 at 0.15-0.25 (A's distractors), so 0.30."""
    cfg = _config("classes=[A, B]", "inference.threshold=0.2", "inference.calibrate_with=counts",
                  "inference.calibrate_min_events=3")
    a_events = {0.2 + 0.5 * i: 0.62 for i in range(12)}
    a_distractors = {0.45 + 0.5 * i: 0.27 for i in range(12)}
    mel = _mel(cfg, 6, [{**a_events, **a_distractors}, {1.1: 0.5, 4.2: 0.12}])
    windows = [CountWindow("v", 0.0, 3.0, {"A": 6, "B": 1}),
               CountWindow("v", 3.0, 6.0, {"A": 6, "B": 1})]
    new_cfg, info = calibrate(Detector(_MelIsLogit(2), cfg), {"v": mel},
                              count_windows={"v": windows})
    assert info["valid_events_counted"] == {"A": 12.0, "B": 2.0}
    assert info["pooled_threshold"] == 0.3
    assert new_cfg.inference.class_thresholds == (0.3, 0.3)
    per_class_cfg = apply_overrides(cfg, ["inference.calibrate_min_events=0"])
    again, _ = calibrate(Detector(_MelIsLogit(2), per_class_cfg), {"v": mel},
                         count_windows={"v": windows})
    assert again.inference.class_thresholds == (0.3, 0.1)  # B alone: only 0.10 counts both


def test_count_calibration_without_per_class_gives_every_class_the_pooled_threshold():
    """The data of the first count test: per class (0.30, 0.15); pooled, the summed error is
    2 at 0.10-0.25 (A's distractors), 1 at 0.30-0.45 (B misses its 0.15 peak) and more above,
    so every class takes 0.30, the tied value nearest the configured 0.2."""
    cfg = _config("classes=[A, B]", "inference.threshold=0.2", "inference.calibrate_with=counts",
                  "inference.calibrate_min_events=0", "inference.calibrate_per_class=false")
    mel = _mel(cfg, 6, [{0.5: 0.62, 2.2: 0.62, 4.1: 0.62, 1.3: 0.27, 3.3: 0.27},
                        {0.7: 0.5, 2.9: 0.15, 5.0: 0.5}])
    windows = [CountWindow("v", 0.0, 3.0, {"A": 2, "B": 2}),
               CountWindow("v", 3.0, 6.0, {"A": 1, "B": 1})]
    new_cfg, info = calibrate(Detector(_MelIsLogit(2), cfg), {"v": mel},
                              count_windows={"v": windows})
    assert new_cfg.inference.class_thresholds == (0.3, 0.3)
    assert info["pooled_threshold"] == 0.3
    assert info["valid_count_abs_error"] == {"A": 0.0, "B": 1.0}


def test_timestamp_calibration_without_per_class_maximises_the_f1_of_all_classes_pooled():
    """A: 4 events at 0.8 and 2 distractors at 0.33 (alone: 0.35); B: 4 events at 0.3 (alone:
    0.10-0.25). Pooled, 0.10-0.25 find 8 of 8 with 2 false (F1 16/18) and 0.35 and up find 4
    (F1 8/12), so both classes take the grid's first best, 0.10."""
    truth = [0.5, 1.5, 2.5, 3.5]
    peaks = [{**{t: 0.8 for t in truth}, 1.0: 0.33, 3.0: 0.33}, {t + 0.2: 0.3 for t in truth}]
    events = {"v": [(t, "A") for t in truth] + [(t + 0.2, "B") for t in truth]}
    for per_class, expected in (("true", (0.35, 0.1)), ("false", (0.1, 0.1))):
        cfg = _config("classes=[A, B]", "inference.threshold=0.5",
                      f"inference.calibrate_per_class={per_class}")
        new_cfg, info = calibrate_from_timestamps(Detector(_MelIsLogit(2), cfg),
                                                  {"v": _mel(cfg, 5, peaks)}, events)
        assert new_cfg.inference.class_thresholds == expected
    assert info["valid_f1_per_class"] == {"A": round(16 / 18, 4), "B": round(16 / 18, 4)}


def test_calibrate_min_events_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="calibrate_min_events"):
        _config("inference.calibrate_min_events=-1")


def test_auto_calibration_uses_counts_when_validation_has_no_timestamps():
    cfg = _config("classes=[A]", "inference.calibrate_with=auto")
    mel = _mel(cfg, 3, [{1.0: 0.5}])
    windows = {"v": [CountWindow("v", 0.0, 3.0, {"A": 1})]}
    det = Detector(_MelIsLogit(1), cfg)
    _, info = calibrate(det, {"v": mel}, events={"v": None}, count_windows=windows)
    assert info["source"].startswith("validation counts")
    _, info = calibrate(det, {"v": mel}, events={}, count_windows={})
    assert info["source"] == "none (no validation counts)"
    off = _config("classes=[A]", "inference.calibrate_offset=false",
                  "inference.calibrate_threshold=false")
    _, info = calibrate(Detector(_MelIsLogit(1), off), {"v": mel}, count_windows=windows)
    assert info["source"] == "none (disabled)"


def test_timestamp_calibration_recovers_a_constant_lag_and_the_best_threshold():
    """Detections 40 ms late everywhere: the offset is -0.04 s (to 1 frame). True events peak at
    0.8, distractors at 0.33: F1 is 1 from threshold 0.35 upwards, the grid's first best."""
    cfg = _config("classes=[A]", "inference.threshold=0.5")
    fr = cfg.features.frame_rate
    truth = [0.5, 1.5, 2.5, 3.5]
    lag = 0.04
    mel = _mel(cfg, 5, [{**{t + lag: 0.8 for t in truth}, 1.0: 0.33, 3.0: 0.33}])
    new_cfg, info = calibrate_from_timestamps(Detector(_MelIsLogit(1), cfg), {"v": mel},
                                              {"v": [(t, "A") for t in truth]})
    (offset,) = new_cfg.inference.class_offsets_s
    assert offset == pytest.approx(-lag, abs=0.6 / fr)
    assert new_cfg.inference.class_thresholds == (0.35,)
    assert info["valid_f1_per_class"] == {"A": 1.0}
    det = Detector(_MelIsLogit(1), new_cfg)
    times = det.events_from_probabilities(det.probabilities_from_features(mel)).per_class()[0]
    np.testing.assert_allclose(times, truth, atol=1.01 / fr)


@pytest.mark.parametrize(("settings", "source"), [
    (["supervision.labels=counts", "loss.name=loco"], "counts"),
    (["supervision.labels=onsets", "loss.name=loco"], "counts"),
    (["supervision.labels=onsets", "loss.name=softloc"], "counts"),
    (["supervision.labels=onsets", "loss.name=softloc", "loss.softness_ms=0"], "timestamps"),
    (["supervision.labels=onsets", "loss.name=bce"], "timestamps"),
    (["supervision.labels=onsets", "loss.name=bce", "supervision.label_noise=normal:50ms"],
     "counts"),
    (["supervision.labels=mixed", "loss.name=softloc"], "counts"),
    (["supervision.labels=onsets", "loss.name=loco", "inference.calibrate_with=timestamps"],
     "timestamps"),
    (["supervision.labels=onsets", "loss.name=bce", "inference.calibrate_with=counts"], "counts"),
])
def test_calibration_source_is_counts_whenever_validation_timestamps_may_be_noisy(settings,
                                                                                 source):
    # drums: calibrate_with auto (the demo preset asks for counts explicitly)
    assert calibration_source(apply_overrides(load_preset("drums"), settings)) == source


def test_a_noisy_label_run_calibrates_from_counts_even_with_validation_timestamps():
    cfg = _config("classes=[A]", "supervision.labels=onsets", "loss.name=bce",
                  "supervision.label_noise=normal:100ms", "inference.calibrate_with=auto")
    mel = _mel(cfg, 3, [{1.0: 0.5}])
    windows = {"v": [CountWindow("v", 0.0, 3.0, {"A": 1})]}
    new_cfg, info = calibrate(Detector(_MelIsLogit(1), cfg), {"v": mel},
                              events={"v": [(1.0, "A")]}, count_windows=windows)
    assert info["source"].startswith("validation counts")
    assert new_cfg.inference.class_offsets_s == ()  # a count carries no time


def _tones(cfg, onsets, seconds, seed=0):
    """Audio of decaying harmonic tones starting at `onsets` (s), quiet noise between."""
    rng = np.random.default_rng(seed)
    sr = cfg.sample_rate
    x = 1e-3 * rng.standard_normal(int(seconds * sr))
    t = np.arange(int(0.8 * sr)) / sr
    for o in onsets:
        f0 = 110 * 2 ** rng.uniform(0, 4)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * np.exp(-t / 0.3)
        i = round(o * sr)
        x[i:i + len(tone)] += rng.uniform(0.2, 1) * tone[: len(x) - i]
    return x.astype(np.float32)


@pytest.mark.parametrize("hop, win", [(441, 2048), (110, 551)])  # 50 and 200 frames/s
def test_onset_alignment_offset_undoes_a_constant_detection_latency(hop, win):
    cfg = FrontEndConfig(sample_rate=22050, n_fft=4096, win_length=win, hop_length=hop,
                         n_mels=64)
    onsets = np.sort(np.random.default_rng(1).uniform(0.5, 19.5, 40))
    strength = onset_strength(mel_power(_tones(cfg, onsets, 20), cfg))[0].numpy()
    fps = cfg.frame_rate

    def offset(latency):  # detections on the frame grid, as a decoder gives them
        return onset_alignment_offset([np.round((onsets + latency) * fps) / fps], [strength], fps)

    on_time = offset(0.0)
    assert abs(on_time) < 0.02  # what the strength's own bias allows for these sharp attacks
    for latency in (0.03, -0.02, 0.06):
        assert offset(latency) - on_time == pytest.approx(-latency, abs=0.004)


def test_onset_alignment_offset_interpolates_between_frames_and_pools_files():
    """Strength = a parabola peaking 0.3 frames after each event: the lag curve is that
    parabola, so the answer is exact; two files pool their detections."""
    fps, n = 100.0, 400
    grid = np.arange(n)
    events = [np.array([0.5, 1.5, 2.5]), np.array([1.0, 3.0])]
    strengths = [sum(np.clip(9 - (grid - (t * fps + 0.3)) ** 2, 0, None) for t in ev)
                 for ev in events]
    assert onset_alignment_offset(events, strengths, fps, min_events=5) == \
        pytest.approx(0.003)
    assert onset_alignment_offset(events, strengths, fps, min_events=6) is None


def test_onset_alignment_offset_is_none_when_the_best_lag_is_on_the_search_edge():
    fps = 100.0
    strength = np.linspace(0.0, 1.0, 500)  # rising everywhere: no peak to align to
    times = [np.linspace(1.0, 4.0, 20)]
    assert onset_alignment_offset(times, [strength], fps) is None


def test_onset_alignment_offset_rejects_mismatched_or_bad_input():
    with pytest.raises(ValueError, match="one strength per file"):
        onset_alignment_offset([np.array([1.0])], [], 100.0)
    with pytest.raises(ValueError, match="1-D"):
        onset_alignment_offset([np.array([1.0])], [np.ones((2, 300))], 100.0)
    with pytest.raises(ValueError, match="frame_rate"):
        onset_alignment_offset([np.array([1.0])], [np.ones(300)], 0.0)
    with pytest.raises(ValueError, match="search_s"):
        onset_alignment_offset([np.array([1.0])], [np.ones(300)], 100.0, search_s=-1)


def _late_detector_features(cfg, latency, latency_b=None):
    """A power mel whose bands 0-1 are the stub network's p(t) (A peaks `latency` after each
    sound; B, when `latency_b` is given, `latency_b` after every other sound) and whose other
    bands hold the sounds: jumps at the onsets, then decay."""
    fr = cfg.features.frame_rate
    n = int(10 * fr)
    onsets = np.arange(40, n - 50, 45) / fr  # on frames, so the answer is whole frames
    mel = torch.full((cfg.features.n_mels, int(10 * fr)), 0.01)
    frames = np.arange(mel.shape[1]) / fr
    for i, o in enumerate(onsets):
        after = frames >= o
        mel[2:, after] += torch.tensor(np.exp(-(frames[after] - o) / 0.1), dtype=torch.float32)
        if latency_b is not None and i % 2:
            mel[1, round((o + latency_b) * fr)] = 0.6
        else:
            mel[0, round((o + latency) * fr)] = 0.6
    n_b = len(onsets) // 2 if latency_b is not None else 0
    windows = [CountWindow("v", 0.0, 10.0, {"A": len(onsets) - n_b, "B": n_b})]
    return mel, windows


@pytest.mark.parametrize("mode", ["pooled", "per-class"])
def test_count_calibration_aligns_late_detections_with_the_onsets_when_asked(mode):
    cfg = _config("classes=[A, B]", "inference.calibrate_with=counts",
                  f"inference.align_to_onsets={mode}")
    mel, windows = _late_detector_features(cfg, 6 / cfg.features.frame_rate)
    new_cfg, info = calibrate(Detector(_MelIsLogit(2), cfg), {"v": mel},
                              count_windows={"v": windows})
    offset_a, offset_b = new_cfg.inference.class_offsets_s
    assert offset_a == pytest.approx(-6 / cfg.features.frame_rate, abs=1e-4)
    assert offset_b == offset_a  # B detects nothing: it takes the pooled offset
    assert info["onset_offset_s"] == pytest.approx(offset_a)
    assert info["align_to_onsets"] == mode


def test_per_class_alignment_gives_each_class_its_own_offset_and_pooled_one_for_all():
    cfg = _config("classes=[A, B]", "inference.calibrate_with=counts",
                  "inference.calibrate_min_events=5")
    fr = cfg.features.frame_rate
    mel, windows = _late_detector_features(cfg, 6 / fr, latency_b=2 / fr)
    offsets = {}
    for mode in ("per-class", "pooled"):
        det = Detector(_MelIsLogit(2), apply_overrides(cfg, [f"inference.align_to_onsets={mode}"]))
        new_cfg, _ = calibrate(det, {"v": mel}, count_windows={"v": windows})
        offsets[mode] = new_cfg.inference.class_offsets_s
    assert offsets["per-class"] == pytest.approx((-6 / fr, -2 / fr), abs=1e-4)
    pooled_a, pooled_b = offsets["pooled"]
    # A has the most detections: the pooled lag curve peaks at A's lag
    assert pooled_a == pooled_b == pytest.approx(-6 / fr, abs=1e-4)


def test_count_calibration_leaves_offsets_alone_by_default_or_without_calibrate_offset():
    assert InferenceConfig().align_to_onsets == "none"
    for extra in (["inference.align_to_onsets=none"],
                  ["inference.align_to_onsets=pooled", "inference.calibrate_offset=false"]):
        cfg = _config("classes=[A, B]", "inference.calibrate_with=counts", *extra)
        mel, windows = _late_detector_features(cfg, 0.03)
        new_cfg, info = calibrate(Detector(_MelIsLogit(2), cfg), {"v": mel},
                                  count_windows={"v": windows})
        assert new_cfg.inference.class_offsets_s == cfg.inference.class_offsets_s
        assert "onset_offset_s" not in info


def test_align_to_onsets_must_be_none_pooled_or_per_class():
    # YAML reads off/yes as booleans: the names avoid them, and a boolean is refused
    for bad in ("yes", "off", "true", "all"):
        with pytest.raises(ValueError, match="align_to_onsets"):
            _config(f"inference.align_to_onsets={bad}")
    assert _config("inference.align_to_onsets=none").inference.align_to_onsets == "none"


def _peaked_strength(onsets, fps=100.0, n=2000):
    """A strength with a parabola peaking at each onset: the lag curve is exact."""
    grid = np.arange(n)
    return sum(np.clip(9 - (grid - t * fps) ** 2, 0, None) for t in onsets)


def test_onset_alignment_offsets_per_class_recovers_each_class_latency():
    """Class 0 fires 30 ms early, class 1 20 ms late, on onsets of one strength curve: per
    class each gets its own offset (+30, -20 ms); pooled, both get the one offset of all
    detections, which serves neither; each equals onset_alignment_offset on its events."""
    rng = np.random.default_rng(0)
    onsets = [np.sort(rng.uniform(1.0, 18.0, 30)), np.sort(rng.uniform(1.0, 18.0, 30))]
    strength = _peaked_strength(np.concatenate(onsets))
    times = [[onsets[0] - 0.03, onsets[1] + 0.02]]
    offsets, pooled = onset_alignment_offsets(times, [strength], 100.0, mode="per-class")
    assert offsets == pytest.approx([0.03, -0.02], abs=0.002)
    assert pooled == pytest.approx(onset_alignment_offset(
        [np.concatenate(times[0])], [strength], 100.0), abs=1e-12)
    same, pooled_again = onset_alignment_offsets(times, [strength], 100.0, mode="pooled")
    assert pooled_again == pooled and same == [round(pooled, 4)] * 2


def test_onset_alignment_offsets_fall_back_to_pooled_for_a_class_with_few_events():
    rng = np.random.default_rng(1)
    many, few = np.sort(rng.uniform(1.0, 18.0, 30)), np.array([5.0, 9.0])
    strength = _peaked_strength(np.concatenate([many, few]))
    offsets, pooled = onset_alignment_offsets([[many - 0.03, few + 0.02]], [strength], 100.0,
                                              min_events=10)
    assert offsets[0] == pytest.approx(0.03, abs=0.002)
    assert offsets[1] == round(pooled, 4)  # two detections: no offset of its own
    empty, none = onset_alignment_offsets([[np.zeros(0), np.zeros(0)]], [strength], 100.0)
    assert none is None and empty == [0.0, 0.0]


def test_onset_alignment_offsets_reject_bad_mode_and_ragged_classes():
    s = np.zeros(100)
    with pytest.raises(ValueError, match="`mode` must be 'pooled' or 'per-class'"):
        onset_alignment_offsets([[np.zeros(0)]], [s], 100.0, mode="none")
    with pytest.raises(ValueError, match="same classes, got \\[1, 2\\] classes"):
        onset_alignment_offsets([[np.zeros(0)], [np.zeros(0), np.zeros(0)]], [s, s], 100.0)
