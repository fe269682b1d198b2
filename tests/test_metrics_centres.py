"""Matching of 2-D detection centres: against enumeration of every matching."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from softloc.metrics.centres import match_centres


def _brute_force(ref, ref_lab, est, est_lab, tol):
    """Best matching by enumeration: most pairs, then the smallest total distance."""
    best = (0, 0.0)
    n_ref, n_est = len(ref), len(est)
    for k in range(min(n_ref, n_est), 0, -1):
        for rs in itertools.combinations(range(n_ref), k):
            for es in itertools.permutations(range(n_est), k):
                d = [math.dist(ref[r], est[e]) for r, e in zip(rs, es, strict=True)]
                ok = all(
                    di <= tol and ref_lab[r] == est_lab[e]
                    for di, r, e in zip(d, rs, es, strict=True)
                )
                if ok and (k > best[0] or (k == best[0] and sum(d) < best[1])):
                    best = (k, sum(d))
        if best[0] == k:
            return best
    return best


@pytest.mark.parametrize("seed", range(12))
def test_match_centres_finds_the_largest_then_closest_matching(seed):
    rng = np.random.default_rng(seed)
    n_ref, n_est = rng.integers(0, 5, size=2)
    ref = rng.uniform(0, 20, (n_ref, 2))
    est = rng.uniform(0, 20, (n_est, 2))
    ref_lab = rng.integers(0, 2, n_ref)
    est_lab = rng.integers(0, 2, n_est)
    ri, ei, dist = match_centres(ref, ref_lab, est, est_lab, tolerance_px=8.0)
    n_best, total_best = _brute_force(ref, ref_lab, est, est_lab, 8.0)
    assert len(ri) == n_best
    assert dist.sum() == pytest.approx(total_best)
    assert len(set(ri.tolist())) == len(ri) and len(set(ei.tolist())) == len(ei)
    np.testing.assert_array_equal(ref_lab[ri], est_lab[ei])
    np.testing.assert_allclose(dist, np.linalg.norm(ref[ri] - est[ei], axis=1))


def test_match_centres_prefers_two_pairs_over_one_closer_pair():
    # est 0 is closest to ref 1, but only est 0 can reach ref 0: the matching must cross.
    ref = np.array([[0.0, 0.0], [0.0, 4.0]])
    est = np.array([[0.0, 3.0], [0.0, 7.0]])
    ri, ei, dist = match_centres(ref, [1, 1], est, [1, 1], tolerance_px=3.0)
    assert sorted(zip(ri.tolist(), ei.tolist(), strict=True)) == [(0, 0), (1, 1)]
    np.testing.assert_allclose(sorted(dist), [3.0, 3.0])  # the tolerance is inclusive


def test_match_centres_never_pairs_different_classes_and_handles_empties():
    ri, _, _ = match_centres([[5.0, 5.0]], [3], [[5.0, 5.0]], [4], tolerance_px=10.0)
    assert len(ri) == 0
    for ref, est in (([], [[1.0, 1.0]]), ([[1.0, 1.0]], []), ([], [])):
        ri, ei, d = match_centres(ref, [0] * len(ref), est, [0] * len(est), tolerance_px=1.0)
        assert ri.shape == ei.shape == d.shape == (0,)
    with pytest.raises(ValueError, match="match_centres: need one label per centre"):
        match_centres([[1.0, 1.0]], [], [], [], tolerance_px=1.0)
    with pytest.raises(ValueError, match="`tolerance_px` must be > 0"):
        match_centres([], [], [], [], tolerance_px=0.0)


