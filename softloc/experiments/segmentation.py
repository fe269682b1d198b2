"""Action segmentation with misaligned boundaries (SoftLoc §5.3, Table 4-5, Fig. 10).

:func:`run_segmentation` trains an ED-TCN (Lea et al. 2017; :class:`softloc.models.tcn.EDTCN`)
on the training videos of each cross-validation fold of an MS-TCN-layout dataset
(:mod:`softloc.data.mstcn`; the built-in generator :mod:`softloc.data.generators.segments` when
no dataset is given) with each loss of :data:`LOSSES`, the training labels of every video
shifted by δ seconds with a per-video random sign (:func:`softloc.segment_noise.random_shift`),
and scores the clean test videos with the metrics of the field
(:func:`softloc.metrics.segments.evaluate_dataset`: F1@{10,25,50} as per-video means, Lea et al.'s
protocol that SoftLoc replicates; edit; pooled frame accuracy).

Networks come from ``softloc.models.build`` (``"ed-tcn"``, ``"ms-tcn"``; MS-TCN is trained through
a thin view returning every stage's logits, so the loss sums over stages as MS-TCN eq. 7) and
losses from :func:`softloc.losses.segmentation.build_segmentation_loss`.
Training runs on the shared machinery: the one LightningModule
:class:`softloc.training.EventModule` with a segmentation loss of
:mod:`softloc.losses.segmentation` injected (batches ``{"inputs": (B, D, T), "lengths": (B,),
"targets": (B, T)}``).

Output (``out``)::

    OUT/results.csv   one row per finished run: loss, shift_s, seed, split, f1_10, f1_25,
                      f1_50, edit, accuracy, softness_s (rewritten atomically after every
                      run; a rerun skips the rows already there, so a killed run resumes)
    OUT/study.json    the settings that change results; a rerun must keep them
    OUT/data/         the generated dataset when ``config.data`` is None
    OUT/models/       one model file per run with ``save_models`` (input kind ``"features"``)
    OUT/results.md, OUT/table4.png, OUT/fig10.png   from :func:`write_report`

Summaries for the paper's Table 4 and Fig. 10: :func:`summarize` (mean and std over seeds and
folds per loss, shift and softness), :func:`format_table` (Markdown) and
:func:`relative_to_ce` (SoftLoc's F1@10 relative to CE per shift and softness).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from softloc._checks import (
    check_choice,
    check_frame_rate,
    check_int,
    check_real,
    check_unit_float,
)
from softloc._io import atomic_write_text
from softloc.config import RunConfig
from softloc.data.generators.segments import generate_segment_dataset
from softloc.data.mstcn import MSTCNDataset, list_splits, load_mstcn
from softloc.experiments.results_table import as_float, read_rows, write_rows
from softloc.inference.model_file import save_model_file
from softloc.losses.segmentation import SEGMENTATION_LOSSES, build_segmentation_loss
from softloc.metrics.segments import evaluate_dataset
from softloc.models.build import build_model
from softloc.noise import parse_noise
from softloc.segment_noise import perturb_boundaries, random_shift

__all__ = [
    "LOSSES",
    "RESULT_COLUMNS",
    "MODELS",
    "SegmentationConfig",
    "format_table",
    "relative_to_ce",
    "run_segmentation",
    "summarize",
    "write_report",
]

#: Losses of the study (SoftLoc §5.3): cross-entropy, L_SLL, L_SoftLoc.
LOSSES = SEGMENTATION_LOSSES
#: Networks of the study: ED-TCN (Lea et al. 2017, the paper's) and MS-TCN (Farha & Gall 2019).
MODELS = ("ed-tcn", "ms-tcn")
#: Columns of ``results.csv``.
RESULT_COLUMNS = ("loss", "shift_s", "seed", "split", "f1_10", "f1_25", "f1_50", "edit",
                  "accuracy", "softness_s")
_SCORES = ("f1_10", "f1_25", "f1_50", "edit", "accuracy")


@dataclass(frozen=True)
class SegmentationConfig:
    """Settings of :func:`run_segmentation`.

    Attributes:
        data: MS-TCN dataset folder, or None for the built-in data (generated into
            ``OUT/data`` at ``fps``).
        splits: folds to run; None = every fold of ``ROOT/splits``.
        losses: losses among :data:`LOSSES`.
        shifts_s: label shifts δ in seconds (SoftLoc: 0, 5, 10, 15, 20).
        seeds: runs per (loss, shift, fold), seeds 0..seeds-1.
        fps: frame rate of the feature files (50Salads-style: 30).
        subsample: keep every k-th frame (the model runs at ``fps / subsample``).
        softness_s: softness of L_SLL / L_SoftLoc in seconds (SoftLoc: 7 s); several values
            give the softness sweep of Fig. 10 (CE runs once per shift, not per softness).
        alpha: α of L_SoftLoc, constant.
        k_max: top count bin of the segment-count term.
        model: ``"ed-tcn"`` (SoftLoc §5.3) or ``"ms-tcn"`` (4 stages of 10 layers, 64 channels;
            trained with the loss on every stage, MS-TCN eq. 7).
        filters, kernel_size, dropout: ED-TCN settings (Lea et al.: (64, 96), dropout 0.3).
        input_projection: ED-TCN only: features with more dimensions than this first pass a
            learned 1x1 convolution to this many channels (``EDTCN(input_projection=...)``);
            0 = never. With 50Salads' 2048-d I3D features this makes a training ~4x faster
            (benchmarks/segmentation_speed.py); features of <= 64 dimensions (the built-in
            data) are untouched.
        distance: ``"squared"`` or ``"log"`` distance of L_SLL (SoftLoc eq. 5).
        save_models: write ``OUT/models/<loss>_<shift>s_<softness>s_seed<k>_split<k>.pt`` per
            run (``softloc.inference.save_model_file``, input kind ``"features"``).
        epochs, batch_size, learning_rate: Adam training.
        smoothing_weight: λ of MS-TCN's T-MSE term added to every loss (0 = off).
        boundary_noise: optional noise spec of :func:`softloc.noise.parse_noise` (e.g.
            ``"normal:2s"``, ``"skew-normal:-2:2s"``) moving every boundary of the training
            labels independently, after the shift.
        ignore_background: leave the class named ``background`` out of F1 and edit.
    """

    data: str | None = None
    splits: tuple[int, ...] | None = None
    losses: tuple[str, ...] = LOSSES
    shifts_s: tuple[float, ...] = (0.0, 5.0, 10.0)
    seeds: int = 1
    fps: float = 30.0
    subsample: int = 10
    softness_s: tuple[float, ...] = (7.0,)
    alpha: float = 0.1
    k_max: int = 16
    model: str = "ed-tcn"
    distance: str = "squared"
    save_models: bool = False
    filters: tuple[int, ...] = (64, 96)
    kernel_size: int = 25
    dropout: float = 0.3
    input_projection: int = 64
    epochs: int = 60
    batch_size: int = 4
    learning_rate: float = 1e-2
    smoothing_weight: float = 0.0
    boundary_noise: str | None = None
    ignore_background: bool = False

    def __post_init__(self) -> None:
        fn = "SegmentationConfig"
        for loss in self.losses:
            check_choice(fn, "losses", loss, LOSSES)
        if not self.losses:
            raise ValueError(f"{fn}: `losses` must name at least one of {LOSSES}")
        for shift in self.shifts_s:
            check_real(fn, "shifts_s", shift, minimum=0.0, unit=" seconds")
        for softness in self.softness_s:
            check_real(fn, "softness_s", softness, minimum=0.0, unit=" seconds")
        if not self.shifts_s or not self.softness_s:
            raise ValueError(f"{fn}: `shifts_s` and `softness_s` need at least one value")
        check_int(fn, "seeds", self.seeds, minimum=1)
        check_frame_rate(fn, self.fps)
        check_int(fn, "subsample", self.subsample, minimum=1)
        check_int(fn, "input_projection", self.input_projection, minimum=0)
        check_int(fn, "epochs", self.epochs, minimum=1)
        check_int(fn, "batch_size", self.batch_size, minimum=1)
        check_real(fn, "learning_rate", self.learning_rate, positive=True)
        check_unit_float(fn, "alpha", self.alpha)
        check_choice(fn, "model", self.model, MODELS)
        check_choice(fn, "distance", self.distance, ("squared", "log"))
        if self.boundary_noise is not None:
            parse_noise(self.boundary_noise, frame_rate=self.fps)


def _runs(config: SegmentationConfig, splits: Sequence[int]) -> list[tuple]:
    """(loss, shift_s, seed, split, softness_s) of every run; CE has no softness (NaN)."""
    out = []
    for split in splits:
        for shift in config.shifts_s:
            for seed in range(config.seeds):
                for loss in config.losses:
                    softnesses = [math.nan] if loss == "ce" else list(config.softness_s)
                    out += [(loss, float(shift), seed, split, float(s)) for s in softnesses]
    return out


def _key(row: Mapping[str, Any]) -> tuple:
    softness = as_float(row["softness_s"])
    return (row["loss"], float(row["shift_s"]), int(row["seed"]), int(row["split"]),
            None if math.isnan(softness) else round(softness, 6))


def _dataset_root(config: SegmentationConfig, out: Path) -> Path:
    if config.data is not None:
        return Path(config.data)
    root = out / "data"
    if not (root / "mapping.txt").is_file():
        generate_segment_dataset(root, frame_rate=config.fps, seed=0)
    return root


def _batch(dataset: MSTCNDataset, labels: Sequence[np.ndarray], idx: Sequence[int]) -> dict:
    """Padded batch ``{"inputs": (B, D, T), "lengths": (B,), "targets": (B, T)}``."""
    videos = [dataset.videos[i] for i in idx]
    t = max(v.n_frames for v in videos)
    inputs = torch.zeros(len(videos), dataset.n_features, t)
    targets = torch.zeros(len(videos), t, dtype=torch.long)
    for j, (v, i) in enumerate(zip(videos, idx, strict=True)):
        inputs[j, :, : v.n_frames] = torch.from_numpy(v.features)
        targets[j, : v.n_frames] = torch.from_numpy(labels[i])
    lengths = torch.tensor([v.n_frames for v in videos])
    return {"inputs": inputs, "lengths": lengths, "targets": targets}


class _AllStages(nn.Module):
    """Training view of an MS-TCN: every stage's logits ``(stage, batch, class, time)``, which
    the segmentation losses sum over (MS-TCN eq. 7); ``EventModule`` stays unchanged."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.forward_stages(x, lengths=lengths)


