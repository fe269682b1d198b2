"""Training data of an audio run: dataset, features, supervision, windows, loaders.

From a dataset folder (``softloc.data.layout``) and a run configuration to the two loaders
``softloc.training.fit`` hands to Lightning, in explicit steps:

1. :func:`check_supervision`: the run's label settings (``config.supervision``) against its
   loss, before any file is read;
2. :func:`prepare_training_data`: load and split the dataset (without ``splits/valid.txt`` a
   seeded share of the training files becomes the validation set, announced in the log), check
   that every training file has the labels the mode needs, perturb the training AND validation
   timestamps (``supervision.label_noise``: nothing before the test sees a clean label), compute
   or load the cached power mels, and build the window datasets:

   * ``counts``: the ``counts.csv`` windows (LoCo);
   * ``onsets``: windows cut from annotated files, counts derived from the events (SoftLoc);
   * ``mixed`` / several annotators / per-file softness: one window set per label source and
     softness (``softloc.data.supervision``), count-only files with softness ``inf``;

3. :func:`make_loaders`: the training loader, whose batch of optimiser step ``s`` is a function
   of ``(train.seed, s)`` alone (:class:`StepSampler`: windows drawn with replacement, and the
   window's augmentation drawn for that step), so a run resumed at step ``s`` sees exactly the
   batches the uninterrupted run would have seen; and a validation loader.

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
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, default_collate

from softloc.config import RunConfig
from softloc.config.sections import AUDIO_NETWORKS
from softloc.data.formats import CountWindow
from softloc.data.layout import DatasetIndex, load_dataset
from softloc.data.signal_store import prepare_signal_store
from softloc.data.signals import signal_info
from softloc.data.supervision import (
    SOFTNESS_CSV,
    AnnotationSource,
    parse_annotation_source,
    plan_supervision,
    supervised_windows,
)
from softloc.data.windows import FeatureStore, WindowDataset, min_time_factor, prepare_features
from softloc.inference.calibrate import calibration_source
from softloc.models.sensor import INPUT_ARGS
from softloc.noise import parse_noise, perturb_events
from softloc.timebase import ms_to_frames, padded_window_frames

__all__ = [
    "StepSampler",
    "TrainingData",
    "carve_validation",
    "check_signal_run",
    "check_supervision",
    "collate_batch",
    "load_index",
    "make_loaders",
    "noisy_index",
    "prepare_training_data",
]

_FN = "train"
_log = logging.getLogger("softloc.training")


def check_signal_run(config: RunConfig, index: DatasetIndex) -> RunConfig:
    """``config`` checked against a dataset's kind, with the sensor network's
    input width (``model.args.n_channels`` / ``n_features``) set from the data.

    Raises:
        ValueError: a signal dataset with an audio network or an audio dataset with a sensor
            network, or files whose channel counts differ (naming the file).
    """
    name = config.model.name
    if index.kind == "signal" and name in AUDIO_NETWORKS:
        raise ValueError(f"train: {index.root} holds time series (signals/); use a sensor "
                         "network: --preset ecg (raw signals) or --preset puffs (feature steps), "
                         "or set model.name to one of " + ", ".join(INPUT_ARGS))
    if index.kind != "signal":
        if name not in AUDIO_NETWORKS:
            raise ValueError(f"train: model.name {name!r} reads signals, but {index.root} holds "
                             "audio (audio/); use an audio preset")
        return config
    widths = {s: signal_info(index.source_paths[s])[2] for s in index.stems}
    first = index.stems[0]
    odd = [s for s in index.stems if widths[s] != widths[first]]
    if odd:
        raise ValueError(f"{index.source_paths[odd[0]]}: {widths[odd[0]]} channel(s), but "
                         f"{index.source_paths[first]} has {widths[first]}; every signal of a "
                         "dataset must have the same channels")
    args = dict(config.model.args, **{INPUT_ARGS[name]: widths[first]})
    return replace(config, model=replace(config.model, args=args))


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
        stems: the stems to perturb (a run perturbs its training and validation splits);
            others keep their events.
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
        index: the labels the run may see: the dataset, with the training and validation
            timestamps perturbed when ``supervision.label_noise`` is set (validation, checkpoint
            selection and calibration use it; only the test split stays clean).
        train_stems, valid_stems: the split.
        store: power mels of the training and validation files.
        train_set: training windows.
        valid_set: validation windows, or ``None``.
        valid_files: ``[(stem, mel (n_mels, frames), events)]`` whole validation files scored by
            F1 during training: only when the run's calibration source is ``timestamps``
            (``softloc.inference.calibrate.calibration_source``) and every validation file has
            them; else checkpoints are selected on the validation counts.
        valid_counts: validation stem -> count windows for the calibration from counts
            (``counts.csv``; without it, windows of ``data.window_s`` counted from the
            validation events).
        plan_summary: the supervision plan, one line per window group ("" without a plan).
        split_note: where the validation split comes from (``splits/valid.txt``, a seeded
            split, or carved from train).
    """

    config: RunConfig
    index: DatasetIndex
    train_stems: list[str]
    valid_stems: list[str]
    store: FeatureStore
    train_set: Dataset
    valid_set: Dataset | None
    valid_files: list[tuple[str, torch.Tensor, list[tuple[float, str]]]]
    valid_counts: dict[str, list[CountWindow]]
    plan_summary: str = ""
    split_note: str = ""


