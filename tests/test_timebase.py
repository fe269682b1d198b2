"""Tests for softloc.timebase: hand-worked values and brute-force enumerations of windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softloc.timebase import (
    duration_frames,
    frames_to_seconds,
    ms_to_frames,
    n_covering_windows,
    n_inner_windows,
    padded_window_frames,
    seconds_to_frames,
)

# ------------------------------------------------------------------------------------------
# frame <-> seconds


def test_frames_to_seconds_hand_values():
    out = frames_to_seconds(np.array([0, 1, 200]), 200.0, time_offset_s=-0.025)
    np.testing.assert_allclose(out, [-0.025, -0.02, 0.975])
    assert out.dtype == np.float64


@pytest.mark.parametrize("offset", [0.0, -0.03, 0.0125])
@pytest.mark.parametrize("rate", [200.0, 100.0, 44100 / 220.5, 30.0])
def test_seconds_to_frames_inverts_frames_to_seconds_with_offset(rate, offset):
    frames = np.arange(-5, 5000, 7)
    back = seconds_to_frames(
        frames_to_seconds(frames, rate, time_offset_s=offset), rate, time_offset_s=offset
    )
    np.testing.assert_array_equal(back, frames)
    assert back.dtype == np.int64


def test_seconds_to_frames_rounds_halves_up():
    # 0.0025 s at 200 fps is exactly frame 0.5 -> 1; 0.0074 s = 1.48 -> 1; -0.0025 = -0.5 -> 0
    np.testing.assert_array_equal(seconds_to_frames([0.0025, 0.0074, -0.0025], 200.0), [1, 1, 0])


def test_ms_to_frames_hand_value():
    assert ms_to_frames(100.0, 200.0) == 20.0
    assert ms_to_frames(25, 44100 / 220.5) == pytest.approx(5.0)


def test_numpy_scalars_are_accepted():
    assert ms_to_frames(np.float32(100.0), np.int64(200)) == 20.0
    assert frames_to_seconds(np.int64(3), np.float64(100.0)) == pytest.approx(0.03)


# ------------------------------------------------------------------------------------------
# frame counts


@pytest.mark.parametrize(
    "duration_s, rate, want",
    [
        (1.5, 200.0, 300),
        (0.5, 200.0, 100),
        (0.0, 200.0, 1),
        (0.0124, 200.0, 2),
        (0.03, 44100 / 220, 6),
    ],
)
def test_duration_frames_hand_values(duration_s, rate, want):
    assert duration_frames(duration_s, rate) == want


def _longest_window(window_s: float, rate: float, factor: float) -> int:
    """Brute force: the most frames any start (on a fine grid) gives, as data.windows cuts them."""
    starts = np.linspace(0.0, 3.0, 6001)
    return max(
        int(round((s + window_s) * rate / factor)) - int(round(s * rate / factor)) for s in starts
    )


@pytest.mark.parametrize("factor", [7 / 8, 1.0, 9 / 8, 0.9])
@pytest.mark.parametrize("window_s, rate", [(1.5, 44100 / 220), (1.0, 100.0), (0.37, 200.0)])
def test_padded_window_holds_every_window_and_at_most_one_frame_more(window_s, rate, factor):
    padded = padded_window_frames(window_s, rate, min_rate_factor=factor)
    longest = _longest_window(window_s, rate, factor)
    assert longest <= padded <= longest + 1


def test_padded_window_drum_default_and_whole_number_guard():
    # 1.5 s at 44100/220 frames/s and factor 7/8: 343.6 frames -> 345 (the documented default)
    assert padded_window_frames(1.5, 44100 / 220, min_rate_factor=7 / 8) == 345
    # 1.5 s * 200 = 300 exactly: float noise must not add a frame
    assert padded_window_frames(1.5, 200.0) == 301
    assert padded_window_frames(0.3, 10.0) == math.ceil(3.0) + 1


@pytest.mark.parametrize(
    "duration_s, window_s, hop_s",
    [(3.0, 1.5, 0.5), (1.0, 1.5, 0.5), (10.3, 1.5, 0.5), (2.0, 0.7, 0.1)],
)
def test_n_inner_windows_matches_enumeration(duration_s, window_s, hop_s):
    # windows [k hop, k hop + window) fully inside [0, duration], at least one
    k = 0
    while (k + 1) * hop_s + window_s <= duration_s + 1e-9:
        k += 1
    want = k + 1
    assert n_inner_windows(duration_s, window_s, hop_s) == want


@pytest.mark.parametrize(
    "n, w, hop", [(1000, 300, 100), (250, 300, 100), (300, 300, 100), (301, 300, 7)]
)
def test_n_covering_windows_covers_every_frame_with_the_fewest_windows(n, w, hop):
    m = n_covering_windows(n, w, hop)
    covered = np.zeros(n, dtype=bool)
    for i in range(m):
        covered[i * hop : i * hop + w] = True
    assert covered.all()
    if m > 1:  # one window fewer leaves a frame uncovered
        assert (m - 2) * hop + w < n


# ------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: frames_to_seconds([1], 0.0),
            ValueError,
            "frames_to_seconds: `frame_rate` must be > 0",
        ),
        (lambda: frames_to_seconds([1], "200"), TypeError, "`frame_rate` must be a real number"),
        (
            lambda: frames_to_seconds([1], True),
            TypeError,
            "`frame_rate` must be a real number, got bool",
        ),
        (lambda: seconds_to_frames([1.0], -1.0), ValueError, "seconds_to_frames: `frame_rate`"),
        (lambda: seconds_to_frames([np.nan], 200.0), ValueError, "`times_s` must be finite"),
        (
            lambda: seconds_to_frames([1.0], 200.0, time_offset_s=np.inf),
            ValueError,
            "`time_offset_s` must be finite",
        ),
        (lambda: ms_to_frames(10.0, 0), ValueError, "ms_to_frames: `frame_rate` must be > 0"),
        (lambda: ms_to_frames(np.nan, 200.0), ValueError, "ms_to_frames: `ms` must be finite"),
        (
            lambda: duration_frames(-0.1, 200.0),
            ValueError,
            "duration_frames: `duration_s` must be >= 0",
        ),
        (lambda: padded_window_frames(0.0, 200.0), ValueError, "`window_s` must be > 0"),
        (
            lambda: padded_window_frames(1.5, 200.0, min_rate_factor=0),
            ValueError,
            "`min_rate_factor` must be > 0",
        ),
        (
            lambda: n_inner_windows(3.0, 1.5, 0.0),
            ValueError,
            "n_inner_windows: `hop_s` must be > 0",
        ),
        (
            lambda: n_covering_windows(10, 5, 6),
            ValueError,
            "`hop_frames` must be <= window_frames=5",
        ),
        (lambda: n_covering_windows(10.0, 5, 1), TypeError, "`n_frames` must be an int"),
        (lambda: n_covering_windows(-1, 5, 1), ValueError, "`n_frames` must be >= 0"),
    ],
)
def test_validation_errors_name_function_and_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_docstring_examples_run():
    import doctest

    import softloc.timebase

    result = doctest.testmod(softloc.timebase)
    assert result.failed == 0 and result.attempted >= 6
