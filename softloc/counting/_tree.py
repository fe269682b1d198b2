"""Tree count backend: log-depth tree of truncated products in plain torch ops (private).

The GPU path of ``softloc.counting`` (``backend="tree"``, and ``"auto"`` off the CPU).

Each frame is the polynomial ``q_t + p_t z``. Multiplying them pairwise in a tree, truncated to
``width`` coefficients with a *saturating* top bin, gives the same result as the sequential
recursion because saturating truncation is exactly associative (field notes §4.1 item 3): the
top bin is the projection sum_{j >= top} P(j) disc^(j - top), and the projection of a product is a
function of the projections of its factors. ``disc`` is per row: 1 for the absorbing bin of
LoCo eq. 14, 0 for an exact bin (mass beyond it is dropped), in between for an exponentially
tilted problem (see ``softloc.counting._cpu_kernels``). Work is O(T * width) in total (the node
width doubles per level until it reaches ``width``), depth ceil(log2 T), all steps batched over
rows. Autograd runs through it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from softloc.counting import _reference
from softloc.counting._common import (
    SAFE,
    feasible_range,
    log_pq,
    possible,
    pq,
    solve_tilt,
    tilt_shift,
    tilt_targets,
)


def _merge(a: torch.Tensor, b: torch.Tensor, width: int, disc: torch.Tensor) -> torch.Tensor:
    """Truncated saturating product of node pairs: 2 x (R, n, w) -> (R, n, min(2w - 1, width))."""
    w = a.shape[-1]
    full = 2 * w - 1
    saturate = full > width
    n_reg = width - 1 if saturate else full
    # Row m of `win` is b[m - (w-1) : m + 1] (zero padded), so win @ flip(a) is the convolution.
    bp = F.pad(b, (w - 1, max(0, n_reg - w)))
    win = bp.unfold(-1, w, 1)[..., :n_reg, :]  # (R, n, n_reg, w)
    reg = torch.matmul(win, a.flip(-1).unsqueeze(-1)).squeeze(-1)  # (R, n, n_reg)
    if not saturate:
        return reg
    # Top bin: sum_i a_i * D[top - i], D[s] = sum_{j >= s} b_j disc^(j - s).
    idx = torch.arange(w, device=a.device)
    expo = idx[None, :] - idx[:, None]  # (s, j) -> j - s
    powers = disc[:, None, None] ** expo.clamp(min=0).to(disc.dtype)  # (R, w, w)
    upper = torch.where(expo >= 0, powers, torch.zeros_like(powers))
    d_suffix = torch.einsum("rnj,rsj->rns", b, upper)  # (R, n, w)
    d_pad = F.pad(d_suffix, (0, width - w))  # (R, n, width)
    top = (a * d_pad[..., width - 1 - idx]).sum(-1, keepdim=True)  # (R, n, 1)
    return torch.cat([reg, top], dim=-1)


def tree_states(p: torch.Tensor, q: torch.Tensor, width: int, disc: torch.Tensor) -> torch.Tensor:
    """Final truncated state of every row: (R, T) probabilities -> (R, width).

    ``q`` is 1 - p (passed separately so that logits give an exact q); masked steps must carry
    p = 0, q = 1, the identity. ``disc`` (R,) selects the top-bin semantics per row; width >= 2.
    """
    r, t_len = p.shape
    if t_len == 0:
        out = p.new_zeros(r, width)
        out[:, 0] = 1.0
        return out
    x = torch.stack([q, p], dim=-1)  # (R, T) -> (R, T, 2)
    while x.shape[1] > 1:
        if x.shape[1] % 2:
            ident = x.new_zeros(r, 1, x.shape[-1])
            ident[..., 0] = 1.0
            x = torch.cat([x, ident], dim=1)
        x = _merge(x[:, 0::2], x[:, 1::2], width, disc)
    out = x[:, 0]  # (R, 1, w) -> (R, w)
    if out.shape[-1] < width:
        out = F.pad(out, (0, width - out.shape[-1]))
    return out


# --------------------------------------------------------------------------------------------
# The backend: exact log-likelihoods and distributions on top of tree_states.


def _masked_pq(x: torch.Tensor, steps: torch.Tensor, logits: bool):
    p, q = pq(x, logits)
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
    return torch.where(valid, p, 0.0), torch.where(valid, q, 1.0)


def _tilted(x, p, q, steps, z_ref, delta, logits):
    """p', q' of the problem tilted by e^lam and s_t = log(q_t + p_t e^lam) (autograd).

    Logits: the tilt is a shift, p' = sigmoid(x + lam) with x + lam = (x - z_ref) + delta,
    and s is formed from log-sigmoids, so no e^lam is ever formed (|lam| can be 1e4 for logits
    of 1e4).
    Probabilities: with s0 = s without gradient, p' = p a / N and q' = q b / N with the
    constants a = e^(lam - s0), b = e^(-s0) and N = q b + p a (1 in value; it carries the
    gradient): exact at p = 0 and 1 too, where the logit is infinite.
    """
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
    z_ref, delta = z_ref[:, None], delta[:, None]
    lam = delta - z_ref
    if logits:
        z = torch.where(valid, x.to(torch.float64), -math.inf)  # masked: the identity
        zt = (z - z_ref) + delta  # z + lam, exact near the logit z_ref
        pt, qt = torch.sigmoid(zt), torch.sigmoid(-zt)
        # s = log q + softplus(z') = lam + log p + softplus(-z'), the form without cancellation
        # for each sign of z; both have the exact gradient ds/dz = p' - p.
        pos = z > 0
        zn, zp = torch.where(pos, -1.0, z), torch.where(pos, z, 1.0)
        ztn, ztp = torch.where(pos, -1.0, zt), torch.where(pos, zt, 1.0)
        s_neg = F.logsigmoid(-zn) - F.logsigmoid(-ztn)
        s_pos = lam + F.logsigmoid(zp) - F.logsigmoid(ztp)
        return pt, qt, torch.where(pos, s_pos, s_neg)
    lp, lq, _ = log_pq(x, steps, logits)
    s0 = torch.logaddexp(lq, lp + lam)
    # lam - s0 <= -log p <= 708.4 for every normal p > 0; the clamp only keeps p = 0 (and
    # subnormal p) from 0 * inf when lam exceeds that.
    a, b = torch.exp((lam - s0).clamp(max=709.0)), torch.exp(-s0)
    norm = q * b + p * a
    return p * a / norm, q * b / norm, s0 + torch.log(norm)


def _tail_log(x, p, q, steps, n, k_max, lo, hi, logits):
    """log Pr(Y = n) (n < k_max) / log Pr(Y >= k_max) per row via the tilted problem.

    Pr(Y = n) = Pr'(Y = n) prod_t (q_t + p_t e^lam) e^(-n lam) for any lam; lam puts the tilted
    mean at n, where Pr'(Y = n) is of order 1 and the linear recursion exact (relative to the
    logit nearest to -lam beyond |lam| = 1e6, ``tilt_shift``). Rows of logits that still fail
    (Pr' below SAFE, or sum s - n lam beyond float64 for logits of ~1e308) fall back to the
    log-space recursion.
    """
    _, _, z = log_pq(x, steps, logits)
    top = n == k_max
    z_ref, delta = tilt_shift(z, tilt_targets(n, lo, hi).to(z.device), top, solve_tilt)
    lam = delta - z_ref
    pt, qt, s = _tilted(x, p, q, steps, z_ref, delta, logits)
    disc = torch.where(top, torch.exp(-lam.clamp(min=0.0)), torch.zeros_like(lam))
    states = tree_states(pt, qt, k_max + 1, disc)
    value = states.gather(1, n[:, None]).squeeze(1)
    lost = ~(value.detach() >= SAFE)  # NaN included
    safe_value = torch.where(lost, 1.0, value)
    ll = torch.log(safe_value) + s.sum(-1) - n * lam
    # sum s - n lam beyond float64 (logits of ~1e308: -inf - -inf); the gradient is exact.
    over = ~lost & ~torch.isfinite(ll.detach())
    if bool((lost | over).any()):  # (never seen with probabilities, |logit| <= 745)
        idx = (lost | over).nonzero().squeeze(1)
        carrier = torch.log(safe_value) + (s - s.detach()).sum(-1)  # the tilted gradient
        n_steps = steps.to(x.device)
        exact = []
        for i in idx.tolist():
            row = x[i, : int(n_steps[i])].to(torch.float64)
            row = row if lost[i] else row.detach()
            row = row if logits else _reference.logit(row)
            v = _reference.exact_log_values(row, k_max, [int(n[i])])
            if not bool(torch.isfinite(v).all()):
                v = v.detach()  # below -1.8e308: -inf with a zero gradient, as impossible
            elif over[i]:
                v = carrier[i : i + 1] + (v - carrier[i : i + 1]).detach()
            exact.append(v)
        ll = ll.index_put((idx,), torch.cat(exact))
    return ll


def log_likelihood(
    x: torch.Tensor, n: torch.Tensor, steps: torch.Tensor, k_max: int, logits: bool
) -> torch.Tensor:
    """(R, T) probs or logits, (R,) counts -> (R,) float64 log Pr(Y = min(n, k_max))."""
    n = n.to(x.device)
    steps = steps.to(x.device)
    p, q = _masked_pq(x, steps, logits)
    lo, hi = feasible_range(x, steps, logits)
    top = n == k_max
    states = tree_states(p, q, k_max + 1, top.to(p.dtype))
    value = states.gather(1, n[:, None]).squeeze(1)
    feasible = possible(n, k_max, lo, hi)
    redo = feasible & (value.detach() < SAFE)
    ok = feasible & ~redo
    ll = torch.where(ok, torch.log(torch.where(ok, value, 1.0)), -math.inf)
    if bool(redo.any()):
        i = redo.nonzero().squeeze(1)
        tail = _tail_log(x[i], p[i], q[i], steps[i], n[i], k_max, lo[i], hi[i], logits)
        ll = ll.index_put((i,), tail)
    return ll


def distribution(
    x: torch.Tensor, steps: torch.Tensor, k_max: int, logits: bool, log: bool
) -> torch.Tensor:
    """(R, T) probs or logits -> (R, k_max + 1) float64 distribution (or its log)."""
    steps = steps.to(x.device)
    p, q = _masked_pq(x, steps, logits)
    r = p.shape[0]
    states = tree_states(p, q, k_max + 1, p.new_ones(r))
    if not log:
        return states
    lo, hi = feasible_range(x, steps, logits)
    ks = torch.arange(k_max + 1, device=p.device)[None, :].expand(r, -1)
    feasible = possible(ks, k_max, lo[:, None], hi[:, None])
    safe = feasible & (states.detach() >= SAFE)
    out = torch.where(safe, torch.log(torch.where(safe, states, 1.0)), -math.inf)
    er, ek = torch.nonzero(feasible & ~safe, as_tuple=True)
    if len(er):
        vals = _tail_log(x[er], p[er], q[er], steps[er], ek, k_max, lo[er], hi[er], logits)
        out = out.index_put((er, ek), vals)
    return out
