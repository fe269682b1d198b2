"""Onset (event-time) metrics: precision, recall, F1, timing error and count accuracy.

An estimated event is correct when it lies within a tolerance of a reference event of the same
class, each reference and estimate being used at most once (a maximum bipartite matching,
computed by ``mir_eval.util.match_events``; softloc has no matcher of its own).

Conventions:
    * Argument order is ``(reference, estimate)``, as in mir_eval.
    * Times are in SECONDS: finite, >= 0 and below 30000 s (a larger value almost always means
      frames or milliseconds were passed). Order does not matter; returned indices refer to the
      arrays as given.
    * The tolerance is +-``tolerance_s`` around each reference, INCLUSIVE (``|est - ref| <= tol``),
      default 0.05 s, i.e. "+-50 ms" as in mir_eval and the ADT literature (madmom defaults to
      +-25 ms). Distances are not rounded (``mir_eval.transcription`` rounds them to 4 decimals
      first, which only matters for pairs exactly on the boundary).
    * Class labels are strings (``"KD"``, ``"60"``). Events of different classes never match.
    * Timing errors are ``estimate - reference`` in seconds over the matched pairs (positive =
      late); ``std`` is the population standard deviation (``ddof=0``), the spread LoCo §6.2
      reports (4.35 ms for hi-hats). The matching maximises the number of pairs, not their
      closeness, so these are mir_eval's pairs.

Empty-clip policy (``empty_policy``):
    Precision ``tp / n_est``, recall ``tp / n_ref`` and F1 ``2 tp / (2 tp + fp + fn)`` are 0/0
    when there is nothing to divide by (no estimate; no reference; neither). Peers disagree on
    such clips: mir_eval scores them 0, madmom and ADTOF score them 1. Every 0/0 ratio takes
    the policy's value:

    * ``"skip"`` (default): undefined (NaN in Python, ``null`` in JSON) and left out of every
      mean. A file/class with neither references nor estimates therefore affects no score;
      a file with references but no estimates has F1 = recall = 0 and no precision. Neither
      convention's arbitrary 0 or 1 can then move an average.
    * ``"zero"``: 0, which reproduces ``mir_eval.onset.f_measure`` exactly.
    * ``"one"``: 1, which reproduces madmom's ``OnsetEvaluation`` / ADTOF.

    The policy only matters for per-file (and per-class) MEANS and for globally empty classes;
    pooled counts are unaffected because an empty clip adds nothing to TP, FP or FN. Every
    result also reports ``n_ref`` and ``n_est``, so empties stay visible. No warning is raised for
    empty inputs: per-class, per-file empties are routine in multi-class data.

Aggregation in :func:`evaluate` (keys of each group):
    * ``precision``, ``recall``, ``f1``: GLOBAL (micro), from TP/FP/FN pooled over all files
      (and, in ``overall``, all classes). ADTOF and madmom report it.
    * ``precision_file_mean``, ``recall_file_mean``, ``f1_file_mean``: score each file (in
      ``overall`` pooling the file's classes, as ``mir_eval.transcription`` scores a piece), then
      take the unweighted mean over files: the protocol of the LoCo/SoftLoc papers (piano: mean
      over the 60 MAPS test pieces; drums: per class, mean over files). Note the mean F1 is not
      the harmonic mean of the mean P and mean R.
    * ``overall`` also has class means (macro, as DCASE): ``f1_class_mean`` (mean of the
      classes' global F1) and ``f1_class_file_mean`` (mean of the classes' ``f1_file_mean``,
      the drum papers' single number).
    * ``count_exact_rate``, ``count_mae``: counting accuracy of the per-file, per-class number of
      events (LoCo's weak label), over ALL file x class pairs (predicting zero events where there
      are none is a correct count, whatever ``empty_policy``).

Metrics:
    * :func:`match_onsets`: matched index pairs.
    * :func:`onset_scores`: P/R/F1, counts and timing error of one event list.
    * :func:`count_metrics`: exact-count rate and mean absolute count error.
    * :func:`evaluate`: everything above, per class and overall, for a dataset of labelled
      events; :func:`format_table` prints it and :func:`results_to_json` serialises it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import mir_eval
import numpy as np

from softloc._checks import check_choice, check_real
from softloc.metrics.counts import count_metrics

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "MAX_TIME_S",
    "evaluate",
    "format_table",
    "match_onsets",
    "onset_scores",
    "results_to_json",
    "validate",
]

EmptyPolicy = Literal["skip", "zero", "one"]

#: Default matching tolerance, +-50 ms (inclusive), as mir_eval.onset and the ADT literature.
DEFAULT_TOLERANCE_S = 0.05
#: Times above this are rejected as "probably not seconds" (mir_eval's onset MAX_TIME).
MAX_TIME_S = 30000.0

_EMPTY_POLICIES = ("skip", "zero", "one")
_EMPTY_VALUE = {"skip": math.nan, "zero": 0.0, "one": 1.0}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _event_times(fn: str, name: str, times: object) -> np.ndarray:
    """1-D, finite, non-negative times in seconds below MAX_TIME_S -> float64 array."""
    if hasattr(times, "detach"):  # a torch tensor
        times = times.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        arr = np.asarray(times)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: `{name}` must be a 1-D array of times in seconds ({err})") from err
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        if arr.size == 0 and arr.dtype == object:
            arr = arr.astype(np.float64)
        else:
            raise TypeError(
                f"{fn}: `{name}` must hold real numbers (times in seconds), got dtype {arr.dtype}"
            )
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 1:
        raise ValueError(
            f"{fn}: `{name}` must be a 1-D array of event times, got shape {tuple(arr.shape)}"
        )
    if arr.size:
        if not np.isfinite(arr).all():
            raise ValueError(f"{fn}: `{name}` must be finite, found NaN or inf")
        if arr.min() < 0:
            raise ValueError(
                f"{fn}: `{name}` must be >= 0 seconds, found {arr.min():g} (a negative time "
                "offset can push early detections below 0: clip with np.maximum(times, 0))"
            )
        if arr.max() > MAX_TIME_S:
            raise ValueError(
                f"{fn}: `{name}` has an event at {arr.max():g} > {MAX_TIME_S:g}; "
                "times must be in seconds (not frames or milliseconds)"
            )
    return arr


def validate(reference_s: object, estimate_s: object) -> tuple[np.ndarray, np.ndarray]:
    """Check two event-time lists and return them as float64 arrays (order kept).

    Like ``mir_eval.onset.validate`` but stricter (non-finite and negative times are errors) and
    quieter (empty lists are legal and not warned about: see the empty-clip policy in the module
    docstring). Unsorted input is accepted.

    Args:
        reference_s: reference event times in seconds, shape ``(n_ref,)``.
        estimate_s: estimated event times in seconds, shape ``(n_est,)``.

    Returns:
        ``(reference_s, estimate_s)`` as 1-D float64 arrays.

    Raises:
        TypeError: non-numeric input.
        ValueError: not 1-D, NaN/inf, negative, or above 30000 s (probably not seconds).
    """
    return (
        _event_times("validate", "reference_s", reference_s),
        _event_times("validate", "estimate_s", estimate_s),
    )


# --------------------------------------------------------------------------------------------
# One event list
# --------------------------------------------------------------------------------------------


def _ratio(num: float, den: float, policy: str) -> float:
    return num / den if den > 0 else _EMPTY_VALUE[policy]


def _prf(tp: int, fp: int, fn: int, policy: str) -> tuple[float, float, float]:
    precision = _ratio(tp, tp + fp, policy)
    recall = _ratio(tp, tp + fn, policy)
    # 2PR/(P+R) written on counts: defined whenever anything exists, 0 for one-sided empties
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, policy)
    return precision, recall, f1


def _nanmean(values: Iterable[float]) -> float:
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _error_stats(errors: np.ndarray) -> tuple[float, float]:
    if errors.size == 0:
        return math.nan, math.nan
    return float(errors.mean()), float(errors.std())


def _match(reference: np.ndarray, estimate: np.ndarray, tolerance_s: float) -> np.ndarray:
    if reference.size == 0 or estimate.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = mir_eval.util.match_events(reference, estimate, tolerance_s)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def match_onsets(
    reference_s: Sequence[float] | np.ndarray,
    estimate_s: Sequence[float] | np.ndarray,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> np.ndarray:
    """Maximum matching of estimated to reference events within +-``tolerance_s``.

    A thin, validated wrapper over ``mir_eval.util.match_events`` (Hopcroft-Karp maximum
    bipartite matching; ``|est - ref| <= tolerance_s`` inclusive).

    Args:
        reference_s: reference event times in seconds, shape ``(n_ref,)``, any order.
        estimate_s: estimated event times in seconds, shape ``(n_est,)``, any order.
        tolerance_s: half-width of the matching window in seconds, >= 0. Default 0.05.

    Returns:
        int64 array ``(n_matched, 2)`` of ``(reference_index, estimate_index)`` rows, sorted by
        reference index, indices into the arrays as given. Empty input gives ``(0, 2)``.

    Raises:
        TypeError, ValueError: see :func:`validate`; bad ``tolerance_s``.

    Example:
        >>> match_onsets([1.0, 2.0], [1.04, 2.06, 3.0]).tolist()
        [[0, 0]]
    """
    fn = "match_onsets"
    ref = _event_times(fn, "reference_s", reference_s)
    est = _event_times(fn, "estimate_s", estimate_s)
    tol = check_real(fn, "tolerance_s", tolerance_s, minimum=0.0, unit=" seconds")
    return _match(ref, est, tol)


def onset_scores(
    reference_s: Sequence[float] | np.ndarray,
    estimate_s: Sequence[float] | np.ndarray,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    empty_policy: EmptyPolicy = "skip",
) -> dict[str, float | int]:
    """Precision, recall, F1, counts and timing error of one list of event times.

    Args:
        reference_s: reference event times in seconds, shape ``(n_ref,)``, any order.
        estimate_s: estimated event times in seconds, shape ``(n_est,)``, any order.
        tolerance_s: matching half-window in seconds (inclusive). Default 0.05.
        empty_policy: value of 0/0 ratios: ``"skip"`` -> NaN (default), ``"zero"`` -> 0
            (mir_eval), ``"one"`` -> 1 (madmom); see the module docstring.

    Returns:
        dict with ``precision = tp / n_est``, ``recall = tp / n_ref``,
        ``f1 = 2 tp / (2 tp + fp + fn)`` (= 2PR/(P+R)), ``tp``, ``fp = n_est - tp``,
        ``fn = n_ref - tp``, ``n_ref``, ``n_est``, ``time_error_mean_s`` and
        ``time_error_std_s`` (estimate - reference over matched pairs, ddof 0; NaN without
        matches).

    Raises:
        TypeError, ValueError: see :func:`validate`; bad ``tolerance_s`` or ``empty_policy``.

    Example:
        >>> s = onset_scores([1.0, 2.0], [1.04, 2.06, 3.0])
        >>> s["tp"], s["fp"], s["fn"], round(s["f1"], 4)
        (1, 2, 1, 0.4)
    """
    fn = "onset_scores"
    ref = _event_times(fn, "reference_s", reference_s)
    est = _event_times(fn, "estimate_s", estimate_s)
    tol = check_real(fn, "tolerance_s", tolerance_s, minimum=0.0, unit=" seconds")
    policy = check_choice(fn, "empty_policy", empty_policy, _EMPTY_POLICIES)
    pairs = _match(ref, est, tol)
    tp = int(pairs.shape[0])
    precision, recall, f1 = _prf(tp, est.size - tp, ref.size - tp, policy)
    err_mean, err_std = _error_stats(est[pairs[:, 1]] - ref[pairs[:, 0]])
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": int(est.size - tp),
        "fn": int(ref.size - tp),
        "n_ref": int(ref.size),
        "n_est": int(est.size),
        "time_error_mean_s": err_mean,
        "time_error_std_s": err_std,
    }


# --------------------------------------------------------------------------------------------
# Datasets of labelled events
# --------------------------------------------------------------------------------------------


def _parse_dataset(fn: str, name: str, data: object) -> dict[str, dict[str, list[float]]]:
    """``{file_id: [(time_s, label), ...]}`` -> ``{file_id: {label: [times]}}`` with checks."""
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{fn}: `{name}` must be a mapping file_id -> [(time_s, label), ...], got "
            f"{type(data).__name__}"
        )
    parsed: dict[str, dict[str, list[float]]] = {}
    for file_id, events in data.items():
        if not isinstance(file_id, str):
            raise TypeError(
                f"{fn}: `{name}` keys must be str file ids, got {type(file_id).__name__} "
                f"({file_id!r})"
            )
        if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
            raise TypeError(
                f"{fn}: {name}[{file_id!r}] must be a list of (time_s, label) pairs, got "
                f"{type(events).__name__}"
            )
        per_label: dict[str, list[float]] = {}
        for i, item in enumerate(events):
            ok = isinstance(item, (tuple, list)) and len(item) == 2
            if ok:
                time_s, label = item
                ok = isinstance(label, str)
            if not ok:
                raise TypeError(
                    f"{fn}: {name}[{file_id!r}][{i}]: expected a (time_s, label) pair with a "
                    f"str label, got {item!r}"
                )
            try:
                if isinstance(time_s, (bool, str, bytes)):
                    raise TypeError("not a number")
                t = float(time_s)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"{fn}: {name}[{file_id!r}][{i}]: time must be a number of seconds, "
                    f"got {time_s!r}"
                ) from err
            if not math.isfinite(t) or t < 0 or t > MAX_TIME_S:
                raise ValueError(
                    f"{fn}: {name}[{file_id!r}][{i}]: time must be finite, >= 0 and <= "
                    f"{MAX_TIME_S:g} seconds, got {t!r} (clip negative times; times must be "
                    "seconds, not frames or milliseconds)"
                )
            per_label.setdefault(label, []).append(t)
        parsed[file_id] = per_label
    return parsed


def _group_scores(
    tp: int, fp: int, fn: int, policy: str, errors: list[np.ndarray]
) -> dict[str, Any]:
    precision, recall, f1 = _prf(tp, fp, fn, policy)
    err_mean, err_std = _error_stats(np.concatenate(errors) if errors else np.zeros(0))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "n_ref": tp + fn,
        "n_est": tp + fp,
        "time_error_mean_s": err_mean,
        "time_error_std_s": err_std,
    }


def evaluate(
    reference: Mapping[str, Iterable[tuple[float, str]]],
    estimate: Mapping[str, Iterable[tuple[float, str]]],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    classes: Sequence[str] | None = None,
    empty_policy: EmptyPolicy = "skip",
) -> dict[str, Any]:
    """Every onset metric of a labelled dataset: global, per-file mean, per class, counts.

    Args:
        reference: ``{file_id: [(time_s, label), ...]}`` ground truth; file ids and labels are
            str (events in any order).
        estimate: the same for the detections, with exactly the same file ids (a file with no
            detections maps to ``[]``). :meth:`softloc.decode.Events.labelled` builds one
            file's list.
        tolerance_s: matching half-window in seconds (inclusive). Default 0.05 (+-50 ms).
        classes: labels to report, in this order. Default: the sorted union of all labels seen.
            Every event's label must be among them (map or filter labels first).
        empty_policy: value of 0/0 ratios, ``"skip"`` (NaN, left out of means; default),
            ``"zero"`` (mir_eval) or ``"one"`` (madmom/ADTOF); see the module docstring.

    Returns:
        A dict (JSON-ready through :func:`results_to_json`)::

            {"settings": {"tolerance_s", "empty_policy", "classes", "n_files"},
             "overall":   {<group keys>, "precision_class_mean", "recall_class_mean",
                           "f1_class_mean", "f1_class_file_mean"},
             "per_class": {label: {<group keys>}},
             "per_file":  {file_id: {"precision", "recall", "f1", "tp", "fp", "fn",
                                     "n_ref", "n_est"}}}

        with group keys ``precision``, ``recall``, ``f1`` (global: pooled TP/FP/FN), ``tp``,
        ``fp``, ``fn``, ``n_ref``, ``n_est``, ``time_error_mean_s``, ``time_error_std_s``,
        ``precision_file_mean``, ``recall_file_mean``, ``f1_file_mean``, ``n_files_scored``
        (files entering ``f1_file_mean``), ``count_exact_rate``, ``count_mae``, ``n_counts``.
        ``per_file`` pools the file's classes. Undefined values are NaN.

    Raises:
        TypeError: malformed mappings, pairs, labels or file ids (the message names the file
            and the event index).
        ValueError: bad times, different file ids in ``reference`` and ``estimate``, a label
            outside ``classes``, duplicate ``classes``, bad ``tolerance_s`` / ``empty_policy``.

    Example:
        >>> ref = {"a": [(1.0, "KD"), (2.0, "SD")], "b": [(0.5, "KD")]}
        >>> est = {"a": [(1.02, "KD"), (2.5, "SD")], "b": []}
        >>> r = evaluate(ref, est)
        >>> r["overall"]["f1"], r["per_class"]["KD"]["recall"], r["per_class"]["SD"]["f1"]
        (0.4, 0.5, 0.0)
    """
    fn = "evaluate"
    tol = check_real(fn, "tolerance_s", tolerance_s, minimum=0.0, unit=" seconds")
    policy = check_choice(fn, "empty_policy", empty_policy, _EMPTY_POLICIES)
    ref_data = _parse_dataset(fn, "reference", reference)
    est_data = _parse_dataset(fn, "estimate", estimate)

    missing = sorted(set(ref_data) - set(est_data))
    extra = sorted(set(est_data) - set(ref_data))
    if missing or extra:
        raise ValueError(
            f"{fn}: `reference` and `estimate` must have the same file ids; missing from "
            f"estimate: {missing[:5]}{' ...' if len(missing) > 5 else ''}, not in reference: "
            f"{extra[:5]}{' ...' if len(extra) > 5 else ''} (map files without detections to [])"
        )
    seen = sorted({lab for d in (ref_data, est_data) for f in d.values() for lab in f})
    if classes is None:
        labels = seen
    else:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"{fn}: `classes` must be a sequence of str labels, got {classes!r}")
        labels = list(classes)
        if len(set(labels)) != len(labels):
            raise ValueError(f"{fn}: `classes` has duplicates: {labels}")
        unknown = sorted(set(seen) - set(labels))
        if unknown:
            raise ValueError(
                f"{fn}: events carry labels {unknown} that are not in `classes`={labels} "
                "(map or filter the labels first)"
            )
    file_ids = list(ref_data)

    # counts[f, c] = (tp, n_ref, n_est); errors[c] = list of per-file error arrays
    n_files, n_classes = len(file_ids), len(labels)
    tp = np.zeros((n_files, n_classes), dtype=np.int64)
    n_ref = np.zeros((n_files, n_classes), dtype=np.int64)
    n_est = np.zeros((n_files, n_classes), dtype=np.int64)
    errors: list[list[np.ndarray]] = [[] for _ in labels]
    for i, file_id in enumerate(file_ids):
        for j, label in enumerate(labels):
            ref = np.asarray(ref_data[file_id].get(label, []), dtype=np.float64)
            est = np.asarray(est_data[file_id].get(label, []), dtype=np.float64)
            pairs = _match(ref, est, tol)
            tp[i, j], n_ref[i, j], n_est[i, j] = pairs.shape[0], ref.size, est.size
            if pairs.shape[0]:
                errors[j].append(est[pairs[:, 1]] - ref[pairs[:, 0]])
    fp, fn_ = n_est - tp, n_ref - tp

    def file_means(tps: np.ndarray, fps: np.ndarray, fns: np.ndarray) -> dict[str, Any]:
        scores = [
            _prf(int(a), int(b), int(c), policy) for a, b, c in zip(tps, fps, fns, strict=True)
        ]
        f1s = [s[2] for s in scores]
        return {
            "precision_file_mean": _nanmean(s[0] for s in scores),
            "recall_file_mean": _nanmean(s[1] for s in scores),
            "f1_file_mean": _nanmean(f1s),
            "n_files_scored": int(sum(not math.isnan(f) for f in f1s)),
        }

    per_class: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(labels):
        group = _group_scores(
            int(tp[:, j].sum()), int(fp[:, j].sum()), int(fn_[:, j].sum()), policy, errors[j]
        )
        group.update(file_means(tp[:, j], fp[:, j], fn_[:, j]))
        group.update(count_metrics(n_ref[:, j], n_est[:, j]))
        per_class[label] = group

    overall = _group_scores(
        int(tp.sum()), int(fp.sum()), int(fn_.sum()), policy, [e for es in errors for e in es]
    )
    overall.update(file_means(tp.sum(axis=1), fp.sum(axis=1), fn_.sum(axis=1)))
    overall.update(count_metrics(n_ref.ravel(), n_est.ravel()))
    overall["precision_class_mean"] = _nanmean(g["precision"] for g in per_class.values())
    overall["recall_class_mean"] = _nanmean(g["recall"] for g in per_class.values())
    overall["f1_class_mean"] = _nanmean(g["f1"] for g in per_class.values())
    overall["f1_class_file_mean"] = _nanmean(g["f1_file_mean"] for g in per_class.values())

    per_file: dict[str, dict[str, Any]] = {}
    for i, file_id in enumerate(file_ids):
        t, p, n = int(tp[i].sum()), int(fp[i].sum()), int(fn_[i].sum())
        precision, recall, f1 = _prf(t, p, n, policy)
        per_file[file_id] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": t,
            "fp": p,
            "fn": n,
            "n_ref": t + n,
            "n_est": t + p,
        }

    return {
        "settings": {
            "tolerance_s": tol,
            "empty_policy": policy,
            "classes": labels,
            "n_files": n_files,
        },
        "overall": overall,
        "per_class": per_class,
        "per_file": per_file,
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def results_to_json(results: Mapping[str, Any]) -> str:
    """:func:`evaluate`'s dict -> strict JSON (NaN -> ``null``), indented, key order kept."""
    return json.dumps(_nan_to_none(dict(results)), indent=2, allow_nan=False)


