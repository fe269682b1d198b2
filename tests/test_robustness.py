"""The robustness study on a tiny synthetic drum set (few training steps), through the CLI."""

import csv
import math

import numpy as np
import pytest

from softloc.cli import main
from softloc.data import read_annotation_file, synthesize_drum_dataset
from softloc.experiments import robustness as rb

# A front end and network small enough for a CI run of a few seconds per training.
SMALL = (
    "features.sample_rate=22050", "features.n_fft=1024", "features.win_length=551",
    "features.hop_length=110", "features.n_mels=40", "model.conv_filters=[4,4,4,4]",
    "model.pool_sizes=[2,2,2,3]", "model.lstm_units=8", "model.hidden_units=8",
    "data.rate_factors=[1.0]", "data.batch_size=4", "train.num_threads=1",
    "inference.batch_size=16",
    # a threshold below the initial p(t) (LoCo eq. 15 prior), so 2-step runs detect something,
    # kept (not calibrated: the calibration grid starts at 0.1)
    "inference.threshold=0.0005", "inference.calibrate_threshold=false",
)
CLASSES = ("HH", "KD", "SD")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness") / "data"
    synthesize_drum_dataset(root, seed=0, n_train_files=3, n_valid_files=1, n_test_files=1,
                            file_duration_s=8.0, n_train_kits=2, n_valid_kits=1, n_test_kits=1,
                            sample_rate=22050)
    return root


@pytest.fixture(scope="module")
def grid(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "out"
    sets = [x for o in SMALL for x in ("--set", o)]
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out", str(out),
               "--preset", "demo", "--sigmas", "0,100", "--losses", "softloc,bce", "--seeds", "1",
               "--max-steps", "2", *sets])
    assert rc == 0
    return out, sets


def _test_events(root):
    """Reference events of the test split, read independently of the study's code."""
    events = []
    for stem in (root / "splits" / "test.txt").read_text().split():
        for line in (root / "annotations" / f"{stem}.txt").read_text().splitlines():
            if line.strip():
                events.append(line.split()[1])
    return events


def _value(cell):
    """A results.csv cell as a float; an empty cell (an undefined ratio) is NaN."""
    return float(cell) if cell != "" else math.nan


def _check_scores(precision, recall, f1, n_ref, n_est):
    """P, R and F1 of pooled matching agree with one integer number of true positives;
    precision is undefined (an empty cell) exactly when nothing was detected."""
    tp = recall * n_ref
    assert tp == pytest.approx(round(tp), abs=1e-4)
    if n_est:
        assert precision * n_est == pytest.approx(tp, abs=1e-4)
    else:
        assert math.isnan(precision)
    assert f1 == pytest.approx(2 * tp / (n_ref + n_est) if n_ref + n_est else 0.0, abs=1e-5)


def test_grid_writes_one_row_per_cell_with_scores_of_the_clean_test_labels(grid, tiny_data):
    out, _ = grid
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["loss"], float(r["sigma_ms"]), int(r["seed"])) for r in rows) == [
        ("bce", 0.0, 0), ("bce", 100.0, 0), ("softloc", 0.0, 0), ("softloc", 100.0, 0)]
    expected = ["loss", "noise", "sigma_ms", "seed", "steps", "precision", "recall", "f1",
                "f1_class_mean", "f1_mass", "n_ref", "n_est", "time_offset_s", "train_s",
                "run"] + [f"{k}_{c}" for c in CLASSES for k in ("precision", "recall", "f1")]
    assert list(rows[0]) == expected
    refs = _test_events(tiny_data)
    for r in rows:
        assert r["noise"] == "normal" and r["steps"] == "2"
        assert int(r["n_ref"]) == len(refs) > 0  # scored on the clean test split, all of it
        assert int(r["n_est"]) > 0
        _check_scores(_value(r["precision"]), _value(r["recall"]), _value(r["f1"]),
                      int(r["n_ref"]), int(r["n_est"]))
        for c in CLASSES:
            p, rc, f = (_value(r[f"{k}_{c}"]) for k in ("precision", "recall", "f1"))
            expected = 2 * p * rc / (p + rc) if p + rc > 0 else 0.0  # NaN P: nothing detected
            assert f == pytest.approx(0.0 if math.isnan(p) else expected, abs=1e-5)
            assert rc * refs.count(c) == pytest.approx(round(rc * refs.count(c)), abs=1e-4)
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
        for c in CLASSES:
            a = np.array([t for t, lab in clean if lab == c])
            b = np.array([t for t, lab in noisy if lab == c])
            moved.append(np.abs(np.sort(a) - np.sort(b)).mean() if a.size else 0.0)
    assert np.mean(moved) > 0.01  # σ = 100 ms moves events by tens of ms


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
    curves = rb.robustness_curves(rows)
    assert list(curves) == ["softloc", "bce"]  # the order of the loss table
    assert curves["bce"][0.0] == [0.9, 0.8] and math.isnan(curves["bce"][100.0][1])


