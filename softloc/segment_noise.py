"""Label misalignment for frame labellings (action segmentation), SoftLoc §5.3.

Conventions: a labelling is a 1-D int array ``(time,)`` of class indices, one per frame, at
``frame_rate`` frames per second. Every function returns a new array of the same length; the
input is never modified. Randomness is explicit: an ``int`` seed or a
:class:`numpy.random.Generator` (advanced in place).

* :func:`shift_labels`: move the whole labelling by a whole number of frames (> 0 = delayed, the
  labels come later than the video; < 0 = advanced). Frames uncovered at one end take the edge
  label (the first label for a delay, the last for an advance), so no class is invented and the
  length is kept.
* :func:`random_shift`: the paper's protocol: each training sequence shifted by δ seconds, the
  sign (advanced or delayed) drawn per sequence with probability 1/2 (SoftLoc §5.3, Table 4).
* :func:`perturb_boundaries`: move every boundary between two segments independently with a
  :class:`softloc.noise.NoiseModel` (normal, skew-normal, ...), via
  :func:`softloc.noise.perturb_events`; segments keep their order and class.

This lives apart from :mod:`softloc.noise` (which perturbs event *times*) because it works on
frame labellings and needs the frame grid; the noise models themselves are reused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softloc._checks import check_frame_rate, check_int, check_real
from softloc.noise import NoiseModel, perturb_events
from softloc.timebase import frames_to_seconds, seconds_to_frames

__all__ = ["perturb_boundaries", "random_shift", "shift_labels"]


def _labelling(fn: str, labels: Any) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: `labels` must be 1-D (time,), got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{fn}: `labels` must hold at least one frame")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: `labels` must hold integer class indices, got dtype {arr.dtype}")
    return arr


def _rng(fn: str, seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"{fn}: `seed` must be an int or a numpy.random.Generator, got {type(seed).__name__}"
        )
    return np.random.default_rng(int(seed))


def shift_labels(labels: Any, shift_frames: int) -> np.ndarray:
    """Shift a labelling by ``shift_frames`` (> 0 delays it), padding with the edge label.

    Args:
        labels: class per frame ``(time,)``.
        shift_frames: whole frames; ``|shift| >= time`` gives a constant labelling (the edge
            label everywhere).

    Returns:
        The shifted labelling, same length and dtype.

    Example:
        >>> shift_labels([0, 0, 1, 1, 2], 2).tolist()
        [0, 0, 0, 0, 1]
        >>> shift_labels([0, 0, 1, 1, 2], -1).tolist()
        [0, 1, 1, 2, 2]
    """
    fn = "shift_labels"
    arr = _labelling(fn, labels)
    k = check_int(fn, "shift_frames", shift_frames)
    n = arr.size
    if k >= 0:
        k = min(k, n)
        return np.concatenate([np.full(k, arr[0], dtype=arr.dtype), arr[: n - k]])
    k = min(-k, n)
    return np.concatenate([arr[k:], np.full(k, arr[-1], dtype=arr.dtype)])


def random_shift(
    labels: Any, delta_s: float, *, frame_rate: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, int]:
    """Advance or delay a labelling by ``delta_s`` seconds, the sign drawn with p = 1/2.

    The paper's misalignment of action segmentation (SoftLoc §5.3): every training sequence is
    shifted by the same δ, each either advanced or delayed.

    Args:
        labels: class per frame ``(time,)``.
        delta_s: δ in seconds (>= 0), rounded to whole frames at ``frame_rate``.
        frame_rate: frames per second of ``labels``.
        seed: an int or a Generator; one draw (the sign) per call.

    Returns:
        ``(shifted labels, signed shift in frames)`` (> 0 = delayed).

    Example:
        >>> labels, frames = random_shift([0] * 5 + [1] * 5, 0.2, frame_rate=10.0, seed=0)
        >>> abs(frames)
        2
    """
    fn = "random_shift"
    arr = _labelling(fn, labels)
    delta = check_real(fn, "delta_s", delta_s, minimum=0.0, unit=" seconds")
    rate = check_frame_rate(fn, frame_rate)
    rng = _rng(fn, seed)
    sign = 1 if rng.random() < 0.5 else -1
    frames = sign * int(seconds_to_frames(delta, rate))
    return shift_labels(arr, frames), frames


def perturb_boundaries(
    labels: Any,
    *,
    model: NoiseModel,
    frame_rate: float,
    seed: int | np.random.Generator,
) -> np.ndarray:
    """Move each boundary between segments with a noise model; segments keep class and order.

    The boundary before frame ``t`` sits at ``t / frame_rate`` seconds; each is moved by the
    model (e.g. ``NormalNoise(1.0)``, ``SkewNormalNoise(-2, 1.0)``), clipped to the sequence,
    rounded to the nearest frame and sorted. Boundaries that cross are sorted, so a short
    segment can shrink to nothing (then it disappears, as a misplaced short annotation would).

    Args:
        labels: class per frame ``(time,)``.
        model: a :class:`softloc.noise.NoiseModel`.
        frame_rate: frames per second of ``labels``.
        seed: an int or a Generator.

    Returns:
        The perturbed labelling, same length and dtype.
    """
    fn = "perturb_boundaries"
    arr = _labelling(fn, labels)
    rate = check_frame_rate(fn, frame_rate)
    if not isinstance(model, NoiseModel):
        raise TypeError(f"{fn}: `model` must be a softloc.noise.NoiseModel, got "
                        f"{type(model).__name__}")
    rng = _rng(fn, seed)
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1  # first frame of each later segment
    if change.size == 0:
        return arr.copy()
    classes = arr[np.concatenate([[0], change])]
    duration_s = float(frames_to_seconds(arr.size, rate))
    moved_s, _ = perturb_events(
        frames_to_seconds(change, rate), model=model, duration_s=duration_s, seed=rng
    )
    bounds = np.clip(seconds_to_frames(moved_s, rate), 0, arr.size)  # sorted
    edges = np.concatenate([[0], bounds, [arr.size]])
    return np.repeat(classes, np.diff(edges)).astype(arr.dtype, copy=False)
