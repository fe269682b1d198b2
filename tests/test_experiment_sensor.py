"""softloc.experiments.sensor: the SoftLoc §5.2 protocol end to end on tiny generated data."""

from __future__ import annotations

import numpy as np
import pytest

from softloc.data.layout import read_annotation_file
from softloc.data.subjects import read_subjects_csv
from softloc.experiments.sensor import (
    RESULT_COLUMNS,
    SensorConfig,
    format_table,
    run_sensor,
    summarize,
)

TINY = dict(n_subjects=3, sessions_per_subject=1, cycles_per_session=60, folds=(0,),
            levels=(0, 1), max_steps=3, window_steps=20, window_stride=10, batch_size=4)


def test_every_run_is_written_once_and_a_rerun_resumes(tmp_path):
    result = run_sensor(SensorConfig(**TINY), tmp_path)
    rows = result.rows
    # normal: levels 0, 1; binary: level 1 only (B(-0, 0) is no noise) -> 3 x 3 methods
    assert len(rows) == 9
    assert {(r["noise"], r["level"]) for r in rows} == {("normal", 0), ("normal", 1),
                                                        ("binary", 1)}
    text = (tmp_path / "results.csv").read_text()
    assert text.splitlines()[0] == ",".join(RESULT_COLUMNS)
    # n_ref is the number of events of the held-out subject (fold 0 = the first subject)
    subjects = read_subjects_csv(tmp_path / "data" / "subjects.csv")
    first = sorted(set(subjects.values()))[0]
    n_puffs = sum(len(read_annotation_file(tmp_path / "data" / "annotations" / f"{s}.txt"))
                  for s, p in subjects.items() if p == first)
    assert all(int(r["n_ref"]) == n_puffs for r in rows)
    for r in rows:
        assert 0.0 <= float(r["f1"]) <= float(r["f1_tol"]) <= 1.0
    again = run_sensor(SensorConfig(**TINY), tmp_path).rows
    assert len(again) == 9 and (tmp_path / "results.csv").read_text() == text
    # the Table 3 analogue: both F1 tables, one cell per (method, noise, level) run
    table = (tmp_path / "results.md").read_text()
    assert table == result.table and "exact alignment" in table and "within +-1 step" in table
    assert table.count("| N | softloc |") == 2 and table.count("| B | lrm |") == 2
    assert result.plot_path is not None and result.plot_path.stat().st_size > 0


def test_lrm_detects_puffs_of_an_unseen_subject_with_clean_labels(tmp_path):
    cfg = SensorConfig(n_subjects=3, sessions_per_subject=2, cycles_per_session=300,
                       methods=("lrm",), noises=("normal",), levels=(0,), folds=(0, 1, 2))
    rows = run_sensor(cfg, tmp_path).rows
    assert len(rows) == 3
    assert np.mean([float(r["f1"]) for r in rows]) > 0.7


def test_summary_and_table_follow_table_3():
    rows = [{"method": m, "noise": "normal", "level": lv, "seed": 0, "fold": k,
             "f1": f, "precision": 1.0, "recall": 1.0, "f1_tol": f, "n_ref": 1, "n_est": 1}
            for m, lv, k, f in [("lrm", 0, 0, 0.8), ("lrm", 0, 1, 0.6), ("softloc", 0, 0, 0.9),
                                ("softloc", 2, 0, 0.7)]]
    summary = summarize(rows)
    lrm = next(e for e in summary if e["method"] == "lrm")
    assert lrm["n"] == 2 and lrm["mean"] == pytest.approx(0.7) and lrm["std"] == pytest.approx(0.1)
    table = format_table(summary)
    assert "| N | lrm | 70.0 (10.0) | — |" in table
    assert "| N | softloc | 90.0 (0.0) | 70.0 (0.0) |" in table


def test_config_validation():
    with pytest.raises(ValueError, match="methods"):
        SensorConfig(methods=("svm",))
    with pytest.raises(ValueError, match="levels"):
        SensorConfig(levels=(-1,))
    with pytest.raises(TypeError, match="SensorConfig"):
        run_sensor({"levels": (0,)}, "x")


def _data(steps: dict[str, list[int]], n: int = 40):
    from softloc.experiments.sensor import _Data

    return _Data(x={s: np.zeros((1, n), np.float32) for s in steps},
                 steps={s: np.asarray(v) for s, v in steps.items()},
                 subjects={s: s for s in steps}, rate_hz=1.0)


