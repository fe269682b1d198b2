"""Action-segmentation metrics: segmental F1@k, segmental edit score and frame accuracy.

The task: every frame of a sequence carries exactly one class; a *segment* is a maximal run of
equal labels. The metrics of the field (Lea et al. 2017; Farha & Gall 2019) compare the
segments of an estimate with those of the reference:

* :func:`frame_accuracy`: fraction of frames whose class is right.
* :func:`segmental_edit_score`: 1 − Levenshtein(ref, est) / max(n_ref, n_est) over the *ordered
  class sequences of the segments* (durations ignored), Lea et al. 2017 §4.
* :func:`segmental_f1`: F1 of segment detection at an IoU threshold τ (F1@10, F1@25, F1@50 for
  τ = 0.10, 0.25, 0.50), Lea et al. 2017 §4 / Farha & Gall 2019 §5.
* :func:`evaluate`: all of them for one sequence, in a dict; :func:`evaluate_dataset`: over many
  sequences (per-sequence means as Lea et al. report them, and pooled F1 as MS-TCN reports it).

Conventions:
    * Argument order is ``(reference, estimate)``, as in mir_eval.
    * Labels are 1-D integer arrays (class indices >= 0), one per frame, of equal length >= 1.
      Torch tensors are accepted. Frame rates do not matter: every metric here is in frames.
    * Scores are fractions in [0, 1] (the papers print them ×100).
    * ``ignore_classes`` (e.g. the background class) removes those classes' segments from the
      F1 and edit scores (MS-TCN's ``bg_class``); frame accuracy always counts every frame.

Segment matching of F1@τ (the standard greedy rule, kept for comparability with published
numbers): predicted segments are visited in temporal order; each is compared with every
reference segment of the same class by IoU = |intersection| / |union| in frames; the reference
segment of highest IoU (the earliest on a tie) is its candidate. It is a true positive when that
IoU >= τ and the candidate was not matched before, otherwise a false positive — even if another
reference segment with IoU >= τ is still free (possible only for τ < 0.5, where one prediction
can overlap two same-class references by τ). Unmatched reference segments are false negatives.
F1 = 2·TP / (2·TP + FP + FN).

Empty policy (``empty_policy``): when neither sequence has a (non-ignored) segment, F1 and edit
are 0/0. ``"skip"`` (default) returns NaN, which :func:`evaluate_dataset` leaves out of its means
(as ``softloc.metrics.onsets``); ``"zero"`` returns 0; ``"one"`` returns 1. One-sided empties are
defined: F1 = 0, edit = 0. ``n_ref_segments`` / ``n_est_segments`` are returned, so empties stay
visible. No warning is raised.

References:
    Lea, Flynn, Vidal, Reiter, Hager. Temporal Convolutional Networks for Action Segmentation and
    Detection. CVPR 2017.
    Farha, Gall. MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation.
    CVPR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_OVERLAPS",
    "evaluate",
    "evaluate_dataset",
    "frame_accuracy",
    "segment_bounds",
    "segmental_edit_score",
    "segmental_f1",
    "validate",
]

#: IoU thresholds of F1@10, F1@25, F1@50.
DEFAULT_OVERLAPS = (0.10, 0.25, 0.50)

_EMPTY_POLICIES = ("skip", "zero", "one")
_EMPTY_VALUE = {"skip": math.nan, "zero": 0.0, "one": 1.0}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _labels(fn: str, name: str, labels: object) -> np.ndarray:
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(labels)
    if arr.size == 0:
        raise ValueError(f"{fn}: `{name}` must hold at least one frame, got an empty array")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{fn}: `{name}` must hold integer class indices, got dtype {arr.dtype}"
            )
    if arr.ndim != 1:
        raise ValueError(f"{fn}: `{name}` must be 1-D (time,), got shape {tuple(arr.shape)}")
    if arr.min() < 0:
        raise ValueError(f"{fn}: `{name}` must hold class indices >= 0, found {arr.min()}")
    return arr.astype(np.int64, copy=False)


def _check_policy(fn: str, empty_policy: object) -> str:
    if empty_policy not in _EMPTY_POLICIES:
        raise ValueError(
            f"{fn}: `empty_policy` must be one of {_EMPTY_POLICIES}, got {empty_policy!r}"
        )
    return str(empty_policy)


def _check_overlap(fn: str, overlap: object) -> float:
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float, np.floating)):
        raise TypeError(f"{fn}: `overlap` must be a number in (0, 1], got {type(overlap).__name__}")
    if not 0.0 < float(overlap) <= 1.0:
        raise ValueError(f"{fn}: `overlap` must be an IoU threshold in (0, 1], got {overlap}")
    return float(overlap)


def _ignored(fn: str, ignore_classes: Iterable[int]) -> frozenset[int]:
    out = []
    for c in ignore_classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise TypeError(
                f"{fn}: `ignore_classes` must hold int class indices, got {type(c).__name__}"
            )
        out.append(int(c))
    return frozenset(out)


def validate(reference: object, estimate: object) -> tuple[np.ndarray, np.ndarray]:
    """Check a reference and an estimated frame labelling; return them as int64 arrays.

    Args:
        reference: reference class index per frame, shape ``(time,)``.
        estimate: estimated class index per frame, shape ``(time,)``.

    Returns:
        ``(reference, estimate)`` as 1-D int64 arrays.

    Raises:
        TypeError: non-integer labels (floats holding whole numbers are accepted).
        ValueError: not 1-D, empty, negative classes, or lengths that differ.
    """
    ref = _labels("validate", "reference", reference)
    est = _labels("validate", "estimate", estimate)
    if ref.shape != est.shape:
        raise ValueError(
            f"validate: `reference` and `estimate` must have the same number of frames, got "
            f"{ref.size} and {est.size}"
        )
    return ref, est


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


def segment_bounds(
    labels: object, *, ignore_classes: Iterable[int] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length segments of a frame labelling: ``(classes, starts, ends)``.

    A segment covers frames ``starts[i] <= t < ends[i]`` (end exclusive). Segments of
    ``ignore_classes`` are dropped (the others keep their frame positions).

    Args:
        labels: class index per frame, shape ``(time,)``.
        ignore_classes: classes whose segments are dropped (e.g. background).

    Returns:
        Three int64 arrays of shape ``(n_segments,)``.

    Example:
        >>> segment_bounds([0, 0, 2, 2, 2, 0])
        (array([0, 2, 0]), array([0, 2, 5]), array([2, 5, 6]))
    """
    fn = "segment_bounds"
    arr = _labels(fn, "labels", labels)
    ignored = _ignored(fn, ignore_classes)
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    ends = np.concatenate([change, [arr.size]]).astype(np.int64)
    classes = arr[starts]
    if ignored:
        keep = ~np.isin(classes, list(ignored))
        classes, starts, ends = classes[keep], starts[keep], ends[keep]
    return classes, starts, ends


