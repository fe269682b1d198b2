"""Figure of the piano study (``softloc experiment piano``): LoCo Table 2 as bars (counts only vs
full supervision) beside SoftLoc Fig. 5 (note-onset F1 vs label noise σ per loss). F1 as fractions
in [0, 1], drawn in %; σ in ms."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from softloc.plots._backend import pyplot, save

__all__ = ["plot_piano"]


def plot_piano(
    supervision: Mapping[str, Sequence[float]],
    curves: Mapping[str, Mapping[float, Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str = "Piano note onsets (±50 ms, pitch must match)",
) -> Path:
    """Two panels: mean F1 per supervision (bars, seeds as dots) and F1 vs σ per loss (mean line,
    min..max band).

    Args:
        supervision: ``{name: [f1 of each seed]}`` (e.g. ``"LoCo, counts only"``); NaN left out.
        curves: ``{loss: {sigma_ms: [f1 of each seed]}}`` (may be empty).
        path: figure file.
        title: figure title.

    Returns:
        the written path.
    """
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.2),
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    names = list(supervision)
    for i, name in enumerate(names):
        vals = np.array([v for v in supervision[name] if not math.isnan(v)])
        if vals.size:
            left.bar(i, 100 * vals.mean(), color="C0" if "counts" in name else "C7", alpha=0.8)
            left.plot(np.full(vals.size, i), 100 * vals, "k.", ms=5)
            left.text(i, 100 * vals.mean() + 1.5, f"{100 * vals.mean():.1f}", ha="center",
                      fontsize=8)
    left.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    left.set_ylabel("note-onset F1 [%]")
    left.set_ylim(0, 100)
    left.set_title("counts only vs full supervision", fontsize=9)
    left.grid(axis="y", alpha=0.3)
    for loss, by_sigma in curves.items():
        sig = sorted(by_sigma)
        vals = [np.array([v for v in by_sigma[s] if not math.isnan(v)]) for s in sig]
        keep = [i for i, v in enumerate(vals) if v.size]
        x = np.array([sig[i] for i in keep])
        (line,) = right.plot(x, [100 * vals[i].mean() for i in keep], marker="o", label=loss,
                             lw=2 if loss == "softloc" else 1.3)
        if any(vals[i].size > 1 for i in keep):
            right.fill_between(x, [100 * vals[i].min() for i in keep],
                               [100 * vals[i].max() for i in keep], color=line.get_color(),
                               alpha=0.18, lw=0)
    right.set_xlabel("label noise σ on train/valid onsets [ms]")
    right.set_ylabel("note-onset F1 [%] (clean test labels)")
    right.set_ylim(0, 100)
    right.grid(alpha=0.3)
    if curves:
        right.legend(fontsize=8, loc="lower left")
    right.set_title("F1 vs label noise", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=120)
