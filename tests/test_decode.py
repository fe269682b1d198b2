"""Tests for softloc.decode: each compares against a hand-worked value or an independent loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from softloc.decode import (
    DECODERS,
    Events,
    decode_events,
    local_mass,
    pick_mass_peaks,
    pick_normalized_peaks,
    pick_peaks,
    stitch_windows,
    threshold_events,
    window_mass_events,
)

# ------------------------------------------------------------------------------------------
# independent references (plain Python loops, written from the docstrings' definitions)
# ------------------------------------------------------------------------------------------


def _greedy_min_distance(cands: list[tuple[int, float]], d: int) -> list[int]:
    """O(n^2) greedy: highest score first (ties: earlier frame), drop candidates closer than d."""
    order = sorted(cands, key=lambda fs: (-fs[1], fs[0]))
    kept: list[int] = []
    for frame, _ in order:
        if all(abs(frame - k) >= d for k in kept):
            kept.append(frame)
    return sorted(kept)


def _runs_reference(p: np.ndarray, thr: float, d: int) -> list[tuple[int, int, float]]:
    out = []
    for c in range(p.shape[0]):
        cands, t, n = [], 0, p.shape[1]
        while t < n:
            if p[c, t] > thr:
                best = t
                while t < n and p[c, t] > thr:
                    if p[c, t] > p[c, best]:
                        best = t
                    t += 1
                cands.append((best, float(p[c, best])))
            else:
                t += 1
        for f in _greedy_min_distance(cands, d):
            out.append((f, c, float(p[c, f])))
    return sorted(out)


def _as_triples(ev: Events) -> list[tuple[int, int, float]]:
    return list(zip(ev.frames.tolist(), ev.classes.tolist(), ev.scores.tolist(), strict=True))


# ------------------------------------------------------------------------------------------
# threshold_events
# ------------------------------------------------------------------------------------------


def test_threshold_events_one_event_per_run_at_peak():
    p = np.array([[0.1, 0.5, 0.9, 0.6, 0.1, 0.4, 0.7]])
    ev = threshold_events(p, threshold=0.4, frame_rate=100.0)
    # run [1, 4) peaks at 2; frame 5 equals the threshold (no trigger), so the run is [6, 7)
    assert ev.frames.tolist() == [2, 6]
    assert ev.scores.tolist() == [0.9, 0.7]
    np.testing.assert_allclose(ev.times_s, [0.02, 0.06])


def test_threshold_events_value_equal_to_threshold_does_not_trigger():
    p = np.array([[0.0, 0.5, 0.0, 0.5000001, 0.0]])
    assert threshold_events(p, threshold=0.5, frame_rate=1.0).frames.tolist() == [3]


def test_threshold_events_runs_touching_both_boundaries():
    p = np.array([[0.9, 0.8, 0.0, 0.5, 0.6]])
    ev = threshold_events(p, threshold=0.3, frame_rate=1.0)
    assert ev.frames.tolist() == [0, 4]


def test_threshold_events_tied_peak_takes_first_frame():
    p = np.array([[0.0, 0.7, 0.7, 0.2, 0.0]])
    assert threshold_events(p, threshold=0.1, frame_rate=1.0).frames.tolist() == [1]


def test_threshold_events_sorted_by_time_then_class_with_offset():
    p = np.zeros((3, 6))
    p[2, 1] = p[0, 4] = p[1, 1] = 0.8
    ev = threshold_events(p, threshold=0.5, frame_rate=200.0, time_offset_s=-0.005)
    assert ev.frames.tolist() == [1, 1, 4]
    assert ev.classes.tolist() == [1, 2, 0]
    np.testing.assert_allclose(ev.times_s, [0.0, 0.0, 0.015])
    assert ev.n_classes == 3 and len(ev) == 3
    assert [t.tolist() for t in ev.per_class()] == [[0.015], [0.0], [0.0]]
    assert ev.labelled(["HH", "KD", "SD"]) == [(0.0, "KD"), (0.0, "SD"), (0.015, "HH")]
    assert ev.to_list()[2] == (0.015, 0, 0.8)
    np.testing.assert_allclose(ev.times_of(0), [0.015])


@pytest.mark.parametrize("min_distance", [1, 3, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_events_matches_python_loop_reference(seed, min_distance):
    rng = np.random.default_rng(seed)
    p = rng.random((4, 300)) ** 3  # sparse-ish runs
    ev = threshold_events(p, threshold=0.3, frame_rate=200.0, min_distance_frames=min_distance)
    ref = _runs_reference(p, 0.3, min_distance)
    assert sorted(_as_triples(ev)) == ref
    assert len(ref) > 10  # the case is not trivial


def test_threshold_events_min_distance_keeps_higher_and_allows_exact_distance():
    p = np.zeros((1, 12))
    p[0, 2], p[0, 5], p[0, 9] = 0.9, 0.95, 0.8
    assert threshold_events(
        p, threshold=0.5, frame_rate=1.0, min_distance_frames=4
    ).frames.tolist() == [5, 9]
    assert threshold_events(
        p, threshold=0.5, frame_rate=1.0, min_distance_frames=3
    ).frames.tolist() == [2, 5, 9]


def test_min_distance_ties_keep_the_earlier_event():
    p = np.zeros((1, 10))
    p[0, [2, 5]] = 0.8
    assert threshold_events(
        p, threshold=0.5, frame_rate=1.0, min_distance_frames=4
    ).frames.tolist() == [2]
    assert pick_peaks(p, threshold=0.5, frame_rate=1.0, min_distance_frames=4).frames.tolist() == [
        2
    ]


def test_threshold_events_accepts_torch_and_numpy_alike():
    p = torch.rand(3, 50, dtype=torch.float32)
    a = threshold_events(p, threshold=0.6, frame_rate=50.0)
    b = threshold_events(p.numpy(), threshold=0.6, frame_rate=50.0)
    assert _as_triples(a) == _as_triples(b)


def test_threshold_events_finds_events_lost_by_y0_ratio_underflow():
    # facts §5.1: 18 confident events over 400 steps; in float32 Y0(t) underflows and the
    # ratio 1 - Y0(t)/Y0(t-1) becomes NaN, losing the last events. Thresholding p keeps them.
    p = np.full(400, 1e-4, dtype=np.float32)
    p[np.linspace(10, 390, 18).astype(int)] = 0.999
    y0 = np.cumprod(1 - p, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_p = 1 - y0[1:] / y0[:-1]
    assert (ratio_p > 0.4).sum() < 18  # the original recovery really loses events here
    ev = threshold_events(p[None], threshold=0.4, frame_rate=200.0)
    assert len(ev) == 18


def test_threshold_events_empty_and_silent_inputs():
    ev = threshold_events(np.zeros((2, 0)), threshold=0.5, frame_rate=1.0)
    assert len(ev) == 0 and ev.frames.dtype == np.int64 and ev.n_classes == 2
    assert len(threshold_events(np.zeros((2, 10)), threshold=0.0, frame_rate=1.0)) == 0


@pytest.mark.parametrize(
    "probs, kwargs, exc, match",
    [
        (
            np.zeros(5),
            {},
            ValueError,
            r"threshold_events: `probs` must have shape \(class, time\).*x\[None\]",
        ),
        (np.zeros((1, 2, 5)), {}, ValueError, "loop over the batch"),
        (np.full((1, 5), 1.5), {}, ValueError, r"probabilities in \[0, 1\].*sigmoid"),
        (np.full((1, 5), np.nan), {}, ValueError, "`probs` must be finite"),
        (np.zeros((1, 5), dtype=np.int64), {}, TypeError, "floating-point array"),
        (torch.zeros(1, 5, dtype=torch.int64), {}, TypeError, "floating-point tensor"),
        ([[0.1, 0.2]], {}, TypeError, r"numpy.ndarray or torch.Tensor.*np.asarray"),
        (np.zeros((1, 5)), {"threshold": 1.0}, ValueError, r"`threshold` must lie in \[0, 1\)"),
        (np.zeros((1, 5)), {"frame_rate": 0.0}, ValueError, "`frame_rate` must be > 0"),
        (
            np.zeros((1, 5)),
            {"min_distance_frames": 0},
            ValueError,
            "`min_distance_frames` must be >= 1",
        ),
        (
            np.zeros((1, 5)),
            {"min_distance_frames": 2.0},
            TypeError,
            "`min_distance_frames` must be an int",
        ),
    ],
)
def test_threshold_events_validation_errors(probs, kwargs, exc, match):
    args = {"threshold": 0.5, "frame_rate": 100.0, **kwargs}
    with pytest.raises(exc, match=match):
        threshold_events(probs, **args)


# ------------------------------------------------------------------------------------------
# pick_peaks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [1, 2, 5, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_pick_peaks_matches_scipy_find_peaks(seed, distance):
    rng = np.random.default_rng(seed)
    x = rng.random((3, 400))
    x[:, 0] = x[:, -1] = -1.0  # no boundary maxima: scipy never reports those
    ev = pick_peaks(x, threshold=0.4, frame_rate=100.0, min_distance_frames=distance)
    for c in range(3):
        expected, _ = find_peaks(x[c], height=0.4, distance=distance)
        np.testing.assert_array_equal(ev.frames[ev.classes == c], expected)
        np.testing.assert_array_equal(ev.scores[ev.classes == c], x[c, expected])


@pytest.mark.parametrize("seed", [3, 4])
def test_pick_peaks_matches_brute_force_including_boundaries(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((2, 200))
    ev = pick_peaks(x, threshold=0.3, frame_rate=1.0, min_distance_frames=6)
    for c in range(2):
        padded = np.concatenate(([-np.inf], x[c], [-np.inf]))
        cands = [
            (t, float(x[c, t]))
            for t in range(200)
            if padded[t + 1] > padded[t] and padded[t + 1] > padded[t + 2] and x[c, t] > 0.3
        ]
        assert ev.frames[ev.classes == c].tolist() == _greedy_min_distance(cands, 6)


def test_pick_peaks_hand_cases_plateaus_edges_and_threshold_equality():
    a = np.array(
        [
            [0.0, 0.5, 0.5, 0.5, 0.0, 0.0],  # plateau of 3 -> middle frame 2
            [0.0, 0.5, 0.5, 0.0, 0.0, 0.0],  # plateau of 2 -> middle rounded down, frame 1
            [0.9, 0.1, 0.0, 0.0, 0.2, 0.8],  # maxima on both boundaries
            [0.0, 0.4, 0.0, 0.41, 0.0, 0.0],  # 0.4 equals the threshold: not a peak
        ]
    )
    ev = pick_peaks(a, threshold=0.4, frame_rate=1.0)
    assert sorted(zip(ev.classes.tolist(), ev.frames.tolist(), strict=True)) == [
        (0, 2),
        (1, 1),
        (2, 0),
        (2, 5),
        (3, 3),
    ]


def test_pick_peaks_min_distance_keeps_higher_peak():
    a = np.array([[0.0, 0.6, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0]])
    ev = pick_peaks(a, threshold=0.1, frame_rate=1.0, min_distance_frames=4)
    assert ev.frames.tolist() == [4, 9]


def test_pick_peaks_allows_negative_activations_and_threshold():
    a = np.array([[-3.0, -1.0, -2.0, -0.5, -4.0]])
    assert pick_peaks(a, threshold=-1.5, frame_rate=1.0).frames.tolist() == [1, 3]


def test_pick_peaks_validation_errors():
    with pytest.raises(
        ValueError, match=r"pick_peaks: `activation` must have shape \(class, time\)"
    ):
        pick_peaks(np.zeros((2, 3, 4)), threshold=0.5, frame_rate=1.0)
    with pytest.raises(TypeError, match="pick_peaks: `threshold` must be a real number"):
        pick_peaks(np.zeros((1, 4)), threshold=None, frame_rate=1.0)
    with pytest.raises(ValueError, match="`activation` must be finite"):
        pick_peaks(np.array([[0.0, np.inf]]), threshold=0.5, frame_rate=1.0)


# ------------------------------------------------------------------------------------------
# window_mass_events (the original cleaning rule)
# ------------------------------------------------------------------------------------------


def _cleaning_reference(density: np.ndarray, w: int, mass: float) -> list[tuple[int, int]]:
    """The rule as described in the facts (§5.3): a forward scan that clears [t, t + w)."""
    d = density.copy()
    out = []
    for c in range(d.shape[0]):
        for t in range(d.shape[1]):
            if d[c, t] > 0 and d[c, t : t + w].sum() >= mass:
                out.append((t, c))
                d[c, t : t + w] = 0
    return sorted(out)


@pytest.mark.parametrize("w, mass", [(9, 0.5), (20, 0.35), (1, 0.2)])
def test_window_mass_events_matches_forward_scan_reference(w, mass):
    rng = np.random.default_rng(5)
    # multiples of 1/3 like a 3-window overlap average of binary triggers
    density = (rng.random((3, 500)) < 0.08) * rng.integers(1, 4, (3, 500)) / 3.0
    ev = window_mass_events(density, window_frames=w, min_mass=mass, frame_rate=200.0)
    assert list(zip(ev.frames.tolist(), ev.classes.tolist(), strict=True)) == sorted(
        _cleaning_reference(density, w, mass), key=lambda fc: (fc[0], fc[1])
    )
    assert len(ev) > 5


def test_window_mass_events_hand_case_emits_earliest_frame():
    d = np.array([[0.0, 0.2, 0.3, 0.3, 0.0, 0.0, 0.1, 0.0]])
    ev = window_mass_events(d, window_frames=3, min_mass=0.5, frame_rate=200.0)
    assert ev.frames.tolist() == [1]
    assert ev.scores[0] == pytest.approx(0.8)


def test_window_mass_events_validation_errors():
    with pytest.raises(ValueError, match="window_mass_events: `density` must be >= 0"):
        window_mass_events(np.array([[-0.1, 0.0]]), window_frames=2, min_mass=0.5, frame_rate=1.0)
    with pytest.raises(ValueError, match="`min_mass` must be > 0"):
        window_mass_events(np.zeros((1, 3)), window_frames=2, min_mass=0.0, frame_rate=1.0)
    with pytest.raises(ValueError, match="`window_frames` must be >= 1"):
        window_mass_events(np.zeros((1, 3)), window_frames=0, min_mass=0.5, frame_rate=1.0)


# ------------------------------------------------------------------------------------------
# stitch_windows
# ------------------------------------------------------------------------------------------


def _stitch_reference(w: np.ndarray, hop: int, total: int, valid: list[int]) -> np.ndarray:
    num = np.zeros((w.shape[1], total))
    den = np.zeros(total)
    for i in range(w.shape[0]):
        for k in range(valid[i]):
            pos = i * hop + k
            if pos < total:
                num[:, pos] += w[i, :, k]
                den[pos] += 1
    return num / den


@pytest.mark.parametrize("seed", range(6))
def test_stitch_windows_matches_numpy_loop_reference(seed):
    rng = np.random.default_rng(seed)
    window_len = int(rng.integers(5, 40))
    valid_len = int(rng.integers(1, window_len + 1))
    hop = int(rng.integers(1, valid_len + 1))
    n_windows = int(rng.integers(1, 8))
    # the file ends inside the last window's valid part: a partial last window
    total = (n_windows - 1) * hop + int(rng.integers(1, valid_len + 1))
    w = rng.random((n_windows, 3, window_len))
    out = stitch_windows(w, hop_frames=hop, total_frames=total, valid_frames=valid_len)
    np.testing.assert_allclose(out, _stitch_reference(w, hop, total, [valid_len] * n_windows))
    assert out.shape == (3, total) and out.dtype == np.float64


def test_stitch_windows_per_window_valid_frames_and_torch_input():
    rng = np.random.default_rng(7)
    w = rng.random((4, 2, 10))
    valid = [10, 10, 10, 4]
    out = stitch_windows(torch.from_numpy(w), hop_frames=5, total_frames=19, valid_frames=valid)
    np.testing.assert_allclose(out, _stitch_reference(w, 5, 19, valid))


def test_stitch_windows_drum_layout_three_agreeing_windows_average_to_one():
    # 1.5 s windows (300 frames) at 0.5 s hop (100 frames), 200 fps: inner frames see 3 windows
    w = np.zeros((5, 1, 400))
    w[:, 0, :300] = 1.0
    w[:, 0, 300:] = 7.0  # padding beyond valid_frames must be ignored
    out = stitch_windows(w, hop_frames=100, total_frames=700, valid_frames=300)
    np.testing.assert_array_equal(out, np.ones((1, 700)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"hop_frames": 6, "total_frames": 20, "valid_frames": 4},
            r"file frames \[4, 6\) are covered by no window",
        ),
        ({"hop_frames": 2, "total_frames": 40}, r"file frames \[11, 40\) are covered by no window"),
        ({"hop_frames": 10, "total_frames": 25}, r"window 3 starts at frame 30 >= total_frames=25"),
        (
            {"hop_frames": 2, "total_frames": 9, "valid_frames": 6},
            r"`valid_frames` must lie in \[1, window_frames=5\]",
        ),
        ({"hop_frames": 2, "total_frames": 9, "valid_frames": [5, 5]}, "one entry per window"),
        ({"hop_frames": 0, "total_frames": 9}, "`hop_frames` must be >= 1"),
    ],
)
def test_stitch_windows_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stitch_windows(np.zeros((4, 1, 5)), **kwargs)


def test_stitch_windows_type_errors():
    with pytest.raises(
        ValueError, match=r"`window_probs` must have shape \(n_windows, class, window_frames\)"
    ):
        stitch_windows(np.zeros((1, 5)), hop_frames=1, total_frames=5)
    with pytest.raises(TypeError, match="`valid_frames` must be an int or a 1-D sequence of ints"):
        stitch_windows(np.zeros((2, 1, 5)), hop_frames=1, total_frames=5, valid_frames=[1.5, 2.0])


@pytest.mark.parametrize("sigma", [0.0, 2.0, 7.5])
def test_pick_normalized_peaks_is_pick_peaks_on_the_activation_over_the_kernel_peak(sigma):
    rng = np.random.default_rng(7)
    a = rng.random((2, 300)) * 0.1
    # the kernel's peak height, from scipy's own taps (independent of softloc.losses)
    impulse = np.zeros(201)
    impulse[100] = 1.0
    peak = float(gaussian_filter1d(impulse, sigma).max()) if sigma > 0 else 1.0
    ev = pick_normalized_peaks(a, sigma_frames=sigma, frame_rate=50.0, min_distance_frames=3)
    want = pick_peaks(a / peak, threshold=0.35, frame_rate=50.0, min_distance_frames=3)
    np.testing.assert_array_equal(ev.frames, want.frames)
    np.testing.assert_array_equal(ev.classes, want.classes)
    np.testing.assert_allclose(ev.scores, want.scores, rtol=1e-6)
    assert len(ev) > 0 or sigma == 0.0


def test_pick_normalized_peaks_isolated_target_peaks_at_one():
    # an output equal to the training target of one event (Φ_σ ∗ δ) peaks at exactly 1
    impulse = np.zeros((1, 101))
    impulse[0, 40] = 1.0
    heat = gaussian_filter1d(impulse, 4.0, axis=1, mode="constant", truncate=4.0)
    ev = pick_normalized_peaks(heat, sigma_frames=4.0, frame_rate=100.0)
    assert ev.frames.tolist() == [40] and ev.scores[0] == pytest.approx(1.0, rel=1e-6)


def test_local_mass_matches_a_window_sum_loop():
    rng = np.random.default_rng(8)
    p = rng.random((3, 60))
    for h in (1, 4, 40):
        want = np.array(
            [[p[c, max(0, t - h) : t + h + 1].sum() for t in range(60)] for c in range(3)]
        )
        np.testing.assert_allclose(local_mass(p, half_window_frames=h), want, rtol=1e-12)


def test_pick_mass_peaks_finds_spread_events_that_no_frame_threshold_sees():
    p = np.zeros((1, 80))
    p[0, 10:15] = 0.2  # one event smeared over 5 frames: mass 1.0, every frame below 0.5
    p[0, 50:53] = [0.1, 0.15, 0.1]  # mass 0.35: not an event
    assert len(threshold_events(p, threshold=0.5, frame_rate=100.0)) == 0
    ev = pick_mass_peaks(p, half_window_frames=2, frame_rate=100.0)
    assert ev.frames.tolist() == [12] and ev.scores.tolist() == pytest.approx([1.0])
    want = pick_peaks(local_mass(p, half_window_frames=2), threshold=0.5, frame_rate=100.0)
    assert _as_triples(ev) == _as_triples(want)


def test_decode_events_dispatches_by_name_with_default_thresholds():
    rng = np.random.default_rng(9)
    p = rng.random((2, 120))
    kw = dict(frame_rate=100.0, time_offset_s=0.01, min_distance_frames=2)
    cases = {
        "threshold": threshold_events(p, threshold=0.5, **kw),
        "peaks": pick_peaks(p, threshold=0.5, **kw),
        "peaks-normalized": pick_normalized_peaks(p, sigma_frames=3.0, threshold=0.35, **kw),
        "mass-peaks": pick_mass_peaks(p, half_window_frames=2, threshold=0.5, **kw),
    }
    extra = {"peaks-normalized": {"sigma_frames": 3.0}, "mass-peaks": {"half_window_frames": 2}}
    assert set(cases) == set(DECODERS)
    for name, want in cases.items():
        got = decode_events(p, name, **kw, **extra.get(name, {}))
        assert _as_triples(got) == _as_triples(want)
        np.testing.assert_array_equal(got.times_s, want.times_s)
    got = decode_events(p, "peaks", threshold=0.9, **kw)
    assert _as_triples(got) == _as_triples(pick_peaks(p, threshold=0.9, **kw))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: decode_events(np.zeros((1, 4)), "argmax", frame_rate=1.0), ValueError,
         r"decode_events: `decoder` must be one of \('threshold'"),
        (lambda: decode_events(np.zeros((1, 4)), "mass-peaks", frame_rate=1.0), ValueError,
         "decoder 'mass-peaks' needs `half_window_frames`"),
        (lambda: decode_events(np.zeros((1, 4)), "peaks", frame_rate=1.0, sigma_frames=2.0),
         ValueError, "decoder 'peaks' does not use `sigma_frames`"),
        (lambda: pick_normalized_peaks(np.zeros((1, 4)), sigma_frames=-1.0, frame_rate=1.0),
         ValueError, "pick_normalized_peaks: `sigma` must be >= 0 frames"),
        (lambda: pick_normalized_peaks(np.zeros(4), sigma_frames=1.0, frame_rate=1.0),
         ValueError, r"`activation` must have shape \(class, time\)"),
        (lambda: local_mass(np.zeros((1, 4)), half_window_frames=0), ValueError,
         "local_mass: `half_window_frames` must be >= 1"),
        (lambda: pick_mass_peaks(np.zeros((1, 4), int), half_window_frames=1, frame_rate=1.0),
         TypeError, "pick_mass_peaks: `probs` must be a floating-point array"),
        (lambda: pick_mass_peaks(np.zeros((1, 4)), half_window_frames=1, frame_rate=0.0),
         ValueError, "pick_mass_peaks: `frame_rate` must be > 0"),
    ],
)
def test_new_decoder_validation_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("module, n_examples", [("decoders", 9), ("stitching", 1)])
def test_docstring_examples_run(module, n_examples):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"softloc.decode.{module}"))
    assert result.failed == 0 and result.attempted >= n_examples