def load_index(config: RunConfig, data_root: Any, folder: str) -> DatasetIndex:
    """The dataset in ``data_root`` as a run with ``config`` reads it: its classes, the
    annotation folder ``folder``, and the split drawn from ``train.seed`` and ``data.*_fraction``
    (so that a later step, e.g. recalibration, sees the files training saw)."""
    d = config.data
    return load_dataset(
        data_root,
        annotations=folder,
        labels=config.classes or None,
        split_seed=config.train.seed,
        split_fractions=(1.0 - d.valid_fraction - d.test_fraction, d.valid_fraction,
                         d.test_fraction),
    )


def carve_validation(train_stems: list[str], fraction: float, *, seed: int
                     ) -> tuple[list[str], list[str]]:
    """Split ``train_stems`` into ``(train, valid)``: ``round(fraction * n)`` stems (at least
    one, at most ``n - 1``) drawn with ``numpy.random.default_rng(seed)``, each list sorted.

    Returns ``(train_stems, [])`` when there are fewer than 2 stems or ``fraction`` is 0.

    Example:
        >>> carve_validation(["a", "b", "c", "d"], 0.25, seed=0)[1]
        ['b']
    """
    stems = sorted(train_stems)
    if len(stems) < 2 or fraction <= 0:
        return stems, []
    n = min(len(stems) - 1, max(1, round(fraction * len(stems))))
    picked = set(np.random.default_rng(seed).choice(len(stems), size=n, replace=False).tolist())
    return ([s for i, s in enumerate(stems) if i not in picked],
            [s for i, s in enumerate(stems) if i in picked])


