"""`softloc experiment segmentation` and `softloc data synth-segments` end to end (CI size):
results.csv columns, resume (no retraining of finished rows), table and figures, models saved."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from softloc.cli import main
from softloc.data.mstcn import list_splits, read_mapping

_TINY = ["--split", "1", "--losses", "ce,softloc", "--shifts-s", "0,2", "--seeds", "1",
         "--fps", "2", "--subsample", "1", "--softness-s", "1", "--epochs", "1",
         "--batch-size", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg") / "data"
    rc = main(["data", "synth-segments", "--out", str(root), "--subjects", "2",
               "--videos-per-subject", "1", "--folds", "2", "--fps", "2", "--features", "6"])
    assert rc == 0
    return root


def test_synth_segments_writes_the_mstcn_layout(tiny_data):
    assert list_splits(tiny_data) == [1, 2]
    classes = read_mapping(tiny_data / "mapping.txt")
    for npy in (tiny_data / "features").glob("*.npy"):
        feats = np.load(npy)
        labels = (tiny_data / "groundTruth" / f"{npy.stem}.txt").read_text().split()
        assert feats.shape == (6, len(labels))  # (D, T), one label per frame
        assert set(labels) <= set(classes)


def _rows(out):
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_experiment_writes_rows_table_figures_and_resumes(tiny_data, tmp_path, capsys):
    out = tmp_path / "exp"
    args = ["experiment", "segmentation", "--data", str(tiny_data), "--out", str(out),
            "--save-models", *_TINY]
    assert main(args) == 0
    rows = _rows(out)
    assert {"loss", "shift_s", "seed", "split", "f1_10", "f1_25", "f1_50", "edit",
            "accuracy"} <= set(rows[0])
    # 2 losses x 2 shifts x 1 seed x 1 fold
    assert sorted((r["loss"], float(r["shift_s"])) for r in rows) == [
        ("ce", 0.0), ("ce", 2.0), ("softloc", 0.0), ("softloc", 2.0)]
    for r in rows:
        for score in ("f1_10", "f1_50", "edit", "accuracy"):
            assert 0.0 <= float(r[score]) <= 1.0
    table = (out / "results.md").read_text()
    assert "δ = 2 s" in table and "softloc (1 s)" in table
    assert (out / "table4.png").stat().st_size > 0
    assert (out / "fig10.png").stat().st_size > 0
    assert len(list((out / "models").glob("*.pt"))) == 4
    assert "F1@10" in capsys.readouterr().out

    # resume: a rerun keeps the finished rows (a marked score survives: not retrained) and
    # trains the one row that is missing
    kept, dropped = [dict(r) for r in rows[:-1]], rows[-1]
    kept[0]["f1_10"] = "0.123"
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    assert main([*args, "--no-figures"]) == 0
    again = _rows(out)
    assert len(again) == 4 and again[0]["f1_10"] == "0.123"
    key = ("loss", "shift_s", "seed", "split")
    back = [r for r in again if all(r[k] == dropped[k] for k in key)]
    assert len(back) == 1 and 0.0 <= float(back[0]["f1_10"]) <= 1.0


def test_changed_settings_are_refused_one_line(tiny_data, tmp_path, capsys):
    out = tmp_path / "exp"
    base = ["experiment", "segmentation", "--data", str(tiny_data), "--out", str(out),
            "--no-figures", *_TINY]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--alpha", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "study.json" in err[0] and "alpha" in err[0]


def test_bad_option_values_are_one_line_errors(tmp_path, capsys):
    rc = main(["experiment", "segmentation", "--out", str(tmp_path / "x"),
               "--losses", "ce,nope"])
    assert rc == 2
    assert "losses" in capsys.readouterr().err


def test_input_projection_flag_reaches_the_saved_model(tiny_data, tmp_path):
    from softloc.inference.features_input import Segmentation

    out = tmp_path / "exp"
    rc = main(["experiment", "segmentation", "--data", str(tiny_data), "--out", str(out),
               "--save-models", "--no-figures", "--split", "1", "--losses", "ce",
               "--shifts-s", "0", "--seeds", "1", "--fps", "2", "--subsample", "1",
               "--epochs", "1", "--batch-size", "1", "--input-projection", "3"])
    assert rc == 0
    (model,) = (out / "models").glob("*.pt")
    net = Segmentation.load(model).model
    assert net.input_projection == 3 and net.project.in_channels == 6


# ------------------------------------------------------------------ detect / evaluate (issue 10)


@pytest.fixture(scope="module")
def seg_run(tiny_data, tmp_path_factory):
    """One saved segmentation network (fold 1) in an experiment folder."""
    out = tmp_path_factory.mktemp("segrun") / "exp"
    rc = main(["experiment", "segmentation", "--data", str(tiny_data), "--out", str(out),
               "--save-models", "--no-figures", "--split", "1", "--losses", "ce",
               "--shifts-s", "0", "--seeds", "1", "--fps", "2", "--subsample", "1",
               "--epochs", "1", "--batch-size", "1"])
    assert rc == 0
    (model,) = (out / "models").glob("*.pt")
    return out, model


def _read_segments(path):
    rows = [ln.split("\t") for ln in path.read_text().splitlines()]
    return [(float(a), float(b), c) for a, b, c in rows]


def _expected(model, npy):
    from softloc.inference.features_input import Segmentation

    return [(round(a, 3), round(b, 3), c) for a, b, c in Segmentation.load(model).segments(npy)]


def test_detect_writes_the_segments_of_the_test_split_of_the_model_fold(tiny_data, seg_run,
                                                                       tmp_path):
    from softloc.data.mstcn import read_bundle

    run, model = seg_run
    out = tmp_path / "det"
    assert main(["detect", "--model", str(run), "--data", str(tiny_data), "--split", "test",
                 "--out", str(out)]) == 0
    videos = read_bundle(tiny_data / "splits" / "test.split1.bundle")
    assert sorted(p.stem for p in out.glob("*.txt")) == sorted(videos)
    for v in videos:
        assert _read_segments(out / f"{v}.txt") == _expected(model,
                                                             tiny_data / "features" / f"{v}.npy")
    # a second run does not replace the files without --overwrite
    assert main(["detect", "--model", str(model), "--data", str(tiny_data), "--split", "test",
                 "--out", str(out)]) == 2


def test_detect_segments_explicit_feature_files(tiny_data, seg_run, tmp_path):
    _, model = seg_run
    files = sorted((tiny_data / "features").glob("*.npy"))
    out = tmp_path / "det"
    assert main(["detect", "--model", str(model), *map(str, files), "--out", str(out)]) == 0
    for npy in files:
        assert _read_segments(out / f"{npy.stem}.txt") == _expected(model, npy)


@pytest.mark.parametrize(("extra", "needle"), [
    (["--format", "midi"], "--format midi"),
    (["--threshold", "0.3"], "--threshold"),
    (["--tta"], "--tta"),
    (["--split", "valid"], "'train' and 'test'"),
])
def test_detect_segments_refuses_options_of_event_models_in_one_line(tiny_data, seg_run,
                                                                     tmp_path, capsys, extra,
                                                                     needle):
    _, model = seg_run
    args = ["detect", "--model", str(model), "--out", str(tmp_path / "det"), "--data",
            str(tiny_data)]
    args += extra if "--split" in extra else ["--split", "test", *extra]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "det").exists()


def test_several_models_in_a_run_folder_are_named_in_the_error(tiny_data, seg_run, tmp_path,
                                                               capsys):
    import shutil

    run, model = seg_run
    copy = tmp_path / "exp"
    shutil.copytree(run / "models", copy / "models")
    shutil.copy(model, copy / "models" / "other.pt")
    capsys.readouterr()
    assert main(["detect", "--model", str(copy), "--data", str(tiny_data), "--split", "test",
                 "--out", str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err.strip()
    assert "2 model files" in err and "other.pt" in err and model.name in err


def test_evaluate_scores_segment_files_against_the_frame_labels(tiny_data, seg_run, tmp_path,
                                                                capsys):
    import json

    from softloc.data.mstcn import read_ground_truth, read_mapping
    from softloc.inference.features_input import Segmentation

    _, model = seg_run
    files = sorted((tiny_data / "features").glob("*.npy"))
    out = tmp_path / "det"
    assert main(["detect", "--model", str(model), *map(str, files), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(tiny_data), "--est", str(out)]) == 2
    assert "--fps is required" in capsys.readouterr().err
    assert main(["evaluate", "--ref", str(tiny_data / "groundTruth"), "--est", str(out),
                 "--fps", "2", "--json", str(tmp_path / "r.json")]) == 0
    assert "F1@10" in capsys.readouterr().out
    got = json.loads((tmp_path / "r.json").read_text())["overall"]
    # independent: frame accuracy by brute force over the network's own arg-max
    classes = read_mapping(tiny_data / "mapping.txt")
    seg = Segmentation.load(model)
    correct = total = 0
    for npy in files:
        ref = read_ground_truth(tiny_data / "groundTruth" / f"{npy.stem}.txt", classes)
        est = seg.labels(npy)
        assert est.shape == ref.shape  # subsample 1: one label per reference frame
        correct += int(sum(int(r) == int(e) for r, e in zip(ref, est, strict=True)))
        total += ref.size
    assert got["accuracy"] == pytest.approx(correct / total)
    assert got["n_sequences"] == len(files)
    assert {"f1_10", "f1_25", "f1_50", "edit"} <= set(got)
    # too low a rate leaves reference frames uncovered: one line naming the file
    assert main(["evaluate", "--ref", str(tiny_data), "--est", str(out), "--fps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no segment covers frame" in err[0] and ".txt" in err[0]
    # too high a rate: the segments outlast the reference
    assert main(["evaluate", "--ref", str(tiny_data), "--est", str(out), "--fps", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the frame rate right" in err[0]
