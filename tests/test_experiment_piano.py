"""experiments.piano: the cells of the study, counts-only runs that never see a timestamp,
resumable results, tables and figure (tiny data from a sine renderer, 1-step runs)."""

from __future__ import annotations

import math

import pytest
import yaml

from softloc.data.generators.piano import synthesize_piano_dataset
from softloc.experiments.piano import piano_cells, run_piano, supervision_table
from tests.piano_stub import SineStub


def test_cells_are_listed_once_in_order():
    cells = piano_cells(("supervision", "noise"), ("softloc", "sll"), (0, 100), 1)
    assert cells == [("counts", "loco", 0.0, 0), ("onsets", "bce", 0.0, 0),
                     ("onsets", "softloc", 0.0, 0), ("onsets", "sll", 0.0, 0),
                     ("onsets", "softloc", 100.0, 0), ("onsets", "sll", 100.0, 0)]
    assert piano_cells(("noise",), ("bce",), (50,), 2) == [("onsets", "bce", 50.0, 0),
                                                           ("onsets", "bce", 50.0, 1)]
    for bad in ((("frames",), ("bce",), (0,), 1), (("noise",), ("nope",), (0,), 1),
                (("noise",), ("bce",), (-1,), 1), (("noise",), ("bce",), (0,), 0)):
        with pytest.raises(ValueError, match="piano_cells"):
            piano_cells(*bad)


def test_supervision_table_means_over_seeds():
    rows = [{"labels": "counts", "loss": "loco", "sigma_ms": "0", "f1": "0.5",
             "precision": "0.4", "recall": "0.6"},
            {"labels": "counts", "loss": "loco", "sigma_ms": "0", "f1": "0.7",
             "precision": "0.6", "recall": "0.8"},
            {"labels": "onsets", "loss": "bce", "sigma_ms": "50", "f1": "0.9",
             "precision": "0.9", "recall": "0.9"}]
    table = supervision_table(rows)
    assert "| LoCo, counts only | 60.0 ± 10.0 | 50.0 ± 10.0 | 70.0 ± 10.0 | 2 |" in table
    assert "bce" not in table  # sigma 50 is not full supervision


def test_study_trains_each_cell_once_and_resumes(tmp_path, capsys):
    fonts = []
    for name in ("A_GM.sf2", "B.sf2"):
        (tmp_path / name).write_bytes(b"RIFF")
        fonts.append(tmp_path / name)
    root = tmp_path / "data"
    synthesize_piano_dataset(root, soundfonts=fonts, minutes=0.15, valid_minutes=0.05,
                             test_minutes=0.05, file_duration_s=3.0, sample_rate=16000,
                             renderer=SineStub(), cache_dir=tmp_path / "cache")
    tiny = ["model.args={conv_channels: [4], key_channels: 4, temporal_layers: 1}",
            "data.augment_renditions=0"]
    kwargs = dict(data_root=root, parts=("supervision", "noise"), losses=("softloc",),
                  sigmas_ms=(0, 50), seeds=1, max_steps=1, overrides=tiny, verbose=False)
    result = run_piano(tmp_path / "study", **kwargs)
    got = {(r["labels"], r["loss"], float(r["sigma_ms"])) for r in result.rows}
    assert got == {("counts", "loco", 0.0), ("onsets", "bce", 0.0), ("onsets", "softloc", 0.0),
                   ("onsets", "softloc", 50.0)}
    assert (result.trained, result.skipped) == (4, 0)
    for r in result.rows:
        f1 = float(r["f1"])
        assert math.isnan(f1) or 0.0 <= f1 <= 1.0
        assert int(r["n_ref"]) > 0
    # the counts-only run trained on counts.csv windows, never on annotations
    saved = yaml.safe_load((tmp_path / "study" / "runs" / "loco_counts_seed0" / "config.yaml")
                           .read_text())
    assert saved["supervision"]["labels"] == "counts" and saved["loss"]["name"] == "loco"
    # its offset, when the audio alignment finds one, is the one reported
    inf = saved["inference"]
    assert inf["align_to_onsets"] == "pooled" and inf["calibrate_offset"] is True
    counts_row = next(r for r in result.rows if r["labels"] == "counts")
    assert float(counts_row["time_offset_s"]) == pytest.approx(
        inf["time_offset_s"] + (inf["class_offsets_s"] or [0.0])[0], abs=1e-4)
    md = result.table_path.read_text()
    assert "counts only vs full supervision" in md.lower() and "σ = 50 ms" in md
    assert result.plot_path is not None and result.plot_path.stat().st_size > 0
    again = run_piano(tmp_path / "study", **kwargs)
    assert (again.trained, again.skipped) == (0, 4) and len(again.rows) == 4
    # --rescore: the three noise-part runs are scored again from their model.pt (same
    # decoders, same scores), the counts run (scored in training) is left as it is
    by_run = {r["run"]: float(r["f1"]) for r in again.rows}
    rescored = run_piano(tmp_path / "study", rescore=True, **dict(kwargs, verbose=True))
    assert (rescored.trained, rescored.skipped) == (0, 4)
    assert {r["run"]: float(r["f1"]) for r in rescored.rows} == by_run
    assert "3 finished runs scored again (of 4" in capsys.readouterr().out
    with pytest.raises(ValueError, match="other settings"):
        run_piano(tmp_path / "study", **dict(kwargs, max_steps=2))
