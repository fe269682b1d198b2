"""Nadaraya–Watson Gaussian kernel regression: smooth scattered measurements into curves and maps.

The SoftLoc drum study (SoftLoc §5.1.2, Fig. 6) draws the F1 of runs at random (label noise σ,
softness) pairs as a surface interpolated by a Gaussian Nadaraya–Watson regression (Nadaraya 1964;
Watson 1964); the authors also used it to smooth training curves (facts §6). This module is that
estimator, in any number of input dimensions:

    m(q) = Σ_i K((q − x_i) / h) · y_i  /  Σ_i K((q − x_i) / h),   K(u) = exp(−|u|² / 2)

Conventions: inputs are numpy-compatible arrays of float64. Sample points ``x`` are ``(n,)`` for
1-D or ``(n, dim)``; queries are ``(m,)`` or ``(m, dim)`` in the same units; the bandwidth ``h``
is in those units (one number, or one per dimension). The result is float64 ``(m,)``.

Functions:
    * :func:`nadaraya_watson`: the estimator at arbitrary query points (1-D or n-D).
    * :func:`nadaraya_watson_grid`: the estimator on a 2-D grid, shaped for ``pcolormesh``.

Notes:
    The kernel's normalising constant cancels in the ratio, so it is left out (the original code
    used the wrong constant 1/(2π)², harmlessly, facts §6). Weights are computed in log space with
    the largest log-weight per query subtracted first, so a query far from every sample (all
    weights underflowing to 0 in the direct formula) still gets the estimate of its nearest
    samples instead of 0/0 = NaN. Samples with a NaN value are ignored (a failed run).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["nadaraya_watson", "nadaraya_watson_grid"]


def _as_points(fn: str, name: str, x: object, dim: int | None) -> np.ndarray:
    """``(n,)`` or ``(n, dim)`` array-like -> float64 ``(n, dim)``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `{name}` must be an array of numbers, got {type(x).__name__}") \
            from err
    if arr.ndim == 1:
        arr = arr[:, None]  # (n,) -> (n, 1)
    if arr.ndim != 2:
        raise ValueError(
            f"{fn}: `{name}` must have shape (n,) or (n, dim), got shape {arr.shape}"
        )
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{fn}: `{name}` must have {dim} column(s) like the sample points, got shape "
            f"{arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{fn}: `{name}` must be finite, found NaN or inf")
    return arr


def _bandwidth(fn: str, bandwidth: object, dim: int) -> np.ndarray:
    if isinstance(bandwidth, bool):
        raise TypeError(f"{fn}: `bandwidth` must be a number or a sequence, got bool")
    try:
        h = np.asarray(bandwidth, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{fn}: `bandwidth` must be a number or one number per dimension, got "
            f"{type(bandwidth).__name__}"
        ) from err
    if h.ndim == 0:
        h = np.full(dim, float(h))
    if h.shape != (dim,):
        raise ValueError(
            f"{fn}: `bandwidth` must be one number or {dim} numbers (one per dimension), got "
            f"shape {h.shape}"
        )
    if not np.all(np.isfinite(h) & (h > 0)):
        raise ValueError(f"{fn}: `bandwidth` must be finite and > 0, got {h.tolist()}")
    return h


def _estimate(query: np.ndarray, points: np.ndarray, values: np.ndarray, h: np.ndarray,
              chunk: int = 4096) -> np.ndarray:
    out = np.empty(query.shape[0], dtype=np.float64)
    scaled_points = points / h  # (n, d)
    for start in range(0, query.shape[0], chunk):
        q = query[start:start + chunk] / h  # (m, d)
        # squared distances (m, n) without forming (m, n, d) for large d
        d2 = ((q[:, None, :] - scaled_points[None, :, :]) ** 2).sum(-1)
        log_w = -0.5 * d2
        log_w -= log_w.max(axis=1, keepdims=True)  # the nearest sample gets weight 1
        w = np.exp(log_w)  # (m, n)
        out[start:start + chunk] = (w @ values) / w.sum(axis=1)
    return out


