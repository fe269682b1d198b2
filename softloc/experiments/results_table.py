"""Resumable results tables of the experiments: one CSV row per finished run.

Every experiment that trains a grid of runs (``experiment robustness``, ``piano``, ``softness``,
``sensor``, ``segmentation``) appends a row after each run and rewrites the file atomically, so
an interrupted study resumes where it stopped: a rerun reads the table and skips what is in it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from softloc._io import atomic_write_text

__all__ = ["as_float", "read_rows", "write_rows"]


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def write_rows(path: Path, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    """Write the results CSV atomically (floats with 6 significant digits, NaN as empty)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt_value(row.get(c, "")) for c in columns])
    atomic_write_text(path, buf.getvalue())


def read_rows(path: Path, columns: Sequence[str]) -> list[dict]:
    """The rows of a results CSV (values as strings); ``[]`` when there is no file yet.

    Raises:
        ValueError: other columns than ``columns`` (naming ``path:1``), a short or long line.
    """
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(columns):
            raise ValueError(
                f"{path}:1: columns {header} do not match this experiment's {list(columns)}; "
                "use a new --out"
            )
        rows = []
        for lineno, values in enumerate(reader, start=2):
            if len(values) != len(columns):
                raise ValueError(f"{path}:{lineno}: expected {len(columns)} fields, got "
                                 f"{len(values)}")
            rows.append(dict(zip(columns, values, strict=True)))
    return rows


def as_float(v: Any) -> float:
    """A CSV cell as a float; NaN for an empty or unreadable cell."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
