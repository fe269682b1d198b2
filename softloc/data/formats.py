"""Every file format softloc reads or writes: annotations, counts, splits, softness tables, events.

Readers return plain Python data and report malformed input as
``path:line: what is wrong; expected ...; got '...'`` (a :class:`DatasetError`); writers are atomic
(``softloc._io``: a unique temp file in the target folder, renamed into place, the user's umask
kept) and refuse to replace a file unless asked.

* Text annotations (ENST-Drums, MDB-Drums, madmom, RBMA13): ``<onset seconds> <label>`` per line,
  tab or spaces, ``#`` comments (:func:`read_annotation_file`, :func:`write_annotation_file`).
  ENST labels (``bd``, ``sd``, ``chh``, ``ohh`` ...) map to KD / SD / HH with
  :data:`ENST_LABEL_MAP`.
* IDMT-SMT-Drums XML: ``<event><onsetSec>..</onsetSec><instrument>KD|SD|HH</instrument></event>``
  (:func:`read_idmt_xml`).
* MIDI (E-GMD, Slakh, ADTOF, any DAW export): notes of drum tracks, General-MIDI percussion
  pitches mapped with :data:`GM_DRUM_MAP` (:func:`read_midi_drums`, via pretty_midi).
* Weak labels ``counts.csv`` (``file,start,end,label,count``; :func:`read_counts_csv`,
  :func:`write_counts_csv`), split files (one stem per line; :func:`read_split_file`,
  :func:`write_split_file`), per-file softness tables (``file,softness_ms``;
  :func:`read_softness_csv`).
* Detections ``[(time_s, label, score)]`` as TSV (the annotation format), JSON or MIDI
  (:func:`write_events`).

Conventions: times in seconds from the start of the file; events come back sorted by time;
class names are case-sensitive strings without whitespace; a stem is a file name without its
extension. This module never imports ``softloc.data.layout`` (the layout builds on it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import xml.parsers.expat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._io import atomic_write_text

__all__ = [
    "AUDIO_SUFFIXES",
    "COUNTS_HEADER",
    "CountWindow",
    "DatasetError",
    "ENST_LABEL_MAP",
    "EVENT_FORMATS",
    "GM_DRUM_MAP",
    "GM_DRUM_PITCHES",
    "MDB_LABEL_MAP",
    "RBMA_LABEL_MAP",
    "parse_softness_ms",
    "read_annotation_file",
    "read_counts_csv",
    "read_events_any",
    "read_idmt_xml",
    "read_midi_drums",
    "read_softness_csv",
    "read_split_file",
    "write_annotation_file",
    "write_counts_csv",
    "write_events",
    "write_split_file",
]

#: Audio file suffixes of the dataset layout (also stripped from stems in counts.csv / splits).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
#: Header of counts.csv.
COUNTS_HEADER = ("file", "start", "end", "label", "count")
#: Output formats of :func:`write_events` and their file suffixes.
EVENT_FORMATS = {"tsv": ".txt", "json": ".json", "midi": ".mid"}

Event = tuple[float, str]

#: ENST-Drums annotation labels -> KD / SD / HH (toms, cymbals, sticks and others unmapped).
ENST_LABEL_MAP: dict[str, str] = {
    "bd": "KD",
    "sd": "SD", "sd-": "SD", "rs": "SD", "cs": "SD", "sweep": "SD",
    "chh": "HH", "ohh": "HH",
}
#: MDB-Drums class-level labels -> KD / SD / HH.
MDB_LABEL_MAP: dict[str, str] = {"KD": "KD", "SD": "SD", "HH": "HH"}
#: RBMA13 numeric labels -> KD / SD / HH.
RBMA_LABEL_MAP: dict[str, str] = {"0": "KD", "1": "SD", "2": "HH"}

# The General-MIDI drum map, once: class -> (the pitch written for it, every pitch read as it).
# Kicks 35-36; snares, side stick and claps 37-40; closed, pedal and open hi-hat 42, 44, 46.
_GM_DRUMS: dict[str, tuple[int, tuple[int, ...]]] = {
    "KD": (36, (35, 36)),
    "SD": (38, (37, 38, 39, 40)),
    "HH": (42, (42, 44, 46)),
}
#: General-MIDI percussion pitch -> KD / SD / HH (read). Other pitches are not labelled.
GM_DRUM_MAP: dict[int, str] = {p: c for c, (_, pitches) in _GM_DRUMS.items() for p in pitches}
#: KD / SD / HH -> the General-MIDI pitch written for it (channel 10).
GM_DRUM_PITCHES: dict[str, int] = {c: pitch for c, (pitch, _) in _GM_DRUMS.items()}


class DatasetError(ValueError):
    """A malformed dataset file; the message starts with ``path:line:``."""


def _err(path, line: int | None, msg: str) -> DatasetError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {msg}")


def _parse_time(text: str, path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _err(path, line, f"{what} is not a number; expected seconds as a decimal number "
                               f"like 1.25, got {text!r}") from None
    if not math.isfinite(value):
        raise _err(path, line, f"{what} is not finite; expected seconds >= 0, got {text!r}")
    if value < 0:
        raise _err(path, line, f"{what} is negative; expected seconds >= 0, got {text!r}")
    return value


# ----------------------------------------------------------------------------- annotations

def read_annotation_file(path: str | os.PathLike) -> list[Event]:
    """Parse a strong-label text file: one ``<onset seconds>\\t<label>`` per line.

    Tabs or runs of spaces separate the two fields; blank lines and lines starting with ``#`` are
    skipped. Events are returned sorted by time (stable).

    Returns:
        list of ``(onset_s, label)``.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a malformed line, as ``path:line: ...``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise _err(path, None, f"not UTF-8 text ({err}); expected lines "
                               "'<onset seconds>\\t<label>'") from None
    events: list[Event] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise _err(path, lineno, f"expected 2 fields '<onset seconds>\\t<label>', found "
                                     f"{len(parts)}, got {raw!r}")
        events.append((_parse_time(parts[0], path, lineno, "onset time"), parts[1]))
    events.sort(key=lambda e: e[0])
    return events


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


