"""The robustness study and softness sweep on a tiny synthetic drum set (few training steps)."""

import argparse
import csv
import math

import numpy as np
import pytest

from softloc.cli import main
from softloc.config import LOSS_NAMES, load_preset
from softloc.data import read_annotation_file, synthesize_drum_dataset
from softloc.experiments import robustness as rb
from softloc.losses import AlphaSchedule
from softloc.noise import parse_noise

# A front end and network small enough for a CI run of a few seconds per training.
SMALL = (
    "features.sample_rate=22050", "features.n_fft=1024", "features.win_length=551",
    "features.hop_length=110", "features.n_mels=40", "model.conv_filters=[4,4,4,4]",
    "model.pool_sizes=[2,2,2,3]", "model.lstm_units=8", "model.hidden_units=8",
    "data.rate_factors=[1.0]", "data.batch_size=4", "train.num_threads=1",
    "inference.batch_size=16",
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness") / "data"
    synthesize_drum_dataset(root, seed=0, n_train_files=3, n_valid_files=1, n_test_files=1,
                            file_duration_s=8.0, n_train_kits=2, n_valid_kits=1, n_test_kits=1,
                            sample_rate=22050)
    return root


def _parser():
    parser = argparse.ArgumentParser(prog="softloc experiment")
    rb.register_cli(parser.add_subparsers(dest="experiment", required=True))
    return parser


def _cli(*argv):
    args = _parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def grid(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "out"
    sets = [x for o in SMALL for x in ("--set", o)]
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out", str(out),
               "--preset", "demo", "--sigmas", "0,100", "--losses", "softloc,bce", "--seeds", "1",
               "--max-steps", "2", *sets])
    assert rc == 0
    return out, sets


def test_grid_writes_one_row_per_cell_with_all_columns(grid):
    out, _ = grid
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["loss"], float(r["sigma_ms"]), int(r["seed"])) for r in rows) == [
        ("bce", 0.0, 0), ("bce", 100.0, 0), ("softloc", 0.0, 0), ("softloc", 100.0, 0)]
    expected = list(rb._BASE_COLUMNS) + [f"{k}_{c}" for c in ("HH", "KD", "SD")
                                         for k in ("precision", "recall", "f1")]
    assert list(rows[0]) == expected
    for r in rows:
        assert r["noise"] == "normal" and r["steps"] == "2"
        for key in ("recall", "f1", "f1_HH", "f1_KD", "f1_SD"):
            assert 0.0 <= float(r[key]) <= 1.0
        assert int(r["n_ref"]) > 0
        assert (out / r["run"] / "model.pt").is_file()
        assert not (out / r["run"] / "checkpoints").exists()


def test_grid_writes_table_and_png(grid):
    out, _ = grid
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "results.md").read_text()
    assert "| loss | σ = 0 ms | σ = 100 ms | Δ |" in table
    assert "| softloc |" in table and "| bce |" in table


def test_rerun_skips_finished_cells_and_keeps_csv(grid, tiny_data):
    out, sets = grid
    before = (out / "results.csv").read_bytes()
    result = rb.run_robustness(tiny_data, out, preset="demo", sigmas_ms=(0, 100),
                               losses=("softloc", "bce"), seeds=1, max_steps=2, overrides=SMALL,
                               verbose=False)
    assert (result.trained, result.skipped) == (0, 4)
    assert (out / "results.csv").read_bytes() == before


def test_rerun_with_other_settings_is_refused(grid, tiny_data):
    out, _ = grid
    with pytest.raises(ValueError, match=r"other settings \(max_steps: 2 there, 5 now\)"):
        rb.run_robustness(tiny_data, out, preset="demo", sigmas_ms=(0,), losses=("bce",),
                          seeds=1, max_steps=5, overrides=SMALL, verbose=False)


