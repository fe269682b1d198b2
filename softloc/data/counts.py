"""Weak labels from strong ones: ``counts.csv`` of a dataset's annotation folder.

:func:`dataset_counts` (``softloc data counts ROOT --window-s W``) counts the annotated events of
every file in windows ``[k * hop_s, k * hop_s + window_s)``
(:func:`softloc.data.layout.count_windows`) and writes them as ``counts.csv``
(:func:`softloc.data.formats.write_counts_csv`): the weak labels LoCo trains on
(``softloc train --labels counts``). Any annotation folder the layout reads works
(text ``<seconds>\\t<label>`` files, MAPS note lists, IDMT XML, MIDI: ``read_events_any``).

Conventions: times in seconds; one row per (window, class), zeros included, so every window
states the count of every class; a file without an annotation file gets no windows (its counts
are unknown, not zero) and is reported; classes are the labels found in the annotations unless
given (:data:`PIANO_CLASSES` for the 88 keys), sorted numerically when every label is a number
(``"21"`` before ``"108"``), else as strings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from softloc.data.formats import write_counts_csv
from softloc.data.layout import count_windows, load_dataset

__all__ = ["PIANO_CLASSES", "CountsReport", "dataset_counts", "sort_labels"]

#: The 88 piano keys as class labels, MIDI 21 (A0) .. 108 (C8).
PIANO_CLASSES: tuple[str, ...] = tuple(str(p) for p in range(21, 109))


@dataclass(frozen=True)
class CountsReport:
    """What :func:`dataset_counts` wrote.

    Attributes:
        path: the counts file.
        classes: the classes written, in row order.
        n_files: annotated files counted.
        n_windows: windows written (each has one row per class).
        unannotated: stems with audio but no annotation file (left out).
    """

    path: Path
    classes: tuple[str, ...]
    n_files: int
    n_windows: int
    unannotated: tuple[str, ...]


def sort_labels(labels: Sequence[str]) -> list[str]:
    """Labels sorted numerically when all are integers (``"21" < "108"``), else as strings.

    Example:
        >>> sort_labels(["108", "21", "60"])
        ['21', '60', '108']
        >>> sort_labels(["SD", "HH", "KD"])
        ['HH', 'KD', 'SD']
    """
    labels = sorted(set(labels))
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    return labels


def _check_seconds(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: `{name}` must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def dataset_counts(
    root: str | os.PathLike,
    *,
    window_s: float,
    hop_s: float | None = None,
    annotations: str | os.PathLike = "annotations",
    labels: Sequence[str] | None = None,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> CountsReport:
    """Write the counts of a dataset's annotated events per window as ``counts.csv``.

    Args:
        root: the dataset folder (generic layout: ``audio/`` and an annotation folder).
        window_s: window length in seconds (LoCo's 1.5 s for piano and drums).
        hop_s: hop between window starts (default ``window_s / 3``: 1.5 s windows every 0.5 s,
            as the built-in datasets).
        annotations: the annotation folder, relative to ``root`` or absolute.
        labels: the classes to count, in row order (default: every label found, see
            :func:`sort_labels`); events of other labels are ignored.
        out_path: the file to write (default ``ROOT/counts.csv``).
        overwrite: replace an existing file.

    Returns:
        a :class:`CountsReport`.

    Raises:
        ValueError: a bad window or hop, or no annotated file.
        FileExistsError: the file exists and ``overwrite`` is False.
        FileNotFoundError, DatasetError: as :func:`softloc.data.layout.load_dataset` (a malformed
            annotation names its file and line; an existing ``ROOT/counts.csv`` is validated
            too: delete it if it is broken).
    """
    fn = "dataset_counts"
    window_s = _check_seconds(fn, "window_s", window_s)
    hop_s = window_s / 3 if hop_s is None else _check_seconds(fn, "hop_s", hop_s)
    root = Path(root)
    target = root / "counts.csv" if out_path is None else Path(out_path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists; not overwriting it (pass "
                              "overwrite=True, --overwrite on the command line)")
    index = load_dataset(root, annotations=annotations, labels=labels)
    annotated = [s for s in index.stems if index.has_events(s)]
    if not annotated:
        ann = Path(annotations) if Path(annotations).is_absolute() else root / annotations
        raise ValueError(f"{fn}: {ann}: no annotation file for any audio file of {root}/audio; "
                         "expected <stem>.txt (or .xml, .mid) per audio file")
    if labels is None:
        classes = tuple(sort_labels([lab for s in annotated for _, lab in index.events[s] or []]))
        if not classes:
            raise ValueError(f"{fn}: the annotations of {root} hold no event; pass `labels` to "
                             "write zero counts")
    else:
        classes = tuple(index.classes)
    windows = []
    for stem in annotated:
        windows += count_windows(stem, index.events[stem] or [], index.durations_s[stem],
                                 window_s=window_s, hop_s=hop_s, classes=classes)
    write_counts_csv(target, windows, classes=classes, overwrite=overwrite)
    unannotated = tuple(s for s in index.stems if not index.has_events(s))
    return CountsReport(target, classes, len(annotated), len(windows), unannotated)