def _check_label(fn: str, label: object) -> None:
    if not isinstance(label, str) or not label or any(c.isspace() or c == "," for c in label):
        raise ValueError(f"{fn}: labels must be non-empty strings without whitespace or commas, "
                         f"got {label!r}")


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
    if not path.is_file():
        raise FileNotFoundError(f"{path}: counts file not found")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    rows = []
    header_seen = False
    for lineno, fields_ in enumerate(reader, start=1):
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
        if not count_txt.isdigit():
            raise _err(path, lineno, f"`count` must be a non-negative integer, got {count_txt!r}")
        rows.append((lineno, file_, start, end, label, int(count_txt)))
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
        DatasetError: a stem listed twice, or a line with whitespace inside.
    """
    path = Path(path)
    out: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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


def _stem_of(name: str) -> str:
    for suffix in AUDIO_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


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
    if not path.is_file():
        raise FileNotFoundError(f"{path}: softness table not found")
    known = set(stems) if stems is not None else None
    out: dict[str, float] = {}
    lines: dict[str, int] = {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header_seen = False
    for lineno, row in enumerate(rows, start=1):
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


# ----------------------------------------------------------------------------- drum formats

# IDMT writes a few onsets just below 0 (rounding); those within this margin become 0.
_NEGATIVE_ONSET_TOLERANCE_S = 0.05


def read_idmt_xml(path: str | os.PathLike) -> list[tuple[float, str]]:
    """Events of an IDMT-SMT-Drums annotation XML: every ``<event>`` with ``<onsetSec>`` and
    ``<instrument>`` children, wherever it sits in the tree.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: not well-formed XML, an event without onset or instrument, an onset that is
            not a number or is negative (beyond -0.05 s, which is clamped to 0), as ``path:line:``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    parser = xml.parsers.expat.ParserCreate()
    stack: list[str] = []
    events: list[tuple[float, str]] = []
    current: dict | None = None

    def start(name, _attrs):
        nonlocal current
        stack.append(name)
        if name == "event":
            current = {"line": parser.CurrentLineNumber, "onsetSec": None, "instrument": None}
        elif current is not None and name in ("onsetSec", "instrument"):
            current[name] = ""
            current[name + "_line"] = parser.CurrentLineNumber

    def chars(data):
        if current is not None and stack and stack[-1] in ("onsetSec", "instrument"):
            current[stack[-1]] += data

    def end(name):
        nonlocal current
        stack.pop()
        if name == "event" and current is not None:
            events.append(_idmt_event(path, current))
            current = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as err:
        raise DatasetError(f"{path}:{err.lineno}: not well-formed XML ({err}); expected IDMT-SMT-"
                           "Drums <event><onsetSec>..</onsetSec><instrument>..</instrument>"
                           "</event> elements") from None
    events.sort(key=lambda e: e[0])
    return events


def _idmt_event(path: Path, ev: dict) -> tuple[float, str]:
    line = ev["line"]
    if ev["onsetSec"] is None or ev["instrument"] is None:
        missing = "onsetSec" if ev["onsetSec"] is None else "instrument"
        raise DatasetError(f"{path}:{line}: <event> without <{missing}>; expected both "
                           "<onsetSec> and <instrument>")
    text = ev["onsetSec"].strip()
    try:
        t = float(text)
    except ValueError:
        raise DatasetError(f"{path}:{ev['onsetSec_line']}: <onsetSec> is not a number; expected "
                           f"seconds, got {text!r}") from None
    if not (t == t and abs(t) != float("inf")) or t < -_NEGATIVE_ONSET_TOLERANCE_S:
        raise DatasetError(f"{path}:{ev['onsetSec_line']}: <onsetSec> must be finite and >= 0, "
                           f"got {text!r}")
    label = ev["instrument"].strip()
    if not label or any(c.isspace() for c in label):
        raise DatasetError(f"{path}:{ev['instrument_line']}: <instrument> must be one word like "
                           f"KD, SD or HH, got {ev['instrument']!r}")
    return max(t, 0.0), label


