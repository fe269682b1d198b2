"""The generic dataset layout: reading it with up-front validation, and writing it atomically.

A dataset is a folder ``ROOT``::

    ROOT/audio/<stem>.wav|.flac|.ogg    any sample rate, mono or multi-channel
    ROOT/annotations/<stem>.txt         strong labels, one '<onset seconds>\\t<label>' per line
                                        (ENST / madmom style; tab or spaces; '#' comments);
                                        <stem>.xml (IDMT-SMT-Drums) and <stem>.mid (MIDI drums)
                                        are read too, see softloc.data.formats
    ROOT/counts.csv                     weak labels, header 'file,start,end,label,count':
                                        `count` events of `label` in [start, end) seconds
    ROOT/splits/train.txt, valid.txt, test.txt   one stem per line (optional; else a seeded split)

Time-series datasets (kind ``"signal"``) hold ``ROOT/signals/<stem>.npy`` (+ ``<stem>.json``:
rate_hz, channels), ``.npz``, ``.csv`` or WFDB ``.hea`` records instead of ``ROOT/audio/``
(:mod:`softloc.data.signals`), and optionally ``ROOT/subjects.csv`` ('stem,subject',
:mod:`softloc.data.subjects`): without ``splits/``, the seeded split is then by subject.

File formats (every reader and writer) live in :mod:`softloc.data.formats`; this module assembles
and cross-checks a whole dataset. Any annotation folder can be named instead of ``annotations/``
(e.g. one holding noisy timestamps). Every file is parsed and cross-checked when the dataset is
loaded, and every problem is reported as ``path:line: what is wrong; expected ...; got '...'``
before any training starts.

Conventions: times in seconds from the start of the file; a count window is half-open
``[start, end)``; for each count window there is one row per class (a count of 0 is a row too);
class names are case-sensitive strings; stems are file names without extension.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

# The readers and writers live in formats; they are re-exported here for the layout's users.
from softloc.data.formats import (
    AUDIO_SUFFIXES,
    COUNTS_HEADER,
    CountWindow,
    DatasetError,
    read_annotation_file,
    read_counts_csv,
    read_events_any,
    read_split_file,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)
from softloc.data.signals import SIGNAL_SUFFIXES, find_signals
from softloc.data.subjects import dataset_subjects, subject_splits

__all__ = [
    "AUDIO_SUFFIXES",
    "COUNTS_HEADER",
    "CountWindow",
    "DatasetError",
    "DatasetIndex",
    "SPLIT_NAMES",
    "count_windows",
    "load_dataset",
    "read_annotation_file",
    "read_counts_csv",
    "read_split_file",
    "write_annotation_file",
    "write_counts_csv",
    "write_split_file",
]
# AUDIO_SUFFIXES ... write_split_file above are defined in softloc.data.formats.

SPLIT_NAMES = ("train", "valid", "test")

Event = tuple[float, str]


def _err(path, line: int | None, msg: str) -> DatasetError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {msg}")


# ----------------------------------------------------------------------------- count windows


def count_windows(stem: str, events: Iterable[Event], duration_s: float, *,
                  window_s: float = 1.5, hop_s: float = 0.5,
                  classes: Sequence[str] | None = None) -> list[CountWindow]:
    """Counts of events per class in windows ``[k * hop_s, k * hop_s + window_s)`` of a file.

    Windows lie wholly inside ``[0, duration_s]``; a file shorter than ``window_s`` gets one
    window ``[0, duration_s)``. Events of labels outside ``classes`` (if given) are ignored.
    """
    if not (window_s > 0 and hop_s > 0 and duration_s > 0):
        raise ValueError(f"count_windows: window_s, hop_s and duration_s must be > 0, got "
                         f"{window_s}, {hop_s}, {duration_s}")
    ev = [(t, lab) for t, lab in events if classes is None or lab in classes]
    labels = list(classes) if classes is not None else sorted({lab for _, lab in ev})
    times = {c: np.sort(np.array([t for t, lab in ev if lab == c], dtype=np.float64))
             for c in labels}
    n = max(1, int(math.floor((duration_s - window_s) / hop_s + 1e-9)) + 1)
    out = []
    for k in range(n):
        start = round(k * hop_s, 9)
        end = round(min(start + window_s, duration_s), 9)
        counts = {c: int(np.searchsorted(times[c], end, side="left")
                         - np.searchsorted(times[c], start, side="left")) for c in labels}
        out.append(CountWindow(stem, start, end, counts))
    return out


# ----------------------------------------------------------------------------- the index

@dataclass(frozen=True)
class DatasetIndex:
    """A validated dataset: what :func:`load_dataset` returns.

    Attributes:
        root: the dataset folder.
        classes: class names, the order of the ``class`` axis everywhere downstream.
        stems: all audio stems, sorted.
        audio_paths: stem -> audio file.
        durations_s: stem -> audio duration in seconds (from the file header).
        events: stem -> sorted ``(onset_s, label)`` list restricted to ``classes``, or ``None``
            where the stem has no annotation file.
        count_windows: stem -> list of :class:`CountWindow` (empty without counts.csv rows);
            each window's ``counts`` holds every class that occurs in counts.csv.
        splits: ``{"train": [...], "valid": [...], "test": [...]}`` lists of stems.
        split_source: ``"splits/"`` when read from files, else ``"seeded (seed=N)"``.
    """

    root: Path
    classes: tuple[str, ...]
    stems: tuple[str, ...]
    audio_paths: Mapping[str, Path]
    durations_s: Mapping[str, float]
    events: Mapping[str, list[Event] | None]
    count_windows: Mapping[str, list[CountWindow]]
    splits: Mapping[str, list[str]]
    split_source: str = field(default="")
    #: ``"audio"`` (``ROOT/audio/``) or ``"signal"`` (``ROOT/signals/``; ``audio_paths`` then
    #: holds the signal files, also named ``source_paths``).
    kind: str = "audio"
    #: stem -> subject (``ROOT/subjects.csv``; each stem its own subject where not listed).
    subjects: Mapping[str, str] = field(default_factory=dict)

    @property
    def source_paths(self) -> Mapping[str, Path]:
        """stem -> input file (audio or signal)."""
        return self.audio_paths

    def with_events(self, events: Mapping[str, list[Event] | None]) -> DatasetIndex:
        """A copy with other events (e.g. perturbed by ``softloc.noise`` for label noise)."""
        unknown = sorted(set(events) - set(self.stems))
        if unknown:
            raise ValueError(f"DatasetIndex.with_events: unknown stems {unknown[:5]}")
        merged = dict(self.events)
        merged.update({s: (None if e is None else sorted(e, key=lambda x: x[0]))
                       for s, e in events.items()})
        return replace(self, events=merged)

    def has_events(self, stem: str) -> bool:
        return self.events.get(stem) is not None

    def summary(self) -> str:
        """A short human-readable table: files, minutes, events and count windows per split."""
        lines = [f"dataset {self.root} (splits: {self.split_source or 'given'})",
                 f"classes: {', '.join(self.classes)}",
                 f"{'split':<6} {'files':>5} {'minutes':>8} {'annotated':>9} {'windows':>8}  "
                 "events per class"]
        for name in SPLIT_NAMES:
            stems = self.splits.get(name, [])
            minutes = sum(self.durations_s[s] for s in stems) / 60
            annotated = sum(1 for s in stems if self.has_events(s))
            n_windows = sum(len(self.count_windows.get(s, [])) for s in stems)
            per_class = {c: sum(1 for s in stems for _, lab in (self.events.get(s) or [])
                                if lab == c) for c in self.classes}
            lines.append(f"{name:<6} {len(stems):>5} {minutes:>8.1f} {annotated:>9} "
                         f"{n_windows:>8}  " + ", ".join(f"{c}={n}" for c, n in per_class.items()))
        return "\n".join(lines)


def _find_audio(audio_dir: Path) -> dict[str, Path]:
    if not audio_dir.is_dir():
        raise DatasetError(f"{audio_dir}: audio folder not found; expected ROOT/audio/<stem>.wav "
                           f"or .flac files")
    found: dict[str, Path] = {}
    for p in sorted(audio_dir.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        if p.stem in found:
            raise DatasetError(f"{p}: two audio files share the stem {p.stem!r} "
                               f"({found[p.stem].name} and {p.name}); expected one file per stem")
        found[p.stem] = p
    if not found:
        raise DatasetError(f"{audio_dir}: no audio files; expected <stem>"
                           f"{'|'.join(AUDIO_SUFFIXES)} files")
    return found


def _audio_duration(path: Path) -> float:
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise DatasetError(f"{path}: cannot read the audio header ({err}); expected a WAV/FLAC/"
                           "OGG file readable by soundfile") from None
    if info.frames == 0:
        raise DatasetError(f"{path}: audio file holds no samples")
    return info.frames / info.samplerate


def load_dataset(root: str | os.PathLike, *, annotations: str | os.PathLike | None = "annotations",
                 labels: Sequence[str] | None = None,
                 label_map: Mapping[str, str] | None = None,
                 split_seed: int = 0,
                 split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 time_tolerance_s: float = 0.05) -> DatasetIndex:
    """Read and validate a dataset in the generic layout (see the module docstring).

    Args:
        root: the dataset folder.
        annotations: the strong-label folder, relative to ``root`` or absolute (default
            ``"annotations"``; it may be absent then). ``None`` ignores annotations.
        labels: the classes, in order. Events and count rows of other labels (after
            ``label_map``) are dropped. ``None``: every label found, sorted.
        label_map: raw label -> class (e.g. ``{"bd": "KD", "sd": "SD", "chh": "HH"}``);
            labels not in it are kept as they are.
        split_seed: seed of the random split used when ``root/splits/`` is absent.
        split_fractions: train / valid / test fractions of that random split (default
            70/15/15, the split of the SoftLoc drum experiments).
        time_tolerance_s: how far beyond the end of its audio an onset or a count window may
            reach before it is an error (default 0.05 s).

    Returns:
        a :class:`DatasetIndex`.

    Raises:
        DatasetError: any malformed or inconsistent file, as ``path:line: ...`` (unknown stems,
            missing audio, a count window without a row for some class, duplicate rows, times past
            the end of the audio, stems in two splits, ...).
        FileNotFoundError: ``root`` or a named annotation folder does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    kind = "signal" if not (root / "audio").is_dir() and (root / "signals").is_dir() else "audio"
    if kind == "signal":
        audio_paths, durations = find_signals(root / "signals")
    else:
        audio_paths = _find_audio(root / "audio")
        durations = {s: _audio_duration(p) for s, p in audio_paths.items()}
    stems = tuple(sorted(audio_paths))
    subjects = dataset_subjects(root, stems)
    mapping = dict(label_map or {})

    def canon(label: str) -> str:
        return mapping.get(label, label)

    # Strong labels.
    raw_events: dict[str, list[Event] | None] = {s: None for s in stems}
    first_seen: dict[str, str] = {}  # label -> where it occurs first (file, or file:line)
    if annotations is not None:
        ann_dir = Path(annotations)
        if not ann_dir.is_absolute():
            ann_dir = root / ann_dir
        if ann_dir.is_dir():
            for p in sorted(ann_dir.iterdir()):
                if p.name.startswith(".") or not p.is_file():
                    continue
                stem = p.stem
                if stem not in audio_paths:
                    raise DatasetError(f"{p}: annotation for unknown stem {stem!r}; expected a "
                                       f"matching audio file {root / 'audio' / stem}.wav|.flac")
                if raw_events[stem] is not None:
                    raise DatasetError(f"{p}: a second annotation file for stem {stem!r}; "
                                       "expected one per stem")
                evs = [(t, canon(lab)) for t, lab in read_events_any(p)]
                for _, lab in evs:
                    first_seen.setdefault(lab, str(p))
                for t, _ in evs:
                    if t > durations[stem] + time_tolerance_s:
                        raise DatasetError(
                            f"{p}: onset {t:g} s is after the end of {audio_paths[stem].name} "
                            f"({durations[stem]:g} s); expected onsets inside the audio")
                raw_events[stem] = evs
        elif annotations != "annotations":
            raise FileNotFoundError(f"{ann_dir}: annotation folder not found")

    # Weak labels.
    rows = []
    counts_path = root / "counts.csv"
    if counts_path.is_file():
        rows = read_counts_csv(counts_path)
    for r in rows:
        first_seen.setdefault(canon(r[4]), f"{counts_path}:{r[0]}")
    _check_label_case(first_seen)

    if labels is not None:
        classes = tuple(labels)
        if len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"load_dataset: `labels` must be distinct and non-empty, got {labels}")
    else:
        found = {lab for evs in raw_events.values() if evs for _, lab in evs}
        found |= {canon(r[4]) for r in rows}
        classes = tuple(sorted(found))
    keep = set(classes)

    events = {s: (None if e is None else [(t, lab) for t, lab in e if lab in keep])
              for s, e in raw_events.items()}
    windows = _group_counts(counts_path, rows, audio_paths, durations, classes, canon,
                            time_tolerance_s)

    splits, source = _load_splits(root, stems, split_seed, split_fractions,
                                  subjects if (root / "subjects.csv").is_file() else None)
    return DatasetIndex(root=root, classes=classes, stems=stems, audio_paths=audio_paths,
                        durations_s=durations, events=events, count_windows=windows,
                        splits=splits, split_source=source, kind=kind, subjects=subjects)