def nadaraya_watson(
    query: object,
    points: object,
    values: object,
    *,
    bandwidth: float | Sequence[float],
) -> np.ndarray:
    """Gaussian Nadaraya–Watson estimate of ``values`` at ``query`` (SoftLoc Fig. 6).

    ``m(q) = Σ_i w_i y_i / Σ_i w_i`` with ``w_i = exp(−½ Σ_d ((q_d − x_id) / h_d)²)``.

    Args:
        query: points to estimate at, ``(m,)`` or ``(m, dim)``.
        points: sample locations ``x_i``, ``(n,)`` or ``(n, dim)`` (same units as ``query``).
        values: sample values ``y_i``, ``(n,)``; NaN values are ignored.
        bandwidth: kernel standard deviation ``h`` (> 0) in the units of the points, one
            number or one per dimension.

    Returns:
        float64 ``(m,)`` estimates. Each lies between the smallest and largest used value.

    Raises:
        TypeError: non-numeric inputs.
        ValueError: bad shapes, non-finite points or queries, no non-NaN value, a bandwidth
            that is not > 0.

    Example:
        >>> nadaraya_watson([0.0, 1.0, 2.0], [0.0, 2.0], [1.0, 3.0], bandwidth=1.0).round(3)
        array([1.238, 2.   , 2.762])
    """
    fn = "nadaraya_watson"
    pts = _as_points(fn, "points", points, None)
    dim = pts.shape[1]
    q = _as_points(fn, "query", query, dim)
    try:
        y = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `values` must be an array of numbers") from err
    if y.shape != (pts.shape[0],):
        raise ValueError(
            f"{fn}: `values` must have shape (n,) = ({pts.shape[0]},) like `points`, got "
            f"{y.shape}"
        )
    if np.any(np.isinf(y)):
        raise ValueError(f"{fn}: `values` must be finite or NaN, found inf")
    keep = ~np.isnan(y)
    if not keep.any():
        raise ValueError(f"{fn}: `values` has no non-NaN entry to regress on")
    h = _bandwidth(fn, bandwidth, dim)
    return _estimate(q, pts[keep], y[keep], h)


def nadaraya_watson_grid(
    points: object,
    values: object,
    x_grid: object,
    y_grid: object,
    *,
    bandwidth: float | Sequence[float],
) -> np.ndarray:
    """The 2-D estimate on the grid ``x_grid × y_grid``, shaped ``(len(y_grid), len(x_grid))``.

    Row ``j``, column ``i`` is the estimate at ``(x_grid[i], y_grid[j])``, the layout of
    ``matplotlib.pyplot.pcolormesh(x_grid, y_grid, surface)``.

    Args:
        points: sample locations ``(n, 2)``, columns (x, y).
        values: sample values ``(n,)``; NaN values are ignored.
        x_grid: 1-D grid along the first column of ``points``.
        y_grid: 1-D grid along the second column.
        bandwidth: one number, or ``(h_x, h_y)``.

    Returns:
        float64 ``(len(y_grid), len(x_grid))``.

    Raises:
        TypeError, ValueError: as :func:`nadaraya_watson`; grids that are not 1-D and finite.
    """
    fn = "nadaraya_watson_grid"
    pts = _as_points(fn, "points", points, 2)
    gx = np.asarray(x_grid, dtype=np.float64)
    gy = np.asarray(y_grid, dtype=np.float64)
    for name, g in (("x_grid", gx), ("y_grid", gy)):
        if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)):
            raise ValueError(f"{fn}: `{name}` must be a non-empty finite 1-D array, got shape "
                             f"{g.shape}")
    xx, yy = np.meshgrid(gx, gy)  # (len(y), len(x)) each
    query = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (len(y) * len(x), 2)
    try:
        flat = nadaraya_watson(query, pts, values, bandwidth=bandwidth)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("nadaraya_watson:", f"{fn}:", 1)) from err
    return flat.reshape(gy.size, gx.size)
