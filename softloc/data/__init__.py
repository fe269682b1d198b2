"""Datasets: file formats, the generic layout, supervision plans, training windows, generators.

* ``formats``: every reader and writer (annotations, counts.csv, splits, softness tables, IDMT
  XML, MIDI, detections);
* ``layout``: a dataset folder read and cross-checked as a whole (:func:`load_dataset`);
* ``supervision``: which labels (and softness) each training file contributes;
* ``windows``: cached features and the training windows (a torch ``Dataset``);
* ``generators``: synthetic data (drums ...).
"""

from __future__ import annotations

from softloc.data.formats import (
    CountWindow,
    DatasetError,
    read_annotation_file,
    read_counts_csv,
    read_events_any,
    read_split_file,
    write_annotation_file,
    write_counts_csv,
    write_events,
    write_split_file,
)
from softloc.data.generators.drums import DRUM_CLASSES, render_drum_track, synthesize_drum_dataset
from softloc.data.layout import DatasetIndex, count_windows, load_dataset
from softloc.data.windows import (
    FeatureStore,
    WindowDataset,
    collate,
    default_max_frames,
    prepare_features,
)

__all__ = [
    "DRUM_CLASSES",
    "CountWindow",
    "DatasetError",
    "DatasetIndex",
    "FeatureStore",
    "WindowDataset",
    "collate",
    "count_windows",
    "default_max_frames",
    "load_dataset",
    "prepare_features",
    "read_annotation_file",
    "read_counts_csv",
    "read_events_any",
    "read_split_file",
    "render_drum_track",
    "synthesize_drum_dataset",
    "write_annotation_file",
    "write_counts_csv",
    "write_events",
    "write_split_file",
]
