"""Train a detector into a run folder: :func:`fit` (and :func:`train`, its keyword form).

A training *run* is a folder ``RUN`` that holds everything needed to reproduce and to use it::

    RUN/config.yaml        the resolved run configuration (classes, supervision, calibration)
    RUN/model.pt           best weights, network name and arguments, config
                           (softloc.inference.model_file; what Detector.load reads)
    RUN/metrics.json       validation scores, steps, wall time, split, calibration, versions
    RUN/checkpoints/       best.ckpt (by validation score) and last.ckpt (written at every
                           validation and at the last step: what --resume continues)
    RUN/logs/csv/          metrics.csv (CSVLogger; a resumed run logs to csv-resume-N/)
    RUN/logs/tensorboard/  TensorBoard event files

Steps of :func:`fit`: check everything that can be checked without reading data (the
configuration validates itself when it is built; the run folder, the loss, the supervision, the
network), create the run folder, prepare data and loaders (``softloc.training.loaders``), make
LoCo eq. 15 exact on the first batch (``softloc.training.recipe``), train an
:class:`~softloc.training.EventModule` with Lightning, reload the best checkpoint, calibrate the
decoder on the validation files (``softloc.inference.calibrate``), and write ``config.yaml``,
``model.pt`` and ``metrics.json``. A failure before training starts removes the run folder it
created.

Resuming (``resume=True``) continues ``RUN/checkpoints/last.ckpt`` (loaded with
``weights_only=True``, and only from the run's own folder: paths stored inside a checkpoint are
never followed). The batches are a function of the seed and the step
(:class:`~softloc.training.loaders.StepSampler`), so a run killed at any point and resumed ends
with the weights of the uninterrupted run. Ctrl-C raises :class:`TrainingInterrupted`, which
names the run folder to resume.

Checkpoint selection uses validation F1 on whole validation files when the run calibrates on
timestamps (``softloc.inference.calibrate.calibration_source``), else the exact-count rate of the
validation windows (counts never change under label noise).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from softloc._io import atomic_write_text, is_rank_zero, provenance
from softloc._version import __version__
from softloc.config import (
    RunConfig,
    SupervisionConfig,
    parse_devices,
    save_config,
)
from softloc.inference.calibrate import calibrate
from softloc.inference.detector import Detector, make_input_stage
from softloc.inference.model_file import MODEL_FILE, save_model_file
from softloc.losses.registry import build_loss
from softloc.metrics import evaluate
from softloc.models.build import model_from_config, window_frames
from softloc.models.heads import prior_output_bias
from softloc.runtime import keep_freed_memory
from softloc.training.loaders import (
    TrainingData,
    check_supervision,
    collate_batch,
    make_loaders,
    prepare_training_data,
)
from softloc.training.module import EventModule, OptimSettings
from softloc.training.recipe import (
    count_prior_biases,
    match_output_prior,
    unit_variance_convolutions,
)
from softloc.training.run_folder import (
    LastCheckpoint,
    RunCheckpointIO,
    RunFolderCheckpoint,
    TrainingInterrupted,
    check_run_dir,
    load_checkpoint,
    resume_config,
    resume_step,
    wait_for_rank_zero,
)

__all__ = [
    "TrainResult",
    "file_f1_validator",
    "fit",
    "parse_devices",
    "train",
]


_log = logging.getLogger("softloc.training")


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


def _check_before_work(config: RunConfig) -> None:
    """Checks that need no data: the network builds from the configuration (sizes, pools)."""
    model_from_config(config if config.classes else replace(config, classes=("_",)))
    window_frames(config)


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


def _make_trainer(config: RunConfig, out_dir: Path, callbacks: list[Callback], *,
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
        gradient_clip_val=t.grad_clip_norm or None,
        gradient_clip_algorithm="norm",
        val_check_interval=min(t.val_every_n_steps, t.max_steps) if has_val else None,
        check_val_every_n_epoch=None if has_val else 1,
        limit_val_batches=1.0 if val_batches else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=loggers,
        plugins=[RunCheckpointIO()],
        enable_progress_bar=progress,
        # each rank draws its own slice of a step's windows (StepSampler), so Lightning must not
        # wrap the sampler; validation runs whole on every rank
        use_distributed_sampler=False,
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


def _first_batch(loader: DataLoader) -> dict[str, torch.Tensor]:
    """Step 0's batch, drawn without touching the loader's iterator or any global RNG."""
    sampler, dataset = loader.sampler, loader.dataset
    items = [dataset[(0, i)] for i in sampler.step_indices(0).tolist()]  # type: ignore[attr-defined]
    return collate_batch(items)


def _fit_module(module: EventModule, data: TrainingData, out_dir: Path, *, start_step: int,
                resume: bool, progress: bool) -> tuple[L.Trainer, LastCheckpoint]:
    """Run Lightning; returns the trainer and the last-checkpoint callback."""
    ckpt_dir = out_dir / "checkpoints"
    val_windows = data.valid_set is not None and len(data.valid_set) > 0  # type: ignore[arg-type]
    has_val = val_windows or bool(data.valid_files)
    every = min(data.config.train.val_every_n_steps, data.config.train.max_steps)
    last = LastCheckpoint(ckpt_dir, every_n_steps=every, has_val=has_val)
    callbacks: list[Callback] = [last]
    if has_val:
        callbacks.insert(0, RunFolderCheckpoint(
            dirpath=ckpt_dir, filename="best", monitor="val/score", mode="max", save_top_k=1,
            enable_version_counter=False, save_on_train_epoch_end=False))
    trainer = _make_trainer(data.config, out_dir, callbacks, has_val=has_val,
                            val_batches=val_windows, resume=resume, progress=progress)
    # with DDP, rank r of W draws the r-th slice of each step's W * batch_size windows
    train_loader, valid_loader = make_loaders(data, start_step=start_step,
                                              rank=trainer.global_rank,
                                              world_size=trainer.world_size)
    m = data.config.model
    if not resume and (m.exact_prior or m.unit_variance_init):
        first = _first_batch(train_loader)
        if m.unit_variance_init:
            unit_variance_convolutions(module.model, first)
        if m.exact_prior:
            frames = window_frames(data.config)
            bias = prior_output_bias(frames, m.prior_omega)
            if m.prior_from_counts and "counts" in first:
                bias = count_prior_biases(first["counts"], frames, bias)
            match_output_prior(module.model, first, output_bias=bias)
    if valid_loader is None and data.valid_files:
        # F1 on whole files only: one empty batch so that validation runs at all
        valid_loader = DataLoader([{}], batch_size=1,  # type: ignore[arg-type]
                                  collate_fn=lambda b: b[0])
    ckpt = ckpt_dir / "last.ckpt" if start_step > 0 else None
    with warnings.catch_warnings():
        for message in (".*does not have many workers.*", ".*val_dataloader.*",
                        ".*Checkpoint directory .* exists and is not empty.*",
                        ".*dirpath has changed.*"):
            warnings.filterwarnings("ignore", message=message)
        _run_interruptible(trainer, module, train_loader, valid_loader, ckpt, last, out_dir)
    return trainer, last


def _run_interruptible(trainer: L.Trainer, module: EventModule, train_loader: DataLoader,
                       valid_loader: DataLoader | None, ckpt: Path | None,
                       last: LastCheckpoint, out_dir: Path) -> None:
    """``trainer.fit``; Lightning turns Ctrl-C into ``sys.exit(1)`` after a graceful shutdown:
    that becomes :class:`TrainingInterrupted` (and the Ctrl-C handler is restored)."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        trainer.fit(module, train_loader, valid_loader, ckpt_path=ckpt, weights_only=True)
    except SystemExit:
        if not last.interrupted:
            raise
        step = 0
        if (out_dir / "checkpoints" / "last.ckpt").is_file():
            step = int(load_checkpoint(out_dir / "checkpoints" / "last.ckpt")["global_step"])
        raise TrainingInterrupted(out_dir, step) from None
    finally:
        if main and handler is not None:
            signal.signal(signal.SIGINT, handler)


