"""Train a detector into a run folder: :func:`fit` (and :func:`train`, its keyword form).

A training *run* is a folder ``RUN`` that holds everything needed to reproduce and to use it::

    RUN/config.yaml        the resolved run configuration (classes, supervision, calibration)
    RUN/model.pt           best weights, network name and arguments, config
                           (softloc.inference.model_file; what Detector.load reads)
    RUN/metrics.json       validation scores, steps, wall time, calibration, versions
    RUN/checkpoints/       Lightning checkpoints: best.ckpt (by validation score), last.ckpt
    RUN/logs/csv/          metrics.csv (CSVLogger; a resumed run logs to csv-resume-N/)
    RUN/logs/tensorboard/  TensorBoard event files

Steps of :func:`fit`: check the run folder (new, or ``resume``: the saved configuration must be
the same except for the runtime fields), build the loss (``softloc.losses.registry``) and check
the supervision against it, prepare data and loaders (``softloc.training.loaders``), train the
network from the configuration (``softloc.models``) in an :class:`~softloc.training.EventModule`
with Lightning, reload the best checkpoint, calibrate thresholds and offsets on the validation
files (``softloc.inference.calibrate``), and write ``config.yaml``, ``model.pt`` and
``metrics.json``.

Checkpoint selection uses validation F1 on whole validation files when they have timestamps and
the run trains on timestamps, else the exact-count rate of the validation windows (counts-only
supervision never looks at timestamps).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from softloc._io import atomic_save, atomic_write_text, provenance
from softloc._version import __version__
from softloc.config import RunConfig, SupervisionConfig, load_config, save_config
from softloc.inference.calibrate import calibrate
from softloc.inference.detector import Detector
from softloc.inference.model_file import MODEL_FILE, save_model_file
from softloc.losses.registry import build_loss
from softloc.metrics import evaluate
from softloc.models.build import model_from_config
from softloc.training.loaders import (
    TrainingData,
    check_supervision,
    make_loaders,
    prepare_training_data,
)
from softloc.training.module import EventModule, OptimSettings

__all__ = ["RUNTIME_FIELDS", "TrainResult", "file_f1_validator", "fit", "parse_devices", "train"]

#: ``train.*`` fields a resumed run may change (everything else must equal the saved config).
RUNTIME_FIELDS = ("max_steps", "num_threads", "accelerator", "devices", "num_nodes", "strategy")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        run_dir: the run folder.
        config: the resolved configuration (classes, calibrated thresholds and offsets).
        metrics: the content of ``RUN/metrics.json`` (empty on non-zero ranks).
    """

    run_dir: Path
    config: RunConfig
    metrics: dict


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are published atomically (``softloc._io``): a crash never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        atomic_save(Path(path), lambda f: torch.save(checkpoint, f))


def parse_devices(devices: str) -> int | str | list[int]:
    """Lightning's ``devices`` from ``train.devices``: ``"2"`` -> 2, ``"0,1"`` -> [0, 1],
    ``"auto"`` -> ``"auto"``."""
    text = str(devices).strip()
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        return int(text)
    if "," in text:
        return [int(x) for x in text.split(",") if x.strip()]
    return text


def _check_run_dir(out_dir: Path, resume: bool) -> None:
    if resume:
        if not (out_dir / "config.yaml").is_file():
            raise FileNotFoundError(
                f"{out_dir}: cannot resume, no config.yaml; expected a run folder written by "
                "`softloc train`"
            )
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir}: run folder exists and is not empty; choose a new --out or pass --resume"
        )


def _resume_config(config: RunConfig, out_dir: Path) -> RunConfig:
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


def file_f1_validator(
    config: RunConfig, valid_files: Sequence[tuple[str, torch.Tensor, list]]
) -> Callable[[nn.Module], dict[str, float]]:
    """``validator(model) -> {"val/f1": F1}`` on whole validation files at +-50 ms.

    Detection as in ``softloc.inference.Detector`` with ``config``'s decoding settings; times
    below 0 are clipped; an undefined F1 (no events anywhere) counts as 0.
    """

    def validate(model: nn.Module) -> dict[str, float]:
        detector = Detector(model, config)
        ref, est = {}, {}
        for stem, features, events in valid_files:
            probs = detector.probabilities_from_features(features)
            ref[stem] = events
            found = detector.events_from_probabilities(probs).labelled(config.classes)
            est[stem] = [(max(0.0, t), lab) for t, lab in found]
        f1 = evaluate(ref, est, classes=config.classes)["overall"]["f1"]
        return {"val/f1": 0.0 if f1 != f1 else float(f1)}

    return validate


