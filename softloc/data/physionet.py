"""PhysioNet's WFDB format: records and annotations in, the generic dataset layout out.

:func:`read_wfdb` reads a record (``<rec>.hea`` + signal files; any number of channels, any
sampling rate) with the ``wfdb`` package; :func:`read_wfdb_events` turns an annotation file
(``<rec>.atr`` ...) into ``(seconds, label)`` beat events; :func:`import_wfdb` converts every
record of a folder into the generic layout::

    ROOT/signals/<rec>.npy, <rec>.json   float32 (channel, time) + {"rate_hz", "channels", "units"}
    ROOT/annotations/<rec>.txt           '<seconds>\t<label>' per beat
    ROOT/counts.csv                      beats per class in back-to-back windows of window_s
    ROOT/subjects.csv                    'stem,subject' (each record its own subject by default)
    ROOT/splits/train.txt, valid.txt, test.txt

Conventions:
    * A beat at sample ``i`` of a record at ``fs`` Hz lies at ``i / fs`` seconds.
    * Labels: ``beat`` for every symbol of :data:`BEAT_SYMBOLS` (the MIT-BIH beat codes
      ``N L R B A a J S V r F e j n E / f Q ?``), or the symbol itself with
      ``labels_from_symbols``; the non-beat codes of :data:`NON_BEAT_SYMBOLS` (rhythm ``+``,
      noise ``~``, artefact ``|`` ...) are skipped; any other symbol is an error.
    * A count window is half-open ``[start, end)`` and lies wholly inside its record; the seconds
      after the last whole window carry no count (as :func:`softloc.data.layout.count_windows`).

Errors name the record and the field: ``100.hea: bad header ...``, ``100.atr: annotation file not
found``, ``100.atr: annotation 17 (sample 1234): unknown symbol 'Z' in field 'symbol'``,
``100.atr: rate mismatch in field 'fs' ...``.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc.data.layout import (
    count_windows,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)
from softloc.data.signals import Signal, SignalError, _same_rate, write_signal
from softloc.data.subjects import subject_splits, write_subjects_csv

__all__ = [
    "BEAT_SYMBOLS",
    "NON_BEAT_SYMBOLS",
    "ImportSummary",
    "import_wfdb",
    "list_wfdb_records",
    "read_wfdb",
    "read_wfdb_events",
]

#: MIT-BIH / WFDB beat annotation symbols: normal, bundle branch blocks, atrial / aberrated /
#: nodal / supraventricular premature, ventricular, R-on-T, fusion, escapes, paced, fusion of
#: paced and normal, unclassifiable.
BEAT_SYMBOLS: tuple[str, ...] = ("N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e",
                                 "j", "n", "E", "/", "f", "Q", "?")
#: WFDB non-beat annotation symbols (rhythm changes, noise, artefacts, waves, comments); skipped.
NON_BEAT_SYMBOLS: tuple[str, ...] = ("[", "!", "]", "x", "(", ")", "p", "t", "u", "`", "'",
                                     "^", "|", "~", "+", "s", "T", "*", "D", "=", '"', "@")


# ----------------------------------------------------------------------------- reading

@contextlib.contextmanager
def _quiet_wfdb():
    """Silence the pandas deprecation warnings the ``wfdb`` package raises on every read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*inplace keyword", category=Warning)
        yield


def _record_base(record: str | os.PathLike) -> Path:
    """``dir/100``, ``dir/100.hea`` or ``dir/100.dat`` -> ``dir/100``."""
    p = Path(record)
    if p.suffix.lower() in (".hea", ".dat"):
        p = p.with_suffix("")
    return p


