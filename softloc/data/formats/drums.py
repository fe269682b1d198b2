"""Drum annotation formats: label maps, the General-MIDI drum map, IDMT-SMT-Drums XML, MIDI."""

from __future__ import annotations

import os
import warnings
import xml.parsers.expat
from collections.abc import Mapping
from pathlib import Path

from softloc.data.formats._common import DatasetError, _clean_events

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

# ----------------------------------------------------------------------------- drum formats

# IDMT writes a few onsets just below 0 (rounding); those within this margin become 0.
_NEGATIVE_ONSET_TOLERANCE_S = 0.05


def read_idmt_xml(path: str | os.PathLike) -> list[tuple[float, str]]:
    """Events of an IDMT-SMT-Drums annotation XML: every ``<event>`` with ``<onsetSec>`` and
    ``<instrument>`` children, wherever it sits in the tree.

    Exact duplicate events are dropped with a :class:`DatasetWarning`.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: not well-formed XML, an event without onset or instrument, an onset that is
            not a number or is negative (beyond -0.05 s, which is clamped to 0), two instruments
            that differ only by case, as ``path:line:``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    parser = xml.parsers.expat.ParserCreate()
    stack: list[str] = []
    events: list[tuple[float, str, int]] = []
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
            events.append((*_idmt_event(path, current), current["line"]))
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
    return _clean_events(path, events)


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
                    drum_tracks_only: bool = True,
                    pitched: bool = False) -> list[tuple[float, str]]:
    """Note onsets of the drum tracks of a MIDI file, labelled through ``pitch_map``.

    Args:
        path: a Standard MIDI File.
        pitch_map: MIDI pitch -> class; drum notes of other pitches are dropped (default
            :data:`GM_DRUM_MAP`, General-MIDI percussion to KD / SD / HH).
        drum_tracks_only: only instruments flagged as drums (MIDI channel 10) go through
            ``pitch_map`` (default True); set False for files that put drums on another channel.
        pitched: also read the notes of the other (pitched) tracks, labelled by their MIDI
            pitch (``"60"``): what :func:`write_events` writes for pitched labels.

    Returns:
        ``(onset_s, label)`` sorted by time; notes of one label at the same time count once.

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
        with warnings.catch_warnings():  # pretty_midi warns about type-0 files, odd meta events
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido / pretty_midi raise many types (OSError, EOFError, ...)
        raise DatasetError(f"{path}: cannot read MIDI ({type(err).__name__}: {err}); expected a "
                           "Standard MIDI File") from None
    events = set()
    for inst in pm.instruments:
        if inst.is_drum or not drum_tracks_only:
            events |= {(float(n.start), pitch_map[n.pitch]) for n in inst.notes
                       if n.pitch in pitch_map}
        elif pitched:
            events |= {(float(n.start), str(n.pitch)) for n in inst.notes}
    return sorted(events)

