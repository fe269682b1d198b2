"""Test-time augmentation as in the papers' code: Nadaraya–Watson ensembling of per-rate
predictions, and the "cleaning" decoder on window trigger densities.

The official drum and piano pipelines (facts §5.2-5.3) decode each input several times:

1. **Copies.** The input is also played at rate factors ``s_k`` (``inference.tta_factors``;
   the original drums used 6 random factors in U[7/8, 9/8) besides the original, 7 copies), and
   each copy runs through the network: ``p_k(j)`` on the copy's own frame grid.
2. **Triggers.** ``b_k(j) = p_k(j) > threshold_c`` (the trigger rule of the papers, per class).
3. **Nadaraya–Watson map** (:func:`nadaraya_watson_map`): copy frame ``j`` lies at original
   frame ``j * s_k``; the binary series is regressed onto the original frames ``i`` with a
   Gaussian kernel of bandwidth ``h`` (5 frames = 25 ms)::

       m_k(i) = sum_j K((i - j s_k) / h) b_k(j) / sum_j K((i - j s_k) / h)

   and the copies are summed, ``E(i) = sum_k m_k(i)``: the local fraction of triggered frames,
   added over copies. One isolated triggered frame gives a peak of ``s_k / (h sqrt(2 pi))``
   (0.08 at h = 5), so an event needs several copies (or a run of frames) to agree.
4. **Greedy extraction** (:func:`nw_ensemble_events`): while ``max E > min_mass`` (0.25 for the
   7 drum copies), emit an event at the argmax ``i*`` (first on ties), clear the triggers within
   ``+-suppression`` frames (9) of ``i* / s_k`` in every copy, and update ``E``.
5. **Cleaning** (:func:`cleaning_events`, ``softloc.decode.window_mass_events``): the original
   pastes each window's binary output into the file at its offset and averages over the windows
   that cover a frame (a *trigger density*: 1 where all three overlapping windows agree), then
   scans forward and emits the first frame whose next 9 frames hold a density of at least 0.5.

:func:`ensemble_events` runs the pipeline that ``inference.decoder`` and
``inference.tta_ensemble`` select for a :class:`~softloc.inference.Detector`:

========================  =================  ================================================
``tta_factors``           ``tta_ensemble``   events from
========================  =================  ================================================
empty                     any                ``decoder``: ``threshold`` (runs of p > threshold,
                                             at their peak) or ``clean`` (cleaning of the
                                             trigger density)
given                     ``mean``           the same decoders on the copies' p(t) / trigger
                                             densities mapped back to the original time and
                                             averaged
given                     ``nw``             Nadaraya–Watson ensembling of the copies'
                                             triggers; with ``decoder: clean`` the ensembled
                                             events are cleaned as in step 5 (the original
                                             order)
========================  =================  ================================================

Notes:
    The original ensembles the copies of each 1.5 s extract (the copies of one window share its
    start), then pastes and cleans. Here every copy is the whole file played at ``s_k``, its
    windows stitched first; the mapping ``j -> j s_k`` is the same, so the per-window and the
    whole-file ensembles differ only where windows overlap (the whole file has no window seams).
    Settings are in seconds (``nw_bandwidth_s``, ``nw_suppression_s``, ``clean_window_s``) and
    converted at the model's frame rate; the NW value of a trigger run of ``D`` seconds is about
    ``D / (h_s sqrt(2 pi))`` at any frame rate. The cleaning mass is in seconds of full
    agreement (``clean_min_mass_s`` = 2.5 ms = the original 0.5 frames at 200 frames/s).
    The original's NW kernel constant is wrong (``exp(-u^2/2)/(2 pi)^2``) but cancels in the
    ratio; the NW sums here are truncated at 5 bandwidths (weights below 4e-6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from softloc._checks import as_float64_array, check_frame_rate, check_int, check_real
from softloc.decode import Events, stitch_windows, window_mass_events
from softloc.decode.events import make_events
from softloc.timebase import duration_frames

if TYPE_CHECKING:
    from softloc.inference.detector import Detector

__all__ = [
    "ENSEMBLES",
    "cleaning_events",
    "ensemble_events",
    "nadaraya_watson_map",
    "nw_ensemble_events",
    "trigger_density",
]

#: Values of ``inference.tta_ensemble``.
ENSEMBLES = ("mean", "nw")
_TRUNCATE = 5.0


def _check_factor(fn: str, factor: object) -> float:
    f = check_real(fn, "factor", factor, positive=True)
    return f


def nadaraya_watson_map(
    values: np.ndarray, *, factor: float, n_frames: int, bandwidth_frames: float
) -> np.ndarray:
    """Gaussian Nadaraya–Watson regression of a copy's series onto the original frame grid.

    Copy frame ``j`` of a copy played ``factor`` times faster lies at original frame
    ``j * factor``; original frame ``i`` gets ``sum_j K_j v(j) / sum_j K_j`` with
    ``K_j = exp(-((i - j factor) / h)^2 / 2)`` (facts §5.2; :mod:`softloc.inference.ensemble`).

    Args:
        values: ``(class, copy_frames)`` series of the copy (e.g. its binary triggers).
        factor: the copy's rate factor ``s`` (> 0).
        n_frames: frames of the original series to produce (>= 1).
        bandwidth_frames: ``h`` in original frames (> 0; the original code: 5).

    Returns:
        float64 ``(class, n_frames)``; frames farther than 5 bandwidths from every copy frame
        (past the copy's end) are 0.

    Raises:
        ValueError: ``values`` not 2-D / not finite, or a non-positive setting.
    """
    fn = "nadaraya_watson_map"
    v = as_float64_array(fn, "values", values, 2, "(class, copy_frames)")
    s = _check_factor(fn, factor)
    n = check_int(fn, "n_frames", n_frames, minimum=1)
    h = check_real(fn, "bandwidth_frames", bandwidth_frames, positive=True)
    return _nw(v, s, h, 0, n)


def _nw(v: np.ndarray, s: float, h: float, i_lo: int, i_hi: int) -> np.ndarray:
    """:func:`nadaraya_watson_map` over original frames ``[i_lo, i_hi)`` only (no checks)."""
    n_copy = v.shape[1]
    i = np.arange(i_lo, i_hi, dtype=np.float64)  # (n,)
    reach = int(np.ceil(_TRUNCATE * h / s)) + 1
    j = np.rint(i / s).astype(np.int64)[:, None] + np.arange(-reach, reach + 1)  # (n, taps)
    inside = (j >= 0) & (j < n_copy)
    w = np.exp(-0.5 * ((i[:, None] - j * s) / h) ** 2) * inside  # (n, taps)
    den = w.sum(axis=1)  # (n,)
    num = np.einsum("nt,cnt->cn", w, v[:, np.clip(j, 0, n_copy - 1)])  # (C, n)
    out = np.zeros_like(num)
    ok = den > 1e-12
    out[:, ok] = num[:, ok] / den[ok]
    return out


def nw_ensemble_events(
    triggers: Sequence[np.ndarray],
    *,
    factors: Sequence[float],
    n_frames: int,
    frame_rate: float,
    bandwidth_frames: float = 5.0,
    min_mass: float = 0.25,
    suppression_frames: int = 9,
    time_offset_s: float = 0.0,
) -> Events:
    """Greedy event extraction from the Nadaraya–Watson ensemble of copies' triggers.

    Per class: ``E = sum_k nadaraya_watson_map(triggers[k], factor=factors[k])``; while
    ``max E > min_mass``, emit an event at the argmax (the first on ties), clear the triggers of
    every copy within ``+-suppression_frames`` of ``int(argmax / factors[k])`` and update ``E``
    (facts §5.2).

    Args:
        triggers: one ``(class, copy_frames)`` 0/1 series per copy.
        factors: the rate factor of each copy (1.0 = the original).
        n_frames: frames of the original series.
        frame_rate: frames per second of the original series.
        bandwidth_frames: NW bandwidth ``h`` (original: 5).
        min_mass: ensemble mass an event must exceed (strictly; original drums: 0.25 with 7
            copies, piano 0.02 per copy).
        suppression_frames: half-width of the cleared region in copy frames (drums 9, piano 20).
        time_offset_s: seconds added to every event time.

    Returns:
        :class:`~softloc.decode.Events`; ``scores`` = the ensemble mass at each event.

    Raises:
        ValueError: no copies, copies with different class counts, ``len(factors)`` !=
            ``len(triggers)``, or a bad setting.
    """
    fn = "nw_ensemble_events"
    if len(triggers) == 0 or len(triggers) != len(factors):
        raise ValueError(f"{fn}: need one factor per trigger series and at least one copy, got "
                         f"{len(triggers)} series and {len(factors)} factors")
    series = [as_float64_array(fn, "triggers", t, 2, "(class, copy_frames)").copy()
              for t in triggers]
    if len({t.shape[0] for t in series}) != 1:
        raise ValueError(f"{fn}: every copy must have the same classes, got "
                         f"{[t.shape[0] for t in series]}")
    fs = [_check_factor(fn, f) for f in factors]
    n = check_int(fn, "n_frames", n_frames, minimum=1)
    rate = check_frame_rate(fn, frame_rate)
    h = check_real(fn, "bandwidth_frames", bandwidth_frames, positive=True)
    mass = check_real(fn, "min_mass", min_mass, positive=True)
    sup = check_int(fn, "suppression_frames", suppression_frames, minimum=0)
    offset = check_real(fn, "time_offset_s", time_offset_s)
    frames, classes, scores = [], [], []
    for c in range(series[0].shape[0]):
        rows = [t[c : c + 1] for t in series]  # (1, copy_frames) views
        maps = [_nw(r, s, h, 0, n)[0] for r, s in zip(rows, fs, strict=True)]
        total = np.sum(maps, axis=0)  # (n,)
        for _ in range(n):
            i = int(np.argmax(total))
            if not total[i] > mass:
                break
            frames.append(i)
            classes.append(c)
            scores.append(float(total[i]))
            for k, (r, s) in enumerate(zip(rows, fs, strict=True)):
                j = int(i / s)
                lo, hi = max(0, j - sup), min(r.shape[1], j + sup + 1)
                if lo >= hi or not r[0, lo:hi].any():
                    continue
                r[0, lo:hi] = 0.0
                # frames whose kernel reaches the cleared copy frames
                a = max(0, int(np.floor((lo - 1) * s - _TRUNCATE * h)) - 1)
                b = min(n, int(np.ceil(hi * s + _TRUNCATE * h)) + 2)
                new = _nw(r, s, h, a, b)[0]
                total[a:b] += new - maps[k][a:b]
                maps[k][a:b] = new
    return make_events(np.asarray(frames, dtype=np.int64), np.asarray(classes, dtype=np.int64),
                       np.asarray(scores), n_classes=series[0].shape[0], frame_rate=rate,
                       time_offset_s=offset)


def trigger_density(
    window_probs: np.ndarray,
    *,
    thresholds: Sequence[float],
    hop_frames: int,
    total_frames: int,
    valid_frames: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """The overlap-averaged binary triggers of overlapping windows (facts §5.3 ``pp_final``).

    Each window's p(t) is thresholded per class (``p > thresholds[c]``) and the 0/1 windows are
    stitched (:func:`softloc.decode.stitch_windows`): 1 where every window that covers a frame
    triggers there, 1/3 where one of three does.

    Args:
        window_probs: ``(n_windows, class, window_frames)`` probabilities.
        thresholds: one trigger threshold per class.
        hop_frames, total_frames, valid_frames: as :func:`~softloc.decode.stitch_windows`.

    Returns:
        float64 ``(class, total_frames)`` in [0, 1].
    """
    fn = "trigger_density"
    p = np.asarray(window_probs, dtype=np.float64)
    if p.ndim != 3 or len(thresholds) != p.shape[1]:
        raise ValueError(f"{fn}: expected `window_probs` (n_windows, class, window_frames) and "
                         f"one threshold per class, got shape {p.shape} and "
                         f"{len(thresholds)} thresholds")
    thr = np.asarray(thresholds, dtype=np.float64)[None, :, None]
    return stitch_windows((p > thr).astype(np.float64), hop_frames=hop_frames,
                          total_frames=total_frames, valid_frames=valid_frames)


def cleaning_events(
    density: np.ndarray,
    *,
    frame_rate: float,
    window_s: float = 0.045,
    min_mass_s: float = 0.0025,
    time_offset_s: float = 0.0,
) -> Events:
    """The original cleaning decoder (:func:`softloc.decode.window_mass_events`) with its
    settings in seconds: forward window ``window_s`` (9 frames at 200 frames/s) and a minimum
    mass of ``min_mass_s`` seconds of full agreement (0.5 frames at 200 frames/s).

    Args:
        density: ``(class, frames)`` trigger density in [0, 1] (:func:`trigger_density`).
        frame_rate: frames per second.
        window_s, min_mass_s: the rule's settings in seconds (> 0).
        time_offset_s: seconds added to every event time.
    """
    fn = "cleaning_events"
    rate = check_frame_rate(fn, frame_rate)
    window = max(1, duration_frames(check_real(fn, "window_s", window_s, positive=True), rate))
    mass = check_real(fn, "min_mass_s", min_mass_s, positive=True) * rate
    return window_mass_events(density, window_frames=window, min_mass=mass, frame_rate=rate,
                              time_offset_s=time_offset_s)


# ------------------------------------------------------------------------- detector pipeline


def _thresholds(det: Detector, n_classes: int) -> list[float]:
    inf = det.config.inference
    thr = list(inf.class_thresholds or (inf.threshold,) * n_classes)
    if len(thr) != n_classes:
        raise ValueError(f"Detector: inference.class_thresholds must have one entry per class "
                         f"({n_classes}), got {len(thr)}")
    return thr


def _copy_series(det: Detector, features: Any, *, density: bool) -> np.ndarray:
    """p(t) of one copy, or (``density``) its trigger density."""
    stage = det.input_stage
    if not density:
        return det.probabilities_from_features(features)
    probs, valid, hop = stage.window_probabilities(det.model, features)
    n_frames = int(np.asarray(features).shape[-1])
    return trigger_density(probs, thresholds=_thresholds(det, probs.shape[1]), hop_frames=hop,
                           total_frames=n_frames, valid_frames=valid)


def _shift(events: Events, offsets: Sequence[float]) -> Events:
    """``events`` with ``offsets[class]`` added to their times."""
    extra = np.asarray(offsets, dtype=np.float64)[events.classes] if len(events) else 0.0
    order = np.lexsort((events.classes, events.times_s + extra))
    return Events(frames=events.frames[order], classes=events.classes[order],
                  scores=events.scores[order], times_s=(events.times_s + extra)[order],
                  n_classes=events.n_classes, frame_rate=events.frame_rate,
                  time_offset_s=events.time_offset_s)


def ensemble_events(detector: Detector, source: Any) -> Events:
    """Events of ``source`` through the pipeline ``detector.config.inference`` selects (see the
    module table): ``decoder`` ``threshold`` / ``clean``, ``tta_factors``, ``tta_ensemble``
    ``mean`` / ``nw``.

    Times are ``frame / frame_rate + time_offset_s + class_offsets_s[c]``.

    Raises:
        ValueError: an unknown ``decoder`` or ``tta_ensemble``; TTA with an input stage that
            cannot be sped up; ``clean`` with a stage that does not run on windows.
    """
    inf = detector.config.inference
    if inf.decoder not in ("threshold", "clean"):
        raise ValueError(f"Detector: inference.decoder must be 'threshold' or 'clean', got "
                         f"{inf.decoder!r}")
    if inf.tta_ensemble not in ENSEMBLES:
        raise ValueError(f"Detector: inference.tta_ensemble must be one of {ENSEMBLES}, got "
                         f"{inf.tta_ensemble!r}")
    stage, rate = detector.input_stage, detector.frame_rate
    factors = (1.0, *inf.tta_factors)
    nw = inf.tta_ensemble == "nw" and len(factors) > 1
    clean = inf.decoder == "clean"
    signal = stage.read(source)
    with detector.threads_context():
        copies = []
        for s in factors:
            x = signal if s == 1.0 else stage.speed_up(signal, s)
            series = _copy_series(detector, stage.features(x), density=clean and not nw)
            if nw:
                thr = np.asarray(_thresholds(detector, series.shape[0]))[:, None]
                series = (series > thr).astype(np.float64)
            copies.append(series)
    n_frames = copies[0].shape[1]
    offsets = inf.class_offsets_s or (0.0,) * copies[0].shape[0]
    if nw:
        events = nw_ensemble_events(
            copies, factors=factors, n_frames=n_frames, frame_rate=rate,
            bandwidth_frames=inf.nw_bandwidth_s * rate,
            min_mass=inf.nw_min_mass_per_copy * len(factors),
            suppression_frames=duration_frames(inf.nw_suppression_s, rate),
            time_offset_s=inf.time_offset_s)
        if clean:
            impulses = np.zeros_like(copies[0])
            impulses[events.classes, events.frames] = 1.0
            events = cleaning_events(impulses, frame_rate=rate, window_s=inf.clean_window_s,
                                     min_mass_s=inf.clean_min_mass_s,
                                     time_offset_s=inf.time_offset_s)
        return _shift(events, offsets)
    total = copies[0].copy()
    grid = np.arange(n_frames, dtype=np.float64)
    for s, series in zip(factors[1:], copies[1:], strict=True):
        src = np.arange(series.shape[1], dtype=np.float64)
        total += np.stack([np.interp(grid / s, src, row) for row in series])
    mean = total / len(factors)
    if not clean:
        return detector.events_from_probabilities(mean)
    events = cleaning_events(mean, frame_rate=rate, window_s=inf.clean_window_s,
                             min_mass_s=inf.clean_min_mass_s, time_offset_s=inf.time_offset_s)
    return _shift(events, offsets)
