"""Figures of the action-segmentation study (SoftLoc §5.3).

* :func:`plot_segmentation_shifts`: a score (F1@10 by default) vs the label shift δ per loss,
  mean ± std over seeds and folds (SoftLoc Table 4 drawn as curves).
* :func:`plot_segmentation_softness`: SoftLoc's score relative to CE vs the softness, one
  curve per shift δ (SoftLoc Fig. 10).
* :func:`plot_segmentation_example`: the reference segmentation of one video above the
  estimates of several models, as colour bars over time.

Inputs are the numbers of :mod:`softloc.experiments.segmentation` (:func:`summarize`,
:func:`relative_to_ce`); scores are fractions in [0, 1] drawn in %. Like every figure function,
each writes one image file atomically and returns its path (:mod:`softloc.plots._backend`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softloc.plots._backend import pyplot, save

__all__ = [
    "plot_segmentation_example",
    "plot_segmentation_shifts",
    "plot_segmentation_softness",
]


def plot_segmentation_shifts(
    summary: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    score: str = "f1_10",
    title: str = "",
) -> Path:
    """``score`` vs label shift δ, one line per loss (and softness), error bars = std.

    Args:
        summary: rows of ``softloc.experiments.segmentation.summarize``.
        path: figure file (.png, .pdf, .svg).
        score: ``f1_10``, ``f1_25``, ``f1_50``, ``edit`` or ``accuracy``.
        title: figure title.

    Returns:
        The written path.
    """
    plt = pyplot()
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for e in summary:
        soft = float(e["softness_s"])
        name = e["loss"] if math.isnan(soft) else f"{e['loss']} ({soft:g} s)"
        curves.setdefault(name, []).append(
            (float(e["shift_s"]), 100 * e[f"{score}_mean"], 100 * e[f"{score}_std"]))
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for name, points in curves.items():
        x, mean, std = (np.array(v) for v in zip(*sorted(points), strict=True))
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name,
                    lw=2 if name.startswith("softloc") else 1.3)
    ax.set_xlabel("label shift δ [s] (advanced or delayed per video)")
    ax.set_ylabel(f"{score.replace('_', '@').upper() if score.startswith('f1') else score} [%]")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_segmentation_softness(
    relative: Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """SoftLoc relative to CE [%] vs softness [s], one curve per shift δ (SoftLoc Fig. 10).

    Args:
        relative: rows of ``softloc.experiments.segmentation.relative_to_ce``.
        path: figure file.
        title: figure title.

    Returns:
        The written path.
    """
    plt = pyplot()
    by_shift: dict[float, list[tuple[float, float]]] = {}
    for r in relative:
        by_shift.setdefault(float(r["shift_s"]), []).append(
            (float(r["softness_s"]), float(r["relative_pct"])))
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for shift in sorted(by_shift):
        x, y = zip(*sorted(by_shift[shift]), strict=True)
        ax.plot(x, y, marker="o", label=f"δ = {shift:g} s")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("softness S_M [s]")
    ax.set_ylabel("F1@10 relative to CE [%]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_segmentation_example(
    reference: np.ndarray,
    estimates: Mapping[str, np.ndarray],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    frame_rate: float,
    title: str = "",
) -> Path:
    """Colour bars of one video: the reference labelling, then each named estimate.

    Args:
        reference: class per frame ``(time,)``.
        estimates: name -> class per frame ``(time,)`` (same length).
        classes: class names (legend).
        path: figure file.
        frame_rate: frames per second (x axis in seconds).
        title: figure title.

    Returns:
        The written path.
    """
    plt = pyplot()
    rows = [("reference", np.asarray(reference))] + [(k, np.asarray(v))
                                                      for k, v in estimates.items()]
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    fig, axes = plt.subplots(len(rows), 1, figsize=(8.0, 0.55 * len(rows) + 1.2), sharex=True,
                             squeeze=False)
    duration_s = rows[0][1].size / frame_rate
    for ax, (name, labels) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(labels[None, :], aspect="auto", cmap=cmap, vmin=-0.5,
                  vmax=len(classes) - 0.5, extent=(0, duration_s, 0, 1), interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1, 0].set_xlabel("time [s]")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(len(classes))]
    fig.legend(handles, classes, loc="upper center", ncol=min(5, len(classes)), fontsize=6,
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path, dpi=120)
