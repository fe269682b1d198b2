"""Label-noise study machinery: loss table -> run configs, noise specs, decoders, results CSV."""

import numpy as np
import pytest

from softloc.config import LOSS_NAMES, apply_overrides, load_preset
from softloc.experiments.noise_study import (
    LOSSES,
    NOISE_KINDS,
    cell_config,
    count_thresholds,
    decode,
    decoder_of,
    noise_spec,
)
from softloc.losses import AlphaSchedule, build_loss
from softloc.noise import parse_noise


def test_every_loss_maps_to_a_known_config_and_alpha():
    n = 300
    base = apply_overrides(load_preset("demo"), [f"train.max_steps={n}"])
    missing = [name for name, spec in LOSSES.items() if spec.loss not in LOSS_NAMES]
    assert not missing, f"losses {missing} are not in softloc.config.LOSS_NAMES"
    for name, spec in LOSSES.items():
        cfg = cell_config(base, name, seed=3)
        assert cfg.loss.name == spec.loss and cfg.train.seed == 3
        assert cfg.train.val_every_n_steps == n
        # the schedule the registry builds for the run (relative ramp: fractions of n)
        sched = AlphaSchedule(start=round(cfg.loss.alpha_start_fraction * n),
                              ramp=round(cfg.loss.alpha_ramp_fraction * n),
                              floor=cfg.loss.alpha_min, ceiling=cfg.loss.alpha_max)
        if spec.loss == "softloc":
            built = build_loss(cfg.loss, frame_rate=100.0, max_steps=n).alpha
            assert [built(s) for s in range(0, n + 1, 10)] == [sched(s)
                                                                 for s in range(0, n + 1, 10)]
        if name == "mc":
            assert sched(0) == sched(n) == 1.0
        elif name == "softloc":
            # the drum schedule (0.2 up to 1/3 of the run, 0.9 from 4/5) rescaled to n steps
            assert sched(0) == sched(n // 3) == pytest.approx(0.2)
            assert sched(int(0.8 * n)) == pytest.approx(0.9)
            assert sched(int(0.55 * n)) == pytest.approx(0.2 + 0.7 * (0.55 - 1 / 3) / (0.8 - 1 / 3),
                                                          abs=0.01)
        if spec.softness_ms is not None:
            assert cfg.loss.softness_ms == spec.softness_ms
    with pytest.raises(ValueError, match=r"cell_config: unknown loss 'focal'"):
        cell_config(base, "focal", seed=0)


def test_each_loss_is_decoded_as_softloc_table_1_does():
    # SoftLoc §5.1 / facts §5.4: threshold decoding for the losses that concentrate p(t) on
    # single frames, peak picking for heat maps, local-mass peaks for the SLL ablation
    expected = {"softloc": "threshold", "bce": "threshold", "smoothed-bce": "peaks",
                "one-sided": "peaks-normalized", "bootstrap": "threshold", "sll": "mass-peaks",
                "mc": "threshold", "loco": "threshold"}
    base = load_preset("demo")
    assert {name: decoder_of(cell_config(base, name, seed=0)) for name in LOSSES} == expected


def test_cell_config_applies_softness_threads_and_overrides_last():
    base = load_preset("demo")
    cfg = cell_config(base, "smoothed-bce", seed=1, softness_ms=40.0, threads=2,
                      loss_overrides=["train.learning_rate=0.002", "loss.softness_ms=30"])
    assert cfg.train.num_threads == 2 and cfg.train.learning_rate == 0.002
    assert cfg.loss.softness_ms == 30.0  # the override comes after the explicit softness
    assert cell_config(base, "smoothed-bce", seed=1, softness_ms=40.0).loss.softness_ms == 40.0
    assert cell_config(base, "bce", seed=1).train.learning_rate == base.train.learning_rate


def test_noise_specs_parse_for_every_kind():
    for kind in NOISE_KINDS:
        model = parse_noise(noise_spec(kind, 50.0), frame_rate=200.0)
        assert type(model).__name__.lower().startswith(kind.replace("-", "")[:5])
    assert noise_spec("skew-normal", 20, skew_shape=-2) == "skew-normal:-2:20ms"
    assert noise_spec("normal", 100.0) == "normal:100ms"
    with pytest.raises(ValueError, match=r"noise_spec: `kind` must be one of"):
        noise_spec("uniform", 10)
    with pytest.raises(ValueError, match=r"noise_spec: `magnitude_ms` must be a number >= 0"):
        noise_spec("normal", -1)


def test_decoders_find_spikes_heat_maps_and_dispersed_mass():
    base = load_preset("demo")
    fr = base.features.frame_rate
    cfg = {name: cell_config(base, name, seed=0) for name in LOSSES}
    t = 400
    spikes = np.zeros((1, t))
    spikes[0, [50, 200]] = 0.9
    assert decode(spikes, cfg["softloc"]).frames.tolist() == [50, 200]
    # mass spread as 0.25 over 4 frames: no frame passes a threshold, the local mass (1.0) does
    spread = np.zeros((1, t))
    spread[0, 98:102] = 0.25
    assert len(decode(spread, cfg["bce"])) == 0
    ev = decode(spread, cfg["sll"])
    assert len(ev) == 1 and abs(int(ev.frames[0]) - 99.5) <= 1.5
    # a peak-1 Gaussian heat map -> one peak at its centre; the offset is added to the times
    heat = np.exp(-0.5 * ((np.arange(t) - 300) / 5.0) ** 2)[None]
    ev = decode(heat, cfg["smoothed-bce"], time_offset_s=0.01)
    assert ev.frames.tolist() == [300]
    assert ev.times_s[0] == pytest.approx(300 / fr + 0.01)
    # a sum-normalised Gaussian of the preset's softness peaks far below 0.5; the one-sided
    # decoder rescales it by the kernel's peak (1 / (sqrt(2 pi) sigma)) before picking
    sigma = cfg["one-sided"].loss.softness_ms / 1000 * fr
    norm = np.exp(-0.5 * ((np.arange(t) - 120) / sigma) ** 2)[None] / (np.sqrt(2 * np.pi) * sigma)
    assert norm.max() < 0.35
    assert decode(norm, cfg["one-sided"]).frames.tolist() == [120]


def test_threshold_decoding_uses_the_runs_calibrated_class_thresholds():
    base = apply_overrides(load_preset("demo"), ["classes=[A, B]"])
    fr = base.features.frame_rate
    probs = np.zeros((2, 300))
    probs[0, [40, 140]] = 0.3  # class A: peaks at 0.3
    probs[1, [60, 160, 260]] = 0.3  # class B: the same height
    calibrated = apply_overrides(base, ["inference.class_thresholds=[0.2, 0.5]"])
    ev = decode(probs, cell_config(calibrated, "softloc", seed=0), time_offset_s=0.02)
    assert ev.frames.tolist() == [40, 140] and ev.classes.tolist() == [0, 0]
    assert ev.times_s.tolist() == pytest.approx([40 / fr + 0.02, 140 / fr + 0.02])
    both = apply_overrides(base, ["inference.class_thresholds=[0.2, 0.25]"])
    ev = decode(probs, cell_config(both, "softloc", seed=0))
    assert ev.frames.tolist() == [40, 60, 140, 160, 260]  # sorted by time across classes
    assert ev.classes.tolist() == [0, 1, 0, 1, 1]
    # without calibrated thresholds, inference.threshold (demo: 0.4) for every class
    assert len(decode(probs, cell_config(base, "softloc", seed=0))) == 0


def test_offset_comes_from_the_validation_audio_when_given_else_from_the_noisy_labels():
    from softloc.experiments.noise_study import _score_decoder

    base = apply_overrides(load_preset("demo"), ["classes=[A]",
                                                 "inference.class_thresholds=[0.2]"])
    config = cell_config(base, "softloc", seed=0)
    fr = config.features.frame_rate
    lag = round(0.06 * fr)  # the detector fires 60 ms late: outside +-50 ms
    onsets = np.arange(20, 980, 40)
    probs = np.zeros((1, 1000))
    probs[0, onsets + lag] = 0.9
    strength = np.zeros(1000)
    strength[onsets] = 1.0  # the audio's onsets sit at the true times
    truth = [(f / fr, "A") for f in onsets]
    # noisy labels that happen to follow the detector: they say "no offset"
    noisy = [(f / fr, "A") for f in onsets + lag]
    kwargs = dict(valid_events={"v": noisy}, test_events={"t": truth}, classes=["A"])
    both = {"v": probs, "t": probs}
    from_labels = _score_decoder(both, "threshold", config, **kwargs)
    assert from_labels["time_offset_s"] == pytest.approx(0.0, abs=1e-9)
    assert from_labels["overall"]["f1"] == 0.0
    from_audio = _score_decoder(both, "threshold", config, strengths={"v": strength}, **kwargs)
    assert from_audio["time_offset_s"] == pytest.approx(-lag / fr, abs=0.5 / fr)
    assert from_audio["overall"]["f1"] == 1.0


def _late_detector_config(classes, align):
    """A SoftLoc cell config of the demo preset with ``classes`` calibrated at 0.2, the given
    ``align_to_onsets``; its frame rate and a 60 ms lag in frames (outside +-50 ms)."""
    base = apply_overrides(load_preset("demo"), [
        f"classes=[{', '.join(classes)}]",
        f"inference.class_thresholds=[{', '.join(['0.2'] * len(classes))}]",
        f"inference.align_to_onsets={align}"])
    config = cell_config(base, "softloc", seed=0)
    fr = config.features.frame_rate
    return config, fr, round(0.06 * fr)


@pytest.mark.parametrize("align", ["pooled", "per-class"])
def test_a_per_class_preset_is_scored_with_one_offset_per_class_as_training_calibrates(align):
    """Class A fires 60 ms late, class B 60 ms early (both outside +-50 ms): with the drum
    presets' ``per-class`` alignment each class gets its own offset from the validation audio
    and every note is found; ``pooled`` gives both classes one offset, which can serve only
    one of them."""
    from softloc.experiments.noise_study import _score_decoder

    config, fr, lag = _late_detector_config(["A", "B"], align)
    onsets_a, onsets_b = np.arange(20, 980, 40), np.arange(40, 980, 40)
    probs = np.zeros((2, 1000))
    probs[0, onsets_a + lag] = 0.9
    probs[1, onsets_b - lag] = 0.9
    strength = np.zeros(1000)
    strength[np.concatenate([onsets_a, onsets_b])] = 1.0
    truth = [(f / fr, "A") for f in onsets_a] + [(f / fr, "B") for f in onsets_b]
    result = _score_decoder({"v": probs, "t": probs}, "threshold", config,
                            valid_events={"v": truth}, test_events={"t": truth},
                            classes=["A", "B"], strengths={"v": strength})
    per_class_f1 = sorted(result["per_class"][c]["f1"] for c in ("A", "B"))
    if align == "per-class":
        assert per_class_f1 == [1.0, 1.0]
        # the two offsets (-60, +60 ms) average to ~0, the results column's value
        assert result["time_offset_s"] == pytest.approx(0.0, abs=1.0 / fr)
    else:  # the one offset lines up one class and throws the other 120 ms off
        assert per_class_f1 == [0.0, 1.0]
        assert abs(result["time_offset_s"]) == pytest.approx(0.06, abs=1.0 / fr)


def test_decode_adds_one_offset_per_class_when_given_a_sequence():
    base = apply_overrides(load_preset("demo"), ["classes=[A, B]"])
    config = cell_config(base, "softloc", seed=0)
    fr = config.features.frame_rate
    probs = np.zeros((2, 300))
    probs[0, 100] = probs[1, 100] = 0.9
    one = decode(probs, config, time_offset_s=0.01)
    assert one.times_s.tolist() == pytest.approx([100 / fr + 0.01] * 2)
    per_class = decode(probs, config, time_offset_s=[0.05, -0.05])
    assert per_class.classes.tolist() == [1, 0]  # B now first: sorted by time
    assert per_class.times_s.tolist() == pytest.approx([100 / fr - 0.05, 100 / fr + 0.05])
    assert per_class.frames.tolist() == [100, 100]


@pytest.mark.parametrize("align", ["none", "pooled"])
def test_a_run_that_aligns_to_onsets_is_scored_with_the_offset_of_its_validation_audio(
        align, monkeypatch, tmp_path):
    import softloc.experiments.noise_study as study
    from softloc.experiments.noise_study import _score_run

    config, fr, lag = _late_detector_config(["A"], align)
    onsets = np.arange(20, 980, 40)
    probs = np.zeros((1, 1000))
    probs[0, onsets + lag] = 0.9  # fires 60 ms after each sound start

    class Fake:
        def __init__(self):
            self.config = config

        @classmethod
        def load(cls, run_dir):
            return cls()

        def probabilities_from_mel(self, mel):
            return probs

    class Store:  # a power mel whose energy jumps at the onsets and decays
        def get(self, stem, rate):
            env = np.full(1000, 1e-4)
            for f in onsets:
                env[f:f + 30] += np.exp(-np.arange(len(env[f:f + 30])) / 8.0)
            return np.repeat(env[None], 8, axis=0).astype(np.float32)

    monkeypatch.setattr(study, "Detector", Fake)
    truth = [(f / fr, "A") for f in onsets]
    noisy = [(f / fr, "A") for f in onsets + lag]  # labels that follow the detector
    result = _score_run(tmp_path, store=Store(), valid_events={"v": noisy},
                        test_events={"t": truth}, classes=["A"])
    if align == "none":  # from the labels: no offset, every detection 60 ms late
        assert result["time_offset_s"] == pytest.approx(0.0, abs=1e-9)
        assert result["overall"]["f1"] == 0.0
    else:
        assert result["time_offset_s"] == pytest.approx(-lag / fr, abs=1.0 / fr)
        assert result["overall"]["f1"] == 1.0


def _bumps(t: int, frames, height: float, width: float = 4.0) -> np.ndarray:
    x = np.arange(t)
    return sum(height * np.exp(-0.5 * ((x - f) / width) ** 2) for f in frames)


def test_count_thresholds_reproduce_each_files_counts_and_pool_rare_classes():
    base = apply_overrides(load_preset("demo"), ["classes=[A, B]",
                                                 "inference.calibrate_min_events=4"])
    config = cell_config(base, "smoothed-bce", seed=0)
    fr = config.features.frame_rate
    t = 1000
    a = _bumps(t, [100, 300, 500, 700, 900], 0.33) + _bumps(t, [200, 600], 0.12)
    b = _bumps(t, [150, 450], 0.62)  # two events: below calibrate_min_events
    probs = {"v": np.stack([a, b])}
    events = {"v": [(f / fr, "A") for f in (100, 300, 500, 700, 900)]
              + [(f / fr, "B") for f in (150, 450)]}
    # A: 0.15..0.30 find the 5 counted events (0.10 also the 2 bumps, >= 0.35 none): the
    # largest, nearest the peaks decoder's default 0.5; B is pooled: A's errors dominate
    assert count_thresholds(probs, "peaks", config, valid_events=events,
                            classes=["A", "B"]) == [0.3, 0.3]
    off = apply_overrides(config, ["inference.calibrate_per_class=false"])
    assert count_thresholds(probs, "peaks", off, valid_events=events,
                            classes=["A", "B"]) == [0.3, 0.3]
    rich = apply_overrides(config, ["inference.calibrate_min_events=2"])
    # B alone: 0.10..0.60 all find its two events; 0.5 is the default itself
    assert count_thresholds(probs, "peaks", rich, valid_events=events,
                            classes=["A", "B"]) == [0.3, 0.5]
    none = apply_overrides(config, ["inference.calibrate_threshold=false"])
    assert count_thresholds(probs, "peaks", none, valid_events=events, classes=["A", "B"]) is None


def test_peak_decoders_are_scored_with_thresholds_from_the_validation_counts():
    from softloc.experiments.noise_study import _score_decoder

    base = apply_overrides(load_preset("demo"), ["classes=[A]"])
    config = cell_config(base, "smoothed-bce", seed=0)
    fr = config.features.frame_rate
    frames = np.arange(50, 1000, 60)
    heat = {"v": _bumps(1000, frames, 0.3)[None], "t": _bumps(1000, frames, 0.3)[None]}
    truth = [(f / fr, "A") for f in frames]
    kwargs = dict(valid_events={"v": truth}, test_events={"t": truth}, classes=["A"])
    fixed = _score_decoder(heat, "peaks", config, fixed_threshold=True, **kwargs)
    assert fixed["overall"]["n_est"] == 0 and fixed["class_thresholds"] is None
    fitted = _score_decoder(heat, "peaks", config, **kwargs)
    assert fitted["class_thresholds"] == [0.25] and fitted["overall"]["f1"] == 1.0
