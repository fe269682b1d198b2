"""Folders of annotations -> metrics: what ``softloc evaluate`` computes.

Conventions: a folder holds one file per recording, named ``<stem>.<suffix>``, in any format
``softloc.data.formats.read_events_any`` reads: what ``softloc detect`` writes (``.txt`` with or
without a score column, ``.json``, ``.mid``) and every annotation format of the data readers
(text ``<seconds>\\t<label>``, IDMT-SMT-Drums ``.xml``, MIDI, MAPS note lists). MIDI files are read
with their pitched tracks too (labels ``"60"``...). When a folder holds one stem in several
formats, the first of :data:`SUFFIX_PRIORITY` is read.

References and detections are matched per file and class within ``tolerance_s`` with mir_eval's
matching (``softloc.metrics.evaluate``). Which files are scored:

* ``files`` (or a ``split_file``) lists the stems: each must have a reference and a detection
  file; a missing one is an error naming it (a file that was never processed cannot pass for
  a silent one);
* otherwise the stems present in BOTH folders are scored, and the result's ``"coverage"`` says
  which were left out (references without detections, detections without references).

An empty detection file means "no events". Classes are ``classes`` if given (other labels are
dropped), else every label found in either folder. ``empty_policy`` is the 0/0 convention of
``softloc.metrics`` (``skip`` / ``zero`` = mir_eval / ``one`` = madmom, ADTOF).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softloc.data.formats import (
    EVENT_FILE_SUFFIXES,
    DatasetError,
    read_events_any,
    read_segment_file,
    read_split_file,
)
from softloc.data.mstcn import read_ground_truth, read_mapping
from softloc.metrics import evaluate
from softloc.metrics.segments import evaluate as evaluate_sequence
from softloc.metrics.segments import evaluate_dataset as evaluate_sequences

__all__ = [
    "SUFFIX_PRIORITY",
    "coverage_report",
    "evaluate_folders",
    "evaluate_segment_folders",
    "event_files",
    "segment_reference",
]

#: Which file of a stem is read when a folder holds several formats of it.
SUFFIX_PRIORITY = (".txt", ".tsv", ".lab", ".json", ".xml", ".mid", ".midi")
assert set(SUFFIX_PRIORITY) == set(EVENT_FILE_SUFFIXES)


def event_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``{stem: path}`` of the annotation / detection files of ``folder`` (not recursive; hidden
    files skipped; one file per stem, by :data:`SUFFIX_PRIORITY`).

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    rank = {s: i for i, s in enumerate(SUFFIX_PRIORITY)}
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        suffix = p.suffix.lower()
        if p.name.startswith(".") or suffix not in rank or not p.is_file():
            continue
        old = found.get(p.stem)
        if old is None or rank[suffix] < rank[old.suffix.lower()]:
            found[p.stem] = p
    return found


def _listed_stems(files: Sequence[str] | None, split_file: str | os.PathLike | None
                  ) -> list[str] | None:
    if files is not None and split_file is not None:
        raise ValueError("evaluate_folders: give `files` or `split_file`, not both")
    if split_file is not None:
        return [s for _, s in read_split_file(split_file)]
    if files is None:
        return None
    stems = []
    for f in files:
        name = Path(str(f)).name
        stem = Path(name).stem if Path(name).suffix.lower() in (
            *EVENT_FILE_SUFFIXES, ".wav", ".flac", ".mp3", ".ogg") else name
        if not stem:
            raise ValueError(f"evaluate_folders: `files` holds an empty name: {list(files)!r}")
        stems.append(stem)
    return list(dict.fromkeys(stems))


def evaluate_folders(
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    *,
    split_file: str | os.PathLike | None = None,
    files: Sequence[str] | None = None,
    tolerance_s: float = 0.05,
    empty_policy: str = "skip",
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score the detections in ``est_dir`` against the references in ``ref_dir``.

    Args:
        ref_dir: reference annotation folder.
        est_dir: detection folder.
        split_file: score the stems listed in this file (one per line).
        files: score these stems (names with or without suffix); exclusive with ``split_file``.
        tolerance_s: matching window in seconds (default 0.05).
        empty_policy: ``"skip"`` (default), ``"zero"`` or ``"one"`` (``softloc.metrics``).
        classes: score these labels only (default: every label found).

    Returns:
        the result of ``softloc.metrics.evaluate`` (``"overall"``, ``"per_class"``,
        ``"per_file"``, ``"settings"``) plus ``"coverage"``: ``{"scored": [...],
        "missing_estimates": [...], "missing_references": [...], "ref_files": {stem: name},
        "est_files": {stem: name}}``.

    Raises:
        FileNotFoundError: a folder is missing, or a listed stem has no reference or detection.
        ValueError: nothing to score (the message says what each folder holds), a malformed
            file (``path:line: ...``), bad ``tolerance_s`` / ``empty_policy``.
    """
    ref_files, est_files = event_files(ref_dir), event_files(est_dir)
    listed = _listed_stems(files, split_file)
    if listed is not None:
        for stem in listed:
            if stem not in ref_files:
                raise FileNotFoundError(f"{Path(ref_dir) / stem}.*: reference annotation missing "
                                        f"(no {stem}{{{','.join(SUFFIX_PRIORITY)}}})")
            if stem not in est_files:
                raise FileNotFoundError(f"{Path(est_dir) / stem}.*: detection file missing (run "
                                        f"`softloc detect` on {stem})")
        stems = listed
    else:
        stems = sorted(set(ref_files) & set(est_files))
    if not stems:
        raise ValueError(
            f"nothing to score: {ref_dir} holds {len(ref_files)} reference file(s), {est_dir} "
            f"holds {len(est_files)} detection file(s), and no stem is in both (files are "
            f"matched by name without suffix; readable: {', '.join(SUFFIX_PRIORITY)})"
        )
    keep = None if classes is None else set(classes)
    reference, estimate = {}, {}
    for stem in stems:
        ref = read_events_any(ref_files[stem], pitched_midi=True)
        est = read_events_any(est_files[stem], pitched_midi=True)
        if keep is not None:
            ref = [e for e in ref if e[1] in keep]
            est = [e for e in est if e[1] in keep]
        reference[stem], estimate[stem] = ref, est
    if classes is None:
        classes = sorted({lab for ev in reference.values() for _, lab in ev}
                         | {lab for ev in estimate.values() for _, lab in ev})
    results = evaluate(reference, estimate, tolerance_s=tolerance_s, classes=list(classes),
                       empty_policy=empty_policy)  # type: ignore[arg-type]
    results["coverage"] = {
        "scored": list(stems),
        "missing_estimates": sorted(set(ref_files) - set(est_files)),
        "missing_references": sorted(set(est_files) - set(ref_files)),
        "ref_files": {s: ref_files[s].name for s in stems},
        "est_files": {s: est_files[s].name for s in stems},
    }
    return results


