"""Decoding settings chosen on validation data: per-class time offsets and thresholds.

After training, the network's weights are fixed; what is left to choose is how its p(t) becomes
events. :func:`calibrate` picks, from the validation files and the labels the run is allowed to
use,

* **with timestamps** (:func:`calibrate_from_timestamps`): per-class time offsets (minus the
  median signed error of detections matched within 100 ms, :func:`calibrate_time_offset`) and
  per-class thresholds (the value of :data:`THRESHOLD_GRID` that maximises the class's pooled F1
  at +-50 ms with that offset);
* **with counts only** (:func:`calibrate_from_counts`): per-class thresholds whose detections
  best reproduce the counts of the validation ``counts.csv`` windows. A count says nothing about
  time, so a counts-trained model may fire a fixed latency after the sound (the piano-loco seed 1
  of docs/results.md: 31 ms late). With ``inference.align_to_onsets`` (audio runs) the offset
  that best aligns the detections with the validation audio's onset strength is added
  (:func:`onset_alignment_offset`, no label needed); else offsets stay as they are.

Which one runs is :func:`calibration_source`: ``inference.calibrate_with``, where ``auto`` means
counts whenever the validation timestamps may be noisy or are not the run's labels (a run trained
on counts, a run with ``supervision.label_noise``, the count-aware SoftLoc/LoCo losses, whose
users declare their timestamps uncertain by a softness or do not need them at all), else
timestamps; a label noise never changes a count, so a ``--label-noise`` run never sees a clean
label before the test. ``inference.calibrate_offset`` / ``calibrate_threshold`` switch the two
settings. Every function returns the new configuration and a plain-data summary (what
``RUN/metrics.json`` stores under ``"calibration"``).

Conventions: ``features`` maps a validation stem to its network input ``(n_features, frames)``
(the power mel for audio); ``events`` maps a stem to ``[(time_s, label)]`` (``None`` or absent:
no timestamps); ``count_windows`` maps a stem to its ``softloc.data.CountWindow`` list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from softloc.config import RunConfig
from softloc.features import onset_strength
from softloc.inference.detector import Detector
from softloc.losses import trusts_timestamps
from softloc.metrics import match_onsets

__all__ = [
    "THRESHOLD_GRID",
    "calibrate",
    "calibration_source",
    "calibrate_from_counts",
    "calibrate_from_timestamps",
    "calibrate_time_offset",
    "onset_alignment_offset",
    "onset_alignment_offsets",
]

#: Thresholds tried by the calibration: 0.10, 0.15, ..., 0.70. (Adding 0.02-0.07 was tried on
#: the piano-loco model of docs/results.md: a little more recall, less precision, no F1 gain.)
THRESHOLD_GRID: tuple[float, ...] = tuple(round(float(x), 2) for x in np.arange(0.10, 0.701, 0.05))
# Matching windows: offsets from pairs within 100 ms, thresholds scored by F1 at +-50 ms.
_OFFSET_SEARCH_S = 0.1
_F1_TOLERANCE_S = 0.05

Event = tuple[float, str]

def calibration_source(config: RunConfig) -> str:
    """``"timestamps"`` or ``"counts"``: which validation labels calibrate the decoder of a run.

    ``inference.calibrate_with`` when it is not ``auto``. ``auto`` is ``counts`` when the
    validation timestamps may be noisy or are not what the run trains on: counts supervision,
    ``supervision.label_noise`` (which moves events but never changes a count), the LoCo/MC
    losses, and SoftLoc with a softness > 0 (the user declares the timestamps uncertain by
    that much); else ``timestamps`` (the frame-wise baselines, SoftLoc at softness 0).

    Example:
        >>> from softloc.config import RunConfig
        >>> calibration_source(RunConfig())  # drums: LoCo from counts
        'counts'
    """
    inf, sup, loss = config.inference, config.supervision, config.loss
    if inf.calibrate_with != "auto":
        return inf.calibrate_with
    if sup.labels == "counts" or sup.label_noise is not None:
        return "counts"
    return "timestamps" if trusts_timestamps(loss.name, loss.softness_ms) else "counts"


def calibrate_time_offset(
    estimates: Sequence[np.ndarray], references: Sequence[np.ndarray], *, search_s: float = 0.1
) -> float:
    """The offset (seconds) to ADD to estimates: minus the median signed error of matched pairs.

    Pairs are matched within ``search_s`` (``softloc.metrics.match_onsets``) per (file, class)
    series; ``estimates[i]`` and ``references[i]`` are times in seconds of the same series.

    Returns:
        the offset; 0.0 when nothing matches.

    Example:
        >>> calibrate_time_offset([np.array([1.02, 2.03])], [np.array([1.0, 2.0])])
        -0.025
    """
    errors = []
    for est, ref in zip(estimates, references, strict=True):
        if len(est) == 0 or len(ref) == 0:
            continue
        pairs = match_onsets(ref, est, tolerance_s=search_s)
        errors.extend(np.asarray(est)[pairs[:, 1]] - np.asarray(ref)[pairs[:, 0]])
    if not errors:
        return 0.0
    return float(-np.median(errors))


def onset_alignment_offset(
    times: Sequence[np.ndarray], strengths: Sequence[np.ndarray], frame_rate: float, *,
    search_s: float = _OFFSET_SEARCH_S, min_events: int = 10,
) -> float | None:
    """The offset (seconds) to ADD to detections so that they sit on the audio's onsets.

    The mean onset strength (``softloc.features.onset_strength``) at ``t + L`` over all
    detections ``t``, for lags ``L`` of whole frames within ``search_s``; the best lag, refined
    between frames by a parabola through the best frame and its neighbours, is the offset. A
    detector that fires ``d`` seconds after each sound start gets ``-d``: the strength peaks
    at the sound starts (its compression was chosen so; ``benchmarks/onset_alignment.py``).
    Detections too close to a file's ends for every lag are left out.

    Args:
        times: per file, detection times in seconds (any classes pooled).
        strengths: per file, the onset strength ``(frames,)`` at ``frame_rate``.
        frame_rate: frames per second of ``strengths``.
        search_s: largest offset considered, in seconds (> 0).
        min_events: fewer usable detections give ``None``.

    Returns:
        the offset in seconds; ``None`` when there are too few detections or the best lag lies
        on the edge of the search (no peak: the detections do not follow the onsets).

    Raises:
        ValueError: ``times`` and ``strengths`` differ in length, a strength is not 1-D, a bad
            ``frame_rate`` or ``search_s``.
    """
    fn = "onset_alignment_offset"
    if len(times) != len(strengths):
        raise ValueError(f"{fn}: `times` has {len(times)} files but `strengths` "
                         f"{len(strengths)}; give one strength per file")
    if not (frame_rate > 0 and np.isfinite(frame_rate)):
        raise ValueError(f"{fn}: `frame_rate` must be a finite number > 0, got {frame_rate!r}")
    if not (search_s > 0 and np.isfinite(search_s)):
        raise ValueError(f"{fn}: `search_s` must be a finite number > 0, got {search_s!r}")
    reach = max(1, int(np.ceil(search_s * frame_rate)))
    lags = np.arange(-reach, reach + 1)
    total = np.zeros(len(lags))
    n_used = 0
    for t, o in zip(times, strengths, strict=True):
        o = np.asarray(o, dtype=np.float64)
        if o.ndim != 1:
            raise ValueError(f"{fn}: each strength must be 1-D (frames,), got shape {o.shape}")
        pos = np.asarray(t, dtype=np.float64) * frame_rate
        pos = pos[(pos - reach >= 0) & (pos + reach <= len(o) - 1)]
        if pos.size == 0:
            continue
        grid = np.arange(len(o))
        total += [np.interp(pos + k, grid, o).sum() for k in lags]
        n_used += pos.size
    if n_used < max(min_events, 1):
        return None
    best = int(np.argmax(total))
    if best in (0, len(lags) - 1):
        return None
    a, b, c = total[best - 1], total[best], total[best + 1]
    curvature = a - 2 * b + c
    step = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
    return float((lags[best] + step) / frame_rate)


def onset_alignment_offsets(
    times: Sequence[Sequence[np.ndarray]], strengths: Sequence[np.ndarray], frame_rate: float,
    *, mode: str = "per-class", min_events: int = 10,
) -> tuple[list[float], float | None]:
    """One offset per class (seconds, to ADD) from :func:`onset_alignment_offset`: the offset
    of all classes' detections pooled, or with ``mode="per-class"`` each class's own where it
    has enough detections and a peak (the pooled one where not). Drum classes fire at
    different latencies (the demo's hi-hats ~20 ms early, its kicks a few ms late): one
    offset cannot serve them all.

    Args:
        times: per file, per class, detection times in seconds (every file: the same classes).
        strengths: per file, the onset strength ``(frames,)`` at ``frame_rate``.
        frame_rate: frames per second of ``strengths``.
        mode: ``"pooled"`` or ``"per-class"``.
        min_events: fewer usable detections (pooled, or of one class) give no offset there.

    Returns:
        ``(offsets, pooled)``: ``offsets`` has one entry per class (0.0 where even the pooled
        offset is None, rounded to 0.1 ms); ``pooled`` is the pooled offset or None.

    Raises:
        ValueError: an unknown ``mode``, files with different numbers of classes, and the
            errors of :func:`onset_alignment_offset`.
    """
    fn = "onset_alignment_offsets"
    if mode not in ("pooled", "per-class"):
        raise ValueError(f"{fn}: `mode` must be 'pooled' or 'per-class', got {mode!r}")
    n_classes = {len(per_file) for per_file in times}
    if len(n_classes) > 1:
        raise ValueError(f"{fn}: every file of `times` must hold the same classes, got "
                         f"{sorted(n_classes)} classes")
    n = n_classes.pop() if n_classes else 0

    def offset(classes: Sequence[int]) -> float | None:
        pooled_times = [np.concatenate([np.asarray(f[c], dtype=np.float64) for c in classes])
                        if classes else np.zeros(0) for f in times]
        return onset_alignment_offset(pooled_times, strengths, frame_rate, min_events=min_events)

    pooled = offset(range(n))
    offsets = [0.0 if pooled is None else round(pooled, 4)] * n
    if mode == "per-class":
        for c in range(n):
            own = offset([c])
            if own is not None:
                offsets[c] = round(own, 4)
    return offsets, pooled


def _onset_offsets(
    det: Detector, probs: Mapping[str, np.ndarray], features: Mapping[str, torch.Tensor],
    signals: Mapping[str, Any],
) -> tuple[list[float], dict[str, Any]]:
    """``inference.align_to_onsets``: class offsets aligning ``det``'s detections with the
    onset strength of the validation audio, and a summary for metrics.json."""
    inf = det.config.inference
    stems = list(probs)
    offsets, pooled = onset_alignment_offsets(
        [_decode(det, probs[s], signals[s]) for s in stems],
        [onset_strength(features[s][None].float())[0].numpy() for s in stems],
        det.input_stage.frame_rate, mode=inf.align_to_onsets, min_events=inf.calibrate_min_events)
    info = {"align_to_onsets": inf.align_to_onsets,
            "onset_offset_s": None if pooled is None else round(pooled, 4),
            "class_offsets_s": dict(zip(det.classes, offsets, strict=True))}
    return offsets, info


def calibrate(
    detector: Detector,
    features: Mapping[str, torch.Tensor],
    *,
    events: Mapping[str, Sequence[Event] | None] | None = None,
    count_windows: Mapping[str, Sequence[Any]] | None = None,
) -> tuple[RunConfig, dict[str, Any]]:
    """Calibrate ``detector``'s decoding on validation data, as its configuration says.

    Args:
        detector: the trained detector; its ``config.inference`` says what to calibrate
            (``calibrate_offset``, ``calibrate_threshold``) and :func:`calibration_source` from
            which labels.
        features: validation stem -> network input ``(n_features, frames)``.
        events: validation stem -> ``[(time_s, label)]`` (timestamps; ``None`` = none).
        count_windows: validation stem -> count windows (``counts.csv``).

    Returns:
        ``(config, info)``: the configuration with the calibrated ``inference`` settings, and a
        summary whose ``"source"`` says what was used (``"none (...)"`` when nothing was).
    """
    config = detector.config
    inf = config.inference
    if not (inf.calibrate_offset or inf.calibrate_threshold):
        return config, {"source": "none (disabled)"}
    events = events or {}
    annotated = {s: list(events[s] or []) for s in features if events.get(s) is not None}
    source = calibration_source(config)
    if source == "counts" or (inf.calibrate_with == "auto" and not annotated):
        return calibrate_from_counts(detector, features, count_windows or {})
    if not annotated:
        return config, {"source": "none (no validation timestamps)"}
    return calibrate_from_timestamps(detector, {s: features[s] for s in annotated}, annotated)


def _signals(det: Detector, features: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """stem -> the input signal the snap searches (``inference.snap_radius_s``), else None."""
    if not det.config.inference.snap_radius_s > 0:
        return dict.fromkeys(features)
    return {s: det.input_stage.signal_of_features(f) for s, f in features.items()}


def _decode(det: Detector, probs: np.ndarray, signal: Any) -> list[np.ndarray]:
    """Per-class event times as ``det`` decodes them, snapped when the run snaps."""
    events = det.events_from_probabilities(probs)
    if signal is not None:
        events = det.input_stage.refine(signal, events, det.config.inference)
    return events.per_class()


def _pooled_f1(
    det: Detector, probs: Mapping[str, np.ndarray], refs: Mapping[str, list[np.ndarray]],
    signals: Mapping[str, Any], *, over_classes: bool = False,
) -> np.ndarray:
    """Per-class F1 at +-50 ms over all files pooled: ``2 tp / (n_est + n_ref)``; with
    ``over_classes`` the F1 of all classes pooled, repeated for every class."""
    n_classes = len(det.classes)
    tp, n_est, n_ref = np.zeros(n_classes), np.zeros(n_classes), np.zeros(n_classes)
    for s, p in probs.items():
        times = [np.clip(t, 0.0, None) for t in _decode(det, p, signals[s])]
        for c in range(n_classes):
            tp[c] += len(match_onsets(refs[s][c], times[c], tolerance_s=_F1_TOLERANCE_S))
            n_est[c] += len(times[c])
            n_ref[c] += len(refs[s][c])
    if over_classes:
        return np.full(n_classes, 2 * tp.sum() / max(n_est.sum() + n_ref.sum(), 1))
    return 2 * tp / np.maximum(n_est + n_ref, 1)


def _class_offsets(
    det: Detector, probs: Mapping[str, np.ndarray], refs: Mapping[str, list[np.ndarray]],
    signals: Mapping[str, Any],
) -> list[float]:
    est = {s: [np.clip(t, 0.0, None) for t in _decode(det, p, signals[s])]
           for s, p in probs.items()}
    return [
        round(calibrate_time_offset([est[s][c] for s in probs], [refs[s][c] for s in probs],
                                    search_s=_OFFSET_SEARCH_S), 4)
        for c in range(len(det.classes))
    ]


def calibrate_from_timestamps(
    detector: Detector,
    features: Mapping[str, torch.Tensor],
    events: Mapping[str, Sequence[Event]],
) -> tuple[RunConfig, dict[str, Any]]:
    """Per-class offsets and thresholds from annotated validation files.

    Offsets first at a low threshold (``min(threshold, 0.2)``: an undertrained class may not
    reach the default), then thresholds (:data:`THRESHOLD_GRID`, best pooled F1 at +-50 ms) with
    those offsets, then the offsets again at the chosen thresholds; with
    ``inference.calibrate_per_class`` off, one threshold, the best F1 of all classes pooled
    (its F1 is then reported for every class). Settings switched off by
    ``inference.calibrate_offset`` / ``calibrate_threshold`` keep their configured values.

    Args:
        detector: the trained detector; calibrated settings already in it are ignored.
        features: stem -> network input ``(n_features, frames)``; every stem must be in
            ``events``.
        events: stem -> ``[(time_s, label)]``.

    Returns:
        ``(config, info)``; ``info`` holds the offsets, thresholds and the per-class F1.
    """
    config = detector.config
    inf = config.inference
    classes = config.classes
    n_classes = len(classes)
    base = detector.with_settings(class_offsets_s=(), class_thresholds=())
    probs = {s: base.probabilities_from_features(f) for s, f in features.items()}
    signals = _signals(base, features)
    refs = {s: [np.array([t for t, lab in events[s] if lab == c]) for c in classes]
            for s in features}
    offsets = [0.0] * n_classes
    if inf.calibrate_offset:
        low = base.with_settings(class_thresholds=[min(inf.threshold, 0.2)] * n_classes)
        offsets = _class_offsets(low, probs, refs, signals)
    thresholds = [inf.threshold] * n_classes
    best_f1 = [float("nan")] * n_classes
    if inf.calibrate_threshold:
        scores = np.stack([
            _pooled_f1(base.with_settings(threshold=thr, class_offsets_s=offsets), probs, refs,
                       signals, over_classes=not inf.calibrate_per_class)
            for thr in THRESHOLD_GRID
        ])  # (grid, class)
        for c in range(n_classes):
            g = int(np.argmax(scores[:, c]))
            thresholds[c], best_f1[c] = THRESHOLD_GRID[g], round(float(scores[g, c]), 4)
        if inf.calibrate_offset:
            offsets = _class_offsets(base.with_settings(class_thresholds=thresholds), probs, refs,
                                     signals)
    new_inf = replace(
        inf,
        class_offsets_s=tuple(offsets) if inf.calibrate_offset else inf.class_offsets_s,
        class_thresholds=tuple(thresholds) if inf.calibrate_threshold else inf.class_thresholds,
    )
    info = {
        "source": f"validation timestamps of {len(features)} files",
        "class_offsets_s": dict(zip(classes, offsets, strict=True)),
        "class_thresholds": dict(zip(classes, thresholds, strict=True)),
        "valid_f1_per_class": dict(zip(classes, best_f1, strict=True)),
    }
    return replace(config, inference=new_inf), info


def calibrate_from_counts(
    detector: Detector,
    features: Mapping[str, torch.Tensor],
    count_windows: Mapping[str, Sequence[Any]],
) -> tuple[RunConfig, dict[str, Any]]:
    """Per-class thresholds from the validation files' count windows (no timestamps).

    For each class, the threshold of :data:`THRESHOLD_GRID` whose detections best reproduce the
    counts: the smallest total ``|detected - counted|`` over the windows (detections at
    ``start_s <= t < end_s``), ties broken towards the configured threshold. A class with fewer
    than ``inference.calibrate_min_events`` counted events takes the threshold that minimises
    the error summed over all classes (the piano-loco model of docs/results.md: 22 of 88 keys
    had fewer than 10 validation notes); with ``inference.calibrate_per_class`` off every class
    takes that pooled threshold. A count says nothing about time: offsets are left as they are,
    unless ``inference.align_to_onsets`` (``pooled`` or ``per-class``; with
    ``calibrate_offset``, audio runs) sets them from the validation audio at the calibrated
    thresholds (:func:`onset_alignment_offset`; a class with too few detections, or whose
    detections show no peak, takes the pooled offset, and none found means 0).

    Args:
        detector: the trained detector; calibrated thresholds already in it are ignored.
        features: stem -> network input ``(n_features, frames)``.
        count_windows: stem -> windows with ``start_s``, ``end_s`` and ``counts`` (label ->
            count; a class missing from a window is not scored there).

    Returns:
        ``(config, info)``; ``info["source"]`` is ``"none (...)"`` when thresholds are not
        calibrated or there are no windows.
    """
    config = detector.config
    inf = config.inference
    windows = [(s, w) for s in features for w in count_windows.get(s, [])]
    if not inf.calibrate_threshold or not windows:
        why = "disabled" if not inf.calibrate_threshold else "no validation counts"
        return config, {"source": f"none ({why})"}
    classes = config.classes
    base = detector.with_settings(class_thresholds=())
    used = sorted({s for s, _ in windows})
    probs = {s: base.probabilities_from_features(features[s]) for s in used}
    signals = _signals(base, {s: features[s] for s in used})
    errors = np.zeros((len(THRESHOLD_GRID), len(classes)))
    n_counted = np.zeros(len(classes))
    for g, thr in enumerate(THRESHOLD_GRID):
        det = base.with_settings(threshold=thr)
        times = {s: _decode(det, probs[s], signals[s]) for s in used}
        for s, w in windows:
            for c, name in enumerate(classes):
                if name not in w.counts:
                    continue
                t = times[s][c]
                found = int(np.count_nonzero((t >= w.start_s) & (t < w.end_s)))
                errors[g, c] += abs(found - int(w.counts[name]))
                if g == 0:
                    n_counted[c] += int(w.counts[name])
    def best_of(err: np.ndarray) -> float:
        best = [THRESHOLD_GRID[g] for g in np.flatnonzero(err == err.min())]
        return min(best, key=lambda x: abs(x - inf.threshold))

    pooled = best_of(errors.sum(1))
    thresholds = [best_of(errors[:, c])
                  if inf.calibrate_per_class and n_counted[c] >= inf.calibrate_min_events
                  else pooled for c in range(len(classes))]
    best_err = [round(float(errors[THRESHOLD_GRID.index(t), c]), 1)
                for c, t in enumerate(thresholds)]
    new_inf = replace(inf, class_thresholds=tuple(thresholds))
    aligned: dict[str, Any] = {}
    if inf.align_to_onsets != "none" and inf.calibrate_offset and base.input_stage.kind == "audio":
        offsets, aligned = _onset_offsets(
            base.with_settings(class_thresholds=thresholds, class_offsets_s=()), probs,
            {s: features[s] for s in used}, signals)
        new_inf = replace(new_inf, class_offsets_s=tuple(offsets))
    info = {
        "source": f"validation counts of {len(windows)} windows in {len(used)} files",
        "class_thresholds": dict(zip(classes, thresholds, strict=True)),
        "valid_count_abs_error": dict(zip(classes, best_err, strict=True)),
        "valid_events_counted": dict(zip(classes, n_counted.tolist(), strict=True)),
        "pooled_threshold": pooled,
        **aligned,
    }
    return replace(config, inference=new_inf), info
