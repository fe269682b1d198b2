"""LoCo Fig. 1: what a trained detector sees in one input.

* :func:`plot_detection`: for audio, the log-mel spectrogram, p(t) per class with detections
  and reference events, and per class the count distribution Y(k, t) = Pr(k events in
  [start, t]) evolving over time (LoCo eq. 9); for an image detector (input kind
  ``"hilbert-image"``), :func:`plot_image_detection`.
* :func:`running_count_distribution`: Y(k, t) for every prefix of p(t).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softloc.counting import count_distribution
from softloc.data.formats import read_events_any
from softloc.features import hz_to_mel, load_audio, mel_power, mel_to_hz
from softloc.inference.images import detections_px
from softloc.plots._backend import pyplot, save

__all__ = [
    "class_thresholds",
    "plot_detection",
    "plot_image_detection",
    "running_count_distribution",
]


def running_count_distribution(probs: np.ndarray, k_max: int) -> np.ndarray:
    """Y(k, t) for every prefix of ``probs``: ``(class, time)`` -> ``(class, k_max + 1, time)``.

    Column ``t`` is the count distribution of the frames ``0..t`` (LoCo eq. 9, computed by
    :func:`softloc.counting.count_distribution` with one length per prefix).
    """
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
    model_name: str | None = None,
    title: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Draw LoCo Fig. 1 for ``detector`` on ``audio[start_s : start_s + duration_s]``.

    Panels, top to bottom, sharing the time axis (seconds from the start of the file): the
    mel spectrogram (dB, frequency axis in Hz); p(t) per class with its own decision threshold
    (dotted, per-class thresholds when the run calibrated them), the detections (triangles above
    the curves) and the reference events (ticks below them); per class, the count distribution
    Y(k, t) = Pr(k events in [start, t]) (LoCo eq. 9) with the expected count and the reference
    running count. Legends sit outside the plotting area, so they cover nothing.

    An image detector (``detector.input_stage.kind == "hilbert-image"``, e.g. a digits run) gets
    :func:`plot_image_detection` instead; it has no excerpt and no annotation file.

    Args:
        detector: a :class:`softloc.inference.Detector`.
        audio: audio file (an image file for an image detector).
        out_path: figure file (format from the suffix: .png, .pdf, .svg).
        annotations: optional reference file, any format ``softloc.data.formats.read_events_any``
            reads.
        start_s: excerpt start in seconds.
        duration_s: excerpt length in seconds (> 0); default 4.
        k_show: highest count shown in the Y(k, t) panels.
        model_name: named in the title (default: ``"softloc model"``).
        title: the whole title instead.
        overwrite: replace an existing ``out_path`` (default True; the CLI asks for
            ``--overwrite``).

    Returns:
        the written path.

    Raises:
        ValueError: bad excerpt bounds; malformed annotation file; an excerpt or annotations for
            an image detector; an input kind without a figure.
        FileExistsError: ``out_path`` exists and ``overwrite`` is False.
    """
    if not overwrite and Path(out_path).exists():
        raise FileExistsError(f"{out_path}: already exists; not replacing it (--overwrite "
                              "replaces it)")
    kind = getattr(detector.input_stage, "kind", "audio")
    if kind == "hilbert-image":
        if annotations is not None or start_s != 0.0 or duration_s is not None:
            raise ValueError("plot_detection: an image detector takes no annotations, start_s "
                             "or duration_s (the whole image is drawn)")
        return plot_image_detection(detector, audio, out_path, k_show=k_show)
    if kind == "signal":  # time series (issue 15): softloc.plots.sensor
        from softloc.plots.sensor import plot_signal_detection

        return plot_signal_detection(detector, audio, out_path, annotations=annotations,
                                     start_s=start_s, duration_s=duration_s, k_show=k_show)
    if kind != "audio":
        raise ValueError(f"plot_detection: no figure for input kind {kind!r}")
    return _plot_audio_detection(detector, audio, out_path, annotations=annotations,
                                 start_s=start_s,
                                 duration_s=4.0 if duration_s is None else duration_s,
                                 k_show=k_show, model_name=model_name, title=title)


def class_thresholds(detector: Any) -> list[float]:
    """The decision threshold of each class (per-class if calibrated, else the global one)."""
    inf = detector.config.inference
    n = len(detector.classes)
    return [float(x) for x in inf.class_thresholds] if len(inf.class_thresholds) == n \
        else [float(inf.threshold)] * n


def _mel_axis_hz(ax: Any, features: Any, n_bands: int) -> None:
    """Label a band-index y axis with the bands' centre frequencies in Hz."""
    centres = mel_to_hz(np.linspace(hz_to_mel(features.f_min_hz), hz_to_mel(features.f_max),
                                    n_bands + 2))[1:-1]
    ticks, labels = [], []
    for f in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000):
        pos = float(np.interp(f, centres, np.arange(n_bands)))
        if centres[0] <= f <= centres[-1] and (not ticks or pos - ticks[-1] > 0.08 * n_bands):
            ticks.append(pos)
            labels.append(f"{f // 1000}k" if f >= 1000 else str(f))
    ax.set_yticks(ticks, labels)
    ax.set_ylabel("frequency (Hz)")


