"""Folders of piano recordings with their note lists: MAPS (and the papers' split), MAESTRO.

* MAPS folders (:func:`scan_maps`), with the split of the papers (the Onsets-and-Frames protocol,
  fact sheet §2.1): **train** on the ``MUS`` pieces of the seven synthesized pianos
  (:data:`MAPS_SYNTH_PIANOS`) except those whose piece also occurs in the test set, **test** on
  the ``MUS`` pieces recorded on the real Yamaha Disklavier (:data:`MAPS_TEST_PIANOS`:
  ``ENSTDkCl`` close and ``ENSTDkAm`` ambient microphones, 60 pieces). MAPS file names are
  ``MAPS_<subset>-<piece>_<piano>.wav``, e.g. ``MAPS_MUS-chpn_op25_e4_ENSTDkCl.wav``; the piece id
  is the part between ``MUS-`` and the last ``_<piano>``.
* MAESTRO-style folders: an index ``*.csv`` (columns ``split``, ``midi_filename``,
  ``audio_filename``, as in MAESTRO v2/v3) or ``*.json`` (column-oriented as v2/v3, or a list of
  records as v1) and the ``.midi``/``.wav`` pairs it names; without an index, MIDI and audio
  files of the same stem in the same folder are paired (:func:`scan_maestro`).
* :func:`write_pieces_layout` writes pieces into the generic dataset layout
  (``softloc.data.layout``): audio linked or copied, ``annotations/<stem>.txt`` with one
  ``<onset seconds>\\t<MIDI pitch>`` per note, ``splits/*.txt``.

Scans report malformed index files as ``path:line: ...`` (a
:class:`~softloc.data.formats.DatasetError`). This module never imports ``softloc.data.layout``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from softloc.data.formats import DatasetError, write_annotation_file, write_split_file
from softloc.data.formats._common import _read_text  # the package-wide UTF-8 reader
from softloc.data.midi import MIDI_SUFFIXES, Note, notes_to_events, read_notes_any

__all__ = [
    "MAPS_SYNTH_PIANOS",
    "MAPS_TEST_PIANOS",
    "Piece",
    "maps_piece_id",
    "scan_maestro",
    "scan_maps",
    "write_pieces_layout",
]

#: MAPS pianos rendered by software synthesizers: the training pianos of the papers.
MAPS_SYNTH_PIANOS: tuple[str, ...] = (
    "AkPnBcht", "AkPnBsdf", "AkPnCGdD", "AkPnStgb", "SptkBGAm", "SptkBGCl", "StbgTGd2",
)  # fmt: skip
#: MAPS pianos recorded on the real Yamaha Disklavier (close / ambient): the test pianos.
MAPS_TEST_PIANOS: tuple[str, ...] = ("ENSTDkCl", "ENSTDkAm")

_MAPS_NAME = re.compile(r"^MAPS_(?P<subset>[A-Za-z]+)[-_](?P<piece>.+)_(?P<piano>[A-Za-z0-9]+)$")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_SPLIT_ALIASES = {"train": "train", "validation": "valid", "valid": "valid", "val": "valid",
                  "test": "test"}  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """One recording with its note list.

    Attributes:
        stem: the name it gets in the generic layout (unique within a scan).
        audio_path: the audio file.
        notes_path: the note list: a MAPS ``.txt`` or a ``.mid``/``.midi`` file.
        split: ``"train"``, ``"valid"``, ``"test"``, or ``None`` (not in any split: unknown for
            an unindexed folder, or left out by the MAPS protocol).
        instrument: the MAPS piano code (``"ENSTDkCl"``) or ``""``.
        piece_id: the musical piece (MAPS: the part after ``MUS-``; MAESTRO: the stem).
    """

    stem: str
    audio_path: Path
    notes_path: Path
    split: str | None
    instrument: str = ""
    piece_id: str = field(default="")

    def read_notes(self) -> list[Note]:
        """The pitched notes of :attr:`notes_path` (:func:`read_notes_any`)."""
        return read_notes_any(self.notes_path)


def _err(path: object, line: int | None, msg: str) -> DatasetError:
    return DatasetError(f"{path}:{line}: {msg}" if line is not None else f"{path}: {msg}")


def maps_piece_id(name: str) -> tuple[str, str, str] | None:
    """``(subset, piece, piano)`` of a MAPS file name (with or without suffix), else None.

    Example:
        >>> maps_piece_id("MAPS_MUS-chpn_op25_e4_ENSTDkCl.wav")
        ('MUS', 'chpn_op25_e4', 'ENSTDkCl')
        >>> maps_piece_id("MAPS_ISOL_NO_F_S0_M21_AkPnBcht.wav")
        ('ISOL', 'NO_F_S0_M21', 'AkPnBcht')
    """
    stem = Path(name).name
    for suffix in (*_AUDIO_SUFFIXES, ".txt", *MIDI_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m = _MAPS_NAME.match(stem)
    return None if m is None else (m["subset"], m["piece"], m["piano"])


def scan_maps(root: str | os.PathLike, *,
              test_pianos: Sequence[str] = MAPS_TEST_PIANOS,
              train_pianos: Sequence[str] = MAPS_SYNTH_PIANOS,
              subset: str = "MUS") -> list[Piece]:
    """Find the MAPS recordings under ``root`` and give each its split of the papers' protocol.

    Every ``MAPS_<subset>-<piece>_<piano>.wav`` below ``root`` (any folder depth, as the MAPS
    zip files unpack) with its ``.txt`` note list beside it is a :class:`Piece`. Pieces of
    ``test_pianos`` get ``split="test"``; pieces of ``train_pianos`` get ``split="train"``
    unless their piece id also occurs in the test set (then ``split=None``: left out, so no
    test piece is ever heard in training, as Onsets and Frames / LoCo / SoftLoc did); other pianos
    get ``None``.

    Args:
        root: the MAPS folder.
        test_pianos: piano codes of the test set (default: the two Disklavier recordings,
            ``ENSTDkCl`` and ``ENSTDkAm``).
        train_pianos: piano codes of the training set (default: the seven synthesized pianos).
        subset: MAPS subset (``"MUS"``: whole pieces; ``"ISOL"``, ``"RAND"``, ``"UCHO"``).

    Returns:
        pieces sorted by stem (the file stem, unique in MAPS).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatasetError: no MAPS file found, a wav without its ``.txt``, or a stem found twice.
        ValueError: a piano in both ``test_pianos`` and ``train_pianos``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: MAPS folder not found")
    both = sorted(set(test_pianos) & set(train_pianos))
    if both:
        raise ValueError(f"scan_maps: pianos {both} are in both `test_pianos` and `train_pianos`")
    found: dict[str, tuple[Path, str, str]] = {}
    for wav in sorted(root.rglob("*.wav")):
        parsed = maps_piece_id(wav.name)
        if parsed is None or parsed[0] != subset:
            continue
        if wav.stem in found:
            raise _err(wav, None, f"MAPS file {wav.name} found twice (also "
                                  f"{found[wav.stem][0]}); expected each recording once")
        txt = wav.with_suffix(".txt")
        if not txt.is_file():
            raise _err(wav, None, f"no note list {txt.name} beside it; expected the MAPS .txt "
                                  "(OnsetTime OffsetTime MidiPitch) next to every .wav")
        found[wav.stem] = (wav, parsed[1], parsed[2])
    if not found:
        raise DatasetError(f"{root}: no MAPS_{subset}-*.wav files found; expected the MAPS "
                           f"folders (e.g. ENSTDkCl/{subset}/MAPS_{subset}-<piece>_ENSTDkCl.wav)")
    test_ids = {piece for _, piece, piano in found.values() if piano in test_pianos}
    pieces = []
    for stem, (wav, piece, piano) in sorted(found.items()):
        if piano in test_pianos:
            split: str | None = "test"
        elif piano in train_pianos and piece not in test_ids:
            split = "train"
        else:
            split = None
        pieces.append(Piece(stem=stem, audio_path=wav, notes_path=wav.with_suffix(".txt"),
                            split=split, instrument=piano, piece_id=piece))
    return pieces


