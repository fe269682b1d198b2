"""MAPS and MAESTRO folders into the generic layout, ready for ``softloc train``.

:func:`import_maps` (``softloc data import-maps``) and :func:`import_maestro`
(``softloc data import-maestro``) find the recordings and their note lists
(:func:`softloc.data.piano_folders.scan_maps`,
:func:`~softloc.data.piano_folders.scan_maestro`), write them into the generic layout
(:func:`~softloc.data.piano_folders.write_pieces_layout`: audio linked or copied,
``annotations/<stem>.txt`` with one ``<onset seconds>\\t<MIDI pitch>`` per note, ``splits/``) and
add the weak labels ``counts.csv`` for the 88 keys (:func:`softloc.data.counts.dataset_counts`).

Splits:
    * MAPS with ``papers_split=True``: the protocol of Onsets and Frames, LoCo and SoftLoc (fact
      sheet §2.1): train on the ``MUS`` pieces of the seven synthesized pianos whose piece is
      not in the test set, test on the Disklavier recordings (``ENSTDkCl``, ``ENSTDkAm``); no
      ``valid.txt`` (``softloc train`` carves a seeded validation set out of train and says so).
    * MAPS without it, and MAESTRO pieces that the index gives no split: a seeded split by
      *piece* (``split_fractions``, default 70/15/15), so one piece recorded on several pianos
      never lands in two splits.
    * MAESTRO with an index: the index's train / validation / test.

Conventions: labels are MIDI pitch numbers ``"21"``..``"108"``; a recording's note-on times are
its sound onsets; ``import.json`` records the source, the rule and the split sizes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from softloc._io import atomic_write_text
from softloc.data.counts import PIANO_CLASSES, dataset_counts
from softloc.data.piano_folders import Piece, scan_maestro, scan_maps, write_pieces_layout

__all__ = ["ImportReport", "assign_piece_splits", "import_maestro", "import_maps"]

_SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote.

    Attributes:
        root: the dataset folder.
        splits: ``{split: [stems]}`` as written.
        rule: how the splits were chosen (one line).
        counts_windows: windows in ``counts.csv`` (0 when not written).
        left_out: recordings found but in no split (MAPS protocol: training pianos playing a
            test piece, pianos of neither list).
    """

    root: Path
    splits: dict[str, list[str]]
    rule: str
    counts_windows: int
    left_out: int


def assign_piece_splits(pieces: Sequence[Piece], *, seed: int = 0,
                        fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                        ) -> list[Piece]:
    """Give every piece without a split one, seeded and grouped by ``piece_id``.

    The distinct piece ids (sorted) are shuffled with ``numpy.random.default_rng(seed)``; the
    first ``round(fractions[0] * n)`` go to train, the next ``round(fractions[1] * n)`` to valid,
    the rest to test; every recording of a piece follows its piece. Pieces that have a split
    keep it.

    Raises:
        ValueError: ``fractions`` not 3 numbers >= 0 summing to 1.
    """
    if len(fractions) != 3 or any(not (f >= 0) for f in fractions) or \
            not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"assign_piece_splits: `fractions` must be 3 numbers >= 0 summing to "
                         f"1, got {fractions}")
    ids = sorted({p.piece_id or p.stem for p in pieces if p.split is None})
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round(fractions[0] * len(ids)))
    n_valid = int(round(fractions[1] * len(ids)))
    split_of = {}
    for rank, k in enumerate(order):
        split_of[ids[k]] = ("train" if rank < n_train else
                            "valid" if rank < n_train + n_valid else "test")
    return [p if p.split is not None else replace(p, split=split_of[p.piece_id or p.stem])
            for p in pieces]


