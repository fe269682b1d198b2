"""softloc.decode.refine: detections moved onto the signal's own peaks.

Reference: a brute-force search written here (the argmax of the signal minus a centred moving
average, within the radius), on signals with peaks at known samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from softloc.decode.refine import SNAP_DIRECTIONS, snap_to_signal_peaks

RATE = 360.0


def _beats(peaks: list[int], n: int = 3600, sign: float = 1.0, seed: int = 0) -> np.ndarray:
    """A wandering baseline, noise, and narrow bumps of height 5 at ``peaks``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 0.8 * np.sin(2 * np.pi * 0.3 * t / RATE) + rng.normal(0, 0.05, n)
    for p in peaks:
        x += sign * 5.0 * np.exp(-0.5 * ((t - p) / 3.0) ** 2)
    return x


def _brute_force(x: np.ndarray, idx: np.ndarray, radius: int, smooth: int, up: bool) -> np.ndarray:
    kernel = np.ones(smooth) / smooth
    d = x - np.convolve(x, kernel, mode="same")
    d = d if up else -d
    out = []
    for i in idx:
        lo, hi = max(0, i - radius), min(len(x) - 1, i + radius)  # [i - r, i + r)
        out.append(lo + int(np.argmax(d[lo:hi])))
    return np.array(out)


def test_times_within_the_radius_land_on_the_peaks():
    peaks = [400, 900, 1500, 2100, 2900]
    x = _beats(peaks)
    jitter = np.array([-25, 30, -12, 0, 20])  # samples, all inside a 0.1 s radius (36 samples)
    times = (np.array(peaks) + jitter) / RATE
    moved = snap_to_signal_peaks(times, x, RATE, radius_s=0.1, smooth_s=0.15)
    assert moved.dtype == np.float64 and moved.shape == times.shape
    assert np.array_equal(np.round(moved * RATE).astype(int), peaks)


def test_the_result_equals_a_brute_force_search_in_each_direction():
    rng = np.random.default_rng(3)
    x = _beats([300, 800, 1300, 2000, 2600, 3300], seed=4)
    idx = rng.integers(60, 3600, 60)  # unsorted; the end of the signal within the radius
    for direction, up in (("up", True), ("down", False)):
        moved = snap_to_signal_peaks(idx / RATE, x, RATE, radius_s=0.05, smooth_s=0.15,
                                     direction=direction)
        expected = _brute_force(x, idx, radius=18, smooth=54, up=up)
        assert np.array_equal(np.round(moved * RATE).astype(int), expected)


def test_compare_follows_an_inverted_lead_and_both_rectifies():
    peaks = [500, 1200, 1900, 2600]
    inverted = _beats(peaks, sign=-1.0)
    times = (np.array(peaks) + 15) / RATE
    for direction in ("compare", "both", "down"):
        moved = snap_to_signal_peaks(times, inverted, RATE, radius_s=0.1, direction=direction)
        assert np.array_equal(np.round(moved * RATE).astype(int), peaks), direction
    up = snap_to_signal_peaks(times, inverted, RATE, radius_s=0.1, direction="up")
    assert not np.array_equal(np.round(up * RATE).astype(int), peaks)


def test_the_default_direction_takes_the_larger_deflection_of_each_beat_whatever_its_sign():
    # a file whose beats mostly point up, with two beats whose large deflection points down
    # (a small bump before a deep S wave, as record 108): `compare` picks one sign for the whole
    # file and lands on the small bumps; the default (`both`) finds every beat's large deflection
    up_peaks, down_peaks = [300, 900, 1500, 2100, 2700], [1200, 3300]
    x = _beats(up_peaks, n=3600)
    t = np.arange(3600)
    for p in down_peaks:
        x += 1.5 * np.exp(-0.5 * ((t - (p - 20)) / 3.0) ** 2)
        x -= 5.0 * np.exp(-0.5 * ((t - p) / 3.0) ** 2)
    peaks = sorted(up_peaks + down_peaks)
    times = (np.array(peaks) - 8) / RATE
    default = snap_to_signal_peaks(times, x, RATE, radius_s=0.1)
    assert np.array_equal(np.round(default * RATE).astype(int), peaks)
    compare = snap_to_signal_peaks(times, x, RATE, radius_s=0.1, direction="compare")
    landed = np.round(compare * RATE).astype(int)
    for p in down_peaks:  # on the small bump (noise may move its maximum by a sample)
        assert abs(int(landed[peaks.index(p)]) - (p - 20)) <= 2


def test_a_time_far_from_every_peak_moves_at_most_the_radius_and_stays_inside_the_signal():
    x = _beats([1800])
    times = np.array([0.0, 2.0, 9.999, 5.0])
    moved = snap_to_signal_peaks(times, x, RATE, radius_s=0.05)
    assert np.all(np.abs(moved - times) <= 0.05 + 1 / RATE)
    assert moved.min() >= 0 and moved.max() <= (len(x) - 1) / RATE
    assert np.round(moved[3] * RATE) == 1800  # 5 s is the peak itself


def test_the_channel_is_chosen_and_empty_input_passes_through():
    peaks = [700, 1700]
    two = np.stack([np.random.default_rng(0).normal(0, 0.05, 3600), _beats(peaks)])
    times = (np.array(peaks) - 10) / RATE
    moved = snap_to_signal_peaks(times, two, RATE, radius_s=0.05, channel=1)
    assert np.array_equal(np.round(moved * RATE).astype(int), peaks)
    empty = snap_to_signal_peaks(np.zeros(0), two, RATE, radius_s=0.05)
    assert empty.shape == (0,) and empty.dtype == np.float64


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"times_s": np.zeros((2, 2))}, "`times_s` must be a 1-D array"),
    ({"times_s": np.array([np.nan])}, "`times_s` must be a 1-D array of finite"),
    ({"signal": np.zeros((1, 0))}, "`signal` must be finite"),
    ({"signal": np.zeros((1, 2, 3))}, "`signal` must be finite"),
    ({"rate_hz": 0.0}, "`rate_hz`"),
    ({"radius_s": 0.0}, "`radius_s`"),
    ({"smooth_s": float("inf")}, "`smooth_s`"),
    ({"direction": "sideways"}, "`direction` must be one of"),
    ({"channel": 1}, "`channel` 1 does not exist; the signal has 1 channel"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"times_s": np.array([1.0]), "signal": np.zeros(3600), "rate_hz": RATE,
            "radius_s": 0.05, **kwargs}
    times, signal, rate = args.pop("times_s"), args.pop("signal"), args.pop("rate_hz")
    with pytest.raises(ValueError, match=message):
        snap_to_signal_peaks(times, signal, rate, **args)


def test_the_directions_are_those_of_wfdb_and_the_configuration_takes_each():
    assert set(SNAP_DIRECTIONS) == {"compare", "up", "down", "both"}
    from softloc.config import InferenceConfig

    for d in SNAP_DIRECTIONS:  # the config validates against its own list: keep them equal
        assert InferenceConfig(snap_direction=d).snap_direction == d
    import inspect

    # a detector's default snap is the one tested above, whichever entry point a user takes
    default = inspect.signature(snap_to_signal_peaks).parameters["direction"].default
    assert InferenceConfig().snap_direction == default
