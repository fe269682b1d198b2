"""Smoke tests: the segmentation figures are written (content is checked by eye)."""

from __future__ import annotations

import math

import numpy as np

from softloc.experiments.segmentation import relative_to_ce, summarize
from softloc.plots.segments import (
    plot_segmentation_example,
    plot_segmentation_shifts,
    plot_segmentation_softness,
)


def _rows():
    rows = []
    for loss, softnesses in (("ce", [math.nan]), ("softloc", [3.0, 7.0])):
        for shift in (0.0, 5.0, 10.0):
            for soft in softnesses:
                for seed in range(2):
                    bonus = 0.01 * soft if loss == "softloc" else 0.0
                    f1 = 0.8 - 0.03 * shift + bonus + 0.01 * seed
                    rows.append({"loss": loss, "shift_s": shift, "seed": seed, "split": 1,
                                 "softness_s": soft, "f1_10": f1, "f1_25": f1, "f1_50": f1,
                                 "edit": f1, "accuracy": f1})
    return rows


def test_figures_are_written(tmp_path):
    summary = summarize(_rows())
    for path in (
        plot_segmentation_shifts(summary, tmp_path / "table4.png", title="built-in"),
        plot_segmentation_softness(relative_to_ce(summary), tmp_path / "fig10.png"),
        plot_segmentation_example(np.repeat([0, 2, 1], 20), {"ce": np.repeat([0, 2, 1, 2], 15)},
                                  ["background", "cut", "mix"], tmp_path / "example.svg",
                                  frame_rate=3.0),
    ):
        assert path.is_file() and path.stat().st_size > 1000
