"""Note data: MAPS note lists and MIDI files.

Readers return plain Python data (:class:`Note` tuples) and report malformed input as
``path:line: what is wrong; expected ...; got '...'`` (a
:class:`~softloc.data.formats.DatasetError`; binary MIDI files have no lines, so only the file is
named).

* MAPS note lists (``.txt`` next to each MAPS ``.wav``): a header ``OnsetTime OffsetTime
  MidiPitch``, then one note per line, tab or space separated (:func:`read_maps_notes`).
* MIDI files of any track layout (type 0 or 1, one track or many, any channels), read with
  pretty_midi: pitched notes of every non-drum track, the drum-channel notes kept apart, and the
  sustain-pedal intervals (controller 64) (:func:`read_midi`).

Folders of recordings with their note lists (MAPS, MAESTRO) and the papers' MAPS split are in
``softloc.data.piano_folders``.

Conventions: times in seconds from the start of the file; a note's label is its MIDI pitch number
as a string, ``"21"`` (A0) to ``"108"`` (C8) on a piano (:func:`pitch_label`); notes come back
sorted by (onset, pitch); offsets are kept but nothing in softloc uses them (the papers evaluate
onsets only).

This module never imports ``softloc.data.layout`` (the layout builds on the formats).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from softloc._io import atomic_write_text
from softloc.data.formats import DatasetError

__all__ = [
    "MIDI_SUFFIXES",
    "MidiNotes",
    "Note",
    "PIANO_PITCHES",
    "notes_to_events",
    "pitch_label",
    "read_maps_notes",
    "read_midi",
    "read_notes_any",
    "write_maps_notes",
]

#: MIDI pitches of the 88 piano keys, A0 (21) to C8 (108).
PIANO_PITCHES: tuple[int, ...] = tuple(range(21, 109))
_MAPS_HEADER = ("onsettime", "offsettime", "midipitch")
#: File suffixes read as MIDI.
MIDI_SUFFIXES = (".mid", ".midi")


class Note(NamedTuple):
    """One note: onset and offset in seconds, MIDI pitch 0-127, MIDI velocity 1-127 or None."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int | None = None


@dataclass(frozen=True)
class MidiNotes:
    """What :func:`read_midi` returns.

    Attributes:
        notes: pitched notes of every non-drum track, sorted by (onset, pitch).
        drums: notes of drum tracks (MIDI channel 10), sorted; pitches are General-MIDI
            percussion keys, not pitches.
        sustain_s: sustain-pedal intervals ``(down_s, up_s)`` (controller 64 >= 64 is down) of
            the non-drum tracks, merged over tracks and sorted.
        end_s: time of the last event of the file in seconds.
    """

    notes: list[Note]
    drums: list[Note]
    sustain_s: list[tuple[float, float]]
    end_s: float


def _err(path: object, line: int | None, msg: str) -> DatasetError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {msg}")


def pitch_label(pitch: int) -> str:
    """The class label of a MIDI pitch: its number as a string (``60`` -> ``"60"``).

    Raises:
        ValueError: ``pitch`` is not an int in 0..127.
    """
    if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 127:
        raise ValueError(f"pitch_label: `pitch` must be an int MIDI number in 0..127, "
                         f"got {pitch!r}")
    return str(pitch)


def notes_to_events(notes: Iterable[Note]) -> list[tuple[float, str]]:
    """Onset events ``(onset_s, "<pitch>")`` of notes, sorted by time (the layout's strong labels).

    Example:
        >>> notes_to_events([Note(1.0, 1.5, 60, 80), Note(0.5, 0.7, 21)])
        [(0.5, '21'), (1.0, '60')]
    """
    return sorted(((float(n.onset_s), pitch_label(int(n.pitch))) for n in notes),
                  key=lambda e: (e[0], int(e[1])))


def _sorted_notes(notes: Iterable[Note]) -> list[Note]:
    return sorted(notes, key=lambda n: (n.onset_s, n.pitch, n.offset_s))


# ----------------------------------------------------------------------------- MAPS note lists

def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_maps_notes(path: str | os.PathLike) -> list[Note]:
    """Parse a MAPS note list: header ``OnsetTime OffsetTime MidiPitch``, then one note a line.

    Fields are separated by tabs or spaces; blank lines are skipped; the header is required
    (case-insensitive) so that a file of another format is not misread. Velocities are not in the
    file (``Note.velocity`` is None).

    Args:
        path: the ``.txt`` file.

    Returns:
        notes sorted by (onset, pitch).

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a missing header, a line without 3 fields, a bad number, an offset before
            its onset, or a pitch outside 0..127, as ``path:line: ...``.

    Example:
        A file holding ``OnsetTime\\tOffsetTime\\tMidiPitch`` and ``0.5\\t1.25\\t60`` gives
        ``[Note(onset_s=0.5, offset_s=1.25, pitch=60, velocity=None)]``.
    """
    path = Path(path)
    text = _read_text(path, "MAPS note list")
    notes: list[Note] = []
    header_seen = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if not header_seen:
            if tuple(p.lower() for p in parts) != _MAPS_HEADER:
                raise _err(path, lineno, "expected the MAPS header 'OnsetTime\\tOffsetTime\\t"
                                         f"MidiPitch', got {raw!r}")
            header_seen = True
            continue
        if len(parts) != 3:
            raise _err(path, lineno, "expected 3 fields '<onset s>\\t<offset s>\\t<MIDI pitch>', "
                                     f"found {len(parts)}, got {raw!r}")
        onset = _parse_seconds(parts[0], path, lineno, "OnsetTime")
        offset = _parse_seconds(parts[1], path, lineno, "OffsetTime")
        if offset < onset:
            raise _err(path, lineno, f"OffsetTime {parts[1]} is before OnsetTime {parts[0]}; "
                                     f"expected offset >= onset, got {raw!r}")
        notes.append(Note(onset, offset, _parse_pitch(parts[2], path, lineno), None))
    if not header_seen:
        raise _err(path, 1, "empty file; expected the MAPS header 'OnsetTime\\tOffsetTime\\t"
                            "MidiPitch' and one note per line")
    return _sorted_notes(notes)


