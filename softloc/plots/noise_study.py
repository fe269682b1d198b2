"""Figures of the label-noise studies: SoftLoc Fig. 5 (F1 vs noise σ per loss) and Fig. 6 (F1
surface over noise σ and softness). F1 as fractions in [0, 1], drawn in %; σ and softness in ms."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from softloc.plots._backend import pyplot, save

__all__ = ["plot_robustness", "plot_softness_surface"]


def plot_robustness(
    curves: Mapping[str, Mapping[float, Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str = "",
    highlight: str = "softloc",
) -> Path:
    """F1 vs label-noise σ per loss: the mean over seeds as a line, min..max as a band (Fig. 5).

    Args:
        curves: ``{loss: {sigma_ms: [f1 of each seed, ...]}}``, F1 as fractions; NaN values
            (failed runs) are left out; losses are drawn in the mapping's order.
        path: figure file.
        title: figure title.
        highlight: the loss drawn with a thicker line.

    Returns:
        the written path.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for loss, by_sigma in curves.items():
        sig = sorted(by_sigma)
        vals = [np.array([v for v in by_sigma[s] if not math.isnan(v)]) for s in sig]
        keep = [i for i, v in enumerate(vals) if v.size]
        x = np.array([sig[i] for i in keep])
        mean = np.array([100 * vals[i].mean() for i in keep])
        lo = np.array([100 * vals[i].min() for i in keep])
        hi = np.array([100 * vals[i].max() for i in keep])
        (line,) = ax.plot(x, mean, marker="o", label=loss, lw=2 if loss == highlight else 1.3)
        if any(vals[i].size > 1 for i in keep):
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("label noise σ [ms]")
    ax.set_ylabel("F1 [%] (±50 ms, clean test labels)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_softness_surface(
    points_ms: np.ndarray,
    f1: np.ndarray,
    sigma_grid_ms: np.ndarray,
    softness_grid_ms: np.ndarray,
    surface: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """Heat map of an F1 surface over (noise σ, softness), the runs as white dots (Fig. 6).

    Args:
        points_ms: ``(n_runs, 2)`` run locations (σ, softness) in ms.
        f1: ``(n_runs,)`` their F1 (only whether any is finite matters: with none, only the axes
            are drawn).
        sigma_grid_ms: ``(n_x,)`` grid of σ (the x axis).
        softness_grid_ms: ``(n_y,)`` grid of softness (the y axis).
        surface: ``(n_y, n_x)`` F1 in % on the grid (e.g.
            :func:`softloc.smoothing.nadaraya_watson_grid`).
        path: figure file.
        title: figure title.

    Returns:
        the written path.
    """
    plt = pyplot()
    pts = np.asarray(points_ms, dtype=np.float64).reshape(-1, 2)
    gx = np.asarray(sigma_grid_ms, dtype=np.float64)
    gy = np.asarray(softness_grid_ms, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    if len(pts) and not np.all(np.isnan(np.asarray(f1, dtype=np.float64))):
        mesh = ax.pcolormesh(gx, gy, surface, shading="auto", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="F1 [%] (Nadaraya–Watson)")
        ax.scatter(pts[:, 0], pts[:, 1], s=12, c="white", edgecolors="black", linewidths=0.4)
    top = min(gx[-1], gy[-1])
    ax.plot([0, top], [0, top], color="white", ls="--", lw=0.8, label="softness = σ")
    ax.set_xlabel("label noise σ [ms]")
    ax.set_ylabel("softness [ms]")
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=120)
