"""Soft localization: the Gaussian filter Φ_σ, L_SLL, and SoftLoc's mix with the count loss.

* :func:`gaussian_kernel`: the softness filter Φ_σ (scipy's ``gaussian_filter`` taps).
* :func:`soft_localization_loss` / :class:`SoftLocalizationLoss`: L_SLL (SoftLoc eq. 2, 5).
* :func:`softloc_loss` / :class:`SoftLocLoss` with :class:`AlphaSchedule`: (1 − α)·L_SLL + α·L_MC
  (SoftLoc eq. 3-4; limits eq. 5-6).

Conventions as in :mod:`softloc.losses.loco`; ``targets`` ``(batch, class, time)`` are label
series, 1 at frames holding an annotated event, else 0. Softness ``sigma`` is the standard
deviation of the Gaussian in *frames*; convert from milliseconds with
:func:`softloc.timebase.ms_to_frames` (``sigma = ms_to_frames(100, 200.0)`` = 20 frames, the
piano setting). The squared-error SLL is bounded and takes probabilities; :func:`softloc_loss`
takes ``logits=True`` for its count term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from softloc._checks import (
    check_bool,
    check_choice,
    check_counts,
    check_finite_sigma,
    check_lengths,
    check_positive_int,
    check_reduction,
    check_sigma,
    check_targets,
    check_tensor,
    check_truncate,
    check_unit_float,
)
from softloc.losses._core import (
    DISTANCES,
    TIME_REDUCTIONS,
    check_input,
    filter_per_item,
    filter_rows,
    kernel_taps,
    masked,
    pointwise,
    reduce_rows,
    reduce_time,
    time_mask,
)
from softloc.losses.loco import count_nll
from softloc.timebase import ms_to_frames

__all__ = [
    "AlphaSchedule",
    "SoftLocLoss",
    "SoftLocalizationLoss",
    "gaussian_kernel",
    "soft_localization_loss",
    "softloc_loss",
    "softness_ms_to_sigma",
]


def gaussian_kernel(
    sigma: float,
    *,
    truncate: float = 4.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The normalised 1-D Gaussian filter Φ_σ of SoftLoc eq. 2, as scipy builds it.

    The taps equal ``scipy.ndimage.gaussian_filter`` applied to a centred unit impulse: the
    sampled Gaussian ``exp(-x² / 2σ²)`` on ``x = -r..r`` with ``r = int(truncate·σ + 0.5)``,
    divided by its sum (computed in float64, then cast). ``sigma = 0`` (or any sigma below
    scipy's 1e-15 cut-off) gives the impulse ``[1.]``.

    Args:
        sigma: standard deviation in frames (fractional allowed, finite, >= 0). From
            milliseconds: ``softness_ms_to_sigma(ms, frame_rate)``.
        truncate: radius in standard deviations (scipy default 4.0).
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        The taps, length ``2r + 1``, summing to 1.

    Raises:
        TypeError: ``sigma`` or ``truncate`` is not a number.
        ValueError: ``sigma`` < 0, NaN or inf; ``truncate`` <= 0.

    Notes:
        The original placed the impulse in a fixed-length vector (L = 201 piano, 151 drums, 21
        golf) with scipy's default ``mode="reflect"``, which folds the tails back when
        ``truncate·σ + 0.5 > L // 2`` (golf, drums with σ > 18.6). We return the unfolded
        kernel: folding is an artefact of the vector length, not part of the loss.
    """
    fn = "gaussian_kernel"
    sigma = check_finite_sigma(fn, sigma)
    truncate = check_truncate(fn, truncate)
    # torch.tensor copies: the cached taps must never be handed out for in-place edits.
    return torch.tensor(kernel_taps(sigma, truncate), dtype=dtype, device=device)


def softness_ms_to_sigma(softness_ms: float, frame_rate: float) -> float:
    """Softness in milliseconds -> sigma in frames (100 ms at 200 frames/s = 20 frames).

    A named alias of :func:`softloc.timebase.ms_to_frames`, the one place for the conversion.
    """
    return ms_to_frames(softness_ms, frame_rate)


