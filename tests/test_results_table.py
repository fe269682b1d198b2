"""Resumable results tables: CSV round trip, NaN as an empty cell, rejected headers and lines."""

import pytest

from softloc.experiments.noise_study import result_columns
from softloc.experiments.results_table import as_float, read_rows, write_rows


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


def test_as_float_reads_numbers_and_gives_nan_for_empty_or_unreadable_cells():
    assert as_float("0.25") == 0.25 and as_float(3) == 3.0
    assert all(as_float(v) != as_float(v) for v in ("", "n/a", None))  # NaN
