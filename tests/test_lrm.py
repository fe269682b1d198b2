"""softloc.models.lrm: the alignment posterior against brute-force enumeration; EM; robustness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import expit

from softloc.models.lrm import LRM, alignment_posterior, shift_log_weights


def _brute_force(logits, labels, max_shift, noise_sd):
    """Enumerate every y in {0,1}^T: p(y|x) * p(z|y) under the LR-M model, in float64."""
    p = expit(np.asarray(logits, dtype=np.float64))
    z = np.sort(np.asarray(labels, dtype=np.int64))
    d = np.arange(-max_shift, max_shift + 1)
    g = np.ones(d.size) if noise_sd is None else np.exp(-0.5 * (d / noise_sd) ** 2)
    g = g / g.sum()
    total, q = 0.0, np.zeros(p.size)
    for y in itertools.product([0, 1], repeat=p.size):
        y = np.array(y)
        s = np.flatnonzero(y)
        if s.size != z.size or np.any(np.abs(z - s) > max_shift):
            continue
        w = np.prod(np.where(y == 1, p, 1 - p)) * np.prod(g[z - s + max_shift])
        total += w
        q += w * y
    return q / total, np.log(total)


@pytest.mark.parametrize("labels, max_shift, noise_sd", [
    ([2, 5], 1, None), ([2, 5], 2, 1.0), ([1, 2, 6], 2, None), ([3, 3], 1, 0.7), ([0, 8], 3, 2.0),
    ([], 2, None), ([4], 0, None),
])
def test_posterior_matches_enumeration(labels, max_shift, noise_sd):
    rng = np.random.default_rng(len(labels) * 10 + max_shift)
    logits = rng.normal(scale=2.0, size=9)
    q, log_z = alignment_posterior(logits, labels, max_shift=max_shift, noise_sd=noise_sd)
    q_ref, log_z_ref = _brute_force(logits, labels, max_shift, noise_sd)
    np.testing.assert_allclose(q, q_ref, atol=1e-10)
    assert log_z == pytest.approx(log_z_ref, abs=1e-10)
    assert q.sum() == pytest.approx(len(labels))


def test_zero_shift_posterior_is_the_labels():
    q, _ = alignment_posterior(np.zeros(10), [1, 7], max_shift=0)
    np.testing.assert_allclose(q, np.eye(10)[1] + np.eye(10)[7], atol=1e-12)


def test_label_order_does_not_matter_and_impossible_labels_raise():
    a = np.linspace(-1, 1, 12)
    q1, z1 = alignment_posterior(a, [9, 2, 5], max_shift=1)
    q2, z2 = alignment_posterior(a, [2, 5, 9], max_shift=1)
    np.testing.assert_array_equal(q1, q2)
    with pytest.raises(ValueError, match="no alignment explains the labels"):
        alignment_posterior(a, [4, 4], max_shift=0)
    with pytest.raises(ValueError, match=r"`label_steps` must lie in \[0, 11\]"):
        alignment_posterior(a, [12], max_shift=1)


def test_shift_weights_are_normalised():
    for sd in (None, 0.5, 3.0):
        lw = shift_log_weights(3, sd)
        assert lw.shape == (7,) and np.exp(lw).sum() == pytest.approx(1.0)
    assert np.argmax(shift_log_weights(3, 1.0)) == 3


def _puff_like(seed, n_seq=12, n_steps=120, shift=2):
    """Events where feature 0 is high; labels displaced by +-shift steps (binary B(-d, d))."""
    rng = np.random.default_rng(seed)
    xs, truth, noisy = [], [], []
    for _ in range(n_seq):
        x = rng.normal(size=(3, n_steps))
        events = np.sort(rng.choice(np.arange(5, n_steps - 5, 6), size=8, replace=False))
        x[0, events] += 5.0
        z = events + rng.choice([-shift, shift], size=events.size)
        xs.append(x)
        truth.append(events)
        noisy.append(z)
    return xs, truth, noisy


def _exact_f1(model, xs, truth):
    tp = fp = fn = 0
    for x, t in zip(xs, truth, strict=True):
        pred = np.flatnonzero(model.predict(x))
        tp += np.intersect1d(pred, t).size
        fp += pred.size - np.intersect1d(pred, t).size
        fn += t.size - np.intersect1d(pred, t).size
    return 2 * tp / (2 * tp + fp + fn)


def test_em_never_decreases_the_penalised_likelihood():
    xs, _, noisy = _puff_like(0)
    m = LRM(max_shift=2, l2=1.0, max_iter=15, tol=0.0).fit(xs, noisy)
    h = np.array(m.history_)
    assert h.size > 3
    assert np.all(np.diff(h) >= -1e-6 * np.abs(h[:-1]))


def test_lrm_recovers_true_steps_that_plain_lr_misses():
    xs, truth, noisy = _puff_like(1)
    xt, tt, _ = _puff_like(2)
    lrm = LRM(max_shift=2).fit(xs, noisy)
    plain = LRM(max_shift=0).fit(xs, noisy)  # the labels taken as exact
    assert _exact_f1(lrm, xt, tt) > 0.9
    assert _exact_f1(plain, xt, tt) < 0.5
    assert lrm.coef_[0] > 5 * abs(lrm.coef_[1:]).max()


def test_context_stacks_neighbouring_steps():
    xs, truth, noisy = _puff_like(3)
    m = LRM(max_shift=2, context=1, max_iter=3).fit(xs, noisy)
    assert m.coef_.shape == (9,)
    assert m.predict_proba(xs[0]).shape == (120,)


def test_fit_and_predict_validation():
    with pytest.raises(ValueError, match="one label list per sequence"):
        LRM().fit([np.zeros((2, 5))], [])
    with pytest.raises(ValueError, match=r"finite \(n_features, time\)"):
        LRM().fit([np.zeros(5)], [[1]])
    with pytest.raises(ValueError, match="same number of features"):
        LRM().fit([np.zeros((2, 5)), np.zeros((3, 5))], [[1], [2]])
    with pytest.raises(RuntimeError, match="call fit"):
        LRM().predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"`max_shift` must be >= 0"):
        LRM(max_shift=-1)
    m = LRM(max_shift=1, max_iter=1).fit([np.random.default_rng(0).normal(size=(2, 30))], [[3]])
    with pytest.raises(ValueError, match="expected 2 features, got 3"):
        m.predict(np.zeros((3, 5)))