def test_train_and_valid_labels_perturbed_test_labels_absent(grid, tiny_data):
    out, _ = grid
    train = (tiny_data / "splits" / "train.txt").read_text().split()
    valid = (tiny_data / "splits" / "valid.txt").read_text().split()
    test = (tiny_data / "splits" / "test.txt").read_text().split()
    clean_dir, noisy_dir = out / "labels" / "normal0ms_seed0", out / "labels" / "normal100ms_seed0"
    for folder in (clean_dir, noisy_dir):
        assert sorted(p.stem for p in folder.glob("*.txt")) == sorted(train + valid)
        assert not any((folder / f"{s}.txt").exists() for s in test)
    moved = []
    for stem in train + valid:
        clean = read_annotation_file(tiny_data / "annotations" / f"{stem}.txt")
        zero = read_annotation_file(clean_dir / f"{stem}.txt")
        noisy = read_annotation_file(noisy_dir / f"{stem}.txt")
        assert [lab for _, lab in zero] == [lab for _, lab in clean]
        np.testing.assert_allclose([t for t, _ in zero], [t for t, _ in clean], atol=1e-6)
        assert len(noisy) == len(clean)
        assert sorted(lab for _, lab in noisy) == sorted(lab for _, lab in clean)
        for c in ("HH", "KD", "SD"):
            a = np.array([t for t, lab in clean if lab == c])
            b = np.array([t for t, lab in noisy if lab == c])
            moved.append(np.abs(np.sort(a) - np.sort(b)).mean() if a.size else 0.0)
    assert np.mean(moved) > 0.01  # σ = 100 ms moves events by tens of ms


def test_every_loss_maps_to_a_known_config_and_alpha():
    base = load_preset("demo")
    n = 300
    from softloc.config import apply_overrides

    base = apply_overrides(base, [f"train.max_steps={n}"])
    missing = [name for name, spec in rb.LOSSES.items() if spec.loss not in LOSS_NAMES]
    for name, spec in rb.LOSSES.items():
        if name in missing:
            continue
        cfg = rb._cell_config(base, spec, seed=3, softness_ms=None, threads=None)
        assert cfg.loss.name == spec.loss and cfg.train.seed == 3
        assert cfg.train.val_every_n_steps == n
        sched = AlphaSchedule(start=cfg.loss.alpha_start_step, ramp=cfg.loss.alpha_ramp_steps,
                              floor=cfg.loss.alpha_min, ceiling=cfg.loss.alpha_max)
        if name == "sll":
            assert sched(0) == sched(n) == 0.0
        elif name == "mc":
            assert sched(0) == sched(n) == 1.0
        elif name == "softloc":
            # the drum schedule (0.2 up to 1/3 of the run, 0.9 from 4/5) rescaled to n steps
            assert sched(0) == sched(n // 3) == pytest.approx(0.2)
            assert sched(int(0.8 * n)) == pytest.approx(0.9)
            assert sched(int(0.55 * n)) == pytest.approx(0.2 + 0.7 * (0.55 - 1 / 3) / (0.8 - 1 / 3),
                                                          abs=0.01)
        if spec.softness_ms is not None:
            assert cfg.loss.softness_ms == spec.softness_ms
    assert not missing, f"losses {missing} are not in softloc.config.LOSS_NAMES"


def test_noise_specs_parse_for_every_kind():
    for kind in rb.NOISE_KINDS:
        model = parse_noise(rb.noise_spec(kind, 50.0), frame_rate=200.0)
        assert type(model).__name__.lower().startswith(kind.replace("-", "")[:5])
    assert rb.noise_spec("skew-normal", 20, skew_shape=-2) == "skew-normal:-2:20ms"
    with pytest.raises(ValueError, match=r"noise_spec: `kind` must be one of"):
        rb.noise_spec("uniform", 10)


def test_decoders_find_spikes_heat_maps_and_dispersed_mass():
    cfg = load_preset("demo")
    fr = cfg.features.frame_rate
    t = 400
    spikes = np.zeros((1, t))
    spikes[0, [50, 200]] = 0.9
    ev = rb._decode(spikes, rb.LOSSES["softloc"], cfg, 0.0)
    assert ev.frames.tolist() == [50, 200]
    # mass spread as 0.25 over 4 frames: no frame passes a threshold, the local mass (1.0) does
    spread = np.zeros((1, t))
    spread[0, 98:102] = 0.25
    assert len(rb._decode(spread, rb.LOSSES["bce"], cfg, 0.0)) == 0
    ev = rb._decode(spread, rb.LOSSES["sll"], cfg, 0.0)
    assert len(ev) == 1 and abs(int(ev.frames[0]) - 99.5) <= 1.5
    # a peak-1 Gaussian heat map -> one peak at its centre; offset is added to the times
    heat = np.exp(-0.5 * ((np.arange(t) - 300) / 5.0) ** 2)[None]
    ev = rb._decode(heat, rb.LOSSES["smoothed-bce"], cfg, 0.01)
    assert ev.frames.tolist() == [300]
    assert ev.times_s[0] == pytest.approx(300 / fr + 0.01)


def test_table_reports_mean_std_and_change():
    rows = [{"loss": "bce", "sigma_ms": s, "seed": k, "f1": f}
            for s, k, f in ((0, 0, 0.9), (0, 1, 0.8), (100, 0, 0.5), (100, 1, math.nan))]
    rows.append({"loss": "softloc", "sigma_ms": "0", "seed": "0", "f1": "0.7"})
    table = rb.robustness_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| loss | σ = 0 ms | σ = 100 ms | Δ |"
    assert lines[2].startswith("| softloc | 70.0 | – |")
    std = 100 * np.std([0.9, 0.8])
    assert lines[3] == f"| bce | 85.0 ± {std:.1f} (2) | 50.0 | -35.0 |"


def test_bad_arguments_are_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match=r"unknown loss focal; expected names from softloc"):
        rb.run_robustness(tiny_data, tmp_path / "x", losses=("softloc", "focal"))
    with pytest.raises(ValueError, match=r"`noise` must be one of"):
        rb.run_robustness(tiny_data, tmp_path / "x", noise="gauss")
    with pytest.raises(ValueError, match=r"`sigmas_ms` must be finite numbers >= 0"):
        rb.run_robustness(tiny_data, tmp_path / "x", sigmas_ms=(-5,))
    with pytest.raises(ValueError, match=r"--sigmas: cannot read 'a' as float"):
        _cli("robustness", "--data", str(tiny_data), "--out", str(tmp_path / "y"),
             "--sigmas", "0,a")
    nosplit = tmp_path / "nosplit"
    (nosplit / "audio").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"splits/ not found"):
        rb.run_robustness(nosplit, tmp_path / "z", preset="demo")