def _make_trainer(config: RunConfig, out_dir: Path, checkpoint: ModelCheckpoint, *,
                  has_val: bool, val_batches: bool, resume: bool, progress: bool) -> L.Trainer:
    t = config.train
    loggers = [
        # a resumed run logs into a new folder: the CSV logger would replace the earlier file
        CSVLogger(out_dir / "logs", name="", version=_csv_version(out_dir / "logs", resume)),
        TensorBoardLogger(out_dir / "logs", name="", version="tensorboard",
                          default_hp_metric=False),
    ]
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    return L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=parse_devices(t.devices),
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]
        gradient_clip_val=t.grad_clip_norm,
        gradient_clip_algorithm="norm",
        val_check_interval=min(t.val_every_n_steps, t.max_steps) if has_val else None,
        check_val_every_n_epoch=None if has_val else 1,
        limit_val_batches=1.0 if val_batches else 0,
        num_sanity_val_steps=0,
        callbacks=[checkpoint],
        logger=loggers,
        plugins=[_AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=min(50, t.max_steps),
        default_root_dir=out_dir,
        deterministic=False,
    )


def _csv_version(logs: Path, resume: bool) -> str:
    if not resume or not (logs / "csv").exists():
        return "csv"
    n = 1
    while (logs / f"csv-resume-{n}").exists():
        n += 1
    return f"csv-resume-{n}"


def _fit_module(module: EventModule, data: TrainingData, out_dir: Path, *, resume: bool,
                progress: bool) -> tuple[L.Trainer, ModelCheckpoint]:
    """Run Lightning; returns the trainer and the checkpoint callback (best / last)."""
    train_loader, valid_loader = make_loaders(data)
    ckpt_dir = out_dir / "checkpoints"
    has_val = valid_loader is not None or bool(data.valid_files)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best",
                                 monitor="val/score" if has_val else None, mode="max",
                                 save_top_k=1, save_last=True, enable_version_counter=False)
    trainer = _make_trainer(data.config, out_dir, checkpoint, has_val=has_val,
                            val_batches=valid_loader is not None, resume=resume,
                            progress=progress)
    last = ckpt_dir / "last.ckpt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        if valid_loader is None and data.valid_files:
            # F1 on whole files only: one empty batch so that validation runs at all
            valid_loader = DataLoader([{}], batch_size=1,  # type: ignore[arg-type]
                                      collate_fn=lambda b: b[0])
        trainer.fit(module, train_loader, valid_loader,
                    ckpt_path=last if resume and last.is_file() else None)
    return trainer, checkpoint


