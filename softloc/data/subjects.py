"""Subjects: which person (device, kit ...) each stem comes from; splits and folds by subject.

``ROOT/subjects.csv`` (header ``stem,subject``, one row per stem) maps the stems of a dataset in
the generic layout to subjects; a stem that is not listed is its own subject. Splits and
leave-one-subject-out folds never put one subject on both sides, so a score on the test side is
a score on people never seen in training (SoftLoc §5.2: leave-one-patient-out).

Conventions: stems and subjects are non-empty strings without commas; every function returns
sorted stems; randomness comes from ``numpy.random.default_rng`` seeded by the caller.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softloc._io import atomic_write_text
from softloc.data.signals import SignalError, read_utf8

__all__ = [
    "SUBJECTS_HEADER",
    "SubjectFold",
    "leave_one_subject_out",
    "dataset_subjects",
    "read_subjects_csv",
    "subject_splits",
    "write_subjects_csv",
]

#: The header of ``subjects.csv``.
SUBJECTS_HEADER = ("stem", "subject")


def read_subjects_csv(path: str | os.PathLike) -> dict[str, str]:
    """Read ``subjects.csv`` (header ``stem,subject``): stem -> subject.

    Raises:
        FileNotFoundError: no such file.
        SignalError: a bad header, a row without two non-empty fields, or a stem listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: subjects file not found")
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    header_seen = False
    text = read_utf8(path, "a UTF-8 CSV file 'stem,subject'")
    try:  # newline="": a lone CR ends a line, as in the files spreadsheets write
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise SignalError(f"{path}: not valid CSV ({err})") from None
    for lineno, row in enumerate(rows, start=1):
        row = [f.strip() for f in row]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        if not header_seen:
            if tuple(f.lower() for f in row) != SUBJECTS_HEADER:
                raise SignalError(f"{path}:{lineno}: bad header; expected 'stem,subject', got "
                                  f"{','.join(row)!r}")
            header_seen = True
            continue
        if len(row) != 2 or not row[0] or not row[1]:
            raise SignalError(f"{path}:{lineno}: expected 2 non-empty fields 'stem,subject', got "
                              f"{','.join(row)!r}")
        if row[0] in out:
            raise SignalError(f"{path}:{lineno}: stem {row[0]!r} listed twice (first on line "
                              f"{first[row[0]]}); expected one subject per stem")
        out[row[0]] = row[1]
        first[row[0]] = lineno
    if not header_seen:
        raise SignalError(f"{path}:1: empty file; expected the header 'stem,subject'")
    return out


def dataset_subjects(root: str | os.PathLike, stems: Sequence[str]) -> dict[str, str]:
    """Stem -> subject of a dataset: ``ROOT/subjects.csv`` where present, each stem its own
    subject where not listed (or without the file).

    Raises:
        SignalError: a malformed ``subjects.csv`` or one naming a stem the dataset lacks.
    """
    path = Path(root) / "subjects.csv"
    out = {s: s for s in stems}
    if not path.is_file():
        return out
    listed = read_subjects_csv(path)
    unknown = sorted(set(listed) - set(stems))
    if unknown:
        raise SignalError(f"{path}: unknown stem {unknown[0]!r}; expected stems of the dataset's "
                          f"files (e.g. {sorted(stems)[:3]})")
    out.update(listed)
    return out


def write_subjects_csv(path: str | os.PathLike, subjects: Mapping[str, str], *,
                       overwrite: bool = False) -> None:
    """Write ``subjects.csv`` (header ``stem,subject``, one row per stem, sorted), atomically."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(SUBJECTS_HEADER)
    for stem in sorted(subjects):
        for name, v in (("stem", stem), ("subject", subjects[stem])):
            if not isinstance(v, str) or not v or "," in v or v != v.strip():
                raise ValueError(f"write_subjects_csv: {name} must be a non-empty string without "
                                 f"commas or outer spaces, got {v!r}")
        w.writerow([stem, subjects[stem]])
    atomic_write_text(path, out.getvalue(), overwrite=overwrite)


def _group(subjects: Mapping[str, str]) -> dict[str, list[str]]:
    if not subjects:
        raise ValueError("subject splits: `subjects` is empty; expected stem -> subject")
    groups: dict[str, list[str]] = {}
    for stem, subj in subjects.items():
        groups.setdefault(subj, []).append(stem)
    return {s: sorted(v) for s, v in sorted(groups.items())}


def subject_splits(subjects: Mapping[str, str], *,
                   fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                   seed: int = 0) -> dict[str, list[str]]:
    """A seeded train / valid / test split of stems BY SUBJECT (a subject is on one side only).

    Subjects are shuffled with ``numpy.random.default_rng(seed)``; the first
    ``round(fractions[0] * n_subjects)`` go to train, the next ``round(fractions[1] * n)`` to
    valid, the rest to test.

    Args:
        subjects: stem -> subject (e.g. :func:`read_subjects_csv`; ``{s: s for s in stems}``
            when every record is its own subject).
        fractions: train / valid / test fractions of the subjects (non-negative, sum 1).
        seed: the shuffle seed.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, sorted stems.

    Raises:
        ValueError: empty ``subjects`` or bad ``fractions``.
    """
    fn = "subject_splits"
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1):
        raise ValueError(f"{fn}: `fractions` must be 3 non-negative numbers summing to 1, got "
                         f"{fractions}")
    groups = _group(subjects)
    names = list(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    n_train = int(round(fractions[0] * len(names)))
    n_valid = int(round(fractions[1] * len(names)))
    picked = [names[i] for i in order]
    parts = {"train": picked[:n_train], "valid": picked[n_train:n_train + n_valid],
             "test": picked[n_train + n_valid:]}
    return {k: sorted(s for subj in v for s in groups[subj]) for k, v in parts.items()}


@dataclass(frozen=True)
class SubjectFold:
    """One leave-one-subject-out fold: ``test_subject``'s stems are the test set."""

    test_subject: str
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]


def leave_one_subject_out(subjects: Mapping[str, str], *, n_valid_subjects: int = 0,
                          seed: int = 0) -> list[SubjectFold]:
    """Leave-one-subject-out folds (SoftLoc §5.2: leave-one-patient-out), one per subject.

    Args:
        subjects: stem -> subject.
        n_valid_subjects: how many of the remaining subjects each fold holds out for validation
            (chosen with ``default_rng((seed, fold))``); the rest train.
        seed: seed of that choice.

    Returns:
        one :class:`SubjectFold` per subject, in sorted subject order.

    Raises:
        ValueError: fewer than 2 subjects, or ``n_valid_subjects`` leaves no training subject.
    """
    fn = "leave_one_subject_out"
    groups = _group(subjects)
    names = list(groups)
    if len(names) < 2:
        raise ValueError(f"{fn}: need at least 2 subjects, got {len(names)}")
    if isinstance(n_valid_subjects, bool) or not isinstance(n_valid_subjects, int) \
            or not 0 <= n_valid_subjects <= len(names) - 2:
        raise ValueError(f"{fn}: `n_valid_subjects` must be an int in [0, {len(names) - 2}], "
                         f"got {n_valid_subjects!r}")
    folds = []
    for k, held in enumerate(names):
        rest = [s for s in names if s != held]
        order = np.random.default_rng((seed, k)).permutation(len(rest))
        valid_subj = {rest[i] for i in order[:n_valid_subjects]}
        train = sorted(s for subj in rest if subj not in valid_subj for s in groups[subj])
        valid = sorted(s for subj in valid_subj for s in groups[subj])
        folds.append(SubjectFold(held, tuple(train), tuple(valid), tuple(groups[held])))
    return folds
