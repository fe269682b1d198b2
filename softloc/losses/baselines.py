"""Baselines of the robustness study: frame-wise cross-entropy, label smoothing, bootstrapping.

* :func:`bce_loss` / :class:`FrameBCELoss`: frame-wise binary cross-entropy, the fully
  supervised reference (SoftLoc eq. 5 at α = 0, σ = 0).
* :func:`smoothed_targets` and :func:`one_sided_loss` / :class:`OneSidedLoss`: the "classical"
  label-smoothing heuristic (only the labels are smoothed; SoftLoc §3).
* :func:`bootstrap_loss` / :class:`BootstrapLoss`: soft bootstrapping (Reed et al. 2014).

Conventions as in :mod:`softloc.losses.loco` and :mod:`softloc.losses.softloc`. The
cross-entropies take ``logits=True`` (numerically preferable); the squared-error
:func:`one_sided_loss` is bounded and takes probabilities.

References:
    Reed et al. Training Deep Neural Networks on Noisy Labels with Bootstrapping. 2014.
"""

from __future__ import annotations

import torch
from torch import nn

from softloc._checks import (
    check_bool,
    check_choice,
    check_finite_sigma,
    check_float,
    check_lengths,
    check_ndim,
    check_pos_weight,
    check_pos_weight_scalar,
    check_reduction,
    check_targets,
    check_tensor,
    check_truncate,
    check_unit_float,
)
from softloc.losses._core import (
    LAYOUT,
    TIME_REDUCTIONS,
    bce_elementwise,
    check_input,
    filter_rows,
    kernel_taps,
    masked,
    reduce_time,
    split_scores,
    time_mask,
)

__all__ = [
    "BootstrapLoss",
    "FrameBCELoss",
    "OneSidedLoss",
    "bce_loss",
    "bootstrap_loss",
    "one_sided_loss",
    "smoothed_targets",
]


def bce_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    lengths: torch.Tensor | None = None,
    pos_weight: float | torch.Tensor | None = None,
    reduction: str = "mean",
    logits: bool = False,
) -> torch.Tensor:
    """Frame-wise binary cross-entropy, the fully supervised baseline (SoftLoc eq. 5 at α = 0).

    −[w·y log p + (1 − y) log(1 − p)] per element, log terms floored at −100 as in
    ``torch.nn.functional.binary_cross_entropy`` (with ``logits=True``: computed exactly from
    the logits, as ``binary_cross_entropy_with_logits``).

    Args:
        probs: event probabilities p(t) in [0, 1], or pre-sigmoid logits when ``logits=True``.
        targets: label series in [0, 1].
        lengths: valid steps per item; later steps contribute nothing.
        pos_weight: weight w of the positive term, a float or a ``(class,)`` tensor (>= 0);
            default 1.
        reduction: ``"mean"`` (default, over valid elements), ``"classes"`` (sum over batch,
            class and time divided by the number of classes: the scaling of SoftLoc eq. 5, the
            σ = 0, α = 0 limit of :func:`softloc_loss`), ``"sum"`` or ``"none"``
            (``(batch, class, time)``, zero beyond ``lengths``).
        logits: ``probs`` holds logits.

    Returns:
        A scalar, or ``(batch, class, time)`` for ``reduction="none"``.

    Raises:
        TypeError: non-tensor inputs or non-float ``probs``.
        ValueError: bad shapes, values outside [0, 1], bad ``pos_weight``, ``lengths`` or
            ``reduction``.
    """
    fn = "bce_loss"
    x = check_input(fn, probs, logits)
    targets = check_targets(fn, targets, tuple(x.shape))
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    weight = check_pos_weight(fn, pos_weight, x.shape[1])
    check_reduction(fn, reduction, TIME_REDUCTIONS)
    return bce_terms(x, logits, targets, lengths, weight, reduction)


def bce_terms(
    x: torch.Tensor,
    logits: bool,
    targets: torch.Tensor,
    lengths: torch.Tensor | None,
    pos_weight: torch.Tensor | None,
    reduction: str,
) -> torch.Tensor:
    """:func:`bce_loss` of validated inputs (no checks)."""
    probs, z = split_scores(x, logits)
    elem = bce_elementwise(probs, z, targets.to(probs.dtype), pos_weight)
    return reduce_time(masked(elem, time_mask(lengths, probs)), lengths, reduction)


