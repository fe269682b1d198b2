"""The one conversion between frames and seconds, and the frame counts of windows and hops.

Conventions:
    * Frame ``i`` of a sequence at ``frame_rate`` frames per second is stamped at
      ``i / frame_rate + time_offset_s`` seconds (:func:`frames_to_seconds`). The front end
      centres frame ``i`` on sample ``i * hop_length`` (``softloc.features``), so with
      ``time_offset_s = 0`` the stamp is the frame's centre. ``time_offset_s`` is explicit
      everywhere, so a model's learned lag can be calibrated on validation data and stored with
      the run (official-implementation facts §5.5: the original scripts applied -30, -25, -5 or
      0 ms depending on the script).
    * A time maps to its nearest frame, halves rounded up (:func:`seconds_to_frames`), so the two
      conversions invert each other on whole frames.
    * Durations (softness, minimum distances, window and hop lengths) are converted with
      :func:`ms_to_frames` (fractional frames) or :func:`duration_frames` (a whole number of
      frames, at least 1).
    * A *rate factor* ``s`` (sample-rate augmentation) plays a file ``s`` times faster, so a
      window of ``window_s`` seconds spans ``window_s * frame_rate / s`` frames; the padded
      length that holds every window of a training set is :func:`padded_window_frames`.

Every function validates its arguments (``ValueError``/``TypeError`` naming the function and the
argument) and is cheap: plain Python or one numpy expression.
"""

from __future__ import annotations

import math

import numpy as np

from softloc._checks import check_frame_rate, check_int, check_real

__all__ = [
    "duration_frames",
    "frames_to_seconds",
    "ms_to_frames",
    "n_covering_windows",
    "n_inner_windows",
    "padded_window_frames",
    "seconds_to_frames",
]

# Float noise tolerated where a ratio of durations should be a whole number (1.5 s / 0.5 s).
_EPS = 1e-9


def frames_to_seconds(frames, frame_rate: float, *, time_offset_s: float = 0.0) -> np.ndarray:
    """Frame indices (any shape) -> times in seconds: ``frames / frame_rate + time_offset_s``.

    Args:
        frames: frame indices (int or float, any shape; fractional frames are allowed).
        frame_rate: frames per second, > 0.
        time_offset_s: seconds added to every time (a model's calibrated lag). Default 0.

    Returns:
        float64 array of the same shape as ``frames``.

    Raises:
        ValueError: ``frame_rate`` <= 0 or non-finite ``time_offset_s``.
        TypeError: ``frame_rate`` or ``time_offset_s`` not a real number.

    Notes:
        The original audio code reported each detection one frame (5 ms) early through an
        off-by-one in ``predict()`` (facts §5.1). To reproduce that, pass
        ``time_offset_s=-1 / frame_rate``; there is no separate flag.

    Example:
        >>> frames_to_seconds([0, 200, 300], 200.0, time_offset_s=-0.025).tolist()
        [-0.025, 0.975, 1.475]
    """
    fn = "frames_to_seconds"
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    return np.asarray(frames, dtype=np.float64) / rate + offset


def seconds_to_frames(times_s, frame_rate: float, *, time_offset_s: float = 0.0) -> np.ndarray:
    """Times in seconds -> nearest frame indices (int64), the inverse of `frames_to_seconds`.

    ``round((t - time_offset_s) * frame_rate)`` with halves rounded up (``floor(x + 0.5)``), so
    ``seconds_to_frames(frames_to_seconds(i, r, time_offset_s=o), r, time_offset_s=o) == i``.

    Args:
        times_s: times in seconds (any shape).
        frame_rate: frames per second, > 0.
        time_offset_s: the offset that was added when frames were turned into seconds.

    Returns:
        int64 array of the same shape as ``times_s``. Times before the first frame give
        negative indices; clip them if you index arrays with the result.

    Raises:
        ValueError: ``frame_rate`` <= 0, non-finite ``time_offset_s`` or non-finite times.
        TypeError: ``frame_rate`` or ``time_offset_s`` not a real number.

    Example:
        >>> seconds_to_frames([0.0, 0.0049, 0.0025, 1.0], 200.0).tolist()
        [0, 1, 1, 200]
    """
    fn = "seconds_to_frames"
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    t = (np.asarray(times_s, dtype=np.float64) - offset) * rate
    if t.size and not np.isfinite(t).all():
        raise ValueError(f"{fn}: `times_s` must be finite, found NaN or inf")
    return np.floor(t + 0.5).astype(np.int64)


def ms_to_frames(ms: float, frame_rate: float) -> float:
    """A duration in milliseconds -> a (fractional) number of frames, e.g. a softness sigma.

    Args:
        ms: duration in milliseconds (finite; negative values are returned negative).
        frame_rate: frames per second, > 0.

    Returns:
        ``ms * frame_rate / 1000``.

    Raises:
        ValueError: ``frame_rate`` <= 0, non-finite ``ms``.
        TypeError: an argument is not a real number.

    Example:
        >>> ms_to_frames(100.0, 200.0)
        20.0
    """
    rate = check_frame_rate("ms_to_frames", frame_rate)
    return check_real("ms_to_frames", "ms", ms) * rate / 1000.0


