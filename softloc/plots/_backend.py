"""The one place that loads matplotlib, selects the non-interactive Agg backend and saves figures
(atomically, through :func:`softloc._io.save_figure`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from softloc._io import save_figure

__all__ = ["pyplot", "save"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use; without matplotlib a
    one-line error names the ``softloc[plot]`` extra)."""
    from softloc._deps import require

    matplotlib = require("matplotlib", extra="plot", purpose="drawing figures")

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | os.PathLike, *, dpi: int) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix) and close it."""
    plt = pyplot()
    try:
        return save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)