def _network(config: SegmentationConfig, n_features: int, n_classes: int) -> nn.Module:
    if config.model == "ms-tcn":
        return build_model("ms-tcn", n_features=n_features, n_classes=n_classes)
    project = config.input_projection
    return build_model("ed-tcn", n_features=n_features, n_classes=n_classes,
                       filters=list(config.filters), kernel_size=config.kernel_size,
                       dropout=config.dropout,
                       input_projection=project if 0 < project < n_features else None)


def _train(config: SegmentationConfig, train: MSTCNDataset, labels: list[np.ndarray],
           loss: str, softness_s: float, seed: int) -> nn.Module:
    """Train the network in an ``EventModule`` on (``train``, misaligned ``labels``)."""
    import lightning as L

    from softloc.training import EventModule, OptimSettings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.manual_seed(seed)
    model = _network(config, train.n_features, len(train.classes))
    n = len(train.videos)
    steps = config.epochs * math.ceil(n / config.batch_size)
    loss_module = build_segmentation_loss(
        loss, frame_rate=train.frame_rate, softness_s=softness_s, alpha=config.alpha,
        k_max=config.k_max, distance=config.distance, smoothing_weight=config.smoothing_weight)
    trained = _AllStages(model) if config.model == "ms-tcn" else model
    module = EventModule(trained, loss_module,
                         optim=OptimSettings(config.learning_rate, steps, "constant"))
    order = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        range(n), batch_size=config.batch_size, shuffle=True, generator=order,
        collate_fn=lambda idx: _batch(train, labels, idx))
    trainer = L.Trainer(max_epochs=config.epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        trainer.fit(module, train_dataloaders=loader)
    return model.eval()


@torch.no_grad()
def _score(config: SegmentationConfig, model: nn.Module, test: MSTCNDataset) -> dict[str, float]:
    estimates = []
    for video in test.videos:
        logits = model(torch.from_numpy(video.features)[None])  # (1, D, T) -> (1, C, T)
        estimates.append(logits[0].argmax(0).numpy())
    ignore = [test.classes.index("background")] if (
        config.ignore_background and "background" in test.classes) else []
    scores = evaluate_dataset([v.labels for v in test.videos], estimates, ignore_classes=ignore)
    return {k: float(scores[k]) for k in _SCORES}


def _misaligned_labels(config: SegmentationConfig, dataset: MSTCNDataset, shift_s: float,
                       seed: int, split: int) -> list[np.ndarray]:
    """Training labels shifted by ±δ per video, then boundary noise; the same for every loss."""
    rng = np.random.default_rng([seed, split, round(shift_s * 1000)])
    rate = dataset.frame_rate
    labels = [random_shift(v.labels, shift_s, frame_rate=rate, seed=rng)[0]
              for v in dataset.videos]
    if config.boundary_noise is not None:
        model = parse_noise(config.boundary_noise, frame_rate=rate)
        labels = [perturb_boundaries(y, model=model, frame_rate=rate, seed=rng) for y in labels]
    return labels


#: Settings that change results: a resumed study must keep them (``OUT/study.json``).
_FIXED = ("data", "fps", "subsample", "alpha", "k_max", "model", "distance", "filters",
          "kernel_size", "dropout", "input_projection",
          "epochs", "batch_size", "learning_rate", "smoothing_weight", "boundary_noise",
          "ignore_background")

# Values of settings added after a study.json was written (the behaviour before they existed).
_BEFORE_FIELD = {"input_projection": 0}


def _check_study(config: SegmentationConfig, out: Path) -> None:
    """Write ``OUT/study.json``, or check a resumed study against it."""
    fixed = {k: getattr(config, k) for k in _FIXED}
    fixed = json.loads(json.dumps(fixed))  # tuples -> lists, as read back
    path = out / "study.json"
    if path.is_file():
        before = {**_BEFORE_FIELD, **json.loads(path.read_text(encoding="utf-8"))}
        changed = sorted(k for k in _FIXED if before.get(k) != fixed[k])
        if changed:
            diff = ", ".join(f"{k}: {before.get(k)!r} there, {fixed[k]!r} now" for k in changed)
            raise ValueError(
                f"run_segmentation: {path} was written with other settings ({diff}); pass "
                f"the same settings to resume it, or use another output folder"
            )
        return
    atomic_write_text(path, json.dumps(fixed, indent=2) + "\n")


def run_segmentation(config: SegmentationConfig, out: str | Path) -> list[dict[str, Any]]:
    """Run every (loss, shift, seed, fold, softness) not yet in ``OUT/results.csv``.

    Args:
        config: the study (:class:`SegmentationConfig`).
        out: output folder (created); ``results.csv`` there is resumed.

    Returns:
        Every row of ``results.csv`` (as written), finished runs included.

    Raises:
        ValueError: a fold missing from the dataset, a malformed ``results.csv``.
        softloc.data.formats.DatasetError: a malformed dataset file.
    """
    fn = "run_segmentation"
    if not isinstance(config, SegmentationConfig):
        raise TypeError(f"{fn}: `config` must be a SegmentationConfig, got "
                        f"{type(config).__name__}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = _dataset_root(config, out)
    available = list_splits(root)
    splits = list(config.splits) if config.splits is not None else available
    missing = sorted(set(splits) - set(available))
    if missing or not splits:
        raise ValueError(f"{fn}: folds {missing or splits} not in {root / 'splits'} "
                         f"(found {available})")
    _check_study(config, out)
    path = out / "results.csv"
    rows = read_rows(path, RESULT_COLUMNS)
    done = {_key(r) for r in rows}
    cache: dict[int, tuple[MSTCNDataset, MSTCNDataset]] = {}
    for loss, shift, seed, split, softness in _runs(config, splits):
        row: dict[str, Any] = {"loss": loss, "shift_s": shift, "seed": seed, "split": split,
                               "softness_s": softness}
        if _key(row) in done:
            continue
        if split not in cache:
            kw = dict(split=split, frame_rate=config.fps, subsample=config.subsample)
            cache[split] = (load_mstcn(root, subset="train", **kw),
                            load_mstcn(root, subset="test", **kw))
        train, test = cache[split]
        labels = _misaligned_labels(config, train, shift, seed, split)
        model = _train(config, train, labels, loss, 0.0 if math.isnan(softness) else softness,
                       seed)
        row.update(_score(config, model, test))
        if config.save_models:
            _save_model(model, config, out, row, train)
        rows.append(row)
        done.add(_key(row))
        write_rows(path, RESULT_COLUMNS, rows)
    return rows


def _save_model(model: nn.Module, config: SegmentationConfig, out: Path,
                row: Mapping[str, Any], train: MSTCNDataset) -> Path:
    """``OUT/models/<run>.pt``: the network, its classes and feature rate (input kind
    ``"features"``; ``softloc.inference.features_input`` reads it)."""
    soft = as_float(row["softness_s"])
    name = (f"{row['loss']}_{float(row['shift_s']):g}s"
            + ("" if math.isnan(soft) else f"_soft{soft:g}s")
            + f"_seed{row['seed']}_split{row['split']}.pt")
    extra = {"task": "segmentation", "fps": config.fps, "subsample": config.subsample,
             "frame_rate": train.frame_rate, "classes": list(train.classes),
             "split": int(row["split"]),
             "loss": str(row["loss"]), "shift_s": float(row["shift_s"]),
             "softness_s": None if math.isnan(soft) else soft}
    (out / "models").mkdir(exist_ok=True)
    return save_model_file(out / "models" / name, model, RunConfig(classes=tuple(train.classes)),
                           extra=extra, input_kind="features")


def write_report(rows: Sequence[Mapping[str, Any]], out: str | os.PathLike, *,
                 figures: bool = True) -> dict[str, Path]:
    """``OUT/results.md`` (Table 4 analogue for F1@10, F1@50 and edit, and SoftLoc relative to
    CE for Fig. 10) and, with ``figures``, ``OUT/table4.png`` (:func:`softloc.plots.segments.
    plot_segmentation_shifts`) and ``OUT/fig10.png`` (:func:`~softloc.plots.segments.
    plot_segmentation_softness`, when SoftLoc and CE share a shift).

    Returns:
        ``{"table": path, "table4": path, "fig10": path}`` for the files written.
    """
    out = Path(out)
    summary = summarize(rows)
    parts = ["# Action segmentation with misaligned labels (SoftLoc §5.3)\n"]
    for score, title in (("f1_10", "F1@10"), ("f1_50", "F1@50"), ("edit", "edit")):
        parts.append(f"\n## {title} ×100, mean (std) over seeds and folds\n\n")
        parts.append(format_table(summary, score=score))
    relative = relative_to_ce(summary)
    if relative:
        parts.append("\n## SoftLoc F1@10 relative to CE (Fig. 10)\n\n"
                     "| shift (s) | softness (s) | relative (%) |\n|---|---|---|\n")
        parts += [f"| {r['shift_s']:g} | {r['softness_s']:g} | {r['relative_pct']:+.1f} |\n"
                  for r in relative]
    written = {"table": out / "results.md"}
    atomic_write_text(written["table"], "".join(parts))
    if figures and summary:
        from softloc.plots.segments import plot_segmentation_shifts, plot_segmentation_softness

        written["table4"] = plot_segmentation_shifts(summary, out / "table4.png",
                                                     title="F1@10 vs label shift")
        if relative:
            written["fig10"] = plot_segmentation_softness(relative, out / "fig10.png",
                                                          title="SoftLoc vs CE")
    return written


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std (over seeds and folds) of every score per (loss, shift, softness).

    Returns:
        One dict per group, sorted by loss (order of :data:`LOSSES`), shift and softness, with
        ``loss``, ``shift_s``, ``softness_s``, ``n`` and ``<score>_mean`` / ``<score>_std``
        (population std) for each score column.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        softness = as_float(row["softness_s"])  # NaN for CE; None keys group it (NaN != NaN)
        key = (str(row["loss"]), float(row["shift_s"]), None if math.isnan(softness) else softness)
        groups.setdefault(key, []).append(row)
    out = []
    for (loss, shift, softness), members in groups.items():
        entry: dict[str, Any] = {"loss": loss, "shift_s": shift,
                                 "softness_s": math.nan if softness is None else softness,
                                 "n": len(members)}
        for score in _SCORES:
            values = np.array([float(m[score]) for m in members])
            entry[f"{score}_mean"] = float(np.nanmean(values))
            entry[f"{score}_std"] = float(np.nanstd(values))
        out.append(entry)
    order = {name: i for i, name in enumerate(LOSSES)}
    out.sort(key=lambda e: (order.get(e["loss"], 99), e["shift_s"],
                            -1.0 if math.isnan(e["softness_s"]) else e["softness_s"]))
    return out


def format_table(summary: Sequence[Mapping[str, Any]], *, score: str = "f1_10") -> str:
    """Markdown table of ``score`` (×100, mean (std)): one row per loss/softness, one column
    per shift — the layout of SoftLoc Table 4."""
    check_choice("format_table", "score", score, _SCORES)
    shifts = sorted({float(e["shift_s"]) for e in summary})
    labels: dict[str, dict[float, str]] = {}
    for e in summary:
        name = e["loss"] if math.isnan(e["softness_s"]) else f"{e['loss']} ({e['softness_s']:g} s)"
        cell = f"{100 * e[f'{score}_mean']:.1f} ({100 * e[f'{score}_std']:.1f})"
        labels.setdefault(name, {})[float(e["shift_s"])] = cell
    head = "| loss | " + " | ".join(f"δ = {s:g} s" for s in shifts) + " |"
    rule = "|---|" + "---|" * len(shifts)
    lines = [head, rule]
    for name, cells in labels.items():
        lines.append(f"| {name} | " + " | ".join(cells.get(s, "—") for s in shifts) + " |")
    return "\n".join(lines) + "\n"


def relative_to_ce(summary: Sequence[Mapping[str, Any]], *, loss: str = "softloc",
                   score: str = "f1_10") -> list[dict[str, float]]:
    """``score`` of ``loss`` relative to CE at the same shift, in percent (SoftLoc Fig. 10).

    Returns:
        ``[{"shift_s", "softness_s", "relative_pct"}]`` with relative_pct =
        100·(loss / CE − 1), for every (shift, softness) that has both.
    """
    check_choice("relative_to_ce", "score", score, _SCORES)
    ce = {float(e["shift_s"]): e[f"{score}_mean"] for e in summary if e["loss"] == "ce"}
    out = []
    for e in summary:
        base = ce.get(float(e["shift_s"]))
        if e["loss"] == loss and base:
            out.append({"shift_s": float(e["shift_s"]), "softness_s": float(e["softness_s"]),
                        "relative_pct": 100.0 * (e[f"{score}_mean"] / base - 1.0)})
    return out
