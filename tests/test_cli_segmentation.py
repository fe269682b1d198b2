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


def test_experiment_writes_rows_table_figures_and_resumes(tiny_data, tmp_path, capsys,
                                                          monkeypatch):
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

    # resume: a rerun trains nothing (training would fail here)
    import softloc.experiments.segmentation as seg

    def no_training(*a, **k):
        raise AssertionError("finished runs must not be retrained")

    monkeypatch.setattr(seg, "_train", no_training)
    assert main(args) == 0
    assert _rows(out) == rows
    # a killed run resumes: drop one row, only that one is trained again
    with (out / "results.csv").open() as f:
        lines = f.read().splitlines()
    (out / "results.csv").write_text("\n".join(lines[:-1]) + "\n")
    calls = []
    monkeypatch.undo()
    real_train = seg._train

    def counting(*a, **k):
        calls.append(a[3])
        return real_train(*a, **k)

    monkeypatch.setattr(seg, "_train", counting)
    assert main([*args, "--no-figures"]) == 0
    assert len(calls) == 1 and len(_rows(out)) == 4


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
