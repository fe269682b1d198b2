"""Reference count backend: LoCo eq. 9 and 14 in log space, one torch op per step (private).

Slow (a Python loop over time steps, autograd through every step) and obviously correct: the
baseline the fast backends (``_cpu``, ``_tree``) are tested against. Its autograd gradient is
NaN where p is exactly 0 or 1 (derivative of log p); the other backends are finite there. Its
log-space sums carry an absolute rounding error of the size of the largest |log p| involved, so
for logits of ~1e12 and beyond (states of -1e12 are spaced by 1e-4) its gradients are rough,
where the fast backends, which work on differences of logits, stay exact. With probabilities
below ~1e-290 its autograd loses their gradient (logaddexp weights of the order of p underflow
below float64's normal range and are flushed to 0); the fast backends' closed form keeps it.
"""

from __future__ import annotations

import math

import torch


def _log_recursion(
    log_p: torch.Tensor, log_q: torch.Tensor, k_max: int, steps: torch.Tensor
) -> torch.Tensor:
    """(R, T) log p, log(1 - p) -> (R, k_max + 1) log Pr(Y = k), last bin Pr(Y >= k_max)."""
    r = log_p.shape[0]
    pad = torch.nn.functional.pad
    # The state grows by one bin per step until it reaches k_max + 1, so it never holds -inf
    # (logaddexp(-inf, -inf) has a NaN gradient); rows are masked by reading the state after
    # `steps[r]` steps from the snapshots instead of freezing it.
    log_y = log_p.new_zeros(r, 1)
    snapshots = [pad(log_y, (0, k_max), value=-math.inf)]
    # unbind once: slicing column t in the loop would cost O(R * T) per step in the backward.
    for lp, lq in zip(log_p.unbind(1), log_q.unbind(1), strict=True):
        lp, lq = lp[:, None], lq[:, None]
        if log_y.shape[1] <= k_max:
            mid = torch.logaddexp(log_y[:, 1:] + lq, log_y[:, :-1] + lp)
            log_y = torch.cat([log_y[:, :1] + lq, mid, log_y[:, -1:] + lp], dim=1)
        else:
            mid = torch.logaddexp(log_y[:, 1:-1] + lq, log_y[:, :-2] + lp)
            top = torch.logaddexp(log_y[:, -1:], log_y[:, -2:-1] + lp)  # absorbing (eq. 14)
            log_y = torch.cat([log_y[:, :1] + lq, mid, top], dim=1)
        snapshots.append(pad(log_y, (0, k_max + 1 - log_y.shape[1]), value=-math.inf))
    stacked = torch.stack(snapshots)  # (T+1, R, K+1)
    return stacked[steps.to(log_p.device), torch.arange(r, device=log_p.device)]


def log_states(x: torch.Tensor, k_max: int, steps: torch.Tensor, logits: bool) -> torch.Tensor:
    """(R, T) probabilities or logits -> (R, k_max + 1) float64 log count distribution."""
    x64 = x.to(torch.float64)
    if logits:
        log_p, log_q = torch.nn.functional.logsigmoid(x64), torch.nn.functional.logsigmoid(-x64)
    else:
        log_p, log_q = torch.log(x64), torch.log1p(-x64)
    return _log_recursion(log_p, log_q, k_max, steps)


def exact_log_values(x_row: torch.Tensor, k_max: int, bins: list[int]) -> torch.Tensor:
    """log Pr(Y = k) (k < k_max) or log Pr(Y >= k_max) for the ``bins`` of one row of logits.

    ``x_row`` (T,) holds the valid steps only; any logits, also of any magnitude. Sure frames
    (logit +inf) are dropped and shift the count by one each, impossible ones (-inf) are
    dropped: the recursion's gradient is NaN at them, and the exact limit of the gradient there
    is 0. Autograd-capable. The fast backends' last resort for the rare rows whose tilted
    problem float64 cannot hold (logits of ~1e308).
    """
    sure = int((x_row == math.inf).sum())
    keep = x_row[torch.isfinite(x_row)][None, :]  # (1, T')
    inner = log_states(keep, k_max, torch.tensor([keep.shape[1]]), True)[0]
    out = []
    for k in bins:
        j = k - sure
        if k < k_max:
            out.append(inner[j] if j >= 0 else inner.new_tensor(-math.inf))
        elif j <= 0:  # Pr(Y >= k_max) = 1: the sure events alone reach the top bin
            out.append(inner.new_zeros(()))
        else:
            out.append(torch.logsumexp(inner[j:], 0))
    return torch.stack(out)


def logit(p: torch.Tensor) -> torch.Tensor:
    """log p - log(1 - p), +-inf at p = 1 / 0 with a zero gradient there (not 0 * inf = NaN)."""
    inside = (p > 0) & (p < 1)
    safe = torch.where(inside, p, 0.5)
    sure = torch.where(p.detach() >= 1, math.inf, -math.inf)  # constants: no 0 * inf
    return torch.where(inside, torch.log(safe) - torch.log1p(-safe), sure)