def read_midi_drums(path: str | os.PathLike, *,
                    pitch_map: Mapping[int, str] | None = None,
                    drum_tracks_only: bool = True) -> list[tuple[float, str]]:
    """Note onsets of the drum tracks of a MIDI file, labelled through ``pitch_map``.

    Args:
        path: a Standard MIDI File.
        pitch_map: MIDI pitch -> class; notes of other pitches are dropped (default
            :data:`GM_DRUM_MAP`, General-MIDI percussion to KD / SD / HH).
        drum_tracks_only: only instruments flagged as drums (MIDI channel 10) (default True);
            set False for files that put drums on another channel.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: the file is not a readable MIDI file.
    """
    import pretty_midi  # slow to import; only needed here

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MIDI file not found")
    pitch_map = GM_DRUM_MAP if pitch_map is None else pitch_map
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido / pretty_midi raise many types (OSError, EOFError, ...)
        raise DatasetError(f"{path}: cannot read MIDI ({type(err).__name__}: {err}); expected a "
                           "Standard MIDI File") from None
    events = [(float(n.start), pitch_map[n.pitch])
              for inst in pm.instruments if inst.is_drum or not drum_tracks_only
              for n in inst.notes if n.pitch in pitch_map]
    events.sort(key=lambda e: e[0])
    return events


def read_events_any(path: str | os.PathLike) -> list[tuple[float, str]]:
    """Read an annotation file, choosing the parser by suffix: ``.txt``/``.tsv``/``.lab``
    (text), ``.xml`` (IDMT-SMT-Drums), ``.mid``/``.midi`` (MIDI, GM drum map)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".txt", ".tsv", ".lab"):
        return read_annotation_file(path)
    if suffix == ".xml":
        return read_idmt_xml(path)
    if suffix in (".mid", ".midi"):
        return read_midi_drums(path)
    raise DatasetError(f"{path}: unsupported annotation file type {suffix!r}; expected .txt "
                       "('<onset seconds>\\t<label>' lines), .xml (IDMT-SMT-Drums) or .mid (MIDI)")


# ----------------------------------------------------------------------------- detections


def write_events(
    path: str | os.PathLike,
    events: Sequence[tuple[float, str, float]],
    *,
    fmt: str = "tsv",
    overwrite: bool = True,
) -> None:
    """Write detections ``[(time_s, label, score)]`` atomically as TSV, JSON or MIDI.

    * ``tsv``: ``'<seconds>\t<label>'`` per line, the annotation format (readable by
      :func:`read_annotation_file` and ``softloc evaluate``).
    * ``json``: ``[{"time_s", "label", "score"}, ...]``.
    * ``midi``: one 50 ms note per event on a drum track (channel 10) with the General-MIDI
      pitch of the label (:data:`GM_DRUM_PITCHES`; other labels that are MIDI numbers are used
      as pitches, anything else is an error); velocity from the score.

    Args:
        path: the file to write.
        events: ``(time_s, label, score)`` triples.
        fmt: a key of :data:`EVENT_FORMATS`.
        overwrite: replace an existing file (default True).

    Raises:
        ValueError: unknown ``fmt`` or a label without a MIDI pitch.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if fmt not in EVENT_FORMATS:
        raise ValueError(
            f"write_events: `fmt` must be one of {sorted(EVENT_FORMATS)}, got {fmt!r}"
        )
    if fmt == "tsv":
        atomic_write_text(path, "".join(f"{t:.6f}\t{label}\n" for t, label, _ in events),
                          overwrite=overwrite)
    elif fmt == "json":
        rows = [{"time_s": round(t, 6), "label": lab, "score": round(s, 6)} for t, lab, s in events]
        atomic_write_text(path, json.dumps(rows, indent=1) + "\n", overwrite=overwrite)
    else:
        _write_midi_events(Path(path), events, overwrite=overwrite)


def _write_midi_events(path: Path, events: Sequence[tuple[float, str, float]], *,
                       overwrite: bool) -> None:
    import pretty_midi  # slow to import; only needed here

    from softloc._io import atomic_save

    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="softloc")
    for t, label, score in events:
        if label in GM_DRUM_PITCHES:
            pitch = GM_DRUM_PITCHES[label]
        elif label.isdigit() and 0 <= int(label) <= 127:
            pitch = int(label)
        else:
            raise ValueError(
                f"write_events: label {label!r} has no MIDI pitch; expected one of "
                f"{sorted(GM_DRUM_PITCHES)} or a MIDI number 0-127"
            )
        velocity = int(np.clip(round(score * 127), 1, 127))
        drums.notes.append(pretty_midi.Note(velocity, pitch, t, t + 0.05))
    midi.instruments.append(drums)
    atomic_save(path, midi.write, overwrite=overwrite)
