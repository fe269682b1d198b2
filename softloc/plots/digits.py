"""Figures of the digits experiment: detections on canvases (LoCo Fig. 2) and a 2-D embedding of
the learned digit representations (LoCo Fig. 3). Pixel coordinates are ``(row, col)``."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from softloc.plots._backend import pyplot, save

__all__ = ["plot_digit_detections", "plot_tsne"]


def plot_digit_detections(
    images: np.ndarray,
    true_centres_px: Sequence[np.ndarray],
    true_labels: Sequence[np.ndarray],
    detected_centres_px: Sequence[np.ndarray],
    detected_classes: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    digit_px: int,
    threshold: float,
) -> Path:
    """Digit canvases with their true digit boxes (green) and detections (red class labels).

    Args:
        images: ``(n, 1, canvas_px, canvas_px)`` canvases in [0, 1].
        true_centres_px: per canvas, ``(k, 2)`` true digit centres ``(row, col)`` in pixels.
        true_labels: per canvas, ``(k,)`` their classes.
        detected_centres_px: per canvas, ``(m, 2)`` detected centres in pixels.
        detected_classes: per canvas, ``(m,)`` detected classes.
        path: figure file.
        digit_px: digit side in pixels (box size).
        threshold: the detection threshold (named in the title).

    Returns:
        the written path.
    """
    plt = pyplot()
    from matplotlib.patches import Rectangle

    n = len(images)
    canvas_px = int(images.shape[-1]) if n else 1
    cols = min(4, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    half = digit_px / 2.0
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.set_axis_on()  # a frame shows the canvas border; no ticks
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(images[k, 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest",
                  extent=(0, canvas_px, canvas_px, 0))
        for cy, cx in np.asarray(true_centres_px[k]).reshape(-1, 2):
            ax.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False,
                                   edgecolor="tab:green", linewidth=1.0))
        centres = np.asarray(detected_centres_px[k]).reshape(-1, 2)
        for (cy, cx), c in zip(centres, detected_classes[k], strict=True):
            ax.plot(cx, cy, "o", color="tab:red", markersize=4)
            ax.text(cx + 1.5, cy - 1.5, f"{c}", color="tab:red", fontsize=10, weight="bold")
        truth = sorted(np.asarray(true_labels[k]).tolist())
        ax.set_title("true " + " ".join(str(v) for v in truth), fontsize=8)
    fig.suptitle(
        f"Detections (red: class at cell centre, p > {threshold:g}; green: true digit boxes)",
        fontsize=9,
    )
    return save(fig, path, dpi=110)


def plot_tsne(
    embedding: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    n_classes: int = 10,
) -> Path:
    """A 2-D embedding ``(n, 2)`` of representations, coloured and labelled by class ``(n,)``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10")
    for c in range(n_classes):
        sel = labels == c
        ax.scatter(embedding[sel, 0], embedding[sel, 1], s=6, color=cmap(c), label=str(c))
        if sel.any():
            mx, my = np.median(embedding[sel], axis=0)
            ax.text(mx, my, str(c), fontsize=12, weight="bold", color=cmap(c))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=7, ncol=2, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    return save(fig, path, dpi=110)
