"""Every figure softloc draws; each function takes computed numbers and writes one image file.

Figures (the experiments compute the numbers, this module only draws them):

* :func:`plot_detection`: LoCo Fig. 1 for a trained detector on one audio excerpt: the log-mel
  spectrogram, p(t) per class with detections and reference events, and per class the count
  distribution Y(k, t) = Pr(k events in [start, t]) evolving over time (LoCo eq. 9). For an
  image detector (input kind ``"hilbert-image"``): the image with its detections, p(t) along the
  Hilbert curve and the count distribution of the whole image per class.
* :func:`plot_robustness`: F1 vs label-noise σ per loss, band = min..max of seeds (SoftLoc Fig. 5).
* :func:`plot_softness_surface`: F1 surface over (noise σ, softness) as a heat map (SoftLoc Fig. 6).
* :func:`plot_digit_detections`: detections on digit canvases (LoCo Fig. 2).
* :func:`plot_tsne`: a 2-D embedding of digit representations coloured by class (LoCo Fig. 3).

Conventions: times in seconds, noise and softness in ms, F1 as fractions in [0, 1] (drawn in %),
pixel coordinates ``(row, col)``. matplotlib is imported only when a figure is drawn, with the
non-interactive Agg backend selected once (:func:`_pyplot`); files are written atomically by
:func:`softloc._io.save_figure` (format from the suffix: .png, .pdf, .svg).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softloc._io import save_figure

__all__ = [
    "running_count_distribution",
    "plot_detection",
    "plot_image_detection",
    "plot_robustness",
    "plot_softness_surface",
    "plot_digit_detections",
    "plot_tsne",
]


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (the one place that selects the backend)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike, *, dpi: int) -> Path:
    plt = _pyplot()
    try:
        return save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- LoCo Fig. 1


def running_count_distribution(probs: np.ndarray, k_max: int) -> np.ndarray:
    """Y(k, t) for every prefix of ``probs``: ``(class, time)`` -> ``(class, k_max + 1, time)``.

    Column ``t`` is the count distribution of the frames ``0..t`` (LoCo eq. 9, computed by
    :func:`softloc.counting.count_distribution` with one length per prefix).
    """
    import torch

    from softloc.counting import count_distribution

    p = torch.as_tensor(np.asarray(probs, dtype=np.float64))
    n_classes, n_frames = p.shape
    batch = p.unsqueeze(0).expand(n_frames, n_classes, n_frames)  # (T, C, T): one row per prefix
    lengths = torch.arange(1, n_frames + 1)
    y = count_distribution(batch.contiguous(), k_max, lengths=lengths)  # (T, C, K+1)
    return y.permute(1, 2, 0).numpy()  # (T, C, K+1) -> (C, K+1, T)


def plot_detection(
    detector: Any,
    audio: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    k_show: int = 12,
) -> Path:
    """Draw LoCo Fig. 1 for ``detector`` on ``audio[start_s : start_s + duration_s]``.

    Panels, top to bottom, sharing the time axis (seconds from the start of the file): the
    log-mel spectrogram (dB); p(t) per class, the detections (markers) and the reference events
    (dashed lines); per class, the count distribution Y(k, t) of the events in [start, t]
    (LoCo eq. 9) with the reference running count overlaid.

    An image detector (``detector.input_stage.kind == "hilbert-image"``, e.g. a digits run) gets
    :func:`plot_image_detection` instead; it has no excerpt and no annotation file.

    Args:
        detector: a :class:`softloc.inference.Detector`.
        audio: audio file (an image file for an image detector).
        out_path: figure file (format from the suffix: .png, .pdf, .svg).
        annotations: optional reference annotation file (``'<seconds>\\t<label>'``).
        start_s: excerpt start in seconds.
        duration_s: excerpt length in seconds (> 0); default 4.
        k_show: highest count shown in the Y(k, t) panels.

    Returns:
        the written path.

    Raises:
        ValueError: bad excerpt bounds; malformed annotation file; an excerpt or annotations for
            an image detector; an input kind without a figure.
    """
    kind = getattr(detector.input_stage, "kind", "audio")
    if kind == "hilbert-image":
        if annotations is not None or start_s != 0.0 or duration_s is not None:
            raise ValueError("plot_detection: an image detector takes no annotations, start_s "
                             "or duration_s (the whole image is drawn)")
        return plot_image_detection(detector, audio, out_path, k_show=k_show)
    if kind != "audio":
        raise ValueError(f"plot_detection: no figure for input kind {kind!r}")
    return _plot_audio_detection(detector, audio, out_path, annotations=annotations,
                                 start_s=start_s,
                                 duration_s=4.0 if duration_s is None else duration_s,
                                 k_show=k_show)


def _plot_audio_detection(detector: Any, audio: str | os.PathLike, out_path: str | os.PathLike,
                          *, annotations: str | os.PathLike | None, start_s: float,
                          duration_s: float, k_show: int) -> Path:
    """The audio figure of :func:`plot_detection`."""
    from softloc.data.formats import read_annotation_file
    from softloc.features import load_audio, log_delta, mel_power

    if duration_s <= 0 or start_s < 0:
        raise ValueError(
            f"plot_detection: need start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}"
        )
    plt = _pyplot()
    cfg = detector.config
    fr = detector.frame_rate
    samples = load_audio(audio, cfg.features.sample_rate)
    mel = mel_power(samples, cfg.features)[0]
    probs = detector.probabilities_from_mel(mel)
    a, b = int(round(start_s * fr)), int(round((start_s + duration_s) * fr))
    b = min(b, probs.shape[1])
    if a >= b:
        raise ValueError(f"plot_detection: excerpt starts after the end of {audio}")
    p = probs[:, a:b]
    events = detector.events_from_probabilities(probs)
    refs = read_annotation_file(annotations) if annotations is not None else []
    k_max = min(cfg.loss.k_max, k_show)
    y = running_count_distribution(p, cfg.loss.k_max)[:, : k_max + 1]
    t = np.arange(a, b) / fr
    classes = detector.classes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    n = len(classes)
    fig, axes = plt.subplots(
        2 + n, 1, figsize=(10, 4 + 1.6 * n), sharex=True,
        gridspec_kw={"height_ratios": [2, 1.5] + [1.2] * n},
    )
    spec = log_delta(mel[None, :, a:b])[0, : cfg.features.n_mels].numpy()
    axes[0].imshow(spec, aspect="auto", origin="lower", extent=(t[0], t[-1], 0, spec.shape[0]),
                   cmap="magma")
    axes[0].set_ylabel("mel band")
    axes[0].set_title(f"{Path(audio).name}: spectrogram, p(t), count distribution Y(k, t)")

    for c, label in enumerate(classes):
        color = colors[c % len(colors)]
        axes[1].plot(t, p[c], color=color, lw=1, label=f"p(t) {label}")
        det = events.times_of(c)
        det = det[(det >= t[0]) & (det <= t[-1])]
        axes[1].plot(det, np.full_like(det, 1.04), "v", color=color, ms=5)
        ref_c = np.array([s for s, lab in refs if lab == label])
        for r in ref_c[(ref_c >= t[0]) & (ref_c <= t[-1])]:  # reference events
            axes[1].axvline(r, color=color, ls="--", lw=0.6, alpha=0.6)
        ax = axes[2 + c]
        ax.imshow(y[c], aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                  extent=(t[0], t[-1], -0.5, k_max + 0.5))
        inside = np.sort(ref_c[(ref_c >= t[0]) & (ref_c <= t[-1])])
        if len(inside):
            # events in [start, t], the quantity whose distribution Y(k, t) is
            running = np.searchsorted(inside, t, side="right")
            ax.step(t, np.minimum(running, k_max), where="post", color=color, lw=1.2,
                    label="reference count")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_ylabel(f"Y(k,t) {label}")
    axes[1].axhline(cfg.inference.threshold, color="k", lw=0.5, ls=":")
    axes[1].set_ylim(0, 1.1)
    axes[1].legend(loc="upper right", fontsize=7, ncol=n)
    axes[1].set_ylabel("p(t)")
    axes[-1].set_xlabel("time (s); dashed lines: reference events, triangles: detections")
    fig.tight_layout()
    return _save(fig, out_path, dpi=110)


def plot_image_detection(
    detector: Any,
    image: Any,
    out_path: str | os.PathLike,
    *,
    k_show: int = 12,
) -> Path:
    """An image detector on one image: detections, p(t) along the curve, count distributions.

    Panels: the image with each detection's class at its cell centre
    (:func:`softloc.inference.images.detections_px`); p(t) per class along the Hilbert steps with
    the threshold; per class, the count distribution of the whole image (LoCo eq. 9).

    Args:
        detector: a :class:`softloc.inference.Detector` with a ``"hilbert-image"`` input stage.
        image: what the input stage reads (an image file, an array ``(H, W)``).
        out_path: figure file.
        k_show: highest count shown.

    Returns:
        the written path.
    """
    import torch

    from softloc.counting import count_distribution
    from softloc.inference.images import detections_px

    plt = _pyplot()
    pixels = detector.input_stage.read(image)  # (channel, H, W)
    probs = detector.probabilities(pixels)  # (class, steps)
    events = detector.events_from_probabilities(probs)
    centres = detections_px(events, detector.model)
    k_max = min(detector.config.loss.k_max, k_show)
    y = count_distribution(torch.as_tensor(probs[None]), k_max)[0].numpy()  # (C, K+1)
    fig, (ax_img, ax_p, ax_y) = plt.subplots(1, 3, figsize=(14, 4.2),
                                             gridspec_kw={"width_ratios": [1, 1.6, 1]})
    ax_img.imshow(pixels.mean(axis=0), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for (row, col), c in zip(centres, events.classes, strict=True):
        ax_img.text(col, row, detector.classes[c], color="tab:red", fontsize=11, weight="bold",
                    ha="center", va="center")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    ax_img.set_title(f"{Path(str(image)).name if isinstance(image, str | os.PathLike) else 'image'}"
                     f": {len(events)} detections", fontsize=9)
    cmap = plt.get_cmap("tab10")
    for c, label in enumerate(detector.classes):
        ax_p.plot(probs[c], color=cmap(c % 10), lw=1, label=label)
    ax_p.axhline(detector.config.inference.threshold, color="k", lw=0.5, ls=":")
    ax_p.set_xlabel("Hilbert curve step")
    ax_p.set_ylabel("p(t)")
    ax_p.set_ylim(0, 1.05)
    ax_p.legend(fontsize=7, ncol=5, loc="upper right")
    ax_y.imshow(y, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                extent=(-0.5, k_max + 0.5, -0.5, len(detector.classes) - 0.5))
    ax_y.set_yticks(range(len(detector.classes)), detector.classes)
    ax_y.set_xlabel("count k")
    ax_y.set_title("Pr(k events of a class in the image)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path, dpi=110)


# --------------------------------------------------------------------------- SoftLoc Fig. 5, 6


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
    plt = _pyplot()
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
    return _save(fig, path, dpi=120)


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
    plt = _pyplot()
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
    return _save(fig, path, dpi=120)


# --------------------------------------------------------------------------- LoCo Fig. 2, 3


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
    plt = _pyplot()
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
    return _save(fig, path, dpi=110)


def plot_tsne(
    embedding: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    n_classes: int = 10,
) -> Path:
    """A 2-D embedding ``(n, 2)`` of representations, coloured and labelled by class ``(n,)``."""
    plt = _pyplot()
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
    return _save(fig, path, dpi=110)
