"""Losses for action segmentation: per-frame class distributions (SoftLoc §5.3).

Conventions:

* ``logits`` are per-frame class scores ``(batch, class, time)``; the class distribution of frame
  t is ``p(t) = softmax(logits[:, :, t])`` (one class per frame, unlike the event losses of
  :mod:`softloc.losses`, whose classes are independent sigmoids). A 4-D ``(stage, batch, class,
  time)`` tensor (:meth:`softloc.models.tcn.MSTCN.forward_stages`) is accepted by every loss
  here and gives the **sum** over stages (MS-TCN eq. 7).
* ``targets`` are class indices ``(batch, time)`` (int), ``counts`` segments per class ``(batch,
  class)``, ``lengths`` ``(batch,)`` valid frames; frames beyond a length never contribute.
* ``y(t)`` is the one-hot label distribution of ``targets``; σ (``sigma``) is the softness in
  frames (``softloc.timebase.ms_to_frames``).

Losses:

* :func:`frame_cross_entropy`: −log p_{y(t)}(t), mean over valid frames; the loss of ED-TCN and
  MS-TCN (Lea et al. 2017; Farha & Gall 2019 eq. 4).
* :func:`class_soft_localization_loss`: L_SLL of SoftLoc eq. 2 on class distributions,
  Σ_t (Φ_σ ∗ p_c − Φ_σ ∗ y_c)² per (batch, class) row, mean over rows: every class channel of
  the prediction and of the one-hot labels is smoothed in time with the same Gaussian, so a
  boundary predicted a few seconds away from a (possibly misaligned) labelled boundary costs
  little. Limits: σ = 0 gives the Brier score Σ_c (p_c − y_c)²; σ -> ∞ gives 0 (SoftLoc eq. 6).
  With ``distance="log"`` and σ = 0 it is Σ_c BCE(p_c, y_c) = CE + Σ_{c≠y} −log(1 − p_c)
  (SoftLoc eq. 5 applied to each class channel; >= the cross-entropy).
* :func:`segment_count_loss`: **L_MC as a count regulariser** (SoftLoc §5.3: "L_MC acts as a
  count-based regularizer, rather than a means for mass convergence"). Here the counted events
  are *segment starts*: class c starts a segment at frame t when c holds at t but not at t − 1.
  Treating frames as independent, the start probability is
  s_c(t) = p_c(t)·(1 − p_c(t − 1)) (s_c(0) = p_c(0)), and the number of segments of class c is
  Poisson-binomial over s_c(1..T) (LoCo eq. 6). L_MC = −mean_{b,c} log Pr(N_c = n_c) with n_c
  the number of labelled segments of c (LoCo eq. 7 / SoftLoc eq. 3, with
  :func:`softloc.counting.count_log_likelihood`). It penalises over-segmentation (flickering
  adds starts) and missed actions, and it is invariant to the misalignment studied (a shift of
  the labels changes no count), so it can regularise without pulling boundaries anywhere.
  Computed in log space from the logits (no probability is ever rounded to 0 or 1), so the
  loss stays finite for confident predictions.
* :func:`segmentation_softloc_loss`: L_SoftLoc = (1 − α)·L_SLL + α·L_MC (SoftLoc eq. 4).
* :func:`truncated_mse_smoothing`: MS-TCN's smoothing term (Farha & Gall 2019 eq. 5-6),
  mean over valid (class, frame) pairs of min(|log p_c(t) − log p_c(t − 1)|, τ)², with the
  gradient stopped through p(t − 1). Every module takes it as an option (``smoothing_weight``
  λ; MS-TCN uses λ = 0.15, τ = 4).

Modules (:class:`SegmentationCELoss`, :class:`SegmentationSLLLoss`,
:class:`SegmentationSoftLocLoss`) follow the ``EventLoss`` contract of
``softloc.losses.registry``: attribute ``requires`` (the batch keys they read) and
``forward(logits, *, targets=None, counts=None, lengths=None, step=0)``; the SoftLoc module
runs its α schedule from ``step``.

:data:`SEGMENTATION_LOSSES` and :func:`build_segmentation_loss` name them for the experiment
(``softloc experiment segmentation --losses ce,sll,softloc``); they stay out of the event-loss
registry of ``softloc.losses.registry`` because their targets are class indices. L_MC on segment
starts and the shared input checks live in :mod:`softloc.losses.segment_counts` (re-exported).

References:
    SoftLoc: Robust Temporal Localization under Label Misalignment. ICLR 2020 submission, §5.3.
    Lea et al. Temporal Convolutional Networks for Action Segmentation and Detection. CVPR 2017.
    Farha, Gall. MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation.
    CVPR 2019.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from softloc._checks import (
    check_choice,
    check_counts,
    check_int,
    check_lengths,
    check_real,
    check_reduction,
    check_sigma,
    check_unit_float,
)
from softloc.losses.segment_counts import (
    _check_class_targets,
    _check_logits,
    _count_term,
    _frame_mask,
    segment_count_loss,
    segment_counts,
    segment_start_logits,
)
from softloc.losses.softloc import AlphaSchedule, soft_localization_loss

__all__ = [
    "SEGMENTATION_LOSSES",
    "SegmentationCELoss",
    "SegmentationSLLLoss",
    "SegmentationSoftLocLoss",
    "build_segmentation_loss",
    "class_soft_localization_loss",
    "frame_cross_entropy",
    "segment_count_loss",
    "segment_counts",
    "segment_start_logits",
    "segmentation_softloc_loss",
    "truncated_mse_smoothing",
]

_REDUCTIONS = ("mean", "sum", "none")
_DISTANCES = ("squared", "log")


# --------------------------------------------------------------------------------------------
# validation and shared internals
# --------------------------------------------------------------------------------------------


def _check_distance(fn: str, distance: object) -> str:
    if distance not in _DISTANCES:
        raise ValueError(f"{fn}: `distance` must be one of {_DISTANCES}, got {distance!r}")
    return str(distance)


def _check_module_sigma(fn: str, sigma: object) -> float:
    value = check_sigma(fn, sigma, None)
    if math.isinf(value):
        raise ValueError(f"{fn}: `sigma` must be finite, got inf")
    return float(value)


def _n_valid(lengths: torch.Tensor | None, b: int, t: int) -> int:
    return b * t if lengths is None else int(lengths.sum())


def _reduce_frames(per_frame: torch.Tensor, lengths: torch.Tensor | None,
                   reduction: str) -> torch.Tensor:
    """Reduce a (S, B, T) per-frame loss that is zero on padding: sum over stages, then frames."""
    if reduction == "none":
        return per_frame.sum(0)  # (S, B, T) -> (B, T)
    total = per_frame.sum()
    if reduction == "sum":
        return total
    _, b, t = per_frame.shape
    return total / _n_valid(lengths, b, t)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the invalid frames of a (S, B, T) per-frame loss; ``mask`` is (B, T)."""
    return x if mask is None else x * mask.to(x.dtype)


