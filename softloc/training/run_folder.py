"""The run folder of a training run: its checks, its checkpoints and resuming it.

A run folder (``softloc train --out RUN``) holds ``config.yaml``, ``checkpoints/{best,last}.ckpt``,
the model file and ``metrics.json``. Checkpoints are written atomically and read with
``weights_only=True`` only; the paths a checkpoint stores are re-rooted into the folder it is
read from (a copied or moved run folder resumes from its own files). A resumed run must have
the saved configuration except for :data:`RUNTIME_FIELDS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from softloc._io import atomic_save
from softloc.config import RunConfig, load_config

__all__ = [
    "RUNTIME_FIELDS",
    "LastCheckpoint",
    "RunCheckpointIO",
    "RunFolderCheckpoint",
    "TrainingInterrupted",
    "check_run_dir",
    "load_checkpoint",
    "resume_config",
    "resume_step",
    "wait_for_rank_zero",
]

#: ``train.*`` fields a resumed run may change (everything else must equal the saved config).
RUNTIME_FIELDS = ("max_steps", "num_threads", "keep_freed_memory", "accelerator", "devices",
                  "num_nodes", "strategy")

_log = logging.getLogger("softloc.training")


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C (SIGINT); ``run_dir`` can be resumed.

    A ``KeyboardInterrupt``, so code that does not catch it stops as on any Ctrl-C; the CLI
    catches it, prints the message and exits with status 130.

    Attributes:
        run_dir: the run folder.
        step: the step of ``RUN/checkpoints/last.ckpt`` (0: none yet, a resume starts over).
    """

    def __init__(self, run_dir: Path, step: int) -> None:
        self.run_dir, self.step = Path(run_dir), int(step)
        where = (f"last checkpoint at step {step}" if step else "no checkpoint yet")
        super().__init__(f"training interrupted ({where}); continue with `softloc train "
                         f"--resume --out {run_dir} ...` (fit(..., resume=True))")


class RunCheckpointIO(TorchCheckpointIO):
    """Checkpoints published atomically (a crash never leaves half a file) and read with
    ``weights_only=True`` only: a checkpoint can hold tensors and plain data, never code."""

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        atomic_save(Path(path), lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path: Any, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(Path(path))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint loaded with ``weights_only=True``; errors name the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise ValueError(
            f"{path}: not a softloc checkpoint that loads with weights_only=True "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None


class RunFolderCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose restored state points into its own folder: the paths stored in a
    checkpoint (of a copied or moved run folder) are re-rooted, never followed."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = str(self.dirpath)

        def here(p: Any) -> Any:
            return str(Path(own) / Path(p).name) if isinstance(p, str) and p else p

        state = dict(state_dict, dirpath=own)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = here(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {here(k): v for k, v in state["best_k_models"].items()}
        super().load_state_dict(state)


class LastCheckpoint(RunFolderCheckpoint):
    """``last.ckpt`` at every validation (every ``every_n_steps`` without validation) and at
    the last step, whether or not the score improved."""

    def __init__(self, dirpath: Path, *, every_n_steps: int, has_val: bool) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1,
                         enable_version_counter=False, save_on_train_epoch_end=False,
                         every_n_train_steps=None if has_val else every_n_steps)
        self._every, self._has_val = every_n_steps, has_val
        self.interrupted = False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        step = trainer.global_step
        validates_now = self._has_val and step % self._every == 0
        if step >= (trainer.max_steps or 0) and not validates_now \
                and self._last_global_step_saved != step:
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self.interrupted = isinstance(exception, KeyboardInterrupt)


def check_run_dir(out_dir: Path, resume: bool) -> None:
    if resume:
        if not (out_dir / "config.yaml").is_file():
            raise FileNotFoundError(
                f"{out_dir}: cannot resume, no config.yaml; expected a run folder written by "
                "`softloc train`"
            )
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir}: run folder exists and is not empty; choose a new --out or pass --resume"
        )


def wait_for_rank_zero(out_dir: Path, timeout_s: float = 4 * 3600.0) -> None:
    """A non-zero rank waits until rank 0 has checked the run folder and written its
    ``config.yaml`` (its features are then in the cache). The run folder must be on a file
    system that every node sees (docs/distributed.md)."""
    t0 = time.monotonic()
    while not (out_dir / "config.yaml").is_file():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{out_dir}: rank 0 wrote no config.yaml in {timeout_s:.0f} s; "
                               "is the run folder on a file system shared by every node?")
        time.sleep(1.0)


def resume_config(config: RunConfig, out_dir: Path) -> RunConfig:
    """``config`` checked against the run's saved one; only :data:`RUNTIME_FIELDS` may differ.

    Run folders of softloc 0.1 have no ``supervision`` section: the given one is taken.
    """
    path = out_dir / "config.yaml"
    saved = load_config(path)
    if "supervision" not in (yaml.safe_load(path.read_text()) or {}):
        saved = replace(saved, supervision=config.supervision)
    if not config.classes:
        config = replace(config, classes=saved.classes)
    train_fixed = replace(config.train, **{f: getattr(saved.train, f) for f in RUNTIME_FIELDS})
    if replace(config, train=train_fixed, inference=saved.inference) != saved:
        raise ValueError(
            f"train: --resume needs the run's saved configuration ({path}); only "
            f"train.{{{', '.join(RUNTIME_FIELDS)}}} may change"
        )
    return config


def resume_step(out_dir: Path, config: RunConfig) -> int:
    """Steps done by the run's ``last.ckpt`` (0 without one); refuses a ``max_steps`` that
    would not train further, so that a finished run's outputs are never rewritten."""
    last = out_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        _log.warning("train: %s has no checkpoints/last.ckpt; training starts over", out_dir)
        return 0
    done = int(load_checkpoint(last).get("global_step", 0))
    if config.train.max_steps <= done:
        raise ValueError(
            f"train: {out_dir} has done {done} steps and train.max_steps is "
            f"{config.train.max_steps}; nothing to resume (pass --max-steps N with N > {done} "
            "to train further)"
        )
    return done
