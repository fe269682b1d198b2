"""Training on PyTorch Lightning: the Lightning module, the trainer set-up and :func:`train`.

Conventions: a training *run* is a folder ``RUN`` that holds everything needed to reproduce and to
use it::

    RUN/config.yaml        the resolved run configuration (classes, calibrated time offset)
    RUN/model.pt           best weights + config: what ``softloc.inference.Detector.load`` reads
    RUN/metrics.json       validation scores, steps, wall time, softloc version
    RUN/checkpoints/       Lightning checkpoints: best.ckpt (by validation score), last.ckpt
    RUN/logs/csv/          metrics.csv (CSVLogger)
    RUN/logs/tensorboard/  TensorBoard event files

Batches are dicts from ``softloc.data.windows`` (``mel`` power mel ``(batch, n_mels, time)``,
``length``, ``counts (batch, class)``, ``targets (batch, class, time)``). Checkpoint selection
uses validation F1 on whole validation files when they have timestamps and the run trains on
timestamps, else the exact-count rate of the validation windows (counts-only supervision never
looks at timestamps).

The network (``softloc.models``) and the inference code never import this module.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, RandomSampler

from softloc import __version__
from softloc.config import (
    RunConfig,
    atomic_write_text,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from softloc.counting import count_distribution
from softloc.timebase import ms_to_frames
from softloc.inference import (
    MODEL_FILE,
    Detector,
    calibrate_time_offset,
    save_model_file,
)
from softloc.losses import (
    AlphaSchedule,
    bce_loss,
    bootstrap_loss,
    loco_loss,
    one_sided_loss,
    smoothed_targets,
    softloc_loss,
)
from softloc.metrics import evaluate
from softloc.models import model_from_config

__all__ = ["DetectorModule", "TrainResult", "train", "LABEL_MODES"]

#: Supervision modes of :func:`train`.
LABEL_MODES = ("counts", "onsets", "mixed")
_TIMESTAMP_LOSSES = ("softloc", "bce", "smoothed_bce", "one_sided", "bootstrap")


class DetectorModule(L.LightningModule):
    """Lightning wrapper: loss selection, Adam, validation metrics. Holds a ``softloc.models`` net.

    Args:
        config: the run configuration as plain data (``config_to_dict``), saved in checkpoints.
        valid_files: optional ``[(stem, mel (n_mels, frames), events [(time_s, label)])]`` scored
            by F1 at each validation (set by :func:`train`, not saved).
    """

    def __init__(self, config: dict, valid_files: list | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config_from_dict(config)
        self.model = model_from_config(self.config)
        self.valid_files = valid_files or []
        loss = self.config.loss
        self.alpha = AlphaSchedule(
            start=loss.alpha_start_step,
            ramp=loss.alpha_ramp_steps,
            floor=loss.alpha_min,
            ceiling=loss.alpha_max,
        )
        self.sigma_frames = ms_to_frames(loss.softness_ms, self.config.features.frame_rate)
        self._val_hits: list[torch.Tensor] = []
        self._val_abs: list[torch.Tensor] = []

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(mel, lengths)

    def compute_loss(self, probs: torch.Tensor, batch: dict) -> torch.Tensor:
        """The configured training loss of one batch (see ``softloc.config.LossConfig``)."""
        name = self.config.loss.name
        k_max = self.config.loss.k_max
        lengths = batch["length"]
        if name == "loco":
            return loco_loss(probs, batch["counts"], k_max, lengths=lengths)
        # Two events of one class can share a frame (e.g. after label noise): the frame label
        # is 1, the count term keeps both events through batch["counts"].
        targets = batch["targets"].clamp(max=1.0)
        if name == "softloc":
            # Per-item softness; items without timestamps carry sigma = inf (count term only).
            return softloc_loss(
                probs,
                targets,
                batch["sigma_frames"],
                self.alpha(int(self.global_step)),
                k_max,
                lengths=lengths,
                counts=batch["counts"],
                reduction=self.config.loss.reduction,
            )
        if name == "bce":
            return bce_loss(probs, targets, lengths=lengths)
        if name == "smoothed_bce":
            # Baseline: cross-entropy against a peak-1 Gaussian heat map of the labels.
            heat = smoothed_targets(targets.clamp(max=1.0), self.sigma_frames, lengths=lengths,
                                    normalize="peak")
            return bce_loss(probs, heat, lengths=lengths)
        if name == "one_sided":
            return one_sided_loss(
                probs, targets, self.sigma_frames, lengths=lengths,
                reduction=self.config.loss.reduction,
            )
        if name == "bootstrap":
            return bootstrap_loss(probs, targets, lengths=lengths)
        raise ValueError(f"DetectorModule: unknown loss {name!r}")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        probs = self.model(batch["mel"], batch["length"])
        loss = self.compute_loss(probs, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=probs.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        probs = self.model(batch["mel"], batch["length"])
        loss = self.compute_loss(probs, batch)
        self.log("val/loss", loss, batch_size=probs.shape[0])
        dist = count_distribution(probs, self.config.loss.k_max, lengths=batch["length"])
        predicted = dist.argmax(-1)  # (B, C, K+1) -> (B, C)
        target = batch["counts"].clamp(max=self.config.loss.k_max)
        self._val_hits.append((predicted == target).float().flatten().cpu())
        self._val_abs.append((predicted - target).abs().float().flatten().cpu())

    def on_validation_epoch_end(self) -> None:
        metrics: dict[str, float] = {}
        if self._val_hits:
            metrics["val/count_acc"] = float(torch.cat(self._val_hits).mean())
            metrics["val/count_mae"] = float(torch.cat(self._val_abs).mean())
        self._val_hits.clear()
        self._val_abs.clear()
        if self.valid_files:
            metrics["val/f1"] = self._valid_f1()
        score = metrics.get("val/f1", metrics.get("val/count_acc", 0.0))
        metrics["val/score"] = score
        for key, value in metrics.items():
            self.log(key, value, prog_bar=key in ("val/score",), sync_dist=True)

    def _valid_f1(self) -> float:
        detector = Detector(self.model, self.config)
        ref, est = {}, {}
        for stem, mel, events in self.valid_files:
            probs = detector.probabilities_from_mel(mel)
            ref[stem] = events
            est[stem] = detector.events_from_probabilities(probs).labelled(self.config.classes)
        self.model.train()
        est = {k: [(max(0.0, t), lab) for t, lab in v] for k, v in est.items()}
        result = evaluate(ref, est, classes=self.config.classes)
        f1 = result["overall"]["f1"]
        return 0.0 if f1 != f1 else float(f1)

    def configure_optimizers(self) -> Any:
        t = self.config.train
        optimizer = torch.optim.Adam(self.model.parameters(), lr=t.learning_rate)
        if t.lr_schedule == "constant":
            return optimizer

        def factor(step: int) -> float:
            progress = min(step / max(t.max_steps, 1), 1.0)
            return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temp file and renamed, so a crash never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run folder.
        config: the resolved configuration (classes, calibrated time offset).
        metrics: the content of ``RUN/metrics.json``.
    """

    run_dir: Path
    config: RunConfig
    metrics: dict


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


