"""Tests for softloc.counting against independent oracles.

Oracles written here, independent of the library: brute-force enumeration of all 2^T outcomes,
a plain numpy log-space recursion over the *untruncated* distribution, scipy.stats.poisson_binom,
and closed forms (Pr(Y = 0) = prod(1 - p), the posterior-minus-prior gradient).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import threading

import numpy as np
import pytest
import torch
from scipy.stats import binom, poisson_binom

from softloc.counting import (
    BACKENDS,
    count_distribution,
    count_log_likelihood,
    count_prior_bias,
    cpu_options,
    resolve_backend,
    set_cpu_options,
)

FAST = ("cpu", "tree")
ALL = ("reference", "cpu", "tree")


@pytest.fixture
def tuned_cpu():
    """Restore the CPU backend's settings and torch's thread count after the test."""
    old, threads = cpu_options(), torch.get_num_threads()
    yield
    set_cpu_options(**old)
    torch.set_num_threads(threads)


def _pool_threads() -> int:
    """Threads of the CPU backend's kept pool that are alive in this process."""
    return sum(t.name.startswith("softloc-count") for t in threading.enumerate())


# ------------------------------------------------------------------------------------------
# Oracles


def enumerate_distribution(p: np.ndarray, k_max: int) -> np.ndarray:
    """Truncated distribution by summing all 2^T outcomes (float64); top bin = sum k >= k_max."""
    out = np.zeros(k_max + 1)
    for bits in itertools.product((0, 1), repeat=len(p)):
        prob = 1.0
        for b, pt in zip(bits, p, strict=True):
            prob *= pt if b else 1.0 - pt
        out[min(sum(bits), k_max)] += prob
    return out


def oracle_log_pmf(p: np.ndarray, k_max: int) -> np.ndarray:
    """log Pr(Y = k), k < k_max, and log Pr(Y >= k_max): untruncated log-space recursion."""
    log_y = np.full(len(p) + 1, -np.inf)
    log_y[0] = 0.0
    with np.errstate(divide="ignore"):
        for pt in p:
            lp, lq = np.log(pt), np.log1p(-pt)
            shifted = np.concatenate([[-np.inf], log_y[:-1]])
            log_y = np.logaddexp(log_y + lq, shifted + lp)
    out = np.full(k_max + 1, -np.inf)
    m = min(k_max, len(log_y))
    out[:m] = log_y[:m]
    if len(log_y) > k_max:
        out[k_max] = np.logaddexp.reduce(log_y[k_max:])
    return out


def rows(x: torch.Tensor) -> np.ndarray:
    return x.detach().reshape(-1, x.shape[-1]).numpy()


# ------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("t_len,k_max", [(1, 1), (5, 2), (7, 3), (10, 12), (12, 4)])
def test_count_distribution_matches_enumeration(backend, t_len, k_max):
    p = torch.rand(2, 2, t_len, dtype=torch.float64)
    p[0, 0, 0] = 0.0  # exact zeros and ones must be handled exactly
    p[1, 1, -1] = 1.0
    got = count_distribution(p, k_max, backend=backend)
    assert got.shape == (2, 2, k_max + 1) and got.dtype == torch.float64
    want = np.stack([enumerate_distribution(r, k_max) for r in rows(p)])
    np.testing.assert_allclose(rows(got), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ALL)
