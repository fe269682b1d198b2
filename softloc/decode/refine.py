"""Event refinement on the input signal: move decoded times onto the signal's own peaks.

A detector trained from counts alone (LoCo) learns *that* an event happens in a window, not
*which* point of it the annotator marks: a heartbeat detector may fire on the QRS onset of one
person and 40 ms later on another's, while MIT-BIH-style annotations mark the R peak. The field's
answer, used by every QRS detector (Pan–Tompkins' final search, PhysioNet's
``wfdb.processing.correct_peaks``), is to move each detection to the largest deflection of the
signal nearby. :func:`snap_to_signal_peaks` does that with ``correct_peaks``; no label is used.
"""

from __future__ import annotations

import warnings

import numpy as np

from softloc._checks import check_int, check_real

__all__ = ["SNAP_DIRECTIONS", "snap_to_signal_peaks"]

#: ``direction`` values, as ``wfdb.processing.correct_peaks`` names them: ``up`` (maxima),
#: ``down`` (minima), ``both`` (maxima of the rectified signal), ``compare`` (``up`` or ``down``,
#: whichever lands further from the smoothed signal on average over the file: a lead whose
#: R waves point down is handled per record).
SNAP_DIRECTIONS = ("compare", "up", "down", "both")


def snap_to_signal_peaks(times_s: np.ndarray, signal: np.ndarray, rate_hz: float, *,
                         radius_s: float, smooth_s: float = 0.15, direction: str = "both",
                         channel: int = 0) -> np.ndarray:
    """Each time moved to the signal's extremum within ``±radius_s`` (R-peak correction).

    The signal minus its moving average over ``smooth_s`` (which removes baseline wander) is
    searched around each event, over the samples ``[i - r, i + r)`` of its sample ``i`` with
    ``r = round(radius_s * rate_hz)``, for its extremum in ``direction``
    (``wfdb.processing.correct_peaks``).

    Args:
        times_s: event times in seconds, shape ``(n_events,)``, any order.
        signal: ``(channel, samples)`` or ``(samples,)``, at ``rate_hz``.
        rate_hz: samples per second of ``signal``.
        radius_s: search radius in seconds (> 0).
        smooth_s: moving-average window in seconds (> 0).
        direction: one of :data:`SNAP_DIRECTIONS`.
        channel: the channel searched.

    Returns:
        float64 ``(n_events,)``: the moved times, in the order of ``times_s``, on the signal's
        sample grid and inside ``[0, (samples - 1) / rate_hz]``. Two events may land on one
        sample; the caller decides which to keep.

    Raises:
        ValueError, TypeError: a bad argument (the message names it).
        softloc._deps.MissingDependencyError: ``wfdb`` is not installed.
    """
    fn = "snap_to_signal_peaks"
    times = np.asarray(times_s, dtype=np.float64)
    if times.ndim != 1 or not np.isfinite(times).all():
        raise ValueError(f"{fn}: `times_s` must be a 1-D array of finite seconds, got shape "
                         f"{times.shape}")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0 or not np.isfinite(x).all():
        raise ValueError(f"{fn}: `signal` must be finite, (channel, samples) or (samples,), got "
                         f"shape {np.shape(signal)}")
    rate = check_real(fn, "rate_hz", rate_hz, positive=True)
    radius = check_real(fn, "radius_s", radius_s, positive=True)
    smooth = check_real(fn, "smooth_s", smooth_s, positive=True)
    if direction not in SNAP_DIRECTIONS:
        raise ValueError(f"{fn}: `direction` must be one of {SNAP_DIRECTIONS}, got "
                         f"{direction!r}")
    ch = check_int(fn, "channel", channel, minimum=0)
    if ch >= x.shape[0]:
        raise ValueError(f"{fn}: `channel` {ch} does not exist; the signal has {x.shape[0]} "
                         "channel(s)")
    if times.size == 0:
        return times.copy()
    from softloc._deps import require

    with warnings.catch_warnings():  # wfdb's import raises pandas deprecation warnings
        warnings.filterwarnings("ignore", message=r".*inplace keyword", category=Warning)
        require("wfdb", extra="experiments",
                purpose="inference.snap_radius_s (R-peak correction)")
        from wfdb import processing

    n = x.shape[1]
    r = max(1, int(round(radius * rate)))
    idx = np.clip(np.round(times * rate).astype(np.int64), 0, n - 1)
    # correct_peaks (wfdb 4.x) expects sorted indices and misplaces those within `r` samples of
    # the start (its correction for the clipped window is applied twice), so the search runs on
    # the signal padded by `r` edge samples at the start, in time order.
    order = np.argsort(idx, kind="stable")
    padded = np.concatenate([np.full(r, x[ch, 0]), x[ch]])
    moved = processing.correct_peaks(padded, idx[order] + r, search_radius=r,
                                     smooth_window_size=max(1, int(round(smooth * rate))),
                                     peak_dir=direction)
    out = np.empty_like(idx)
    out[order] = np.clip(np.asarray(moved, dtype=np.int64) - r, 0, n - 1)
    return out / rate