def _split(config: RunConfig, index: DatasetIndex) -> tuple[list[str], list[str], str]:
    """Train and validation stems; carve a validation set out of train when there is none."""
    train, valid = list(index.splits["train"]), list(index.splits["valid"])
    if valid:
        source = "splits/valid.txt" if index.split_source == "splits/" else index.split_source
        return train, valid, f"validation from {source}"
    seed, fraction = config.train.seed, config.data.valid_fraction
    train, valid = carve_validation(train, fraction, seed=seed)
    if not valid:
        note = "no validation files (no splits/valid.txt and too few training files to carve)"
        _log.warning("%s: %s; no checkpoint selection and no calibration", _FN, note)
        return train, valid, note
    note = (f"validation carved from train: {len(valid)} of {len(train) + len(valid)} files "
            f"(data.valid_fraction={fraction:g}, seed {seed}), no splits/valid.txt")
    _log.warning("%s: %s; they are listed in metrics.json", _FN, note)
    return train, valid, note


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
    annotated = bool(stems) and all(index.has_events(s) for s in stems)
    has_counts = bool(stems) and all(index.count_windows.get(s) for s in stems)
    labels = config.supervision.labels
    use_counts = labels == "counts" or (labels == "mixed" and not annotated)
    mode = "counts" if (use_counts and has_counts) or not annotated else "onsets"
    valid_set = None
    if stems and (annotated or has_counts):
        d = config.data
        valid_set = WindowDataset(index, store, stems=stems, labels=mode, window_s=d.window_s,
                                  hop_s=d.hop_s, max_frames=max_frames, augment=False,
                                  seed=config.train.seed)
    files = []
    if annotated and not use_counts and calibration_source(config) == "timestamps":
        files = [(s, torch.as_tensor(store.get(s, 1.0)), list(index.events[s] or []))
                 for s in stems]
    return valid_set, files


