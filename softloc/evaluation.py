"""Folders of annotations -> metrics: what ``softloc evaluate`` computes.

Conventions: a folder holds one ``<stem>.txt`` per file, ``'<seconds>\\t<label>'`` per line (the
annotation format, ``softloc.data.formats.read_annotation_file``; ``softloc detect`` writes the
same). References and detections are matched per file and class within ``tolerance_s`` with
mir_eval's matching (``softloc.metrics.evaluate``). An empty detection file means "no events";
a missing one is an error, so a file that was never processed cannot pass for a silent one.
Classes are every label found in either folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from softloc.data.formats import read_annotation_file, read_split_file
from softloc.metrics import evaluate

__all__ = ["evaluate_folders"]


def evaluate_folders(
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    *,
    split_file: str | os.PathLike | None = None,
    tolerance_s: float = 0.05,
) -> dict[str, Any]:
    """Score ``est_dir/<stem>.txt`` against ``ref_dir/<stem>.txt`` (``softloc.metrics.evaluate``).

    Args:
        ref_dir: reference annotation folder.
        est_dir: detection folder.
        split_file: evaluate only the stems listed in this file (one per line); default every
            reference file.
        tolerance_s: matching window in seconds (default 0.05).

    Returns:
        the result of ``softloc.metrics.evaluate``: ``"overall"``, ``"per_class"``,
        ``"settings"`` (incl. ``n_files``) ...

    Raises:
        FileNotFoundError: a folder or a needed file is missing.
        ValueError: no reference files, or a malformed annotation line (``path:line: ...``).
    """
    ref_dir, est_dir = Path(ref_dir), Path(est_dir)
    for d in (ref_dir, est_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: folder not found")
    if split_file is not None:
        stems = [s for _, s in read_split_file(split_file)]
    else:
        stems = sorted(p.stem for p in ref_dir.glob("*.txt"))
    if not stems:
        raise ValueError(f"{ref_dir}: no reference files (<stem>.txt)")
    reference, estimate = {}, {}
    for stem in stems:
        ref_path, est_path = ref_dir / f"{stem}.txt", est_dir / f"{stem}.txt"
        if not ref_path.is_file():
            raise FileNotFoundError(f"{ref_path}: reference annotation missing")
        if not est_path.is_file():
            raise FileNotFoundError(
                f"{est_path}: detection file missing (run `softloc detect` on {stem})"
            )
        reference[stem] = read_annotation_file(ref_path)
        estimate[stem] = read_annotation_file(est_path)
    classes = sorted({lab for ev in reference.values() for _, lab in ev}
                     | {lab for ev in estimate.values() for _, lab in ev})
    return evaluate(reference, estimate, tolerance_s=tolerance_s, classes=classes)
