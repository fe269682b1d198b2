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

from softloc.plots._backend import pyplot, save

__all__ = ["running_count_distribution", "plot_detection", "plot_image_detection"]


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
    plt = pyplot()
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
    return save(fig, out_path, dpi=110)


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
