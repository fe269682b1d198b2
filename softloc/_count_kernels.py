"""Fused numba kernels for the truncated Poisson-binomial (private; used by ``softloc.counting``).

Everything here works on float64 numpy arrays, one *job* at a time. A job is one probability row
``p[row, :length]`` (with ``q = 1 - p`` passed separately so that logits can give an exact ``q``)
and a truncated state of ``width`` bins whose top bin ``width - 1`` is

* exact (``disc = 0``): mass that moves beyond the top bin is dropped. Used for a target count
  ``n < k_max``: bins above ``n`` never feed back into bins ``<= n``;
* absorbing (``disc = 1``): Pr(Y >= top), the saturating top bin (LoCo eq. 14);
* discounted (``0 < disc < 1``): sum_{j >= top} Pr'(Y = j) disc^(j - top), the absorbing bin of an
  exponentially tilted problem (see ``lam`` below). All three are the same recursion:
  ``top <- top * (q + p * disc) + p * prev``; each of them is exactly associative.

Why no log space and no rescaling: with ``width`` bins and a top bin that keeps (disc = 1) or
drops (disc = 0) mass, every state entry is a probability <= 1, so nothing overflows, and
underflow (flushing values below ``TINY``) only costs an *absolute* error of at most
(#operations) * 1e-300. The result is
therefore exact to rounding whenever the target probability is above ~1e-250. Below that the
caller re-runs the job on an exponentially tilted problem (``lam != 0``):

    p'_t = p_t e^lam / (q_t + p_t e^lam),
    Pr(Y = n) = Pr'(Y = n) * prod_t (q_t + p_t e^lam) / e^(n lam)

with ``lam`` chosen so that the tilted mean is close to ``n``; then Pr'(Y = n) >= ~1/(T + 1) and the
linear recursion is again exact. The tilt leaves Pr(b_t = 1 | Y = n) unchanged, so the closed-form
gradient (field notes §4.2) carries over with the factors worked out in ``_backward_job``.

The kernels are serial and ``nogil``: the caller may run disjoint job ranges from several Python
threads (or dataloader workers) at once; numba's own parallel layer is avoided because its default
``workqueue`` layer aborts when entered from two threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Gradient checkpoint stride: the forward pass stores the state every CKPT steps; the backward
# pass recomputes one segment at a time into a CKPT x width buffer that stays in cache.
CKPT = 32
# Values below TINY are flushed to zero: subnormal arithmetic is ~100x slower on x86, and the
# recursion can sit on a subnormal fixed point (q * x + p * x rounds back to x) forever. The
# absolute error this adds, <= T * width * TINY, is far below the 1e-250 threshold under which
# the caller switches to the tilted problem.
TINY = 1e-300


@njit(cache=True, nogil=True)
def _step(a, out, pt, qt, disc, top):  # pragma: no cover - compiled
    """One step of LoCo eq. 9 with the generalised top bin; flushes values below TINY to 0."""
    if top == 0:
        x = a[0] * (qt + pt * disc)
        out[0] = x if x >= TINY else 0.0
        return
    x = qt * a[0]
    out[0] = x if x >= TINY else 0.0
    for j in range(1, top):
        x = qt * a[j] + pt * a[j - 1]
        out[j] = x if x >= TINY else 0.0
    x = a[top] * (qt + pt * disc) + pt * a[top - 1]
    out[top] = x if x >= TINY else 0.0


@njit(cache=True, nogil=True)
def _forward_job(p, q, length, width, lam, disc, ckpt):  # pragma: no cover - compiled
    """Run one job; store the state before every CKPT-th step in ``ckpt``; return (state, sum c_t).

    ``c_t = log(q_t + p_t e^lam)`` (0 when ``lam == 0``) is the tilt's normaliser.
    """
    a = np.zeros(width)
    b = np.zeros(width)
    a[0] = 1.0
    top = width - 1
    tilt = lam != 0.0
    theta = math.exp(lam)
    csum = 0.0
    for t in range(length):
        if t % CKPT == 0:
            ck = t // CKPT
            for j in range(width):
                ckpt[ck, j] = a[j]
        pt = p[t]
        qt = q[t]
        if tilt:
            s = qt + pt * theta
            csum += math.log(s)
            pt = pt * theta / s
            qt = qt / s
        _step(a, b, pt, qt, disc, top)
        a, b = b, a
    return a, csum


@njit(cache=True, nogil=True)
def _backward_job(p, q, length, width, lam, disc, ckpt, b_final, grad):  # pragma: no cover
    """Vector-Jacobian product of ``<b_final, state_T>`` with respect to ``p[:length]``.

    Writes ``grad[t] = d <b_final, state_T> / d p_t`` *of the untilted problem*, with q_t = 1 - p_t
    varying along, up to the tilt's factor: for a likelihood job call with
    ``b_final = e_top / Pr'(Y = n)`` and ``grad`` is d log Pr(Y = n) / d p_t exactly
    (the normaliser's derivative is folded in, see below).

    With prefix state a (before step t) and suffix adjoint b (after step t), untilted:
    d/dp_t = A - B, A = sum_j a_j b_up(j), B = sum_j a_j b_j, where up(j) = j + 1 below the top and
    the top maps to itself with weight disc. Tilted: a_j, b_j pick up factors theta^(+-j) and the
    normaliser prod_s (q_s + p_s theta); collecting them gives (theta A' - B') / (q_t + p_t theta)
    for d log Pr(Y = n) / d p_t.
    """
    top = width - 1
    tilt = lam != 0.0
    theta = math.exp(lam)
    bv = b_final.copy()
    nb = np.zeros(width)
    seg = np.zeros((CKPT, width))
    a = np.zeros(width)
    an = np.zeros(width)
    n_seg = (length + CKPT - 1) // CKPT
    for sgi in range(n_seg - 1, -1, -1):
        start = sgi * CKPT
        stop = min(length, start + CKPT)
        for j in range(width):
            a[j] = ckpt[sgi, j]
        # Recompute the prefix states inside this segment.
        for t in range(start, stop):
            row = t - start
            for j in range(width):
                seg[row, j] = a[j]
            pt = p[t]
            qt = q[t]
            if tilt:
                s = qt + pt * theta
                pt = pt * theta / s
                qt = qt / s
            _step(a, an, pt, qt, disc, top)
            a, an = an, a
        # Walk back through the segment: gradient, then the adjoint step.
        for t in range(stop - 1, start - 1, -1):
            row = t - start
            pt = p[t]
            qt = q[t]
            s = 1.0
            if tilt:
                s = qt + pt * theta
                pt = pt * theta / s
                qt = qt / s
            acc_a = 0.0
            acc_b = 0.0
            for j in range(top):
                aj = seg[row, j]
                acc_a += aj * bv[j + 1]
                acc_b += aj * bv[j]
            at = seg[row, top]
            acc_a += at * disc * bv[top]
            acc_b += at * bv[top]
            if tilt:
                grad[t] = (theta * acc_a - acc_b) / s
            else:
                grad[t] = acc_a - acc_b
            for j in range(top):
                x = qt * bv[j] + pt * bv[j + 1]
                nb[j] = x if abs(x) >= TINY else 0.0
            x = (qt + pt * disc) * bv[top]
            nb[top] = x if abs(x) >= TINY else 0.0
            bv, nb = nb, bv


@njit(cache=True, nogil=True)
def _solve_tilt(p, q, length, target):  # pragma: no cover - compiled
    """lam such that sum_t p_t e^lam / (q_t + p_t e^lam) = target, by bisection on [-700, 700]."""
    lo = -700.0
    hi = 700.0
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        theta = math.exp(mid)
        m = 0.0
        for t in range(length):
            pt = p[t] * theta
            m += pt / (q[t] + pt)
        if m < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-6:
            break
    return 0.5 * (lo + hi)


@njit(cache=True, nogil=True)
def forward_jobs(
    p, q, lengths, job_row, job_width, job_lam, job_disc, ckpt, states, csums, lo, hi
):  # pragma: no cover - compiled
    """Jobs ``lo..hi-1``: states[j, :width] = final state, csums[j] = sum_t c_t; fills ckpt[j]."""
    for j in range(lo, hi):
        r = job_row[j]
        w = job_width[j]
        st, cs = _forward_job(p[r], q[r], lengths[r], w, job_lam[j], job_disc[j], ckpt[j])
        for k in range(w):
            states[j, k] = st[k]
        csums[j] = cs


@njit(cache=True, nogil=True)
def backward_jobs(
    p, q, lengths, job_row, job_width, job_lam, job_disc, ckpt, b_final, grads, lo, hi
):  # pragma: no cover - compiled
    """Jobs ``lo..hi-1``: grads[j, t] = VJP of <b_final[j], state_T> w.r.t. p[row, t]."""
    for j in range(lo, hi):
        r = job_row[j]
        w = job_width[j]
        _backward_job(
            p[r], q[r], lengths[r], w, job_lam[j], job_disc[j], ckpt[j], b_final[j, :w], grads[j]
        )


@njit(cache=True, nogil=True)
def solve_tilts(p, q, lengths, job_row, targets, lams):  # pragma: no cover - compiled
    for j in range(job_row.shape[0]):
        r = job_row[j]
        lams[j] = _solve_tilt(p[r], q[r], lengths[r], targets[j])