def test_log_distribution_matches_log_space_oracle_in_the_tails(backend):
    # sum p = 360 over 400 steps: Pr(Y <= 20) ~ 1e-300 and below -- far under float64 range.
    p = (0.8 + 0.2 * torch.rand(1, 2, 400, dtype=torch.float64)).clamp(max=0.999)
    k_max = 24
    got = count_distribution(p, k_max, log=True, backend=backend)
    want = np.stack([oracle_log_pmf(r, k_max) for r in rows(p)])
    assert np.all(np.isfinite(want)) and want[:, 0].max() < -700
    np.testing.assert_allclose(rows(got), want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("t_len", [400, 4000])
def test_log_likelihood_matches_scipy_poisson_binom(backend, t_len):
    gen = np.random.default_rng(t_len)
    p = torch.from_numpy(gen.uniform(0, 0.05, size=(3, 1, t_len)))
    k_max = 64
    for r, pr in enumerate(rows(p)):
        mean = pr.sum()
        ks = np.unique(np.clip(np.round([0, mean / 2, mean, mean + 5, 2 * mean, k_max]), 0, k_max))
        for k in ks.astype(int):
            want = poisson_binom.logpmf(k, pr) if k < k_max else poisson_binom.logsf(k - 1, pr)
            # scipy's logpmf floors at ~-745 and its logsf (1 - cdf) at ~-34.
            if want < (-600 if k < k_max else -20):
                continue
            got = count_log_likelihood(
                p[r : r + 1], torch.tensor([[k]]), k_max, backend=backend
            ).item()
            assert got == pytest.approx(want, rel=1e-10, abs=1e-10), (r, k)


def test_log_likelihood_long_sequence_matches_binomial_and_closed_form():
    # T = 100000, mean p = 0.05: sum p ~ 5000, so every count <= k_max = 128 is far in the tail.
    t_len, k_max = 100_000, 128
    p = torch.full((1, 1, t_len), 0.05, dtype=torch.float64)
    counts = torch.tensor([0, 50, 127, 128])
    ll = count_log_likelihood(p.expand(4, 1, t_len), counts[:, None], k_max, backend="cpu")
    want = binom.logpmf(counts[:3].numpy(), t_len, 0.05)
    np.testing.assert_allclose(ll[:3, 0].numpy(), want, rtol=1e-10)
    assert ll[3].item() == pytest.approx(0.0, abs=1e-12)  # Pr(Y >= 128) = 1 - 1e-2000
    # Random p, count 0: log prod(1 - p_t), gradient -1 / (1 - p_t) -- exact and finite.
    pn = np.random.default_rng(1).uniform(0, 0.1, size=t_len)
    x = torch.from_numpy(pn)[None, None].requires_grad_()
    ll = count_log_likelihood(x, torch.tensor([[0]]), k_max, backend="cpu")
    assert ll.item() == pytest.approx(np.log1p(-pn).sum(), rel=1e-10)
    (grad,) = torch.autograd.grad(ll.sum(), x)
    np.testing.assert_allclose(grad.numpy().ravel(), -1.0 / (1.0 - pn), rtol=1e-9)


@pytest.mark.slow
def test_log_likelihood_long_random_sequence_matches_scipy():
    gen = np.random.default_rng(2)
    pn = gen.uniform(0, 0.002, size=100_000)
    p = torch.from_numpy(pn)[None, None]
    for k in (50, 100, 127):
        ll = count_log_likelihood(p, torch.tensor([[k]]), 128, backend="cpu")
        assert ll.item() == pytest.approx(poisson_binom.logpmf(k, pn), rel=1e-10)


@pytest.mark.parametrize("backend", ALL)
def test_distribution_sums_to_one_and_top_bin_is_the_tail_mass(backend):
    p = torch.rand(3, 2, 60, dtype=torch.float64) * 0.3
    k_max = 6
    got = count_distribution(p, k_max, backend=backend)
    torch.testing.assert_close(got.sum(-1), torch.ones(3, 2, dtype=torch.float64))
    for r, pr in enumerate(rows(p)):
        assert rows(got)[r, -1] == pytest.approx(poisson_binom.sf(k_max - 1, pr), rel=1e-12)
        np.testing.assert_allclose(rows(got)[r, :-1], poisson_binom.pmf(range(k_max), pr))


@pytest.mark.parametrize("backend", ALL)
def test_prefix_mass_never_moves_back(backend):
    # LoCo Property 1: Pr(Y_t >= k) is non-decreasing in t for every k (mass shift irreversibility).
    t_len, k_max = 30, 5
    p = torch.rand(1, 1, t_len, dtype=torch.float64).expand(t_len + 1, 1, t_len)
    prefix = count_distribution(p, k_max, lengths=torch.arange(t_len + 1), backend=backend)
    upper = prefix[:, 0].flip(-1).cumsum(-1).flip(-1)  # (t, k) -> Pr(Y_t >= k)
    assert torch.all(upper[1:] >= upper[:-1] - 1e-15)
    assert torch.all(upper[-1, 1:] > upper[0, 1:])  # and it did move


@pytest.mark.parametrize("backend", ALL)
def test_lengths_mask_equals_truncating_the_sequence(backend):
    p = torch.rand(3, 2, 20, dtype=torch.float64)
    lengths = torch.tensor([20, 7, 0])
    counts = torch.tensor([[3, 9], [2, 0], [0, 1]])
    got = count_distribution(p, 8, lengths=lengths, log=True, backend=backend)
    ll = count_log_likelihood(p, counts, 8, lengths=lengths, backend=backend)
    for b in range(3):
        trunc = p[b : b + 1, :, : lengths[b]]
        want = count_distribution(trunc, 8, log=True, backend="reference")[0]
        torch.testing.assert_close(got[b], want)
        want_ll = count_log_likelihood(trunc, counts[b : b + 1], 8, backend="reference")[0]
        torch.testing.assert_close(ll[b], want_ll)
    # Empty sequence: Pr(Y = 0) = 1.
    assert got[2, :, 0].tolist() == [0.0, 0.0] and ll[2, 0].item() == 0.0
    assert ll[2, 1].item() == -math.inf


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("logits", [False, True])
def test_backends_agree_with_reference(backend, logits):
    x = torch.randn(4, 3, 97, dtype=torch.float64) * 2 - 3
    if not logits:
        x = torch.sigmoid(x)
    counts = torch.randint(0, 20, (4, 3))
    lengths = torch.tensor([97, 50, 1, 96])
    kw = dict(lengths=lengths, logits=logits)
    for k_max in (1, 3, 16):
        want = count_log_likelihood(x, counts, k_max, backend="reference", **kw)
        got = count_log_likelihood(x, counts, k_max, backend=backend, **kw)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        for log in (False, True):
            want = count_distribution(x, k_max, log=log, backend="reference", **kw)
            got = count_distribution(x, k_max, log=log, backend=backend, **kw)
            torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("backend", ALL)
def test_counts_at_or_above_k_max_score_the_top_bin(backend):
    p = torch.rand(2, 1, 15, dtype=torch.float64)
    dist = count_distribution(p, 4, log=True, backend=backend)
    ll = count_log_likelihood(p, torch.tensor([[4.0], [11.0]]), 4, backend=backend)
    torch.testing.assert_close(ll, dist[:, :, 4])


@pytest.mark.parametrize("logits", [False, True])
def test_cpu_chunked_rows_match_reference(tuned_cpu, logits):
    # With fewer rows than SIMD lanes the CPU backend cuts rows into chunks and multiplies the
    # chunk distributions; force that path on small inputs (chunks of >= 4 steps).
    set_cpu_options(min_chunk_steps=4)
    x = torch.randn(3, 1, 61, dtype=torch.float64) - 1.0
    x[2] += 8.0  # p ~ 0.999: Pr(Y = 1) ~ 1e-170 -> the tilted problem, in chunks
    if not logits:
        x = torch.sigmoid(x)
    x.requires_grad_()
    lengths = torch.tensor([61, 23, 61])
    counts = torch.tensor([[2], [30], [1]])
    kw = dict(lengths=lengths, logits=logits)
    for k_max in (3, 30):
        got = count_log_likelihood(x, counts, k_max, backend="cpu", **kw)
        want = count_log_likelihood(x, counts, k_max, backend="reference", **kw)
        assert want[2].item() < -300
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-12)
        (g_got,) = torch.autograd.grad(got.sum(), x)
        (g_want,) = torch.autograd.grad(want.sum(), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-11)
        got = count_distribution(x, k_max, log=True, backend="cpu", **kw)
        want = count_distribution(x, k_max, log=True, backend="reference", **kw)
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-12)
        weights = torch.randn_like(want)
        (g_got,) = torch.autograd.grad((got * weights).sum(), x)
        (g_want,) = torch.autograd.grad((want * weights).sum(), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-10)