def read_wfdb(record: str | os.PathLike, *, channels: Sequence[str] | None = None) -> Signal:
    """Read a WFDB record (header + signal files) in physical units.

    Args:
        record: the record path without extension (``dir/100``), or its ``.hea`` file.
        channels: channel names to keep, in that order (default: all).

    Returns:
        a :class:`Signal` with the header's ``fs``, signal names and units.

    Raises:
        FileNotFoundError: no header file ``<record>.hea`` or a missing signal file.
        SignalError: a header the ``wfdb`` package cannot parse (``<record>.hea: bad header``),
            an unknown channel name, or a record without samples.
    """
    import wfdb  # local: optional at import time of softloc.data

    base = _record_base(record)
    hea = base.with_suffix(".hea")
    if not hea.is_file():
        raise FileNotFoundError(f"{hea}: WFDB header file not found (record {base.name!r})")
    try:
        with _quiet_wfdb():
            header = wfdb.rdheader(str(base))
    except FileNotFoundError:
        raise
    except Exception as err:  # wfdb raises HeaderSyntaxError, ValueError, IndexError ...
        raise SignalError(f"{hea}: bad header ({type(err).__name__}: {err}); expected a WFDB "
                          "header '<record> <n_sig> <fs> <n_samples>' and one line per "
                          "signal") from None
    names = list(header.sig_name or [])
    if channels is not None:
        missing = [c for c in channels if c not in names]
        if missing:
            raise SignalError(f"{hea}: no channel(s) {missing} in field 'sig_name'; expected "
                              f"names from {names}")
    try:
        with _quiet_wfdb():
            rec = wfdb.rdrecord(str(base), channel_names=list(channels) if channels else None)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{hea}: a signal file of record {base.name!r} is missing "
                                f"({err})") from None
    except Exception as err:
        raise SignalError(f"{hea}: cannot read the signals of record {base.name!r} "
                          f"({type(err).__name__}: {err})") from None
    if rec.p_signal is None or rec.p_signal.shape[0] == 0:
        raise SignalError(f"{hea}: record {base.name!r} holds no samples (field 'sig_len')")
    if not rec.fs or rec.fs <= 0:
        raise SignalError(f"{hea}: field 'fs' must be a sampling frequency > 0, got {rec.fs!r}")
    data = np.ascontiguousarray(rec.p_signal.T, dtype=np.float32)  # (time, ch) -> (ch, time)
    return Signal(data, float(rec.fs), tuple(rec.sig_name), tuple(u or "" for u in rec.units),
                  str(base))


def read_wfdb_events(record: str | os.PathLike, *, annotation: str = "atr",
                     labels_from_symbols: bool = False,
                     beat_symbols: Sequence[str] = BEAT_SYMBOLS,
                     beat_label: str = "beat") -> list[tuple[float, str]]:
    """Beat events of a WFDB annotation file, as ``(seconds, label)`` sorted by time.

    Every annotation whose symbol is in ``beat_symbols`` is an event, labelled ``beat_label`` or,
    with ``labels_from_symbols``, its own symbol (``N``, ``V``, ``/`` ...). Non-beat annotations
    (:data:`NON_BEAT_SYMBOLS`: rhythm changes ``+``, noise ``~``, artefacts ``|`` ...) are
    skipped. The time of annotation ``i`` is ``sample[i] / fs`` with the header's ``fs``.

    Args:
        record: the record path without extension (its header is read for ``fs`` and length).
        annotation: the annotation file extension (default ``"atr"``, the reference beats).
        labels_from_symbols: keep beat classes instead of one ``beat_label``.
        beat_symbols: which symbols are beats (default :data:`BEAT_SYMBOLS`).
        beat_label: the label of every beat when ``labels_from_symbols`` is False.

    Raises:
        FileNotFoundError: no header, or no annotation file ``<record>.<annotation>``.
        SignalError: an unknown symbol (neither a beat nor a known non-beat symbol), an
            annotation sampling frequency that differs from the header's (field ``fs``: rate
            mismatch), or an annotation outside the record.
    """
    import wfdb

    fn = "read_wfdb_events"
    if not isinstance(annotation, str) or not annotation or "." in annotation:
        raise ValueError(f"{fn}: `annotation` must be a file extension like 'atr', "
                         f"got {annotation!r}")
    base = _record_base(record)
    hea = base.with_suffix(".hea")
    ann_path = base.parent / f"{base.name}.{annotation}"
    if not hea.is_file():
        raise FileNotFoundError(f"{hea}: WFDB header file not found (record {base.name!r})")
    if not ann_path.is_file():
        raise FileNotFoundError(f"{ann_path}: annotation file not found (record {base.name!r}, "
                                f"annotation {annotation!r})")
    try:
        with _quiet_wfdb():
            header = wfdb.rdheader(str(base))
    except Exception as err:
        raise SignalError(f"{hea}: bad header ({type(err).__name__}: {err})") from None
    try:
        with _quiet_wfdb():
            ann = wfdb.rdann(str(base), annotation)
    except Exception as err:
        raise SignalError(f"{ann_path}: cannot parse the annotation file "
                          f"({type(err).__name__}: {err})") from None
    fs = float(header.fs)
    if ann.fs is not None and not _same_rate(float(ann.fs), fs):
        raise SignalError(f"{ann_path}: rate mismatch in field 'fs': the annotations are at "
                          f"{float(ann.fs):g} Hz but header {hea.name} says {fs:g} Hz")
    beats = set(beat_symbols)
    known = beats | set(NON_BEAT_SYMBOLS)
    n_samples = header.sig_len
    events: list[tuple[float, str]] = []
    for i, (sample, symbol) in enumerate(zip(ann.sample, ann.symbol, strict=True)):
        if symbol not in known:
            raise SignalError(f"{ann_path}: annotation {i} (sample {int(sample)}): unknown symbol "
                              f"{symbol!r} in field 'symbol'; expected a beat symbol "
                              f"{''.join(sorted(beats))} or a non-beat symbol "
                              f"{''.join(NON_BEAT_SYMBOLS)}")
        if symbol not in beats:
            continue
        if sample < 0 or (n_samples and sample >= n_samples):
            raise SignalError(f"{ann_path}: annotation {i}: field 'sample' = {int(sample)} lies "
                              f"outside the record (0..{n_samples - 1} samples)")
        label = symbol if labels_from_symbols else beat_label
        events.append((float(sample) / fs, label))
    events.sort(key=lambda e: e[0])
    return events


