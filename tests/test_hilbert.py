"""Tests for softloc.hilbert: curve properties, inverse, patches and pixel centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softloc.hilbert import (
    grid_side,
    hilbert_cells,
    hilbert_index,
    image_to_patches,
    index_to_centre_px,
    sequence_centres_px,
)

SIDES = [1, 2, 4, 8, 16, 32]


def _turtle_hilbert(order: int) -> list[tuple[int, int]]:
    """Independent reference: the Lindenmayer system A -> +BF-AFA-FB+, B -> -AF+BFB+FA-."""
    rules = {"A": "+BF-AFA-FB+", "B": "-AF+BFB+FA-"}
    s = "A"
    for _ in range(order):
        s = "".join(rules.get(ch, ch) for ch in s)
    pos, heading = (0, 0), (0, 1)
    cells = [pos]
    for ch in s:
        if ch == "F":
            pos = (pos[0] + heading[0], pos[1] + heading[1])
            cells.append(pos)
        elif ch == "+":
            heading = (heading[1], -heading[0])
        elif ch == "-":
            heading = (-heading[1], heading[0])
    return cells


def _dihedral(cells: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations/reflections of a point set, each shifted to start at the origin box."""
    out = []
    for swap in (False, True):
        for sr in (1, -1):
            for sc in (1, -1):
                c = cells[:, ::-1] if swap else cells
                c = c * np.array([sr, sc])
                out.append(c - c.min(axis=0))
    return out


@pytest.mark.parametrize("n_side", SIDES)
def test_hilbert_cells_is_a_bijection_onto_the_grid(n_side):
    cells = hilbert_cells(n_side)
    assert cells.shape == (n_side * n_side, 2)
    assert cells.dtype == np.int64
    flat = cells[:, 0] * n_side + cells[:, 1]
    np.testing.assert_array_equal(np.sort(flat), np.arange(n_side * n_side))


@pytest.mark.parametrize("n_side", SIDES[1:])
def test_consecutive_indices_are_edge_adjacent_cells(n_side):
    cells = hilbert_cells(n_side)
    steps = np.abs(np.diff(cells, axis=0)).sum(axis=1)
    np.testing.assert_array_equal(steps, 1)


@pytest.mark.parametrize("n_side", SIDES[1:])
def test_curve_starts_top_left_and_ends_top_right(n_side):
    cells = hilbert_cells(n_side)
    assert tuple(cells[0]) == (0, 0)
    assert tuple(cells[-1]) == (0, n_side - 1)