def _check_label_case(first_seen: Mapping[str, str]) -> None:
    """Labels that differ only by case (``kd`` in one file, ``KD`` in another) are an error:
    they would silently become two classes."""
    by_key: dict[str, str] = {}
    for label in sorted(first_seen):
        other = by_key.setdefault(label.casefold(), label)
        if other != label:
            raise DatasetError(f"{first_seen[label]}: label {label!r} differs from {other!r} "
                               f"(in {first_seen[other]}) only by case; expected one spelling "
                               "per class (or a label_map)")


def _group_counts(path, rows, audio_paths, durations, classes, canon, tol):
    windows: dict[str, dict[tuple[float, float], dict]] = {s: {} for s in audio_paths}
    keep = set(classes)
    for lineno, file_, start, end, label, count in rows:
        stem = file_
        for suffix in AUDIO_SUFFIXES + SIGNAL_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        if stem not in audio_paths:
            raise _err(path, lineno, f"unknown file {file_!r}; expected the stem of a file in "
                                     f"audio/ (e.g. {next(iter(audio_paths))!r})")
        if end > durations[stem] + tol:
            raise _err(path, lineno, f"window end {end:g} s is after the end of "
                                     f"{audio_paths[stem].name} ({durations[stem]:g} s); expected "
                                     "windows inside the audio")
        label = canon(label)
        if label not in keep:
            continue
        w = windows[stem].setdefault((start, end), {"line": lineno, "counts": {}, "lines": {}})
        if label in w["counts"]:
            raise _err(path, lineno, f"duplicate row for ({file_}, {start:g}, {end:g}, {label}) "
                                     f"(first on line {w['lines'][label]}); expected one row per "
                                     "window and class")
        w["counts"][label] = count
        w["lines"][label] = lineno
    # A class that never occurs in counts.csv simply has no weak labels; one that occurs must
    # have a row in every window (a missing row is ambiguous: 0, or forgotten?).
    counted = [c for c in classes if any(c in w["counts"] for ws in windows.values()
                                         for w in ws.values())]
    out: dict[str, list[CountWindow]] = {}
    for stem, ws in windows.items():
        lst = []
        for (start, end), w in sorted(ws.items()):
            missing = [c for c in counted if c not in w["counts"]]
            if missing:
                raise _err(path, w["line"], f"window ({stem}, {start:g}, {end:g}) has no row for "
                                            f"class(es) {missing}; expected one row per class "
                                            "(write count 0 where there is no event)")
            lst.append(CountWindow(stem, start, end, dict(w["counts"]), w["line"]))
        out[stem] = lst
    return out