# ----------------------------------------------------------------------------- import

def list_wfdb_records(src: str | os.PathLike) -> list[str]:
    """Record names of a WFDB folder: the ``RECORDS`` file if present, else every ``*.hea`` stem.

    Raises:
        FileNotFoundError: ``src`` is not a folder.
        SignalError: no record found, or a ``RECORDS`` line naming a record without a header.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: WFDB folder not found")
    listing = src / "RECORDS"
    if listing.is_file():
        names = []
        for lineno, raw in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
            name = raw.strip()
            if not name or name.startswith("#"):
                continue
            if not (src / f"{name}.hea").is_file():
                raise SignalError(f"{listing}:{lineno}: record {name!r} has no header "
                                  f"{name}.hea in {src}")
            names.append(name)
    else:
        names = sorted(p.stem for p in src.glob("*.hea") if not p.name.startswith("."))
    if not names:
        raise SignalError(f"{src}: no WFDB records; expected <record>.hea files (or a RECORDS "
                          "file)")
    return names


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_wfdb` wrote.

    Attributes:
        root: the dataset folder.
        records: the imported record names (= stems), sorted.
        classes: the event classes, sorted.
        rates_hz: record -> sampling rate.
        n_events: record -> number of events written.
        n_windows: record -> number of count windows written.
        splits: ``{"train": [...], "valid": [...], "test": [...]}``.
    """

    root: Path
    records: tuple[str, ...]
    classes: tuple[str, ...]
    rates_hz: Mapping[str, float]
    n_events: Mapping[str, int]
    n_windows: Mapping[str, int]
    splits: Mapping[str, list[str]]


def _check_import_args(fn: str, window_s: object, split: object, seed: object,
                       split_fractions: Sequence[float]) -> None:
    if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) \
            or not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"{fn}: `window_s` must be a number of seconds > 0, got {window_s!r}")
    if split not in (None, "test"):
        raise ValueError(f"{fn}: `split` must be None (a seeded split by record) or 'test' (every "
                         f"record in the test split), got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{fn}: `seed` must be an int, got {type(seed).__name__}")
    if len(split_fractions) != 3 or any(f < 0 for f in split_fractions) \
            or not math.isclose(sum(split_fractions), 1.0):
        raise ValueError(f"{fn}: `split_fractions` must be 3 non-negative numbers summing to 1, "
                         f"got {tuple(split_fractions)}")


