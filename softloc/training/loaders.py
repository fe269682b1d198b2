"""Training data of an audio run: dataset, features, supervision, windows, loaders.

From a dataset folder (``softloc.data.layout``) and a run configuration to the two loaders
``softloc.training.fit`` hands to Lightning, in explicit steps:

1. :func:`check_supervision`: the run's label settings (``config.supervision``) against its
   loss, before any file is read;
2. :func:`prepare_training_data`: load and split the dataset, check that every training file has
   the labels the mode needs, perturb training timestamps (``supervision.label_noise``), compute
   or load the cached power mels, and build the window datasets:

   * ``counts``: the ``counts.csv`` windows (LoCo);
   * ``onsets``: windows cut from annotated files, counts derived from the events (SoftLoc);
   * ``mixed`` / several annotators / per-file softness: one window set per label source and
     softness (``softloc.data.supervision``), count-only files with softness ``inf``;

3. :func:`make_loaders`: a seeded sampler drawing ``max_steps * batch_size`` training windows
   with replacement, and a validation loader.

Batches (:func:`collate_batch`) are what ``softloc.training.EventModule`` and the losses read:
``"inputs"`` power mel ``(batch, n_mels, time)``, ``"lengths"`` ``(batch,)``, ``"counts"``
``(batch, class)``, ``"targets"`` ``(batch, class, time)`` 0/1 frame labels (two events of one
class on one frame are one label; the count keeps both), ``"sigma_frames"`` ``(batch,)`` the
softness of each item's timestamps (``inf`` = counts only), and the windows' bookkeeping keys.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, default_collate

from softloc.config import RunConfig
from softloc.data.layout import DatasetIndex, load_dataset
from softloc.data.supervision import (
    SOFTNESS_CSV,
    AnnotationSource,
    parse_annotation_source,
    plan_supervision,
    supervised_windows,
)
from softloc.data.windows import FeatureStore, WindowDataset, prepare_features
from softloc.noise import parse_noise, perturb_events
from softloc.timebase import ms_to_frames, padded_window_frames

__all__ = [
    "TrainingData",
    "check_supervision",
    "collate_batch",
    "make_loaders",
    "noisy_index",
    "prepare_training_data",
]

_FN = "train"


def check_supervision(
    config: RunConfig, data_root: str | os.PathLike, *, requires: frozenset[str]
) -> tuple[list[AnnotationSource], bool]:
    """Check ``config.supervision`` against the loss before reading any file.

    Args:
        config: the run configuration.
        data_root: the dataset folder (for its optional ``softness.csv``).
        requires: the loss's ``requires`` (``"targets"``: it needs timestamps; ``"counts"``:
            it can train count-only files).

    Returns:
        ``(sources, use_plan)``: the parsed annotation sources, and whether the windows come
        from a supervision plan (several sources, per-file softness, or ``mixed``).

    Raises:
        ValueError: a loss that needs timestamps with ``labels="counts"``, label noise without
            ``labels="onsets"`` (or with a supervision plan), ``labels="mixed"`` with a loss that
            has no count term.
    """
    sup = config.supervision
    if sup.labels == "counts" and "targets" in requires:
        raise ValueError(
            f"{_FN}: loss {config.loss.name!r} needs timestamps; use --labels onsets "
            "(or --loss loco for counts)"
        )
    if sup.label_noise is not None and sup.labels != "onsets":
        raise ValueError(f"{_FN}: `label_noise` perturbs timestamps; it needs labels='onsets'")
    if sup.labels == "mixed" and "counts" not in requires:
        raise ValueError(
            f"{_FN}: labels='mixed' trains count-only files through the count term; it needs "
            f"loss softloc or loco, got {config.loss.name!r}"
        )
    sources = [parse_annotation_source(a) for a in sup.annotations]
    use_plan = sup.labels != "counts" and (
        sup.labels == "mixed"
        or len(sources) > 1
        or sup.softness_csv is not None
        or sources[0].softness_ms is not None
        or (Path(data_root) / SOFTNESS_CSV).is_file()
    )
    if use_plan and sup.label_noise is not None:
        raise ValueError(
            f"{_FN}: `label_noise` works with one annotation folder and no per-file softness"
        )
    return sources, use_plan


def noisy_index(index: DatasetIndex, stems: list[str], spec: str, *, seed: int) -> DatasetIndex:
    """A copy of ``index`` whose events of ``stems`` are perturbed by ``softloc.noise``.

    Args:
        index: the dataset.
        stems: the stems to perturb (the training split); others keep their events.
        spec: a noise spec, e.g. ``"normal:100ms"`` (``softloc.noise.parse_noise``).
        seed: seed of the perturbation.
    """
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


@dataclass(frozen=True)
class TrainingData:
    """What :func:`prepare_training_data` returns.

    Attributes:
        config: the configuration with ``classes`` filled from the dataset.
        index: the dataset (clean labels: validation and calibration use it).
        train_stems, valid_stems: the split.
        store: power mels of the training and validation files.
        train_set: training windows.
        valid_set: validation windows, or ``None``.
        valid_files: ``[(stem, mel (n_mels, frames), events)]`` whole validation files scored by
            F1 during training: only when the run trains on timestamps and every validation file
            has them (a counts-only run never looks at timestamps).
        plan_summary: the supervision plan, one line per window group ("" without a plan).
    """

    config: RunConfig
    index: DatasetIndex
    train_stems: list[str]
    valid_stems: list[str]
    store: FeatureStore
    train_set: Dataset
    valid_set: Dataset | None
    valid_files: list[tuple[str, torch.Tensor, list[tuple[float, str]]]]
    plan_summary: str = ""


def _load_index(config: RunConfig, data_root: Any, folder: str) -> DatasetIndex:
    d = config.data
    return load_dataset(
        data_root,
        annotations=folder,
        labels=config.classes or None,
        split_seed=config.train.seed,
        split_fractions=(1.0 - d.valid_fraction - d.test_fraction, d.valid_fraction,
                         d.test_fraction),
    )


def _check_train_labels(config: RunConfig, index: DatasetIndex, stems: list[str],
                        folder: str, data_root: Any) -> None:
    labels = config.supervision.labels
    if not stems:
        raise ValueError(f"{_FN}: {data_root}: the train split is empty")
    if labels == "onsets":
        missing = [s for s in stems if not index.has_events(s)]
        if missing:
            raise ValueError(
                f"{_FN}: labels='onsets' needs an annotation file for every training stem; "
                f"missing for {missing[:5]} in {folder!r} (use labels='mixed' to "
                "train files without annotations from their counts)"
            )
    elif labels == "counts":
        missing = [s for s in stems if not index.count_windows.get(s)]
        if missing:
            raise ValueError(
                f"{_FN}: labels='counts' needs counts.csv rows for every training stem; "
                f"none for {missing[:5]}"
            )


def _validation(config: RunConfig, index: DatasetIndex, store: FeatureStore, stems: list[str],
                max_frames: int) -> tuple[WindowDataset | None, list]:
    """Validation windows and the whole validation files scored by F1."""
    labels = config.supervision.labels
    annotated = all(index.has_events(s) for s in stems)
    valid_labels = ("onsets" if annotated else "counts") if labels == "mixed" else labels
    valid_set = None
    if stems:
        has_counts = all(index.count_windows.get(s) for s in stems)
        mode = valid_labels if valid_labels == "onsets" or has_counts else "onsets"
        if mode == "counts" or annotated:
            d = config.data
            valid_set = WindowDataset(index, store, stems=stems, labels=mode, window_s=d.window_s,
                                      hop_s=d.hop_s, max_frames=max_frames, augment=False,
                                      seed=config.train.seed)
    files = []
    if valid_labels == "onsets" and annotated:
        files = [(s, torch.as_tensor(store.get(s, 1.0)), list(index.events[s] or []))
                 for s in stems]
    return valid_set, files


def prepare_training_data(
    config: RunConfig,
    data_root: str | os.PathLike,
    *,
    sources: list[AnnotationSource],
    use_plan: bool,
    cache_dir: str | os.PathLike,
) -> TrainingData:
    """Load the dataset and build the training and validation windows of ``config``.

    Args:
        config: the run configuration (``classes`` empty = the dataset's).
        data_root: the dataset folder.
        sources, use_plan: from :func:`check_supervision`.
        cache_dir: where the power mels are cached.

    Raises:
        ValueError: an empty train split, training files without the labels the mode needs.
        DatasetError, FileNotFoundError: from the dataset's files.
    """
    index = _load_index(config, data_root, sources[0].folder)
    if not config.classes:
        config = replace(config, classes=tuple(index.classes))
    train_stems, valid_stems = list(index.splits["train"]), list(index.splits["valid"])
    _check_train_labels(config, index, train_stems, sources[0].folder, data_root)
    sup, d, fr = config.supervision, config.data, config.features.frame_rate
    train_index = index
    if sup.label_noise is not None:
        train_index = noisy_index(index, train_stems, sup.label_noise, seed=config.train.seed)
    store = prepare_features(train_index, config.features, cache_dir=cache_dir,
                             stems=train_stems + valid_stems,
                             rate_factors=tuple(sorted(set(d.rate_factors) | {1.0})))
    max_frames = padded_window_frames(d.window_s, fr, min_rate_factor=min(d.rate_factors))

    def windows(g_index: DatasetIndex, stems: list, mode: str, sigma_frames: float) -> Dataset:
        return WindowDataset(g_index, store, stems=stems, labels=mode, window_s=d.window_s,
                             hop_s=d.hop_s, max_frames=max_frames, rate_factors=d.rate_factors,
                             stack_prob=d.stack_prob, variable_length=d.variable_length,
                             augment=True, sigma_frames=sigma_frames, seed=config.train.seed)

    summary = ""
    if use_plan:
        plan = plan_supervision(
            data_root, train_stems, sources=sources, default_softness_ms=config.loss.softness_ms,
            frame_rate=fr, softness_csv=sup.softness_csv, counts_only=sup.labels == "mixed",
            classes=config.classes,
        )
        summary = plan.summary()
        logging.getLogger(__name__).info("training labels:\n%s", summary)
        train_set: Dataset = supervised_windows(plan, windows)
    else:
        sigma = ms_to_frames(config.loss.softness_ms, fr) if sup.labels == "onsets" else math.inf
        train_set = windows(train_index, train_stems, sup.labels, sigma)
    valid_set, valid_files = _validation(config, index, store, valid_stems, max_frames)
    return TrainingData(config, index, train_stems, valid_stems, store, train_set, valid_set,
                        valid_files, summary)


def collate_batch(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack window items into a batch with the keys the module and the losses read.

    ``mel`` becomes ``inputs`` ``(batch, n_mels, time)``, ``length`` becomes ``lengths``
    ``(batch,)``, and ``targets`` ``(batch, class, time)`` are clamped to 0/1 (two events of a
    class on one frame are one frame label; ``counts`` keeps both). Other keys are stacked as
    they are.
    """
    batch = default_collate(items)
    batch["inputs"] = batch.pop("mel")
    batch["lengths"] = batch.pop("length")
    if "targets" in batch:
        batch["targets"] = batch["targets"].clamp(max=1.0)
    return batch


def make_loaders(data: TrainingData) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (``max_steps * batch_size`` windows drawn with replacement, seeded)
    and the validation loader (``None`` without validation windows)."""
    d, t = data.config.data, data.config.train
    sampler = RandomSampler(data.train_set, replacement=True,  # type: ignore[arg-type]
                            num_samples=t.max_steps * d.batch_size)
    train_loader = DataLoader(
        data.train_set,
        batch_size=d.batch_size,
        sampler=sampler,
        collate_fn=collate_batch,
        num_workers=d.num_workers,
        generator=torch.Generator().manual_seed(t.seed),
        persistent_workers=d.num_workers > 0,
    )
    valid_loader = None
    if data.valid_set is not None and len(data.valid_set) > 0:  # type: ignore[arg-type]
        valid_loader = DataLoader(data.valid_set, batch_size=d.batch_size, shuffle=False,
                                  collate_fn=collate_batch)
    return train_loader, valid_loader
