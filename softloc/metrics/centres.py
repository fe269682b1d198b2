"""Detection metrics in the image plane: one-to-one matching of 2-D event centres (LoCo §8.3).

Conventions: centres are ``(row, col)`` in pixels, float arrays ``(n, 2)``; labels are class
indices ``(n,)``; ``(reference, estimate)`` order as in mir_eval. A detection is correct when it
is matched to a reference centre of the same class within ``tolerance_px`` (Euclidean,
inclusive). Empty input is legal: no pairs.

Why not :func:`softloc.metrics.match_onsets`: it matches 1-D times, but neighbours along a
Hilbert curve are not always neighbours in the image, so image detections are matched in the
image plane instead of on the sequence index.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["match_centres"]


def _points(value: object) -> np.ndarray:
    if not np.size(value):
        return np.zeros((0, 2))
    return np.asarray(value, dtype=np.float64).reshape(-1, 2)


def match_centres(
    reference_px: np.ndarray,
    reference_labels: np.ndarray,
    estimate_px: np.ndarray,
    estimate_labels: np.ndarray,
    *,
    tolerance_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of estimated to reference centres of the same class, within a tolerance.

    Among all matchings using pairs at distance <= ``tolerance_px``, the one with the most pairs
    and, among those, the smallest total distance (``scipy.optimize.linear_sum_assignment`` with
    a prohibitive cost on pairs beyond the tolerance or of different classes).

    Args:
        reference_px: ``(n_ref, 2)`` true centres ``(row, col)`` in pixels.
        reference_labels: ``(n_ref,)`` their classes.
        estimate_px: ``(n_est, 2)`` estimated centres in pixels.
        estimate_labels: ``(n_est,)`` their classes.
        tolerance_px: largest distance of a matched pair (inclusive), > 0.

    Returns:
        ``(ref_index, est_index, distance_px)``: 1-D arrays, one entry per matched pair.

    Raises:
        ValueError: one label per centre is missing, or a tolerance <= 0.

    Example:
        >>> ri, ei, d = match_centres([[0, 0], [0, 4]], [1, 1], [[0, 3], [0, 7]], [1, 1],
        ...                           tolerance_px=3.0)
        >>> ri.tolist(), ei.tolist(), d.tolist()
        ([0, 1], [0, 1], [3.0, 3.0])
    """
    fn = "match_centres"
    ref, est = _points(reference_px), _points(estimate_px)
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