def _label_noise_events(index: Any, stems: list[str], spec: str, seed: int) -> Any:
    """A copy of ``index`` whose events of ``stems`` are perturbed by ``softloc.noise``."""
    from softloc.noise import parse_noise, perturb_events

    model = parse_noise(spec)
    rng = np.random.default_rng(seed)
    noisy = {}
    for stem in stems:
        events = index.events.get(stem)
        if events is None:
            continue
        duration = float(index.durations_s[stem])
        times = np.clip([t for t, _ in events], 0.0, duration)
        new_times, labels = perturb_events(
            times, [lab for _, lab in events], model=model, duration_s=duration, seed=rng
        )
        noisy[stem] = [(float(t), lab) for t, lab in zip(new_times, labels or [], strict=True)]
    return index.with_events(noisy)


def _annotation_sources(annotations: Any) -> list[Any]:
    """``train(annotations=...)``: one folder or several, each ``DIR`` or ``DIR:SOFTNESS_MS``."""
    from softloc.data.supervision import parse_annotation_source

    items = [annotations] if isinstance(annotations, str | os.PathLike) else list(annotations)
    if not items:
        raise ValueError("train: `annotations` is empty; expected at least one folder")
    return [parse_annotation_source(os.fspath(a)) for a in items]


def _valid_file_list(store: Any, index: Any, stems: list[str]) -> list:
    out = []
    for stem in stems:
        events = index.events.get(stem)
        if events is None:
            return []
        out.append((stem, torch.as_tensor(store.get(stem, 1.0)), list(events)))
    return out