def _finish(out: Path, pieces: list[Piece], *, rule: str, source: Path, copy: bool,
            counts: bool, window_s: float, hop_s: float, overwrite: bool) -> ImportReport:
    out.mkdir(parents=True, exist_ok=True)
    splits = write_pieces_layout(pieces, out, copy=copy, overwrite=overwrite)
    n_windows = 0
    if counts:
        n_windows = dataset_counts(out, window_s=window_s, hop_s=hop_s, labels=PIANO_CLASSES,
                                   overwrite=overwrite).n_windows
    left_out = sum(1 for p in pieces if p.split is None)
    atomic_write_text(out / "import.json", json.dumps({
        "source": str(source), "rule": rule, "copy": copy,
        "splits": {s: len(splits.get(s, [])) for s in _SPLITS}, "left_out": left_out,
        "counts": {"window_s": window_s, "hop_s": hop_s} if counts else None,
        "labels": "MIDI pitch numbers 21..108; note-on times of the recordings",
    }, indent=1) + "\n", overwrite=True)
    return ImportReport(out, splits, rule, n_windows, left_out)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty; choose a new folder or pass "
                              "overwrite=True (--overwrite)")


def import_maps(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                papers_split: bool = False, seed: int = 0,
                split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                copy: bool = False, counts: bool = True, window_s: float = 1.5,
                hop_s: float = 1.5, overwrite: bool = False) -> ImportReport:
    """Import the MAPS ``MUS`` recordings under ``src`` into the generic layout at ``out_dir``.

    Args:
        src: the MAPS folder (as unzipped: ``<piano>/MUS/MAPS_MUS-<piece>_<piano>.wav`` + .txt).
        out_dir: the dataset folder to write (absent or empty unless ``overwrite``).
        papers_split: the papers' split (train: synthesized pianos minus the test pieces;
            test: ENSTDkCl + ENSTDkAm; no valid.txt). Default: every piano, a seeded split by
            piece (:func:`assign_piece_splits`).
        seed, split_fractions: of the split by piece.
        copy: copy the audio instead of linking to it.
        counts: write ``counts.csv`` (the 88 keys) with ``window_s`` windows every ``hop_s``
            (default 1.5 s every 1.5 s: LoCo's training windows; MAPS is long, and overlapping
            windows triple the file).
        overwrite: write into a non-empty folder, replacing files.

    Returns:
        an :class:`ImportReport`.

    Raises:
        FileNotFoundError, DatasetError: as :func:`~softloc.data.piano_folders.scan_maps` (no
            MAPS file, a wav without its note list) and the note-list reader (``path:line: ...``).
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    out = Path(out_dir)
    _check_out(out, overwrite)
    pieces = scan_maps(src)
    if papers_split:
        rule = ("MAPS papers' split (Onsets and Frames / LoCo / SoftLoc): train = MUS pieces of "
                "the 7 synthesized pianos not played in test, test = ENSTDkCl + ENSTDkAm MUS")
    else:
        pieces = assign_piece_splits([replace(p, split=None) for p in pieces], seed=seed,
                                     fractions=split_fractions)
        rule = (f"every MAPS MUS recording, split by piece (seed {seed}, fractions "
                f"{list(split_fractions)})")
    return _finish(out, pieces, rule=rule, source=Path(src), copy=copy, counts=counts,
                   window_s=window_s, hop_s=hop_s, overwrite=overwrite)


def import_maestro(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                   index: str | os.PathLike | None = None, seed: int = 0,
                   split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                   copy: bool = False, counts: bool = True, window_s: float = 1.5,
                   hop_s: float = 1.5, overwrite: bool = False) -> ImportReport:
    """Import a MAESTRO-style folder (audio + MIDI pairs) into the generic layout.

    Splits come from the index (``maestro-v*.csv``/``.json``, see
    :func:`~softloc.data.piano_folders.scan_maestro`); pieces without one (no index) get a
    seeded split by piece. Other arguments as :func:`import_maps`.

    Raises:
        FileNotFoundError, DatasetError: as :func:`~softloc.data.piano_folders.scan_maestro`.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    out = Path(out_dir)
    _check_out(out, overwrite)
    pieces = scan_maestro(src, index=index)
    unsplit = sum(1 for p in pieces if p.split is None)
    pieces = assign_piece_splits(pieces, seed=seed, fractions=split_fractions)
    rule = ("the index's train/validation/test" if not unsplit else
            f"no index: split by piece (seed {seed}, fractions {list(split_fractions)})")
    return _finish(out, pieces, rule=rule, source=Path(src), copy=copy, counts=counts,
                   window_s=window_s, hop_s=hop_s, overwrite=overwrite)