# --------------------------------------------------------------------------------------------
# Metrics of one sequence
# --------------------------------------------------------------------------------------------


def frame_accuracy(reference: object, estimate: object) -> float:
    """Fraction of frames whose estimated class equals the reference class.

    Example:
        >>> frame_accuracy([0, 0, 1, 1], [0, 1, 1, 1])
        0.75
    """
    ref, est = validate(reference, estimate)
    return float(np.mean(ref == est))


def _levenshtein(a: np.ndarray, b: np.ndarray) -> int:
    """Edit distance (unit insertions, deletions, substitutions), one DP row at a time."""
    prev = np.arange(b.size + 1)
    for i in range(1, a.size + 1):
        cur = np.empty_like(prev)
        cur[0] = i
        sub = prev[:-1] + (b != a[i - 1])
        dele = prev[1:] + 1
        best = np.minimum(sub, dele)
        # insertions chain along the row: cur[j] = min(best[j-1], cur[j-1] + 1)
        for j in range(1, b.size + 1):
            cur[j] = min(best[j - 1], cur[j - 1] + 1)
        prev = cur
    return int(prev[-1])


def segmental_edit_score(
    reference: object,
    estimate: object,
    *,
    ignore_classes: Iterable[int] = (),
    empty_policy: str = "skip",
) -> float:
    """Segmental edit score (Lea et al. 2017 §4): 1 − edit / max(n_ref, n_est).

    ``edit`` is the Levenshtein distance between the class sequences of the reference and
    estimated segments (durations ignored), so over-segmentation (many short spurious segments)
    is penalised while small boundary shifts are not.

    Args:
        reference: reference class per frame ``(time,)``.
        estimate: estimated class per frame ``(time,)``.
        ignore_classes: classes left out of both segment sequences (e.g. background).
        empty_policy: value when neither has a segment (module docstring).

    Returns:
        The score in [0, 1] (1 = same segment order).

    Example:
        >>> segmental_edit_score([0, 0, 1, 1, 2], [0, 1, 0, 1, 2])
        0.6
    """
    fn = "segmental_edit_score"
    policy = _check_policy(fn, empty_policy)
    ref, est = validate(reference, estimate)
    ignored = _ignored(fn, ignore_classes)
    ref_cls = segment_bounds(ref, ignore_classes=ignored)[0]
    est_cls = segment_bounds(est, ignore_classes=ignored)[0]
    longest = max(ref_cls.size, est_cls.size)
    if longest == 0:
        return _EMPTY_VALUE[policy]
    return 1.0 - _levenshtein(ref_cls, est_cls) / longest


