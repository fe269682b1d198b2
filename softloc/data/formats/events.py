"""Detection files: writing ``[(time_s, label, score)]`` as TSV / JSON / MIDI, and reading any
annotation or detection file by its suffix."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from softloc._io import atomic_save, atomic_write_text
from softloc.data.formats._common import DatasetError, _clean_events, _err, _read_text
from softloc.data.formats.drums import GM_DRUM_PITCHES, read_idmt_xml, read_midi_drums
from softloc.data.formats.labels import read_annotation_file

#: Output formats of :func:`write_events` and their file suffixes.
EVENT_FORMATS = {"tsv": ".txt", "json": ".json", "midi": ".mid"}
#: MIDI ticks per quarter note written by :func:`write_events` (at 120 bpm: 1.04 ms per tick).
MIDI_PPQ = 960

_MAPS_HEADER = ("onsettime", "offsettime", "midipitch")


def read_events_json(path: str | os.PathLike) -> list[tuple[float, str]]:
    """Events of a JSON file that :func:`write_events` wrote: ``{"events": [{"time_s", "label",
    ...}], ...}`` or a plain list of such objects.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: not JSON, or an event without a finite ``time_s`` >= 0 and a one-word
            ``label`` (the message names the event's index).
    """
    path = Path(path)
    text = _read_text(path, "JSON events file", '{"events": [{"time_s": .., "label": ..}]}')
    try:
        data = json.loads(text)
    except ValueError as err:
        line = getattr(err, "lineno", None)
        raise _err(path, line, f"not valid JSON ({getattr(err, 'msg', err)}); expected "
                               '{"events": [{"time_s": .., "label": ..}]}') from None
    rows = data.get("events") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise _err(path, None, 'expected {"events": [...]} or a list of events, got a '
                               f"{type(data).__name__}")
    events: list[tuple[float, str, int]] = []
    for i, row in enumerate(rows):
        t = row.get("time_s") if isinstance(row, dict) else None
        label = row.get("label") if isinstance(row, dict) else None
        ok_t = isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) \
            and t >= 0
        if not ok_t or not isinstance(label, str) or not label or label != label.strip() \
                or any(c.isspace() for c in label):
            raise _err(path, None, f"event {i}: expected {{\"time_s\": seconds >= 0, "
                                   f"\"label\": one word}}, got {str(row)[:80]!r}")
        events.append((float(t), label, i + 1))
    return _clean_events(path, events)


def _is_maps_list(path: Path) -> bool:
    """Whether the first non-blank line of a text file is the MAPS header."""
    try:
        with path.open("rb") as f:
            for raw in f:
                words = raw.decode("utf-8-sig", errors="replace").lower().split()
                if words:
                    return tuple(words) == _MAPS_HEADER
    except OSError:
        return False
    return False


def read_events_any(path: str | os.PathLike, *, pitched_midi: bool = False
                    ) -> list[tuple[float, str]]:
    """Read an annotation or detection file, choosing the parser by suffix (and header).

    * ``.txt``/``.tsv``/``.lab``: text (:func:`read_annotation_file`), or a MAPS note list when
      its first line is the header ``OnsetTime OffsetTime MidiPitch`` (labels: MIDI pitches);
    * ``.xml``: IDMT-SMT-Drums (:func:`read_idmt_xml`);
    * ``.json``: detections (:func:`read_events_json`);
    * ``.mid``/``.midi``: MIDI drum tracks through the GM drum map, with ``pitched_midi`` the
      other tracks' notes too, labelled by pitch (:func:`read_midi_drums`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".txt", ".tsv", ".lab"):
        if _is_maps_list(path):
            from softloc.data.midi import read_maps_notes  # midi imports this module

            return _clean_events(path, [(n.onset_s, str(n.pitch), i + 2)
                                        for i, n in enumerate(read_maps_notes(path))])
        return read_annotation_file(path)
    if suffix == ".xml":
        return read_idmt_xml(path)
    if suffix == ".json":
        return read_events_json(path)
    if suffix in (".mid", ".midi"):
        return read_midi_drums(path, pitched=pitched_midi)
    raise DatasetError(f"{path}: unsupported annotation file type {suffix!r}; expected .txt "
                       "('<onset seconds>\\t<label>' lines, or a MAPS note list), .xml "
                       "(IDMT-SMT-Drums), .json (softloc detect) or .mid (MIDI)")


#: Suffixes :func:`read_events_any` reads.
EVENT_FILE_SUFFIXES = (".txt", ".tsv", ".lab", ".xml", ".json", ".mid", ".midi")


# ----------------------------------------------------------------------------- detections


def write_events(
    path: str | os.PathLike,
    events: Sequence[tuple[float, str, float]],
    *,
    fmt: str = "tsv",
    overwrite: bool = True,
    metadata: Mapping[str, object] | None = None,
    pitch_map: Mapping[str, int] | None = None,
) -> None:
    """Write detections ``[(time_s, label, score)]`` atomically as TSV, JSON or MIDI.

    * ``tsv``: ``'<seconds>\t<label>\t<score>'`` per line: the annotation format with a score
      column (readable by :func:`read_annotation_file`, ``softloc evaluate``, mir_eval's
      ``load_labeled_events`` of the first two columns, Sonic Visualiser).
    * ``json``: ``{"format": "softloc-events", **metadata, "events": [{"time_s", "label",
      "score"}, ...]}``; ``metadata`` carries what made the events (model, softloc version,
      thresholds, time offsets).
    * ``midi``: a Standard MIDI File at :data:`MIDI_PPQ` ticks per quarter note (120 bpm). Labels
      of ``pitch_map`` (default :data:`GM_DRUM_PITCHES`, KD / SD / HH) are 50 ms notes on a
      drum track (channel 10); labels that are MIDI numbers (``"60"``) are 100 ms notes on a
      piano track; velocity from the score.

    Args:
        path: the file to write.
        events: ``(time_s, label, score)`` triples.
        fmt: a key of :data:`EVENT_FORMATS`.
        overwrite: replace an existing file (default True).
        metadata: JSON-serialisable facts about the run, written into JSON files only.
        pitch_map: drum label -> General-MIDI percussion key, for MIDI.

    Raises:
        ValueError: unknown ``fmt``; for MIDI a label neither in ``pitch_map`` nor a MIDI
            number 0-127, or a pitch outside 0-127.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if fmt not in EVENT_FORMATS:
        raise ValueError(
            f"write_events: `fmt` must be one of {sorted(EVENT_FORMATS)}, got {fmt!r}"
        )
    if fmt == "tsv":
        atomic_write_text(path, "".join(f"{t:.6f}\t{label}\t{s:.4f}\n" for t, label, s in events),
                          overwrite=overwrite)
    elif fmt == "json":
        rows = [{"time_s": round(t, 6), "label": lab, "score": round(s, 6)} for t, lab, s in events]
        doc = {"format": "softloc-events", **dict(metadata or {}), "events": rows}
        text = json.dumps(doc, indent=1, allow_nan=False)
        atomic_write_text(path, text + "\n", overwrite=overwrite)
    else:
        _write_midi_events(Path(path), events, overwrite=overwrite,
                           pitch_map=GM_DRUM_PITCHES if pitch_map is None else pitch_map)


def _write_midi_events(path: Path, events: Sequence[tuple[float, str, float]], *,
                       overwrite: bool, pitch_map: Mapping[str, int]) -> None:
    import pretty_midi  # slow to import; only needed here

    for label, pitch in pitch_map.items():
        if not (isinstance(pitch, int) and 0 <= pitch <= 127):
            raise ValueError(f"write_events: `pitch_map[{label!r}]` must be a MIDI key 0-127, "
                             f"got {pitch!r}")
    midi = pretty_midi.PrettyMIDI(resolution=MIDI_PPQ, initial_tempo=120.0)
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="softloc drums")
    piano = pretty_midi.Instrument(program=0, is_drum=False, name="softloc notes")
    for t, label, score in events:
        velocity = int(np.clip(round(score * 127), 1, 127))
        if label in pitch_map:
            drums.notes.append(pretty_midi.Note(velocity, pitch_map[label], t, t + 0.05))
        elif label.isascii() and label.isdigit() and 0 <= int(label) <= 127:
            piano.notes.append(pretty_midi.Note(velocity, int(label), t, t + 0.1))
        else:
            raise ValueError(
                f"write_events: label {label!r} has no MIDI pitch; expected one of "
                f"{sorted(pitch_map)} (the pitch map) or a MIDI number 0-127"
            )
    midi.instruments.extend(inst for inst in (drums, piano) if inst.notes)
    atomic_save(path, midi.write, overwrite=overwrite)
