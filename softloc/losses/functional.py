"""Training losses: LoCo count loss, soft localization loss, SoftLoc, and robustness baselines.

Conventions:

* ``probs`` are event probabilities p(t) in [0, 1] (after the sigmoid), shape
  ``(batch, class, time)``.
* ``targets`` are label series of the same shape, 1 at frames holding an annotated event, else 0.
* ``counts`` are event counts per sequence and class, shape ``(batch, class)``, integers >= 0.
* ``lengths`` (optional, ``(batch,)``) are the valid steps per batch item; steps beyond are padding
  and never contribute to any loss here.
* Softness ``sigma`` is the standard deviation of the Gaussian filter in *frames*; convert from
  milliseconds with :func:`softloc.decode.ms_to_frames` (``sigma = ms_to_frames(100, 200.0)`` = 20
  frames, the piano setting).

Functional core (tensors in, tensors out) with thin :class:`torch.nn.Module` wrappers that hold
hyper-parameters, the Gaussian kernel as a buffer and the alpha schedule:

* :func:`loco_loss` / :class:`LoCoLoss`: count loss (LoCo eq. 7).
* :func:`gaussian_kernel`: the softness filter Φ_σ (scipy's ``gaussian_filter`` taps).
* :func:`soft_localization_loss` / :class:`SoftLocalizationLoss`: L_SLL (SoftLoc eq. 2, 5).
* :func:`softloc_loss` / :class:`SoftLocLoss` with :class:`AlphaSchedule`: (1 − α)·L_SLL + α·L_MC
  (SoftLoc eq. 3-4; limits eq. 5-6).
* Baselines for the robustness study: :func:`bce_loss` / :class:`FrameBCELoss` (frame-wise
  cross-entropy), :func:`smoothed_targets` and :func:`one_sided_loss` / :class:`OneSidedLoss`
  (the "classical" label-smoothing heuristic), :func:`bootstrap_loss` / :class:`BootstrapLoss`
  (soft bootstrapping, Reed et al. 2014).

The cross-entropy-type losses (:func:`loco_loss`, :func:`softloc_loss`, :func:`bce_loss`,
:func:`bootstrap_loss`) take ``logits=True`` to receive pre-sigmoid logits, which is numerically
preferable (a float32 sigmoid rounds to exactly 1 above a logit of ~17). The squared-error losses
(:func:`soft_localization_loss`, :func:`one_sided_loss`) are bounded and take probabilities.

References:
    Schroeter, Sidorov, Marshall. Weakly-Supervised Temporal Localization via Occurrence Count
    Learning. ICML 2019 ("LoCo").
    SoftLoc: Robust Temporal Localization under Label Misalignment. ICLR 2020 submission
    ("SoftLoc").
    Reed et al. Training Deep Neural Networks on Noisy Labels with Bootstrapping. 2014.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from softloc._checks import (
    check_float,
    check_lengths,
    check_ndim,
    check_positive_int,
    check_probabilities,
    check_reduction,
    check_tensor,
)
from softloc.counting import count_log_likelihood
from softloc.timebase import ms_to_frames

__all__ = [
    "AlphaSchedule",
    "BootstrapLoss",
    "FrameBCELoss",
    "LoCoLoss",
    "OneSidedLoss",
    "SoftLocLoss",
    "SoftLocalizationLoss",
    "bce_loss",
    "bootstrap_loss",
    "gaussian_kernel",
    "loco_loss",
    "one_sided_loss",
    "smoothed_targets",
    "soft_localization_loss",
    "softloc_loss",
    "softness_ms_to_sigma",
]

_LAYOUT = "(batch, class, time)"
# Reductions of losses that sum over time: "classes" is the original SoftLoc scaling.
_TIME_REDUCTIONS = ("classes", "mean", "sum", "none")
_DISTANCES = ("squared", "log")
# Longest sequence filtered by a dense Toeplitz product (T^2 memory); longer ones use conv1d.
_TOEPLITZ_MAX_STEPS = 2048
# torch.nn.functional.binary_cross_entropy clamps log terms at -100; we do the same so that
# our cross-entropies agree with it even for probabilities of exactly 0 or 1.
_LOG_FLOOR = -100.0


# --------------------------------------------------------------------------------------------
# validation helpers (module-private)
# --------------------------------------------------------------------------------------------


def _check_probs(fn: str, probs: object) -> torch.Tensor:
    probs = check_tensor(fn, "probs", probs)
    check_ndim(fn, "probs", probs, 3, _LAYOUT)
    check_probabilities(fn, "probs", probs)
    return probs


def _check_scores(
    fn: str, probs: object, logits: object
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> (p, z): probabilities, and the logits they came from when ``logits`` is True."""
    if not _check_bool(fn, "logits", logits):
        return _check_probs(fn, probs), None
    z = check_tensor(fn, "probs", probs)
    check_ndim(fn, "probs", z, 3, _LAYOUT)
    check_float(fn, "probs", z)
    if bool(z.isnan().any()):
        raise ValueError(f"{fn}: `probs` holds logits (logits=True) and must not contain NaN")
    return torch.sigmoid(z), z


