"""Preparation shared by the count backends (private to ``softloc.counting``).

Rows: every backend works on ``(R, T)`` rows, one per (batch, class) pair, with ``steps`` (R,)
valid steps each. Helpers here decide which count bins are possible at all (a bin is impossible
only when some p are exactly 0 or 1) and where to aim the exponential tilt that recomputes tiny
probabilities exactly (see ``softloc.counting._cpu_kernels``).
"""

from __future__ import annotations

import torch

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
    p: torch.Tensor, q: torch.Tensor, steps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: number of sure events (p == 1) and of possible events (p > 0) among valid steps."""
    with torch.no_grad():
        valid = torch.arange(p.shape[1], device=p.device)[None, :] < steps.to(p.device)[:, None]
        lo = ((q == 0) & valid).sum(-1)
        hi = ((p > 0) & valid).sum(-1)
    return lo, hi


def possible(n: torch.Tensor, k_max: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Pr(Y = n) > 0 for n < k_max, Pr(Y >= k_max) > 0 for n == k_max (exactly)."""
    return torch.where(n < k_max, (lo <= n) & (n <= hi), hi >= k_max)


def tilt_targets(n: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Tilted mean to aim at: n, kept half a count inside the feasible range (lo < hi here)."""
    n = n.to(torch.float64)
    return torch.minimum(torch.maximum(n, lo.to(n.dtype) + 0.5), hi.to(n.dtype) - 0.5)
