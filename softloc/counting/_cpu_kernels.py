"""Fused numba kernels for the truncated Poisson-binomial (private; driven by ``counting._cpu``).

A *job* is one probability row (p_t, q_t = 1 - p_t; q passed separately so that logits give an
exact q) run through the recursion of LoCo eq. 9 on ``width`` bins. The top bin ``width - 1`` is

* absorbing (``disc = 1``): Pr(Y >= top), the saturating bin of LoCo eq. 14;
* exact (``disc = 0``): mass moving beyond it is dropped; enough for a target count n < top,
  since bins above n never feed back into bins <= n;
* discounted (``0 < disc < 1``): sum_{j >= top} Pr'(Y = j) disc^(j - top), the absorbing bin of an
  exponentially tilted problem (below).

All three are ``top <- top * (q + p * disc) + p * prev`` and exactly associative.

Why linear space without rescaling: every state entry is a probability <= 1, so nothing
overflows, and flushing values below ``TINY`` costs an absolute error of at most
(#operations) * TINY ~ 1e-143. Results above ~1e-120 are therefore exact to rounding. Below that
the caller runs the job on an exponentially tilted problem (``counting._cpu._Tail``),

    logit(p'_t) = logit(p_t) + lam,
    Pr(Y = n) = Pr'(Y = n) * prod_t (q_t + p_t e^lam) / e^(n lam),

with ``lam`` chosen (:func:`solve_tilts`) so that the tilted mean is near n; then
Pr'(Y = n) >= ~1/(T + 1) and the linear recursion is exact again. The tilt leaves
Pr(b_t = 1 | Y = n) unchanged.

Layout: jobs run in groups of ``LANES`` in lockstep, bins outer and lanes inner, so the inner
loops have a fixed trip count and vectorise (a row's own bin loop is too short to, for
k_max ~ 30). Inputs are time-major ``(T, n_jobs)`` with lanes contiguous; steps beyond a job's
length carry the identity p = 0, q = 1.

The kernels are serial and ``nogil``: the caller may run disjoint group ranges from several
Python threads (or dataloader workers) at once; numba's parallel layer is avoided because its
default ``workqueue`` backend aborts when entered from two threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LANES = 32
# Gradient checkpoints: the forward keeps the state before every CKPT-th step; the backward
# recomputes one segment at a time into a buffer that stays in cache.
CKPT = 32
# Values below TINY are flushed to zero at every checkpoint (every CKPT steps): subnormal
# arithmetic is ~100x slower on x86 and the recursion can sit on a subnormal fixed point
# (q x + p x rounds back to x) forever. TINY is about sqrt(float64 min) so that the backward's
# products of two values above it stay normal. Flushing per segment rather than per step keeps
# the inner loops free of selects (they vectorise better).
TINY = 1e-150
# Reassociation lets LLVM vectorise the reductions; no "nnan"/"ninf" (exact zeros matter).
_FASTMATH = {"reassoc", "contract", "nsz"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _step(a, out, pr, qr, dl, top):  # pragma: no cover - compiled
    """One step of LoCo eq. 9 for LANES jobs; a, out: (width, LANES)."""
    for k in range(LANES):
        out[0, k] = qr[k] * a[0, k]
    for j in range(1, top):
        for k in range(LANES):
            out[j, k] = qr[k] * a[j, k] + pr[k] * a[j - 1, k]
    for k in range(LANES):
        out[top, k] = a[top, k] * (qr[k] + pr[k] * dl[k]) + pr[k] * a[top - 1, k]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _flush(a, width, tiny):  # pragma: no cover - compiled
    """Zero the entries of a (width, LANES) state below ``tiny``."""
    for j in range(width):
        for k in range(LANES):
            if a[j, k] < tiny:
                a[j, k] = 0.0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _flush_rel(b, width, tiny):  # pragma: no cover - compiled
    """Zero the entries of a (width, LANES) adjoint below ``tiny[lane]`` in magnitude."""
    for j in range(width):
        for k in range(LANES):
            if abs(b[j, k]) < tiny[k]:
                b[j, k] = 0.0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def forward_groups(
    pt, qt, group_steps, group_width, disc, ckpt, final, g_lo, g_hi
):  # pragma: no cover - compiled
    """Groups ``g_lo..g_hi-1``: final[job, :width] = state after ``group_steps[g]`` steps.

    pt, qt: (T, n_jobs) time-major; group_width: (groups,) bins of each group (>= 2); disc:
    (n_jobs,); ckpt: (groups, n_ckpt, max width, LANES), filled; final: (n_jobs, max width).
    """
    w_max = ckpt.shape[2]
    a_buf = np.zeros((w_max, LANES))
    b_buf = np.zeros((w_max, LANES))
    for g in range(g_lo, g_hi):
        c0 = g * LANES
        width = group_width[g]
        top = width - 1
        a = a_buf[:width]
        b = b_buf[:width]
        dl = disc[c0 : c0 + LANES].copy()
        a[:, :] = 0.0
        a[0, :] = 1.0
        length = group_steps[g]
        n_seg = (length + CKPT - 1) // CKPT
        for sgi in range(n_seg):
            _flush(a, width, TINY)
            ckpt[g, sgi, :width] = a
            for t in range(sgi * CKPT, min(length, (sgi + 1) * CKPT)):
                _step(a, b, pt[t, c0 : c0 + LANES], qt[t, c0 : c0 + LANES], dl, top)
                a, b = b, a
        for j in range(width):
            for k in range(LANES):
                final[c0 + k, j] = a[j, k]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def backward_groups(
    pt, qt, group_steps, group_width, disc, ckpt, b_final, grad_t, g_lo, g_hi
):  # pragma: no cover - compiled
    """Groups ``g_lo..g_hi-1``: grad_t[t, job] = A_t - B_t = d <b_final, state_T> / d p_t along
    q_t = 1 - p_t.

    With prefix state a (before step t) and suffix adjoint b (after step t),
    A_t = sum_j a_j b_up(j) and B_t = sum_j a_j b_j, where up(j) = j + 1 below the top and the
    top maps to itself with weight disc.
    """
    w_max = ckpt.shape[2]
    bv_buf = np.zeros((w_max, LANES))
    nb_buf = np.zeros((w_max, LANES))
    seg = np.zeros((CKPT, w_max, LANES))  # prefix states of one segment
    tiny = np.zeros(LANES)
    for g in range(g_lo, g_hi):
        c0 = g * LANES
        width = group_width[g]
        top = width - 1
        bv = bv_buf[:width]
        nb = nb_buf[:width]
        dl = disc[c0 : c0 + LANES].copy()
        for k in range(LANES):
            tiny[k] = 0.0
            for j in range(width):
                bv[j, k] = b_final[c0 + k, j]
                tiny[k] = max(tiny[k], abs(b_final[c0 + k, j]))
            tiny[k] *= TINY
        length = group_steps[g]
        n_seg = (length + CKPT - 1) // CKPT
        for sgi in range(n_seg - 1, -1, -1):
            start = sgi * CKPT
            stop = min(length, start + CKPT)
            _flush_rel(bv, width, tiny)
            seg[0, :width] = ckpt[g, sgi, :width]
            for t in range(start, stop - 1):  # recompute the prefix states of the segment
                _step(
                    seg[t - start],
                    seg[t - start + 1],
                    pt[t, c0 : c0 + LANES],
                    qt[t, c0 : c0 + LANES],
                    dl,
                    top,
                )
            for t in range(stop - 1, start - 1, -1):
                s = seg[t - start]
                pr = pt[t, c0 : c0 + LANES]
                qr = qt[t, c0 : c0 + LANES]
                out = grad_t[t, c0 : c0 + LANES]
                for k in range(LANES):  # gradient A - B
                    out[k] = s[top, k] * (dl[k] - 1.0) * bv[top, k]
                for j in range(top):
                    for k in range(LANES):
                        out[k] += s[j, k] * (bv[j + 1, k] - bv[j, k])
                for j in range(top):  # adjoint step
                    for k in range(LANES):
                        nb[j, k] = qr[k] * bv[j, k] + pr[k] * bv[j + 1, k]
                for k in range(LANES):
                    nb[top, k] = (qr[k] + pr[k] * dl[k]) * bv[top, k]
                bv, nb = nb, bv


@njit(cache=True, nogil=True)
def _to_u(lam):  # pragma: no cover - compiled
    return math.copysign(math.log1p(abs(lam)), lam)


@njit(cache=True, nogil=True)
def _from_u(u):  # pragma: no cover - compiled
    return math.copysign(math.expm1(abs(u)), u)


@njit(cache=True, nogil=True)
def _midpoint(a, b):  # pragma: no cover - compiled
    """A point inside (a, b) (as ``counting._common.tilt_midpoint``): the arithmetic midpoint
    once a and b have one sign and are within a factor ~2 of each other, else the midpoint of
    u = sign(lam) log(1 + |lam|)."""
    if (a >= 0.0 and b <= 2.0 * a + 1.0) or (b <= 0.0 and a >= 2.0 * b - 1.0):
        return 0.5 * a + 0.5 * b
    mid = _from_u(0.5 * (_to_u(a) + _to_u(b)))
    return mid if a < mid < b else 0.5 * a + 0.5 * b


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tilted_mean(z, p, q, n, lam):  # pragma: no cover - compiled
    """sum_{t < n} sigmoid(z_t + lam). For |lam| <= 700 as p e^lam / (q + p e^lam) with
    p = sigmoid(z), q = sigmoid(-z) precomputed (a product and a division per step; p e^lam
    cannot overflow); beyond, with one exp per step (1 / inf = 0: no branch needed)."""
    m = 0.0
    if abs(lam) <= 700.0:
        theta = math.exp(lam)
        for t in range(n):
            x = p[t] * theta
            m += x / (q[t] + x)
    else:
        for t in range(n):
            m += 1.0 / (1.0 + math.exp(-(z[t] + lam)))
    return m


@njit(cache=True, nogil=True)
def solve_tilts(z, lengths, targets, lams):  # pragma: no cover - compiled
    """lams[i] solves sum_{t < lengths[i]} sigmoid(z[i, t] + lam) = targets[i].

    z: (J, T) logits (+-inf allowed). Bisection (:func:`_midpoint`) over the bracket
    [-max z - 40, -min z + 40] of the finite z, which holds the root of every target strictly
    between the numbers of logits = +inf and > -inf (each finite term is within 4e-18 of 0 or
    1 at its ends); it ends with lam to 1e-6, or to the float64 spacing at large |lam|
    (logits of 1e4 need lam of about -1e4).
    """
    p = np.empty(z.shape[1])
    q = np.empty(z.shape[1])
    for i in range(z.shape[0]):
        n = lengths[i]
        while n > 0 and z[i, n - 1] == -math.inf:  # trailing masked steps add nothing
            n -= 1
        z_lo = math.inf
        z_hi = -math.inf
        for t in range(n):
            v = z[i, t]
            e = math.exp(-abs(v))
            p[t] = 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)
            q[t] = e / (1.0 + e) if v >= 0 else 1.0 / (1.0 + e)
            if math.isfinite(v):
                z_lo = min(z_lo, v)
                z_hi = max(z_hi, v)
        if z_lo > z_hi:  # no finite logit: nothing to tilt
            lams[i] = 0.0
            continue
        a = -z_hi - 40.0
        b = -z_lo + 40.0
        for _ in range(300):
            lam = _midpoint(a, b)
            if not a < lam < b:
                break
            if _tilted_mean(z[i], p, q, n, lam) < targets[i]:
                a = lam
            else:
                b = lam
            if b - a < 1e-6:
                break
        lams[i] = 0.5 * a + 0.5 * b


@njit(cache=True, nogil=True)
def tilt_grads(zt, lp, s, lam, gh, g, steps, logits, out):  # pragma: no cover - compiled
    """Gradients of tilted jobs w.r.t. their input rows (see ``counting._cpu._Tail.grads``).

    zt: (J, T) tilted logits; lp, s: (J, T) log p and log(q + p e^lam); lam, g: (J,);
    gh: (J, T) g d log Pr' / d p'. out (J, T): g (p' q' h + p' - p) per logit, or
    e^(lam - s) (g + q' gh) - e^(-s) (g - p' gh) per probability; 0 at steps >= steps[j].
    """
    for j in range(zt.shape[0]):
        for t in range(zt.shape[1]):
            if t >= steps[j]:
                out[j, t] = 0.0
                continue
            y = zt[j, t]
            e = math.exp(-abs(y))
            big = 1.0 / (1.0 + e)
            small = e * big
            pt = big if y >= 0 else small
            qt = small if y >= 0 else big
            if logits:
                out[j, t] = gh[j, t] * pt * qt + g[j] * (pt - math.exp(lp[j, t]))
            else:  # lam - s <= -log p: the clamp only matters for p = 0 and lam > 709
                up = math.exp(min(lam[j] - s[j, t], 709.0)) * (g[j] + qt * gh[j, t])
                out[j, t] = up - math.exp(-s[j, t]) * (g[j] - pt * gh[j, t])


# The layout changes below go through a (LANES, T) lane-major buffer: one pass copies whole
# rows into it (contiguous reads), a second writes the time-major rows (contiguous writes of
# LANES values). Writing a column of the time-major array directly (one strided store per step)
# ran 4-5x slower than this.


@njit(cache=True, nogil=True)
def gather_time_major(x, src, steps, logits, pt, qt, g_lo, g_hi):  # pragma: no cover - compiled
    """pt[t, i], qt[t, i] = p, 1 - p of row src[i] at step t (float64); identity (0, 1) at
    steps >= steps[src[i]] and in lanes i >= len(src). x: (R, T) probabilities or logits
    (float32 or float64); pt, qt: (T, padded). Logits use one exp: with e = exp(-|x|),
    {p, q} = {1 / (1 + e), e / (1 + e)}, both without cancellation. Only the lane groups
    ``g_lo..g_hi-1`` (lanes ``32 g .. 32 g + 31``) are written: disjoint ranges may run on
    several threads."""
    t_len, padded = pt.shape
    n_src = src.shape[0]
    buf = np.empty((LANES, t_len))
    lim = np.empty(LANES, dtype=np.int64)
    for c0 in range(g_lo * LANES, min(padded, g_hi * LANES), LANES):
        n = min(padded, c0 + LANES) - c0
        for li in range(n):
            i = c0 + li
            lim[li] = 0
            if i < n_src:
                r = src[i]
                lim[li] = min(t_len, steps[r])
                for t in range(lim[li]):
                    buf[li, t] = x[r, t]
        for t in range(t_len):
            for li in range(n):
                i = c0 + li
                if t >= lim[li]:
                    pt[t, i] = 0.0
                    qt[t, i] = 1.0
                elif logits:
                    v = buf[li, t]
                    e = math.exp(-abs(v))
                    big = 1.0 / (1.0 + e)
                    small = e / (1.0 + e)
                    pt[t, i] = big if v >= 0 else small
                    qt[t, i] = small if v >= 0 else big
                else:
                    v = buf[li, t]
                    pt[t, i] = v
                    qt[t, i] = 1.0 - v


@njit(cache=True, nogil=True)
def scatter_rows(  # pragma: no cover - compiled
    grad_t, lane_job, lane_len, x, job_row, logits, out, g_lo, g_hi
):
    """out[lane_job[i], t] = grad_t[t, i] for t < lane_len[i], 0 for the other steps; times
    p q of x[job_row[job], t] (d p / d logit) when ``logits``. grad_t: (S, padded) time-major;
    out: (jobs, T) float32 or float64, every row covered by one lane. Only the lanes of groups
    ``g_lo..g_hi-1`` are read (each writes its own rows: thread-safe)."""
    t_len = out.shape[1]
    s_len = grad_t.shape[0]
    n_lanes = lane_job.shape[0]
    buf = np.empty((LANES, t_len))
    for c0 in range(g_lo * LANES, min(n_lanes, g_hi * LANES), LANES):
        n = min(n_lanes, c0 + LANES) - c0
        for t in range(min(t_len, s_len)):
            for li in range(n):
                buf[li, t] = grad_t[t, c0 + li]
        for li in range(n):
            row = lane_job[c0 + li]
            m = min(t_len, lane_len[c0 + li])
            if logits:
                r = job_row[row]
                for t in range(m):
                    e = math.exp(-abs(np.float64(x[r, t])))  # float64 even for float32 x
                    big = 1.0 / (1.0 + e)
                    out[row, t] = buf[li, t] * (big * (e * big))
            else:
                for t in range(m):
                    out[row, t] = buf[li, t]
            for t in range(m, t_len):
                out[row, t] = 0.0