def sll_elementwise(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    lengths: torch.Tensor | None,
    distance: str,
    truncate: float,
    kernel: torch.Tensor | None = None,
    noise_kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """(batch, class, time) pointwise L(Φ∗p, Φ∗y), zero beyond ``lengths`` and for sigma = inf.

    With ``noise_kernel`` (Φ_ν taps) the predictions are filtered once more: L(Φ∗Φ_ν∗p, Φ∗y).
    """
    mask = time_mask(lengths, probs)
    if noise_kernel is not None and noise_kernel.numel() > 1:
        probs = filter_rows(masked(probs, mask), noise_kernel)
    # Filtering is linear, so Φ∗p − Φ∗y = Φ∗(p − y): one convolution instead of two.
    diff = masked(probs - targets.to(probs.dtype), mask)
    if isinstance(sigma, torch.Tensor):
        smooth = filter_per_item(diff, sigma, truncate)
    elif math.isinf(sigma):
        smooth = torch.zeros_like(diff)
    else:
        if kernel is None:
            kernel = torch.from_numpy(kernel_taps(sigma, truncate))
        smooth = filter_rows(diff, kernel)
    return masked(pointwise(smooth, distance), mask)


def soft_localization_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    lengths: torch.Tensor | None = None,
    reduction: str = "classes",
    distance: str = "squared",
    truncate: float = 4.0,
) -> torch.Tensor:
    """Soft localization loss L_SLL = Σ L(Φ_σ ∗ p, Φ_σ ∗ y) (SoftLoc eq. 2).

    Both the predictions p(t) and the label series y(t) of every (batch, class) row are filtered
    with the same normalised Gaussian :func:`gaussian_kernel` (zero padding, output of the input
    length) and compared point-wise. A shifted or spread prediction near a label costs little, so
    the loss tolerates misaligned labels; exact impulses on the labels cost nothing.

    Args:
        probs: event probabilities p(t) in [0, 1].
        targets: label series, 1 at event frames (values in [0, 1]).
        sigma: softness σ in frames, >= 0 (0 = no smoothing, the plain point-wise loss), or a
            ``(batch,)`` tensor of per-item softness (SoftLoc §4.4: annotator- or extract-specific
            softness). ``inf`` gives 0 for that item (the σ -> ∞ limit, SoftLoc eq. 6).
        lengths: valid steps per item. Both series are zeroed beyond the length *before*
            filtering and the loss is summed over valid steps only, so padding an item never
            changes its loss.
        reduction: ``"classes"`` (default, the original scaling: sum over batch, class and time
            divided by the number of classes), ``"mean"`` (over valid batch × class × time
            elements), ``"sum"``, or ``"none"`` (the ``(batch, class, time)`` element-wise loss).
        distance: the point-wise measure L: ``"squared"`` (default, used in all SoftLoc
            experiments) or ``"log"``: −log(1 − |Φ∗p − Φ∗y|), which at σ = 0 and binary labels
            is the frame-wise cross-entropy (SoftLoc eq. 5); log terms are floored at −100 like
            ``torch.nn.functional.binary_cross_entropy``.
        truncate: kernel radius in standard deviations (scipy default 4.0).

    Returns:
        A scalar, or ``(batch, class, time)`` for ``reduction="none"``.

    Raises:
        TypeError: non-tensor inputs, non-float ``probs``, non-number ``sigma``.
        ValueError: bad shapes, probabilities or labels outside [0, 1], ``sigma`` < 0, a bad
            ``lengths``, unknown ``reduction`` or ``distance``.

    Shape:
        probs, targets ``(batch, class, time)``; sigma float or ``(batch,)``; lengths ``(batch,)``.

    Notes:
        The original summed the squared error over the padded region too (where its LSTM emitted
        a constant non-zero p). We exclude padding; an unpadded batch is unaffected.
    """
    fn = "soft_localization_loss"
    probs = check_input(fn, probs, False)
    targets = check_targets(fn, targets, tuple(probs.shape))
    sigma = check_sigma(fn, sigma, probs.shape[0])
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    check_reduction(fn, reduction, TIME_REDUCTIONS)
    check_choice(fn, "distance", distance, DISTANCES)
    truncate = check_truncate(fn, truncate)
    elem = sll_elementwise(probs, targets, sigma, lengths, distance, truncate)
    return reduce_time(elem, lengths, reduction)


