"""Note-level onset metrics of piano transcription: mir_eval ``transcription`` onset-only F1.

A note is correct when an estimated note of the SAME PITCH has its onset within +-50 ms of the
reference onset, each note being used at most once (maximum bipartite matching). This is
``mir_eval.transcription.precision_recall_f1_overlap(..., offset_ratio=None)`` — the "note
onset F1" of Onsets and Frames, LoCo (Table 2) and SoftLoc (piano) — and the matching is
mir_eval's own ``match_notes``: softloc has no matcher of its own.

Conventions (those of ``mir_eval.transcription``):
    * Argument order is ``(reference, estimate)``.
    * Onsets are in SECONDS (finite, >= 0, below 30000 s); pitches are MIDI note numbers
      0..127 (ints, or their decimal strings such as ``"60"``, the class labels of a softloc
      piano dataset). They are converted to Hz for mir_eval, and mir_eval's pitch tolerance of
      50 cents then means "the same MIDI number".
    * Onset distances are rounded to 4 decimals and compared with ``<=`` (inclusive), as
      mir_eval does; offsets are ignored (the fake intervals ``[onset, onset + 1]`` given to
      mir_eval play no part).
    * Matching never crosses pitches, so it is done per pitch (the same number of matches as one
      matching over all notes, and the per-pitch table comes for free).

Empty-input policy (``empty_policy``), as :mod:`softloc.metrics.onsets`: a 0/0 ratio (no
estimate, no reference, or neither) is NaN and left out of means (``"skip"``, default), 0
(``"zero"``: what ``mir_eval.transcription`` returns for a piece without reference or without
estimated notes) or 1 (``"one"``). Pooled counts are unaffected; every result reports ``n_ref``
and ``n_est``.

Aggregation in :func:`evaluate`:
    * ``overall.precision/recall/f1``: GLOBAL (micro), TP/FP/FN pooled over every piece and pitch.
      For a softloc piano dataset this equals ``softloc evaluate``'s ``overall.f1`` (labels =
      pitches), up to mir_eval's 4-decimal rounding of onset distances.
    * ``overall.*_file_mean``: each piece scored as ``mir_eval.transcription`` scores it, then the
      unweighted mean over pieces: the protocol of the LoCo/SoftLoc papers (mean over the 60 MAPS
      test pieces).
    * ``per_pitch``: pooled P/R/F1 of each pitch (the table :func:`format_pitch_table` prints).

Metrics:
    * :func:`validate`: checks and converts one piece's notes.
    * :func:`note_onset_scores`: P/R/F1 and counts of one piece.
    * :func:`evaluate`: every metric for a dataset, overall, per pitch and per piece.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import mir_eval
import numpy as np

__all__ = [
    "DEFAULT_ONSET_TOLERANCE_S",
    "evaluate",
    "format_pitch_table",
    "midi_to_hz",
    "note_name",
    "note_onset_scores",
    "validate",
]

EmptyPolicy = Literal["skip", "zero", "one"]

#: Onset tolerance of mir_eval.transcription and the papers: +-50 ms, inclusive.
DEFAULT_ONSET_TOLERANCE_S = 0.05
_MAX_TIME_S = 30000.0
_EMPTY_VALUE = {"skip": math.nan, "zero": 0.0, "one": 1.0}
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def midi_to_hz(pitch: Any) -> np.ndarray:
    """Frequency in Hz of MIDI pitches: ``440 * 2 ** ((pitch - 69) / 12)`` (numpy, any shape)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number: ``60`` -> ``"C4"``, ``21`` -> ``"A0"``."""
    return f"{_NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_tolerance(fn: str, tol: object) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `onset_tolerance_s` must be a real number, got "
                        f"{type(tol).__name__}")
    value = float(tol)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{fn}: `onset_tolerance_s` must be finite and >= 0 (seconds), "
                         f"got {value}")
    return value


def _check_policy(fn: str, policy: object) -> str:
    if policy not in _EMPTY_VALUE:
        raise ValueError(f"{fn}: `empty_policy` must be one of {tuple(_EMPTY_VALUE)}, "
                         f"got {policy!r}")
    return str(policy)


def _pitch(fn: str, where: str, value: object) -> int:
    """A MIDI number from an int or its decimal string; ValueError/TypeError naming ``where``."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise ValueError(f"{fn}: {where}: pitch label must be a MIDI number like '60', "
                             f"got {value!r}")
        p = int(text)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        p = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        p = int(value)
    else:
        raise TypeError(f"{fn}: {where}: pitch must be a MIDI number (int or str), got "
                        f"{value!r}")
    if not 0 <= p <= 127:
        raise ValueError(f"{fn}: {where}: pitch must be a MIDI number in 0..127, got {value!r}")
    return p


