"""Tests of softloc.training.run_folder: run-folder checks, weights-only checkpoints, resume."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from softloc.config import apply_overrides, load_preset, save_config
from softloc.training.run_folder import (
    RUNTIME_FIELDS,
    RunFolderCheckpoint,
    check_run_dir,
    load_checkpoint,
    resume_config,
    resume_step,
)


def test_a_new_run_refuses_a_non_empty_folder_and_a_file(tmp_path):
    check_run_dir(tmp_path / "new", resume=False)  # missing: fine
    check_run_dir(tmp_path, resume=False)  # empty: fine
    (tmp_path / "x.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty; choose a new --out or pass --resume"):
        check_run_dir(tmp_path, resume=False)
    with pytest.raises(FileExistsError, match="is not a folder"):
        check_run_dir(tmp_path / "x.txt", resume=False)
    assert (tmp_path / "x.txt").read_text() == "user data"


def test_resume_needs_a_config_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume, no config.yaml"):
        check_run_dir(tmp_path, resume=True)


class _Code:
    def __reduce__(self):
        return (print, ("a checkpoint must never run code",))


def test_a_checkpoint_holding_code_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": {}, "x": _Code()}, f)
    with pytest.raises(ValueError, match=r"evil\.ckpt: not a softloc checkpoint .*weights_only"):
        load_checkpoint(bad)
    good = tmp_path / "good.ckpt"
    torch.save({"global_step": 7, "state_dict": {"w": torch.ones(2)}}, good)
    assert load_checkpoint(good)["global_step"] == 7


def _saved_run(tmp_path: Path, steps_done: int | None):
    cfg = apply_overrides(load_preset("demo"), ["train.max_steps=100", "classes=[HH, KD, SD]"])
    save_config(cfg, tmp_path / "config.yaml")
    if steps_done is not None:
        (tmp_path / "checkpoints").mkdir()
        torch.save({"global_step": steps_done}, tmp_path / "checkpoints" / "last.ckpt")
    return cfg


def test_resume_accepts_only_runtime_changes(tmp_path):
    cfg = _saved_run(tmp_path, None)
    longer = apply_overrides(cfg, ["train.max_steps=500", "train.num_threads=2"])
    assert set(RUNTIME_FIELDS) >= {"max_steps", "num_threads"}
    assert resume_config(longer, tmp_path).train.max_steps == 500
    no_classes = replace(longer, classes=())
    assert resume_config(no_classes, tmp_path).classes == ("HH", "KD", "SD")
    changed = apply_overrides(cfg, ["train.learning_rate=0.5"])
    with pytest.raises(ValueError, match=r"--resume needs the run's saved configuration .*config"):
        resume_config(changed, tmp_path)


def test_resume_step_counts_the_last_checkpoint_and_refuses_nothing_to_do(tmp_path):
    cfg = _saved_run(tmp_path, 40)
    assert resume_step(tmp_path, cfg) == 40
    done = apply_overrides(cfg, ["train.max_steps=40"])
    with pytest.raises(ValueError, match="has done 40 steps .* N > 40"):
        resume_step(tmp_path, done)
    assert resume_step(tmp_path / "elsewhere", cfg) == 0  # no last.ckpt: starts over


def test_restored_checkpoint_paths_are_re_rooted_into_the_own_folder(tmp_path):
    cb = RunFolderCheckpoint(dirpath=tmp_path / "run" / "checkpoints", monitor="f1", mode="max")
    cb.load_state_dict({
        "dirpath": "/somewhere/else/checkpoints", "monitor": "f1",
        "best_model_path": "/somewhere/else/checkpoints/best.ckpt",
        "best_k_models": {"/somewhere/else/checkpoints/best.ckpt": torch.tensor(0.9)},
        "best_model_score": torch.tensor(0.9), "kth_best_model_path": "", "kth_value": 0.0,
        "last_model_path": "/somewhere/else/checkpoints/last.ckpt",
    })
    own = tmp_path / "run" / "checkpoints"
    assert Path(cb.best_model_path) == own / "best.ckpt"
    assert Path(cb.last_model_path) == own / "last.ckpt"
    assert [Path(k) for k in cb.best_k_models] == [own / "best.ckpt"]
