"""Segment files (action segmentation): one ``<start_s>\\t<end_s>\\t<label>`` line per segment.

``softloc detect`` writes them for a segmentation model; ``softloc evaluate`` reads them back
against an MS-TCN ground truth (``softloc.data.mstcn``). Times are seconds from the start of the
sequence, written with 3 decimals; segments come in time order and do not overlap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from softloc._io import atomic_write_text
from softloc.data.formats._common import DatasetError, _read_text

__all__ = ["format_segments", "read_segment_file", "write_segment_file"]

Segment = tuple[float, float, str]


def format_segments(segments: Sequence[Segment]) -> str:
    """The text of a segment file: ``<start_s>\\t<end_s>\\t<label>`` per segment, 3 decimals."""
    return "".join(f"{a:.3f}\t{b:.3f}\t{label}\n" for a, b, label in segments)


def write_segment_file(path: str | os.PathLike, segments: Sequence[Segment], *,
                       overwrite: bool = False) -> Path:
    """Write ``segments`` (:func:`format_segments`) atomically; refuses to replace a file unless
    ``overwrite``.

    Raises:
        ValueError: a segment with a time that is not finite, negative or reversed, or a label
            that is empty or holds whitespace.
    """
    for i, (a, b, label) in enumerate(segments):
        if not (math.isfinite(a) and math.isfinite(b) and 0 <= a <= b):
            raise ValueError(f"write_segment_file: segment {i} must have 0 <= start_s <= end_s "
                             f"(finite), got ({a!r}, {b!r})")
        if not str(label) or any(ch.isspace() for ch in str(label)):
            raise ValueError(f"write_segment_file: segment {i} has label {label!r}; expected a "
                             "non-empty class name without whitespace")
    path = Path(path)
    atomic_write_text(path, format_segments(segments), overwrite=overwrite)
    return path


def read_segment_file(path: str | os.PathLike) -> list[Segment]:
    """The ``(start_s, end_s, label)`` segments of a segment file, in file order.

    Raises:
        DatasetError: ``path:line:`` a line without 3 tab-separated fields, times that are not
            numbers or not ``0 <= start_s <= end_s``; a file that is not UTF-8.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = _read_text(path, "segment file", "'<start_s>\\t<end_s>\\t<label>' lines")
    out: list[Segment] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            start_s, end_s = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            start_s = end_s = math.nan
        if len(parts) != 3 or not parts[2].strip() or not 0 <= start_s <= end_s < math.inf:
            raise DatasetError(f"{path}:{n}: expected '<start_s>\\t<end_s>\\t<label>' with "
                               f"0 <= start_s <= end_s, got {line!r}")
        out.append((start_s, end_s, parts[2].strip()))
    return out