def _log_likelihood(
    p: torch.Tensor,
    z: torch.Tensor | None,
    counts: torch.Tensor,
    k_max: int,
    lengths: torch.Tensor | None,
) -> torch.Tensor:
    if z is not None:
        return count_log_likelihood(z, counts, k_max, lengths=lengths, logits=True)
    return count_log_likelihood(p, counts, k_max, lengths=lengths)


def _check_targets(fn: str, targets: object, probs: torch.Tensor) -> torch.Tensor:
    targets = check_tensor(fn, "targets", targets)
    if targets.shape != probs.shape:
        raise ValueError(
            f"{fn}: `targets` must have the shape of `probs` {_LAYOUT} = {tuple(probs.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if targets.numel() and not bool(((targets >= 0) & (targets <= 1)).all()):
        lo = float(torch.nan_to_num(targets.double(), nan=-1.0).min())
        hi = float(targets.double().max())
        raise ValueError(
            f"{fn}: `targets` must hold label values in [0, 1] (1 at an event frame), found values "
            f"in [{lo:g}, {hi:g}]"
        )
    return targets


def _check_counts(fn: str, counts: object, probs: torch.Tensor) -> torch.Tensor:
    counts = check_tensor(fn, "counts", counts)
    if counts.shape != probs.shape[:2]:
        raise ValueError(
            f"{fn}: `counts` must have shape (batch, class) = {tuple(probs.shape[:2])}, "
            f"got {tuple(counts.shape)}"
        )
    if counts.is_floating_point() and not bool((counts == counts.round()).all()):
        raise ValueError(f"{fn}: `counts` must hold whole numbers of events")
    if counts.numel() and int(counts.min()) < 0:
        raise ValueError(f"{fn}: `counts` must be >= 0, got minimum {int(counts.min())}")
    return counts


def _check_sigma(fn: str, sigma: object, batch: int | None) -> float | torch.Tensor:
    """A float sigma >= 0 (inf allowed), or a (batch,) tensor of them when ``batch`` is given."""
    if isinstance(sigma, torch.Tensor):
        if batch is None:
            raise TypeError(f"{fn}: `sigma` must be a float, got a tensor")
        if sigma.dim() != 1 or sigma.shape[0] != batch:
            raise ValueError(
                f"{fn}: a tensor `sigma` must have shape (batch,) = ({batch},), "
                f"got {tuple(sigma.shape)}"
            )
        if sigma.numel() and not bool((sigma >= 0).all()):  # also rejects NaN
            raise ValueError(
                f"{fn}: `sigma` must be >= 0 frames (inf for count-only items), got "
                f"{sigma.tolist()}"
            )
        return sigma
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"{fn}: `sigma` must be a float (frames), got {type(sigma).__name__}")
    if not sigma >= 0:  # also rejects NaN
        raise ValueError(
            f"{fn}: `sigma` must be >= 0 frames, got {sigma} (convert milliseconds with "
            "softloc.decode.ms_to_frames)"
        )
    return float(sigma)


def _check_finite_sigma(fn: str, sigma: object) -> float:
    value = _check_sigma(fn, sigma, None)
    assert isinstance(value, float)
    if math.isinf(value):
        raise ValueError(f"{fn}: `sigma` must be a finite number of frames, got {value}")
    return value


