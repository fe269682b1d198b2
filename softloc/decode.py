"""Frame probabilities -> events: thresholding, peak picking, window stitching.

This module turns a detector's frame-level output into timed events.

Conventions:
    * Frame ``i`` of a sequence at ``frame_rate`` frames per second is stamped at
      ``i / frame_rate + time_offset_s`` seconds (:func:`softloc.timebase.frames_to_seconds`,
      the one frame <-> seconds conversion).
    * Decoders take ONE sequence laid out as ``(class, time)`` (a numpy array or a torch tensor;
      tensors are detached and copied to the CPU) and return an :class:`Events`: flat arrays
      sorted by time, then class. Loop over the batch dimension yourself.
    * An event needs a value STRICTLY above ``threshold`` (``p > threshold``, the original
      trigger rule); a value equal to the threshold is not an event.

Decoders:
    * :func:`threshold_events`: runs of frames with ``p > threshold``, one event per run, at the
      run's peak. For count-trained (LoCo) and SoftLoc models, whose outputs are per-frame event
      probabilities.
    * :func:`pick_peaks`: local maxima above a threshold at least ``min_distance_frames`` apart,
      for heat-map (one-sided Gaussian target) baselines; like madmom's ``peak_picking`` and
      ``scipy.signal.find_peaks``.
    * :func:`window_mass_events`: the original code's "cleaning" rule (emit the earliest frame
      whose forward window holds enough mass), kept to reproduce the published numbers.
    * :func:`stitch_windows`: overlap-average predictions of overlapping windows into one series
      covering a whole file, before decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import find_peaks

from softloc._checks import (
    as_float64_array,
    check_frame_rate,
    check_int,
    check_real,
    check_threshold,
    check_unit_interval,
)
from softloc.timebase import frames_to_seconds

__all__ = [
    "Events",
    "pick_peaks",
    "stitch_windows",
    "threshold_events",
    "window_mass_events",
]


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Events:
    """Events decoded from one ``(class, time)`` sequence, sorted by time, then class.

    All arrays have shape ``(n_events,)``; entry ``i`` describes one event.

    Attributes:
        frames: int64 frame index of each event.
        classes: int64 class (channel) index, in ``[0, n_classes)``.
        scores: float64 confidence (the decoder says which: peak probability, peak height or
            window mass).
        times_s: float64 ``frames / frame_rate + time_offset_s`` (may be negative when the
            offset is negative; clip before evaluating).
        n_classes: number of classes of the decoded sequence.
        frame_rate: frames per second used for ``times_s``.
        time_offset_s: offset used for ``times_s``.
    """

    frames: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    times_s: np.ndarray
    n_classes: int
    frame_rate: float
    time_offset_s: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def times_of(self, class_index: int) -> np.ndarray:
        """Sorted times (seconds) of the events of one class."""
        check_int("Events.times_of", "class_index", class_index, minimum=0)
        if class_index >= self.n_classes:
            raise ValueError(
                f"Events.times_of: `class_index` must be < n_classes={self.n_classes}, "
                f"got {class_index}"
            )
        return self.times_s[self.classes == class_index]

    def per_class(self) -> list[np.ndarray]:
        """Sorted event times (seconds) per class: a list of ``n_classes`` 1-D arrays."""
        return [self.times_s[self.classes == c] for c in range(self.n_classes)]

    def to_list(self) -> list[tuple[float, int, float]]:
        """``[(time_s, class_index, score), ...]`` sorted by time, then class."""
        return [
            (float(t), int(c), float(s))
            for t, c, s in zip(self.times_s, self.classes, self.scores, strict=True)
        ]

    def labelled(self, class_names: Sequence[str]) -> list[tuple[float, str]]:
        """``[(time_s, label), ...]`` with ``label = class_names[class_index]``.

        This is the per-file event format of :func:`softloc.metrics.evaluate`, which rejects
        negative times: with a negative ``time_offset_s``, clip first (the original drum scripts
        used ``max(t, 0)``).

        Raises:
            ValueError: ``len(class_names) != n_classes``.
        """
        names = list(class_names)
        if len(names) != self.n_classes:
            raise ValueError(
                f"Events.labelled: `class_names` must have n_classes={self.n_classes} entries, "
                f"got {len(names)}"
            )
        return [(float(t), names[int(c)]) for t, c in zip(self.times_s, self.classes, strict=True)]


def _make_events(
    frames: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    *,
    n_classes: int,
    frame_rate: float,
    time_offset_s: float,
) -> Events:
    frames = np.asarray(frames, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((classes, frames))  # by frame, ties by class
    frames, classes, scores = frames[order], classes[order], scores[order]
    return Events(
        frames=frames,
        classes=classes,
        scores=scores,
        times_s=frames_to_seconds(frames, frame_rate, time_offset_s=time_offset_s),
        n_classes=n_classes,
        frame_rate=frame_rate,
        time_offset_s=time_offset_s,
    )


def _suppress_close(frames: np.ndarray, scores: np.ndarray, min_distance: int) -> np.ndarray:
    """Keep-mask for candidate peaks of ONE class so that kept peaks are >= min_distance apart.

    Greedy by score: the highest candidate is kept and every candidate closer than
    ``min_distance`` frames to it is dropped; ties go to the earlier frame. A dropped candidate
    never suppresses others. This is scipy.signal.find_peaks' ``distance`` rule, with the tie
    order made deterministic. ``frames`` must be sorted ascending.
    """
    keep = np.ones(frames.shape[0], dtype=bool)
    if min_distance <= 1 or frames.shape[0] < 2:
        return keep
    # a candidate >= min_distance from both neighbours neither suppresses nor is suppressed:
    # run the greedy loop on the crowded ones only
    close = np.diff(frames) < min_distance  # (n-1,)
    crowded = np.zeros(frames.shape[0], dtype=bool)
    crowded[:-1] |= close
    crowded[1:] |= close
    idx = np.flatnonzero(crowded)
    sub_frames, sub_scores = frames[idx], scores[idx]
    removed = np.zeros(idx.shape[0], dtype=bool)
    for i in np.lexsort((sub_frames, -sub_scores)):  # highest score first, ties: earlier frame
        if removed[i]:
            continue
        lo = np.searchsorted(sub_frames, sub_frames[i] - min_distance, side="right")
        hi = np.searchsorted(sub_frames, sub_frames[i] + min_distance, side="left")
        removed[lo:hi] = True
        removed[i] = False
    keep[idx] = ~removed
    return keep


def _apply_min_distance(
    frames: np.ndarray, classes: np.ndarray, scores: np.ndarray, min_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class `_suppress_close`; inputs sorted by (class, frame)."""
    if min_distance <= 1 or frames.size == 0:
        return frames, classes, scores
    keep = np.zeros(frames.shape[0], dtype=bool)
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        keep[idx] = _suppress_close(frames[idx], scores[idx], min_distance)
    return frames[keep], classes[keep], scores[keep]