def _onsets(fn: str, name: str, values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64) if not hasattr(values, "detach") else \
        np.asarray(values.detach().cpu().numpy(), dtype=np.float64)  # type: ignore[union-attr]
    if arr.ndim != 1:
        raise ValueError(f"{fn}: `{name}` must be 1-D onset times in seconds, got shape "
                         f"{tuple(arr.shape)}")
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > _MAX_TIME_S):
        raise ValueError(f"{fn}: `{name}` must be finite, >= 0 and <= {_MAX_TIME_S:g} seconds "
                         f"(not frames or milliseconds), got min {arr.min():g}, max "
                         f"{arr.max():g}")
    return arr


def _pitches(fn: str, name: str, values: object, n: int) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        seq: Sequence[Any] = values.tolist()
    else:
        seq = list(values)  # type: ignore[call-overload]
    out = np.array([_pitch(fn, f"{name}[{i}]", v) for i, v in enumerate(seq)], dtype=np.int64)
    if out.shape != (n,):
        raise ValueError(f"{fn}: `{name}` must have one pitch per onset ({n}), got {out.size}")
    return out


def validate(
    ref_onsets_s: Sequence[float] | np.ndarray,
    ref_pitches: Sequence[int | str] | np.ndarray,
    est_onsets_s: Sequence[float] | np.ndarray,
    est_pitches: Sequence[int | str] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check one piece's notes and return ``(ref_onsets_s, ref_pitches, est_onsets_s,
    est_pitches)`` as float64 / int64 arrays (order kept).

    Raises:
        TypeError: a pitch that is neither an int nor a decimal string.
        ValueError: onsets not 1-D, not finite, negative or above 30000 s; a pitch outside
            0..127; onsets and pitches of different lengths.
    """
    fn = "validate"
    ro = _onsets(fn, "ref_onsets_s", ref_onsets_s)
    eo = _onsets(fn, "est_onsets_s", est_onsets_s)
    return ro, _pitches(fn, "ref_pitches", ref_pitches, ro.size), eo, \
        _pitches(fn, "est_pitches", est_pitches, eo.size)


# --------------------------------------------------------------------------------------------
# One piece
# --------------------------------------------------------------------------------------------


def _match_count(ref_on: np.ndarray, est_on: np.ndarray, pitch: int, tol: float) -> int:
    """mir_eval's onset-only matches between same-pitch notes."""
    if ref_on.size == 0 or est_on.size == 0:
        return 0
    hz = float(midi_to_hz(pitch))
    matching = mir_eval.transcription.match_notes(
        np.stack([ref_on, ref_on + 1.0], axis=1), np.full(ref_on.size, hz),
        np.stack([est_on, est_on + 1.0], axis=1), np.full(est_on.size, hz),
        onset_tolerance=tol, pitch_tolerance=50.0, offset_ratio=None)
    return len(matching)


def _per_pitch_counts(ro, rp, eo, ep, tol) -> dict[int, tuple[int, int, int]]:
    """pitch -> (tp, n_ref, n_est) over the pitches present in the piece."""
    out = {}
    for p in np.union1d(rp, ep).tolist():
        r, e = ro[rp == p], eo[ep == p]
        out[int(p)] = (_match_count(r, e, int(p), tol), int(r.size), int(e.size))
    return out


def _prf(tp: int, n_ref: int, n_est: int, policy: str) -> tuple[float, float, float]:
    empty = _EMPTY_VALUE[policy]
    precision = tp / n_est if n_est else empty
    recall = tp / n_ref if n_ref else empty
    # 2PR/(P+R) written on counts: defined whenever any note exists, 0 for one-sided empties
    f1 = 2 * tp / (n_ref + n_est) if n_ref + n_est else empty
    return precision, recall, f1


def _scores(tp: int, n_ref: int, n_est: int, policy: str) -> dict[str, Any]:
    precision, recall, f1 = _prf(tp, n_ref, n_est, policy)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": n_est - tp,
            "fn": n_ref - tp, "n_ref": n_ref, "n_est": n_est}


