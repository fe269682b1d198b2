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

from softloc.counting._common import SAFE, feasible_range, possible, pq, tilt_targets


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


def solve_tilt(p: torch.Tensor, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """lam (R,) with sum_t p e^lam / (q + p e^lam) = target, by batched bisection (no grad)."""
    with torch.no_grad():
        lo = torch.full_like(target, -700.0)
        hi = torch.full_like(target, 700.0)
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            pt = p * mid.exp()[:, None]
            m = (pt / (q + pt)).sum(-1)
            below = m < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)


# --------------------------------------------------------------------------------------------
# The backend: exact log-likelihoods and distributions on top of tree_states.


def _masked_pq(x: torch.Tensor, steps: torch.Tensor, logits: bool):
    p, q = pq(x, logits)
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps.to(x.device)[:, None]
    return torch.where(valid, p, 0.0), torch.where(valid, q, 1.0)


def _tilted_log(
    p: torch.Tensor,
    q: torch.Tensor,
    n: torch.Tensor,
    k_max: int,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> torch.Tensor:
    """log Pr(Y = n) (n < k_max) / log Pr(Y >= k_max) per row via the tilted problem."""
    lam = solve_tilt(p.detach(), q.detach(), tilt_targets(n, lo, hi).to(p.device))
    top = n == k_max
    lam = torch.where(top, lam.clamp(min=0.0), lam)
    theta = lam.exp()[:, None]
    s = q + p * theta
    disc = torch.where(top, torch.exp(-lam), torch.zeros_like(lam))
    states = tree_states(p * theta / s, q / s, k_max + 1, disc)
    value = states.gather(1, n[:, None]).squeeze(1)
    return torch.log(value) + torch.log(s).sum(-1) - n * lam


def log_likelihood(
    x: torch.Tensor, n: torch.Tensor, steps: torch.Tensor, k_max: int, logits: bool
) -> torch.Tensor:
    """(R, T) probs or logits, (R,) counts -> (R,) float64 log Pr(Y = min(n, k_max))."""
    n = n.to(x.device)
    p, q = _masked_pq(x, steps, logits)
    lo, hi = feasible_range(p, q, steps)
    top = n == k_max
    states = tree_states(p, q, k_max + 1, top.to(p.dtype))
    value = states.gather(1, n[:, None]).squeeze(1)
    feasible = possible(n, k_max, lo, hi)
    redo = feasible & (value.detach() < SAFE)
    ok = feasible & ~redo
    ll = torch.where(ok, torch.log(torch.where(ok, value, 1.0)), -math.inf)
    if bool(redo.any()):
        idx = redo.nonzero().squeeze(1)
        ll = ll.index_put((idx,), _tilted_log(p[idx], q[idx], n[idx], k_max, lo[idx], hi[idx]))
    return ll


def distribution(
    x: torch.Tensor, steps: torch.Tensor, k_max: int, logits: bool, log: bool
) -> torch.Tensor:
    """(R, T) probs or logits -> (R, k_max + 1) float64 distribution (or its log)."""
    p, q = _masked_pq(x, steps, logits)
    r = p.shape[0]
    states = tree_states(p, q, k_max + 1, p.new_ones(r))
    if not log:
        return states
    lo, hi = feasible_range(p, q, steps)
    ks = torch.arange(k_max + 1, device=p.device)[None, :].expand(r, -1)
    feasible = possible(ks, k_max, lo[:, None], hi[:, None])
    safe = feasible & (states.detach() >= SAFE)
    out = torch.where(safe, torch.log(torch.where(safe, states, 1.0)), -math.inf)
    er, ek = torch.nonzero(feasible & ~safe, as_tuple=True)
    if len(er):
        vals = _tilted_log(p[er], q[er], ek, k_max, lo[er], hi[er])
        out = out.index_put((er, ek), vals)
    return out