class SoftLocalizationLoss(nn.Module):
    """Module form of :func:`soft_localization_loss` (SoftLoc eq. 2) with the kernel as a buffer.

    Args:
        sigma: softness in frames (>= 0, finite).
        reduction: ``"classes"`` (default, original scaling), ``"mean"``, ``"sum"``, ``"none"``.
        distance: ``"squared"`` (default) or ``"log"`` (SoftLoc eq. 5).
        truncate: kernel radius in standard deviations.
    """

    kernel: torch.Tensor

    def __init__(
        self,
        sigma: float,
        *,
        reduction: str = "classes",
        distance: str = "squared",
        truncate: float = 4.0,
    ) -> None:
        super().__init__()
        fn = "SoftLocalizationLoss"
        check_finite_sigma(fn, sigma)
        check_reduction(fn, reduction, TIME_REDUCTIONS)
        check_choice(fn, "distance", distance, DISTANCES)
        truncate = check_truncate(fn, truncate)
        self.sigma = float(sigma)
        self.reduction = reduction
        self.distance = distance
        self.truncate = float(truncate)
        self.register_buffer(
            "kernel", gaussian_kernel(sigma, truncate=truncate, dtype=torch.float64)
        )

    def forward(
        self, probs: torch.Tensor, targets: torch.Tensor, *, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        fn = "SoftLocalizationLoss"
        probs = check_input(fn, probs, False)
        targets = check_targets(fn, targets, tuple(probs.shape))
        check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
        elem = sll_elementwise(
            probs, targets, self.sigma, lengths, self.distance, self.truncate, self.kernel
        )
        return reduce_time(elem, lengths, self.reduction)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, reduction={self.reduction!r}, distance={self.distance!r}"


# --------------------------------------------------------------------------------------------
# SoftLoc
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaSchedule:
    """The SoftLoc mixing weight α(step) = clip((step − start) / ramp, floor, ceiling) (eq. 4).

    ``step`` counts completed optimiser steps from 0. α starts at ``floor``, leaves it when
    ``(step − start)/ramp`` exceeds it and saturates at ``ceiling``.

    Args:
        start: step at which the linear ramp would cross 0.
        ramp: steps for the ramp to rise by 1 (> 0).
        floor: lower bound of α in [0, 1].
        ceiling: upper bound of α in [floor, 1].

    Example:
        >>> schedule = AlphaSchedule.drums()
        >>> [schedule(s) for s in (0, 50_000, 80_000, 200_000)]
        [0.2, 0.2, 0.5, 0.9]
    """

    start: float
    ramp: float
    floor: float
    ceiling: float

    def __post_init__(self) -> None:
        fn = "AlphaSchedule"
        for name in ("start", "ramp", "floor", "ceiling"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{fn}: `{name}` must be a number, got {type(value).__name__}")
        if not (self.ramp > 0 and math.isfinite(self.ramp)):
            raise ValueError(f"{fn}: `ramp` must be a finite number of steps > 0, got {self.ramp}")
        if not 0.0 <= self.floor <= self.ceiling <= 1.0:
            raise ValueError(
                f"{fn}: need 0 <= floor <= ceiling <= 1, got floor={self.floor}, "
                f"ceiling={self.ceiling}"
            )

    def __call__(self, step: int) -> float:
        raw = (step - self.start) / self.ramp
        return float(min(max(raw, self.floor), self.ceiling))

    @classmethod
    def constant(cls, alpha: float) -> AlphaSchedule:
        """α fixed at ``alpha`` (e.g. 0.95 for the original time-series experiment)."""
        return cls(start=0, ramp=1, floor=alpha, ceiling=alpha)

    @classmethod
    def drums(cls) -> AlphaSchedule:
        """Original drum schedule: 0.2 until step 50 000, linear to 0.9 at 120 000."""
        return cls(start=30_000, ramp=100_000, floor=0.2, ceiling=0.9)

    @classmethod
    def piano(cls) -> AlphaSchedule:
        """Original SoftLoc piano schedule: 0.2 until step 120 000, 0.6 at 160 000 (the end)."""
        return cls(start=100_000, ramp=100_000, floor=0.2, ceiling=0.9)


def label_counts(fn: str, targets: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Number of labelled frames per (batch, class) row within ``lengths`` (checks that the
    labels are binary: a boundary check of the derived counts)."""
    if targets.numel() and not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError(
            f"{fn}: deriving counts needs binary `targets` (0 or 1 per frame); pass `counts` "
            "explicitly for soft or fractional labels"
        )
    return masked(targets, time_mask(lengths, targets)).sum(-1).round().long()  # (B, C)


def softloc_mix(
    x: torch.Tensor,
    logits: bool,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    alpha: float,
    k_max: int,
    lengths: torch.Tensor | None,
    counts: torch.Tensor | None,
    reduction: str,
    distance: str,
    truncate: float,
    kernel: torch.Tensor | None = None,
    noise_kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 − α)·L_SLL + α·L_MC of validated inputs (SoftLoc eq. 4; no checks).

    ``x`` holds probabilities, or logits when ``logits`` is True (the count term then uses them
    directly, the SLL their sigmoid). ``counts`` may be None when α = 0. ``noise_kernel``: see
    :func:`sll_elementwise` (the noise-aware SLL of ``loss.label_noise_ms``).
    """
    # Skip a term whose weight is 0: saves the recursion and avoids inf * 0 = NaN.
    if alpha > 0:
        assert counts is not None
        mc = count_nll(x, counts, k_max, lengths, logits)  # (B, C)
    else:
        mc = x.new_zeros(x.shape[:2])
    if alpha < 1:
        probs = torch.sigmoid(x) if logits else x
        sll = sll_elementwise(
            probs, targets, sigma, lengths, distance, truncate, kernel, noise_kernel
        )
        sll_rows = sll.sum(-1)  # (B, C, T) -> (B, C)
    else:
        sll_rows = x.new_zeros(x.shape[:2])
    if reduction == "classes":
        # The original scaling: Σ_{b,c,t} SLL / C mixed with the mean count NLL over (b, c).
        return (1 - alpha) * sll_rows.sum() / x.shape[1] + alpha * mc.mean()
    return reduce_rows((1 - alpha) * sll_rows + alpha * mc, reduction)


def softloc_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    alpha: float,
    k_max: int,
    *,
    lengths: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    reduction: str = "classes",
    distance: str = "squared",
    truncate: float = 4.0,
    logits: bool = False,
) -> torch.Tensor:
    """SoftLoc loss (1 − α)·L_SLL + α·L_MC (SoftLoc eq. 4).

    L_SLL is :func:`soft_localization_loss` (eq. 2) and L_MC the LoCo count loss (eq. 3 = LoCo
    eq. 7) with target count = the number of labelled frames of ``targets`` within ``lengths``,
    unless ``counts`` is given.

    Limits (SoftLoc §4.3): σ = 0 with ``distance="log"`` and α = 0 is the frame-wise
    cross-entropy (eq. 5); σ -> ∞ leaves α·L_MC (eq. 6). A ``(batch,)`` tensor ``sigma`` gives
    each item its own softness (§4.4); ``sigma = inf`` for an item keeps only its count term,
    weighted α as in eq. 6 — the way to mix count-only files with timestamped ones.

    Args:
        probs: event probabilities p(t) in [0, 1], or pre-sigmoid logits when ``logits=True``.
        targets: label series, 1 at event frames. For count-only items they are not used by the
            SLL (σ = inf) but still give the count unless ``counts`` is passed.
        sigma: softness in frames (float >= 0, inf allowed) or ``(batch,)`` per-item softness.
        alpha: mixing weight α in [0, 1]; use :class:`AlphaSchedule` for the original schedules.
        k_max: index of the absorbing top count bin (>= 1); larger counts map to it.
        lengths: valid steps per item (see :func:`soft_localization_loss`).
        counts: target counts per (batch, class); default derived from binary ``targets``.
        reduction: ``"classes"`` (default, the original: (1 − α)·Σ_{b,c,t} SLL / C + α·mean_{b,c}
            NLL), ``"mean"`` (mean over (batch, class) rows of (1 − α)·Σ_t SLL + α·NLL; this
            equals ``"classes"`` with the SLL term divided by the batch size, so it does not
            depend on the batch size), ``"sum"`` (sum over rows) or ``"none"`` (``(batch,
            class)`` per-row values).
        distance: point-wise measure of the SLL, ``"squared"`` (default) or ``"log"``.
        truncate: kernel radius in standard deviations.
        logits: ``probs`` holds logits; the count term then uses them directly (see
            :func:`loco_loss`), the SLL uses their sigmoid.

    Returns:
        A scalar, or ``(batch, class)`` for ``reduction="none"``.

    Raises:
        TypeError: non-tensor inputs, non-number ``sigma``/``alpha``, non-int ``k_max``.
        ValueError: bad shapes, values outside [0, 1], ``alpha`` outside [0, 1], ``sigma`` < 0,
            ``k_max`` < 1, negative counts, non-binary ``targets`` without ``counts``, unknown
            ``reduction`` or ``distance``.

    Shape:
        probs, targets ``(batch, class, time)``; counts ``(batch, class)``; lengths ``(batch,)``.

    Notes:
        The term whose weight is 0 (α = 0 or α = 1) is not computed. The original's SLL ran
        over padding and its count was read 3 steps before the end; see :func:`loco_loss` and
        :func:`soft_localization_loss`.
    """
    fn = "softloc_loss"
    x = check_input(fn, probs, logits)
    targets = check_targets(fn, targets, tuple(x.shape))
    sigma = check_sigma(fn, sigma, x.shape[0])
    alpha = check_unit_float(fn, "alpha", alpha)
    k_max = check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, x.shape[0], x.shape[2])
    if counts is None:
        counts = label_counts(fn, targets, lengths)
    else:
        counts = check_counts(fn, counts, tuple(x.shape[:2]))
    check_reduction(fn, reduction, TIME_REDUCTIONS)
    check_choice(fn, "distance", distance, DISTANCES)
    truncate = check_truncate(fn, truncate)
    return softloc_mix(
        x, logits, targets, sigma, alpha, k_max, lengths, counts, reduction, distance, truncate
    )


class SoftLocLoss(nn.Module):
    """Module form of :func:`softloc_loss` (SoftLoc eq. 4) with the kernel and the α schedule.

    The step that drives the α schedule is, in order of precedence, the ``step`` argument of
    :meth:`forward` (pass the trainer's optimiser step, e.g. Lightning's ``self.global_step``),
    else the internal counter ``self.step`` — a buffer, so it is saved in the state dict and a
    resumed run continues the schedule. The counter is advanced by one after each forward call
    in training mode (``module.train()``) when no ``step`` was given; with gradient
    accumulation, pass ``step`` instead, since the counter counts forward calls.

    Args:
        sigma: softness in frames (finite, >= 0).
        k_max: index of the absorbing top count bin (>= 1).
        alpha: a constant α in [0, 1] or an :class:`AlphaSchedule`.
        reduction: ``"classes"`` (default, original scaling), ``"mean"``, ``"sum"`` or ``"none"``.
        distance: ``"squared"`` (default) or ``"log"``.
        truncate: kernel radius in standard deviations.
        logits: :meth:`forward` receives pre-sigmoid logits instead of probabilities.

    Example:
        >>> loss = SoftLocLoss(sigma=20.0, k_max=23, alpha=AlphaSchedule.drums())
        >>> probs, targets = torch.full((2, 3, 50), 0.05), torch.zeros(2, 3, 50)
        >>> value = loss(probs, targets, step=80_000)  # alpha = 0.5
        >>> loss.current_alpha(80_000)
        0.5
    """

    kernel: torch.Tensor
    step: torch.Tensor

    def __init__(
        self,
        sigma: float,
        k_max: int,
        *,
        alpha: float | AlphaSchedule,
        reduction: str = "classes",
        distance: str = "squared",
        truncate: float = 4.0,
        logits: bool = False,
    ) -> None:
        super().__init__()
        fn = "SoftLocLoss"
        check_bool(fn, "logits", logits)
        check_finite_sigma(fn, sigma)
        check_positive_int(fn, "k_max", k_max)
        truncate = check_truncate(fn, truncate)
        if not isinstance(alpha, AlphaSchedule):
            alpha = AlphaSchedule.constant(check_unit_float(fn, "alpha", alpha))
        check_reduction(fn, reduction, TIME_REDUCTIONS)
        check_choice(fn, "distance", distance, DISTANCES)
        self.sigma = float(sigma)
        self.k_max = k_max
        self.alpha = alpha
        self.reduction = reduction
        self.distance = distance
        self.truncate = float(truncate)
        self.logits = logits
        self.register_buffer(
            "kernel", gaussian_kernel(sigma, truncate=truncate, dtype=torch.float64)
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def current_alpha(self, step: int | None = None) -> float:
        """α at ``step`` (default: the internal counter)."""
        return self.alpha(int(self.step) if step is None else step)

    def forward(
        self,
        probs: torch.Tensor,
        targets: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
        step: int | None = None,
        sigma_per_item: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss at ``step`` (default: the internal counter; see the class docstring).

        ``sigma_per_item`` (``(batch,)``, frames, inf = count only) replaces the module's
        softness for this call, for mixed supervision.
        """
        fn = "SoftLocLoss"
        x = check_input(fn, probs, self.logits)
        targets = check_targets(fn, targets, tuple(x.shape))
        check_lengths(fn, lengths, x.shape[0], x.shape[2])
        if counts is None:
            counts = label_counts(fn, targets, lengths)
        else:
            counts = check_counts(fn, counts, tuple(x.shape[:2]))
        sigma: float | torch.Tensor = self.sigma
        if sigma_per_item is not None:
            sigma = check_sigma(fn, check_tensor(fn, "sigma_per_item", sigma_per_item), x.shape[0])
        alpha = self.current_alpha(step)
        out = softloc_mix(
            x,
            self.logits,
            targets,
            sigma,
            alpha,
            self.k_max,
            lengths,
            counts,
            self.reduction,
            self.distance,
            self.truncate,
            self.kernel if sigma_per_item is None else None,
        )
        if step is None and self.training:
            self.step += 1
        return out

    def extra_repr(self) -> str:
        return (
            f"sigma={self.sigma:g}, k_max={self.k_max}, alpha={self.alpha}, "
            f"reduction={self.reduction!r}, distance={self.distance!r}, logits={self.logits}"
        )