def import_wfdb(src: str | os.PathLike, out: str | os.PathLike, *, annotation: str = "atr",
                window_s: float = 10.0, split: str | None = None,
                labels_from_symbols: bool = False, seed: int = 0,
                split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                records: Sequence[str] | None = None, channels: Sequence[str] | None = None,
                subjects: Mapping[str, str] | None = None,
                overwrite: bool = False) -> ImportSummary:
    """Convert the WFDB records of ``src`` into the generic dataset layout at ``out``.

    Every record is checked (header, annotation file, symbols, rates) before anything is
    written, so a bad record leaves ``out`` untouched.

    Args:
        src: folder of WFDB records (``<rec>.hea``, signal files, ``<rec>.<annotation>``).
        out: the dataset folder to write (created if missing).
        annotation: annotation file extension holding the events (default ``"atr"``).
        window_s: length of the back-to-back count windows of ``counts.csv``, in seconds.
        split: ``None``: a seeded split by subject (``split_fractions``, ``seed``); ``"test"``:
            every record in ``splits/test.txt`` (an external test set).
        labels_from_symbols: one class per beat symbol (``N``, ``V`` ...) instead of ``beat``.
        seed: seed of the split.
        split_fractions: train / valid / test fractions of the subjects (default 70/15/15).
        records: the records to import (default :func:`list_wfdb_records`).
        channels: channel names to keep (default all); every record must have them.
        subjects: record -> subject for databases where one person gave several records
            (default: each record its own subject).
        overwrite: replace existing files in ``out``.

    Returns:
        an :class:`ImportSummary`.

    Raises:
        FileNotFoundError: ``src`` missing, a header or annotation file missing.
        SignalError: bad header, unknown symbol, rate mismatch, missing channel (see
            :func:`read_wfdb`, :func:`read_wfdb_events`).
        FileExistsError: a target file exists and ``overwrite`` is False.
        ValueError, TypeError: bad arguments.
    """
    fn = "import_wfdb"
    _check_import_args(fn, window_s, split, seed, split_fractions)
    src, out = Path(src), Path(out)
    names = sorted(records) if records is not None else list_wfdb_records(src)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{fn}: `records` must be distinct record names, got {names}")
    subj = {r: r for r in names}
    if subjects is not None:
        missing = sorted(set(names) - set(subjects))
        if missing:
            raise ValueError(f"{fn}: `subjects` has no subject for records {missing[:5]}")
        subj = {r: subjects[r] for r in names}

    # Pass 1: every header and annotation file, before anything is written.
    events = {r: read_wfdb_events(src / r, annotation=annotation,
                                  labels_from_symbols=labels_from_symbols) for r in names}
    classes = (tuple(sorted({lab for ev in events.values() for _, lab in ev}))
               if labels_from_symbols else ("beat",))
    if not classes:
        raise SignalError(f"{src}: no beat annotations in any '.{annotation}' file")
    if not overwrite:
        for target in ([out / "signals" / f"{r}.npy" for r in names]
                       + [out / "annotations" / f"{r}.txt" for r in names]
                       + [out / "counts.csv", out / "subjects.csv"]
                       + [out / "splits" / f"{k}.txt" for k in ("train", "valid", "test")]):
            if target.exists():
                raise FileExistsError(f"{target}: already exists; not overwriting it (pass "
                                      "overwrite=True)")

    # Pass 2: signals and events, one record in memory at a time.
    windows, rates, n_windows = [], {}, {}
    for r in names:
        sig: Signal = read_wfdb(src / r, channels=channels)
        rates[r] = sig.rate_hz
        write_signal(out / "signals" / r, sig, overwrite=overwrite)
        write_annotation_file(out / "annotations" / f"{r}.txt", events[r], overwrite=overwrite)
        ws = count_windows(r, events[r], sig.duration_s, window_s=float(window_s),
                           hop_s=float(window_s), classes=classes)
        if sig.duration_s < window_s:
            ws = []  # count_windows gives a short file one window; import writes whole ones only
        windows.extend(ws)
        n_windows[r] = len(ws)
    write_counts_csv(out / "counts.csv", windows, classes=classes, overwrite=overwrite)
    write_subjects_csv(out / "subjects.csv", subj, overwrite=overwrite)
    if split == "test":
        splits = {"train": [], "valid": [], "test": list(names)}
    else:
        splits = subject_splits(subj, fractions=tuple(split_fractions), seed=seed)
    for name, stems in splits.items():
        write_split_file(out / "splits" / f"{name}.txt", stems, overwrite=overwrite)
    return ImportSummary(out, tuple(names), classes, rates,
                         {r: len(events[r]) for r in names}, n_windows, splits)