# ----------------------------------------------------------------------------- MAESTRO folders

def scan_maestro(root: str | os.PathLike, *, index: str | os.PathLike | None = None) -> list[Piece]:
    """The audio/MIDI pairs of a MAESTRO-style folder, with the index's splits.

    The index is ``index`` if given, else the one ``*.csv`` or ``*.json`` file directly in
    ``root`` whose name starts with ``maestro`` (or the only csv/json there). CSV rows need the
    columns ``split``, ``midi_filename`` and ``audio_filename`` (paths relative to ``root``);
    JSON holds the same keys either column-oriented (``{"split": {"0": "train", ...}, ...}``,
    MAESTRO v2/v3) or as a list of records (v1). Splits ``train`` / ``validation`` / ``test``
    become ``train`` / ``valid`` / ``test``. Without an index file, every ``.mid``/``.midi``
    below ``root`` with an audio file of the same stem in its folder is a piece with
    ``split=None``.

    Stems are the audio file stems; where two collide, the parent folder name is prefixed.

    Raises:
        FileNotFoundError: ``root`` (or ``index``) does not exist.
        DatasetError: an index row with a missing column, an unknown split, or a file that does
            not exist (``index:line: ...``; JSON records are numbered from 1), or several
            candidate index files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: MAESTRO folder not found")
    if index is None:
        candidates = sorted(p for p in root.iterdir()
                            if p.suffix.lower() in (".csv", ".json") and p.is_file())
        named = [p for p in candidates if p.name.lower().startswith("maestro")]
        if len(named) > 1 or (not named and len(candidates) > 1):
            names = [p.name for p in named or candidates]
            raise DatasetError(f"{root}: several index files {names}; pass `index` to choose one")
        index = (named or candidates or [None])[0]
    if index is None:
        return _pair_by_stem(root)
    index = Path(index)
    rows = _read_index(index)
    pieces = []
    for line, split_txt, midi_rel, audio_rel in rows:
        split = _SPLIT_ALIASES.get(split_txt.strip().lower())
        if split is None:
            raise _err(index, line, f"unknown split {split_txt!r}; expected train, validation "
                                    "or test")
        midi_path, audio_path = root / midi_rel, root / audio_rel
        for p, what in ((midi_path, "midi_filename"), (audio_path, "audio_filename")):
            if not p.is_file():
                raise _err(index, line, f"{what} {p} does not exist; expected a path relative "
                                        f"to {root}")
        pieces.append(Piece(stem=audio_path.stem, audio_path=audio_path, notes_path=midi_path,
                            split=split, piece_id=audio_path.stem))
    return _unique_stems(pieces)


def _read_index(path: Path) -> list[tuple[int, str, str, str]]:
    """``(line, split, midi_filename, audio_filename)`` rows of a MAESTRO csv/json index."""
    need = ("split", "midi_filename", "audio_filename")
    text = _read_text(path, "index file", "a MAESTRO index (csv or json)")
    rows: list[tuple[int, str, str, str]] = []
    if path.suffix.lower() == ".csv":
        try:
            table = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as err:
            raise _err(path, None, f"not valid CSV ({err})") from None
        header: list[str] | None = None
        for line, cells in enumerate(table, start=1):
            if not cells or not "".join(cells).strip():
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                missing = [c for c in need if c not in header]
                if missing:
                    raise _err(path, line, f"header lacks columns {missing}; expected at least "
                                           f"{','.join(need)}, got {','.join(cells)!r}")
                continue
            if len(cells) != len(header):
                raise _err(path, line, f"expected {len(header)} fields, found {len(cells)}, got "
                                       f"{','.join(cells)!r}")
            rec = dict(zip(header, cells, strict=True))
            rows.append((line, rec["split"], rec["midi_filename"], rec["audio_filename"]))
        if header is None:
            raise _err(path, 1, f"empty file; expected a header with {','.join(need)}")
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _err(path, err.lineno, f"not valid JSON ({err.msg})") from None
    if isinstance(data, dict):  # column-oriented: {column: {row_id: value}}
        missing = [c for c in need if not isinstance(data.get(c), dict)]
        if missing:
            raise _err(path, None, f"no column(s) {missing}; expected keys {list(need)} mapping "
                                   "row ids to values")
        ids = list(data["split"])
        records = [{c: data[c].get(i) for c in need} for i in ids]
    elif isinstance(data, list):
        records = data
    else:
        raise _err(path, None, "expected a JSON object of columns or a list of records")
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict) or any(not isinstance(rec.get(c), str) for c in need):
            raise _err(path, i, f"record {i} lacks string fields {list(need)}, got {rec!r}")
        rows.append((i, rec["split"], rec["midi_filename"], rec["audio_filename"]))
    return rows


def _pair_by_stem(root: Path) -> list[Piece]:
    pieces = []
    for midi in sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES):
        audio = next((midi.with_suffix(s) for s in _AUDIO_SUFFIXES
                      if midi.with_suffix(s).is_file()), None)
        if audio is not None:
            pieces.append(Piece(stem=audio.stem, audio_path=audio, notes_path=midi, split=None,
                                piece_id=audio.stem))
    if not pieces:
        raise DatasetError(f"{root}: no index file and no .mid/.midi file with an audio file of "
                           "the same stem; expected a MAESTRO-style folder")
    return _unique_stems(pieces)


def _unique_stems(pieces: list[Piece]) -> list[Piece]:
    counts: dict[str, int] = {}
    for p in pieces:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    out = []
    seen: set[str] = set()
    for p in pieces:
        stem = p.stem if counts[p.stem] == 1 else f"{p.audio_path.parent.name}_{p.stem}"
        if stem in seen:
            raise _err(p.audio_path, None, f"stem {stem!r} is not unique even with its folder "
                                           "name; rename the file")
        seen.add(stem)
        out.append(Piece(stem=stem, audio_path=p.audio_path, notes_path=p.notes_path,
                         split=p.split, instrument=p.instrument, piece_id=p.piece_id))
    return sorted(out, key=lambda p: p.stem)


# ----------------------------------------------------------------------------- to the layout

def write_pieces_layout(pieces: Sequence[Piece], out_dir: str | os.PathLike, *,
                        copy: bool = False, overwrite: bool = False) -> dict[str, list[str]]:
    """Write pieces into the generic dataset layout (what ``softloc.data.layout`` reads).

    ``audio/<stem><suffix>`` is a symbolic link to the recording (``copy=True``: a copy),
    ``annotations/<stem>.txt`` holds one ``<onset seconds>\\t<MIDI pitch>`` line per note
    (a recording's note-on times are its sound onsets), and ``splits/<split>.txt`` lists the
    stems of each split that has any. Pieces with ``split=None`` are left out entirely.

    Args:
        pieces: from :func:`scan_maps` or :func:`scan_maestro`.
        out_dir: the dataset folder.
        copy: copy the audio instead of linking to it.
        overwrite: replace files that exist.

    Returns:
        ``{split: [stems]}`` as written.

    Raises:
        FileExistsError: a target exists and ``overwrite`` is False.
        FileNotFoundError, DatasetError: a note list cannot be read.
    """
    out = Path(out_dir)
    splits: dict[str, list[str]] = {}
    for piece in pieces:
        if piece.split is None:
            continue
        if piece.split not in ("train", "valid", "test"):
            raise ValueError(f"write_pieces_layout: piece {piece.stem!r} has split "
                             f"{piece.split!r}; expected 'train', 'valid', 'test' or None")
        events = notes_to_events(piece.read_notes())
        audio = out / "audio" / f"{piece.stem}{piece.audio_path.suffix.lower()}"
        audio.parent.mkdir(parents=True, exist_ok=True)
        if audio.exists() or audio.is_symlink():
            if not overwrite:
                raise FileExistsError(f"{audio}: already exists; not overwriting it "
                                      "(pass overwrite=True)")
            audio.unlink()
        if copy:
            shutil.copyfile(piece.audio_path, audio)
        else:
            audio.symlink_to(piece.audio_path.resolve())
        write_annotation_file(out / "annotations" / f"{piece.stem}.txt", events,
                              overwrite=overwrite)
        splits.setdefault(piece.split, []).append(piece.stem)
    for split, stems in splits.items():
        write_split_file(out / "splits" / f"{split}.txt", stems, overwrite=overwrite)
    return splits
