"""LoCo §8: digit detection in images along a Hilbert curve, trained from digit counts only.

Canvases of non-overlapping digits (:mod:`softloc.data.digits`) are read as sequences of windows
along a Hilbert curve (:mod:`softloc.hilbert`); a conv + LSTM detector
(:class:`softloc.models.digits.DigitDetector`) is trained with the LoCo count loss
(:func:`softloc.losses.loco_loss`) from the number of digits of each class on each canvas, then
evaluated on canvases built from held-out digits:

(a) ``recognition_accuracy``: single test digits, each alone on a blank canvas at a random
    position; the predicted class is the one with the largest expected count ``sum_t p_c(t)``.
(b) detection: per canvas and class, decoded detections
    (:func:`softloc.decode.threshold_events` along the sequence, at ``p > threshold``) are placed
    at their cell centres and matched one-to-one to the true digit centres of the same class
    within ``match_tolerance_px`` (Euclidean, pixels), maximising the number of pairs and then
    minimising their total distance (``scipy.optimize.linear_sum_assignment``). Pooled over
    canvases: ``detection_precision``, ``detection_recall``, ``detection_f1`` and
    ``centre_distance_px``, the mean distance between matched true and estimated centres
    (LoCo §8.3 reports 9.04 px at an 8 px granularity).
(c) ``count_accuracy``: the share of test canvases whose 10 per-class counts are all right, the
    predicted count being the mode of the model's count distribution
    (:func:`softloc.counting.count_distribution`, LoCo eq. 9, 14);
    ``count_accuracy_from_detections`` uses the number of decoded detections instead.

It also writes a figure of detections on test canvases (LoCo Fig. 2), a t-SNE plot of the learned
digit representations (LoCo Fig. 3, ``sklearn.manifold.TSNE``) and, as a number for that plot,
``representation_knn_accuracy``: 5-nearest-neighbour accuracy on the test digits' conv features
with the training digits' features as the reference set.

Output folder: ``config.yaml`` (resolved config + package versions), ``logs/metrics.csv``
(Lightning CSV log), ``model.pt`` (model arguments + weights), ``results.json``,
``detections.png``, ``tsne.png``.

Python: ``run_digits(DigitsConfig(out_dir="out"))``; command line: ``softloc experiment digits
--source sklearn --out out`` (or ``python -m softloc.experiments.digits --out out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from scipy.optimize import linear_sum_assignment

import softloc
from softloc.counting import count_distribution, count_prior_bias
from softloc.data.digits import (
    N_DIGIT_CLASSES,
    Canvases,
    CanvasStream,
    DigitSet,
    load_mnist,
    load_sklearn_digits,
    make_canvases,
    place_digits,
)
from softloc.decode import threshold_events
from softloc.hilbert import index_to_centre_px
from softloc.losses import loco_loss
from softloc.models.digits import CONV_PRESETS, DigitDetector

__all__ = [
    "DigitsConfig",
    "DigitsModule",
    "default_config",
    "build_model",
    "decode_detections",
    "match_centres",
    "evaluate_detections",
    "recognition_accuracy",
    "run_digits",
    "register_cli",
    "main",
]

SOURCES = ("sklearn", "mnist")


@dataclass(frozen=True)
class DigitsConfig:
    """Everything a digits run depends on; written resolved to ``config.yaml`` in the run folder.

    Attributes:
        source: ``"sklearn"`` (built-in 8 x 8 digits, upscaled) or ``"mnist"`` (IDX files).
        mnist_dir: folder with the MNIST IDX files (required for ``source="mnist"``).
        out_dir: run folder.
        seed: seed of the split, the training stream, the test canvases and the weights.
        digit_px: digit side in pixels (sklearn: 8 x 8 upscaled to this; MNIST: 28 = native).
        canvas_px: canvas side in pixels.
        granularity_px: Hilbert cell size = window stride, in pixels (the paper: 8).
        window_px: window side in pixels, >= granularity_px with the same parity.
        min_digits, max_digits: digits per canvas, uniform in this range.
        conv_preset: key of :data:`softloc.models.digits.CONV_PRESETS` (``"vgg13"`` = the paper).
        batch_norm: batch normalisation after each conv.
        lstm_units: LSTM size per direction (the paper: 48).
        bidirectional: bidirectional LSTM.
        hidden_units: fully connected layer size (the paper: 24).
        omega: prior probability of no digit of a class on a canvas, sets the initial output bias
            (LoCo eq. 15).
        k_max: absorbing top bin of the count distribution; ``None`` = ``max_digits + 1``.
        batch_size: canvases per training step.
        max_steps: training steps.
        learning_rate: Adam learning rate (cosine-decayed to 0 over ``max_steps``).
        gradient_clip: gradient-norm clipping threshold.
        threshold: detection threshold on p(t) (strict ``>``).
        match_tolerance_px: largest centre distance of a correct detection, pixels; ``None`` =
            ``digit_px`` (the detection centre is within one digit width of the true centre).
        n_test_canvases: test canvases for detection and counting.
        n_figure_canvases: canvases drawn in ``detections.png``.
        n_tsne: test digits in the t-SNE plot.
        threads: torch CPU threads (``None`` = torch's default).
        log_every_n_steps: CSV logging interval.
    """

    source: str = "sklearn"
    mnist_dir: str | None = None
    out_dir: str = "digits_out"
    seed: int = 0
    digit_px: int = 16
    canvas_px: int = 64
    granularity_px: int = 8
    window_px: int = 16
    min_digits: int = 1
    max_digits: int = 4
    conv_preset: str = "compact"
    batch_norm: bool = False
    lstm_units: int = 48
    bidirectional: bool = True
    hidden_units: int = 24
    omega: float = 0.8
    k_max: int | None = None
    batch_size: int = 32
    max_steps: int = 2000
    learning_rate: float = 2e-3
    gradient_clip: float = 1.0
    threshold: float = 0.5
    match_tolerance_px: float | None = None
    n_test_canvases: int = 500
    n_figure_canvases: int = 8
    n_tsne: int = 450
    threads: int | None = None
    log_every_n_steps: int = 25

    def __post_init__(self) -> None:
        fn = "DigitsConfig"
        if self.source not in SOURCES:
            raise ValueError(f"{fn}: `source` must be one of {SOURCES}, got {self.source!r}")
        if self.source == "mnist" and not self.mnist_dir:
            raise ValueError(f"{fn}: `mnist_dir` is required for source='mnist'")
        if self.conv_preset not in CONV_PRESETS:
            raise ValueError(
                f"{fn}: `conv_preset` must be one of {sorted(CONV_PRESETS)}, "
                f"got {self.conv_preset!r}"
            )
        ints = {
            "digit_px": 4,
            "canvas_px": 1,
            "granularity_px": 1,
            "window_px": 1,
            "min_digits": 0,
            "max_digits": 1,
            "lstm_units": 1,
            "hidden_units": 1,
            "batch_size": 1,
            "max_steps": 0,
            "n_test_canvases": 1,
            "n_figure_canvases": 0,
            "n_tsne": 0,
            "log_every_n_steps": 1,
        }
        for name, minimum in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{fn}: `{name}` must be an int, got {type(value).__name__}")
            if value < minimum:
                raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value}")
        for name in ("k_max", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{fn}: `{name}` must be an int or None, got {value!r}")
            if value is not None and value < 1:
                raise ValueError(f"{fn}: `{name}` must be >= 1, got {value}")
        if self.max_digits < self.min_digits:
            raise ValueError(
                f"{fn}: need min_digits <= max_digits, got {self.min_digits} > {self.max_digits}"
            )
        if not 0.0 < self.omega < 1.0:
            raise ValueError(f"{fn}: `omega` must lie in (0, 1), got {self.omega}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"{fn}: `threshold` must lie in [0, 1), got {self.threshold}")
        for name in ("learning_rate", "gradient_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{fn}: `{name}` must be > 0, got {getattr(self, name)}")
        if self.match_tolerance_px is not None and not self.match_tolerance_px > 0:
            raise ValueError(
                f"{fn}: `match_tolerance_px` must be > 0 or None, got {self.match_tolerance_px}"
            )

    @property
    def resolved_k_max(self) -> int:
        return self.k_max if self.k_max is not None else self.max_digits + 1

    @property
    def resolved_tolerance_px(self) -> float:
        tol = self.match_tolerance_px
        return float(self.digit_px if tol is None else tol)


def default_config(source: str = "sklearn", **overrides: Any) -> DigitsConfig:
    """The default configuration of a source; ``overrides`` replace single fields.

    ``"sklearn"``: 16 px digits on 64 px canvases, 8 px granularity, 16 px windows (64 steps).
    ``"mnist"``: 28 px digits on 128 px canvases, 8 px granularity (the paper's), 32 px windows
    (256 steps), up to 8 digits.

    Raises:
        ValueError: unknown source or a bad value; TypeError: an unknown field.
    """
    if source == "sklearn":
        fields: dict[str, Any] = {"source": "sklearn"}
    elif source == "mnist":
        fields = {
            "source": "mnist",
            "digit_px": 28,
            "canvas_px": 128,
            "window_px": 32,
            "max_digits": 8,
            "batch_size": 16,
            "max_steps": 6000,
        }
    else:
        raise ValueError(f"default_config: `source` must be one of {SOURCES}, got {source!r}")
    return DigitsConfig(**(fields | overrides))


def build_model(config: DigitsConfig) -> DigitDetector:
    """The detector of a config, with the LoCo prior output bias (LoCo eq. 15)."""
    n_steps = (config.canvas_px // config.granularity_px) ** 2
    return DigitDetector(
        image_px=config.canvas_px,
        granularity_px=config.granularity_px,
        window_px=config.window_px,
        conv_channels=CONV_PRESETS[config.conv_preset],
        batch_norm=config.batch_norm,
        lstm_units=config.lstm_units,
        bidirectional=config.bidirectional,
        hidden_units=config.hidden_units,
        n_classes=N_DIGIT_CLASSES,
        output_bias=count_prior_bias(n_steps, config.omega),
    )


class DigitsModule(L.LightningModule):
    """Lightning wrapper: LoCo count loss on a :class:`DigitDetector`, Adam, cosine decay.

    Args:
        model: the detector.
        k_max: absorbing top bin of the count distribution.
        learning_rate: Adam learning rate at step 0.
        max_steps: length of the cosine decay (steps).
    """

    def __init__(
        self, model: DigitDetector, *, k_max: int, learning_rate: float, max_steps: int
    ) -> None:
        super().__init__()
        self.model = model
        self.k_max = k_max
        self.learning_rate = learning_rate
        self.max_steps = max(1, max_steps)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, counts = batch  # (B, 1, H, W), (B, C)
        logits = self.model.logits(images)  # (B, 1, H, W) -> (B, C, T)
        # The logits form keeps 1 - p exact: a float32 sigmoid rounds to 1 for logits above ~17.
        loss = loco_loss(logits, counts, self.k_max, logits=True)
        with torch.no_grad():
            expected = torch.sigmoid(logits).sum(dim=-1)  # (B, C, T) -> (B, C)
            count_ok = (expected.round() == counts).all(dim=1).float().mean()
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_count_accuracy", count_ok)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.learning_rate)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda step: (
                0.5 * (1.0 + math.cos(math.pi * min(step, self.max_steps) / self.max_steps))
            ),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------


def decode_detections(
    probs: np.ndarray | torch.Tensor, *, image_px: int, granularity_px: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of one canvas -> detected digit centres, classes and scores.

    One detection per run of consecutive curve steps with ``p > threshold``, at the run's peak
    (:func:`softloc.decode.threshold_events`), placed at the centre of that step's cell.

    Args:
        probs: ``(class, time)`` probabilities of one canvas.
        image_px: canvas side in pixels.
        granularity_px: Hilbert cell size in pixels.
        threshold: detection threshold in [0, 1).

    Returns:
        ``(centres_px (k, 2) float64 (row, col), classes (k,) int64, scores (k,) float64)``.
    """
    events = threshold_events(probs, threshold=threshold, frame_rate=1.0)
    centres = index_to_centre_px(events.frames, image_px=image_px, granularity_px=granularity_px)
    return centres.reshape(-1, 2), events.classes, events.scores


def match_centres(
    reference_px: np.ndarray,
    reference_labels: np.ndarray,
    estimate_px: np.ndarray,
    estimate_labels: np.ndarray,
    *,
    tolerance_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of estimated to true centres of the same class, within a tolerance.

    Among all matchings using pairs at distance <= ``tolerance_px`` (Euclidean), the one with the
    most pairs and, among those, the smallest total distance (``linear_sum_assignment`` with a
    prohibitive cost on pairs beyond the tolerance).

    Args:
        reference_px: ``(n_ref, 2)`` true centres ``(row, col)`` in pixels.
        reference_labels: ``(n_ref,)`` their classes.
        estimate_px: ``(n_est, 2)`` estimated centres in pixels.
        estimate_labels: ``(n_est,)`` their classes.
        tolerance_px: largest distance of a matched pair (inclusive), > 0.

    Returns:
        ``(ref_index, est_index, distance_px)``: 1-D arrays, one entry per matched pair.

    Raises:
        ValueError: malformed shapes or a tolerance <= 0.

    Notes:
        ``softloc.metrics.match_onsets`` (mir_eval) matches 1-D times; digit centres are 2-D, and
        neighbours along the Hilbert curve are not always neighbours in the image, so we match in
        the image plane instead of on the sequence index.
    """
    fn = "match_centres"
    ref = (
        np.asarray(reference_px, dtype=np.float64).reshape(-1, 2)
        if np.size(reference_px)
        else np.zeros((0, 2))
    )
    est = (
        np.asarray(estimate_px, dtype=np.float64).reshape(-1, 2)
        if np.size(estimate_px)
        else np.zeros((0, 2))
    )
    ref_lab = np.asarray(reference_labels).reshape(-1)
    est_lab = np.asarray(estimate_labels).reshape(-1)
    if len(ref_lab) != len(ref) or len(est_lab) != len(est):
        raise ValueError(
            f"{fn}: need one label per centre, got {len(ref)} reference centres / {len(ref_lab)} "
            f"labels and {len(est)} estimated centres / {len(est_lab)} labels"
        )
    if not tolerance_px > 0:
        raise ValueError(f"{fn}: `tolerance_px` must be > 0, got {tolerance_px}")
    if not (len(ref) and len(est)):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    dist = np.linalg.norm(ref[:, None, :] - est[None, :, :], axis=-1)  # (n_ref, n_est)
    allowed = (dist <= tolerance_px) & (ref_lab[:, None] == est_lab[None, :])
    # A forbidden pair costs more than any full matching of allowed pairs, so the assignment first
    # maximises the number of allowed pairs, then minimises their total distance.
    big = 1.0 + tolerance_px * (min(len(ref), len(est)) + 1)
    cost = np.where(allowed, dist, big)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64), dist[rows[keep], cols[keep]]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def evaluate_detections(
    probs: np.ndarray | torch.Tensor,
    canvases: Canvases,
    *,
    granularity_px: int,
    threshold: float,
    tolerance_px: float,
    k_max: int,
) -> dict[str, Any]:
    """Detection and counting scores of a batch of canvases, pooled over canvases and classes.

    Args:
        probs: ``(n_canvases, class, time)`` model probabilities.
        canvases: the canvases with their true centres, labels and counts.
        granularity_px: Hilbert cell size in pixels.
        threshold: detection threshold.
        tolerance_px: matching tolerance in pixels.
        k_max: absorbing top bin of the count distribution (true counts are clipped to it).

    Returns:
        ``detection_precision``, ``detection_recall``, ``detection_f1`` (micro: pooled TP/FP/FN),
        ``centre_distance_px`` (mean over matched pairs), ``centre_distance_median_px``,
        ``n_reference``, ``n_estimate``, ``n_matched``, ``count_accuracy`` (mode of the count
        distribution), ``count_accuracy_from_detections``, ``count_class_accuracy`` (share of
        (canvas, class) counts right, mode). A ratio with a zero denominator is ``None``.
    """
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.dim() != 3 or p.shape[0] != len(canvases):
        raise ValueError(
            f"evaluate_detections: `probs` must have shape ({len(canvases)}, class, time), got "
            f"{tuple(p.shape)}"
        )
    image_px = int(canvases.images.shape[-1])
    n_ref = n_est = 0
    distances: list[np.ndarray] = []
    det_counts = np.zeros_like(canvases.counts)
    for i in range(len(canvases)):
        centres, classes, _ = decode_detections(
            p[i], image_px=image_px, granularity_px=granularity_px, threshold=threshold
        )
        np.add.at(det_counts[i], classes, 1)
        _, _, dist = match_centres(
            canvases.centres_px[i], canvases.labels[i], centres, classes, tolerance_px=tolerance_px
        )
        n_ref += len(canvases.labels[i])
        n_est += len(classes)
        distances.append(dist)
    dist_all = np.concatenate(distances) if distances else np.zeros(0)
    tp = len(dist_all)
    precision, recall = _ratio(tp, n_est), _ratio(tp, n_ref)
    f1 = _ratio(2 * tp, n_est + n_ref)
    true = np.minimum(canvases.counts, k_max)
    mode = count_distribution(p.clamp(0.0, 1.0), k_max).argmax(dim=-1).numpy()  # (N, C)
    return {
        "detection_precision": precision,
        "detection_recall": recall,
        "detection_f1": f1,
        "centre_distance_px": float(dist_all.mean()) if tp else None,
        "centre_distance_median_px": float(np.median(dist_all)) if tp else None,
        "n_reference": int(n_ref),
        "n_estimate": int(n_est),
        "n_matched": int(tp),
        "count_accuracy": float((mode == true).all(axis=1).mean()),
        "count_class_accuracy": float((mode == true).mean()),
        "count_accuracy_from_detections": float(
            (np.minimum(det_counts, k_max) == true).all(axis=1).mean()
        ),
    }


@torch.no_grad()
def _predict(model: DigitDetector, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size])
        out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_classes, model.n_steps))


def _single_digit_canvases(
    digits: np.ndarray, *, canvas_px: int, rng: np.random.Generator
) -> np.ndarray:
    """Each digit alone on a blank canvas at a uniformly random position: (n, 1, H, W)."""
    n, s = len(digits), digits.shape[-1]
    out = np.zeros((n, 1, canvas_px, canvas_px), dtype=np.float32)
    for i in range(n):
        top, left = place_digits(1, canvas_px=canvas_px, digit_px=s, rng=rng)[0]
        out[i, 0, top : top + s, left : left + s] = digits[i]
    return out


def recognition_accuracy(
    model: DigitDetector,
    digits: np.ndarray,
    labels: np.ndarray,
    *,
    rng: np.random.Generator,
) -> float:
    """Single-digit recognition: each digit alone on a canvas; class = argmax of expected count.

    Args:
        model: a trained detector.
        digits: ``(n, digit_px, digit_px)`` float digits in [0, 1].
        labels: ``(n,)`` their classes.
        rng: places the digits.

    Returns:
        Share of digits whose class has the largest expected count ``sum_t p_c(t)``.
    """
    canvases = _single_digit_canvases(digits, canvas_px=model.image_px, rng=rng)
    probs = _predict(model, canvases)  # (N, C, T)
    predicted = probs.sum(axis=-1).argmax(axis=-1)  # (N, C, T) -> (N,)
    return float((predicted == np.asarray(labels)).mean())


def _centred_patches(digits: np.ndarray, window_px: tuple[int, int]) -> np.ndarray:
    """Digits centred in a window (zero-padded or centre-cropped): (n, 1, win_h, win_w)."""
    n, s = len(digits), digits.shape[-1]
    wh, ww = window_px
    out = np.zeros((n, 1, wh, ww), dtype=np.float32)
    # Offsets of the digit in the window; negative = crop.
    oy, ox = (wh - s) // 2, (ww - s) // 2
    ys, xs = max(0, -oy), max(0, -ox)
    yd, xd = max(0, oy), max(0, ox)
    h, w = min(s - ys, wh - yd), min(s - xs, ww - xd)
    out[:, 0, yd : yd + h, xd : xd + w] = digits[:, ys : ys + h, xs : xs + w]
    return out


@torch.no_grad()
def _features(model: DigitDetector, digits: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    patches = _centred_patches(digits, model.window_px)
    feats = [
        model.encode(torch.from_numpy(patches[i : i + batch_size])).numpy()
        for i in range(0, len(patches), batch_size)
    ]
    return np.concatenate(feats) if feats else np.zeros((0, model.n_features), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Output files (all written to a temporary file first, then renamed)
# ------------------------------------------------------------------------------------------------


def _publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it 0600), rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_savefig(fig, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _versions() -> dict[str, str]:
    import lightning
    import sklearn

    return {
        "softloc": softloc.__version__,
        "torch": str(torch.__version__),
        "lightning": lightning.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def _plot_detections(
    canvases: Canvases, probs: np.ndarray, config: DigitsConfig, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(config.n_figure_canvases, len(canvases))
    cols = min(4, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    half = canvases.digit_px / 2.0
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.set_axis_on()  # a frame shows the canvas border; no ticks
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(
            canvases.images[k, 0],
            cmap="gray_r",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(0, config.canvas_px, config.canvas_px, 0),
        )
        for cy, cx in canvases.centres_px[k]:
            ax.add_patch(
                Rectangle(
                    (cx - half, cy - half),
                    2 * half,
                    2 * half,
                    fill=False,
                    edgecolor="tab:green",
                    linewidth=1.0,
                )
            )
        centres, classes, _ = decode_detections(
            probs[k],
            image_px=config.canvas_px,
            granularity_px=config.granularity_px,
            threshold=config.threshold,
        )
        for (cy, cx), c in zip(centres, classes, strict=True):
            ax.plot(cx, cy, "o", color="tab:red", markersize=4)
            ax.text(cx + 1.5, cy - 1.5, f"{c}", color="tab:red", fontsize=10, weight="bold")
        ax.set_title(
            "true " + " ".join(str(v) for v in sorted(canvases.labels[k].tolist())), fontsize=8
        )
    fig.suptitle(
        "Detections (red: class at cell centre, p > "
        f"{config.threshold:g}; green: true digit boxes)",
        fontsize=9,
    )
    _atomic_savefig(fig, path)
    plt.close(fig)


def _plot_tsne(embedding: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10")
    for c in range(N_DIGIT_CLASSES):
        sel = labels == c
        ax.scatter(embedding[sel, 0], embedding[sel, 1], s=6, color=cmap(c), label=str(c))
        if sel.any():
            mx, my = np.median(embedding[sel], axis=0)
            ax.text(mx, my, str(c), fontsize=12, weight="bold", color=cmap(c))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=7, ncol=2, loc="best")
    ax.set_title(title, fontsize=9)
    _atomic_savefig(fig, path)
    plt.close(fig)


def _load_digits(config: DigitsConfig) -> DigitSet:
    if config.source == "sklearn":
        return load_sklearn_digits(digit_px=config.digit_px, seed=config.seed)
    assert config.mnist_dir is not None  # checked in DigitsConfig
    return load_mnist(config.mnist_dir, digit_px=config.digit_px)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"run_digits: `out_dir` {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"run_digits: `out_dir` {out} is not empty; choose a new folder or pass "
            "overwrite=True (--overwrite) to replace the files of an earlier run"
        )
    out.mkdir(parents=True, exist_ok=True)


def run_digits(config: DigitsConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Train the Hilbert-curve digit detector from counts, evaluate it, write the run folder.

    Args:
        config: the run configuration (see :class:`DigitsConfig`, :func:`default_config`).
        overwrite: allow a non-empty ``config.out_dir`` (its files of the same names are
            replaced). Default False: a non-empty folder is an error, so nothing is lost.

    Returns:
        The results written to ``results.json`` (see the module docstring), including
        ``recognition_accuracy``, ``centre_distance_px``, ``granularity_px``, ``detection_f1``,
        ``count_accuracy``, ``train_time_s`` and ``total_time_s``.

    Raises:
        TypeError / ValueError: a bad config (from :class:`DigitsConfig`) or bad data files.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: MNIST files missing.
    """
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"run_digits: `config` must be a DigitsConfig, got {type(config).__name__}")
    out = Path(config.out_dir)
    _prepare_out_dir(out, overwrite)
    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, out)
    finally:
        torch.set_num_threads(threads_before)


def _run(config: DigitsConfig, out: Path) -> dict[str, Any]:
    t_start = time.perf_counter()
    L.seed_everything(config.seed, workers=True, verbose=False)

    digits = _load_digits(config)
    if digits.digit_px != config.digit_px:  # pragma: no cover - loaders resize
        raise AssertionError("loaded digits have the wrong size")
    resolved = dataclasses.asdict(config) | {
        "k_max": config.resolved_k_max,
        "match_tolerance_px": config.resolved_tolerance_px,
    }
    _atomic_write_bytes(
        out / "config.yaml",
        yaml.safe_dump(
            {"experiment": "digits", "config": resolved, "versions": _versions()}, sort_keys=False
        ).encode(),
    )

    model = build_model(config)
    module = DigitsModule(
        model,
        k_max=config.resolved_k_max,
        learning_rate=config.learning_rate,
        max_steps=config.max_steps,
    )
    stream = CanvasStream(
        digits.train_images,
        digits.train_labels,
        canvas_px=config.canvas_px,
        min_digits=config.min_digits,
        max_digits=config.max_digits,
        seed=config.seed,
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=config.batch_size, num_workers=0)
    logger = L.pytorch.loggers.CSVLogger(str(out), name="logs", version="")
    trainer = L.Trainer(
        max_steps=config.max_steps,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=config.gradient_clip,
        logger=logger,
        # Log at least once, so short runs also leave a metrics.csv.
        log_every_n_steps=max(1, min(config.log_every_n_steps, config.max_steps)),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=str(out),
        num_sanity_val_steps=0,
    )
    t_train = time.perf_counter()
    if config.max_steps > 0:
        trainer.fit(module, train_dataloaders=loader)
    train_time_s = time.perf_counter() - t_train
    model.eval()
    buffer = _bytes_of_checkpoint(model, config)
    _atomic_write_bytes(out / "model.pt", buffer)

    # Evaluation on held-out digits, with fixed seeds independent of the training stream.
    rng = np.random.default_rng([config.seed, 1])
    test = make_canvases(
        digits.test_images,
        digits.test_labels,
        n_canvases=config.n_test_canvases,
        canvas_px=config.canvas_px,
        min_digits=config.min_digits,
        max_digits=config.max_digits,
        rng=rng,
    )
    probs = _predict(model, test.images)
    scores = evaluate_detections(
        probs,
        test,
        granularity_px=config.granularity_px,
        threshold=config.threshold,
        tolerance_px=config.resolved_tolerance_px,
        k_max=config.resolved_k_max,
    )
    recog = recognition_accuracy(
        model, digits.test_images, digits.test_labels, rng=np.random.default_rng([config.seed, 2])
    )
    knn, embedding, tsne_labels = _representation(model, digits, config)
    _plot_detections(test, probs, config, out / "detections.png")
    if embedding is not None:
        _plot_tsne(
            embedding,
            tsne_labels,
            out / "tsne.png",
            f"t-SNE of conv features, {len(tsne_labels)} test digits ({config.source})",
        )
    results: dict[str, Any] = {
        "experiment": "digits",
        "source": config.source,
        "recognition_accuracy": recog,
        "centre_distance_px": scores["centre_distance_px"],
        "granularity_px": config.granularity_px,
        "centre_distance_over_granularity": (
            scores["centre_distance_px"] / config.granularity_px
            if scores["centre_distance_px"] is not None
            else None
        ),
        **{k: v for k, v in scores.items() if k != "centre_distance_px"},
        "representation_knn_accuracy": knn,
        "match_tolerance_px": config.resolved_tolerance_px,
        "threshold": config.threshold,
        "n_test_canvases": config.n_test_canvases,
        "n_test_digits": int(len(digits.test_labels)),
        "steps": int(trainer.global_step),
        "train_time_s": train_time_s,
        "total_time_s": time.perf_counter() - t_start,
        "threads": torch.get_num_threads(),
        "softloc_version": softloc.__version__,
    }
    _atomic_write_bytes(out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    return results


def _bytes_of_checkpoint(model: DigitDetector, config: DigitsConfig) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(
        {
            "model_class": "softloc.models.digits.DigitDetector",
            "init_args": model.init_args,
            "state_dict": model.state_dict(),
            "config": dataclasses.asdict(config),
            "softloc_version": softloc.__version__,
        },
        buf,
    )
    return buf.getvalue()


def _representation(
    model: DigitDetector, digits: DigitSet, config: DigitsConfig
) -> tuple[float, np.ndarray | None, np.ndarray]:
    from sklearn.manifold import TSNE
    from sklearn.neighbors import KNeighborsClassifier

    train_f = _features(model, digits.train_images)
    test_f = _features(model, digits.test_images)
    knn = KNeighborsClassifier(n_neighbors=5).fit(train_f, digits.train_labels)
    knn_acc = float(knn.score(test_f, digits.test_labels))
    n = min(config.n_tsne, len(test_f))
    if n < 10:
        return knn_acc, None, digits.test_labels[:0]
    pick = np.random.default_rng([config.seed, 3]).choice(len(test_f), size=n, replace=False)
    emb = TSNE(
        n_components=2,
        init="pca",
        random_state=config.seed,
        perplexity=min(30.0, (n - 1) / 3),
        # Barnes-Hut pays off only for many points; exact is faster for small plots (tests).
        method="exact" if n <= 200 else "barnes_hut",
    ).fit_transform(test_f[pick])
    return knn_acc, emb, digits.test_labels[pick]


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

# (flag, config field, type, help)
_CLI_OPTIONS: Sequence[tuple[str, str, Callable[[str], Any], str]] = (
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--max-steps", "max_steps", int, "training steps (sklearn default 2000)"),
    ("--batch-size", "batch_size", int, "canvases per step (sklearn default 32)"),
    ("--learning-rate", "learning_rate", float, "Adam learning rate (default 2e-3)"),
    ("--granularity", "granularity_px", int, "Hilbert cell size / stride in px (default 8)"),
    ("--window", "window_px", int, "window side in px (sklearn 16, mnist 32)"),
    ("--canvas", "canvas_px", int, "canvas side in px (sklearn 64, mnist 128)"),
    ("--digit-size", "digit_px", int, "digit side in px (sklearn 16, mnist 28)"),
    ("--max-digits", "max_digits", int, "most digits per canvas (sklearn 4, mnist 8)"),
    ("--min-digits", "min_digits", int, "fewest digits per canvas (default 1)"),
    ("--conv-preset", "conv_preset", str, f"conv layers: one of {sorted(CONV_PRESETS)}"),
    ("--threshold", "threshold", float, "detection threshold on p (default 0.5)"),
    ("--tolerance", "match_tolerance_px", float, "matching tolerance in px (default: digit size)"),
    ("--test-canvases", "n_test_canvases", int, "test canvases (default 500)"),
    ("--tsne-digits", "n_tsne", int, "test digits in the t-SNE plot (default 450; 0 = no plot)"),
    ("--threads", "threads", int, "torch CPU threads (default: torch's choice)"),
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="sklearn",
        help="digit source: built-in sklearn 8x8 digits or MNIST IDX files",
    )
    parser.add_argument(
        "--mnist-dir",
        default=None,
        metavar="DIR",
        help="folder with the MNIST IDX files (for --source mnist)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (must be new or empty)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="allow a non-empty --out folder (files of the same name are replaced)",
    )
    for flag, field, typ, help_text in _CLI_OPTIONS:
        if field == "conv_preset":
            parser.add_argument(
                flag, dest=field, choices=sorted(CONV_PRESETS), default=None, help=help_text
            )
            continue
        metavar = "PX" if field.endswith("_px") else ("N" if typ is int else "X")
        parser.add_argument(
            flag, dest=field, type=typ, default=None, metavar=metavar, help=help_text
        )


def _config_from_args(args: argparse.Namespace) -> DigitsConfig:
    overrides = {
        field: getattr(args, field)
        for _, field, _, _ in _CLI_OPTIONS
        if getattr(args, field) is not None
    }
    return default_config(args.source, mnist_dir=args.mnist_dir, out_dir=args.out, **overrides)


def _run_from_args(args: argparse.Namespace) -> int:
    if args.source == "mnist" and not args.mnist_dir:
        raise ValueError("--source mnist needs --mnist-dir DIR (the folder of the IDX files)")
    results = run_digits(_config_from_args(args), overwrite=args.overwrite)
    keys = (
        "recognition_accuracy",
        "centre_distance_px",
        "granularity_px",
        "detection_precision",
        "detection_recall",
        "detection_f1",
        "count_accuracy",
        "train_time_s",
        "total_time_s",
    )
    for key in keys:
        value = results[key]
        print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(f"{'written to':>24}: {args.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``digits`` command to an ``experiment`` sub-parser group; sets ``func``.

    ``func(args) -> int`` runs :func:`run_digits` with the parsed options.
    """
    parser = subparsers.add_parser(
        "digits",
        help="LoCo §8: digit detection along a Hilbert curve, trained from counts",
        description=(
            "Train a conv + LSTM detector on canvases of random digits from digit counts only "
            "(LoCo §8), then report recognition accuracy, detection P/R/F1, mean centre "
            "distance and count accuracy; writes results.json, detections.png and tsne.png."
        ),
    )
    _add_arguments(parser)
    parser.set_defaults(func=_run_from_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m softloc.experiments.digits ARGS`` = ``softloc experiment digits ARGS``."""
    from softloc.cli import main as cli_main

    args = list(argv) if argv is not None else sys.argv[1:]
    return cli_main(["experiment", "digits", *args])


if __name__ == "__main__":
    raise SystemExit(main())
