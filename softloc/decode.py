"""Frame probabilities -> events; frame <-> seconds conversion (the one place for it).

Convention: frame ``i`` of a sequence at ``frame_rate`` frames per second is stamped at
``i / frame_rate + time_offset_s`` seconds. ``time_offset_s`` is explicit everywhere so that a
model's learned lag can be calibrated on validation data and stored with the run.
"""

from __future__ import annotations

import numpy as np


def frames_to_seconds(frames, frame_rate: float, *, time_offset_s: float = 0.0) -> np.ndarray:
    """Frame indices (any shape) -> times in seconds: ``frames / frame_rate + time_offset_s``."""
    if frame_rate <= 0:
        raise ValueError(f"frames_to_seconds: `frame_rate` must be > 0, got {frame_rate}")
    return np.asarray(frames, dtype=np.float64) / frame_rate + time_offset_s


def seconds_to_frames(times_s, frame_rate: float, *, time_offset_s: float = 0.0) -> np.ndarray:
    """Times in seconds -> nearest frame indices (int64), the inverse of `frames_to_seconds`."""
    if frame_rate <= 0:
        raise ValueError(f"seconds_to_frames: `frame_rate` must be > 0, got {frame_rate}")
    t = (np.asarray(times_s, dtype=np.float64) - time_offset_s) * frame_rate
    return np.floor(t + 0.5).astype(np.int64)


def ms_to_frames(ms: float, frame_rate: float) -> float:
    """A duration in milliseconds -> a (fractional) number of frames, e.g. a softness sigma."""
    if frame_rate <= 0:
        raise ValueError(f"ms_to_frames: `frame_rate` must be > 0, got {frame_rate}")
    return float(ms) * frame_rate / 1000.0
