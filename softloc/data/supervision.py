"""Mixed and uneven supervision: per-file / per-annotator softness, count-only files (SoftLoc §4.4).

SoftLoc's softness is a statement about how much a timestamp can be trusted, so it may differ
between annotators and between files, and a file with counts only is the limit softness → ∞
(SoftLoc eq. 6: only the count term is left). This module turns what a user has into training
windows that carry their own softness:

* **Annotators.** Several annotation folders, each ``DIR`` or ``DIR:SOFTNESS_MS`` (e.g.
  ``--annotations expert:20 --annotations crowd:120``), relative to the dataset root or absolute.
  A file annotated by several people is trained on each version (SoftLoc §4.4: train on all
  conflicting sequences instead of aggregating them); each version with its annotator's softness.
* **Per-file softness.** An optional ``ROOT/softness.csv`` (or any path)::

      file,softness_ms
      track03,150          # a hard passage: trust its timestamps less
      track07,inf          # use only the COUNTS of its annotation (SoftLoc eq. 6)

  A row overrides the annotator's softness for that file in every folder; ``file`` is a stem or an
  audio file name. Softness in milliseconds, ``>= 0`` (0 = exact frames) or ``inf``.
* **Count-only files.** Training files with ``counts.csv`` rows but no annotation in any folder
  are trained from their counts (softness ∞, ``labels="counts"`` windows).

Precedence of the softness of one (folder, file): ``softness.csv`` row > the folder's
``:SOFTNESS_MS`` > the run's ``loss.softness_ms``.

:func:`plan_supervision` reads and checks all of it (errors as ``path:line: ...``) and returns a
:class:`SupervisionPlan`: groups of stems that share a label source and a softness.
:func:`supervised_windows` turns the plan into one torch ``Dataset`` (a concatenation of
``softloc.data.windows.WindowDataset``, one per group) through a factory supplied by the caller,
so window length, augmentation and padding stay the caller's settings. Every item carries
``"sigma_frames"`` (``inf`` = counts only), which ``softloc.losses.softloc_loss`` takes per item.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset

from softloc.data.formats import parse_softness_ms, read_softness_csv
from softloc.data.layout import DatasetIndex, load_dataset
from softloc.timebase import ms_to_frames

__all__ = [
    "SOFTNESS_CSV",
    "AnnotationSource",
    "SupervisionPlan",
    "WindowGroup",
    "parse_annotation_source",
    "plan_supervision",
    "read_softness_csv",
    "supervised_windows",
]

#: Per-file softness table read from the dataset root when present.
SOFTNESS_CSV = "softness.csv"


@dataclass(frozen=True)
class AnnotationSource:
    """One annotator: an annotation folder and, optionally, its softness.

    Attributes:
        folder: annotation folder, relative to the dataset root or absolute.
        softness_ms: softness of this annotator's timestamps in ms (``>= 0`` or ``inf``);
            ``None`` = the run's ``loss.softness_ms``.
    """

    folder: str
    softness_ms: float | None = None

    def __str__(self) -> str:
        return self.folder if self.softness_ms is None else f"{self.folder}:{self.softness_ms:g}"


def parse_annotation_source(text: str) -> AnnotationSource:
    """Parse ``"DIR"`` or ``"DIR:SOFTNESS_MS"`` (``"crowd:120"``, ``"crowd:120ms"``, ``"x:inf"``).

    The softness is split at the LAST colon only when what follows is a softness, so Windows
    paths such as ``C:\\labels`` stay folders.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: an empty folder, or a negative / malformed softness after the colon.

    Example:
        >>> parse_annotation_source("crowd:120")
        AnnotationSource(folder='crowd', softness_ms=120.0)
    """
    fn = "parse_annotation_source"
    if not isinstance(text, str):
        raise TypeError(f"{fn}: expected a string 'DIR' or 'DIR:SOFTNESS_MS', got "
                        f"{type(text).__name__}")
    folder, sep, tail = text.rpartition(":")
    if sep and folder.strip():
        soft = parse_softness_ms(tail)
        if soft is not None:
            return AnnotationSource(folder.strip(), soft)
        if re.match(r"\s*([-+.\d]|inf)", tail, re.I):  # meant as a softness, but malformed
            raise ValueError(f"{fn}: bad softness in {text!r}; expected 'DIR:SOFTNESS_MS' with a "
                             "number of milliseconds >= 0 or 'inf', e.g. 'crowd:120'")
    if not text.strip() or (sep and not folder.strip() and parse_softness_ms(tail) is not None):
        raise ValueError(f"{fn}: empty annotation folder in {text!r}; expected 'DIR' or "
                         "'DIR:SOFTNESS_MS'")
    return AnnotationSource(text.strip(), None)


@dataclass(frozen=True)
class WindowGroup:
    """Training stems that share a label source and a softness.

    Attributes:
        source: the annotation folder (as given), or ``"counts.csv"``.
        labels: ``"onsets"`` (windows cut from the annotated files) or ``"counts"``.
        index: the dataset read with this source's annotations.
        stems: the stems of the group.
        softness_ms: softness in ms (``inf`` = counts only).
        sigma_frames: the same in frames (what the items carry).
    """

    source: str
    labels: str
    index: DatasetIndex
    stems: tuple[str, ...]
    softness_ms: float
    sigma_frames: float


@dataclass(frozen=True)
class SupervisionPlan:
    """What :func:`plan_supervision` returns: the window groups, in a fixed order."""

    groups: tuple[WindowGroup, ...]

    def summary(self) -> str:
        """One line per group: source, mode, files, softness."""
        lines = []
        for g in self.groups:
            soft = "inf (counts only)" if math.isinf(g.softness_ms) else f"{g.softness_ms:g} ms"
            lines.append(f"{g.source}: {len(g.stems)} files, {g.labels}, softness {soft}")
        return "\n".join(lines)

    @property
    def n_files(self) -> int:
        """Distinct training files over all groups."""
        return len({s for g in self.groups for s in g.stems})


def plan_supervision(
    root: str | os.PathLike,
    stems: Sequence[str],
    *,
    sources: Sequence[AnnotationSource | str] = ("annotations",),
    default_softness_ms: float,
    frame_rate: float,
    softness_csv: str | os.PathLike | None = None,
    counts_only: bool = True,
    classes: Sequence[str] | None = None,
) -> SupervisionPlan:
    """Decide, for every training file, where its labels come from and with which softness.

    Args:
        root: the dataset folder (generic layout).
        stems: the training stems (e.g. ``index.splits["train"]``).
        sources: annotators, as :class:`AnnotationSource` or ``"DIR[:SOFTNESS_MS]"`` strings.
        default_softness_ms: softness of a source without its own (the run's
            ``loss.softness_ms``).
        frame_rate: frames per second of the features (softness in ms -> frames).
        softness_csv: per-file softness table; default ``ROOT/softness.csv`` when it exists.
        counts_only: train stems without any annotation from their ``counts.csv`` windows
            (``False``: such stems are an error).
        classes: the class order (default: every label found in the first source).

    Returns:
        a :class:`SupervisionPlan`: for each source, one group per distinct softness (in order
        of first appearance), then one ``counts.csv`` group.

    Raises:
        ValueError: no stems or sources, a negative default softness, a source listed twice, a
            stem without any label (annotation or counts.csv rows).
        DatasetError, FileNotFoundError: from the files (``path:line: ...``).
    """
    fn = "plan_supervision"
    root = Path(root)
    stems = list(stems)
    if not stems:
        raise ValueError(f"{fn}: `stems` is empty; expected the training stems")
    parsed = [s if isinstance(s, AnnotationSource) else parse_annotation_source(s)
              for s in sources]
    if not parsed:
        raise ValueError(f"{fn}: `sources` is empty; expected at least one annotation folder")
    folders = [s.folder for s in parsed]
    if len(set(folders)) != len(folders):
        raise ValueError(f"{fn}: an annotation folder is listed twice in {folders}")
    if not (isinstance(default_softness_ms, int | float) and default_softness_ms >= 0):
        raise ValueError(f"{fn}: `default_softness_ms` must be >= 0, got {default_softness_ms!r}")

    indexes: list[DatasetIndex] = []
    for src in parsed:
        folder = Path(src.folder)
        full = folder if folder.is_absolute() else root / folder
        if not full.is_dir():
            raise FileNotFoundError(f"{full}: annotation folder not found (from {str(src)!r})")
        index = load_dataset(root, annotations=src.folder, labels=classes)
        if classes is None:
            classes = index.classes  # later sources use the first one's class order
        indexes.append(index)
    unknown = [s for s in stems if s not in indexes[0].durations_s]
    if unknown:
        raise ValueError(f"{fn}: unknown stems {unknown[:5]}; expected stems of {root}/audio/")

    if softness_csv is None and (root / SOFTNESS_CSV).is_file():
        softness_csv = root / SOFTNESS_CSV
    per_file = read_softness_csv(softness_csv, stems=indexes[0].stems) \
        if softness_csv is not None else {}

    groups: list[WindowGroup] = []
    annotated: set[str] = set()
    for src, index in zip(parsed, indexes, strict=True):
        by_soft: dict[float, list[str]] = {}
        for stem in stems:
            if not index.has_events(stem):
                continue
            annotated.add(stem)
            soft = per_file.get(stem, src.softness_ms if src.softness_ms is not None
                                else float(default_softness_ms))
            by_soft.setdefault(soft, []).append(stem)
        for soft, group in by_soft.items():
            sigma = math.inf if math.isinf(soft) else ms_to_frames(soft, frame_rate)
            groups.append(WindowGroup(src.folder, "onsets", index, tuple(group), soft, sigma))
    rest = [s for s in stems if s not in annotated]
    if rest:
        no_counts = [s for s in rest if not indexes[0].count_windows.get(s)]
        if not counts_only or no_counts:
            missing = no_counts if counts_only else rest
            raise ValueError(
                f"{fn}: no labels for training stems {missing[:5]}: no annotation file in "
                f"{folders}" + (" and no counts.csv rows" if counts_only else
                                " (count-only files are disabled)")
            )
        groups.append(WindowGroup("counts.csv", "counts", indexes[0], tuple(rest), math.inf,
                                  math.inf))
    return SupervisionPlan(tuple(groups))


def supervised_windows(
    plan: SupervisionPlan,
    make_windows: Callable[[DatasetIndex, list[str], str, float], Dataset],
) -> ConcatDataset:
    """One training ``Dataset`` for the whole plan.

    Args:
        plan: from :func:`plan_supervision`.
        make_windows: ``make_windows(index, stems, labels, sigma_frames)`` -> a dataset of window
            items (normally a ``functools.partial`` of ``softloc.data.windows.WindowDataset``
            holding the caller's store, window length, augmentation and padding). Every group
            must give items of the same keys and shapes.

    Returns:
        a ``torch.utils.data.ConcatDataset`` of one dataset per group (``.datasets`` in plan
        order); items keep their ``"sigma_frames"`` (``inf`` for counts only).

    Raises:
        ValueError: an empty plan.
    """
    if not plan.groups:
        raise ValueError("supervised_windows: the plan has no groups")
    return ConcatDataset([make_windows(g.index, list(g.stems), g.labels, g.sigma_frames)
                          for g in plan.groups])

