"""The decoders: one ``(class, time)`` sequence of frame outputs -> :class:`Events`.

See :mod:`softloc.decode` for the conventions.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

from softloc._checks import (
    as_float64_array,
    check_choice,
    check_finite_sigma,
    check_frame_rate,
    check_int,
    check_real,
    check_threshold,
    check_unit_interval,
)
from softloc.decode.events import Events, apply_min_distance, make_events, suppress_close
from softloc.losses.softloc import gaussian_kernel

__all__ = [
    "DECODERS",
    "DEFAULT_THRESHOLDS",
    "decode_events",
    "local_mass",
    "pick_mass_peaks",
    "pick_normalized_peaks",
    "pick_peaks",
    "threshold_events",
    "window_mass_events",
]


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
    frames, classes, scores = apply_min_distance(frames, run_class, scores, min_distance)
    return make_events(
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
    return _peaks(arr, thr, rate, offset, min_distance)


def _peaks(arr: np.ndarray, thr: float, rate: float, offset: float, min_distance: int) -> Events:
    """:func:`pick_peaks` of a validated float64 ``(class, time)`` array."""
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
        keep = suppress_close(peaks, heights, min_distance)
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
    return make_events(
        frames, classes, scores, n_classes=n_classes, frame_rate=rate, time_offset_s=offset
    )


def pick_normalized_peaks(
    activation: np.ndarray | torch.Tensor,
    *,
    sigma_frames: float,
    frame_rate: float,
    threshold: float = 0.35,
    time_offset_s: float = 0.0,
    min_distance_frames: int = 1,
) -> Events:
    """Peak picking on ``activation / max Φ_σ``: for outputs trained on sum-normalised heat maps.

    The one-sided baseline (:func:`softloc.losses.one_sided_loss`) regresses ``Φ_σ ∗ y``, whose
    peak over an isolated event is ``max Φ_σ`` (about ``1 / (σ sqrt(2π))``), not 1. Dividing by
    that height puts the activation on a scale where an isolated event peaks at 1, and
    :func:`pick_peaks` then keeps maxima above ``threshold`` (the piano original used 0.35 on
    this scale, facts §5.4).

    Args:
        activation: per-frame activation, finite.
        sigma_frames: softness σ of the training target in frames (finite, >= 0; 0 = no
            normalisation). From milliseconds: :func:`softloc.timebase.ms_to_frames`.
        frame_rate: frames per second, > 0.
        threshold: a peak needs ``activation / max Φ_σ > threshold``. Default 0.35.
        time_offset_s: seconds added to every event time. Default 0.
        min_distance_frames: minimum distance between kept peaks of one class, >= 1.

    Returns:
        :class:`Events`; ``scores`` = normalised peak heights.

    Raises:
        TypeError, ValueError: as :func:`pick_peaks`; ``sigma_frames`` < 0 or not finite.

    Shape:
        activation: ``(class, time)``.

    Example:
        >>> from softloc.losses import gaussian_kernel
        >>> a = 0.5 * gaussian_kernel(4.0).numpy()[None].astype(float)  # half an event's peak
        >>> pick_normalized_peaks(a, sigma_frames=4.0, frame_rate=100.0).frames.tolist()
        [16]
    """
    fn = "pick_normalized_peaks"
    arr = as_float64_array(fn, "activation", activation, 2, "(class, time)")
    sigma = check_finite_sigma(fn, sigma_frames)
    thr = check_threshold(fn, threshold, unit=False)
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    min_distance = check_int(fn, "min_distance_frames", min_distance_frames, minimum=1)
    # The kernel's float32 taps, as the training targets are built (SoftLoc eq. 2's Φ_σ).
    peak = float(gaussian_kernel(sigma).max())
    return _peaks(arr / peak, thr, rate, offset, min_distance)


def local_mass(probs: np.ndarray | torch.Tensor, *, half_window_frames: int) -> np.ndarray:
    """Probability mass within ±``half_window_frames`` of every frame (zero beyond the ends).

    ``mass[c, t] = sum(probs[c, t - h : t + h + 1])``: the expected number of events near
    ``t``, whatever the shape of the peaks (a smeared SLL output still sums to its count).

    Args:
        probs: per-frame probabilities (any finite values are accepted).
        half_window_frames: h >= 1; the window holds ``2h + 1`` frames.

    Returns:
        float64 array, same shape.

    Raises:
        TypeError, ValueError: as :func:`pick_peaks`; ``half_window_frames`` < 1.

    Shape:
        probs: ``(class, time)`` -> ``(class, time)``.

    Example:
        >>> local_mass(np.array([[0.0, 0.5, 0.25, 0.0, 0.0]]), half_window_frames=1).tolist()
        [[0.5, 0.75, 0.75, 0.25, 0.0]]
    """
    fn = "local_mass"
    arr = as_float64_array(fn, "probs", probs, 2, "(class, time)")
    half = check_int(fn, "half_window_frames", half_window_frames, minimum=1)
    return _mass(arr, half)


def _mass(arr: np.ndarray, half: int) -> np.ndarray:
    size = 2 * half + 1
    return uniform_filter1d(arr, size=size, axis=1, mode="constant") * size


def pick_mass_peaks(
    probs: np.ndarray | torch.Tensor,
    *,
    half_window_frames: int,
    frame_rate: float,
    threshold: float = 0.5,
    time_offset_s: float = 0.0,
    min_distance_frames: int = 1,
) -> Events:
    """Peak picking on the local probability mass (:func:`local_mass`).

    The "simple threshold-based peak picking" of the SLL ablation (SoftLoc Table 1): a model
    trained by L_SLL alone spreads each event over several frames, so its per-frame values can
    stay below any threshold while the mass around the event is about 1. An event is a local
    maximum of the mass above ``threshold`` (default 0.5: more likely one event than none).

    Args:
        probs: per-frame probabilities, finite.
        half_window_frames: h >= 1 (the noise study uses 50 ms).
        frame_rate: frames per second, > 0.
        threshold: a peak needs ``mass > threshold``. Default 0.5.
        time_offset_s: seconds added to every event time. Default 0.
        min_distance_frames: minimum distance between kept peaks of one class, >= 1.

    Returns:
        :class:`Events`; ``scores`` = the mass at each peak.

    Raises:
        TypeError, ValueError: as :func:`pick_peaks` and :func:`local_mass`.

    Shape:
        probs: ``(class, time)``.

    Example:
        >>> p = np.array([[0.0, 0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.3, 0.0]])
        >>> pick_mass_peaks(p, half_window_frames=1, frame_rate=100.0).frames.tolist()
        [2]
    """
    fn = "pick_mass_peaks"
    arr = as_float64_array(fn, "probs", probs, 2, "(class, time)")
    half = check_int(fn, "half_window_frames", half_window_frames, minimum=1)
    thr = check_threshold(fn, threshold, unit=False)
    rate = check_frame_rate(fn, frame_rate)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    min_distance = check_int(fn, "min_distance_frames", min_distance_frames, minimum=1)
    return _peaks(_mass(arr, half), thr, rate, offset, min_distance)


#: Decoder names (``softloc.losses.registry`` names the one that fits each loss).
DECODERS = ("threshold", "peaks", "peaks-normalized", "mass-peaks")
#: Threshold of each decoder when :func:`decode_events` gets none.
DEFAULT_THRESHOLDS = {"threshold": 0.5, "peaks": 0.5, "peaks-normalized": 0.35, "mass-peaks": 0.5}


def decode_events(
    probs: np.ndarray | torch.Tensor,
    decoder: str,
    *,
    frame_rate: float,
    threshold: float | None = None,
    time_offset_s: float = 0.0,
    min_distance_frames: int = 1,
    sigma_frames: float | None = None,
    half_window_frames: int | None = None,
) -> Events:
    """Decode one ``(class, time)`` sequence with the decoder named ``decoder``.

    ``"threshold"``: :func:`threshold_events`; ``"peaks"``: :func:`pick_peaks`;
    ``"peaks-normalized"``: :func:`pick_normalized_peaks` (needs ``sigma_frames``);
    ``"mass-peaks"``: :func:`pick_mass_peaks` (needs ``half_window_frames``).

    Args:
        probs: per-frame outputs of one sequence.
        decoder: a name of :data:`DECODERS`.
        frame_rate: frames per second, > 0.
        threshold: the decoder's threshold; default :data:`DEFAULT_THRESHOLDS`.
        time_offset_s: seconds added to every event time.
        min_distance_frames: minimum distance between events of one class, >= 1.
        sigma_frames: softness of the heat map (``"peaks-normalized"`` only).
        half_window_frames: half width of the mass window (``"mass-peaks"`` only).

    Returns:
        :class:`Events`.

    Raises:
        ValueError: an unknown decoder, a missing setting the decoder needs, or a setting it
            does not use; the decoder's own errors.

    Example:
        >>> p = np.array([[0.1, 0.6, 0.9, 0.2]])
        >>> decode_events(p, "threshold", frame_rate=100.0).times_s.tolist()
        [0.02]
    """
    fn = "decode_events"
    check_choice(fn, "decoder", decoder, DECODERS)
    needs = {"peaks-normalized": "sigma_frames", "mass-peaks": "half_window_frames"}
    for name, value in (("sigma_frames", sigma_frames), ("half_window_frames", half_window_frames)):
        if needs.get(decoder) == name and value is None:
            raise ValueError(f"{fn}: decoder {decoder!r} needs `{name}`")
        if needs.get(decoder) != name and value is not None:
            raise ValueError(f"{fn}: decoder {decoder!r} does not use `{name}`")
    thr = DEFAULT_THRESHOLDS[decoder] if threshold is None else threshold
    common = dict(frame_rate=frame_rate, threshold=thr, time_offset_s=time_offset_s,
                  min_distance_frames=min_distance_frames)
    if decoder == "threshold":
        return threshold_events(probs, **common)
    if decoder == "peaks":
        return pick_peaks(probs, **common)
    if decoder == "peaks-normalized":
        return pick_normalized_peaks(probs, sigma_frames=sigma_frames, **common)
    return pick_mass_peaks(probs, half_window_frames=half_window_frames, **common)


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
    return make_events(
        np.asarray(frames_out, dtype=np.int64),
        np.asarray(classes_out, dtype=np.int64),
        np.asarray(scores_out, dtype=np.float64),
        n_classes=n_classes,
        frame_rate=rate,
        time_offset_s=offset,
    )
