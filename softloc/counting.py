"""The count distribution: Poisson-binomial over frame probabilities (LoCo eq. 6, 9, 14).

Conventions: ``probs`` has shape ``(batch, class, time)`` with values in [0, 1]; each (batch, class)
row is an independent sequence of Bernoulli events. The distribution is truncated to ``k_max + 1``
bins; the last bin is *absorbing* and holds Pr(Y >= k_max).

NOTE (skeleton): this is the plain log-space reference recursion. The fast fused CPU/GPU backends
of issue #4 plug in behind the same functions.
"""

from __future__ import annotations

import math

import torch

from softloc._validation import (
    check_lengths,
    check_ndim,
    check_positive_int,
    check_probabilities,
    check_tensor,
)


def count_prior_bias(num_steps: int, omega: float = 0.8) -> float:
    """Initial pre-sigmoid output bias so that Pr(no event in ``num_steps`` frames) = ``omega``.

    LoCo eq. 15: b = log((1 - omega^(1/T)) / omega^(1/T)); -7.4911 for T = 400, omega = 0.8.
    """
    fn = "count_prior_bias"
    check_positive_int(fn, "num_steps", num_steps)
    if not 0.0 < omega < 1.0:
        raise ValueError(f"{fn}: `omega` must lie in (0, 1), got {omega}")
    w = omega ** (1.0 / num_steps)
    return math.log((1.0 - w) / w)


def _reference_log_count_distribution(
    probs: torch.Tensor, k_max: int, lengths: torch.Tensor | None
) -> torch.Tensor:
    """Sequential log-space recursion (LoCo eq. 9, 14); (B, C, T) -> (B, C, k_max + 1)."""
    b, c, t_len = probs.shape
    p = probs.reshape(b * c, t_len)  # (B, C, T) -> (B*C, T)
    log_p = torch.log(p)
    log_q = torch.log1p(-p)
    log_y = torch.full((b * c, k_max + 1), -math.inf, dtype=probs.dtype, device=probs.device)
    log_y[:, 0] = 0.0
    if lengths is not None:
        steps = lengths.to(probs.device).repeat_interleave(c)  # (B,) -> (B*C,)
    for t in range(t_len):
        lp, lq = log_p[:, t : t + 1], log_q[:, t : t + 1]
        stay = log_y[:, :-1] + lq
        move = torch.cat([log_y.new_full((b * c, 1), -math.inf), log_y[:, :-2] + lp], dim=1)
        body = torch.logaddexp(stay, move)
        top = torch.logaddexp(log_y[:, -1:], log_y[:, -2:-1] + lp)
        new = torch.cat([body, top], dim=1)
        if lengths is not None:
            new = torch.where((t < steps)[:, None], new, log_y)
        log_y = new
    return log_y.reshape(b, c, k_max + 1)


def count_distribution(
    probs: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    log: bool = False,
) -> torch.Tensor:
    """Pr(Y = k) for k < k_max and Pr(Y >= k_max) in the last bin (LoCo eq. 6, 9, 14).

    Args:
        probs: event probabilities p(t) in [0, 1].
        k_max: index of the absorbing top bin (>= 1).
        lengths: valid steps per batch item; steps beyond are ignored.
        log: return log-probabilities.

    Shape:
        probs ``(batch, class, time)``, lengths ``(batch,)`` -> ``(batch, class, k_max + 1)``.
    """
    fn = "count_distribution"
    check_tensor(fn, "probs", probs)
    check_ndim(fn, "probs", probs, 3, "(batch, class, time)")
    check_probabilities(fn, "probs", probs)
    check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    out = _reference_log_count_distribution(probs, k_max, lengths)
    return out if log else out.exp()


def count_log_likelihood(
    probs: torch.Tensor,
    counts: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """log Pr(Y = min(count, k_max)) per (batch, class) (LoCo eq. 7 without the sign).

    Shape:
        probs ``(batch, class, time)``, counts ``(batch, class)`` -> ``(batch, class)``.
    """
    fn = "count_log_likelihood"
    check_tensor(fn, "counts", counts)
    if counts.shape != probs.shape[:2]:
        raise ValueError(
            f"{fn}: `counts` must have shape (batch, class) = {tuple(probs.shape[:2])}, "
            f"got {tuple(counts.shape)}"
        )
    if counts.numel() and int(counts.min()) < 0:
        raise ValueError(f"{fn}: `counts` must be >= 0, got minimum {int(counts.min())}")
    log_y = count_distribution(probs, k_max, lengths=lengths, log=True)
    idx = counts.long().clamp(max=k_max).unsqueeze(-1)  # (B, C) -> (B, C, 1)
    return log_y.gather(-1, idx).squeeze(-1)
