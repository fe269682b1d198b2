"""Counting metrics: how often the number of detected events equals the counted one.

A count is LoCo's weak label: the number of events of one class in one unit (a clip, a file x
class pair, a window x class pair). Counts are whole numbers >= 0 (integer arrays, or floats
holding whole finite numbers; ``bool`` is rejected), ``(reference, estimate)`` order as in
mir_eval. Empty input gives NaN rates and ``n_counts = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from softloc._checks import as_count_array

__all__ = ["count_metrics"]


def count_metrics(
    reference_counts: Sequence[int] | np.ndarray,
    estimated_counts: Sequence[int] | np.ndarray,
) -> dict[str, float | int]:
    """Counting accuracy: exact-count rate and mean absolute count error.

    Each position is one counted unit (a clip, a file x class pair, a window x class pair):
    the LoCo weak label is such a count.

    Args:
        reference_counts: true event counts, non-negative integers, shape ``(n,)``.
        estimated_counts: estimated counts (e.g. ``len`` of decoded events), same shape.

    Returns:
        dict with ``count_exact_rate`` (fraction with ``est == ref``), ``count_mae``
        (mean ``|est - ref|``) and ``n_counts`` (n). Both rates are NaN when n = 0.

    Raises:
        TypeError: non-integer counts (bool, fractional or non-finite floats).
        ValueError: different shapes, not 1-D, or negative counts.

    Example:
        >>> count_metrics([2, 0, 3, 1], [2, 1, 1, 1])
        {'count_exact_rate': 0.5, 'count_mae': 0.75, 'n_counts': 4}
    """
    fn = "count_metrics"
    ref = as_count_array(fn, "reference_counts", reference_counts)
    est = as_count_array(fn, "estimated_counts", estimated_counts)
    if ref.shape != est.shape:
        raise ValueError(
            f"{fn}: `reference_counts` and `estimated_counts` must have the same length, got "
            f"{ref.shape[0]} and {est.shape[0]}"
        )
    if ref.size == 0:
        return {"count_exact_rate": math.nan, "count_mae": math.nan, "n_counts": 0}
    return {
        "count_exact_rate": float(np.mean(ref == est)),
        "count_mae": float(np.mean(np.abs(est - ref))),
        "n_counts": int(ref.size),
    }
