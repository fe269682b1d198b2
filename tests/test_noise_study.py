"""Label-noise study machinery: loss table -> run configs, noise specs, decoders, results CSV."""

import numpy as np
import pytest

from softloc.config import LOSS_NAMES, apply_overrides, load_preset
from softloc.experiments.noise_study import (
    LOSSES,
    NOISE_KINDS,
    cell_config,
    decode,
    decoder_of,
    noise_spec,
    read_rows,
    result_columns,
    write_rows,
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


def test_results_csv_round_trips_and_rejects_other_columns(tmp_path):
    columns = result_columns(("loss", "seed"), ("KD", "SD"))
    assert columns == ["loss", "seed", "steps", "precision", "recall", "f1", "f1_class_mean",
                       "f1_mass", "n_ref", "n_est", "time_offset_s", "train_s", "run",
                       "precision_KD", "recall_KD", "f1_KD", "precision_SD", "recall_SD",
                       "f1_SD"]
    path = tmp_path / "r.csv"
    write_rows(path, columns, [{"loss": "bce", "seed": 0, "f1": 1 / 3, "recall": float("nan")}])
    rows = read_rows(path, columns)
    assert rows[0]["loss"] == "bce" and rows[0]["f1"] == "0.333333" and rows[0]["recall"] == ""
    assert read_rows(tmp_path / "none.csv", columns) == []
    with pytest.raises(ValueError, match=r"r.csv:1: columns .* do not match"):
        read_rows(path, columns[:-1])
    path.write_text(",".join(columns) + "\nbce,0\n")
    with pytest.raises(ValueError, match=rf"r.csv:2: expected {len(columns)} fields, got 2"):
        read_rows(path, columns)


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


@pytest.mark.parametrize("align", ["none", "pooled"])
def test_a_run_that_aligns_to_onsets_is_scored_with_the_offset_of_its_validation_audio(
        align, monkeypatch, tmp_path):
    import softloc.experiments.noise_study as study
    from softloc.experiments.noise_study import _score_run

    base = apply_overrides(load_preset("demo"), [
        "classes=[A]", "inference.class_thresholds=[0.2]",
        f"inference.align_to_onsets={align}"])
    config = cell_config(base, "softloc", seed=0)
    fr = config.features.frame_rate
    lag = round(0.06 * fr)
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
