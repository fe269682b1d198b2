"""LoCo count loss: −log Pr(Y = count) of a Poisson-binomial count Y (LoCo eq. 7).

Conventions (shared by all of :mod:`softloc.losses`): ``probs`` ``(batch, class, time)`` are
event probabilities p(t) in [0, 1], or pre-sigmoid logits with ``logits=True`` (numerically
preferable); ``counts`` ``(batch, class)`` are whole numbers of events >= 0; ``lengths``
``(batch,)`` are the valid steps of each item, later steps never contribute.

:func:`loco_loss` is the function, :class:`LoCoLoss` the module that holds ``k_max``; both
validate their inputs once and compute the count distribution with
:func:`softloc.counting.count_log_likelihood` (without checking again).
"""

from __future__ import annotations

import torch
from torch import nn

from softloc._checks import (
    check_bool,
    check_counts,
    check_lengths,
    check_positive_int,
    check_reduction,
)
from softloc.counting import count_log_likelihood
from softloc.losses._core import check_input, reduce_rows

__all__ = ["LoCoLoss", "loco_loss"]


def loco_loss(
    probs: torch.Tensor,
    counts: torch.Tensor,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    reduction: str = "mean",
    logits: bool = False,
) -> torch.Tensor:
    """Count loss −log Pr(Y = min(count, k_max)) of a Poisson-binomial count Y (LoCo eq. 7).

    Y is the number of events of one (batch, class) row, a sum of independent Bernoulli(p(t))
    (LoCo eq. 6). The count distribution is truncated to ``k_max + 1`` bins whose last bin is
    absorbing, so a target count >= ``k_max`` is scored against Pr(Y >= k_max): counts above
    ``k_max`` are not an error, they map to the top bin.

    Args:
        probs: event probabilities p(t) in [0, 1], or pre-sigmoid logits when ``logits=True``.
        counts: target event counts, integers >= 0 (any integer or float dtype).
        k_max: index of the absorbing top bin (>= 1). The originals used 42 ([L] piano),
            40 (SoftLoc piano), 23 (drums).
        lengths: valid steps per item; later steps are ignored. Default: all steps valid.
        reduction: ``"mean"`` (default; the original: mean over batch × class), ``"sum"``, or
            ``"none"`` (the per-row loss).
        logits: ``probs`` holds logits. Numerically preferable: in float32 a sigmoid rounds to
            exactly 1 for logits above ~17, which can make a count impossible (infinite loss).

    Returns:
        A scalar, or ``(batch, class)`` for ``reduction="none"``.

    Raises:
        TypeError: a non-tensor input, non-float ``probs``, ``bool`` counts or a non-int
            ``k_max``.
        ValueError: bad shapes, probabilities outside [0, 1] (NaN logits), negative, fractional
            or non-finite counts, ``k_max < 1``, a bad ``lengths`` or an unknown ``reduction``.

    Shape:
        probs ``(batch, class, time)``, counts ``(batch, class)``, lengths ``(batch,)``.

    Notes:
        The original read the count distribution at step ``length - 3`` (an artefact of its
        padding) and added 1e-9 inside the log. We read it at the last valid step and work in log
        space (:func:`softloc.counting.count_log_likelihood`), which needs no epsilon; a count
        that the model deems impossible (more events than valid steps, or probabilities of
        exactly 0 or 1 that rule it out) gives an infinite loss. Pass logits to avoid the latter.
    """
    fn = "loco_loss"
    x = check_input(fn, probs, logits)
    counts = check_counts(fn, counts, tuple(x.shape[:2]))
    k_max = check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    check_reduction(fn, reduction)
    return reduce_rows(count_nll(x, counts, k_max, lengths, logits), reduction)


def count_nll(
    x: torch.Tensor,
    counts: torch.Tensor,
    k_max: int,
    lengths: torch.Tensor | None,
    logits: bool,
) -> torch.Tensor:
    """(batch, class) −log Pr(Y = min(count, k_max)) of validated inputs (no checks)."""
    return -count_log_likelihood(x, counts, k_max, lengths=lengths, logits=logits, validate=False)


class LoCoLoss(nn.Module):
    """Module form of :func:`loco_loss` (LoCo eq. 7): holds ``k_max`` and the reduction.

    Args:
        k_max: index of the absorbing top bin (>= 1).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        logits: :meth:`forward` receives pre-sigmoid logits instead of probabilities.

    Example:
        >>> loss = LoCoLoss(k_max=5)
        >>> probs = torch.full((2, 3, 10), 0.1)
        >>> float(loss(probs, torch.ones(2, 3))) > 0
        True
    """

    def __init__(self, k_max: int, *, reduction: str = "mean", logits: bool = False) -> None:
        super().__init__()
        check_positive_int("LoCoLoss", "k_max", k_max)
        check_reduction("LoCoLoss", reduction)
        check_bool("LoCoLoss", "logits", logits)
        self.k_max = k_max
        self.reduction = reduction
        self.logits = logits

    def forward(
        self, probs: torch.Tensor, counts: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        return loco_loss(
            probs, counts, self.k_max, lengths=lengths, reduction=self.reduction, logits=self.logits
        )

    def extra_repr(self) -> str:
        return f"k_max={self.k_max}, reduction={self.reduction!r}, logits={self.logits}"