def test_softness_sweep_writes_rows_surface_and_resumes(tiny_data, tmp_path):
    out = tmp_path / "sweep"
    kwargs = dict(preset="demo", n_runs=2, sigma_range_ms=(0.0, 80.0),
                  softness_range_ms=(10.0, 150.0), max_steps=2, overrides=SMALL, verbose=False)
    result = rb.run_softness_sweep(tiny_data, out, **kwargs)
    assert (result.trained, result.skipped) == (2, 0)
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["run_id"]) for r in rows] == [0, 1]
    for r in rows:
        assert 0.0 <= float(r["sigma_ms"]) <= 80.0 and 10.0 <= float(r["softness_ms"]) <= 150.0
        assert 0.0 <= float(r["f1"]) <= 1.0
    assert (out / "softness_sweep.png").read_bytes()[:4] == b"\x89PNG"
    again = rb.run_softness_sweep(tiny_data, out, **dict(kwargs, n_runs=2))
    assert (again.trained, again.skipped) == (0, 2)


def test_surface_is_the_nadaraya_watson_estimate(tmp_path):
    rows = [{"sigma_ms": s, "softness_ms": h, "f1": f}
            for s, h, f in ((10, 20, 0.9), (80, 20, 0.5), (50, 140, 0.8))]
    surface = rb.plot_softness_surface(rows, tmp_path / "s.png", bandwidth_ms=30.0,
                                       sigma_range_ms=(0, 100), softness_range_ms=(0, 150),
                                       n_grid=11)
    assert surface.shape == (11, 11)
    # grid point (sigma=10, softness=15) vs a direct Gaussian-weighted mean
    pts = np.array([[10, 20], [80, 20], [50, 140]], float)
    w = np.exp(-0.5 * (((pts - [10.0, 15.0]) / 30.0) ** 2).sum(1))
    assert surface[1, 1] == pytest.approx(100 * (w @ [0.9, 0.5, 0.8]) / w.sum())
    assert (tmp_path / "s.png").is_file()


def test_per_loss_overrides_apply_to_that_loss_only():
    base = load_preset("demo")
    per = rb._parse_loss_overrides(
        "f", ["bce:train.learning_rate=0.002", "bce:model.input_scale=1"])
    assert per == {"bce": ["train.learning_rate=0.002", "model.input_scale=1"]}
    bce = rb._cell_config(base, rb.LOSSES["bce"], seed=0, softness_ms=None, threads=None,
                          loss_overrides=per["bce"])
    soft = rb._cell_config(base, rb.LOSSES["softloc"], seed=0, softness_ms=None, threads=None,
                           loss_overrides=per.get("softloc", ()))
    assert bce.train.learning_rate == 0.002 and bce.model.input_scale == 1.0
    assert soft.train.learning_rate == base.train.learning_rate
    with pytest.raises(ValueError, match=r"f: per-loss override 'focal:x=1': expected "
                                         r"'LOSS:dotted.key=value'"):
        rb._parse_loss_overrides("f", ["focal:x=1"])
