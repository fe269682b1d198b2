"""Datasets: the generic layout, annotation formats, the synthetic drum set, training windows."""

from __future__ import annotations

from softloc.data.generators.drums import DRUM_CLASSES, render_drum_track, synthesize_drum_dataset
from softloc.data.layout import (
    CountWindow,
    DatasetError,
    DatasetIndex,
    count_windows,
    load_dataset,
    read_annotation_file,
    read_counts_csv,
    write_annotation_file,
    write_counts_csv,
    write_split_file,
)
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
    "default_max_frames",
    "prepare_features",
    "count_windows",
    "load_dataset",
    "read_annotation_file",
    "read_counts_csv",
    "render_drum_track",
    "synthesize_drum_dataset",
    "write_annotation_file",
    "write_counts_csv",
    "write_split_file",
]