def smoothed_targets(
    targets: torch.Tensor,
    sigma: float,
    *,
    lengths: torch.Tensor | None = None,
    normalize: str = "sum",
    truncate: float = 4.0,
) -> torch.Tensor:
    """Label smoothing ("target smearing"): Φ_σ ∗ y, the target of the classical baseline.

    Args:
        targets: label series in [0, 1].
        sigma: softness in frames (finite, >= 0).
        lengths: valid steps; labels beyond are dropped and the result is zero there.
        normalize: ``"sum"`` (default): the kernel sums to 1, as in every original one-sided
            baseline (an isolated event keeps unit mass); ``"peak"``: the kernel peaks at 1 (a
            heat map in [0, 1] for cross-entropy training), clamped to 1 where events overlap.
        truncate: kernel radius in standard deviations.

    Returns:
        The smoothed series, shape ``(batch, class, time)``.

    Raises:
        TypeError, ValueError: as :func:`soft_localization_loss`; unknown ``normalize``.
    """
    fn = "smoothed_targets"
    targets = check_tensor(fn, "targets", targets)
    check_ndim(fn, "targets", targets, 3, LAYOUT)
    check_float(fn, "targets", targets)
    check_targets(fn, targets, tuple(targets.shape))
    sigma = check_finite_sigma(fn, sigma)
    check_lengths(fn, lengths, targets.shape[0], targets.shape[2])
    check_choice(fn, "normalize", normalize, ("sum", "peak"))
    truncate = check_truncate(fn, truncate)
    return smooth_targets(targets, sigma, lengths, normalize, truncate)


def smooth_targets(
    targets: torch.Tensor,
    sigma: float,
    lengths: torch.Tensor | None,
    normalize: str,
    truncate: float,
) -> torch.Tensor:
    """:func:`smoothed_targets` of validated inputs (no checks)."""
    mask = time_mask(lengths, targets)
    kernel = torch.from_numpy(kernel_taps(sigma, truncate))
    if normalize == "peak":
        kernel = kernel / kernel.max()
    out = masked(filter_rows(masked(targets, mask), kernel), mask)
    return out.clamp(max=1.0) if normalize == "peak" else out


def one_sided_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float,
    *,
    lengths: torch.Tensor | None = None,
    reduction: str = "classes",
    truncate: float = 4.0,
) -> torch.Tensor:
    """The classical one-sided baseline: Σ (p − Φ_σ ∗ y)², only the labels smoothed.

    SoftLoc §3 ("classical heuristic"); the model learns a heat map and needs peak picking at
    inference. The kernel sums to 1 and the error is squared, as in the authors' one-sided
    baselines (facts §4.3): with ``reduction="classes"`` this is the piano version
    Σ_{b,c,t}(Φ∗y − p)² / C; ``"mean"`` averages over valid elements (the golf version up to a
    constant factor C).

    Args:
        probs: event probabilities p(t) in [0, 1].
        targets: label series in [0, 1].
        sigma: softness in frames (finite, >= 0).
        lengths: valid steps per item.
        reduction: ``"classes"`` (default), ``"mean"``, ``"sum"`` or ``"none"``
            (``(batch, class, time)``).
        truncate: kernel radius in standard deviations.

    Returns:
        A scalar, or ``(batch, class, time)`` for ``reduction="none"``.

    Raises:
        TypeError, ValueError: as :func:`soft_localization_loss`.

    Notes:
        The time-series original used an even-length kernel that advanced the target by one step;
        our kernels are odd, so there is no shift.
    """
    fn = "one_sided_loss"
    probs = check_input(fn, probs, False)
    targets = check_targets(fn, targets, tuple(probs.shape))
    sigma = check_finite_sigma(fn, sigma)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    check_reduction(fn, reduction, TIME_REDUCTIONS)
    truncate = check_truncate(fn, truncate)
    return one_sided_terms(probs, targets, sigma, lengths, reduction, truncate)


def one_sided_terms(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float,
    lengths: torch.Tensor | None,
    reduction: str,
    truncate: float,
) -> torch.Tensor:
    """:func:`one_sided_loss` of validated inputs (no checks)."""
    smooth = smooth_targets(targets.to(probs.dtype), sigma, lengths, "sum", truncate)
    elem = masked((probs - smooth).square(), time_mask(lengths, probs))
    return reduce_time(elem, lengths, reduction)