def _check_unit_float(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: `{name}` must be a float in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{fn}: `{name}` must lie in [0, 1], got {value}")
    return float(value)


def _check_bool(fn: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {type(value).__name__}")
    return value


def _check_distance(fn: str, distance: str) -> None:
    if distance not in _DISTANCES:
        raise ValueError(f"{fn}: `distance` must be one of {_DISTANCES}, got {distance!r}")


def _check_truncate(fn: str, truncate: object) -> float:
    if isinstance(truncate, bool) or not isinstance(truncate, (int, float)):
        raise TypeError(f"{fn}: `truncate` must be a float, got {type(truncate).__name__}")
    if not (truncate > 0 and math.isfinite(truncate)):
        raise ValueError(f"{fn}: `truncate` must be a finite number > 0, got {truncate}")
    return float(truncate)


# --------------------------------------------------------------------------------------------
# shared internals
# --------------------------------------------------------------------------------------------


def _time_mask(lengths: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """(batch, 1, time) boolean mask of valid steps, or None when every step is valid."""
    if lengths is None:
        return None
    steps = torch.arange(like.shape[-1], device=like.device)
    return (steps[None, :] < lengths.to(like.device)[:, None])[:, None, :]  # (B, T) -> (B, 1, T)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask.to(x.dtype)


def _n_valid(x: torch.Tensor, lengths: torch.Tensor | None) -> int:
    """Number of valid (batch, class, time) elements."""
    b, c, t = x.shape
    return b * c * t if lengths is None else c * int(lengths.sum())


def _reduce_time(fn: str, elem: torch.Tensor, lengths: torch.Tensor | None, reduction: str):
    """Reduce a (batch, class, time) element-wise loss that is already zero beyond ``lengths``."""
    if reduction == "none":
        return elem
    if reduction == "sum":
        return elem.sum()
    if reduction == "classes":
        return elem.sum() / elem.shape[1]
    # "mean" over valid elements; an empty batch gives NaN like torch's mean of nothing.
    return elem.sum() / _n_valid(elem, lengths)


def _reduce_rows(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a (batch, class) loss."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


@functools.lru_cache(maxsize=256)
def _kernel_taps(sigma: float, truncate: float) -> np.ndarray:
    """Float64 taps of scipy.ndimage.gaussian_filter1d's order-0 kernel, centred, sum 1."""
    # scipy skips the filter entirely for sigma <= 1e-15: the impulse.
    if sigma <= 1e-15:
        return np.ones(1)
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def _crop(taps: torch.Tensor, n_steps: int) -> torch.Tensor:
    # With zero padding and "same" output, taps further than n_steps - 1 from the centre never
    # meet a sample: cropping them changes nothing and keeps the convolution O(T^2) at most.
    radius = (taps.shape[-1] - 1) // 2
    keep = min(radius, max(n_steps - 1, 0))
    return taps[..., radius - keep : radius + keep + 1]


def _filter_rows(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded 'same' filtering of every (batch, class) row with one odd 1-D kernel."""
    b, c, t = x.shape
    kernel = _crop(kernel, t).to(dtype=x.dtype, device=x.device)
    if kernel.numel() == 1:
        return x * kernel[0]
    radius = (kernel.numel() - 1) // 2
    if t <= _TOEPLITZ_MAX_STEPS:
        # A banded (T, T) matrix product is ~20x faster than conv1d with a single input channel
        # for the usual T of a few hundred frames (161 taps at sigma = 20), on CPU and GPU alike.
        steps = torch.arange(t, device=x.device)
        offset = steps[:, None] - steps[None, :]  # (T, T): s - t
        band = offset.abs() <= radius
        toeplitz = torch.where(band, kernel[(offset + radius).clamp(0, 2 * radius)], 0.0)
        return x @ toeplitz  # (B, C, T) @ (T, T): out[t] = sum_s x[s] k[s - t + r]
    rows = x.reshape(b * c, 1, t)  # (B, C, T) -> (B*C, 1, T)
    # conv1d is a cross-correlation; the kernel is symmetric, so this is the convolution.
    out = F.conv1d(rows, kernel.view(1, 1, -1), padding=radius)
    return out.reshape(b, c, t)  # (B*C, 1, T) -> (B, C, T)


def _filter_per_item(x: torch.Tensor, sigmas: torch.Tensor, truncate: float) -> torch.Tensor:
    """Filter item i with its own sigma; sigma = inf gives 0 (the sigma -> inf limit)."""
    out = torch.zeros_like(x)
    values = sigmas.detach().double().cpu()
    for s in torch.unique(values).tolist():
        if math.isinf(s):
            continue  # the normalised filter flattens to 0 everywhere as sigma -> inf
        idx = torch.nonzero(values == s).flatten().to(x.device)
        kernel = torch.from_numpy(_kernel_taps(s, truncate))
        out = out.index_copy(0, idx, _filter_rows(x.index_select(0, idx), kernel))
    return out


def _pointwise(diff: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "squared":
        return diff.square()
    # -log(1 - |d|) (SoftLoc eq. 5), floored like torch's binary_cross_entropy.
    return -torch.log1p(-diff.abs()).clamp(min=_LOG_FLOOR)


def _bce_elementwise(
    probs: torch.Tensor,
    z: torch.Tensor | None,
    targets: torch.Tensor,
    pos_weight: torch.Tensor | None,
) -> torch.Tensor:
    if z is not None:  # exact log p and log(1 - p) from the logits, no floor needed
        log_p, log_q = F.logsigmoid(z), F.logsigmoid(-z)
    else:
        log_p = torch.log(probs).clamp(min=_LOG_FLOOR)
        log_q = torch.log1p(-probs).clamp(min=_LOG_FLOOR)
    pos = targets * log_p
    if pos_weight is not None:
        pos = pos * pos_weight.to(probs.dtype).view(1, -1, 1)  # (C,) -> (1, C, 1)
    return -(pos + (1 - targets) * log_q)


# --------------------------------------------------------------------------------------------
# LoCo
# --------------------------------------------------------------------------------------------


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
        TypeError: a non-tensor input, non-float ``probs`` or a non-int ``k_max``.
        ValueError: bad shapes, probabilities outside [0, 1], negative or fractional counts,
            ``k_max < 1``, a bad ``lengths`` or an unknown ``reduction``.

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
    p, z = _check_scores(fn, probs, logits)
    counts = _check_counts(fn, counts, p)
    check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, p.shape[0], p.shape[2])
    check_reduction(fn, reduction)
    nll = -_log_likelihood(p, z, counts, k_max, lengths)  # (B, C)
    return _reduce_rows(nll, reduction)


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
        _check_bool("LoCoLoss", "logits", logits)
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


# --------------------------------------------------------------------------------------------
# Gaussian kernel and the soft localization loss
# --------------------------------------------------------------------------------------------


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
    sigma = _check_finite_sigma(fn, sigma)
    truncate = _check_truncate(fn, truncate)
    # torch.tensor copies: the cached taps must never be handed out for in-place edits.
    return torch.tensor(_kernel_taps(sigma, truncate), dtype=dtype, device=device)


def softness_ms_to_sigma(softness_ms: float, frame_rate: float) -> float:
    """Softness in milliseconds -> sigma in frames (100 ms at 200 frames/s = 20 frames).

    A named alias of :func:`softloc.decode.ms_to_frames`, the one place for the conversion.
    """
    return ms_to_frames(softness_ms, frame_rate)


def _sll_elementwise(
    probs: torch.Tensor,
    targets: torch.Tensor,
    sigma: float | torch.Tensor,
    lengths: torch.Tensor | None,
    distance: str,
    truncate: float,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """(batch, class, time) pointwise L(Φ∗p, Φ∗y), zero beyond ``lengths`` and for sigma = inf."""
    mask = _time_mask(lengths, probs)
    # Filtering is linear, so Φ∗p − Φ∗y = Φ∗(p − y): one convolution instead of two.
    diff = _masked(probs - targets.to(probs.dtype), mask)
    if isinstance(sigma, torch.Tensor):
        smooth = _filter_per_item(diff, sigma, truncate)
    elif math.isinf(sigma):
        smooth = torch.zeros_like(diff)
    else:
        if kernel is None:
            kernel = torch.from_numpy(_kernel_taps(sigma, truncate))
        smooth = _filter_rows(diff, kernel)
    return _masked(_pointwise(smooth, distance), mask)


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
    probs = _check_probs(fn, probs)
    targets = _check_targets(fn, targets, probs)
    sigma = _check_sigma(fn, sigma, probs.shape[0])
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    check_reduction(fn, reduction, _TIME_REDUCTIONS)
    _check_distance(fn, distance)
    truncate = _check_truncate(fn, truncate)
    elem = _sll_elementwise(probs, targets, sigma, lengths, distance, truncate)
    return _reduce_time(fn, elem, lengths, reduction)


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
        _check_finite_sigma(fn, sigma)
        check_reduction(fn, reduction, _TIME_REDUCTIONS)
        _check_distance(fn, distance)
        truncate = _check_truncate(fn, truncate)
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
        probs = _check_probs(fn, probs)
        targets = _check_targets(fn, targets, probs)
        check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
        elem = _sll_elementwise(
            probs, targets, self.sigma, lengths, self.distance, self.truncate, self.kernel
        )
        return _reduce_time(fn, elem, lengths, self.reduction)

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


def _label_counts(fn: str, targets: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Number of labelled frames per (batch, class) row within ``lengths``."""
    if targets.numel() and not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError(
            f"{fn}: deriving counts needs binary `targets` (0 or 1 per frame); pass `counts` "
            "explicitly for soft or fractional labels"
        )
    return _masked(targets, _time_mask(lengths, targets)).sum(-1).round().long()  # (B, C)


def _softloc(
    fn: str,
    probs: torch.Tensor,
    z: torch.Tensor | None,
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
) -> torch.Tensor:
    if counts is None:
        counts = _label_counts(fn, targets, lengths)
    # Skip a term whose weight is 0: saves the recursion and avoids inf * 0 = NaN.
    if alpha > 0:
        mc = -_log_likelihood(probs, z, counts, k_max, lengths)  # (B, C)
    else:
        mc = probs.new_zeros(probs.shape[:2])
    if alpha < 1:
        sll = _sll_elementwise(probs, targets, sigma, lengths, distance, truncate, kernel)
        sll_rows = sll.sum(-1)  # (B, C, T) -> (B, C)
    else:
        sll_rows = probs.new_zeros(probs.shape[:2])
    if reduction == "classes":
        # The original scaling: Σ_{b,c,t} SLL / C mixed with the mean count NLL over (b, c).
        return (1 - alpha) * sll_rows.sum() / probs.shape[1] + alpha * mc.mean()
    return _reduce_rows((1 - alpha) * sll_rows + alpha * mc, reduction)


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
    probs, z = _check_scores(fn, probs, logits)
    targets = _check_targets(fn, targets, probs)
    sigma = _check_sigma(fn, sigma, probs.shape[0])
    alpha = _check_unit_float(fn, "alpha", alpha)
    check_positive_int(fn, "k_max", k_max)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    if counts is not None:
        counts = _check_counts(fn, counts, probs)
    check_reduction(fn, reduction, _TIME_REDUCTIONS)
    _check_distance(fn, distance)
    truncate = _check_truncate(fn, truncate)
    return _softloc(
        fn, probs, z, targets, sigma, alpha, k_max, lengths, counts, reduction, distance, truncate
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
        _check_bool(fn, "logits", logits)
        _check_finite_sigma(fn, sigma)
        check_positive_int(fn, "k_max", k_max)
        truncate = _check_truncate(fn, truncate)
        if not isinstance(alpha, AlphaSchedule):
            alpha = AlphaSchedule.constant(_check_unit_float(fn, "alpha", alpha))
        check_reduction(fn, reduction, _TIME_REDUCTIONS)
        _check_distance(fn, distance)
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
        probs, z = _check_scores(fn, probs, self.logits)
        targets = _check_targets(fn, targets, probs)
        check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
        if counts is not None:
            counts = _check_counts(fn, counts, probs)
        sigma: float | torch.Tensor = self.sigma
        if sigma_per_item is not None:
            sigma = _check_sigma(
                fn, check_tensor(fn, "sigma_per_item", sigma_per_item), probs.shape[0]
            )
        alpha = self.current_alpha(step)
        out = _softloc(
            fn,
            probs,
            z,
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


# --------------------------------------------------------------------------------------------
# Baselines for the robustness study
# --------------------------------------------------------------------------------------------


def _check_pos_weight_scalar(fn: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{fn}: `pos_weight` must be a float or a (class,) tensor, got {type(value).__name__}"
        )
    if not value >= 0:
        raise ValueError(f"{fn}: `pos_weight` must be >= 0, got {value}")
    return float(value)


def _check_pos_weight(fn: str, pos_weight: object, n_classes: int) -> torch.Tensor | None:
    if pos_weight is None:
        return None
    if not isinstance(pos_weight, torch.Tensor):
        pos_weight = torch.tensor([_check_pos_weight_scalar(fn, pos_weight)] * n_classes)
    if pos_weight.shape != (n_classes,):
        raise ValueError(
            f"{fn}: `pos_weight` must be a float or have shape (class,) = ({n_classes},), "
            f"got {tuple(pos_weight.shape)}"
        )
    if not bool((pos_weight >= 0).all()):
        raise ValueError(f"{fn}: `pos_weight` must be >= 0, got {pos_weight.tolist()}")
    return pos_weight


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
        reduction: ``"mean"`` (default, over valid elements), ``"sum"`` or ``"none"``
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
    probs, z = _check_scores(fn, probs, logits)
    targets = _check_targets(fn, targets, probs)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    weight = _check_pos_weight(fn, pos_weight, probs.shape[1])
    check_reduction(fn, reduction)
    elem = _masked(
        _bce_elementwise(probs, z, targets.to(probs.dtype), weight), _time_mask(lengths, probs)
    )
    return _reduce_time(fn, elem, lengths, reduction)


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
    check_ndim(fn, "targets", targets, 3, _LAYOUT)
    check_float(fn, "targets", targets)
    _check_targets(fn, targets, targets)
    sigma = _check_finite_sigma(fn, sigma)
    check_lengths(fn, lengths, targets.shape[0], targets.shape[2])
    if normalize not in ("sum", "peak"):
        raise ValueError(f"{fn}: `normalize` must be 'sum' or 'peak', got {normalize!r}")
    truncate = _check_truncate(fn, truncate)
    return _smooth_targets(targets, sigma, lengths, normalize, truncate)


def _smooth_targets(
    targets: torch.Tensor,
    sigma: float,
    lengths: torch.Tensor | None,
    normalize: str,
    truncate: float,
) -> torch.Tensor:
    mask = _time_mask(lengths, targets)
    kernel = torch.from_numpy(_kernel_taps(sigma, truncate))
    if normalize == "peak":
        kernel = kernel / kernel.max()
    out = _masked(_filter_rows(_masked(targets, mask), kernel), mask)
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
    probs = _check_probs(fn, probs)
    targets = _check_targets(fn, targets, probs)
    sigma = _check_finite_sigma(fn, sigma)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    check_reduction(fn, reduction, _TIME_REDUCTIONS)
    truncate = _check_truncate(fn, truncate)
    smooth = _smooth_targets(targets.to(probs.dtype), sigma, lengths, "sum", truncate)
    elem = _masked((probs - smooth).square(), _time_mask(lengths, probs))
    return _reduce_time(fn, elem, lengths, reduction)


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
        reduction: ``"mean"`` (default, over valid elements), ``"sum"`` or ``"none"``.
        logits: ``probs`` holds logits.

    Returns:
        A scalar, or ``(batch, class, time)`` for ``reduction="none"``.

    Raises:
        TypeError, ValueError: as :func:`bce_loss`; ``beta`` outside [0, 1].
    """
    fn = "bootstrap_loss"
    probs, z = _check_scores(fn, probs, logits)
    targets = _check_targets(fn, targets, probs)
    beta = _check_unit_float(fn, "beta", beta)
    check_lengths(fn, lengths, probs.shape[0], probs.shape[2])
    check_reduction(fn, reduction)
    mixed = beta * targets.to(probs.dtype) + (1 - beta) * probs
    elem = _masked(_bce_elementwise(probs, z, mixed, None), _time_mask(lengths, probs))
    return _reduce_time(fn, elem, lengths, reduction)


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
        check_reduction("FrameBCELoss", reduction)
        self.reduction = reduction
        self.logits = _check_bool("FrameBCELoss", "logits", logits)
        self.pos_weight_value: float | None = None
        if isinstance(pos_weight, torch.Tensor):
            self.register_buffer("pos_weight", pos_weight)
        else:
            self.register_buffer("pos_weight", None)
            if pos_weight is not None:
                self.pos_weight_value = _check_pos_weight_scalar("FrameBCELoss", pos_weight)

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
        _check_finite_sigma("OneSidedLoss", sigma)
        check_reduction("OneSidedLoss", reduction, _TIME_REDUCTIONS)
        truncate = _check_truncate("OneSidedLoss", truncate)
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
        self.beta = _check_unit_float("BootstrapLoss", "beta", beta)
        check_reduction("BootstrapLoss", reduction)
        self.reduction = reduction
        self.logits = _check_bool("BootstrapLoss", "logits", logits)

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