def format_table(results: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`evaluate`'s results: one row per class, then overall.

    Columns: global F1/P/R, per-file mean F1, TP/FP/FN, timing error (estimate - reference,
    mean and std in ms) and count accuracy. Undefined values print as ``-``.

    Raises:
        ValueError: ``results`` lacks ``overall`` / ``per_class`` (not from :func:`evaluate`).
    """
    if not isinstance(results, Mapping) or "overall" not in results or "per_class" not in results:
        raise ValueError(
            "format_table: `results` must be the dict returned by softloc.metrics.evaluate "
            "(with 'overall' and 'per_class')"
        )

    def num(value: float, scale: float = 1.0, digits: int = 3) -> str:
        return "-" if value is None or math.isnan(value) else f"{value * scale:.{digits}f}"

    header = ["class", "F1", "P", "R", "F1 file-mean", "TP", "FP", "FN",
              "dt mean ms", "dt std ms", "count exact", "count MAE"]  # fmt: skip
    rows = []
    groups = list(results["per_class"].items()) + [("overall", results["overall"])]
    for label, g in groups:
        rows.append([
            str(label), num(g["f1"]), num(g["precision"]), num(g["recall"]),
            num(g["f1_file_mean"]), str(g["tp"]), str(g["fp"]), str(g["fn"]),
            num(g["time_error_mean_s"], 1000.0, 1), num(g["time_error_std_s"], 1000.0, 1),
            num(g["count_exact_rate"]), num(g["count_mae"]),
        ])  # fmt: skip
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    settings = results.get("settings", {})
    lines = []
    if settings:
        lines.append(
            f"tolerance +-{settings['tolerance_s'] * 1000:g} ms, empty_policy="
            f"{settings['empty_policy']}, {settings['n_files']} files"
        )
    lines += [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in rows[:-1]]
    if len(rows) > 1:
        lines.append("  ".join("-" * w for w in widths))
    lines.append(line(rows[-1]))
    lines.append(
        "F1/P/R: global (pooled TP/FP/FN); F1 file-mean: mean over files; "
        "dt = estimate - reference over matched pairs"
    )
    return "\n".join(lines)
