"""Preparation shared by the count backends (private to ``softloc.counting``).

Rows: every backend works on ``(R, T)`` rows, one per (batch, class) pair, with ``steps`` (R,)
valid steps each. Helpers here decide which count bins are possible at all (a bin is impossible
only when some p are exactly 0 or 1) and where to aim the exponential tilt that recomputes tiny
probabilities exactly (see ``softloc.counting._cpu_kernels``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Probabilities below this are recomputed on the tilted problem: the linear-space kernels flush
# values below 1e-150 (``_cpu_kernels.TINY``), an absolute error of at most ~1e-143.
SAFE = 1e-120


def row_lengths(lengths: torch.Tensor | None, b: int, c: int, t_len: int) -> torch.Tensor:
    """(batch,) -> (batch*class,) int64 on CPU; full length when ``lengths`` is None."""
    if lengths is None:
        return torch.full((b * c,), t_len, dtype=torch.int64)
    return lengths.detach().to("cpu").round().to(torch.int64).repeat_interleave(c)


def pq(x: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and their complements in float64 (autograd-capable)."""
    x64 = x.to(torch.float64)
    if logits:
        return torch.sigmoid(x64), torch.sigmoid(-x64)
    return x64, 1.0 - x64


def feasible_range(
    x: torch.Tensor, steps: torch.Tensor, logits: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (R, T) row: number of sure events and of possible events among valid steps.

    Sure: p == 1 (logit +inf); possible: p > 0 (logit > -inf). Read from the input itself, not
    from sigmoid(x): a finite logit of 1e4 has p = 1 in float64 but is not a sure event (its
    1 - p = e^-1e4 is exactly what a count of 0 costs).
    """
    with torch.no_grad():
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
        sure, maybe = (x == math.inf, x > -math.inf) if logits else (x == 1, x > 0)
        return (sure & valid).sum(-1), (maybe & valid).sum(-1)


def log_pq(x: torch.Tensor, steps: torch.Tensor, logits: bool):
    """(R, T) input -> float64 log p, log(1 - p) and the logit log p - log(1 - p), exact for any
    input (logits: log p = -softplus(-x), log(1 - p) = -softplus(x)); masked steps hold the
    identity p = 0 (logit -inf). No gradient."""
    with torch.no_grad():
        x64 = x.to(torch.float64)
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
        if logits:
            lp, lq, z = F.logsigmoid(x64), F.logsigmoid(-x64), x64
        else:
            lp, lq = torch.log(x64), torch.log1p(-x64)
            z = lp - lq
        return (
            torch.where(valid, lp, -math.inf),
            torch.where(valid, lq, 0.0),
            torch.where(valid, z, -math.inf),
        )


def possible(n: torch.Tensor, k_max: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Pr(Y = n) > 0 for n < k_max, Pr(Y >= k_max) > 0 for n == k_max (exactly)."""
    return torch.where(n < k_max, (lo <= n) & (n <= hi), hi >= k_max)


def tilt_targets(n: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Tilted mean to aim at: n, kept half a count inside the feasible range (lo < hi here)."""
    n = n.to(torch.float64)
    return torch.minimum(torch.maximum(n, lo.to(n.dtype) + 0.5), hi.to(n.dtype) - 0.5)


def _to_u(lam: torch.Tensor) -> torch.Tensor:
    return torch.sign(lam) * torch.log1p(lam.abs())


def _from_u(u: torch.Tensor) -> torch.Tensor:
    return torch.sign(u) * torch.expm1(u.abs())


def tilt_midpoint(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A point inside each bracket (a, b) of the tilt's bisection: the arithmetic midpoint once
    a and b have one sign and are within a factor ~2 of each other, else the midpoint of
    u = sign(lam) log(1 + |lam|). A bracket of [-1e308, 1e308] thus shrinks to the float64
    spacing of lam within ~120 steps, and an ordinary one to 1e-6 within ~40."""
    arith = 0.5 * a + 0.5 * b
    geo = _from_u(0.5 * (_to_u(a) + _to_u(b)))
    near = ((a >= 0) & (b <= 2 * a + 1)) | ((b <= 0) & (a >= 2 * b - 1))
    return torch.where(near | ~((a < geo) & (geo < b)), arith, geo)


def solve_tilt(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """lam (R,) with sum_t sigmoid(z_t + lam) = target per row of (R, T) logits ``z`` (masked
    steps -inf), by batched bisection (:func:`tilt_midpoint`) until every bracket is 1e-6 wide
    or has no float64 inside (at most 160 steps); no gradient.

    The bracket [-max z - 40, -min z + 40] over the finite z holds the root of every target
    strictly between #(z = +inf) and #(z > -inf): at its ends each finite term is within 4e-18
    of 0 or 1. (``_cpu_kernels.solve_tilts`` is the same bisection in numba.)
    """
    with torch.no_grad():
        if z.shape[1] == 0:
            return torch.zeros_like(target)
        finite = torch.isfinite(z)
        none = ~finite.any(-1)
        hi_z = torch.where(finite, z, -math.inf).amax(-1)
        lo_z = torch.where(finite, z, math.inf).amin(-1)
        a = torch.where(none, 0.0, -hi_z - 40.0)
        b = torch.where(none, 0.0, -lo_z + 40.0)
        for _ in range(20):  # blocks of 8 steps; ~4 blocks for ordinary logits
            for _ in range(8):
                mid = tilt_midpoint(a, b)
                below = torch.sigmoid(z + mid[:, None]).sum(-1) < target
                a = torch.where(below, mid, a)
                b = torch.where(below, b, mid)
            mid = tilt_midpoint(a, b)
            if not bool(((b - a > 1e-6) & (a < mid) & (mid < b)).any()):
                break
        return 0.5 * a + 0.5 * b


# Beyond this |lam| the float64 spacing of lam (2e-10 here) starts to show: tilts are then
# taken relative to the logit nearest to -lam (:func:`tilt_shift`).
FINE_TILT = 1e6


def tilt_shift(z: torch.Tensor, target: torch.Tensor, top: torch.Tensor, solve):
    """The tilt of each (R, T) row of logits ``z`` (masked steps -inf) as a pair (z_ref, delta):
    the tilted logits are (z - z_ref) + delta and lam = delta - z_ref. No gradient.

    ``solve(z, target) -> lam`` is the bisection (:func:`solve_tilt` or the numba one). Near
    lam = -1e18 float64 is spaced by 128, too coarse to centre the tilted problem; so for
    |lam| > FINE_TILT the logits are shifted by the one nearest to -lam (z - z_ref is exact for
    the logits near it, Sterbenz) and the bisection runs again for a small delta. Rows with
    the absorbing target (``top``) keep lam >= 0 (their top bin is discounted by e^-lam <= 1).
    """
    with torch.no_grad():
        lam = solve(z, target)
        z_ref = torch.zeros_like(lam)
        big = lam.abs() > FINE_TILT
        if bool(big.any()):
            i = big.nonzero().squeeze(1)
            gap = torch.where(torch.isfinite(z[i]), (z[i] + lam[i, None]).abs(), math.inf)
            ref = z[i].gather(1, gap.argmin(1, keepdim=True)).squeeze(1)
            z_ref = z_ref.index_put((i,), ref)
            lam = lam.index_put((i,), solve(z[i] - ref[:, None], target[i]))
        back = top & (lam - z_ref < 0)
        return torch.where(back, 0.0, z_ref), torch.where(back, 0.0, lam)
