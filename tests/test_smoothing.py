import doctest

import numpy as np
import pytest

import softloc.smoothing
from softloc.smoothing import nadaraya_watson, nadaraya_watson_grid


def _direct(query, points, values, h):
    """The textbook formula, one query at a time, with the normalised Gaussian density."""
    points = np.asarray(points, float)
    points = points[:, None] if points.ndim == 1 else points
    query = np.asarray(query, float)
    query = query[:, None] if query.ndim == 1 else query
    h = np.broadcast_to(np.asarray(h, float), (points.shape[1],))
    out = []
    for q in query:
        w = []
        for x in points:
            u = (q - x) / h
            w.append(np.exp(-0.5 * float(u @ u)) / np.sqrt(2 * np.pi) ** len(h) / np.prod(h))
        w = np.array(w)
        out.append(float(w @ np.asarray(values, float) / w.sum()))
    return np.array(out)


def test_1d_matches_direct_formula():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 30)
    y = np.sin(x) + rng.normal(0, 0.1, 30)
    q = np.linspace(-1, 11, 25)
    np.testing.assert_allclose(nadaraya_watson(q, x, y, bandwidth=0.7), _direct(q, x, y, 0.7),
                               rtol=1e-12, atol=1e-12)


def test_2d_matches_direct_formula_with_per_dimension_bandwidth():
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 100, (40, 2))
    vals = rng.uniform(0.5, 1.0, 40)
    q = rng.uniform(-10, 110, (17, 2))
    got = nadaraya_watson(q, pts, vals, bandwidth=(12.0, 20.0))
    np.testing.assert_allclose(got, _direct(q, pts, vals, (12.0, 20.0)), rtol=1e-12)


def test_grid_layout_rows_are_y_columns_are_x():
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 1, (20, 2))
    vals = pts[:, 0] * 2 + pts[:, 1]
    gx, gy = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
    surface = nadaraya_watson_grid(pts, vals, gx, gy, bandwidth=0.2)
    assert surface.shape == (3, 4)
    for j, yv in enumerate(gy):
        for i, xv in enumerate(gx):
            ref = _direct(np.array([[xv, yv]]), pts, vals, 0.2)[0]
            assert surface[j, i] == pytest.approx(ref, rel=1e-12)


def test_constant_values_are_reproduced_exactly():
    pts = np.random.default_rng(4).uniform(0, 5, (10, 2))
    out = nadaraya_watson(np.array([[1.0, 1.0], [100.0, -50.0]]), pts, np.full(10, 0.8),
                          bandwidth=1.0)
    np.testing.assert_allclose(out, 0.8, rtol=0, atol=1e-15)


def test_tiny_bandwidth_gives_nearest_sample_and_huge_gives_mean():
    x = np.array([0.0, 1.0, 3.0])
    y = np.array([10.0, 20.0, 40.0])
    near = nadaraya_watson([0.1, 0.9, 2.6], x, y, bandwidth=1e-3)
    np.testing.assert_allclose(near, [10.0, 20.0, 40.0])
    far = nadaraya_watson([1.0], x, y, bandwidth=1e6)
    assert far[0] == pytest.approx(y.mean(), rel=1e-9)


def test_far_query_does_not_underflow_to_nan():
    # direct weights are exp(-0.5 * 1e6) = 0 in float64 -> 0/0; log-space gives the nearest value
    out = nadaraya_watson([1000.0], [0.0, 1.0], [5.0, 7.0], bandwidth=1.0)
    assert out[0] == pytest.approx(7.0)


def test_estimates_lie_within_value_range():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 1, 50), rng.uniform(-3, 2, 50)
    out = nadaraya_watson(np.linspace(-1, 2, 100), x, y, bandwidth=0.05)
    assert out.min() >= y.min() - 1e-12 and out.max() <= y.max() + 1e-12


def test_nan_values_are_ignored():
    x = np.array([0.0, 1.0, 2.0])
    with_nan = nadaraya_watson([0.5, 1.5], x, [1.0, np.nan, 3.0], bandwidth=0.8)
    without = nadaraya_watson([0.5, 1.5], x[[0, 2]], [1.0, 3.0], bandwidth=0.8)
    np.testing.assert_allclose(with_nan, without)


def test_validation_errors_name_function_and_argument():
    with pytest.raises(ValueError, match=r"nadaraya_watson: `bandwidth` must be finite and > 0"):
        nadaraya_watson([0.0], [0.0], [1.0], bandwidth=0.0)
    with pytest.raises(ValueError, match=r"`bandwidth` must be one number or 2 numbers"):
        nadaraya_watson([[0.0, 0.0]], [[0.0, 0.0]], [1.0], bandwidth=(1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match=r"`bandwidth` must be a number or a sequence, got bool"):
        nadaraya_watson([0.0], [0.0], [1.0], bandwidth=True)
    with pytest.raises(ValueError, match=r"`values` must have shape \(n,\) = \(2,\)"):
        nadaraya_watson([0.0], [0.0, 1.0], [1.0], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"`query` must have 2 column\(s\)"):
        nadaraya_watson([0.0], [[0.0, 1.0]], [1.0], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"`points` must be finite"):
        nadaraya_watson([0.0], [np.nan], [1.0], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"no non-NaN entry"):
        nadaraya_watson([0.0], [0.0], [np.nan], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"found inf"):
        nadaraya_watson([0.0], [0.0], [np.inf], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"`points` must have shape \(n,\) or \(n, dim\)"):
        nadaraya_watson([0.0], np.zeros((2, 2, 2)), [1.0, 2.0], bandwidth=1.0)
    with pytest.raises(TypeError, match=r"`points` must be an array of numbers"):
        nadaraya_watson([0.0], ["a"], [1.0], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"nadaraya_watson_grid: `x_grid` must be a non-empty"):
        nadaraya_watson_grid([[0.0, 0.0]], [1.0], [], [0.0], bandwidth=1.0)
    with pytest.raises(ValueError, match=r"nadaraya_watson_grid: `bandwidth`"):
        nadaraya_watson_grid([[0.0, 0.0]], [1.0], [0.0], [0.0], bandwidth=-1.0)


def test_doctests_run():
    result = doctest.testmod(softloc.smoothing, verbose=False)
    assert result.attempted > 0 and result.failed == 0