def test_bad_arguments_are_refused(tiny_data, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown loss focal; expected names from softloc"):
        rb.run_robustness(tiny_data, tmp_path / "x", losses=("softloc", "focal"))
    with pytest.raises(ValueError, match=r"`noise` must be one of"):
        rb.run_robustness(tiny_data, tmp_path / "x", noise="gauss")
    with pytest.raises(ValueError, match=r"`sigmas_ms` must be finite numbers >= 0"):
        rb.run_robustness(tiny_data, tmp_path / "x", sigmas_ms=(-5,))
    with pytest.raises(ValueError, match=r"`loss_overrides` names an unknown loss 'focal'"):
        rb.run_robustness(tiny_data, tmp_path / "x", loss_overrides={"focal": ["x=1"]})
    with pytest.raises(ValueError, match=r"`noise_aware` must be True or False, got 'yes'"):
        rb.run_robustness(tiny_data, tmp_path / "x", noise_aware="yes")
    nosplit = tmp_path / "nosplit"
    (nosplit / "audio").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"splits/ not found"):
        rb.run_robustness(nosplit, tmp_path / "z", preset="demo")
    assert not (tmp_path / "x").exists()
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out",
               str(tmp_path / "y"), "--sigmas", "0,a"])
    assert rc == 2
    assert "softloc experiment robustness: error: --sigmas: cannot read 'a' as float" in \
        capsys.readouterr().err
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out",
               str(tmp_path / "y"), "--loss-set", "bce=1"])
    assert rc == 2
    assert "--loss-set 'bce=1': expected 'LOSS:dotted.key=value'" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_per_loss_overrides_reach_the_runs_of_that_loss_only(tiny_data, tmp_path):
    out = tmp_path / "per_loss"
    result = rb.run_robustness(tiny_data, out, preset="demo", sigmas_ms=(0,),
                               losses=("softloc", "bce"), seeds=1, max_steps=1, overrides=SMALL,
                               loss_overrides={"bce": ["train.learning_rate=0.002"]},
                               verbose=False)
    assert result.trained == 2
    from softloc.config import load_config

    bce = load_config(out / "runs" / "bce_normal0ms_seed0" / "config.yaml")
    soft = load_config(out / "runs" / "softloc_normal0ms_seed0" / "config.yaml")
    assert bce.train.learning_rate == 0.002
    assert soft.train.learning_rate != 0.002


def test_noise_aware_tells_each_sll_run_the_sigma_of_its_cell_and_no_other_loss(
        tiny_data, tmp_path):
    out = tmp_path / "aware"
    sets = [x for o in SMALL for x in ("--set", o)]
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out", str(out),
               "--preset", "demo", "--sigmas", "0,40", "--losses", "softloc,sll,bce",
               "--seeds", "1", "--max-steps", "1", "--noise-aware", "-q", *sets])
    assert rc == 0
    from softloc.config import load_config

    for sigma in (0, 40):
        for loss, told in (("softloc", sigma), ("sll", sigma), ("bce", 0.0)):
            config = load_config(out / "runs" / f"{loss}_normal{sigma}ms_seed0" / "config.yaml")
            assert config.loss.label_noise_ms == told, (loss, sigma)
    # the folder remembers the setting: resuming it without --noise-aware is refused
    with pytest.raises(ValueError, match="noise_aware"):
        rb.run_robustness(tiny_data, out, preset="demo", sigmas_ms=(0, 40),
                          losses=("softloc", "sll", "bce"), seeds=1, max_steps=1,
                          overrides=SMALL, verbose=False)


def test_rescore_scores_finished_runs_again_from_their_models_without_training(
        grid, tiny_data, tmp_path, capsys):
    import shutil

    out, sets = grid
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    with (copy / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    original = [r["f1"] for r in rows]
    for r in rows:
        r["f1"] = "0.123456"  # as if scored by another decoder
    gone = rows[0]["run"]
    (copy / gone / "model.pt").unlink()  # a run without its model stays as it is
    with (copy / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    rc = main(["experiment", "robustness", "--data", str(tiny_data), "--out", str(copy),
               "--preset", "demo",
               "--sigmas", "0,100", "--losses", "softloc,bce", "--seeds", "1",
               "--max-steps", "2", "--rescore", *sets])
    assert rc == 0
    assert "3 finished runs scored again (of 4" in capsys.readouterr().out
    with (copy / "results.csv").open(newline="") as f:
        again = {r["run"]: r["f1"] for r in csv.DictReader(f)}
    assert again[gone] == "0.123456"
    assert [again[r["run"]] for r in rows[1:]] == original[1:]