def duration_frames(duration_s: float, frame_rate: float) -> int:
    """A duration as a whole number of frames, at least 1: ``max(1, round(duration_s * rate))``.

    The frame count of an inference window (``data.window_s``), of the hop between windows
    (``inference.hop_s``), or of a minimum distance between events (``inference.min_distance_s``).
    ``round`` is Python's (halves to even), as everywhere this count was computed before.

    Args:
        duration_s: seconds, finite, >= 0.
        frame_rate: frames per second, > 0.

    Raises:
        ValueError: ``frame_rate`` <= 0, ``duration_s`` < 0 or not finite.
        TypeError: an argument is not a real number.

    Example:
        >>> duration_frames(1.5, 200.0), duration_frames(0.5, 200.0), duration_frames(0.0, 200.0)
        (300, 100, 1)
    """
    fn = "duration_frames"
    rate = check_frame_rate(fn, frame_rate)
    seconds = check_real(fn, "duration_s", duration_s, minimum=0.0, unit=" seconds")
    return max(1, round(seconds * rate))


def padded_window_frames(
    window_s: float, frame_rate: float, *, min_rate_factor: float = 1.0
) -> int:
    """Frames of a padded training window: ``ceil(window_s * frame_rate / min_rate_factor) + 1``.

    A window ``[start_s, start_s + window_s)`` played at rate factor ``s`` covers frames
    ``round(start_s * r / s)`` to ``round((start_s + window_s) * r / s)``. Each rounding moves a
    bound by at most half a frame, so the window holds at most ``floor(window_s * r / s) + 1``
    frames, whatever its start; the slowest factor gives the longest window. The formula above
    is that bound rounded up (at most one frame more), with a 1e-9 guard so that float noise above
    a whole number (``1.5 * 200.0 / 1.0``) does not add a frame. 345 frames for the drum
    defaults (1.5 s at 200.45 frames/s and factor 7/8).

    Args:
        window_s: window length in seconds, > 0.
        frame_rate: frames per second, > 0.
        min_rate_factor: the smallest rate factor of the augmentation (slowest play), > 0.
            Default 1 (no augmentation).

    Raises:
        ValueError: a non-positive or non-finite argument.
        TypeError: an argument is not a real number.

    Notes:
        Before the redesign, ``softloc.train`` padded to ``ceil(...) + 2`` (one more frame than
        needed, and without the guard) while ``softloc.data.windows`` used this formula; this is
        the one to use.

    Example:
        >>> padded_window_frames(1.5, 200.0)
        301
        >>> padded_window_frames(1.5, 200.0, min_rate_factor=0.875)
        344
    """
    fn = "padded_window_frames"
    rate = check_frame_rate(fn, frame_rate)
    seconds = check_real(fn, "window_s", window_s, positive=True, unit=" seconds")
    factor = check_real(fn, "min_rate_factor", min_rate_factor, positive=True)
    return int(math.ceil(seconds * rate / factor - _EPS)) + 1


def n_inner_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    """Windows ``[k * hop_s, k * hop_s + window_s)`` that fit in a file, at least 1.

    ``max(1, floor((duration_s - window_s) / hop_s + 1e-9) + 1)``: the training windows cut from
    an annotated file and the windows of ``counts.csv``. A file shorter than one window gives
    one (short) window.

    Args:
        duration_s: file duration in seconds, >= 0.
        window_s: window length in seconds, > 0.
        hop_s: start-to-start distance in seconds, > 0.

    Raises:
        ValueError: a negative duration, a non-positive window or hop, a non-finite argument.
        TypeError: an argument is not a real number.

    Example:
        >>> n_inner_windows(3.0, 1.5, 0.5), n_inner_windows(1.0, 1.5, 0.5)
        (4, 1)
    """
    fn = "n_inner_windows"
    duration = check_real(fn, "duration_s", duration_s, minimum=0.0, unit=" seconds")
    window = check_real(fn, "window_s", window_s, positive=True, unit=" seconds")
    hop = check_real(fn, "hop_s", hop_s, positive=True, unit=" seconds")
    return max(1, int(math.floor((duration - window) / hop + _EPS)) + 1)


def n_covering_windows(n_frames: int, window_frames: int, hop_frames: int) -> int:
    """Windows ``[i * hop_frames, i * hop_frames + window_frames)`` needed to cover ``n_frames``.

    ``1 + ceil(max(n_frames - window_frames, 0) / hop_frames)``: the inference windows of a file;
    the last one may reach past the end (it is padded).

    Args:
        n_frames: frames of the file, >= 0.
        window_frames: frames per window, >= 1.
        hop_frames: frames between window starts, in [1, window_frames] (a larger hop leaves
            gaps, which no number of windows covers).

    Raises:
        ValueError: an argument out of range.
        TypeError: an argument is not an int.

    Example:
        >>> n_covering_windows(1000, 300, 100), n_covering_windows(250, 300, 100)
        (8, 1)
    """
    fn = "n_covering_windows"
    n = check_int(fn, "n_frames", n_frames, minimum=0)
    w = check_int(fn, "window_frames", window_frames, minimum=1)
    hop = check_int(fn, "hop_frames", hop_frames, minimum=1)
    if hop > w:
        raise ValueError(
            f"{fn}: `hop_frames` must be <= window_frames={w} (else frames are left uncovered), "
            f"got {hop}"
        )
    return 1 + -(-max(n - w, 0) // hop)