def note_onset_scores(
    ref_onsets_s: Sequence[float] | np.ndarray,
    ref_pitches: Sequence[int | str] | np.ndarray,
    est_onsets_s: Sequence[float] | np.ndarray,
    est_pitches: Sequence[int | str] | np.ndarray,
    *,
    onset_tolerance_s: float = DEFAULT_ONSET_TOLERANCE_S,
    empty_policy: EmptyPolicy = "skip",
) -> dict[str, Any]:
    """Note-onset precision, recall and F1 of one piece (mir_eval transcription, onsets only).

    Args:
        ref_onsets_s: reference note onsets in seconds, shape ``(n_ref,)``, any order.
        ref_pitches: their MIDI pitches (ints or decimal strings), shape ``(n_ref,)``.
        est_onsets_s: estimated note onsets in seconds, shape ``(n_est,)``.
        est_pitches: their MIDI pitches, shape ``(n_est,)``.
        onset_tolerance_s: matching half-window in seconds (inclusive, after mir_eval's rounding
            of distances to 4 decimals). Default 0.05.
        empty_policy: value of 0/0 ratios: ``"skip"`` (NaN, default), ``"zero"`` (0: exactly
            ``mir_eval.transcription``), ``"one"`` (1). F1 is 0 when only one side is empty.

    Returns:
        dict with ``precision = tp / n_est``, ``recall = tp / n_ref``,
        ``f1 = 2 tp / (n_ref + n_est)`` (= 2PR/(P+R)), ``tp``, ``fp``, ``fn``, ``n_ref``,
        ``n_est``.

    Raises:
        TypeError, ValueError: see :func:`validate`; a bad tolerance or policy.

    Example:
        >>> s = note_onset_scores([1.0, 1.0, 2.0], [60, 64, 60],
        ...                       [1.03, 1.02, 2.2], ["60", "65", "60"])
        >>> s["tp"], s["fp"], s["fn"], round(s["f1"], 4)
        (1, 2, 2, 0.3333)
    """
    fn = "note_onset_scores"
    tol = _check_tolerance(fn, onset_tolerance_s)
    policy = _check_policy(fn, empty_policy)
    ro, rp, eo, ep = validate(ref_onsets_s, ref_pitches, est_onsets_s, est_pitches)
    tp = sum(c[0] for c in _per_pitch_counts(ro, rp, eo, ep, tol).values())
    return _scores(tp, int(ro.size), int(eo.size), policy)


# --------------------------------------------------------------------------------------------
# A dataset
# --------------------------------------------------------------------------------------------


def _parse_dataset(fn: str, name: str, data: object) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not isinstance(data, Mapping):
        raise TypeError(f"{fn}: `{name}` must be a mapping piece_id -> [(onset_s, pitch), ...], "
                        f"got {type(data).__name__}")
    out = {}
    for piece, notes in data.items():
        if not isinstance(piece, str):
            raise TypeError(f"{fn}: `{name}` keys must be str piece ids, got {piece!r}")
        if isinstance(notes, (str, bytes)) or not isinstance(notes, Iterable):
            raise TypeError(f"{fn}: {name}[{piece!r}] must be a list of (onset_s, pitch) pairs, "
                            f"got {type(notes).__name__}")
        onsets, pitches = [], []
        for i, item in enumerate(notes):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{fn}: {name}[{piece!r}][{i}]: expected an (onset_s, pitch) "
                                f"pair, got {item!r}")
            t, p = item
            if isinstance(t, (bool, str, bytes)) or not isinstance(
                    t, (int, float, np.integer, np.floating)):
                raise TypeError(f"{fn}: {name}[{piece!r}][{i}]: onset must be a number of "
                                f"seconds, got {t!r}")
            if not math.isfinite(float(t)) or not 0 <= float(t) <= _MAX_TIME_S:
                raise ValueError(f"{fn}: {name}[{piece!r}][{i}]: onset must be finite, >= 0 and "
                                 f"<= {_MAX_TIME_S:g} seconds, got {t!r}")
            onsets.append(float(t))
            pitches.append(_pitch(fn, f"{name}[{piece!r}][{i}]", p))
        out[piece] = (np.asarray(onsets, dtype=np.float64), np.asarray(pitches, dtype=np.int64))
    return out


def _nanmean(values: Iterable[float]) -> float:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else math.nan