def _write_metrics(out_dir: Path, config: RunConfig, data: TrainingData, trainer: L.Trainer,
                   best_path: Path, best_score: float | None, calibration: dict,
                   t_start: float) -> dict:
    metrics = {
        "softloc_version": __version__,
        "labels": config.supervision.labels,
        "loss": config.loss.name,
        "label_noise": config.supervision.label_noise,
        "steps": int(trainer.global_step),
        "best_checkpoint": best_path.name,
        "best_val_score": best_score,
        "val_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "calibration": calibration,
        "split": data.split_note,
        "train_stems": len(data.train_stems),
        "valid_stems": len(data.valid_stems),
        "valid_files": list(data.valid_stems),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
        "torch_threads": torch.get_num_threads(),
        "versions": provenance(),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _best_checkpoint(out_dir: Path, trainer: L.Trainer, select: str
                     ) -> tuple[Path, float | None]:
    """The run's own best.ckpt (else, or with ``select="last"``, last.ckpt) and its score;
    never a path read from a checkpoint."""
    ckpt_dir = out_dir / "checkpoints"
    if select == "last":
        return ckpt_dir / "last.ckpt", None
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(cb, RunFolderCheckpoint) and not isinstance(cb, LastCheckpoint):
            score = cb.best_model_score
            if (ckpt_dir / "best.ckpt").is_file():
                return ckpt_dir / "best.ckpt", None if score is None else float(score)
    return ckpt_dir / "last.ckpt", None


def _prepare(config: RunConfig, loss: Any, data_root: Any, out_dir: Path, *, sources: Any,
             use_plan: bool, cache: Path, write: bool = True) -> tuple[TrainingData, EventModule]:
    """Data, the saved configuration (``write``: rank 0 only) and the module (the network
    initialised from the seed)."""
    data = prepare_training_data(config, data_root, sources=sources, use_plan=use_plan,
                                 cache_dir=cache)
    config = data.config
    if write:
        save_config(config, out_dir / "config.yaml")
    validator = file_f1_validator(config, data.valid_files) if data.valid_files else None
    L.seed_everything(config.train.seed, workers=True, verbose=False)  # the initialisation
    module = EventModule(model_from_config(config), loss,
                         optim=OptimSettings.from_config(config.train),
                         count_k_max=config.loss.k_max, validator=validator)
    return data, module


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
            ``config.yaml`` except for ``train.{max_steps, num_threads, keep_freed_memory,
            accelerator, devices, num_nodes, strategy}``, and ``train.max_steps`` must exceed
            the steps done.
        progress: show Lightning's progress bar.
        cache_dir: feature cache (default ``out_dir/cache``, deleted after training when this
            call created it).

    Returns:
        a :class:`TrainResult`.

    Raises:
        ValueError: supervision that the loss or the dataset cannot serve, a network the
            configuration cannot build, a changed configuration or nothing to do on resume, a
            checkpoint that does not load with ``weights_only=True``.
        FileExistsError: ``out_dir`` exists and is not empty (and not ``resume``).
        FileNotFoundError: no dataset / nothing to resume.
        TrainingInterrupted: Ctrl-C during training (the run can be resumed).
    """
    out_dir = Path(out_dir)
    rank_zero = is_rank_zero()
    config, loss, sources, use_plan, start_step = _begin(config, data_root, out_dir,
                                                         resume=resume, rank_zero=rank_zero)
    t_start = time.perf_counter()
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    if config.train.keep_freed_memory:
        keep_freed_memory()
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    own_cache = cache_dir is None and not cache.exists()
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        data, module = _prepare(config, loss, data_root, out_dir, sources=sources,
                                use_plan=use_plan, cache=cache, write=rank_zero)
    except BaseException:
        if created and rank_zero:
            shutil.rmtree(out_dir, ignore_errors=True)
        elif own_cache and rank_zero:
            shutil.rmtree(cache, ignore_errors=True)
        raise
    trainer, _ = _fit_module(module, data, out_dir, start_step=start_step, resume=resume,
                             progress=progress)
    if trainer.global_rank != 0:
        return TrainResult(out_dir, data.config, {})
    config, metrics = _finish(module, data, trainer, out_dir, t_start)
    if own_cache:
        shutil.rmtree(cache, ignore_errors=True)
    return TrainResult(out_dir, config, metrics)


def _begin(config: RunConfig, data_root, out_dir: Path, *, resume: bool, rank_zero: bool):
    """Every check before work: the run folder, the resumed configuration, the loss and the
    supervision it can be served. Returns (config, loss, sources, use_plan, start_step)."""
    # Distributed runs: only rank 0 checks, creates and writes the run folder (Lightning re-runs
    # the command for the other ranks after rank 0 wrote config.yaml; torchrun / srun start
    # them together, and they wait for it).
    if rank_zero:
        check_run_dir(out_dir, resume)
    else:
        wait_for_rank_zero(out_dir)
    if resume:
        config = resume_config(config, out_dir)
    start_step = resume_step(out_dir, config) if resume else 0
    loss = build_loss(config.loss, frame_rate=config.features.frame_rate,
                      max_steps=config.train.max_steps)
    sources, use_plan = check_supervision(config, data_root, requires=frozenset(loss.requires))
    _check_before_work(config)
    if not Path(data_root).is_dir():
        raise FileNotFoundError(f"train: {data_root}: dataset folder not found")
    return config, loss, sources, use_plan, start_step


def _finish(module, data, trainer, out_dir: Path, t_start: float) -> tuple[RunConfig, dict]:
    """Reload the best checkpoint, calibrate the decoder on the validation files and write the
    model file, config.yaml and metrics.json (rank 0). Returns (calibrated config, metrics)."""
    best_path, best_score = _best_checkpoint(out_dir, trainer,
                                             data.config.train.select_checkpoint)
    ckpt = load_checkpoint(best_path)
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"])
    model = module.model.cpu().eval()
    valid = data.valid_stems
    # the stage detect will use (signal runs: p(t) at the signal rate, the snap)
    stage = make_input_stage(str(getattr(model, "input_kind", "audio")), data.config)
    config, calibration = calibrate(
        Detector(model, data.config, input_stage=stage),
        {s: torch.tensor(data.store.get(s, 1.0)) for s in valid},  # a copy: the cache is read-only
        events={s: data.index.events.get(s) for s in valid},
        count_windows=data.valid_counts,
    )
    save_config(config, out_dir / "config.yaml")
    save_model_file(out_dir / MODEL_FILE, model, config)
    metrics = _write_metrics(out_dir, config, data, trainer, best_path, best_score,
                             calibration, t_start)
    return config, metrics


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
        label_noise: perturb training and validation timestamps, e.g. ``"normal:100ms"``
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