def coverage_report(results: dict[str, Any], *, limit: int = 5) -> str:
    """One or two lines: how many files were scored and which were left out (for the CLI)."""
    cov = results.get("coverage") or {}

    def names(stems: list[str]) -> str:
        more = f" ... (+{len(stems) - limit})" if len(stems) > limit else ""
        return ", ".join(stems[:limit]) + more

    lines = [f"scored {len(cov.get('scored', []))} file(s)"]
    if cov.get("missing_estimates"):
        lines.append(f"not scored, no detection file: {len(cov['missing_estimates'])} "
                     f"({names(cov['missing_estimates'])})")
    if cov.get("missing_references"):
        lines.append(f"not scored, no reference file: {len(cov['missing_references'])} "
                     f"({names(cov['missing_references'])})")
    return "; ".join(lines)


# --------------------------------------------------------------------------- segmentation


def segment_reference(folder: str | os.PathLike) -> tuple[Path, tuple[str, ...]] | None:
    """``(per-frame label folder, classes)`` when ``folder`` is an MS-TCN dataset (with
    ``mapping.txt`` and ``groundTruth/``) or its ``groundTruth`` folder; else None."""
    folder = Path(folder)
    for root, labels in ((folder, folder / "groundTruth"), (folder.parent, folder)):
        if (root / "mapping.txt").is_file() and labels.is_dir() and labels.name == "groundTruth":
            return labels, read_mapping(root / "mapping.txt")
    return None


def _segment_frames(path: Path, classes: Sequence[str], n_frames: int,
                    frame_rate: float) -> np.ndarray:
    """Per-frame class indices ``(n_frames,)`` of a segment file (module docstring)."""
    index = {name: i for i, name in enumerate(classes)}
    out = np.full(n_frames, -1, dtype=np.int64)
    segments = read_segment_file(path)
    for k, (start_s, end_s, label) in enumerate(segments, start=1):
        if label not in index:
            raise DatasetError(f"{path}: segment {k}: unknown class {label!r}; mapping.txt has "
                               f"{', '.join(list(classes)[:6])}")
        out[round(start_s * frame_rate):round(end_s * frame_rate)] = index[label]
    end_s = max((e for _, e, _ in segments), default=0.0)
    ref_s = n_frames / frame_rate
    if end_s - ref_s > max(1.0, 0.05 * ref_s):
        raise DatasetError(f"{path}: the segments end at {end_s:g} s, the reference ends at "
                           f"{ref_s:g} s ({n_frames} frames at {frame_rate:g} fps); is the frame "
                           "rate right?")
    gap = np.flatnonzero(out < 0)
    if gap.size:
        raise DatasetError(
            f"{path}: no segment covers frame {gap[0]} ({gap[0] / frame_rate:.3f} s) of the "
            f"{n_frames} reference frames at {frame_rate:g} fps ({gap.size} uncovered); is the "
            "frame rate right?")
    return out