def _f1_counts(
    ref: np.ndarray, est: np.ndarray, overlap: float, ignored: frozenset[int]
) -> tuple[int, int, int]:
    """(TP, FP, FN) of the greedy segment matching described in the module docstring."""
    r_cls, r_start, r_end = segment_bounds(ref, ignore_classes=ignored)
    e_cls, e_start, e_end = segment_bounds(est, ignore_classes=ignored)
    hit = np.zeros(r_cls.size, dtype=bool)
    tp = fp = 0
    for c, s, e in zip(e_cls.tolist(), e_start.tolist(), e_end.tolist(), strict=True):
        inter = np.minimum(r_end, e) - np.maximum(r_start, s)  # (n_ref,), < 0 if disjoint
        union = np.maximum(r_end, e) - np.minimum(r_start, s)
        iou = np.where(r_cls == c, np.maximum(inter, 0) / union, -1.0)
        if iou.size == 0:
            fp += 1
            continue
        best = int(np.argmax(iou))  # first maximum: the earliest segment on a tie
        if iou[best] >= overlap and not hit[best]:
            tp += 1
            hit[best] = True
        else:
            fp += 1
    return tp, fp, int(r_cls.size - hit.sum())


def segmental_f1(
    reference: object,
    estimate: object,
    *,
    overlap: float = 0.10,
    ignore_classes: Iterable[int] = (),
    empty_policy: str = "skip",
) -> float:
    """Segmental F1@τ (Lea et al. 2017 §4): F1 of segments matched at IoU >= ``overlap``.

    Args:
        reference: reference class per frame ``(time,)``.
        estimate: estimated class per frame ``(time,)``.
        overlap: IoU threshold τ in (0, 1]: 0.10, 0.25, 0.50 for F1@10, F1@25, F1@50.
        ignore_classes: classes whose segments are neither scored nor counted.
        empty_policy: value when neither has a segment (module docstring).

    Returns:
        2·TP / (2·TP + FP + FN) with the greedy matching of the module docstring.

    Example:
        >>> segmental_f1([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1], overlap=0.5)
        1.0
        >>> segmental_f1([0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1], overlap=0.5)
        0.5
    """
    fn = "segmental_f1"
    overlap = _check_overlap(fn, overlap)
    policy = _check_policy(fn, empty_policy)
    ref, est = validate(reference, estimate)
    tp, fp, fn_ = _f1_counts(ref, est, overlap, _ignored(fn, ignore_classes))
    den = 2 * tp + fp + fn_
    return 2 * tp / den if den else _EMPTY_VALUE[policy]


def _f1_key(overlap: float) -> str:
    return f"f1_{round(overlap * 100):d}"