def test_hilbert_cells_match_hand_written_small_curves():
    assert hilbert_cells(1).tolist() == [[0, 0]]
    assert hilbert_cells(2).tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]
    # The 4 x 4 curve drawn by hand: down the left quadrant, across the bottom, up the right.
    expected = [
        (0, 0), (0, 1), (1, 1), (1, 0), (2, 0), (3, 0), (3, 1), (2, 1),
        (2, 2), (3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (0, 2), (0, 3),
    ]  # fmt: skip
    assert [tuple(c) for c in hilbert_cells(4).tolist()] == expected


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_hilbert_cells_equal_the_l_system_curve_up_to_symmetry(order):
    ours = hilbert_cells(2**order)
    ref = np.array(_turtle_hilbert(order))
    assert any(np.array_equal(ours, cand) for cand in _dihedral(ref))


@pytest.mark.parametrize("n_side", [4, 16])
def test_each_quarter_of_the_curve_fills_one_quadrant(n_side):
    cells = hilbert_cells(n_side)
    half = n_side // 2
    quarter = len(cells) // 4
    for q in range(4):
        part = cells[q * quarter : (q + 1) * quarter] // half
        assert len({tuple(c) for c in part}) == 1


@pytest.mark.parametrize("n_side", SIDES)
def test_hilbert_index_inverts_hilbert_cells(n_side):
    cells = hilbert_cells(n_side)
    idx = hilbert_index(cells[:, 0], cells[:, 1], n_side)
    np.testing.assert_array_equal(idx, np.arange(n_side * n_side))
    # and the other direction, on every cell of the grid
    rows, cols = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    back = cells[hilbert_index(rows, cols, n_side)]
    np.testing.assert_array_equal(back[..., 0], rows)
    np.testing.assert_array_equal(back[..., 1], cols)


def test_hilbert_rejects_bad_sides_and_cells():
    with pytest.raises(ValueError, match="hilbert_cells: `n_side` must be a power of two.*got 6"):
        hilbert_cells(6)
    with pytest.raises(ValueError, match="hilbert_cells: `n_side` must be >= 1, got 0"):
        hilbert_cells(0)
    with pytest.raises(TypeError, match="hilbert_cells: `n_side` must be an int"):
        hilbert_cells(4.0)
    with pytest.raises(ValueError, match=r"hilbert_index: cells must lie in \[0, 4\)"):
        hilbert_index([0, 4], [0, 0], 4)
    with pytest.raises(ValueError, match="same shape"):
        hilbert_index([0, 1], [0], 4)
    with pytest.raises(TypeError, match="must hold integers"):
        hilbert_index([0.5], [0.0], 4)


def test_grid_side_checks_divisibility_and_power_of_two():
    assert grid_side(64, 8) == 8
    with pytest.raises(ValueError, match=r"multiple of `granularity_px` \(7\)"):
        grid_side(64, 7)
    with pytest.raises(ValueError, match="must be a power of two, got 48 / 8 = 6"):
        grid_side(48, 8)


def test_patches_with_window_equal_to_granularity_tile_the_image_in_curve_order():
    g, n = 3, 4
    images = torch.arange(2 * 1 * 12 * 12, dtype=torch.float32).reshape(2, 1, 12, 12)
    patches = image_to_patches(images, window_px=g, granularity_px=g)
    assert patches.shape == (2, n * n, 1, g, g)
    for t, (i, j) in enumerate(hilbert_cells(n)):
        cell = images[:, :, i * g : (i + 1) * g, j * g : (j + 1) * g]
        torch.testing.assert_close(patches[:, t], cell)


def test_patches_are_centred_on_cell_centres_with_zero_padding():
    # Naive reference: crop a window around each centre pixel by pixel.
    rng = np.random.default_rng(1)
    img = rng.random((2, 3, 16, 16)).astype(np.float32)
    g, wh, ww = 4, 8, 6
    patches = image_to_patches(torch.from_numpy(img), window_px=(wh, ww), granularity_px=g).numpy()
    centres = sequence_centres_px(16, g)
    assert patches.shape == (2, 16, 3, wh, ww)
    for t, (cr, cc) in enumerate(centres):
        top, left = int(cr - wh / 2), int(cc - ww / 2)
        ref = np.zeros((2, 3, wh, ww), dtype=np.float32)
        for r in range(wh):
            for c in range(ww):
                if 0 <= top + r < 16 and 0 <= left + c < 16:
                    ref[:, :, r, c] = img[:, :, top + r, left + c]
        np.testing.assert_array_equal(patches[:, t], ref)


def test_patches_keep_gradients_and_dtype():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    p = image_to_patches(x, window_px=4, granularity_px=2)
    assert p.dtype == torch.float64
    p.sum().backward()
    # The gradient counts the windows covering each pixel: 4x4 windows at stride 2 with one pixel of
    # padding cover border pixels once or twice along each axis, inner pixels twice.
    per_axis = torch.tensor([1.0, 2, 2, 2, 2, 2, 2, 1], dtype=torch.float64)
    torch.testing.assert_close(x.grad[0, 0], per_axis[:, None] * per_axis[None, :])


def test_image_to_patches_rejects_bad_input():
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(TypeError, match="image_to_patches: `images` must be a torch.Tensor"):
        image_to_patches(np.zeros((1, 1, 16, 16)), window_px=4, granularity_px=4)
    with pytest.raises(ValueError, match=r"\(batch, channel, height, width\)"):
        image_to_patches(torch.zeros(16, 16), window_px=4, granularity_px=4)
    with pytest.raises(ValueError, match="must be square"):
        image_to_patches(torch.zeros(1, 1, 16, 8), window_px=4, granularity_px=4)
    with pytest.raises(ValueError, match="differ from it by an even number"):
        image_to_patches(x, window_px=5, granularity_px=4)
    with pytest.raises(ValueError, match=">= granularity_px"):
        image_to_patches(x, window_px=2, granularity_px=4)
    with pytest.raises(TypeError, match="`window_px` must be an int or a"):
        image_to_patches(x, window_px=(4, 4, 4), granularity_px=4)
    with pytest.raises(ValueError, match="power of two"):
        image_to_patches(torch.zeros(1, 1, 12, 12), window_px=4, granularity_px=4)


def test_sequence_centres_follow_the_curve_and_index_lookup_agrees():
    centres = sequence_centres_px(32, 8)
    assert centres.shape == (16, 2)
    np.testing.assert_array_equal(centres[0], [4.0, 4.0])
    np.testing.assert_array_equal(centres[-1], [4.0, 28.0])
    # consecutive centres are one granularity apart
    np.testing.assert_array_equal(np.abs(np.diff(centres, axis=0)).sum(axis=1), 8.0)
    got = index_to_centre_px(np.array([[0, 15], [3, 5]]), image_px=32, granularity_px=8)
    assert got.shape == (2, 2, 2)
    np.testing.assert_array_equal(got[1, 0], centres[3])
    with pytest.raises(ValueError, match=r"index_to_centre_px: `indices` must lie in \[0, 16\)"):
        index_to_centre_px([16], image_px=32, granularity_px=8)
    with pytest.raises(TypeError, match="must hold integers"):
        index_to_centre_px([1.5], image_px=32, granularity_px=8)


def test_doctests_run():
    import doctest

    import softloc.hilbert

    result = doctest.testmod(softloc.hilbert, verbose=False)
    assert result.attempted >= 1 and result.failed == 0