def test_logits_variant_matches_probability_variant():
    x = torch.randn(2, 3, 50, dtype=torch.float64) * 3
    counts = torch.randint(0, 10, (2, 3))
    for backend in ALL:
        a = count_log_likelihood(x, counts, 6, logits=True, backend=backend)
        b = count_log_likelihood(torch.sigmoid(x), counts, 6, backend=backend)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("logits", [False, True])
def test_gradcheck_float64(backend, logits):
    x = torch.rand(2, 2, 9, dtype=torch.float64) * 0.8 + 0.1
    if logits:
        x = torch.logit(x)
    x.requires_grad_()
    counts = torch.tensor([[0, 3], [9, 2]])
    lengths = torch.tensor([9, 6])
    kw = dict(lengths=lengths, logits=logits, backend=backend)
    assert torch.autograd.gradcheck(lambda v: count_log_likelihood(v, counts, 3, **kw), (x,))
    for log in (False, True):
        assert torch.autograd.gradcheck(
            lambda v, log=log: count_distribution(v, 4, log=log, **kw), (x,)
        )


@pytest.mark.parametrize("backend", FAST)
def test_gradcheck_float64_in_the_tilted_tail(backend):
    # Row 0: Pr(Y = 1) ~ 1e-256 (p ~ 1 - 4.5e-5); row 1: Pr(Y >= 3) ~ (60 e^-207)^3 ~ 1e-264.
    # Both are below float64's comfortable range and go through the tilted problem.
    x = torch.tensor([10.0, -207.0], dtype=torch.float64)[:, None, None].expand(2, 1, 60)
    x = (x + torch.rand(2, 1, 60, dtype=torch.float64)).requires_grad_()
    counts = torch.tensor([[1], [3]])
    ll = count_log_likelihood(x, counts, 3, logits=True, backend=backend)
    assert torch.isfinite(ll).all() and ll.max().item() < -580
    want = count_log_likelihood(x, counts, 3, logits=True, backend="reference")
    torch.testing.assert_close(ll, want, rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(
        lambda v: count_log_likelihood(v, counts, 3, logits=True, backend=backend), (x,)
    )


@pytest.mark.parametrize("backend", ALL)
def test_gradient_is_posterior_minus_prior(backend):
    # Field notes §4.2: d log Pr(Y = n) / d logit_t = Pr(b_t = 1 | Y = n) - p_t, by enumeration.
    t_len, n = 8, 3
    p = np.random.default_rng(0).uniform(0.05, 0.95, t_len)
    joint = np.zeros(t_len)
    total = 0.0
    for bits in itertools.product((0, 1), repeat=t_len):
        if sum(bits) != n:
            continue
        prob = np.prod([pt if b else 1 - pt for b, pt in zip(bits, p, strict=True)])
        total += prob
        joint += prob * np.array(bits)
    want = joint / total - p
    x = torch.logit(torch.from_numpy(p))[None, None].requires_grad_()
    ll = count_log_likelihood(x, torch.tensor([[n]]), 5, logits=True, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), x)
    np.testing.assert_allclose(grad.numpy().ravel(), want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("backend", FAST)
def test_float32_agrees_with_float64(backend):
    p64 = torch.rand(4, 3, 400, dtype=torch.float64) * 0.1
    p64[0, 0] *= 0.05
    p32 = p64.float()
    counts = torch.randint(0, 40, (4, 3))
    k_max = 31
    out = []
    for p in (p32.double().requires_grad_(), p32.clone().requires_grad_()):
        ll = count_log_likelihood(p, counts, k_max, backend=backend)
        (grad,) = torch.autograd.grad(ll.mean(), p)
        out.append((ll, grad))
    (ll64, g64), (ll32, g32) = out
    assert ll32.dtype == torch.float32 and g32.dtype == torch.float32
    torch.testing.assert_close(ll32.double(), ll64, rtol=1e-5, atol=0)
    torch.testing.assert_close(g32.double(), g64, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Degenerate inputs


@pytest.mark.parametrize("backend", ALL)
def test_probabilities_exactly_zero_or_one_are_exact(backend):
    p = torch.tensor([[[1.0, 0.0, 1.0, 0.5]]], dtype=torch.float64)
    dist = count_distribution(p, 4, backend=backend)
    torch.testing.assert_close(dist[0, 0], torch.tensor([0, 0, 0.5, 0.5, 0], dtype=torch.float64))
    ll = count_log_likelihood(
        p.expand(4, 1, 4), torch.tensor([[0], [2], [3], [4]]), 4, backend=backend
    )
    assert ll[:, 0].tolist() == [-math.inf, math.log(0.5), math.log(0.5), -math.inf]


@pytest.mark.parametrize("backend", FAST)
def test_gradients_are_finite_at_zero_and_one(backend):
    p = torch.tensor([[[1.0, 0.0, 1.0, 0.5]], [[1.0, 0.0, 1.0, 0.5]]], dtype=torch.float64)
    p.requires_grad_()
    ll = count_log_likelihood(p, torch.tensor([[2], [0]]), 4, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), p)
    assert torch.isfinite(grad).all()
    # Possible count 2: d log P / d p_t = (P_-t(1) - P_-t(2)) / P(2) with P(2) = 0.5; e.g.
    # without step 1 the count is 2 + b_3, so P_-1(1) - P_-1(2) = 0 - 0.5.
    want = torch.tensor([0.0, -1.0, 0.0, -2.0], dtype=torch.float64)
    torch.testing.assert_close(grad[0, 0], want)
    assert ll[1].item() == -math.inf and grad[1].abs().sum() == 0  # impossible: zero gradient


@pytest.mark.parametrize("backend", ALL)
def test_single_step_and_empty_sequences(backend):
    p = torch.tensor([[[0.25]], [[0.25]]], dtype=torch.float64)
    dist = count_distribution(p, 3, lengths=torch.tensor([1, 0]), backend=backend)
    torch.testing.assert_close(
        dist[:, 0], torch.tensor([[0.75, 0.25, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    )
    empty = count_distribution(torch.zeros(2, 3, 0), 2, backend=backend)
    assert empty.shape == (2, 3, 3) and empty[..., 0].eq(1).all() and empty[..., 1:].eq(0).all()


@pytest.mark.parametrize("backend", ALL)
def test_count_zero_far_in_the_tail_is_finite_and_exact(backend):
    # True count 0 while sum p = 200 (T = 400): the +1e-9 of the original code would floor this.
    p = (0.4 + 0.2 * torch.rand(1, 1, 400, dtype=torch.float64)).requires_grad_()
    ll = count_log_likelihood(p, torch.tensor([[0]]), 32, backend=backend)
    want = torch.log1p(-p.detach()).sum()
    assert ll.item() == pytest.approx(want.item(), rel=1e-12)
    (grad,) = torch.autograd.grad(ll.sum(), p)
    torch.testing.assert_close(grad, -1.0 / (1.0 - p.detach()))


def test_float32_far_tail_does_not_underflow():
    # Linear-space float32 would give Pr(Y = 0) = 0 here (true log value ~ -270).
    p = torch.full((1, 1, 5000), 0.0527)
    for backend in FAST:
        ll = count_log_likelihood(p, torch.tensor([[0]]), 8, backend=backend)
        assert ll.item() == pytest.approx(5000 * math.log1p(-0.0527), rel=1e-5)


# ------------------------------------------------------------------------------------------
# Logits of any size (issue 13, item 4): p or 1 - p below float64's range


def extreme_logits() -> torch.Tensor:
    """(6, 2, 40) logits: saturated rows (sigmoid rounds p or 1 - p to 0, or to a subnormal),
    mixed with ordinary logits."""
    gen = torch.Generator().manual_seed(13)
    x = 3.0 * torch.randn(6, 2, 40, generator=gen, dtype=torch.float64)
    x[0, 0], x[0, 1] = 1e4, -1e4  # whole rows saturated
    x[1, 0, ::3], x[1, 1, ::2] = 1e4, -1e4  # mixed with ordinary frames
    x[2, 0], x[2, 1] = -730.0, 720.0  # p, resp. 1 - p subnormal
    x[3, 0, :10], x[3, 1, :7] = -745.5, 740.0  # around the underflow of exp
    x[4, 0, 5], x[4, 1, 30] = 1e4, -1e4  # a single saturated frame
    x[5] = x[5].sign() * 1e4
    return x


EXTREME_COUNTS = torch.tensor([[0, 3], [5, 25], [2, 1], [4, 40], [0, 20], [7, 33]])


@pytest.mark.parametrize("backend", FAST)
def test_logits_of_any_size_match_the_reference(backend):
    # The cpu backend gave NaN gradients near -730 and -inf at +720; both fast backends gave
    # -inf with a zero gradient at +-1e4 (p = 1 or 0 in float64 counted as a sure frame).
    x, counts, k_max = extreme_logits(), EXTREME_COUNTS, 32
    lengths = torch.tensor([40, 40, 33, 40, 25, 40])
    got_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    kw = dict(lengths=lengths, logits=True)
    got = count_log_likelihood(got_x, counts, k_max, backend=backend, **kw)
    want = count_log_likelihood(ref_x, counts, k_max, backend="reference", **kw)
    assert torch.isfinite(want).all() and want.min() < -1e5
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-9)
    (got_g,) = torch.autograd.grad(got.sum(), got_x)
    (want_g,) = torch.autograd.grad(want.sum(), ref_x)
    torch.testing.assert_close(got_g, want_g, rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", FAST)
def test_log_distribution_of_extreme_logits_matches_the_reference(backend):
    x, k_max = extreme_logits(), 12
    weights = torch.randn(6, 2, k_max + 1, dtype=torch.float64)
    out = []
    for name in (backend, "reference"):
        v = x.clone().requires_grad_()
        dist = count_distribution(v, k_max, log=True, logits=True, backend=name)
        (grad,) = torch.autograd.grad((dist * weights).sum(), v)
        out.append((dist, grad))
    (got, got_g), (want, want_g) = out
    assert torch.isfinite(want).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(got_g, want_g, rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("z", [1e4, -1e4, 1e15, -1e15, 3e18, 1e100, -1e300])
def test_equal_huge_logits_match_the_binomial_closed_form(backend, z):
    # All T frames share the logit z: Y ~ Binomial(T, sigmoid(z)), and by symmetry
    # d log Pr(Y in A) / d z_t = E[Y | Y in A] / T - p. Counts below, at and above T p.
    t_len, k_max = 9, 6
    lp, lq = -math.log1p(math.exp(-z)) if z > 0 else z, -z if z > 0 else -math.log1p(math.exp(z))
    ks = np.arange(t_len + 1)
    log_pmf = np.array([math.lgamma(t_len + 1) - math.lgamma(k + 1) - math.lgamma(t_len - k + 1)
                        for k in ks]) + ks * lp + (t_len - ks) * lq  # fmt: skip
    counts = torch.tensor([[0], [2], [5], [k_max], [t_len]])
    x = torch.full((5, 1, t_len), z, dtype=torch.float64, requires_grad=True)
    ll = count_log_likelihood(x, counts, k_max, logits=True, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), x)
    p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
    for i, n in enumerate(counts[:, 0].tolist()):
        sel = ks == n if n < k_max else ks >= k_max
        lse = np.logaddexp.reduce(log_pmf[sel])
        mean = (ks[sel] * np.exp(log_pmf[sel] - lse)).sum()
        assert ll[i, 0].item() == pytest.approx(lse, rel=1e-14, abs=1e-12), n
        np.testing.assert_allclose(grad[i, 0].numpy(), mean / t_len - p, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", FAST)
def test_mixed_huge_logits_match_exact_arithmetic(backend):
    # Logits of 1e15 + k differ by whole numbers: the posterior depends on those differences
    # only. The fast backends tilt relative to a logit near -lam (exact differences); the
    # reference's log-space sums of -1e15 have a spacing of 0.125 and are rough here.
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    x = torch.tensor([1e15 + k for k in (0, 0, 1, 2, 3, 5)] + [0.3, -1.2, 2.0, -4.0])
    x = x.to(torch.float64)[None, None]
    n = 3  # three of the six huge logits must fail
    ps = [(1 / (1 + mp.exp(-mp.mpf(v))), 1 / (1 + mp.exp(mp.mpf(v)))) for v in x.flatten().tolist()]

    def coefficients(factors):
        poly = [mp.mpf(1)]
        for p, q in factors:
            poly = [a * q + b * p for a, b in zip(poly + [0], [0] + poly, strict=True)]
        return poly

    total = coefficients(ps)[n]
    want_g = [
        float(ps[t][0] * coefficients(ps[:t] + ps[t + 1 :])[n - 1] / total - ps[t][0])
        for t in range(len(ps))
    ]
    v = x.clone().requires_grad_()
    ll = count_log_likelihood(v, torch.tensor([[n]]), 8, logits=True, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), v)
    assert ll.item() == pytest.approx(float(mp.log(total)), rel=1e-15)
    np.testing.assert_allclose(grad.flatten().numpy(), want_g, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", FAST)
def test_log_likelihood_below_float64_range_is_minus_inf_without_nan(backend):
    # Pr(Y = 1) = 3 e^(-2 * 1.7e308): its log is not a float64; -inf with a zero gradient.
    x = torch.full((1, 1, 3), 1.7e308, dtype=torch.float64, requires_grad=True)
    ll = count_log_likelihood(x, torch.tensor([[1]]), 4, logits=True, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), x)
    assert ll.item() == -math.inf and grad.eq(0).all()
    # Pr(Y = 2) = 3 e^-1.7e308 sigmoid(-0.5) sigmoid(1.7e308): finite, though the tilt's
    # sum_t log(q_t + p_t e^lam) - n lam is -inf - -inf; posterior minus prior as gradient.
    x = torch.tensor([[[1.7e308, -1.7e308, 1.7e308, 0.5, 1.7e308]]], dtype=torch.float64)
    x.requires_grad_()
    ll = count_log_likelihood(x, torch.tensor([[2]]), 3, logits=True, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), x)
    assert ll.item() == pytest.approx(-1.7e308, rel=1e-15)
    want = torch.tensor([-1 / 3, 0.0, -1 / 3, -1 / (1 + math.exp(-0.5)), -1 / 3]).double()
    torch.testing.assert_close(grad.flatten(), want)


@pytest.mark.parametrize("backend", FAST)
def test_log_space_fallback_matches_the_reference(backend, monkeypatch):
    # With SAFE > 1 every row goes to the tail and every tilted value counts as unresolved:
    # the whole result comes from the log-space fallback (in real use: logits of ~1e18).
    from softloc.counting import _cpu, _tree

    monkeypatch.setattr(_cpu if backend == "cpu" else _tree, "SAFE", 2.0)
    x = extreme_logits()[:, :, :12]
    x[2, 0, 3], x[2, 1, 4:6] = math.inf, -math.inf  # dropped, and a shifted count
    counts, k_max = torch.tensor([[0, 3], [5, 2], [2, 1], [4, 12], [0, 10], [7, 3]]), 6
    got_x = x.clone().requires_grad_()
    got = count_log_likelihood(got_x, counts, k_max, logits=True, backend=backend)
    (got_g,) = torch.autograd.grad(got.sum(), got_x)
    # The reference on the same rows without the infinite logits (its gradient is NaN at them).
    finite = torch.isfinite(x)
    for b, c in itertools.product(range(6), range(2)):
        row = x[b, c][finite[b, c]].clone().requires_grad_()
        n = int(counts[b, c]) - int((x[b, c] == math.inf).sum())
        n_max = k_max - int((x[b, c] == math.inf).sum())
        want = count_log_likelihood(row[None, None], torch.tensor([[n]]), n_max, logits=True,
                                    backend="reference")  # fmt: skip
        (want_g,) = torch.autograd.grad(want.sum(), row)
        assert got[b, c].item() == pytest.approx(want.item(), rel=1e-13), (b, c)
        torch.testing.assert_close(got_g[b, c][finite[b, c]], want_g, rtol=0, atol=1e-12)
        assert got_g[b, c][~finite[b, c]].eq(0).all()
    # Probabilities (never there in real use): the same recursion on their logits.
    p = torch.rand(3, 2, 12, dtype=torch.float64) * 0.98 + 0.01
    got_x, ref_x = p.clone().requires_grad_(), p.clone().requires_grad_()
    got = count_log_likelihood(got_x, counts[:3], k_max, backend=backend)
    want = count_log_likelihood(ref_x, counts[:3], k_max, backend="reference")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    (got_g,) = torch.autograd.grad(got.sum(), got_x)
    (want_g,) = torch.autograd.grad(want.sum(), ref_x)
    torch.testing.assert_close(got_g, want_g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", FAST)
def test_probability_gradients_in_the_tilted_tail_are_exact_at_zero_and_one(backend):
    # Pr(Y = 2) ~ 60 * 0.001^59 < 1e-120: the tilted path, with a p = 0 and a p = 1 frame.
    p = torch.tensor([0.0, 1.0] + [0.999] * 60, dtype=torch.float64)
    n = 2
    v = p[None, None].clone().requires_grad_()
    ll = count_log_likelihood(v, torch.tensor([[n]]), 5, backend=backend)
    (grad,) = torch.autograd.grad(ll.sum(), v)
    full = oracle_log_pmf(p.numpy(), 10)
    assert full[n] < math.log(1e-120) and ll.item() == pytest.approx(full[n], rel=1e-13)
    want = []
    for t in range(len(p)):  # d log Pr(Y = n) / d p_t = (P_-t(n - 1) - P_-t(n)) / P(n)
        rest = oracle_log_pmf(np.delete(p.numpy(), t), 10)
        want.append(np.exp(rest[n - 1] - full[n]) - np.exp(rest[n] - full[n]))
    np.testing.assert_allclose(grad.flatten().numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ALL)
def test_probabilities_never_exceed_one_by_rounding(backend):
    # Found by hypothesis: the top bin summed to 1 + 2e-16 (a log-likelihood of +2e-16).
    x = torch.tensor([[[18.12628117014429, 26.811992634083648]]], dtype=torch.float64)
    x.requires_grad_()
    dist = count_distribution(x, 1, logits=True, backend=backend)
    log_dist = count_distribution(x, 1, log=True, logits=True, backend=backend)
    ll = count_log_likelihood(x, torch.tensor([[1]]), 1, logits=True, backend=backend)
    assert (dist <= 1).all() and (log_dist <= 0).all() and (ll <= 0).all()
    (grad,) = torch.autograd.grad(ll.sum(), x)  # the gradient is not clipped with the value
    p, q = torch.sigmoid(x.detach()), torch.sigmoid(-x.detach())
    torch.testing.assert_close(grad, p * q.prod() / (1 - q.prod()))  # d log(1 - q1 q2) / dx


# ------------------------------------------------------------------------------------------
# Misc properties


def test_batched_equals_per_row_and_class_order_is_irrelevant():
    p = torch.rand(3, 4, 40, dtype=torch.float64)
    counts = torch.randint(0, 8, (3, 4))
    full = count_log_likelihood(p, counts, 5, backend="cpu")
    perm = torch.tensor([2, 0, 3, 1])
    permuted = count_log_likelihood(p[:, perm], counts[:, perm], 5, backend="cpu")
    torch.testing.assert_close(permuted, full[:, perm], rtol=0, atol=0)
    for b in range(3):
        one = count_log_likelihood(p[b : b + 1], counts[b : b + 1], 5, backend="cpu")
        torch.testing.assert_close(one[0], full[b], rtol=0, atol=0)


def test_cpu_backend_is_safe_from_several_threads():
    p = torch.rand(8, 4, 300, dtype=torch.float64)
    counts = torch.randint(0, 30, (8, 4))
    want = count_log_likelihood(p, counts, 20, backend="reference")
    results: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(5):
                q = p.clone().requires_grad_()
                ll = count_log_likelihood(q, counts, 20, backend="cpu")
                ll.sum().backward()
                results.append(ll.detach())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    for r in results:
        torch.testing.assert_close(r, want, rtol=1e-12, atol=1e-12)


def test_cpu_kernels_split_over_threads_give_identical_results(tuned_cpu):
    p = torch.rand(3, 40, 150, dtype=torch.float64).requires_grad_()  # 120 rows: 4 lane groups
    counts = torch.randint(0, 12, (3, 40))
    set_cpu_options(max_threads=1)
    ll_one = count_log_likelihood(p, counts, 10, backend="cpu")
    (g_one,) = torch.autograd.grad(ll_one.sum(), p)
    set_cpu_options(min_parallel_work=1, max_threads=3)
    torch.set_num_threads(3)
    n_before = _pool_threads()
    ll_many = count_log_likelihood(p, counts, 10, backend="cpu")
    (g_many,) = torch.autograd.grad(ll_many.sum(), p)
    assert _pool_threads() >= max(n_before, 1)  # the work did go to the pool
    torch.testing.assert_close(ll_many, ll_one, rtol=0, atol=0)
    torch.testing.assert_close(g_many, g_one, rtol=0, atol=0)


def _loss_and_grad(p, counts, k_max, **kw):
    x = p.detach().requires_grad_()
    ll = count_log_likelihood(x, counts, k_max, backend="cpu", **kw)
    (g,) = torch.autograd.grad(ll.sum(), x)
    return ll.detach(), g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reused_work_buffers_give_the_same_results_as_fresh_ones(tuned_cpu, dtype):
    # Calls of other shapes in between leave other values in the kept buffers.
    gen = torch.Generator().manual_seed(3)
    shapes = [((2, 40, 90), 8), ((1, 70, 130), 12), ((3, 33, 60), 5)]
    cases = [
        (
            torch.rand(shape, generator=gen).to(dtype),
            torch.randint(0, k + 1, shape[:-1], generator=gen),
            k,
        )
        for shape, k in shapes
    ]
    set_cpu_options(max_cached_bytes=0)
    fresh = [_loss_and_grad(*c) for c in cases]
    set_cpu_options(max_cached_bytes=2**28)
    for _ in range(2):
        for case, (ll, g) in zip(cases, fresh, strict=True):
            ll_r, g_r = _loss_and_grad(*case)
            assert g_r.dtype == dtype
            torch.testing.assert_close(ll_r, ll, rtol=0, atol=0)
            torch.testing.assert_close(g_r, g, rtol=0, atol=0)


def test_retained_graph_keeps_its_buffers_for_a_second_backward(tuned_cpu):
    set_cpu_options(max_cached_bytes=2**28)
    p = torch.rand(2, 40, 100).requires_grad_()
    counts = torch.randint(0, 10, (2, 40))
    ll = count_log_likelihood(p, counts, 10, backend="cpu").sum()
    (g1,) = torch.autograd.grad(ll, p, retain_graph=True)
    _loss_and_grad(torch.rand(2, 40, 100), torch.randint(0, 10, (2, 40)), 10)  # may reuse buffers
    (g2,) = torch.autograd.grad(ll, p)
    torch.testing.assert_close(g2, g1, rtol=0, atol=0)


def test_two_live_graphs_do_not_share_buffers(tuned_cpu):
    set_cpu_options(max_cached_bytes=2**28)
    gen = torch.Generator().manual_seed(5)
    pa, pb = (torch.rand(2, 40, 100, generator=gen).requires_grad_() for _ in range(2))
    counts = torch.randint(0, 10, (2, 40), generator=gen)
    want_a, want_b = (_loss_and_grad(p, counts, 10)[1] for p in (pa, pb))
    ll_a = count_log_likelihood(pa, counts, 10, backend="cpu").sum()
    ll_b = count_log_likelihood(pb, counts, 10, backend="cpu").sum()
    (g_b,) = torch.autograd.grad(ll_b, pb)
    del ll_b  # its buffers go back and may serve the next call
    _loss_and_grad(torch.rand(2, 40, 100, generator=gen), counts, 10)
    (g_a,) = torch.autograd.grad(ll_a, pa)
    torch.testing.assert_close(g_a, want_a, rtol=0, atol=0)
    torch.testing.assert_close(g_b, want_b, rtol=0, atol=0)


def _loss_in_worker(seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(4, 2, 100, dtype=torch.float64, generator=gen).requires_grad_()
    ll = count_log_likelihood(p, torch.full((4, 2), 5), 8, backend="cpu")
    ll.sum().backward()
    return ll.sum().item() + p.grad.sum().item()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (dataloader workers)")
def test_cpu_backend_works_in_forked_workers():
    # Like DataLoader workers: the parent has already run the kernels, then forks.
    want = [_loss_in_worker(s) for s in range(3)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(_loss_in_worker, range(3))
    assert got == pytest.approx(want, rel=1e-12)


def _threaded_loss_in_worker(seed: int) -> float:
    # The settings are inherited through the fork; threads even for this small input.
    assert cpu_options()["min_parallel_work"] == 1
    torch.set_num_threads(2)
    return _loss_in_worker(seed)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (dataloader workers)")
def test_kept_thread_pool_is_remade_in_forked_workers(tuned_cpu):
    """The parent's pool object survives a fork without its threads; a child that reused it
    would wait forever, so the pool is keyed by process id."""
    set_cpu_options(min_parallel_work=1, max_threads=2)
    torch.set_num_threads(2)
    want = [_loss_in_worker(s) for s in range(2)]  # creates the pool in the parent
    assert _pool_threads() >= 1
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_threaded_loss_in_worker, range(2)).get(timeout=120)
    assert got == pytest.approx(want, rel=1e-12)


def test_auto_backend_picks_cpu_kernel_on_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert resolve_backend("auto", "cuda:0") == "tree"
    assert [resolve_backend(b, "cpu") for b in ("reference", "cpu", "tree")] == [
        "reference",
        "cpu",
        "tree",
    ]
    p = torch.rand(2, 2, 30, dtype=torch.float64)
    got = count_log_likelihood(p, torch.ones(2, 2), 3)
    torch.testing.assert_close(
        got, count_log_likelihood(p, torch.ones(2, 2), 3, backend="cpu"), rtol=0, atol=0
    )
    torch.testing.assert_close(
        count_distribution(p, 3), count_distribution(p, 3, backend="cpu"), rtol=0, atol=0
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tree_backend_on_cuda_matches_cpu():  # pragma: no cover - no GPU in CI
    p = torch.rand(4, 3, 400, dtype=torch.float32) * 0.1
    counts = torch.randint(0, 40, (4, 3))
    pc = p.cuda().requires_grad_()
    ll = count_log_likelihood(pc, counts.cuda(), 31)
    (g,) = torch.autograd.grad(ll.mean(), pc)
    pr = p.double().requires_grad_()
    want = count_log_likelihood(pr, counts, 31, backend="cpu")
    (gw,) = torch.autograd.grad(want.mean(), pr)
    torch.testing.assert_close(ll.cpu().double(), want, rtol=1e-5, atol=0)
    torch.testing.assert_close(g.cpu().double(), gw, rtol=0, atol=1e-5)


def test_count_prior_bias_matches_loco_eq_15():
    assert count_prior_bias(400) == pytest.approx(-7.4911, abs=5e-5)
    b = count_prior_bias(123, omega=0.3)
    assert (1 - 1 / (1 + math.exp(-b))) ** 123 == pytest.approx(0.3, rel=1e-12)


# ------------------------------------------------------------------------------------------
# Validation


P = torch.full((2, 3, 5), 0.5)
C = torch.zeros(2, 3)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (
            lambda: count_distribution(P[0], 3),
            ValueError,
            r"count_distribution: `probs` must have shape \(batch, class, time\)",
        ),
        (
            lambda: count_distribution(P + 1, 3),
            ValueError,
            r"`probs` must hold probabilities in \[0, 1\]",
        ),
        (
            lambda: count_distribution(P * math.nan, 3),
            ValueError,
            r"`probs` must hold probabilities",
        ),
        (lambda: count_distribution(P.long(), 3), TypeError, r"`probs` must be a floating-point"),
        (lambda: count_distribution(P.numpy(), 3), TypeError, r"`probs` must be a torch.Tensor"),
        (lambda: count_distribution(P, 0), ValueError, r"`k_max` must be >= 1, got 0"),
        (lambda: count_distribution(P, 2.0), TypeError, r"`k_max` must be an int"),
        (lambda: count_distribution(P, 3, backend="gpu"), ValueError, r"`backend` must be one of"),
        (lambda: count_distribution(P, 3, log=1), TypeError, r"`log` must be a bool"),
        (lambda: count_distribution(P, 3, logits="yes"), TypeError, r"`logits` must be a bool"),
        (
            lambda: count_distribution(P, 3, lengths=torch.tensor([2.5, 2.0])),
            ValueError,
            r"`lengths` must hold whole numbers",
        ),
        (
            lambda: count_distribution(P, 3, lengths=torch.tensor([5])),
            ValueError,
            r"`lengths` must have shape \(batch,\) = \(2,\)",
        ),
        (
            lambda: count_distribution(P, 3, lengths=torch.tensor([5, 6])),
            ValueError,
            r"`lengths` must lie in \[0, time=5\]",
        ),
        (
            lambda: count_distribution(P, 3, lengths=torch.tensor([-1, 2])),
            ValueError,
            r"`lengths` must lie in",
        ),
        (
            lambda: count_distribution(P * math.nan, 3, logits=True),
            ValueError,
            r"must not contain NaN",
        ),
        (
            lambda: count_log_likelihood(P, C[0], 3),
            ValueError,
            r"count_log_likelihood: `counts` must have shape \(batch, class\) = \(2, 3\)",
        ),
        (lambda: count_log_likelihood(P, C - 1, 3), ValueError, r"`counts` must be >= 0"),
        (
            lambda: count_log_likelihood(P, C + 0.5, 3),
            ValueError,
            r"`counts` must hold whole numbers",
        ),
        (lambda: count_log_likelihood(P, C * math.nan, 3), ValueError, r"`counts` must be finite"),
        (lambda: count_log_likelihood(P, C + math.inf, 3), ValueError, r"`counts` must be finite"),
        (lambda: count_log_likelihood(P, C, 3, validate=0), TypeError, r"`validate` must be a"),
        (
            lambda: count_log_likelihood(P, C.bool(), 3),
            TypeError,
            r"`counts` must be an integer or float",
        ),
        (lambda: count_log_likelihood(P, C, 0), ValueError, r"`k_max` must be >= 1"),
        (
            lambda: count_log_likelihood(P, C, 3, backend="fast"),
            ValueError,
            r"`backend` must be one of",
        ),
        (lambda: count_log_likelihood(P - 0.6, C, 3), ValueError, r"found values in \[-0.1"),
        (lambda: count_prior_bias(0), ValueError, r"`num_steps` must be >= 1"),
        (lambda: count_prior_bias(400, omega=1.0), ValueError, r"`omega` must lie in \(0, 1\)"),
    ],
)
def test_invalid_inputs_raise_actionable_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_backend_names_are_documented():
    import softloc.counting

    assert BACKENDS == ("auto", "reference", "cpu", "tree")
    for name in BACKENDS:  # each backend has its paragraph in the package docstring ...
        assert f'* ``"{name}"``:' in softloc.counting.__doc__
        for fn in (count_distribution, count_log_likelihood):  # ... and is named in `backend`
            assert f'``"{name}"``' in fn.__doc__.split("backend:")[1].split("\n\n")[0]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_validate_false_skips_checks_but_computes_the_same():
    p = torch.rand(2, 3, 20, dtype=torch.float64)
    counts = torch.randint(0, 6, (2, 3))
    lengths = torch.tensor([20, 11])
    want = count_log_likelihood(p, counts, 5, lengths=lengths)
    got = count_log_likelihood(p, counts, 5, lengths=lengths, validate=False)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # no check runs: out-of-range probabilities pass silently (the caller's responsibility)
    count_log_likelihood(p + 1, counts, 5, validate=False)
    with pytest.raises(ValueError, match="probabilities"):
        count_log_likelihood(p + 1, counts, 5)


def test_cpu_options_round_trip_and_validation(tuned_cpu):
    old = set_cpu_options(min_chunk_steps=7)
    assert cpu_options()["min_chunk_steps"] == 7 and old["min_chunk_steps"] != 7
    set_cpu_options(**old)
    assert cpu_options() == old
    with pytest.raises(ValueError, match="set_cpu_options: `max_threads` must be >= 1, got 0"):
        set_cpu_options(max_threads=0)
    set_cpu_options(max_cached_bytes=0)  # keeping no buffers is allowed
    assert cpu_options()["max_cached_bytes"] == 0
    with pytest.raises(ValueError, match="`max_cached_bytes` must be >= 0, got -1"):
        set_cpu_options(max_cached_bytes=-1)
    with pytest.raises(TypeError, match="set_cpu_options: `min_parallel_work` must be an int"):
        set_cpu_options(min_parallel_work=1.5)
    with pytest.raises(ValueError, match="resolve_backend: `backend` must be one of"):
        resolve_backend("gpu", "cpu")


def test_docstring_examples_run():
    import doctest

    import softloc.counting.api

    result = doctest.testmod(softloc.counting.api)
    assert result.failed == 0 and result.attempted >= 4


@pytest.mark.parametrize("backend", ["cpu", "tree"])
def test_gradient_of_a_probability_at_the_bottom_of_float64_is_exact(backend):
    # Pr(Y >= 1) = 1 - 0.125 (1 - p4), so d log Pr / d p4 = 0.125 / (0.875 + 0.125 p4) = 1/7 for
    # p4 = 2.2e-308 (the smallest normal double), where the reference's autograd underflows to 0.
    p = torch.tensor([[[0.5, 0.5, 0.5, 2.2251e-308]]], dtype=torch.float64, requires_grad=True)
    count_log_likelihood(p, torch.tensor([[1]]), 1, backend=backend).sum().backward()
    assert p.grad[0, 0, 3].item() == pytest.approx(1 / 7, rel=1e-12)
    assert p.grad[0, 0, :3].tolist() == pytest.approx([0.125 / 0.875 / 0.5] * 3, rel=1e-12)
