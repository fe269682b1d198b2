"""Label files: strong-label text annotations, counts.csv, split files, softness tables."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from softloc._io import atomic_write_text
from softloc.data.formats._common import (
    AUDIO_SUFFIXES,
    DatasetError,
    Event,
    _check_label,
    _clean_events,
    _csv_rows,
    _err,
    _parse_time,
    _read_text,
    _stem_of,
)

#: Header of counts.csv.
COUNTS_HEADER = ("file", "start", "end", "label", "count")
#: Most events of one class in one counts.csv window that the parser accepts.
MAX_COUNT = 1_000_000


# ----------------------------------------------------------------------------- annotations


def read_annotation_file(path: str | os.PathLike) -> list[Event]:
    """Parse a strong-label text file: one ``<onset seconds>\t<label>`` per line.

    Tabs or runs of spaces separate the fields; blank lines and lines starting with ``#`` are
    skipped; a third field is a score (a number, as ``softloc detect`` writes) and is not
    returned. Exact duplicate lines are dropped with a :class:`DatasetWarning`.

    Returns:
        list of ``(onset_s, label)`` sorted by time (stable).

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a malformed line, text that is not UTF-8, or two labels that differ only
            by case, as ``path:line: ...``.
    """
    path = Path(path)
    text = _read_text(path, "annotation file", "lines '<onset seconds>\t<label>'")
    events: list[tuple[float, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise _err(path, lineno, f"expected 2 fields '<onset seconds>\t<label>' (and "
                                     f"optionally a score), found {len(parts)}, got {raw!r}")
        if len(parts) == 3:
            _parse_score(parts[2], path, lineno)
        events.append((_parse_time(parts[0], path, lineno, "onset time"), parts[1], lineno))
    return _clean_events(path, events)


def _parse_score(text: str, path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _err(path, line, f"the third field is not a score; expected '<onset seconds>\t"
                               f"<label>[\t<score>]' with a finite number, got {text!r}")
    return value


def write_annotation_file(path: str | os.PathLike, events: Iterable[Event], *,
                          overwrite: bool = False) -> None:
    """Write ``(onset_s, label)`` events as ``'<onset>\\t<label>'`` lines (sorted, atomic).

    Raises:
        ValueError: a negative / non-finite time, or a label that is empty or holds whitespace.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    lines = []
    for t, label in sorted(events, key=lambda e: e[0]):
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"write_annotation_file: onset times must be finite and >= 0, got {t}")
        _check_label("write_annotation_file", label)
        lines.append(f"{t:.6f}\t{label}\n")
    atomic_write_text(path, "".join(lines), overwrite=overwrite)


# ----------------------------------------------------------------------------- counts

@dataclass(frozen=True)
class CountWindow:
    """Weak labels of one window: ``counts[label]`` events in ``[start_s, end_s)`` of ``stem``.

    ``line`` is the counts.csv line of the window's first row (0 when not read from a file).
    """

    stem: str
    start_s: float
    end_s: float
    counts: Mapping[str, int]
    line: int = 0


def read_counts_csv(path: str | os.PathLike) -> list[tuple[int, str, float, float, str, int]]:
    """Parse counts.csv rows without cross-checks: ``(line, file, start, end, label, count)``.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: wrong header, wrong number of fields, bad number, ``end <= start``,
            a count that is not a non-negative integer, or an empty file / label.
    """
    path = Path(path)
    text = _read_text(path, "counts file", f"'{','.join(COUNTS_HEADER)}' rows")
    rows = []
    header_seen = False
    for lineno, fields_ in _csv_rows(path, text):
        if not fields_ or all(not f.strip() for f in fields_):
            continue
        fields_ = [f.strip() for f in fields_]
        if not header_seen:
            if tuple(f.lower() for f in fields_) != COUNTS_HEADER:
                raise _err(path, lineno, f"bad header; expected '{','.join(COUNTS_HEADER)}', "
                                         f"got {','.join(fields_)!r}")
            header_seen = True
            continue
        if len(fields_) != len(COUNTS_HEADER):
            raise _err(path, lineno, f"expected {len(COUNTS_HEADER)} comma-separated fields "
                                     f"'{','.join(COUNTS_HEADER)}', found {len(fields_)}, "
                                     f"got {','.join(fields_)!r}")
        file_, start_txt, end_txt, label, count_txt = fields_
        if not file_:
            raise _err(path, lineno, "empty `file`; expected an audio stem")
        if not label:
            raise _err(path, lineno, "empty `label`; expected a class name")
        start = _parse_time(start_txt, path, lineno, "`start`")
        end = _parse_time(end_txt, path, lineno, "`end`")
        if end <= start:
            raise _err(path, lineno, f"`end` must be greater than `start`; got start={start_txt}, "
                                     f"end={end_txt}")
        if not re.fullmatch(r"[0-9]+", count_txt):
            raise _err(path, lineno, f"`count` must be a non-negative integer, got {count_txt!r}")
        count = int(count_txt)
        if count > MAX_COUNT:
            raise _err(path, lineno, f"`count` {count_txt} is implausibly large; expected at "
                                     f"most {MAX_COUNT:,} events of one class in one window")
        rows.append((lineno, file_, start, end, label, count))
    if not header_seen:
        raise _err(path, 1, f"empty file; expected the header '{','.join(COUNTS_HEADER)}'")
    return rows