def train(
    config: RunConfig,
    *,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    labels: str = "counts",
    annotations: str | os.PathLike | Sequence[str] = "annotations",
    softness_csv: str | os.PathLike | None = None,
    label_noise: str | None = None,
    resume: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a detector on a dataset in the generic layout and write a run folder.

    Args:
        config: run configuration (a preset with overrides); ``classes`` empty = the dataset's.
        data_root: dataset folder (``softloc.data.layout``).
        out_dir: run folder to create (must be new or empty, unless ``resume``).
        labels: ``"counts"`` (train on ``counts.csv`` windows only), ``"onsets"`` (windows cut
            from annotated files; counts derived from the events) or ``"mixed"`` (annotated
            files as in ``"onsets"``, training files without annotations from their
            ``counts.csv`` windows, count term only; losses ``softloc`` and ``loco``).
        annotations: annotation folder name/path (relative to ``data_root`` or absolute), or
            several, one per annotator, each ``"DIR"`` or ``"DIR:SOFTNESS_MS"`` (SoftLoc §4.4;
            see ``softloc.data.supervision``). The first one also gives the validation labels.
        softness_csv: per-file softness table (``file,softness_ms``); default
            ``data_root/softness.csv`` when it exists.
        label_noise: perturb training timestamps, e.g. ``"normal:100ms"`` (``softloc.noise``).
        resume: continue ``out_dir/checkpoints/last.ckpt``; ``config`` must equal the run's saved
            ``config.yaml`` except for the runtime fields (``train.max_steps``, threads, devices).
        progress: show Lightning's progress bar.
        cache_dir: feature cache (default ``out_dir/cache``, deleted after training).

    Returns:
        a :class:`TrainResult`.

    Raises:
        ValueError: bad ``labels``, a loss that needs timestamps with ``labels="counts"``, a
            dataset without the needed labels.
        FileExistsError: ``out_dir`` exists and is not empty (and not ``resume``).
        FileNotFoundError: no dataset / nothing to resume.
    """
    from softloc.data import load_dataset
    from softloc.data.supervision import (
        SOFTNESS_CSV,
        plan_supervision,
        supervised_windows,
    )
    from softloc.data.windows import WindowDataset, collate, prepare_features

    fn = "train"
    if labels not in LABEL_MODES:
        raise ValueError(f"{fn}: `labels` must be one of {LABEL_MODES}, got {labels!r}")
    out_dir = Path(out_dir)
    _check_run_dir(out_dir, resume)
    if resume:
        saved = load_config(out_dir / "config.yaml")
        if not config.classes:
            config = replace(config, classes=saved.classes)
        runtime = ("max_steps", "num_threads", "accelerator", "devices", "num_nodes", "strategy")
        same_train = all(
            getattr(config.train, f) == getattr(saved.train, f)
            for f in ("learning_rate", "grad_clip_norm", "val_every_n_steps", "seed", "precision")
        )
        if replace(config, train=saved.train, inference=saved.inference) != replace(
            saved, inference=saved.inference
        ) or not same_train:
            raise ValueError(
                f"{fn}: --resume needs the run's saved configuration ({out_dir / 'config.yaml'}); "
                f"only train.{{{', '.join(runtime)}}} may change"
            )
    if labels == "counts" and config.loss.name in _TIMESTAMP_LOSSES:
        raise ValueError(
            f"{fn}: loss {config.loss.name!r} needs timestamps; use --labels onsets "
            "(or --loss loco for counts)"
        )
    if label_noise is not None and labels != "onsets":
        raise ValueError(f"{fn}: `label_noise` perturbs timestamps; it needs labels='onsets'")
    if labels == "mixed" and config.loss.name not in ("softloc", "loco"):
        raise ValueError(
            f"{fn}: labels='mixed' trains count-only files through the count term; it needs "
            f"loss softloc or loco, got {config.loss.name!r}"
        )
    sources = _annotation_sources(annotations)
    use_plan = labels != "counts" and (
        labels == "mixed"
        or len(sources) > 1
        or softness_csv is not None
        or sources[0].softness_ms is not None
        or (Path(data_root) / SOFTNESS_CSV).is_file()
    )
    if use_plan and label_noise is not None:
        raise ValueError(
            f"{fn}: `label_noise` works with one annotation folder and no per-file softness"
        )

    t_start = time.perf_counter()
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)

    d = config.data
    index = load_dataset(
        data_root,
        annotations=sources[0].folder,
        labels=config.classes or None,
        split_seed=config.train.seed,
        split_fractions=(
            1.0 - d.valid_fraction - d.test_fraction, d.valid_fraction, d.test_fraction
        ),
    )
    if not config.classes:
        config = replace(config, classes=tuple(index.classes))
    train_stems = list(index.splits["train"])
    valid_stems = list(index.splits["valid"])
    if not train_stems:
        raise ValueError(f"{fn}: {data_root}: the train split is empty")
    if labels == "onsets":
        missing = [s for s in train_stems if not index.has_events(s)]
        if missing:
            raise ValueError(
                f"{fn}: labels='onsets' needs an annotation file for every training stem; "
                f"missing for {missing[:5]} in {sources[0].folder!r} (use labels='mixed' to "
                "train files without annotations from their counts)"
            )
    elif labels == "counts":
        missing = [s for s in train_stems if not index.count_windows.get(s)]
        if missing:
            raise ValueError(
                f"{fn}: labels='counts' needs counts.csv rows for every training stem; "
                f"none for {missing[:5]}"
            )
    train_index = index
    if label_noise is not None:
        train_index = _label_noise_events(index, train_stems, label_noise, config.train.seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    max_frames = math.ceil(d.window_s * config.features.frame_rate / min(d.rate_factors)) + 2
    store = prepare_features(
        train_index,
        config.features,
        cache_dir=cache,
        stems=train_stems + valid_stems,
        rate_factors=tuple(sorted(set(d.rate_factors) | {1.0})),
    )
    sigma = ms_to_frames(config.loss.softness_ms, config.features.frame_rate)
    def _train_windows(g_index: Any, stems: list, mode: str, sigma_frames: float) -> Any:
        return WindowDataset(
            g_index,
            store,
            stems=stems,
            labels=mode,
            window_s=d.window_s,
            hop_s=d.hop_s,
            max_frames=max_frames,
            rate_factors=d.rate_factors,
            stack_prob=d.stack_prob,
            variable_length=d.variable_length,
            augment=True,
            sigma_frames=sigma_frames,
            seed=config.train.seed,
        )

    if use_plan:
        plan = plan_supervision(
            data_root,
            train_stems,
            sources=sources,
            default_softness_ms=config.loss.softness_ms,
            frame_rate=config.features.frame_rate,
            softness_csv=softness_csv,
            counts_only=labels == "mixed",
            classes=config.classes,
        )
        logging.getLogger(__name__).info("training labels:\n%s", plan.summary())
        train_ds: Any = supervised_windows(plan, _train_windows)
    else:
        train_ds = _train_windows(
            train_index, train_stems, labels, sigma if labels == "onsets" else math.inf
        )
    valid_labels = labels
    if labels == "mixed":
        valid_labels = "onsets" if all(index.has_events(s) for s in valid_stems) else "counts"
    valid_ds = None
    if valid_stems:
        valid_has_counts = all(index.count_windows.get(s) for s in valid_stems)
        valid_mode = (
            valid_labels if valid_labels == "onsets" or valid_has_counts else "onsets"
        )
        if valid_mode == "onsets" and not all(index.has_events(s) for s in valid_stems):
            valid_ds = None
        else:
            valid_ds = WindowDataset(
                index,
                store,
                stems=valid_stems,
                labels=valid_mode,
                window_s=d.window_s,
                hop_s=d.hop_s,
                max_frames=max_frames,
                augment=False,
                seed=config.train.seed,
            )
    # Validation F1 on whole files only for timestamp supervision: a counts-only run must not
    # select its checkpoint with timestamps it is not supposed to have.
    valid_files = (
        _valid_file_list(store, index, valid_stems) if valid_labels == "onsets" else []
    )

    t = config.train
    sampler = RandomSampler(train_ds, replacement=True, num_samples=t.max_steps * d.batch_size)
    generator = torch.Generator().manual_seed(t.seed)
    train_loader = DataLoader(
        train_ds,
        batch_size=d.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=d.num_workers,
        generator=generator,
        persistent_workers=d.num_workers > 0,
    )
    valid_loader = (
        DataLoader(valid_ds, batch_size=d.batch_size, shuffle=False, collate_fn=collate)
        if valid_ds is not None and len(valid_ds) > 0
        else None
    )

    module = DetectorModule(config_to_dict(config), valid_files=valid_files)
    ckpt_dir = out_dir / "checkpoints"
    has_val = valid_loader is not None or bool(valid_files)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val/score" if has_val else None,
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    loggers = [
        # a resumed run logs into a new folder: the CSV logger would replace the earlier file
        CSVLogger(out_dir / "logs", name="", version=_csv_version(out_dir / "logs", resume)),
        TensorBoardLogger(
            out_dir / "logs", name="", version="tensorboard", default_hp_metric=False
        ),
    ]
    val_every = min(t.val_every_n_steps, t.max_steps)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=_devices(t.devices),
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]
        gradient_clip_val=t.grad_clip_norm,
        gradient_clip_algorithm="norm",
        val_check_interval=val_every if has_val else None,
        check_val_every_n_epoch=None if has_val else 1,
        limit_val_batches=1.0 if valid_loader is not None else 0,
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
    ckpt_path = ckpt_dir / "last.ckpt" if resume and (ckpt_dir / "last.ckpt").is_file() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        if valid_loader is None and valid_files:
            valid_loader = DataLoader([{}], batch_size=1, collate_fn=lambda b: b)  # type: ignore
            module.validation_step = lambda batch, batch_idx: None  # type: ignore
        trainer.fit(module, train_loader, valid_loader, ckpt_path=ckpt_path)

    best_path = checkpoint.best_model_path or str(ckpt_dir / "last.ckpt")
    if trainer.global_rank != 0:
        return TrainResult(out_dir, config, {})
    state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    model = module.model.cpu().eval()

    config, calibration = _calibrate(model, config, store, index, valid_stems)
    save_config(config, out_dir / "config.yaml")
    save_model_file(out_dir / MODEL_FILE, model, config)
    best_score = checkpoint.best_model_score
    metrics = {
        "softloc_version": __version__,
        "labels": labels,
        "loss": config.loss.name,
        "label_noise": label_noise,
        "steps": int(trainer.global_step),
        "best_checkpoint": Path(best_path).name,
        "best_val_score": None if best_score is None else float(best_score),
        "val_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "calibration": calibration,
        "train_stems": len(train_stems),
        "valid_stems": len(valid_stems),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if cache_dir is None:
        shutil.rmtree(cache, ignore_errors=True)
    return TrainResult(out_dir, config, metrics)


def _csv_version(logs: Path, resume: bool) -> str:
    if not resume or not (logs / "csv").exists():
        return "csv"
    n = 1
    while (logs / f"csv-resume-{n}").exists():
        n += 1
    return f"csv-resume-{n}"


def _devices(devices: str) -> int | str | list[int]:
    text = str(devices).strip()
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        return int(text)
    if "," in text:
        return [int(x) for x in text.split(",") if x.strip()]
    return text


def _calibrate(
    model: torch.nn.Module, config: RunConfig, store: Any, index: Any, stems: list
) -> tuple[RunConfig, dict]:
    """Per-class time offsets and thresholds from the validation files.

    With timestamps: offsets are minus the median signed error of detections matched within
    100 ms (``calibrate_time_offset``); thresholds the value of a grid (0.10 ... 0.70) that
    maximises the class's pooled F1 at +-50 ms with that offset. With counts only
    (``inference.calibrate_with``): see :func:`_calibrate_from_counts`. The network's weights
    are not touched.
    """
    from softloc.metrics import match_onsets

    inf = config.inference
    if not (inf.calibrate_offset or inf.calibrate_threshold):
        return config, {"source": "none (disabled)"}
    annotated = [s for s in stems if index.has_events(s)]
    if inf.calibrate_with == "counts" or (inf.calibrate_with == "auto" and not annotated):
        return _calibrate_from_counts(model, config, store, index, stems)
    if not annotated:
        return config, {"source": "none (no validation timestamps)"}
    n_classes = len(config.classes)
    detector = Detector(model, config).with_settings(class_offsets_s=(), class_thresholds=())
    probs = {s: detector.probabilities_from_mel(torch.as_tensor(store.get(s, 1.0)))
             for s in annotated}
    refs = {s: [np.array([t for t, lab in index.events[s] if lab == c]) for c in config.classes]
            for s in annotated}

    def per_class_times(det: Detector, stem: str) -> list[np.ndarray]:
        events = det.events_from_probabilities(probs[stem])
        return [np.clip(t, 0.0, None) for t in events.per_class()]

    def estimate_offsets(thresholds: list[float]) -> list[float]:
        det = detector.with_settings(class_thresholds=thresholds)
        est = {s: per_class_times(det, s) for s in annotated}
        return [
            round(calibrate_time_offset([est[s][c] for s in annotated],
                                        [refs[s][c] for s in annotated]), 4)
            for c in range(n_classes)
        ]

    # Offsets first at a low threshold (an undertrained class may not reach the default), then
    # thresholds with those offsets, then the offsets again at the chosen thresholds.
    offsets = [0.0] * n_classes
    if inf.calibrate_offset:
        offsets = estimate_offsets([min(inf.threshold, 0.2)] * n_classes)
    thresholds = [inf.threshold] * n_classes
    best_f1 = [float("nan")] * n_classes
    if inf.calibrate_threshold:
        grid = [round(float(x), 2) for x in np.arange(0.10, 0.701, 0.05)]
        scores = np.zeros((len(grid), n_classes))
        for g, thr in enumerate(grid):
            det = detector.with_settings(threshold=thr, class_offsets_s=offsets)
            tp = np.zeros(n_classes)
            n_est = np.zeros(n_classes)
            n_ref = np.zeros(n_classes)
            for s in annotated:
                times = per_class_times(det, s)
                for c in range(n_classes):
                    tp[c] += len(match_onsets(refs[s][c], times[c], tolerance_s=0.05))
                    n_est[c] += len(times[c])
                    n_ref[c] += len(refs[s][c])
            scores[g] = 2 * tp / np.maximum(n_est + n_ref, 1)
        for c in range(n_classes):
            g = int(np.argmax(scores[:, c]))
            thresholds[c], best_f1[c] = grid[g], round(float(scores[g, c]), 4)
        if inf.calibrate_offset:
            offsets = estimate_offsets(thresholds)
    new_inf = replace(
        inf,
        class_offsets_s=tuple(offsets) if inf.calibrate_offset else inf.class_offsets_s,
        class_thresholds=tuple(thresholds) if inf.calibrate_threshold else inf.class_thresholds,
    )
    info = {
        "source": f"validation timestamps of {len(annotated)} files",
        "class_offsets_s": dict(zip(config.classes, offsets, strict=True)),
        "class_thresholds": dict(zip(config.classes, thresholds, strict=True)),
        "valid_f1_per_class": dict(zip(config.classes, best_f1, strict=True)),
    }
    return replace(config, inference=new_inf), info


def _calibrate_from_counts(
    model: torch.nn.Module, config: RunConfig, store: Any, index: Any, stems: list
) -> tuple[RunConfig, dict]:
    """Per-class thresholds from the validation files' counts.csv windows (no timestamps).

    For each class, the threshold of the grid 0.10 ... 0.70 whose detections best reproduce the
    counts: the smallest total |detected - counted| over the windows (detections at
    ``start <= t < end``), ties broken towards the configured threshold. Offsets are left as
    they are; a count says nothing about time.
    """
    inf = config.inference
    windows = [(s, w) for s in stems for w in index.count_windows.get(s, [])]
    if not inf.calibrate_threshold or not windows:
        why = "disabled" if not inf.calibrate_threshold else "no validation counts"
        return config, {"source": f"none ({why})"}
    n_classes = len(config.classes)
    detector = Detector(model, config).with_settings(class_thresholds=())
    used = sorted({s for s, _ in windows})
    probs = {s: detector.probabilities_from_mel(torch.as_tensor(store.get(s, 1.0))) for s in used}
    grid = [round(float(x), 2) for x in np.arange(0.10, 0.701, 0.05)]
    errors = np.zeros((len(grid), n_classes))
    n_counted = np.zeros(n_classes)
    for g, thr in enumerate(grid):
        det = detector.with_settings(threshold=thr)
        times = {s: det.events_from_probabilities(probs[s]).per_class() for s in used}
        for s, w in windows:
            for c, name in enumerate(config.classes):
                if name not in w.counts:
                    continue
                t = times[s][c]
                found = int(np.count_nonzero((t >= w.start_s) & (t < w.end_s)))
                errors[g, c] += abs(found - int(w.counts[name]))
                if g == 0:
                    n_counted[c] += int(w.counts[name])
    thresholds = []
    for c in range(n_classes):
        best = errors[:, c].min()
        candidates = [grid[g] for g in range(len(grid)) if errors[g, c] == best]
        thresholds.append(min(candidates, key=lambda x: abs(x - inf.threshold)))
    best_err = [round(float(errors[grid.index(t), c]), 1) for c, t in enumerate(thresholds)]
    new_inf = replace(inf, class_thresholds=tuple(thresholds))
    info = {
        "source": f"validation counts of {len(windows)} windows in {len(used)} files",
        "class_thresholds": dict(zip(config.classes, thresholds, strict=True)),
        "valid_count_abs_error": dict(zip(config.classes, best_err, strict=True)),
        "valid_events_counted": dict(zip(config.classes, n_counted.tolist(), strict=True)),
    }
    return replace(config, inference=new_inf), info