def bootstrap_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    beta: float = 0.95,
    lengths: torch.Tensor | None = None,
    reduction: str = "mean",
    logits: bool = False,
) -> torch.Tensor:
    """Soft bootstrapping (Reed et al. 2014): cross-entropy against β·y + (1 − β)·p.

    Equivalent to β·BCE(p, y) + (1 − β)·H(p), cross-entropy plus an entropy penalty that lets
    the model keep confident predictions that disagree with noisy labels. The gradient flows
    through the p inside the target, as in the paper's soft variant.

    Args:
        probs: event probabilities p(t) in [0, 1], or pre-sigmoid logits when ``logits=True``.
        targets: label series in [0, 1].
        beta: weight β of the given labels in [0, 1] (default 0.95, Reed et al.'s soft setting).
        lengths: valid steps per item.
        reduction: ``"mean"`` (default, over valid elements), ``"classes"`` (sum / classes, as
            :func:`bce_loss`), ``"sum"`` or ``"none"``.
        logits: ``probs`` holds logits.

    Returns:
        A scalar, or ``(batch, class, time)`` for ``reduction="none"``.

    Raises:
        TypeError, ValueError: as :func:`bce_loss`; ``beta`` outside [0, 1].
    """
    fn = "bootstrap_loss"
    x = check_input(fn, probs, logits)
    targets = check_targets(fn, targets, tuple(x.shape))
    beta = check_unit_float(fn, "beta", beta)
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    check_reduction(fn, reduction, TIME_REDUCTIONS)
    return bootstrap_terms(x, logits, targets, beta, lengths, reduction)


def bootstrap_terms(
    x: torch.Tensor,
    logits: bool,
    targets: torch.Tensor,
    beta: float,
    lengths: torch.Tensor | None,
    reduction: str,
) -> torch.Tensor:
    """:func:`bootstrap_loss` of validated inputs (no checks)."""
    probs, z = split_scores(x, logits)
    mixed = beta * targets.to(probs.dtype) + (1 - beta) * probs
    elem = masked(bce_elementwise(probs, z, mixed, None), time_mask(lengths, probs))
    return reduce_time(elem, lengths, reduction)


class FrameBCELoss(nn.Module):
    """Module form of :func:`bce_loss`; a tensor ``pos_weight`` is kept as a buffer.

    Args:
        pos_weight: weight of the positive term, a float or a ``(class,)`` tensor (>= 0).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        logits: :meth:`forward` receives pre-sigmoid logits instead of probabilities.
    """

    pos_weight: torch.Tensor | None

    def __init__(
        self,
        *,
        pos_weight: float | torch.Tensor | None = None,
        reduction: str = "mean",
        logits: bool = False,
    ) -> None:
        super().__init__()
        check_reduction("FrameBCELoss", reduction, TIME_REDUCTIONS)
        self.reduction = reduction
        self.logits = check_bool("FrameBCELoss", "logits", logits)
        self.pos_weight_value: float | None = None
        if isinstance(pos_weight, torch.Tensor):
            self.register_buffer("pos_weight", pos_weight)
        else:
            self.register_buffer("pos_weight", None)
            if pos_weight is not None:
                self.pos_weight_value = check_pos_weight_scalar("FrameBCELoss", pos_weight)

    def forward(
        self, probs: torch.Tensor, targets: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        weight = self.pos_weight if self.pos_weight is not None else self.pos_weight_value
        return bce_loss(
            probs,
            targets,
            lengths=lengths,
            pos_weight=weight,
            reduction=self.reduction,
            logits=self.logits,
        )


class OneSidedLoss(nn.Module):
    """Module form of :func:`one_sided_loss`."""

    def __init__(self, sigma: float, *, reduction: str = "classes", truncate: float = 4.0) -> None:
        super().__init__()
        check_finite_sigma("OneSidedLoss", sigma)
        check_reduction("OneSidedLoss", reduction, TIME_REDUCTIONS)
        truncate = check_truncate("OneSidedLoss", truncate)
        self.sigma = float(sigma)
        self.reduction = reduction
        self.truncate = float(truncate)

    def forward(
        self, probs: torch.Tensor, targets: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        return one_sided_loss(
            probs,
            targets,
            self.sigma,
            lengths=lengths,
            reduction=self.reduction,
            truncate=self.truncate,
        )


class BootstrapLoss(nn.Module):
    """Module form of :func:`bootstrap_loss` (``beta``, ``reduction``, ``logits`` as there)."""

    def __init__(
        self, *, beta: float = 0.95, reduction: str = "mean", logits: bool = False
    ) -> None:
        super().__init__()
        self.beta = check_unit_float("BootstrapLoss", "beta", beta)
        check_reduction("BootstrapLoss", reduction, TIME_REDUCTIONS)
        self.reduction = reduction
        self.logits = check_bool("BootstrapLoss", "logits", logits)

    def forward(
        self, probs: torch.Tensor, targets: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        return bootstrap_loss(
            probs,
            targets,
            beta=self.beta,
            lengths=lengths,
            reduction=self.reduction,
            logits=self.logits,
        )
