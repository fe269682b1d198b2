"""Every file format softloc reads or writes: annotations, counts, splits, softness tables, events.

Readers return plain Python data and report malformed input as
``path:line: what is wrong; expected ...; got '...'`` (a :class:`DatasetError`); writers are atomic
(``softloc._io``: a unique temp file in the target folder, renamed into place, the user's umask
kept) and refuse to replace a file unless asked.

* Text annotations (ENST-Drums, MDB-Drums, madmom, RBMA13): ``<onset seconds> <label>`` per line,
  tab or spaces, ``#`` comments, an optional third column (a score, as ``softloc detect``
  writes) (:func:`read_annotation_file`, :func:`write_annotation_file`). Exact duplicate lines
  are dropped with a :class:`DatasetWarning`; two labels that differ only by case (``kd`` and
  ``KD``) are an error, since they would silently become two classes.
* MAPS note lists (``OnsetTime OffsetTime MidiPitch`` header; labels are the MIDI pitches), read
  by :func:`read_events_any` through ``softloc.data.midi.read_maps_notes``.
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
* Detections ``[(time_s, label, score)]`` as TSV (the annotation format plus a score column),
  JSON (events and metadata: model, version, thresholds) or MIDI (480 ticks per quarter; drums
  on channel 10, pitched labels such as ``"60"`` on a piano track) (:func:`write_events`);
  :func:`read_events_any` reads every one of them back.
* Audio: 16-bit PCM WAV (:func:`write_wav`; reading is soundfile's, :data:`AUDIO_SUFFIXES`).
* Segment files of action segmentation: ``<start_s>\\t<end_s>\\t<label>`` per segment
  (:func:`read_segment_file`, :func:`write_segment_file`, :func:`format_segments`).

Conventions: times in seconds from the start of the file; events come back sorted by time;
class names are case-sensitive strings without whitespace; a stem is a file name without its
extension. This module never imports ``softloc.data.layout`` (the layout builds on it).
"""

from softloc.data.formats._common import AUDIO_SUFFIXES, DatasetError, DatasetWarning
from softloc.data.formats.audio import write_wav
from softloc.data.formats.drums import (
    ENST_LABEL_MAP,
    GM_DRUM_MAP,
    GM_DRUM_PITCHES,
    MDB_LABEL_MAP,
    RBMA_LABEL_MAP,
    read_idmt_xml,
    read_midi_drums,
)
from softloc.data.formats.events import (
    EVENT_FILE_SUFFIXES,
    EVENT_FORMATS,
    MIDI_PPQ,
    read_events_any,
    read_events_json,
    write_events,
)
from softloc.data.formats.labels import (
    COUNTS_HEADER,
    MAX_COUNT,
    CountWindow,
    parse_softness_ms,
    read_annotation_file,
    read_counts_csv,
    read_softness_csv,
    read_split_file,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)
from softloc.data.formats.segments import format_segments, read_segment_file, write_segment_file

__all__ = [
    "AUDIO_SUFFIXES",
    "COUNTS_HEADER",
    "CountWindow",
    "DatasetError",
    "DatasetWarning",
    "ENST_LABEL_MAP",
    "EVENT_FILE_SUFFIXES",
    "EVENT_FORMATS",
    "GM_DRUM_MAP",
    "GM_DRUM_PITCHES",
    "MAX_COUNT",
    "MDB_LABEL_MAP",
    "MIDI_PPQ",
    "RBMA_LABEL_MAP",
    "parse_softness_ms",
    "read_annotation_file",
    "read_counts_csv",
    "read_events_any",
    "read_events_json",
    "read_idmt_xml",
    "read_midi_drums",
    "read_softness_csv",
    "read_split_file",
    "write_annotation_file",
    "write_counts_csv",
    "write_events",
    "write_split_file",
    "write_wav",
    "format_segments",
    "read_segment_file",
    "write_segment_file",
]

#: Audio file suffixes: what soundfile (libsndfile >= 1.1) reads; folders are scanned for these,