def test_peaks_count_a_spread_peak_once_steps_twice_and_mass_finds_a_split_centre():
    from softloc.experiments.sensor import _detect

    p = np.array([0.0, 0.9, 0.6, 0.0, 0.1, 0.3, 0.0])
    assert _detect(SensorConfig(decoder="peaks"), p, 0.2, "softloc").tolist() == [1, 5]
    assert _detect(SensorConfig(decoder="steps"), p, 0.2, "bce").tolist() == [1, 2, 5]
    split = np.array([0.0, 0.0, 0.35, 0.02, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert _detect(SensorConfig(decoder="peaks"), split, 0.2, "softloc").tolist() == [2, 4]
    # auto: local mass for SoftLoc (0.67 on the middle step), run peaks for CE and LR-M
    assert _detect(SensorConfig(), split, 0.2, "softloc").tolist() == [3]
    assert _detect(SensorConfig(), split, 0.2, "lrm").tolist() == [2, 4]


def test_the_offset_calibration_finds_a_network_firing_early_and_scoring_uses_it():
    from softloc.experiments.sensor import _offset, _score

    steps = {"a": [5, 12, 30]}
    data = _data(steps)
    p = np.zeros(40)
    p[[4, 11, 29]] = 0.9  # one step early
    p[[20]] = 0.8  # a false alarm
    predict = lambda x: p  # noqa: E731
    assert _offset(SensorConfig(), data, data.steps, "softloc", predict, "normal", 0) == 1
    assert _offset(SensorConfig(calibrate_offset=False), data, data.steps, "softloc",
                   predict, "normal", 0) == 0
    scored = _score(SensorConfig(), data, ["a"], "softloc", predict, offset=1)
    assert (scored["n_est"], scored["n_ref"], scored["offset"]) == (4, 3, 1)
    assert scored["f1"] == pytest.approx(2 * 3 / 7)
    assert _score(SensorConfig(), data, ["a"], "softloc", predict)["f1"] == 0.0
    # labels moved by zero-mean noise still point at the same shift
    many = _data({"a": [5, 12, 20, 30, 36]})
    q = np.zeros(40)
    q[[4, 11, 19, 29, 35]] = 0.9
    noisy = {"a": np.array([4, 12, 21, 30, 36])}
    assert _offset(SensorConfig(), many, noisy, "softloc", lambda x: q, "normal", 1) == 1
    # under wide noise, the likeliest shift: a detector one step late, labels moved by
    # N(0, 4^2) (drawn here), events every 8-14 steps
    rng = np.random.default_rng(0)
    true = np.cumsum(rng.integers(8, 15, 400))
    n = int(true[-1]) + 40
    late = np.zeros(n)
    late[true + 1] = 0.9
    noisy4 = {"a": true + np.rint(rng.normal(0, 4, true.size)).astype(int)}
    assert _offset(SensorConfig(), _data({"a": true.tolist()}, n=n), noisy4, "lrm",
                   lambda x: late, "normal", 4) == -1
    # binary noise B(-2, 2): a detector on time
    on_time = np.zeros(n)
    on_time[true] = 0.9
    noisy_b = {"a": true + 2 * rng.choice([-1, 1], true.size)}
    assert _offset(SensorConfig(), _data({"a": true.tolist()}, n=n), noisy_b, "lrm",
                   lambda x: on_time, "binary", 2) == 0


def test_a_rerun_with_other_settings_is_refused(tmp_path):
    run_sensor(SensorConfig(**dict(TINY, methods=("lrm",), levels=(0,))), tmp_path)
    with pytest.raises(ValueError, match="other settings"):
        run_sensor(SensorConfig(**dict(TINY, methods=("lrm",), levels=(0,), dropout=0.2)),
                   tmp_path)
    # a wider grid with the same settings resumes
    rows = run_sensor(SensorConfig(**dict(TINY, methods=("lrm",), levels=(0, 1))),
                      tmp_path).rows
    assert len(rows) == 3


def test_decoder_and_offset_settings_are_checked():
    with pytest.raises(ValueError, match="decoder"):
        SensorConfig(decoder="argmax")
    with pytest.raises(ValueError, match="calibrate_offset"):
        SensorConfig(calibrate_offset=1)