def _count_windows(config: RunConfig, index: DatasetIndex, stems: list[str]
                   ) -> dict[str, list[CountWindow]]:
    """Validation count windows: ``counts.csv`` (counts, which label noise does not change), or
    consecutive windows of ``data.window_s`` counted from the file's events."""
    out: dict[str, list[CountWindow]] = {}
    step = config.data.window_s
    for stem in stems:
        if index.count_windows.get(stem):
            out[stem] = list(index.count_windows[stem])
            continue
        events = index.events.get(stem)
        if events is None:
            continue
        n = max(1, math.ceil(float(index.durations_s[stem]) / step))
        counts = np.zeros((n, len(config.classes)), dtype=np.int64)
        column = {c: j for j, c in enumerate(config.classes)}
        for t, lab in events:
            if lab in column:
                counts[min(n - 1, max(0, int(t // step))), column[lab]] += 1
        windows = [CountWindow(stem, k * step if k else -math.inf,
                               (k + 1) * step if k < n - 1 else math.inf,
                               dict(zip(config.classes, counts[k].tolist(), strict=True)))
                   for k in range(n)]
        out[stem] = windows
    return out


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
    index = load_index(config, data_root, sources[0].folder)
    if not config.classes:
        config = replace(config, classes=tuple(index.classes))
    config = check_signal_run(config, index)  # ROOT/signals/ needs a sensor network
    train_stems, valid_stems, split_note = _split(config, index)
    _check_train_labels(config, index, train_stems, sources[0].folder, data_root)
    sup, d, fr = config.supervision, config.data, config.features.frame_rate
    if sup.label_noise is not None:
        # training AND validation timestamps: nothing before the test sees a clean label
        index = noisy_index(index, train_stems + valid_stems, sup.label_noise,
                            seed=config.train.seed)
    factors = tuple(sorted(set(d.rate_factors) | {1.0}))
    store: Any  # a FeatureStore, or a SignalStore with the same interface
    if index.kind == "signal":  # framed signals, not cached (cheap to compute)
        store = prepare_signal_store(index, config.features, stems=train_stems + valid_stems,
                                     rate_factors=factors, augment=d.augment,
                                     renditions=d.augment_renditions,
                                     augment_stems=train_stems, seed=config.train.seed)
    else:
        store = prepare_features(index, config.features, cache_dir=cache_dir,
                                 stems=train_stems + valid_stems, rate_factors=factors,
                                 augment=d.augment, renditions=d.augment_renditions,
                                 augment_stems=train_stems, seed=config.train.seed)
    max_frames = padded_window_frames(d.window_s, fr, min_rate_factor=min_time_factor(
        d.rate_factors, d.augment, renditions=d.augment_renditions))

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
        _log.info("training labels:\n%s", summary)
        train_set: Dataset = supervised_windows(plan, windows)
    else:
        train_set = windows(index, train_stems, sup.labels, _sigma_frames(config))
    valid_set, valid_files = _validation(config, index, store, valid_stems, max_frames)
    return TrainingData(config, index, train_stems, valid_stems, store, train_set, valid_set,
                        valid_files, _count_windows(config, index, valid_stems), summary,
                        split_note)


def _sigma_frames(config: RunConfig) -> float:
    """The softness of onsets-mode items in frames (inf for counts, and for softness inf)."""
    softness = config.loss.softness_ms
    if config.supervision.labels != "onsets" or math.isinf(softness):
        return math.inf
    return ms_to_frames(softness, config.features.frame_rate)


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


class StepSampler(Sampler):
    """Training draws as a function of ``(seed, step)``: ``(step, window)`` keys, step by step.

    The windows of optimiser step ``s`` are ``batch_size * world_size`` indices drawn with
    replacement by ``numpy.random.default_rng([seed, s])``; rank ``r`` of a distributed run
    (DDP) takes the ``r``-th slice of ``batch_size`` of them, so that W processes with
    ``batch_size`` B train exactly as one process with batch ``W * B`` (DDP averages the
    gradients). Iteration runs over steps ``start_step`` .. ``max_steps - 1``. ``len`` is
    ``max_steps * batch_size`` whatever ``start_step`` is, so that the loader's length is the
    run's (Lightning counts a resumed epoch from the steps done).

    Args:
        n_items: windows in the training set (>= 1).
        batch_size: windows per step and process.
        max_steps: steps of the run.
        seed: the run's seed.
        start_step: first step to draw (a resumed run's completed steps).
        rank: this process's rank in a distributed run (0 otherwise).
        world_size: number of processes (1 when not distributed).
    """

    def __init__(self, n_items: int, *, batch_size: int, max_steps: int, seed: int,
                 start_step: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if n_items < 1:
            raise ValueError(f"StepSampler: the training set is empty (n_items={n_items})")
        if not 0 <= rank < world_size:
            raise ValueError(f"StepSampler: need 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        self.n_items, self.batch_size, self.max_steps = n_items, batch_size, max_steps
        self.seed, self.start_step = seed, start_step
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return self.max_steps * self.batch_size

    def step_indices(self, step: int) -> np.ndarray:
        """The window indices of step ``step`` over all ranks (``batch_size * world_size``)."""
        return np.random.default_rng([self.seed, step]).integers(
            0, self.n_items, self.batch_size * self.world_size)

    def __iter__(self):  # type: ignore[no-untyped-def]
        lo = self.rank * self.batch_size
        for step in range(self.start_step, self.max_steps):
            for i in self.step_indices(step)[lo:lo + self.batch_size].tolist():
                yield step, i


def _window_sets(dataset: Dataset) -> list[Any]:
    if isinstance(dataset, ConcatDataset):
        return [w for d in dataset.datasets for w in _window_sets(d)]
    return [dataset] if hasattr(dataset, "set_epoch") else []


class _StepDraws(Dataset):
    """``dataset[(step, i)]``: window ``i`` with the augmentation drawn for ``step`` (the
    window datasets' ``set_epoch(step)``), so that every draw is a function of its step."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._sets = _window_sets(dataset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        step, i = key
        for windows in self._sets:
            windows.set_epoch(step)
        return self.dataset[i]


class _StepLoader(DataLoader):
    """The training loader; its state for Lightning's checkpoints is empty, since its draws
    are a function of the seed and the step (resuming sets ``StepSampler.start_step``)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


def make_loaders(data: TrainingData, *, start_step: int = 0, rank: int = 0,
                 world_size: int = 1) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (:class:`StepSampler` from ``start_step`` on; with DDP, this rank's
    slice of every step) and the validation loader (``None`` without validation windows)."""
    d, t = data.config.data, data.config.train
    sampler = StepSampler(len(data.train_set), batch_size=d.batch_size,  # type: ignore[arg-type]
                          max_steps=t.max_steps, seed=t.seed, start_step=start_step,
                          rank=rank, world_size=world_size)
    train_loader = _StepLoader(
        _StepDraws(data.train_set),
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