def evaluate(
    reference: object,
    estimate: object,
    *,
    overlaps: Sequence[float] = DEFAULT_OVERLAPS,
    ignore_classes: Iterable[int] = (),
    empty_policy: str = "skip",
) -> dict[str, Any]:
    """Every metric of one sequence, in a dict.

    Args:
        reference: reference class per frame ``(time,)``.
        estimate: estimated class per frame ``(time,)``.
        overlaps: IoU thresholds; each gives a key ``f1_<round(100·τ)>``.
        ignore_classes: classes left out of F1 and edit (module docstring).
        empty_policy: value of 0/0 scores (module docstring).

    Returns:
        ``{"f1_10": ..., "f1_25": ..., "f1_50": ..., "edit": ..., "accuracy": ...,
        "n_frames": int, "n_ref_segments": int, "n_est_segments": int}`` plus, per threshold,
        ``"tp_<k>"``, ``"fp_<k>"``, ``"fn_<k>"`` (for pooling over sequences).

    Example:
        >>> scores = evaluate([0, 0, 1, 1], [0, 0, 1, 1])
        >>> scores["f1_10"], scores["edit"], scores["accuracy"]
        (1.0, 1.0, 1.0)
    """
    fn = "evaluate"
    policy = _check_policy(fn, empty_policy)
    ref, est = validate(reference, estimate)
    ignored = _ignored(fn, ignore_classes)
    out: dict[str, Any] = {}
    for tau in overlaps:
        tau = _check_overlap(fn, tau)
        tp, fp, fn_ = _f1_counts(ref, est, tau, ignored)
        key = _f1_key(tau)
        den = 2 * tp + fp + fn_
        out[key] = 2 * tp / den if den else _EMPTY_VALUE[policy]
        suffix = key[3:]
        out[f"tp_{suffix}"], out[f"fp_{suffix}"], out[f"fn_{suffix}"] = tp, fp, fn_
    out["edit"] = segmental_edit_score(ref, est, ignore_classes=ignored, empty_policy=policy)
    out["accuracy"] = float(np.mean(ref == est))
    out["n_frames"] = int(ref.size)
    out["n_ref_segments"] = int(segment_bounds(ref, ignore_classes=ignored)[0].size)
    out["n_est_segments"] = int(segment_bounds(est, ignore_classes=ignored)[0].size)
    return out


def evaluate_dataset(
    references: Sequence[object],
    estimates: Sequence[object],
    *,
    overlaps: Sequence[float] = DEFAULT_OVERLAPS,
    ignore_classes: Iterable[int] = (),
    empty_policy: str = "skip",
) -> dict[str, Any]:
    """Metrics over many sequences.

    Aggregation:
        * ``f1_<k>``, ``edit``: unweighted mean over sequences (Lea et al. 2017, whose protocol
          SoftLoc §5.3 replicates); NaN scores (empty policy ``"skip"``) are left out.
        * ``f1_<k>_pooled``: F1 from TP/FP/FN pooled over all sequences (MS-TCN's protocol).
        * ``accuracy``: correct frames / all frames, pooled (both papers).

    Args:
        references: one reference labelling per sequence.
        estimates: one estimated labelling per sequence, in the same order.
        overlaps, ignore_classes, empty_policy: as :func:`evaluate`.

    Returns:
        The dict above plus ``n_sequences`` and ``n_frames``.

    Raises:
        ValueError: different numbers of sequences, or none.
    """
    fn = "evaluate_dataset"
    if len(references) != len(estimates):
        raise ValueError(
            f"{fn}: need one estimate per reference, got {len(references)} references and "
            f"{len(estimates)} estimates"
        )
    if not references:
        raise ValueError(f"{fn}: `references` is empty; nothing to evaluate")
    per = [
        evaluate(r, e, overlaps=overlaps, ignore_classes=ignore_classes, empty_policy=empty_policy)
        for r, e in zip(references, estimates, strict=True)
    ]
    out: dict[str, Any] = {}
    for tau in overlaps:
        key = _f1_key(float(tau))
        suffix = key[3:]
        out[key] = _nanmean([p[key] for p in per])
        tp = sum(p[f"tp_{suffix}"] for p in per)
        den = 2 * tp + sum(p[f"fp_{suffix}"] + p[f"fn_{suffix}"] for p in per)
        out[f"{key}_pooled"] = 2 * tp / den if den else _EMPTY_VALUE[empty_policy]
    out["edit"] = _nanmean([p["edit"] for p in per])
    n_frames = sum(p["n_frames"] for p in per)
    out["accuracy"] = sum(p["accuracy"] * p["n_frames"] for p in per) / n_frames
    out["n_sequences"] = len(per)
    out["n_frames"] = n_frames
    return out


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan
