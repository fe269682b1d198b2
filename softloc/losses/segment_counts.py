"""Segment counts and L_MC on segment starts (SoftLoc §5.3), split out of
:mod:`softloc.losses.segmentation` (which re-exports the public names; import from there).

Also holds the input checks shared by every segmentation loss: logits ``(batch, class, time)``
or ``(stage, batch, class, time)`` and class-index targets ``(batch, time)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softloc._checks import (
    check_counts,
    check_float,
    check_int,
    check_lengths,
    check_reduction,
    check_tensor,
)
from softloc.counting import count_log_likelihood

__all__ = ["segment_count_loss", "segment_counts", "segment_start_logits"]

_LAYOUT = "(batch, class, time) or (stage, batch, class, time)"
_REDUCTIONS = ("mean", "sum", "none")


def _check_logits(fn: str, logits: object) -> torch.Tensor:
    """(S, B, C, T) view of 3-D or 4-D logits (S = 1 for 3-D)."""
    x = check_tensor(fn, "logits", logits)
    if x.dim() not in (3, 4):
        raise ValueError(f"{fn}: `logits` must have shape {_LAYOUT}, got shape {tuple(x.shape)}")
    check_float(fn, "logits", x)
    if x.numel() and bool(x.detach().isnan().any()):
        raise ValueError(f"{fn}: `logits` must not contain NaN")
    return x if x.dim() == 4 else x[None]  # (B, C, T) -> (1, B, C, T)


def _check_class_targets(fn: str, targets: object, shape: torch.Size) -> torch.Tensor:
    """Class indices (batch, time) matching logits (S, B, C, T)."""
    if targets is None:
        raise ValueError(f"{fn}: `targets` (batch, time) class indices are required")
    y = check_tensor(fn, "targets", targets)
    _, b, c, t = shape
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(
            f"{fn}: `targets` must be an integer tensor of class indices, got {y.dtype}"
        )
    if tuple(y.shape) != (b, t):
        raise ValueError(
            f"{fn}: `targets` must have shape (batch, time) = {(b, t)} (class indices, one per "
            f"frame), got {tuple(y.shape)}"
        )
    if y.numel() and not bool(((y >= 0) & (y < c)).all()):
        raise ValueError(
            f"{fn}: `targets` must hold class indices in [0, {c - 1}], found values in "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    return y



def _frame_mask(lengths: torch.Tensor | None, b: int, t: int, device) -> torch.Tensor | None:
    """(batch, time) bool mask of valid frames, or None when all are valid."""
    if lengths is None:
        return None
    return torch.arange(t, device=device)[None, :] < lengths.to(device)[:, None]



def _log1m_softmax(z: torch.Tensor) -> torch.Tensor:
    """log(1 − softmax(z)) over dim -2 of (..., C, T), accurate even when p rounds to 1.

    For a class that is not the arg-max, p <= 1/2 and log1p(−p) is exact. For the arg-max,
    log(1 − p) = logsumexp of the *other* logits − logsumexp of all (no cancellation).
    """
    lse = torch.logsumexp(z, dim=-2, keepdim=True)
    p = torch.exp(z - lse)
    top = F.one_hot(z.argmax(dim=-2), z.shape[-2]).movedim(-1, -2).bool()  # (..., C, T)
    others = torch.logsumexp(z.masked_fill(top, torch.finfo(z.dtype).min), dim=-2, keepdim=True)
    # clamp keeps the unused branch finite (its gradient is multiplied by 0, never by inf)
    return torch.where(top, others - lse, torch.log1p(-p.clamp(max=0.5)))



# --------------------------------------------------------------------------------------------
# L_MC on segment starts
# --------------------------------------------------------------------------------------------


def segment_counts(
    targets: torch.Tensor, n_classes: int, *, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Number of segments (maximal runs) of every class within the valid frames.

    Args:
        targets: class indices ``(batch, time)``.
        n_classes: number of classes C.
        lengths: valid frames per item.

    Returns:
        ``(batch, class)`` int64 counts.

    Example:
        >>> segment_counts(torch.tensor([[0, 0, 1, 1, 0, 2]]), 3).tolist()
        [[2, 1, 1]]
    """
    fn = "segment_counts"
    c = check_int(fn, "n_classes", n_classes, minimum=1)
    y = check_tensor(fn, "targets", targets)
    if y.dim() != 2:
        raise ValueError(f"{fn}: `targets` must have shape (batch, time), got {tuple(y.shape)}")
    b, t = y.shape
    y = _check_class_targets(fn, y, torch.Size((1, b, c, t)))
    check_lengths(fn, lengths, b, t)
    starts = torch.ones_like(y, dtype=torch.bool)
    starts[:, 1:] = y[:, 1:] != y[:, :-1]
    mask = _frame_mask(lengths, b, t, y.device)
    if mask is not None:
        starts &= mask
    onehot = F.one_hot(y, c).bool() & starts[..., None]  # (B, T, C)
    return onehot.sum(1)  # (B, T, C) -> (B, C)


