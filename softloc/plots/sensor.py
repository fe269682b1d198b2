"""Figures of the time-series task (issue 15, SoftLoc §5.2).

* :func:`plot_signal_detection`: LoCo Fig. 1 for a signal detector (input kind ``"signal"``):
  the signal, p(t) with detections and reference events, and the count distribution Y(k, t) of
  the events in [start, t] (LoCo eq. 9) per class;
* :func:`plot_sensor_table`: SoftLoc Table 3 as curves: F1 (mean ± std over folds and seeds)
  against the misalignment σ / δ in steps, one panel per noise distribution, one line per
  method; exact alignment solid, within the tolerance dashed.

Conventions: times in seconds, misalignment in steps, scores as fractions (drawn in %).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softloc.data.formats import read_annotation_file
from softloc.data.signal_store import unframe_signal
from softloc.plots._backend import pyplot, save
from softloc.plots.detection import running_count_distribution

__all__ = ["plot_sensor_table", "plot_signal_detection"]


def plot_signal_detection(detector: Any, source: Any, out_path: str | os.PathLike, *,
                          annotations: str | os.PathLike | None = None, start_s: float = 0.0,
                          duration_s: float | None = None, k_show: int = 12) -> Path:
    """A signal detector on ``source[start_s : start_s + duration_s]`` (default 10 s).

    Panels sharing the time axis: the (normalised) first channel with the reference events
    (dashed) and the detections (triangles); p(t) per class with the threshold; per class the
    count distribution Y(k, t) (LoCo eq. 9) over the network's frames, with the reference
    running count.

    Args:
        detector: a :class:`softloc.inference.Detector` with a ``"signal"`` input stage.
        source: what the stage reads (a signal file, a ``Signal``, ``(array, rate_hz)``).
        out_path: figure file.
        annotations: optional reference annotation file.
        start_s, duration_s: the excerpt in seconds.
        k_show: highest count drawn.

    Raises:
        ValueError: bad excerpt bounds or an excerpt past the end.
    """
    duration_s = 10.0 if duration_s is None else duration_s
    if duration_s <= 0 or start_s < 0:
        raise ValueError(f"plot_detection: need start_s >= 0 and duration_s > 0, got "
                         f"{start_s}, {duration_s}")
    stage = detector.input_stage
    signal = stage.read(source)
    features = stage.features(signal)
    probs = detector.probabilities_from_features(features)
    events = detector.events_from_probabilities(probs)
    if detector.config.inference.snap_radius_s > 0:  # the times detect writes
        events = stage.refine(signal, events, detector.config.inference)
    fr, hop = detector.frame_rate, int(getattr(stage, "hop", 1))
    a, b = int(round(start_s * fr)), min(int(round((start_s + duration_s) * fr)), probs.shape[1])
    if a >= b:
        raise ValueError(f"plot_detection: the excerpt starts after the end of the signal "
                         f"({probs.shape[1] / fr:g} s)")
    x = unframe_signal(features.numpy(), hop)[0, a:b] if hop > 1 else features.numpy()[0, a:b]
    t = np.arange(a, b) / fr
    net = probs[:, a:b:hop]  # frame centres: the network's own p(t), whose sums LoCo counts
    k_max = min(detector.config.loss.k_max, k_show)
    y = running_count_distribution(net, detector.config.loss.k_max)[:, : k_max + 1]
    t_net = t[::hop]
    refs = read_annotation_file(annotations) if annotations is not None else []
    plt = pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    classes = detector.classes
    n = len(classes)
    fig, axes = plt.subplots(2 + n, 1, figsize=(10, 4 + 1.4 * n), sharex=True,
                             gridspec_kw={"height_ratios": [1.6, 1.3] + [1.1] * n})
    axes[0].plot(t, x, color="0.2", lw=0.7)
    name = Path(str(source)).name if isinstance(source, str | os.PathLike) else "signal"
    axes[0].set_title(f"{name}: signal, p(t), count distribution Y(k, t)")
    axes[0].set_ylabel("signal (norm.)")
    for c, label in enumerate(classes):
        color = colors[c % len(colors)]
        ref = np.array([s for s, lab in refs if lab == label])
        ref = np.sort(ref[(ref >= t[0]) & (ref <= t[-1])])
        det = events.times_of(c)
        det = det[(det >= t[0]) & (det <= t[-1])]
        for ax in axes[:2]:
            for r in ref:
                ax.axvline(r, color=color, ls="--", lw=0.6, alpha=0.6)
        axes[1].plot(t, probs[c, a:b], color=color, lw=1, label=f"p(t) {label}")
        axes[1].plot(det, np.full_like(det, 1.04), "v", color=color, ms=5)
        ax = axes[2 + c]
        ax.imshow(y[c], aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                  extent=(t_net[0], t_net[-1], -0.5, k_max + 0.5))
        if len(ref):
            ax.step(t_net, np.minimum(np.searchsorted(ref, t_net, side="right"), k_max),
                    where="post", color=color, lw=1.2, label="reference count")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_ylabel(f"Y(k,t) {label}")
    axes[1].axhline(detector.config.inference.threshold, color="k", lw=0.5, ls=":")
    axes[1].set_ylim(0, 1.1)
    axes[1].set_ylabel("p(t)")
    axes[1].legend(loc="upper right", fontsize=7, ncol=n)
    axes[-1].set_xlabel("time (s); dashed lines: reference events, triangles: detections")
    fig.tight_layout()
    return save(fig, out_path, dpi=110)


def plot_sensor_table(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                      tolerance_summary: Sequence[Mapping[str, Any]] | None = None,
                      tolerance_steps: int = 1, title: str = "") -> Path:
    """SoftLoc Table 3 as curves: F1 vs misalignment per method, one panel per noise.

    Args:
        summary: rows ``{"method", "noise", "level", "mean", "std", "n"}`` of exact-alignment F1
            (``softloc.experiments.sensor.summarize``), fractions.
        path: figure file.
        tolerance_summary: the same for F1 within ``tolerance_steps`` (dashed), or None.
        tolerance_steps: the tolerance, for the legend.
        title: figure title.

    Returns:
        the written path.
    """
    plt = pyplot()
    noises = sorted({str(r["noise"]) for r in summary}, key=lambda n: (n != "normal", n))
    methods = list(dict.fromkeys(str(r["method"]) for r in summary))
    fig, axes = plt.subplots(1, len(noises), figsize=(5.2 * len(noises), 3.8), squeeze=False,
                             sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = {"normal": "rounded normal ⌊N(0, σ²)⌉", "binary": "binary B(−δ, δ)"}
    for ax, noise in zip(axes[0], noises, strict=True):
        for i, method in enumerate(methods):
            for rows, style in ((summary, "-"), (tolerance_summary or [], "--")):
                sel = sorted((r for r in rows if r["method"] == method and r["noise"] == noise),
                             key=lambda r: int(r["level"]))
                sel = [r for r in sel if not math.isnan(float(r["mean"]))]
                if not sel:
                    continue
                lv = np.array([int(r["level"]) for r in sel])
                mean = np.array([100 * float(r["mean"]) for r in sel])
                std = np.array([100 * float(r["std"]) for r in sel])
                label = method if style == "-" else f"{method} (±{tolerance_steps} step)"
                ax.errorbar(lv, mean, yerr=std, color=colors[i % len(colors)], ls=style,
                            marker="o" if style == "-" else None, capsize=3, lw=1.4,
                            label=label)
        ax.set_title(names.get(noise, noise), fontsize=10)
        ax.set_xlabel("σ (normal) / δ (binary) in steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("F1 on the held-out subject (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=110)