def evaluate_segment_folders(
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    *,
    frame_rate: float,
    split_file: str | os.PathLike | None = None,
    files: Sequence[str] | None = None,
    empty_policy: str = "skip",
    ignore_classes: Sequence[str] = (),
) -> dict[str, Any]:
    """Score segment files in ``est_dir`` against an MS-TCN dataset's per-frame labels.

    Args:
        ref_dir: the dataset folder or its ``groundTruth`` folder (:func:`segment_reference`).
        est_dir: folder of ``<video>.txt`` segment files (``softloc detect``).
        frame_rate: frames per second of the reference labels (the feature files' rate).
        split_file, files: the stems to score, as :func:`evaluate_folders`.
        empty_policy: 0/0 convention of ``softloc.metrics.segments``.
        ignore_classes: class names left out of F1 and edit (e.g. ``["background"]``).

    Returns:
        ``{"overall": softloc.metrics.segments.evaluate_dataset(...), "per_file": {stem:
        softloc.metrics.segments.evaluate(...)}, "coverage": {...}}`` (coverage as
        :func:`evaluate_folders`).

    Raises:
        ValueError: ``ref_dir`` is not an MS-TCN dataset, a bad ``frame_rate``, an unknown
            ignored class, nothing to score; DatasetError for a malformed file (path:line).
        FileNotFoundError: a listed stem without a reference or an estimate.
    """
    fn = "evaluate_segment_folders"
    found = segment_reference(ref_dir)
    if found is None:
        raise ValueError(f"{fn}: {ref_dir}: not an MS-TCN dataset (expected mapping.txt and "
                         "groundTruth/, or the groundTruth folder of one)")
    labels_dir, classes = found
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, int | float) \
            or not 0 < frame_rate < float("inf"):
        raise ValueError(f"{fn}: `frame_rate` must be a finite number > 0, got {frame_rate!r}")
    unknown = [c for c in ignore_classes if c not in classes]
    if unknown:
        raise ValueError(f"{fn}: `ignore_classes` {unknown} are not classes of {labels_dir}")
    ignored = [classes.index(c) for c in ignore_classes]
    ref_files = {p.stem: p for p in sorted(labels_dir.glob("*.txt"))}
    if not Path(est_dir).is_dir():
        raise FileNotFoundError(f"{est_dir}: folder not found")
    est_files = {p.stem: p for p in sorted(Path(est_dir).glob("*.txt"))
                 if not p.name.startswith(".")}
    listed = _listed_stems(files, split_file)
    for stem in listed or []:
        if stem not in ref_files:
            raise FileNotFoundError(f"{labels_dir / stem}.txt: reference labels missing")
        if stem not in est_files:
            raise FileNotFoundError(f"{Path(est_dir) / stem}.txt: segment file missing (run "
                                    f"`softloc detect` on {stem})")
    stems = listed if listed is not None else sorted(set(ref_files) & set(est_files))
    if not stems:
        raise ValueError(f"nothing to score: {labels_dir} holds {len(ref_files)} label file(s), "
                         f"{est_dir} holds {len(est_files)} segment file(s), no stem in both")
    refs = [read_ground_truth(ref_files[s], classes) for s in stems]
    ests = [_segment_frames(est_files[s], classes, r.size, float(frame_rate))
            for s, r in zip(stems, refs, strict=True)]
    per_file = {s: evaluate_sequence(r, e, ignore_classes=ignored, empty_policy=empty_policy)
                for s, r, e in zip(stems, refs, ests, strict=True)}
    return {
        "overall": evaluate_sequences(refs, ests, ignore_classes=ignored,
                                      empty_policy=empty_policy),
        "per_file": per_file,
        "coverage": {
            "scored": list(stems),
            "missing_estimates": sorted(set(ref_files) - set(est_files)),
            "missing_references": sorted(set(est_files) - set(ref_files)),
        },
    }