def write_counts_csv(path: str | os.PathLike, windows: Iterable[CountWindow], *,
                     classes: Sequence[str], overwrite: bool = False) -> None:
    """Write count windows as counts.csv, one row per (window, class) in ``classes`` order.

    A class missing from a window's ``counts`` is written as 0 (the writer's caller knows all
    events of the window). Atomic (temp file + rename).
    """
    for c in classes:
        _check_label("write_counts_csv", c)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COUNTS_HEADER)
    for w in windows:
        for c in classes:
            writer.writerow([w.stem, _fmt_s(w.start_s), _fmt_s(w.end_s), c,
                             int(w.counts.get(c, 0))])
    atomic_write_text(path, out.getvalue(), overwrite=overwrite)


def _fmt_s(t: float) -> str:
    return f"{t:.6f}".rstrip("0").rstrip(".") if t != int(t) else f"{int(t)}"


# ----------------------------------------------------------------------------- splits

def read_split_file(path: str | os.PathLike) -> list[tuple[int, str]]:
    """Parse a split file: one stem per line (blank lines and ``#`` comments skipped).

    Returns:
        list of ``(line, stem)``.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a stem listed twice, a line with whitespace inside, text that is not
            UTF-8.
    """
    path = Path(path)
    out: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    text = _read_text(path, "split file", "one stem per line")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stem = raw.strip()
        if not stem or stem.startswith("#"):
            continue
        if any(c.isspace() for c in stem):
            raise _err(path, lineno, f"expected one stem per line, got {raw!r}")
        for suffix in AUDIO_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        if stem in seen:
            raise _err(path, lineno, f"stem {stem!r} is listed twice (first on line "
                                     f"{seen[stem]}); expected each stem once")
        seen[stem] = lineno
        out.append((lineno, stem))
    return out


def write_split_file(path: str | os.PathLike, stems: Iterable[str], *,
                     overwrite: bool = False) -> None:
    """Write one stem per line (atomic)."""
    atomic_write_text(path, "".join(f"{s}\n" for s in stems), overwrite=overwrite)


# ----------------------------------------------------------------------------- softness tables

_SOFTNESS_HEADER = ["file", "softness_ms"]
_MS = re.compile(r"^\s*(inf|[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms)?\s*$", re.I)


def parse_softness_ms(text: str) -> float | None:
    """A softness in milliseconds from ``"120"``, ``"120ms"``, ``"1e2"`` or ``"inf"``; ``None``
    when ``text`` is not one (or is negative)."""
    m = _MS.match(text)
    if m is None:
        return None
    value = float(m.group(1))
    return value if value >= 0 else None


def read_softness_csv(path: str | os.PathLike, *, stems: Sequence[str] | None = None
                      ) -> dict[str, float]:
    """Read a per-file softness table (header ``file,softness_ms``) -> ``{stem: softness_ms}``.

    ``softness_ms`` is a number of milliseconds ``>= 0`` or ``inf`` (counts only); blank lines
    and lines starting with ``#`` are skipped.

    Args:
        path: the CSV file.
        stems: known stems; a row naming another file is an error.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a bad header, a malformed or negative softness, an unknown or repeated
            file, as ``path:line: ...``.
    """
    path = Path(path)
    text = _read_text(path, "softness table", "rows 'file,softness_ms'")
    known = set(stems) if stems is not None else None
    out: dict[str, float] = {}
    lines: dict[str, int] = {}
    header_seen = False
    for lineno, row in _csv_rows(path, text):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if not header_seen:
            if cells != _SOFTNESS_HEADER:
                raise DatasetError(f"{path}:{lineno}: expected the header 'file,softness_ms', "
                                   f"got {','.join(row)!r}")
            header_seen = True
            continue
        if len(cells) != 2:
            raise DatasetError(f"{path}:{lineno}: expected 2 fields 'file,softness_ms', got "
                               f"{','.join(row)!r}")
        stem = _stem_of(cells[0])
        if not stem:
            raise DatasetError(f"{path}:{lineno}: empty file name; expected 'file,softness_ms'")
        soft = parse_softness_ms(cells[1])
        if soft is None:
            raise DatasetError(f"{path}:{lineno}: bad softness {cells[1]!r}; expected "
                               "milliseconds >= 0 or 'inf'")
        if known is not None and stem not in known:
            raise DatasetError(f"{path}:{lineno}: unknown file {cells[0]!r}; expected the stem "
                               "of a file in audio/")
        if stem in out:
            raise DatasetError(f"{path}:{lineno}: {stem!r} is listed twice (first on line "
                               f"{lines[stem]}); expected one row per file")
        out[stem] = soft
        lines[stem] = lineno
    if not header_seen:
        raise DatasetError(f"{path}:1: empty file; expected the header 'file,softness_ms'")
    return out