# --------------------------------------------------------------------------------------------
# Cross-entropy and L_SLL
# --------------------------------------------------------------------------------------------


def frame_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    lengths: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Per-frame cross-entropy −log p_{y(t)}(t) (Lea et al. 2017; MS-TCN eq. 4).

    Args:
        logits: class scores ``(batch, class, time)``, or ``(stage, batch, class, time)``
            (summed over stages).
        targets: class indices ``(batch, time)``.
        lengths: valid frames per item; padding never contributes.
        reduction: ``"mean"`` (over valid frames of the batch, per stage, summed over stages),
            ``"sum"``, or ``"none"`` (``(batch, time)``, 0 on padding).

    Returns:
        A scalar, or ``(batch, time)``.

    Example:
        >>> logits = torch.zeros(1, 4, 3)
        >>> round(float(frame_cross_entropy(logits, torch.zeros(1, 3, dtype=torch.long))), 4)
        1.3863
    """
    fn = "frame_cross_entropy"
    z = _check_logits(fn, logits)
    y = _check_class_targets(fn, targets, z.shape)
    check_lengths(fn, lengths, z.shape[1], z.shape[3])
    check_reduction(fn, reduction, _REDUCTIONS)
    return _reduce_frames(_ce_per_frame(z, y, lengths), lengths, reduction)


def _ce_per_frame(z: torch.Tensor, y: torch.Tensor, lengths) -> torch.Tensor:
    """(S, B, T) −log p_y(t), zero on padding."""
    s, b, c, t = z.shape
    per = F.cross_entropy(z.reshape(s * b, c, t), y.repeat(s, 1), reduction="none")  # (S*B, T)
    return _masked(per.reshape(s, b, t), _frame_mask(lengths, b, t, z.device))


def _one_hot(y: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(y, n_classes).to(dtype).movedim(-1, 1)  # (B, T) -> (B, C, T)


def _sll_elem(z: torch.Tensor, y: torch.Tensor, sigma, lengths, distance: str,
              truncate: float) -> torch.Tensor:
    """(S, B, C, T) L(Φ∗p_c(t), Φ∗y_c(t)), zero on padding."""
    s, b, c, t = z.shape
    probs = torch.softmax(z, dim=2).reshape(s * b, c, t)  # (S, B, C, T) -> (S*B, C, T)
    onehot = _one_hot(y, c, probs.dtype).repeat(s, 1, 1)  # (B, C, T) -> (S*B, C, T)
    rep = None if lengths is None else lengths.repeat(s)
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.repeat(s)
    elem = soft_localization_loss(probs, onehot, sigma, lengths=rep, reduction="none",
                                  distance=distance, truncate=truncate)  # (S*B, C, T)
    return elem.reshape(s, b, c, t)


def _sll_rows(elem: torch.Tensor) -> torch.Tensor:
    """Mean over (batch, class) rows of the sum over time, summed over stages."""
    return elem.sum(dim=(0, 3)).mean()  # (S, B, C, T) -> (B, C) -> scalar


def class_soft_localization_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    lengths: torch.Tensor | None = None,
    reduction: str = "mean",
    distance: str = "squared",
    truncate: float = 4.0,
) -> torch.Tensor:
    """L_SLL on per-frame class distributions (SoftLoc eq. 2, §5.3).

    Every class channel of p(t) = softmax(logits) and of the one-hot labels is smoothed with
    the same normalised Gaussian Φ_σ (zero padding beyond the valid frames,
    :func:`softloc.losses.soft_localization_loss`) and compared point-wise:
    L(Φ∗p_c(t), Φ∗y_c(t)). As the event SoftLoc loss (its ``"mean"`` reduction), each
    (batch, class) row is *summed* over time and the rows are averaged, so L_SLL and L_MC (one
    value per row) are on the same per-sequence scale in :func:`segmentation_softloc_loss`.

    Args:
        logits: class scores ``(batch, class, time)`` or ``(stage, batch, class, time)``.
        targets: class indices ``(batch, time)``.
        sigma: softness in frames (>= 0; ``inf`` gives 0), or ``(batch,)`` per item.
        lengths: valid frames per item.
        reduction: ``"mean"`` (mean over (batch, class) rows of the sum over valid frames,
            summed over stages), ``"sum"`` or ``"none"`` (``(batch, class, time)``).
        distance: ``"squared"`` (default, as every SoftLoc experiment) or ``"log"``
            (−log(1 − |·|), SoftLoc eq. 5).
        truncate: kernel radius in standard deviations.

    Returns:
        A scalar, or ``(batch, class, time)``.

    Limits (tested): σ = 0 gives the Brier score Σ_c (p_c − y_c)² of each frame; with
    ``distance="log"`` Σ_c BCE(p_c, y_c); σ -> ∞ gives 0.
    """
    fn = "class_soft_localization_loss"
    z = _check_logits(fn, logits)
    y = _check_class_targets(fn, targets, z.shape)
    sigma = check_sigma(fn, sigma, z.shape[1])
    check_lengths(fn, lengths, z.shape[1], z.shape[3])
    check_reduction(fn, reduction, _REDUCTIONS)
    _check_distance(fn, distance)
    truncate = check_real(fn, "truncate", truncate, positive=True)
    elem = _sll_elem(z, y, sigma, lengths, distance, truncate)
    if reduction == "none":
        return elem.sum(0)
    return elem.sum() if reduction == "sum" else _sll_rows(elem)


# --------------------------------------------------------------------------------------------
# SoftLoc and the MS-TCN smoothing term
# --------------------------------------------------------------------------------------------


def segmentation_softloc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    alpha: float,
    *,
    k_max: int = 16,
    counts: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    distance: str = "squared",
    truncate: float = 4.0,
) -> torch.Tensor:
    """L_SoftLoc = (1 − α)·L_SLL + α·L_MC for action segmentation (SoftLoc eq. 4, §5.3).

    L_SLL is :func:`class_soft_localization_loss` (mean over rows), L_MC is
    :func:`segment_count_loss` (mean over (batch, class) rows) with target counts from
    ``targets`` (:func:`segment_counts`) unless ``counts`` is given. The term whose weight is 0
    is not computed. Limits: α = 0 is L_SLL; σ -> ∞ leaves α·L_MC (SoftLoc eq. 6).

    Args:
        logits: ``(batch, class, time)`` or ``(stage, batch, class, time)`` (summed).
        targets: class indices ``(batch, time)``.
        sigma: softness in frames (>= 0), or ``(batch,)``.
        alpha: α in [0, 1].
        k_max: absorbing top bin of the count distribution.
        counts: segments per class ``(batch, class)``; default from ``targets``.
        lengths: valid frames per item.
        distance, truncate: as :func:`class_soft_localization_loss`.

    Returns:
        A scalar.
    """
    fn = "segmentation_softloc_loss"
    z = _check_logits(fn, logits)
    y = _check_class_targets(fn, targets, z.shape)
    sigma = check_sigma(fn, sigma, z.shape[1])
    alpha = check_unit_float(fn, "alpha", alpha)
    k_max = check_int(fn, "k_max", k_max, minimum=1)
    check_lengths(fn, lengths, z.shape[1], z.shape[3])
    if counts is not None:
        counts = check_counts(fn, counts, (z.shape[1], z.shape[2]))
    _check_distance(fn, distance)
    truncate = check_real(fn, "truncate", truncate, positive=True)
    return _softloc(z, y, sigma, alpha, k_max, counts, lengths, distance, truncate)


def _softloc(z, y, sigma, alpha, k_max, counts, lengths, distance, truncate) -> torch.Tensor:
    total = z.new_zeros(())
    if alpha < 1:
        sll = _sll_rows(_sll_elem(z, y, sigma, lengths, distance, truncate))
        total = total + (1 - alpha) * sll
    if alpha > 0:
        if counts is None:
            counts = segment_counts(y, z.shape[2], lengths=lengths)
        total = total + alpha * _count_term(z, counts, k_max, lengths, "mean")
    return total


def truncated_mse_smoothing(
    logits: torch.Tensor,
    *,
    lengths: torch.Tensor | None = None,
    tau: float = 4.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """MS-TCN's smoothing loss (Farha & Gall 2019 eq. 5-6).

    Δ_c(t) = |log p_c(t) − log p_c(t − 1)| with the gradient stopped through p(t − 1); the loss
    is min(Δ, τ)² averaged over the valid (class, frame) pairs t >= 1 (both frames valid), per
    stage, summed over stages.

    Args:
        logits: ``(batch, class, time)`` or ``(stage, batch, class, time)``.
        lengths: valid frames per item.
        tau: truncation threshold τ (> 0; the paper uses 4).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(batch, class, time - 1)``).

    Returns:
        A scalar, or ``(batch, class, time - 1)``.
    """
    fn = "truncated_mse_smoothing"
    z = _check_logits(fn, logits)
    s, b, c, t = z.shape
    check_lengths(fn, lengths, b, t)
    tau = check_real(fn, "tau", tau, positive=True)
    check_reduction(fn, reduction, _REDUCTIONS)
    log_p = torch.log_softmax(z, dim=2)
    delta = (log_p[..., 1:] - log_p[..., :-1].detach()).abs()  # (S, B, C, T-1)
    elem = delta.clamp(max=tau).square()
    if lengths is not None:
        pair_ok = torch.arange(1, t, device=z.device)[None, :] < lengths.to(z.device)[:, None]
        elem = elem * pair_ok[None, :, None, :].to(elem.dtype)  # (B, T-1) -> (1, B, 1, T-1)
    if reduction == "none":
        return elem.sum(0)
    if reduction == "sum":
        return elem.sum()
    n_pairs = b * (t - 1) if lengths is None else int((lengths - 1).clamp(min=0).sum())
    return elem.sum() / (c * n_pairs)


# --------------------------------------------------------------------------------------------
# Modules (EventLoss contract)
# --------------------------------------------------------------------------------------------


class _SegmentationLoss(nn.Module):
    """Shared plumbing: targets check, the optional MS-TCN smoothing term."""

    requires: frozenset[str] = frozenset({"targets"})
    _name = "SegmentationLoss"

    def __init__(self, smoothing_weight: float, smoothing_tau: float) -> None:
        super().__init__()
        self.smoothing_weight = check_real(self._name, "smoothing_weight", smoothing_weight,
                                           minimum=0.0)
        self.smoothing_tau = check_real(self._name, "smoothing_tau", smoothing_tau,
                                        positive=True)

    def _inputs(self, logits, targets, lengths):
        fn = self._name
        z = _check_logits(fn, logits)
        y = _check_class_targets(fn, targets, z.shape)
        check_lengths(fn, lengths, z.shape[1], z.shape[3])
        return z, y

    def _smoothing(self, z: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if self.smoothing_weight == 0 or z.shape[-1] < 2:
            return z.new_zeros(())
        return self.smoothing_weight * truncated_mse_smoothing(
            z, lengths=lengths, tau=self.smoothing_tau)

    def extra_repr(self) -> str:
        return f"smoothing_weight={self.smoothing_weight:g}, smoothing_tau={self.smoothing_tau:g}"


class SegmentationCELoss(_SegmentationLoss):
    """Per-frame cross-entropy (:func:`frame_cross_entropy`), + λ·T-MSE when asked.

    Args:
        smoothing_weight: λ of :func:`truncated_mse_smoothing` (0 = off; MS-TCN: 0.15).
        smoothing_tau: its τ.
    """

    _name = "SegmentationCELoss"

    def __init__(self, *, smoothing_weight: float = 0.0, smoothing_tau: float = 4.0) -> None:
        super().__init__(smoothing_weight, smoothing_tau)

    def forward(self, logits: torch.Tensor, *, targets: torch.Tensor | None = None,
                counts: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
                step: int = 0) -> torch.Tensor:
        """Mean loss of the batch; ``counts`` and ``step`` are unused."""
        z, y = self._inputs(logits, targets, lengths)
        ce = _reduce_frames(_ce_per_frame(z, y, lengths), lengths, "mean")
        return ce + self._smoothing(z, lengths)


class SegmentationSLLLoss(_SegmentationLoss):
    """L_SLL on class distributions (:func:`class_soft_localization_loss`), + λ·T-MSE.

    Args:
        sigma: softness in frames (finite, >= 0); SoftLoc §5.3 uses 7 s.
        distance: ``"squared"`` or ``"log"``.
        truncate: kernel radius in standard deviations.
        smoothing_weight, smoothing_tau: the optional MS-TCN smoothing term.
    """

    _name = "SegmentationSLLLoss"

    def __init__(self, sigma: float, *, distance: str = "squared", truncate: float = 4.0,
                 smoothing_weight: float = 0.0, smoothing_tau: float = 4.0) -> None:
        super().__init__(smoothing_weight, smoothing_tau)
        self.sigma = _check_module_sigma(self._name, sigma)
        self.distance = _check_distance(self._name, distance)
        self.truncate = check_real(self._name, "truncate", truncate, positive=True)

    def forward(self, logits: torch.Tensor, *, targets: torch.Tensor | None = None,
                counts: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
                step: int = 0) -> torch.Tensor:
        """Mean loss of the batch; ``counts`` and ``step`` are unused."""
        z, y = self._inputs(logits, targets, lengths)
        elem = _sll_elem(z, y, self.sigma, lengths, self.distance, self.truncate)
        return _sll_rows(elem) + self._smoothing(z, lengths)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, distance={self.distance!r}, " + super().extra_repr()


class SegmentationSoftLocLoss(_SegmentationLoss):
    """L_SoftLoc = (1 − α(step))·L_SLL + α(step)·L_MC (:func:`segmentation_softloc_loss`).

    Counts are the segments per class of ``targets`` unless ``counts`` is passed.

    Args:
        sigma: softness in frames (finite, >= 0).
        alpha: a constant α in [0, 1] or an :class:`softloc.losses.AlphaSchedule` (run from
            the ``step`` argument of :meth:`forward`).
        k_max: absorbing top bin of the count distribution.
        distance, truncate: as :class:`SegmentationSLLLoss`.
        smoothing_weight, smoothing_tau: the optional MS-TCN smoothing term.
    """

    _name = "SegmentationSoftLocLoss"

    def __init__(self, sigma: float, *, alpha: float | AlphaSchedule = 0.1, k_max: int = 16,
                 distance: str = "squared", truncate: float = 4.0,
                 smoothing_weight: float = 0.0, smoothing_tau: float = 4.0) -> None:
        super().__init__(smoothing_weight, smoothing_tau)
        fn = self._name
        self.sigma = _check_module_sigma(fn, sigma)
        if not isinstance(alpha, AlphaSchedule):
            alpha = AlphaSchedule.constant(check_unit_float(fn, "alpha", alpha))
        self.alpha = alpha
        self.k_max = check_int(fn, "k_max", k_max, minimum=1)
        self.distance = _check_distance(fn, distance)
        self.truncate = check_real(fn, "truncate", truncate, positive=True)

    def forward(self, logits: torch.Tensor, *, targets: torch.Tensor | None = None,
                counts: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
                step: int = 0) -> torch.Tensor:
        """Mean loss of the batch at optimiser step ``step`` (drives α)."""
        z, y = self._inputs(logits, targets, lengths)
        if counts is not None:
            counts = check_counts(self._name, counts, (z.shape[1], z.shape[2]))
        step = check_int(self._name, "step", step, minimum=0)
        loss = _softloc(z, y, self.sigma, self.alpha(step), self.k_max, counts, lengths,
                        self.distance, self.truncate)
        return loss + self._smoothing(z, lengths)

    def extra_repr(self) -> str:
        return (f"sigma={self.sigma:g}, alpha={self.alpha}, k_max={self.k_max}, "
                f"distance={self.distance!r}, " + super().extra_repr())


# --------------------------------------------------------------------------------------------
# The segmentation loss table (kept apart from the event-loss registry: targets are classes)
# --------------------------------------------------------------------------------------------

#: Segmentation losses by name: ``ce`` (:class:`SegmentationCELoss`), ``sll``
#: (:class:`SegmentationSLLLoss`), ``softloc`` (:class:`SegmentationSoftLocLoss`).
SEGMENTATION_LOSSES: tuple[str, ...] = ("ce", "sll", "softloc")


def build_segmentation_loss(
    name: str,
    *,
    frame_rate: float,
    softness_s: float = 7.0,
    alpha: float | AlphaSchedule = 0.1,
    k_max: int = 16,
    distance: str = "squared",
    smoothing_weight: float = 0.0,
    smoothing_tau: float = 4.0,
) -> _SegmentationLoss:
    """The segmentation loss ``name`` of :data:`SEGMENTATION_LOSSES` (SoftLoc §5.3).

    Args:
        name: ``"ce"``, ``"sll"`` or ``"softloc"`` (underscores/case normalised).
        frame_rate: frames per second of the logits (the softness is converted with it).
        softness_s: softness σ in seconds (SoftLoc §5.3: 7 s); unused by ``ce``.
        alpha: α of L_SoftLoc (constant or an :class:`AlphaSchedule`); only ``softloc``.
        k_max: top count bin of L_MC; only ``softloc``.
        distance: ``"squared"`` or ``"log"`` (SoftLoc eq. 5); ``sll`` and ``softloc``.
        smoothing_weight, smoothing_tau: MS-TCN's T-MSE term (λ, τ), every loss.

    Returns:
        A loss module with the ``EventLoss`` interface (``requires = {"targets"}``).

    Raises:
        ValueError: an unknown name or an invalid setting (named).
    """
    fn = "build_segmentation_loss"
    key = str(name).strip().lower().replace("_", "-")
    check_choice(fn, "name", key, SEGMENTATION_LOSSES)
    rate = check_real(fn, "frame_rate", frame_rate, positive=True)
    smooth = {"smoothing_weight": smoothing_weight, "smoothing_tau": smoothing_tau}
    if key == "ce":
        return SegmentationCELoss(**smooth)
    sigma = check_real(fn, "softness_s", softness_s, minimum=0.0) * rate
    if key == "sll":
        return SegmentationSLLLoss(sigma, distance=distance, **smooth)
    return SegmentationSoftLocLoss(sigma, alpha=alpha, k_max=k_max, distance=distance, **smooth)
