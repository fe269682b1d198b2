"""Images as sequences: patches taken along a Hilbert curve (LoCo §8.1).

LoCo turns an image into a sequence of sub-images by sliding a window along a space-filling curve,
so that a sequence model trained from counts can detect objects in images. The Hilbert curve keeps
neighbours in the sequence neighbours in the image: consecutive indices are edge-adjacent cells.

Conventions:

- The image is square, ``image_px`` pixels a side, cut into a grid of ``n_side x n_side`` cells of
  ``granularity_px`` pixels; ``n_side = image_px / granularity_px`` must be a power of two.
- Cells are addressed ``(row, col)`` with ``row`` going down and ``col`` going right; the curve
  starts at the top-left cell ``(0, 0)`` and ends at the top-right cell ``(0, n_side - 1)``.
- Pixel coordinates are continuous: pixel ``(r, c)`` covers ``[r, r + 1) x [c, c + 1)``, so cell
  ``(i, j)`` covers ``[i g, (i + 1) g) x [j g, (j + 1) g)`` and its centre is
  ``((i + 0.5) g, (j + 0.5) g)`` with ``g = granularity_px``. Object centres (e.g. digit boxes
  ``[y, y + size)``: centre ``y + size / 2``) use the same convention, so distances compare
  directly.
- The patch of sequence step ``t`` is the ``window`` (height x width pixels) centred on the centre
  of the ``t``-th cell of the curve; the image is zero-padded where the window leaves it. The stride
  between neighbouring windows is therefore ``granularity_px``.

Shapes: images ``(batch, channel, height, width)`` -> patches
``(batch, time, channel, window_height, window_width)`` with ``time = n_side ** 2``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from softloc._checks import check_ndim, check_positive_int, check_power_of_two, check_tensor

__all__ = [
    "hilbert_cells",
    "hilbert_index",
    "grid_side",
    "image_to_patches",
    "sequence_centres_px",
    "index_to_centre_px",
]


def hilbert_cells(n_side: int) -> np.ndarray:
    """Grid cells in Hilbert-curve order.

    Args:
        n_side: number of cells per side of the square grid; a power of two (1, 2, 4, ...).

    Returns:
        int64 array of ``(row, col)`` pairs; row ``t`` is the ``t``-th cell visited. Starts at
        ``(0, 0)``, ends at ``(0, n_side - 1)``; consecutive cells share an edge.

    Raises:
        TypeError: ``n_side`` is not an int.
        ValueError: ``n_side`` < 1 or not a power of two.

    Shape:
        ``(n_side ** 2, 2)``.

    Notes:
        The iterative index -> cell conversion of the classic construction (Hilbert 1891; the
        ``d2xy`` form popularised by Warren's *Hacker's Delight*), vectorised over all indices.

    Examples:
        >>> hilbert_cells(2).tolist()
        [[0, 0], [1, 0], [1, 1], [0, 1]]
    """
    fn = "hilbert_cells"
    check_positive_int(fn, "n_side", n_side)
    check_power_of_two(fn, "n_side", n_side)
    t = np.arange(n_side * n_side, dtype=np.int64)
    x = np.zeros_like(t)  # column
    y = np.zeros_like(t)  # row
    s = 1
    while s < n_side:
        rx = 1 & (t // 2)
        ry = 1 & (t ^ rx)
        # Rotate/flip the sub-square so the lower-order curve is oriented like its parent.
        flip = (ry == 0) & (rx == 1)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x = x + s * rx
        y = y + s * ry
        t = t // 4
        s *= 2
    return np.stack([y, x], axis=1)


def hilbert_index(rows, cols, n_side: int) -> np.ndarray:
    """Position along the Hilbert curve of grid cells; the inverse of `hilbert_cells`.

    Args:
        rows: cell rows in ``[0, n_side)``, any shape (array-like of ints).
        cols: cell columns in ``[0, n_side)``, same shape as ``rows``.
        n_side: cells per side; a power of two.

    Returns:
        int64 array of sequence indices, same shape as ``rows``, such that
        ``hilbert_cells(n_side)[hilbert_index(r, c, n_side)] == (r, c)``.

    Raises:
        ValueError: shapes differ, cells lie outside the grid, or ``n_side`` is not a power of two.
    """
    fn = "hilbert_index"
    check_positive_int(fn, "n_side", n_side)
    check_power_of_two(fn, "n_side", n_side)
    y = np.asarray(rows)
    x = np.asarray(cols)
    if y.shape != x.shape:
        raise ValueError(
            f"{fn}: `rows` and `cols` must have the same shape, got {y.shape} and {x.shape}"
        )
    if y.size and not (np.issubdtype(y.dtype, np.integer) and np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{fn}: `rows` and `cols` must hold integers, got {y.dtype} and {x.dtype}")
    y = y.astype(np.int64)
    x = x.astype(np.int64)
    if y.size and (min(y.min(), x.min()) < 0 or max(y.max(), x.max()) >= n_side):
        raise ValueError(
            f"{fn}: cells must lie in [0, {n_side}) for n_side={n_side}, got rows in "
            f"[{y.min()}, {y.max()}] and cols in [{x.min()}, {x.max()}]"
        )
    d = np.zeros_like(y)
    s = n_side // 2
    while s > 0:
        rx = ((x & s) > 0).astype(np.int64)
        ry = ((y & s) > 0).astype(np.int64)
        d = d + s * s * ((3 * rx) ^ ry)
        flip = (ry == 0) & (rx == 1)
        x = np.where(flip, n_side - 1 - x, x)
        y = np.where(flip, n_side - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        s //= 2
    return d


def grid_side(image_px: int, granularity_px: int) -> int:
    """Cells per side, ``image_px // granularity_px``, checked to be a whole power of two.

    Raises:
        ValueError: ``image_px`` is not a multiple of ``granularity_px`` or the quotient is not a
            power of two.
    """
    fn = "grid_side"
    check_positive_int(fn, "image_px", image_px)
    check_positive_int(fn, "granularity_px", granularity_px)
    if image_px % granularity_px:
        raise ValueError(
            f"{fn}: `image_px` ({image_px}) must be a multiple of "
            f"`granularity_px` ({granularity_px})"
        )
    n_side = image_px // granularity_px
    if n_side & (n_side - 1):
        raise ValueError(
            f"{fn}: image_px / granularity_px must be a power of two, got {image_px} / "
            f"{granularity_px} = {n_side} (e.g. use a {granularity_px * 2 ** int(np.log2(n_side))}"
            " px image)"
        )
    return n_side


def _window_hw(fn: str, window_px: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(window_px, int) and not isinstance(window_px, bool):
        hw = (window_px, window_px)
    elif (
        isinstance(window_px, tuple)
        and len(window_px) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in window_px)
    ):
        hw = (window_px[0], window_px[1])
    else:
        raise TypeError(
            f"{fn}: `window_px` must be an int or a (height, width) tuple of ints, "
            f"got {window_px!r}"
        )
    for v in hw:
        check_positive_int(fn, "window_px", v)
    return hw


def image_to_patches(
    images: torch.Tensor,
    *,
    window_px: int | tuple[int, int],
    granularity_px: int,
) -> torch.Tensor:
    """Cut images into a sequence of windows centred on the cells of a Hilbert curve (LoCo §8.1).

    Args:
        images: square images, ``height == width``, any float dtype.
        window_px: window size in pixels, an int (square) or ``(height, width)``. Each side must be
            >= ``granularity_px`` and have its parity, so that the window centres on the cell.
        granularity_px: cell size and stride between windows, in pixels.

    Returns:
        The patches in curve order; step ``t`` is centred on ``sequence_centres_px(...)[t]``.
        Pixels of a window outside the image are zero.

    Raises:
        TypeError: ``images`` is not a tensor or ``window_px`` is malformed.
        ValueError: non-square images, a grid side that is not a power of two, or a window smaller
            than the granularity or of the wrong parity.

    Shape:
        ``(batch, channel, height, width)`` -> ``(batch, time, channel, win_h, win_w)`` with
        ``time = (height / granularity_px) ** 2``.
    """
    fn = "image_to_patches"
    check_tensor(fn, "images", images)
    check_ndim(fn, "images", images, 4, "(batch, channel, height, width)")
    b, c, h, w = images.shape
    if h != w:
        raise ValueError(f"{fn}: `images` must be square (height == width), got {h} x {w}")
    n_side = grid_side(h, granularity_px)
    win_h, win_w = _window_hw(fn, window_px)
    for side in (win_h, win_w):
        if side < granularity_px or (side - granularity_px) % 2:
            raise ValueError(
                f"{fn}: each side of `window_px` must be >= granularity_px ({granularity_px}) and "
                f"differ from it by an even number of pixels, got window {win_h} x {win_w}"
            )
    pad_h, pad_w = (win_h - granularity_px) // 2, (win_w - granularity_px) // 2
    x = F.pad(images, (pad_w, pad_w, pad_h, pad_h))  # (B, C, H + 2 pad_h, W + 2 pad_w)
    x = x.unfold(2, win_h, granularity_px).unfold(3, win_w, granularity_px)
    # x: (B, C, n_side, n_side, win_h, win_w)
    cells = torch.as_tensor(hilbert_cells(n_side), device=images.device)
    x = x[:, :, cells[:, 0], cells[:, 1]]  # (B, C, n, n, wh, ww) -> (B, C, T, wh, ww)
    return x.permute(0, 2, 1, 3, 4).contiguous()  # (B, C, T, wh, ww) -> (B, T, C, wh, ww)


def sequence_centres_px(image_px: int, granularity_px: int) -> np.ndarray:
    """Pixel centre ``(row, col)`` of every sequence step, in curve order.

    Args:
        image_px: image side in pixels.
        granularity_px: cell size in pixels.

    Returns:
        float64 array; row ``t`` is ``((i + 0.5) g, (j + 0.5) g)`` for the ``t``-th cell ``(i, j)``.

    Shape:
        ``(time, 2)`` with ``time = (image_px / granularity_px) ** 2``.
    """
    n_side = grid_side(image_px, granularity_px)
    return (hilbert_cells(n_side).astype(np.float64) + 0.5) * granularity_px


def index_to_centre_px(indices, *, image_px: int, granularity_px: int) -> np.ndarray:
    """Sequence indices (any shape) -> pixel centres ``(..., 2)`` as ``(row, col)`` floats.

    Raises:
        ValueError: an index lies outside ``[0, time)``.
    """
    fn = "index_to_centre_px"
    centres = sequence_centres_px(image_px, granularity_px)
    idx = np.asarray(indices)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{fn}: `indices` must hold integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(centres)):
        raise ValueError(
            f"{fn}: `indices` must lie in [0, {len(centres)}), got values in "
            f"[{idx.min()}, {idx.max()}]"
        )
    return centres[idx.astype(np.int64)]
