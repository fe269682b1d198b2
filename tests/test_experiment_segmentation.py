"""The segmentation study: rows per run, resume, summaries (tiny CI version)."""

from __future__ import annotations

import csv
import math

import pytest

from softloc.data.generators.segments import generate_segment_dataset
from softloc.experiments.segmentation import (
    RESULT_COLUMNS,
    SegmentationConfig,
    format_table,
    relative_to_ce,
    run_segmentation,
    summarize,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("segs") / "data"
    return generate_segment_dataset(root, n_subjects=2, videos_per_subject=1, n_folds=2,
                                    frame_rate=2.0, n_features=6, seed=0)


def _config(root, **kw):
    base = dict(data=str(root), splits=(1,), losses=("ce", "softloc"), shifts_s=(5.0,),
                fps=2.0, subsample=1, softness_s=(3.0,), filters=(4,), kernel_size=3,
                epochs=1, batch_size=1, k_max=4)
    base.update(kw)
    return SegmentationConfig(**base)


def test_rows_for_every_run_and_resume_skips_finished_runs(tiny_root, tmp_path):
    rows = run_segmentation(_config(tiny_root), tmp_path)
    assert len(rows) == 2  # 2 losses x 1 shift x 1 seed x 1 fold
    with (tmp_path / "results.csv").open() as f:
        written = list(csv.DictReader(f))
    assert tuple(written[0]) == RESULT_COLUMNS
    for row in written:
        for score in ("f1_10", "f1_25", "f1_50", "edit", "accuracy"):
            assert 0.0 <= float(row[score]) <= 1.0
    # cross-entropy has no softness: an empty cell (the results-table convention of noise_study)
    assert {r["softness_s"] for r in written if r["loss"] == "ce"} == {""}
    # Mark a finished row; a rerun with one more shift must keep it and add only the new runs.
    written[0]["f1_10"] = "0.123"
    with (tmp_path / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(written)
    rows = run_segmentation(_config(tiny_root, losses=("ce",), shifts_s=(0.0, 5.0)), tmp_path)
    assert len(rows) == 3
    assert rows[0]["f1_10"] == "0.123"
    assert (rows[2]["loss"], float(rows[2]["shift_s"])) == ("ce", 0.0)


def test_a_resumed_study_must_keep_its_settings(tiny_root, tmp_path):
    config = _config(tiny_root, losses=("ce",), boundary_noise="normal:2s")
    run_segmentation(config, tmp_path)
    with pytest.raises(ValueError, match=r"study.json was written with other settings "
                                         r"\(epochs: 1 there, 2 now\); pass the same"):
        run_segmentation(_config(tiny_root, losses=("ce",), boundary_noise="normal:2s",
                                 epochs=2), tmp_path)


def test_a_study_from_before_input_projection_resumes_as_unprojected(tiny_root, tmp_path):
    import json

    run_segmentation(_config(tiny_root, losses=("ce",), input_projection=0), tmp_path)
    study = json.loads((tmp_path / "study.json").read_text())
    assert study.pop("input_projection") == 0
    (tmp_path / "study.json").write_text(json.dumps(study))  # as written before the setting
    rows = run_segmentation(_config(tiny_root, losses=("ce", "softloc"), input_projection=0),
                            tmp_path)
    assert len(rows) == 2
    with pytest.raises(ValueError, match=r"input_projection: 0 there, 4 now"):
        run_segmentation(_config(tiny_root, input_projection=4), tmp_path)


@pytest.mark.parametrize(("projection", "n_features", "expected"),
                         [(64, 2048, 64), (64, 64, None), (64, 6, None), (0, 2048, None),
                          (4, 6, 4)])
def test_input_projection_only_when_the_features_are_wider(projection, n_features, expected):
    from softloc.experiments.segmentation import _network
    from softloc.models.build import model_spec

    net = _network(SegmentationConfig(input_projection=projection, filters=(4,),
                                      kernel_size=3), n_features, 3)
    assert net.input_projection == expected
    assert model_spec(net)[1]["input_projection"] == expected
    assert net.encoder[0].in_channels == (expected or n_features)


def test_missing_fold_is_an_error(tiny_root, tmp_path):
    with pytest.raises(ValueError, match=r"run_segmentation: folds \[7\] not in"):
        run_segmentation(_config(tiny_root, splits=(7,)), tmp_path)


def test_config_validation():
    with pytest.raises(ValueError, match=r"SegmentationConfig: `losses` must be one of"):
        SegmentationConfig(losses=("mse",))
    with pytest.raises(ValueError, match=r"SegmentationConfig: `shifts_s` must be >= 0"):
        SegmentationConfig(shifts_s=(-5.0,))
    with pytest.raises(ValueError, match=r"SegmentationConfig: `alpha` must lie in \[0, 1\]"):
        SegmentationConfig(alpha=2.0)
    with pytest.raises(ValueError, match=r"parse_noise: cannot parse 'gauss:1s'"):
        SegmentationConfig(boundary_noise="gauss:1s")
    with pytest.raises(ValueError, match=r"SegmentationConfig: `input_projection` must be >= 0"):
        SegmentationConfig(input_projection=-1)


def _row(loss, shift, seed, softness, f1):
    return {"loss": loss, "shift_s": shift, "seed": seed, "split": 1, "softness_s": softness,
            "f1_10": f1, "f1_25": f1, "f1_50": f1, "edit": f1, "accuracy": f1}


def test_summary_table_and_relative_performance_by_hand():
    rows = [
        _row("ce", 0.0, 0, math.nan, 0.8), _row("ce", 0.0, 1, math.nan, 0.6),
        _row("ce", 10.0, 0, math.nan, 0.4), _row("ce", 10.0, 1, math.nan, 0.4),
        _row("softloc", 0.0, 0, 7.0, 0.7), _row("softloc", 0.0, 1, 7.0, 0.7),
        _row("softloc", 10.0, 0, 7.0, 0.5), _row("softloc", 10.0, 1, 7.0, 0.5),
    ]
    summary = summarize(rows)
    assert [(e["loss"], e["shift_s"]) for e in summary] == [
        ("ce", 0.0), ("ce", 10.0), ("softloc", 0.0), ("softloc", 10.0)]
    assert summary[0]["f1_10_mean"] == pytest.approx(0.7)
    assert summary[0]["f1_10_std"] == pytest.approx(0.1)
    assert summary[0]["n"] == 2
    table = format_table(summary)
    assert "| ce | 70.0 (10.0) | 40.0 (0.0) |" in table
    assert "| softloc (7 s) | 70.0 (0.0) | 50.0 (0.0) |" in table
    rel = relative_to_ce(summary)
    assert rel == [
        {"shift_s": 0.0, "softness_s": 7.0, "relative_pct": pytest.approx(0.0)},
        {"shift_s": 10.0, "softness_s": 7.0, "relative_pct": pytest.approx(25.0)},
    ]


def test_ms_tcn_trains_on_every_stage_and_saves_models(tiny_root, tmp_path, monkeypatch):
    import softloc.experiments.segmentation as experiment

    seen = []
    real = experiment.build_segmentation_loss

    def spy(*a, **k):
        loss = real(*a, **k)
        forward = loss.forward

        def record(logits, **kw):
            seen.append(logits.dim())
            return forward(logits, **kw)

        loss.forward = record
        return loss

    monkeypatch.setattr(experiment, "build_segmentation_loss", spy)
    rows = run_segmentation(_config(tiny_root, model="ms-tcn", losses=("ce",),
                                    save_models=True), tmp_path)
    assert len(rows) == 1 and seen and set(seen) == {4}  # (stage, batch, class, time)
    from softloc.inference import load_model_file

    (path,) = (tmp_path / "models").glob("*.pt")
    model, _, extra = load_model_file(path)
    assert type(model).__name__ == "MSTCN" and extra["classes"]