def _write_metrics(out_dir: Path, config: RunConfig, data: TrainingData, trainer: L.Trainer,
                   checkpoint: ModelCheckpoint, best_path: str, calibration: dict,
                   t_start: float) -> dict:
    best = checkpoint.best_model_score
    metrics = {
        "softloc_version": __version__,
        "labels": config.supervision.labels,
        "loss": config.loss.name,
        "label_noise": config.supervision.label_noise,
        "steps": int(trainer.global_step),
        "best_checkpoint": Path(best_path).name,
        "best_val_score": None if best is None else float(best),
        "val_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "calibration": calibration,
        "train_stems": len(data.train_stems),
        "valid_stems": len(data.valid_stems),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
        "torch_threads": torch.get_num_threads(),
        "versions": provenance(),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def fit(
    config: RunConfig,
    *,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train the detector ``config`` describes on a dataset and write a run folder.

    Args:
        config: run configuration (a preset with overrides); ``classes`` empty = the dataset's;
            ``config.supervision`` says which labels to train on.
        data_root: dataset folder (``softloc.data.layout``).
        out_dir: run folder to create (must be new or empty, unless ``resume``).
        resume: continue ``out_dir/checkpoints/last.ckpt``; ``config`` must equal the run's saved
            ``config.yaml`` except for ``train.{max_steps, num_threads, accelerator, devices,
            num_nodes, strategy}``.
        progress: show Lightning's progress bar.
        cache_dir: feature cache (default ``out_dir/cache``, deleted after training).

    Returns:
        a :class:`TrainResult`.

    Raises:
        ValueError: supervision that the loss or the dataset cannot serve, a changed
            configuration on resume.
        FileExistsError: ``out_dir`` exists and is not empty (and not ``resume``).
        FileNotFoundError: no dataset / nothing to resume.
    """
    out_dir = Path(out_dir)
    _check_run_dir(out_dir, resume)
    if resume:
        config = _resume_config(config, out_dir)
    fr = config.features.frame_rate
    loss = build_loss(config.loss, frame_rate=fr, max_steps=config.train.max_steps)
    sources, use_plan = check_supervision(config, data_root, requires=frozenset(loss.requires))
    t_start = time.perf_counter()
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    data = prepare_training_data(config, data_root, sources=sources, use_plan=use_plan,
                                 cache_dir=cache)
    config = data.config
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    validator = file_f1_validator(config, data.valid_files) if data.valid_files else None
    module = EventModule(model_from_config(config), loss,
                         optim=OptimSettings.from_config(config.train),
                         count_k_max=config.loss.k_max, validator=validator)
    trainer, checkpoint = _fit_module(module, data, out_dir, resume=resume, progress=progress)
    best_path = checkpoint.best_model_path or str(out_dir / "checkpoints" / "last.ckpt")
    if trainer.global_rank != 0:
        return TrainResult(out_dir, config, {})
    ckpt = torch.load(best_path, map_location="cpu", weights_only=False)
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"])
    model = module.model.cpu().eval()
    valid = data.valid_stems
    config, calibration = calibrate(
        Detector(model, config),
        {s: torch.as_tensor(data.store.get(s, 1.0)) for s in valid},
        events={s: data.index.events.get(s) for s in valid},
        count_windows={s: data.index.count_windows.get(s, []) for s in valid},
    )
    save_config(config, out_dir / "config.yaml")
    save_model_file(out_dir / MODEL_FILE, model, config)
    metrics = _write_metrics(out_dir, config, data, trainer, checkpoint, best_path, calibration,
                             t_start)
    if cache_dir is None:
        shutil.rmtree(cache, ignore_errors=True)
    return TrainResult(out_dir, config, metrics)


def train(
    config: RunConfig,
    *,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    labels: str | None = None,
    annotations: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    softness_csv: str | os.PathLike | None = None,
    label_noise: str | None = None,
    resume: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """:func:`fit` with the supervision settings as keywords (they replace
    ``config.supervision``'s; ``None`` keeps the configured value).

    Args:
        labels: ``"counts"``, ``"onsets"`` or ``"mixed"`` (``supervision.labels``).
        annotations: one folder or several, each ``"DIR"`` or ``"DIR:SOFTNESS_MS"``
            (``supervision.annotations``).
        softness_csv: per-file softness table (``supervision.softness_csv``).
        label_noise: perturb training timestamps, e.g. ``"normal:100ms"``
            (``supervision.label_noise``).
        config, data_root, out_dir, resume, progress, cache_dir: as in :func:`fit`.

    Raises:
        ValueError: bad supervision values (``labels`` not a mode, no annotation folder), and
            everything :func:`fit` raises.
    """
    sup = config.supervision
    if annotations is not None:
        items = [annotations] if isinstance(annotations, str | os.PathLike) else list(annotations)
        if not items:
            raise ValueError("train: `annotations` is empty; expected at least one folder")
        sup = replace(sup, annotations=tuple(os.fspath(a) for a in items))
    sup = SupervisionConfig(
        labels=sup.labels if labels is None else labels,
        annotations=sup.annotations,
        softness_csv=sup.softness_csv if softness_csv is None else os.fspath(softness_csv),
        label_noise=sup.label_noise if label_noise is None else label_noise,
    )
    return fit(replace(config, supervision=sup), data_root=data_root, out_dir=out_dir,
               resume=resume, progress=progress, cache_dir=cache_dir)