def write_maps_notes(path: str | os.PathLike, notes: Iterable[Note], *,
                     overwrite: bool = False) -> None:
    """Write notes as a MAPS note list (header, then ``onset\toffset\tpitch``; atomic).

    The inverse of :func:`read_maps_notes` up to the 6 decimals written (velocities are not
    part of the format).

    Raises:
        ValueError: a negative or non-finite time, an offset before its onset, or a pitch
            outside 0..127.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    lines = ["OnsetTime\tOffsetTime\tMidiPitch\n"]
    for n in _sorted_notes(notes):
        if not (math.isfinite(n.onset_s) and math.isfinite(n.offset_s)
                and 0 <= n.onset_s <= n.offset_s):
            raise ValueError(f"write_maps_notes: need 0 <= onset_s <= offset_s (finite), got {n}")
        lines.append(f"{n.onset_s:.6f}\t{n.offset_s:.6f}\t{pitch_label(int(n.pitch))}\n")
    atomic_write_text(path, "".join(lines), overwrite=overwrite)


def _parse_seconds(text: str, path: Path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _err(path, line, f"{what} is not a number; expected seconds like 1.25, "
                               f"got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _err(path, line, f"{what} must be finite and >= 0 seconds, got {text!r}")
    return value


def _parse_pitch(text: str, path: Path, line: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise _err(path, line, f"MidiPitch is not a number; expected an integer 0..127, "
                               f"got {text!r}") from None
    if not value.is_integer() or not 0 <= value <= 127:
        raise _err(path, line, f"MidiPitch must be an integer in 0..127, got {text!r}")
    return int(value)


# ----------------------------------------------------------------------------- MIDI files

def read_midi(path: str | os.PathLike) -> MidiNotes:
    """Notes, drum notes and sustain pedal of a MIDI file of any track layout (via pretty_midi).

    Every non-drum track contributes its notes whatever its program (a piano part split over two
    staves/tracks/channels is merged); notes on the drum channel (10) go to ``drums``. Tempo
    changes are applied by pretty_midi. Zero-length notes are kept (offset = onset).

    Args:
        path: a ``.mid``/``.midi`` file.

    Returns:
        a :class:`MidiNotes`.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: the file cannot be parsed as MIDI (the message names it).
    """
    import pretty_midi  # local: an optional dependency of note reading only

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MIDI file not found")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido/pretty_midi raise OSError, EOFError, ValueError, KeyError...
        raise _err(path, None, f"cannot read MIDI ({type(err).__name__}: {err}); expected a "
                               "standard MIDI file (.mid/.midi)") from None
    notes: list[Note] = []
    drums: list[Note] = []
    pedal: list[tuple[float, float]] = []
    for inst in pm.instruments:
        target = drums if inst.is_drum else notes
        for n in inst.notes:
            target.append(Note(float(n.start), float(max(n.end, n.start)), int(n.pitch),
                               int(n.velocity)))
        if not inst.is_drum:
            pedal.extend(_sustain_intervals(inst.control_changes, float(pm.get_end_time())))
    return MidiNotes(notes=_sorted_notes(notes), drums=_sorted_notes(drums),
                     sustain_s=_merge_intervals(pedal), end_s=float(pm.get_end_time()))


def _sustain_intervals(changes, end_s: float) -> list[tuple[float, float]]:
    out = []
    down: float | None = None
    for cc in sorted((c for c in changes if c.number == 64), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = float(cc.time)
        elif cc.value < 64 and down is not None:
            if cc.time > down:
                out.append((down, float(cc.time)))
            down = None
    if down is not None and end_s > down:
        out.append((down, end_s))
    return out


def _merge_intervals(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def read_notes_any(path: str | os.PathLike) -> list[Note]:
    """Pitched notes of a MAPS ``.txt`` or a MIDI ``.mid``/``.midi`` file (by suffix).

    Raises:
        ValueError: another suffix.
        FileNotFoundError, DatasetError: as :func:`read_maps_notes` / :func:`read_midi`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_maps_notes(path)
    if suffix in MIDI_SUFFIXES:
        return read_midi(path).notes
    raise ValueError(f"read_notes_any: `path` must end in .txt (MAPS) or .mid/.midi, got {path}")