def _plot_audio_detection(detector: Any, audio: str | os.PathLike, out_path: str | os.PathLike,
                          *, annotations: str | os.PathLike | None, start_s: float,
                          duration_s: float, k_show: int, model_name: str | None,
                          title: str | None) -> Path:
    """The audio figure of :func:`plot_detection`."""
    if duration_s <= 0 or start_s < 0:
        raise ValueError(
            f"plot_detection: need start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}"
        )
    plt = pyplot()
    cfg = detector.config
    fr = detector.frame_rate
    mel = mel_power(load_audio(audio, cfg.features.sample_rate), cfg.features)[0]
    probs = detector.probabilities_from_mel(mel)
    a, b = int(round(start_s * fr)), min(int(round((start_s + duration_s) * fr)), probs.shape[1])
    if a >= b:
        raise ValueError(f"plot_detection: excerpt starts after the end of {audio}")
    p = probs[:, a:b]
    events = detector.events_from_probabilities(probs)
    refs = read_events_any(annotations, pitched_midi=True) if annotations is not None else []
    k_max = min(cfg.loss.k_max, k_show)
    y = running_count_distribution(p, cfg.loss.k_max)[:, : k_max + 1]
    t = np.arange(a, b) / fr
    classes, thresholds = detector.classes, class_thresholds(detector)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = len(classes)
    fig, axes = plt.subplots(2 + n, 1, figsize=(9, 3.6 + 1.25 * n), sharex=True,
                             gridspec_kw={"height_ratios": [2.0, 1.6] + [1.0] * n})
    power = mel[:, a:b].numpy()
    spec_db = 10 * np.log10(np.maximum(power, 1e-10))
    axes[0].imshow(spec_db, aspect="auto", origin="lower", cmap="magma",
                   vmin=spec_db.max() - 80, vmax=spec_db.max(),
                   extent=(t[0], t[-1] + 1 / fr, -0.5, spec_db.shape[0] - 0.5))
    _mel_axis_hz(axes[0], cfg.features, spec_db.shape[0])
    axes[0].set_title(title or f"{Path(audio).name}, {t[0]:.1f}-{t[-1] + 1 / fr:.1f} s; "
                      f"model: {model_name or 'softloc model'}", fontsize=10)

    ax_p = axes[1]
    has_refs = has_dets = False
    for c, label in enumerate(classes):
        color = colors[c % len(colors)]
        ax_p.plot(t, p[c], color=color, lw=1.1, label=label)
        ax_p.axhline(thresholds[c], color=color, lw=0.8, ls=":")
        det = events.times_of(c)
        det = det[(det >= t[0]) & (det <= t[-1])]
        has_dets |= len(det) > 0
        ax_p.plot(det, np.full_like(det, 1.06 + 0.05 * c), "v", color=color, ms=5, mec="none")
        ref_c = np.array([s for s, lab in refs if lab == label])
        inside = np.sort(ref_c[(ref_c >= t[0]) & (ref_c <= t[-1])]) if len(ref_c) else ref_c
        has_refs |= len(inside) > 0
        ax_p.plot(inside, np.full_like(inside, -0.06 - 0.05 * c), "|", color=color, ms=7, mew=1.5)
        ax = axes[2 + c]
        ax.imshow(y[c], aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                  extent=(t[0], t[-1] + 1 / fr, -0.5, k_max + 0.5))
        ax.plot(t, np.minimum(np.cumsum(p[c]), k_max + 0.5), color=color, lw=1, ls="--",
                label="expected count")
        if annotations is not None:
            running = np.searchsorted(inside, t, side="right")
            ax.step(t, np.minimum(running, k_max), where="post", color=color, lw=1.4,
                    label="reference count")
        ax.set_ylim(-0.5, k_max + 0.5)
        ax.set_ylabel(f"{label}: k", fontsize=9)
        if c == 0:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                      title="Y(k, t)", title_fontsize=7)
    ax_p.set_ylim(-0.08 - 0.05 * n if annotations is not None else -0.04, 1.08 + 0.05 * n)
    ax_p.set_yticks([0, 0.5, 1])
    ax_p.set_ylabel("p(t)")
    handles, labels = ax_p.get_legend_handles_labels()
    marks = [plt.Line2D([], [], color="k", ls=":", lw=0.8)]
    names = ["threshold" + ("s (per class)" if len(set(thresholds)) > 1 else "")]
    if has_dets:
        marks.append(plt.Line2D([], [], color="k", marker="v", ls="none", ms=5))
        names.append("detections")
    if has_refs:
        marks.append(plt.Line2D([], [], color="k", marker="|", ls="none", ms=7, mew=1.5))
        names.append("reference events")
    ax_p.legend(handles + marks, labels + names, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                fontsize=7, frameon=False)
    axes[-1].set_xlabel("time (s)")
    fig.align_ylabels(axes)
    fig.tight_layout()
    return save(fig, out_path, dpi=150)


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
    plt = pyplot()
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
    return save(fig, out_path, dpi=110)
