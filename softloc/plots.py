"""Figures: the picture of LoCo Fig. 1 for a trained detector on one audio excerpt.

Panels, top to bottom, sharing the time axis (seconds from the start of the file):

1. the log-mel spectrogram (dB) of the excerpt;
2. p(t) per class, the detections (markers) and the reference events (dashed lines);
3. per class, the count distribution Y(k, t) = Pr(k events of the class in [start, t]) as it
   evolves over time (LoCo eq. 9), with the reference running count overlaid.

matplotlib is used with the non-interactive Agg backend; figures are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["plot_detection", "running_count_distribution"]


def running_count_distribution(probs: np.ndarray, k_max: int) -> np.ndarray:
    """Y(k, t) for every prefix of ``probs``: ``(class, time)`` -> ``(class, k_max + 1, time)``.

    Column ``t`` is the count distribution of the frames ``0..t`` (LoCo eq. 9, computed by
    :func:`softloc.counting.count_distribution` with one length per prefix).
    """
    from softloc.counting import count_distribution

    p = torch.as_tensor(np.asarray(probs, dtype=np.float64))
    n_classes, n_frames = p.shape
    batch = p.unsqueeze(0).expand(n_frames, n_classes, n_frames)  # (T, C, T): one row per prefix
    lengths = torch.arange(1, n_frames + 1)
    y = count_distribution(batch.contiguous(), k_max, lengths=lengths)  # (T, C, K+1)
    return y.permute(1, 2, 0).numpy()  # (T, C, K+1) -> (C, K+1, T)


def plot_detection(
    detector,
    audio: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    start_s: float = 0.0,
    duration_s: float = 4.0,
    k_show: int = 12,
) -> Path:
    """Draw LoCo Fig. 1 for ``detector`` on ``audio[start_s : start_s + duration_s]``.

    Args:
        detector: a :class:`softloc.inference.Detector`.
        audio: audio file.
        out_path: figure file (format from the suffix: .png, .pdf, .svg).
        annotations: optional reference annotation file (``'<seconds>\\t<label>'``).
        start_s: excerpt start in seconds.
        duration_s: excerpt length in seconds (> 0).
        k_show: highest count shown in the Y(k, t) panels.

    Returns:
        the written path.

    Raises:
        ValueError: bad excerpt bounds; malformed annotation file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softloc.data.layout import read_annotation_file
    from softloc.features import load_audio, log_delta, mel_power

    if duration_s <= 0 or start_s < 0:
        raise ValueError(
            f"plot_detection: need start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}"
        )
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
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out_path)
    return out_path