def evaluate(
    reference: Mapping[str, Iterable[tuple[float, int | str]]],
    estimate: Mapping[str, Iterable[tuple[float, int | str]]],
    *,
    onset_tolerance_s: float = DEFAULT_ONSET_TOLERANCE_S,
    pitches: Sequence[int] | None = None,
    empty_policy: EmptyPolicy = "skip",
) -> dict[str, Any]:
    """Note-onset metrics of a dataset: pooled, mean over pieces, per pitch, per piece.

    Args:
        reference: ``{piece_id: [(onset_s, pitch), ...]}``; pitches are MIDI numbers, as ints or
            decimal strings (a softloc piano dataset's ``(time_s, label)`` events fit as they
            are).
        estimate: the same for the transcription, with exactly the same piece ids (a piece with
            no detected note maps to ``[]``).
        onset_tolerance_s: matching half-window in seconds (inclusive). Default 0.05.
        pitches: the pitches of the ``per_pitch`` table, in this order. Default: every pitch that
            occurs in either side, ascending. Notes of other pitches still count in ``overall``.
        empty_policy: ``"skip"`` (default), ``"zero"`` (mir_eval) or ``"one"``; see the module
            docstring.

    Returns:
        ``{"settings": {"onset_tolerance_s", "empty_policy", "n_pieces"},
        "overall": {"precision", "recall", "f1", "tp", "fp", "fn", "n_ref", "n_est",
        "precision_file_mean", "recall_file_mean", "f1_file_mean", "n_files_scored"},
        "per_pitch": {"<pitch>": {"precision", "recall", "f1", "tp", "fp", "fn", "n_ref",
        "n_est"}}, "per_file": {piece_id: {same keys}}}``. ``per_pitch`` keys are the pitch
        numbers as strings (JSON-ready).

    Raises:
        TypeError: malformed mappings or pairs (the message names the piece and note index).
        ValueError: bad times or pitches, different piece ids, bad options.

    Example:
        >>> ref = {"a": [(1.0, "60"), (2.0, "62")], "b": [(0.5, "21")]}
        >>> est = {"a": [(1.02, "60"), (2.0, "61")], "b": []}
        >>> r = evaluate(ref, est)
        >>> round(r["overall"]["f1"], 4), r["per_pitch"]["60"]["f1"], r["overall"]["f1_file_mean"]
        (0.4, 1.0, 0.25)
    """
    fn = "evaluate"
    tol = _check_tolerance(fn, onset_tolerance_s)
    policy = _check_policy(fn, empty_policy)
    ref = _parse_dataset(fn, "reference", reference)
    est = _parse_dataset(fn, "estimate", estimate)
    if set(ref) != set(est):
        missing, extra = sorted(set(ref) - set(est)), sorted(set(est) - set(ref))
        raise ValueError(f"{fn}: `reference` and `estimate` must have the same piece ids; "
                         f"missing from estimate: {missing[:5]}, not in reference: {extra[:5]} "
                         "(map pieces without detected notes to [])")
    pooled: dict[int, list[int]] = {}
    per_file = {}
    for piece in ref:
        counts = _per_pitch_counts(*ref[piece], *est[piece], tol)
        for p, (tp, nr, ne) in counts.items():
            acc = pooled.setdefault(p, [0, 0, 0])
            acc[0] += tp
            acc[1] += nr
            acc[2] += ne
        per_file[piece] = _scores(sum(c[0] for c in counts.values()), int(ref[piece][0].size),
                                  int(est[piece][0].size), policy)
    if pitches is None:
        table = sorted(pooled)
    else:
        table = [_pitch(fn, f"pitches[{i}]", p) for i, p in enumerate(pitches)]
        if len(set(table)) != len(table):
            raise ValueError(f"{fn}: `pitches` has duplicates: {list(pitches)}")
    per_pitch = {str(p): _scores(*pooled.get(p, (0, 0, 0)), policy) for p in table}
    overall = _scores(sum(v[0] for v in pooled.values()), sum(v[1] for v in pooled.values()),
                      sum(v[2] for v in pooled.values()), policy)
    f1s = [s["f1"] for s in per_file.values()]
    overall.update({
        "precision_file_mean": _nanmean(s["precision"] for s in per_file.values()),
        "recall_file_mean": _nanmean(s["recall"] for s in per_file.values()),
        "f1_file_mean": _nanmean(f1s),
        "n_files_scored": sum(not math.isnan(f) for f in f1s),
    })
    return {"settings": {"onset_tolerance_s": tol, "empty_policy": policy,
                         "n_pieces": len(ref)},
            "overall": overall, "per_pitch": per_pitch, "per_file": per_file}


def format_pitch_table(results: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`evaluate`'s results: one row per pitch, then overall.

    Raises:
        ValueError: ``results`` lacks ``overall`` / ``per_pitch``.
    """
    if not isinstance(results, Mapping) or "overall" not in results or "per_pitch" not in results:
        raise ValueError("format_pitch_table: `results` must be the dict returned by "
                         "softloc.metrics.notes.evaluate")

    def num(v: float) -> str:
        return "-" if v is None or math.isnan(v) else f"{v:.3f}"

    header = ["pitch", "note", "F1", "P", "R", "TP", "FP", "FN"]
    rows = [[p, note_name(int(p)), num(g["f1"]), num(g["precision"]), num(g["recall"]),
             str(g["tp"]), str(g["fp"]), str(g["fn"])] for p, g in results["per_pitch"].items()]
    o = results["overall"]
    total = ["all", "", num(o["f1"]), num(o["precision"]), num(o["recall"]), str(o["tp"]),
             str(o["fp"]), str(o["fn"])]
    widths = [max(len(r[k]) for r in [header, *rows, total]) for k in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    out = [line(header), rule, *(line(r) for r in rows), rule, line(total)]
    if "f1_file_mean" in o:
        out.append(f"note-onset F1 mean over {o['n_files_scored']} pieces: {num(o['f1_file_mean'])}"
                   " (the papers' number); F1/P/R above: pooled over pieces")
    return "\n".join(out)
