"""Decoded events: the :class:`Events` container and the minimum-distance rule (NMS).

Shared by every decoder of :mod:`softloc.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softloc._checks import check_int
from softloc.timebase import frames_to_seconds

__all__ = ["Events"]


@dataclass(frozen=True, eq=False)
class Events:
    """Events decoded from one ``(class, time)`` sequence, sorted by time, then class.

    All arrays have shape ``(n_events,)``; entry ``i`` describes one event.

    Attributes:
        frames: int64 frame index of each event.
        classes: int64 class (channel) index, in ``[0, n_classes)``.
        scores: float64 confidence (the decoder says which: peak probability, peak height or
            window mass).
        times_s: float64 ``frames / frame_rate + time_offset_s`` (may be negative when the
            offset is negative; clip before evaluating).
        n_classes: number of classes of the decoded sequence.
        frame_rate: frames per second used for ``times_s``.
        time_offset_s: offset used for ``times_s``.
    """

    frames: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    times_s: np.ndarray
    n_classes: int
    frame_rate: float
    time_offset_s: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def times_of(self, class_index: int) -> np.ndarray:
        """Sorted times (seconds) of the events of one class."""
        check_int("Events.times_of", "class_index", class_index, minimum=0)
        if class_index >= self.n_classes:
            raise ValueError(
                f"Events.times_of: `class_index` must be < n_classes={self.n_classes}, "
                f"got {class_index}"
            )
        return self.times_s[self.classes == class_index]

    def per_class(self) -> list[np.ndarray]:
        """Sorted event times (seconds) per class: a list of ``n_classes`` 1-D arrays."""
        return [self.times_s[self.classes == c] for c in range(self.n_classes)]

    def to_list(self) -> list[tuple[float, int, float]]:
        """``[(time_s, class_index, score), ...]`` sorted by time, then class."""
        return [
            (float(t), int(c), float(s))
            for t, c, s in zip(self.times_s, self.classes, self.scores, strict=True)
        ]

    def labelled(self, class_names: Sequence[str]) -> list[tuple[float, str]]:
        """``[(time_s, label), ...]`` with ``label = class_names[class_index]``.

        This is the per-file event format of :func:`softloc.metrics.evaluate`, which rejects
        negative times: with a negative ``time_offset_s``, clip first (the original drum scripts
        used ``max(t, 0)``).

        Raises:
            ValueError: ``len(class_names) != n_classes``.
        """
        names = list(class_names)
        if len(names) != self.n_classes:
            raise ValueError(
                f"Events.labelled: `class_names` must have n_classes={self.n_classes} entries, "
                f"got {len(names)}"
            )
        return [(float(t), names[int(c)]) for t, c in zip(self.times_s, self.classes, strict=True)]


def make_events(
    frames: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    *,
    n_classes: int,
    frame_rate: float,
    time_offset_s: float,
) -> Events:
    frames = np.asarray(frames, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((classes, frames))  # by frame, ties by class
    frames, classes, scores = frames[order], classes[order], scores[order]
    return Events(
        frames=frames,
        classes=classes,
        scores=scores,
        times_s=frames_to_seconds(frames, frame_rate, time_offset_s=time_offset_s),
        n_classes=n_classes,
        frame_rate=frame_rate,
        time_offset_s=time_offset_s,
    )


def suppress_close(frames: np.ndarray, scores: np.ndarray, min_distance: int) -> np.ndarray:
    """Keep-mask for candidate peaks of ONE class so that kept peaks are >= min_distance apart.

    Greedy by score: the highest candidate is kept and every candidate closer than
    ``min_distance`` frames to it is dropped; ties go to the earlier frame. A dropped candidate
    never suppresses others. This is scipy.signal.find_peaks' ``distance`` rule, with the tie
    order made deterministic. ``frames`` must be sorted ascending.
    """
    keep = np.ones(frames.shape[0], dtype=bool)
    if min_distance <= 1 or frames.shape[0] < 2:
        return keep
    # a candidate >= min_distance from both neighbours neither suppresses nor is suppressed:
    # run the greedy loop on the crowded ones only
    close = np.diff(frames) < min_distance  # (n-1,)
    crowded = np.zeros(frames.shape[0], dtype=bool)
    crowded[:-1] |= close
    crowded[1:] |= close
    idx = np.flatnonzero(crowded)
    sub_frames, sub_scores = frames[idx], scores[idx]
    removed = np.zeros(idx.shape[0], dtype=bool)
    for i in np.lexsort((sub_frames, -sub_scores)):  # highest score first, ties: earlier frame
        if removed[i]:
            continue
        lo = np.searchsorted(sub_frames, sub_frames[i] - min_distance, side="right")
        hi = np.searchsorted(sub_frames, sub_frames[i] + min_distance, side="left")
        removed[lo:hi] = True
        removed[i] = False
    keep[idx] = ~removed
    return keep


def apply_min_distance(
    frames: np.ndarray, classes: np.ndarray, scores: np.ndarray, min_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class `suppress_close`; inputs sorted by (class, frame)."""
    if min_distance <= 1 or frames.size == 0:
        return frames, classes, scores
    keep = np.zeros(frames.shape[0], dtype=bool)
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        keep[idx] = suppress_close(frames[idx], scores[idx], min_distance)
    return frames[keep], classes[keep], scores[keep]
