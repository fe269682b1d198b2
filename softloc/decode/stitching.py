"""Window stitching: overlapping window predictions -> one series over the whole file.

Inference runs a detector on overlapping windows (``data.window_s`` at ``inference.hop_s``);
:func:`stitch_windows` overlap-averages their outputs before any decoder of
:mod:`softloc.decode` reads them. Frame counts of windows and hops come from
:mod:`softloc.timebase` (``duration_frames``, ``n_covering_windows``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from softloc._checks import as_float64_array, check_int

__all__ = ["stitch_windows"]


def stitch_windows(
    window_probs: np.ndarray | torch.Tensor,
    *,
    hop_frames: int,
    total_frames: int,
    valid_frames: int | Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Overlapping window predictions -> one series over the whole file (overlap average).

    Window ``i`` starts at frame ``i * hop_frames`` of the file. Its first ``valid_frames``
    frames are added into the file series and counted once each; every file frame gets the
    mean over the windows that cover it. Frames of a window past ``total_frames`` (the
    zero-padded tail of the last window) are dropped.

    The drum and piano pipelines run 1.5 s windows at a 0.5 s hop (300 valid frames, hop 100
    at 200 fps), so inner frames are the mean of 3 windows (facts §5.3).

    Args:
        window_probs: per-window predictions, numpy array or torch tensor.
        hop_frames: start-to-start distance of consecutive windows in frames, >= 1.
        total_frames: length of the file series to produce, >= 1.
        valid_frames: how many leading frames of each window are real (the rest is padding):
            one int for all windows, or one int per window (e.g. a short last window). Default:
            all ``window_frames``. Crop a leading pad yourself (``window_probs[..., pad:]``).

    Returns:
        float64 numpy array ``(class, total_frames)``.

    Raises:
        TypeError: ``window_probs`` not a floating numpy array / torch tensor; non-int sizes.
        ValueError: ``window_probs`` not 3-D or not finite; sizes out of range; a window that
            starts at or after ``total_frames``; file frames covered by no window (the message
            names the first uncovered range, e.g. when ``hop_frames > valid_frames`` or the
            windows stop before the end of the file).

    Shape:
        window_probs: ``(n_windows, class, window_frames)`` -> ``(class, total_frames)``.

    Notes:
        The original pasted into a fixed 200 000-frame buffer (1000 s cap) and divided on the
        covered columns only. We size the output to the file and reject uncovered frames
        instead of silently leaving zeros there.

    Example:
        >>> w = np.array([[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0, 0.0]]])
        >>> stitch_windows(w, hop_frames=2, total_frames=6).tolist()
        [[1.0, 1.0, 0.5, 0.5, 0.0, 0.0]]
    """
    fn = "stitch_windows"
    arr = as_float64_array(fn, "window_probs", window_probs, 3, "(n_windows, class, window_frames)")
    hop = check_int(fn, "hop_frames", hop_frames, minimum=1)
    total = check_int(fn, "total_frames", total_frames, minimum=1)
    n_windows, n_classes, window_len = arr.shape
    if n_windows == 0:
        raise ValueError(f"{fn}: `window_probs` holds no windows (shape {tuple(arr.shape)})")

    if valid_frames is None:
        valid = np.full(n_windows, window_len, dtype=np.int64)
    elif isinstance(valid_frames, (int, np.integer)) and not isinstance(valid_frames, bool):
        v = check_int(fn, "valid_frames", valid_frames, minimum=1)
        valid = np.full(n_windows, v, dtype=np.int64)
    else:
        if isinstance(valid_frames, torch.Tensor):
            valid_frames = valid_frames.detach().cpu().numpy()
        valid_arr = np.asarray(valid_frames)
        if valid_arr.ndim != 1 or not np.issubdtype(valid_arr.dtype, np.integer):
            raise TypeError(
                f"{fn}: `valid_frames` must be an int or a 1-D sequence of ints (one per window), "
                f"got {type(valid_frames).__name__} with dtype {valid_arr.dtype}"
            )
        if valid_arr.shape[0] != n_windows:
            raise ValueError(
                f"{fn}: `valid_frames` must have one entry per window ({n_windows}), "
                f"got {valid_arr.shape[0]}"
            )
        valid = valid_arr.astype(np.int64)
    if valid.min() < 1 or valid.max() > window_len:
        raise ValueError(
            f"{fn}: `valid_frames` must lie in [1, window_frames={window_len}], got values in "
            f"[{valid.min()}, {valid.max()}]"
        )

    starts = np.arange(n_windows, dtype=np.int64) * hop
    if starts[-1] >= total:
        raise ValueError(
            f"{fn}: window {n_windows - 1} starts at frame {starts[-1]} >= total_frames={total}; "
            f"too many windows for the file or `total_frames` too small"
        )
    stops = np.minimum(starts + valid, total)

    summed = np.zeros((n_classes, total), dtype=np.float64)
    coverage = np.zeros(total, dtype=np.int64)
    for i in range(n_windows):
        start, stop = int(starts[i]), int(stops[i])
        summed[:, start:stop] += arr[i, :, : stop - start]
        coverage[start:stop] += 1
    if not coverage.all():
        first = int(np.argmin(coverage > 0))
        last = first + int(np.argmax(coverage[first:] > 0)) if coverage[first:].any() else total
        raise ValueError(
            f"{fn}: file frames [{first}, {last}) are covered by no window "
            f"(hop_frames={hop}, valid_frames per window in [{valid.min()}, {valid.max()}], "
            f"{n_windows} windows, total_frames={total}); add windows or lower hop_frames"
        )
    return summed / coverage