# --------------------------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------------------------


def threshold_events(
    probs: np.ndarray | torch.Tensor,
    *,
    threshold: float,
    frame_rate: float,
    time_offset_s: float = 0.0,
    min_distance_frames: int = 1,
) -> Events:
    """Frame probabilities -> events: one event per run of frames with ``p > threshold``.

    A maximal run of consecutive frames of one class with ``p(t) > threshold`` is one event,
    placed at the run's peak frame (the first one if the maximum repeats) with the peak
    probability as its score. Optionally, events of the same class closer than
    ``min_distance_frames`` are thinned, keeping the higher score (ties: the earlier one).

    ``probs`` are the model's per-frame event probabilities: the Bernoulli parameters
    ``p_hat(t)`` of LoCo eq. 4-5 (which also drive the count distribution, LoCo eq. 6) or the
    point predictions ``y_theta(t)`` of SoftLoc eq. 2-4, which the SoftLoc loss concentrates on
    single frames, so no peak-picking heuristic is needed (SoftLoc §4.2).

    Args:
        probs: per-frame event probabilities in [0, 1], numpy array or torch tensor.
        threshold: trigger level in [0, 1); frames need ``p > threshold`` (strict: a value
            equal to the threshold does not trigger). Originals: 0.4 drums, 0.2 piano and time
            series.
        frame_rate: frames per second (e.g. 200 for the audio models), > 0.
        time_offset_s: seconds added to every event time (the calibrated lag). Default 0.
        min_distance_frames: events of one class must be at least this many frames apart
            (1 = no thinning, the default; runs are already separated by >= 1 frame below
            threshold).

    Returns:
        :class:`Events` sorted by time then class; ``scores`` = peak probability of each run.

    Raises:
        TypeError: ``probs`` not a floating numpy array / torch tensor; non-numeric settings.
        ValueError: ``probs`` not 2-D, not finite or outside [0, 1]; ``threshold`` outside
            [0, 1); ``frame_rate`` <= 0; ``min_distance_frames`` < 1.

    Shape:
        probs: ``(class, time)``.

    Notes:
        * We threshold ``p(t)`` itself. The original ``predict()`` recovered ``p`` from the count
          recursion as ``1 - Y0(t) / Y0(t-1)``; mathematically the same, but ``Y0(t)`` (the
          probability of no event so far) underflows to 0 in float32 after a few dozen confident
          events, the ratio becomes 0/0 = NaN, NaN > threshold is False, and later events in the
          extract are silently lost (facts §5.1). It also shifted every detection one frame
          early (reproduce with ``time_offset_s=-1/frame_rate`` if needed).
        * One event per run at the run's PEAK. The original pipeline instead overlap-averaged
          binary triggers and emitted the EARLIEST frame of a forward window whose sum exceeded
          a mass threshold (facts §5.3); that rule biases times early by up to the run length and
          depends on a second threshold. It is available as :func:`window_mass_events` to
          reproduce published numbers.

    Example:
        >>> p = np.array([[0.1, 0.5, 0.9, 0.6, 0.1, 0.4, 0.7]])
        >>> ev = threshold_events(p, threshold=0.4, frame_rate=100.0)
        >>> ev.frames.tolist(), ev.scores.tolist()
        ([2, 6], [0.9, 0.7])
    """
    fn = "threshold_events"
    arr = as_float64_array(fn, "probs", probs, 2, "(class, time)")
    check_unit_interval(fn, "probs", arr)
    thr = check_threshold(fn, threshold, unit=True)
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    min_distance = check_int(fn, "min_distance_frames", min_distance_frames, minimum=1)
    n_classes, n_frames = arr.shape

    above = np.zeros((n_classes, n_frames + 2), dtype=bool)  # (C, T) -> (C, T+2), False-padded
    above[:, 1:-1] = arr > thr
    flat = above.ravel()  # the padding keeps runs of different classes apart
    is_start = flat & ~np.concatenate(([False], flat[:-1]))
    pos = np.flatnonzero(flat)  # flat positions of frames above threshold, ascending
    run_id = np.cumsum(is_start)[pos] - 1  # (n_above,) run index of each such frame
    values = arr[pos // (n_frames + 2), pos % (n_frames + 2) - 1]
    # peak of each run: highest value, ties -> earliest frame (lexsort: last key is primary)
    order = np.lexsort((pos, -values, run_id))
    first = np.flatnonzero(np.diff(run_id[order], prepend=-1))  # first row of each run
    peak_pos = pos[order[first]]  # ascending in run order = sorted by (class, frame)
    run_class = peak_pos // (n_frames + 2)
    frames = peak_pos % (n_frames + 2) - 1
    scores = values[order[first]]
    frames, classes, scores = _apply_min_distance(frames, run_class, scores, min_distance)
    return _make_events(
        frames, classes, scores, n_classes=n_classes, frame_rate=rate, time_offset_s=offset
    )


def pick_peaks(
    activation: np.ndarray | torch.Tensor,
    *,
    threshold: float,
    frame_rate: float,
    time_offset_s: float = 0.0,
    min_distance_frames: int = 1,
) -> Events:
    """Peak picking: local maxima with ``activation > threshold``, >= ``min_distance_frames`` apart.

    For heat-map baselines trained on Gaussian-smoothed one-sided targets, whose output is a
    bump around each event rather than a probability per frame (the "peak picking" heuristic of
    SoftLoc §3, Issues 2-3). A frame is a local maximum
    when it is higher than its neighbours (for a flat top, the middle frame, rounded down, as
    in ``scipy.signal.find_peaks``); the first and last frames count too (the sequence is padded
    with lower values), since events can sit on a boundary. Among maxima closer than
    ``min_distance_frames`` the higher is kept (ties: the earlier one).

    Args:
        activation: per-frame activation, any finite real values (normalise it yourself, e.g.
            divide by the peak height of the target kernel, as the original did).
        threshold: a peak needs ``activation > threshold`` (strict). Originals: 0.35 piano,
            0.3 time series, on the kernel-normalised scale.
        frame_rate: frames per second, > 0.
        time_offset_s: seconds added to every event time. Default 0.
        min_distance_frames: minimum distance between kept peaks of one class, >= 1
            (1 = every local maximum).

    Returns:
        :class:`Events` sorted by time then class; ``scores`` = peak heights.

    Raises:
        TypeError: ``activation`` not a floating numpy array / torch tensor; non-numeric
            settings.
        ValueError: ``activation`` not 2-D or not finite; ``frame_rate`` <= 0;
            ``min_distance_frames`` < 1.

    Shape:
        activation: ``(class, time)``.

    Notes:
        The original one-sided decoder (facts §5.4) iteratively subtracted a Gaussian around each
        pick and marked ``round(1.2 * height)`` frames per peak (with an index wrap-around bug
        in the piano copy). We use plain non-maximum suppression, as madmom and scipy do.

    Example:
        >>> a = np.array([[0.9, 0.2, 0.5, 0.6, 0.5, 0.1, 0.55]])
        >>> pick_peaks(a, threshold=0.3, frame_rate=10.0, min_distance_frames=4).frames.tolist()
        [0, 6]
    """
    fn = "pick_peaks"
    arr = as_float64_array(fn, "activation", activation, 2, "(class, time)")
    thr = check_threshold(fn, threshold, unit=False)
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    min_distance = check_int(fn, "min_distance_frames", min_distance_frames, minimum=1)
    n_classes = arr.shape[0]

    all_frames, all_classes, all_scores = [], [], []
    for c in range(n_classes):
        row = arr[c]
        if row.size == 0:
            continue
        low = min(float(row.min()), thr) - 1.0  # pad below every value so edges can be maxima
        padded = np.concatenate(([low], row, [low]))
        # strict `> threshold` for float64 values == `>= nextafter(threshold, +inf)`
        peaks, _ = find_peaks(padded, height=np.nextafter(thr, np.inf))
        peaks = peaks - 1
        heights = row[peaks]
        keep = _suppress_close(peaks, heights, min_distance)
        all_frames.append(peaks[keep])
        all_scores.append(heights[keep])
        all_classes.append(np.full(int(keep.sum()), c, dtype=np.int64))
    if all_frames:
        frames = np.concatenate(all_frames)
        classes = np.concatenate(all_classes)
        scores = np.concatenate(all_scores)
    else:
        frames = classes = np.zeros(0, dtype=np.int64)
        scores = np.zeros(0, dtype=np.float64)
    return _make_events(
        frames, classes, scores, n_classes=n_classes, frame_rate=rate, time_offset_s=offset
    )


def window_mass_events(
    density: np.ndarray | torch.Tensor,
    *,
    window_frames: int,
    min_mass: float,
    frame_rate: float,
    time_offset_s: float = 0.0,
) -> Events:
    """The original "cleaning" decoder: earliest frame whose forward window holds enough mass.

    Scanning each class forward in time, the first frame ``t`` with ``density[t] > 0`` and
    ``sum(density[t : t + window_frames]) >= min_mass`` emits an event AT ``t``; frames
    ``[t, t + window_frames)`` are then cleared and the scan goes on. Kept to reproduce the
    published pipelines (facts §5.3: piano window 20 frames, mass 0.35; drums 9 frames, 0.5),
    where ``density`` is the overlap-averaged binary trigger series of :func:`stitch_windows`.

    Args:
        density: non-negative per-frame values (e.g. stitched trigger density or probabilities).
        window_frames: forward window length in frames, >= 1.
        min_mass: minimum window sum (inclusive ``>=``, as the original), > 0.
        frame_rate: frames per second, > 0.
        time_offset_s: seconds added to every event time. Default 0.

    Returns:
        :class:`Events` sorted by time then class; ``scores`` = the window sum at the event.

    Raises:
        TypeError: ``density`` not a floating numpy array / torch tensor; non-numeric settings.
        ValueError: ``density`` not 2-D, not finite or negative; ``window_frames`` < 1;
            ``min_mass`` <= 0; ``frame_rate`` <= 0.

    Shape:
        density: ``(class, time)``.

    Notes:
        Prefer :func:`threshold_events`: this rule reports the onset of the window, not its
        peak, so its times lean early by up to ``window_frames``. The original was a
        pure-Python loop over frames; clearing ``[t, t + w)`` never changes a later window
        ``[t', t' + w)`` with ``t' >= t + w``, so the scan reduces to keeping the candidates
        at least ``w`` frames after the previous emitted one.

    Example:
        >>> d = np.array([[0.0, 0.2, 0.3, 0.3, 0.0, 0.0, 0.1, 0.0]])
        >>> window_mass_events(d, window_frames=3, min_mass=0.5, frame_rate=200.0).frames.tolist()
        [1]
    """
    fn = "window_mass_events"
    arr = as_float64_array(fn, "density", density, 2, "(class, time)")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{fn}: `density` must be >= 0, found minimum {arr.min():g}")
    window = check_int(fn, "window_frames", window_frames, minimum=1)
    mass = check_real(fn, "min_mass", min_mass)
    if mass <= 0:
        raise ValueError(f"{fn}: `min_mass` must be > 0, got {mass:g}")
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    n_classes, n_frames = arr.shape

    # forward window sums S[c, t] = sum(arr[c, t : t + w]) via a cumulative sum
    csum = np.zeros((n_classes, n_frames + window), dtype=np.float64)  # (C, T+w), tail padded
    csum[:, 1 : n_frames + 1] = np.cumsum(arr, axis=1)
    csum[:, n_frames + 1 :] = csum[:, n_frames : n_frames + 1]
    sums = csum[:, window : window + n_frames] - csum[:, :n_frames]  # (C, T)
    # tolerate cumsum rounding at the inclusive boundary (sum == min_mass exactly)
    candidate = (arr > 0) & (sums >= mass - 1e-12 * max(1.0, mass))

    frames_out, classes_out, scores_out = [], [], []
    for c in range(n_classes):
        last = -window
        for t in np.flatnonzero(candidate[c]):
            if t >= last + window:
                frames_out.append(int(t))
                classes_out.append(c)
                scores_out.append(float(sums[c, t]))
                last = int(t)
    return _make_events(
        np.asarray(frames_out, dtype=np.int64),
        np.asarray(classes_out, dtype=np.int64),
        np.asarray(scores_out, dtype=np.float64),
        n_classes=n_classes,
        frame_rate=rate,
        time_offset_s=offset,
    )


# --------------------------------------------------------------------------------------------
# Window stitching
# --------------------------------------------------------------------------------------------


def stitch_windows(
    window_probs: np.ndarray | torch.Tensor,
    *,
    hop_frames: int,
    total_frames: int,
    valid_frames: int | Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Overlapping window predictions -> one series over the whole file (overlap average).

    Window ``i`` starts at frame ``i * hop_frames`` of the file. Its first ``valid_frames``
    frames are added into the file series and counted once each; every file frame gets the
    mean over the windows that cover it. Frames of a window past ``total_frames`` (the
    zero-padded tail of the last window) are dropped.

    The drum and piano pipelines run 1.5 s windows at a 0.5 s hop (300 valid frames, hop 100
    at 200 fps), so inner frames are the mean of 3 windows (facts §5.3).

    Args:
        window_probs: per-window predictions, numpy array or torch tensor.
        hop_frames: start-to-start distance of consecutive windows in frames, >= 1.
        total_frames: length of the file series to produce, >= 1.
        valid_frames: how many leading frames of each window are real (the rest is padding):
            one int for all windows, or one int per window (e.g. a short last window). Default:
            all ``window_frames``. Crop a leading pad yourself (``window_probs[..., pad:]``).

    Returns:
        float64 numpy array ``(class, total_frames)``.

    Raises:
        TypeError: ``window_probs`` not a floating numpy array / torch tensor; non-int sizes.
        ValueError: ``window_probs`` not 3-D or not finite; sizes out of range; a window that
            starts at or after ``total_frames``; file frames covered by no window (the message
            names the first uncovered range, e.g. when ``hop_frames > valid_frames`` or the
            windows stop before the end of the file).

    Shape:
        window_probs: ``(n_windows, class, window_frames)`` -> ``(class, total_frames)``.

    Notes:
        The original pasted into a fixed 200 000-frame buffer (1000 s cap) and divided on the
        covered columns only. We size the output to the file and reject uncovered frames
        instead of silently leaving zeros there.

    Example:
        >>> w = np.array([[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0, 0.0]]])
        >>> stitch_windows(w, hop_frames=2, total_frames=6).tolist()
        [[1.0, 1.0, 0.5, 0.5, 0.0, 0.0]]
    """
    fn = "stitch_windows"
    arr = as_float64_array(fn, "window_probs", window_probs, 3, "(n_windows, class, window_frames)")
    hop = check_int(fn, "hop_frames", hop_frames, minimum=1)
    total = check_int(fn, "total_frames", total_frames, minimum=1)
    n_windows, n_classes, window_len = arr.shape
    if n_windows == 0:
        raise ValueError(f"{fn}: `window_probs` holds no windows (shape {tuple(arr.shape)})")

    if valid_frames is None:
        valid = np.full(n_windows, window_len, dtype=np.int64)
    elif isinstance(valid_frames, (int, np.integer)) and not isinstance(valid_frames, bool):
        v = check_int(fn, "valid_frames", valid_frames, minimum=1)
        valid = np.full(n_windows, v, dtype=np.int64)
    else:
        if isinstance(valid_frames, torch.Tensor):
            valid_frames = valid_frames.detach().cpu().numpy()
        valid_arr = np.asarray(valid_frames)
        if valid_arr.ndim != 1 or not np.issubdtype(valid_arr.dtype, np.integer):
            raise TypeError(
                f"{fn}: `valid_frames` must be an int or a 1-D sequence of ints (one per window), "
                f"got {type(valid_frames).__name__} with dtype {valid_arr.dtype}"
            )
        if valid_arr.shape[0] != n_windows:
            raise ValueError(
                f"{fn}: `valid_frames` must have one entry per window ({n_windows}), "
                f"got {valid_arr.shape[0]}"
            )
        valid = valid_arr.astype(np.int64)
    if valid.min() < 1 or valid.max() > window_len:
        raise ValueError(
            f"{fn}: `valid_frames` must lie in [1, window_frames={window_len}], got values in "
            f"[{valid.min()}, {valid.max()}]"
        )

    starts = np.arange(n_windows, dtype=np.int64) * hop
    if starts[-1] >= total:
        raise ValueError(
            f"{fn}: window {n_windows - 1} starts at frame {starts[-1]} >= total_frames={total}; "
            f"too many windows for the file or `total_frames` too small"
        )
    stops = np.minimum(starts + valid, total)

    summed = np.zeros((n_classes, total), dtype=np.float64)
    coverage = np.zeros(total, dtype=np.int64)
    for i in range(n_windows):
        start, stop = int(starts[i]), int(stops[i])
        summed[:, start:stop] += arr[i, :, : stop - start]
        coverage[start:stop] += 1
    if not coverage.all():
        first = int(np.argmin(coverage > 0))
        last = first + int(np.argmax(coverage[first:] > 0)) if coverage[first:].any() else total
        raise ValueError(
            f"{fn}: file frames [{first}, {last}) are covered by no window "
            f"(hop_frames={hop}, valid_frames per window in [{valid.min()}, {valid.max()}], "
            f"{n_windows} windows, total_frames={total}); add windows or lower hop_frames"
        )
    return summed / coverage