def _load_splits(root: Path, stems: tuple[str, ...], seed: int,
                 fractions: tuple[float, float, float],
                 subjects: Mapping[str, str] | None = None) -> tuple[dict[str, list[str]], str]:
    split_dir = root / "splits"
    known = set(stems)
    if split_dir.is_dir():
        splits: dict[str, list[str]] = {}
        where: dict[str, str] = {}
        for name in SPLIT_NAMES:
            p = split_dir / f"{name}.txt"
            splits[name] = []
            if not p.is_file():
                continue
            for lineno, stem in read_split_file(p):
                if stem not in known:
                    raise _err(p, lineno, f"unknown stem {stem!r}; expected a file in audio/")
                if stem in where:
                    raise _err(p, lineno, f"stem {stem!r} is also in {where[stem]}; expected "
                                          "each stem in one split only")
                where[stem] = f"splits/{name}.txt"
                splits[name].append(stem)
        if not splits["train"] and not splits["test"]:
            raise DatasetError(f"{split_dir}: no stems in train.txt or test.txt; expected "
                               "one stem per line")
        return splits, "splits/"
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1):
        raise ValueError(f"load_dataset: `split_fractions` must be 3 non-negative numbers summing "
                         f"to 1, got {fractions}")
    if subjects is not None:  # ROOT/subjects.csv: no subject on both sides of a split
        return subject_splits(subjects, fractions=fractions, seed=seed), \
            f"seeded by subject (seed={seed})"
    order = np.random.default_rng(seed).permutation(len(stems))
    n_train = int(round(fractions[0] * len(stems)))
    n_valid = int(round(fractions[1] * len(stems)))
    shuffled = [stems[i] for i in order]
    splits = {"train": sorted(shuffled[:n_train]),
              "valid": sorted(shuffled[n_train:n_train + n_valid]),
              "test": sorted(shuffled[n_train + n_valid:])}
    return splits, f"seeded (seed={seed})"
