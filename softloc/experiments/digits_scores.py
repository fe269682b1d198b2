"""The scores of the digits experiment (LoCo §8.3): detection, counting, recognition, features.

* :func:`evaluate_detections`: decoded detections (:func:`softloc.inference.images.
  decode_detections`) matched to the true digit centres in the image plane
  (:func:`softloc.metrics.centres.match_centres`), pooled over canvases; counts from the mode of
  the count distribution (LoCo eq. 9, 14) and from the number of detections.
* :func:`recognition_accuracy`: single digits alone on a canvas, class = argmax of the expected
  count ``sum_t p_c(t)``.
* :func:`representation_scores`: kNN accuracy of the conv features and their t-SNE embedding
  (LoCo Fig. 3).

Conventions: canvases ``(n, 1, H, W)`` in [0, 1]; probabilities ``(n, class, time)`` over the
Hilbert steps; pixel centres ``(row, col)``. A ratio with a zero denominator is ``None``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from softloc.counting import count_distribution
from softloc.data.digits import Canvases, DigitSet, place_digits
from softloc.inference.images import decode_detections
from softloc.metrics.centres import match_centres
from softloc.models.digits import DigitDetector

__all__ = [
    "evaluate_detections",
    "predict_probabilities",
    "recognition_accuracy",
    "representation_scores",
]


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
def predict_probabilities(
    model: DigitDetector, images: np.ndarray, *, batch_size: int = 64
) -> np.ndarray:
    """p(t) ``(n, class, time)`` of canvases ``(n, 1, H, W)`` (sigmoid of the logits)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size])
        out.append(torch.sigmoid(model(x)).numpy())  # logits -> p(t)
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
    probs = predict_probabilities(model, canvases)  # (N, C, T)
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




def representation_scores(
    model: DigitDetector, digits: DigitSet, *, n_tsne: int, seed: int
) -> tuple[float, np.ndarray | None, np.ndarray]:
    """How well the learned conv features separate the digits (LoCo Fig. 3).

    Args:
        model: a trained detector.
        digits: train digits (the kNN reference set) and test digits (scored and embedded).
        n_tsne: test digits in the t-SNE embedding (fewer than 10: no embedding).
        seed: picks the embedded digits and seeds t-SNE.

    Returns:
        ``(knn_accuracy, embedding (n, 2) or None, labels (n,))``: the 5-nearest-neighbour
        accuracy of the test digits' features against the training digits' features, and the
        t-SNE embedding of ``n`` test digits with their classes.
    """
    from sklearn.manifold import TSNE
    from sklearn.neighbors import KNeighborsClassifier

    train_f = _features(model, digits.train_images)
    test_f = _features(model, digits.test_images)
    knn = KNeighborsClassifier(n_neighbors=5).fit(train_f, digits.train_labels)
    knn_acc = float(knn.score(test_f, digits.test_labels))
    n = min(n_tsne, len(test_f))
    if n < 10:
        return knn_acc, None, digits.test_labels[:0]
    pick = np.random.default_rng([seed, 3]).choice(len(test_f), size=n, replace=False)
    emb = TSNE(
        n_components=2,
        init="pca",
        random_state=seed,
        perplexity=min(30.0, (n - 1) / 3),
        # Barnes-Hut pays off only for many points; exact is faster for small plots (tests).
        method="exact" if n <= 200 else "barnes_hut",
    ).fit_transform(test_f[pick])
    return knn_acc, emb, digits.test_labels[pick]
