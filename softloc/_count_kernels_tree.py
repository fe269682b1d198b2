"""Log-depth tree of truncated products in plain torch ops (private; the CUDA path of counting).

Each frame is the polynomial ``q_t + p_t z``. Multiplying them pairwise in a tree, truncated to
``width`` coefficients with a *saturating* top bin, gives the same result as the sequential
recursion because saturating truncation is exactly associative (field notes §4.1 item 3): the
top bin is the projection sum_{j >= top} P(j) disc^(j - top), and the projection of a product is a
function of the projections of its factors. ``disc`` is per row: 1 for the absorbing bin of
LoCo eq. 14, 0 for an exact bin (mass beyond it is dropped), in between for an exponentially
tilted problem (see ``softloc._count_kernels``). Work is O(T * width) in total (the node width
doubles per level until it reaches ``width``), depth ceil(log2 T), all steps batched over rows.
Autograd runs through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