def segment_start_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits of the segment-start probabilities s_c(t) = p_c(t)·(1 − p_c(t − 1)).

    s_c(0) = p_c(0). Computed in log space: log s = log p(t) + log(1 − p(t − 1)) and
    log(1 − s) = logaddexp(log(1 − p(t)), log p(t) + log p(t − 1)), so confident predictions
    (p rounding to 1 in float32) keep exact, finite values.

    Args:
        logits: class scores ``(..., class, time)``.

    Returns:
        ``log s − log(1 − s)``, same shape; ``torch.sigmoid`` of it is s.
    """
    check_tensor("segment_start_logits", "logits", logits)
    log_p = torch.log_softmax(logits, dim=-2)
    log_q = _log1m_softmax(logits)  # log(1 - p)
    log_s = log_p.clone()
    log_s[..., 1:] = log_p[..., 1:] + log_q[..., :-1]
    log_ns = log_q.clone()  # log(1 - s); at t = 0, 1 - s = 1 - p
    log_ns[..., 1:] = torch.logaddexp(log_q[..., 1:], log_p[..., 1:] + log_p[..., :-1])
    return log_s - log_ns


def segment_count_loss(
    logits: torch.Tensor,
    counts: torch.Tensor,
    *,
    k_max: int = 16,
    lengths: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """L_MC on segment starts: −log Pr(N_c = n_c) (module docstring; SoftLoc eq. 3, §5.3).

    Args:
        logits: class scores ``(batch, class, time)`` or ``(stage, batch, class, time)``.
        counts: segments per class ``(batch, class)`` (e.g. :func:`segment_counts`).
        k_max: absorbing top count bin (>= 1): counts >= k_max are scored as Pr(N >= k_max).
        lengths: valid frames per item.
        reduction: ``"mean"`` over (batch, class) rows (summed over stages), ``"sum"`` or
            ``"none"`` (``(batch, class)``).

    Returns:
        A scalar, or ``(batch, class)``.
    """
    fn = "segment_count_loss"
    z = _check_logits(fn, logits)
    s, b, c, t = z.shape
    counts = check_counts(fn, counts, (b, c))
    k_max = check_int(fn, "k_max", k_max, minimum=1)
    check_lengths(fn, lengths, b, t)
    check_reduction(fn, reduction, _REDUCTIONS)
    return _count_term(z, counts, k_max, lengths, reduction)


def _count_term(z, counts, k_max, lengths, reduction) -> torch.Tensor:
    s, b, c, t = z.shape
    starts = segment_start_logits(z).reshape(s * b, c, t)  # (S, B, C, T) -> (S*B, C, T)
    rep = None if lengths is None else lengths.repeat(s)
    nll = -count_log_likelihood(starts, counts.repeat(s, 1), k_max, lengths=rep, logits=True)
    nll = nll.reshape(s, b, c).sum(0)  # (S*B, C) -> (B, C)
    if reduction == "none":
        return nll
    return nll.sum() if reduction == "sum" else nll.mean()
