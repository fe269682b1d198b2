"""The loss registry: a loss configuration -> the training loss module, in one place.

:func:`build_loss` turns ``softloc.config.LossConfig`` into an :class:`EventLoss`, the one kind of
module the trainer holds. Every loss name is resolved here and nowhere else (no name ``if``
chains in training or experiments). Each entry says

* what the loss trains on (``requires``): frame labels (``"targets"``, i.e. timestamps) and/or
  event counts (``"counts"``); the trainer checks the supervision against it;
* which decoder of :mod:`softloc.decode` reads its outputs (``decoder``, a name of
  ``softloc.decode.DECODERS``);
* one line of description;
* whether it takes timestamps as exact (:func:`trusts_timestamps`), which decides what
  calibrates its decoder by default (``softloc.inference.calibrate.calibration_source``).

Names (:data:`LOSS_NAMES`, canonical spelling with hyphens; underscores are accepted on input):

============== =============================== ============== =================================
name           trains on                       decoder        loss
============== =============================== ============== =================================
loco           counts                          threshold      LoCo eq. 7
softloc        targets + counts                threshold      (1 − α)·L_SLL + α·L_MC, eq. 4
sll            targets                         mass-peaks     L_SLL alone (α = 0), eq. 2
mc             counts                          threshold      L_MC alone (α = 1) = LoCo eq. 7
bce            targets                         threshold      frame-wise cross-entropy, eq. 5
smoothed-bce   targets                         peaks          BCE against a peak-1 heat map
one-sided      targets                         peaks-normal.  (p − Φ_σ∗y)², classical heuristic
bootstrap      targets                         threshold      soft bootstrapping (Reed 2014)
============== =============================== ============== =================================

Every built module takes LOGITS (pre-sigmoid scores, as the networks return them); the
cross-entropies and the count term use them directly, the squared-error terms their sigmoid.
:meth:`EventLoss.forward` validates its inputs once and then runs the unchecked cores of the
functional losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from softloc._checks import (
    check_choice,
    check_counts,
    check_finite_sigma,
    check_frame_rate,
    check_int,
    check_lengths,
    check_positive_int,
    check_real,
    check_sigma,
    check_targets,
    check_unit_float,
)
from softloc.losses._core import DISTANCES, check_input
from softloc.losses.baselines import bce_terms, bootstrap_terms, one_sided_terms, smooth_targets
from softloc.losses.loco import count_nll
from softloc.losses.softloc import AlphaSchedule, gaussian_kernel, softloc_mix
from softloc.timebase import ms_to_frames

if TYPE_CHECKING:  # the config module imports yaml; the registry only reads attributes
    from softloc.config import LossConfig

__all__ = ["LOSS_NAMES", "EventLoss", "build_loss", "canonical_loss_name", "trusts_timestamps"]

#: Loss names accepted by :func:`build_loss` (``loss.name`` of the run configuration).
LOSS_NAMES = ("loco", "softloc", "sll", "mc", "bce", "smoothed-bce", "one-sided", "bootstrap")

#: Batch keys a loss may need.
LABEL_KEYS = ("targets", "counts")

_TRUNCATE = 4.0  # Gaussian radius in standard deviations (scipy's default)
_REDUCTIONS = ("classes", "mean")


def canonical_loss_name(name: str) -> str:
    """``name`` in the spelling of :data:`LOSS_NAMES` (``one_sided`` -> ``one-sided``).

    Raises:
        ValueError: not a loss name (the message lists them).

    Example:
        >>> canonical_loss_name("Smoothed_BCE")
        'smoothed-bce'
    """
    canon = str(name).strip().lower().replace("_", "-")
    if canon not in LOSS_NAMES:
        raise ValueError(f"build_loss: `name` must be one of {LOSS_NAMES}, got {name!r}")
    return canon


def trusts_timestamps(name: str, softness_ms: float) -> bool:
    """Whether a loss takes its training timestamps as exact (then validation timestamps may
    calibrate the decoder; ``softloc.inference.calibrate.calibration_source``).

    False for the count losses (``loco``, ``mc``: they never read a timestamp) and for
    ``softloc`` with a softness > 0 (the user declares the timestamps uncertain by that much);
    True for the frame-wise losses, ``sll`` included (their labels are read as given, even when
    smoothed), and ``softloc`` at softness 0.

    Raises:
        ValueError: not a loss name.

    Example:
        >>> trusts_timestamps("bce", 0.0), trusts_timestamps("softloc", 50.0)
        (True, False)
    """
    how = _REGISTRY[canonical_loss_name(name)].timestamps
    return how == "exact" or (how == "soft" and softness_ms == 0)


class EventLoss(nn.Module):
    """A training loss of event logits: what the trainer holds (built by :func:`build_loss`).

    Attributes:
        name: the loss name (:data:`LOSS_NAMES`).
        requires: the batch keys :meth:`forward` needs, a subset of ``{"targets", "counts"}``.
        optional: further keys it reads when given: ``{"sigma_frames"}`` for the losses with a
            softness (per-item softness of mixed supervision).
        decoder: the ``softloc.decode`` decoder that fits its outputs.
        description: one line for tables.

    Shape:
        logits ``(batch, class, time)``; targets ``(batch, class, time)`` 0/1 frame labels;
        counts ``(batch, class)`` whole numbers >= 0; lengths ``(batch,)`` valid frames;
        sigma_frames ``(batch,)`` softness in frames (``inf`` = the item has counts only).
    """

    requires: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()

    def __init__(self, name: str, decoder: str, description: str) -> None:
        super().__init__()
        self.name = name
        self.decoder = decoder
        self.description = description

    def forward(
        self,
        logits: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        step: int = 0,
        sigma_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scalar loss of one batch at optimiser step ``step`` (validated once).

        Raises:
            TypeError, ValueError: a bad tensor (see :mod:`softloc._checks`), a required key
                missing, or a key the loss does not use.
        """
        fn = f"EventLoss({self.name!r})"
        x = check_input(fn, logits, True)
        batch, n_classes, n_steps = x.shape
        check_lengths(fn, lengths, batch, n_steps)
        step = check_int(fn, "step", step, minimum=0)
        given = {"targets": targets, "counts": counts, "sigma_frames": sigma_frames}
        for key, value in given.items():
            if key in self.requires and value is None:
                raise ValueError(f"{fn}: needs `{key}` (it requires {sorted(self.requires)})")
            if value is not None and key not in self.requires | self.optional:
                raise ValueError(
                    f"{fn}: got `{key}`, which this loss does not use (it requires "
                    f"{sorted(self.requires)})"
                )
        if targets is not None:
            targets = check_targets(fn, targets, (batch, n_classes, n_steps), like="logits")
        if counts is not None:
            counts = check_counts(fn, counts, (batch, n_classes))
        if sigma_frames is not None:
            sigma_frames = check_sigma(fn, sigma_frames, batch)  # type: ignore[assignment]
        return self._loss(x, targets, counts, lengths, step, sigma_frames)

    def _loss(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor | None,
        counts: torch.Tensor | None,
        lengths: torch.Tensor | None,
        step: int,
        sigma_frames: torch.Tensor | None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, requires={sorted(self.requires)}, decoder={self.decoder!r}"


class _CountLoss(EventLoss):
    """LoCo eq. 7 on logits, mean over (batch, class): ``loco`` and ``mc``."""

    requires = frozenset({"counts"})

    def __init__(self, name: str, decoder: str, description: str, *, k_max: int) -> None:
        super().__init__(name, decoder, description)
        self.k_max = k_max

    def _loss(self, logits, targets, counts, lengths, step, sigma_frames):
        return count_nll(logits, counts, self.k_max, lengths, True).mean()


class _SoftLocLoss(EventLoss):
    """(1 − α(step))·L_SLL + α(step)·L_MC on logits (SoftLoc eq. 4): ``softloc`` and ``sll``."""

    optional = frozenset({"sigma_frames"})
    kernel: torch.Tensor

    def __init__(
        self,
        name: str,
        decoder: str,
        description: str,
        *,
        sigma: float,
        k_max: int,
        alpha: AlphaSchedule,
        reduction: str,
        distance: str,
        noise_sigma: float = 0.0,
    ) -> None:
        super().__init__(name, decoder, description)
        self.requires = frozenset({"targets"}) if alpha.ceiling == 0 else frozenset(LABEL_KEYS)
        self.sigma, self.k_max, self.alpha = sigma, k_max, alpha
        self.reduction, self.distance, self.noise_sigma = reduction, distance, noise_sigma
        finite = sigma if math.isfinite(sigma) else 0.0  # inf: no SLL term, the kernel is unused
        self.register_buffer("kernel", gaussian_kernel(finite, dtype=torch.float64))
        # The expected label series under N(0, ν²) timestamp noise is Φ_ν∗y: filtering the
        # predictions by Φ_ν as well makes the sharp event train the SLL's minimiser again.
        self.register_buffer(
            "noise_kernel", gaussian_kernel(noise_sigma, dtype=torch.float64), persistent=False
        )

    def _loss(self, logits, targets, counts, lengths, step, sigma_frames):
        sigma: float | torch.Tensor = self.sigma if sigma_frames is None else sigma_frames
        kernel = self.kernel if sigma_frames is None and math.isfinite(self.sigma) else None
        return softloc_mix(
            logits, True, targets, sigma, self.alpha(step), self.k_max, lengths, counts,
            self.reduction, self.distance, _TRUNCATE, kernel, self.noise_kernel,
        )  # fmt: skip


class _BCELoss(EventLoss):
    """Frame-wise BCE on logits, against the labels or their peak-1 heat map (``sigma``)."""

    requires = frozenset({"targets"})

    def __init__(
        self, name: str, decoder: str, description: str, *, reduction: str, sigma: float | None
    ) -> None:
        super().__init__(name, decoder, description)
        self.reduction, self.sigma = reduction, sigma

    def _loss(self, logits, targets, counts, lengths, step, sigma_frames):
        if self.sigma is not None:
            heat = smooth_targets(targets.to(logits.dtype), self.sigma, lengths, "peak", _TRUNCATE)
            return bce_terms(logits, True, heat, lengths, None, self.reduction)
        return bce_terms(logits, True, targets, lengths, None, self.reduction)


class _OneSidedLoss(EventLoss):
    """(sigmoid(logits) − Φ_σ∗y)² (SoftLoc §3, the classical heuristic)."""

    requires = frozenset({"targets"})

    def __init__(
        self, name: str, decoder: str, description: str, *, reduction: str, sigma: float
    ) -> None:
        super().__init__(name, decoder, description)
        self.reduction, self.sigma = reduction, sigma

    def _loss(self, logits, targets, counts, lengths, step, sigma_frames):
        probs = torch.sigmoid(logits)
        return one_sided_terms(probs, targets, self.sigma, lengths, self.reduction, _TRUNCATE)


class _BootstrapLoss(EventLoss):
    """Soft bootstrapping on logits: BCE against β·y + (1 − β)·p (Reed et al. 2014)."""

    requires = frozenset({"targets"})

    def __init__(
        self, name: str, decoder: str, description: str, *, reduction: str, beta: float
    ) -> None:
        super().__init__(name, decoder, description)
        self.reduction, self.beta = reduction, beta

    def _loss(self, logits, targets, counts, lengths, step, sigma_frames):
        return bootstrap_terms(logits, True, targets, self.beta, lengths, self.reduction)


@dataclass(frozen=True)
class _Settings:
    """The validated configuration values the builders read."""

    k_max: int
    sigma: float  # softness in frames (inf allowed)
    alpha: AlphaSchedule
    reduction: str
    distance: str
    beta: float
    noise_sigma: float  # assumed timestamp-noise std in frames (noise-aware SLL), 0 = off


@dataclass(frozen=True)
class _Entry:
    decoder: str
    description: str
    build: Callable[[str, str, str, _Settings], EventLoss]
    # How the loss reads timestamps: "exact" (frame labels as given), "soft" (exact at softness
    # 0, uncertain by the softness otherwise), "none" (counts only: a timestamp is never read).
    timestamps: str = "exact"


def _finite_sigma(name: str, s: _Settings) -> float:
    return check_finite_sigma(f"build_loss({name!r})", s.sigma)


_REGISTRY: dict[str, _Entry] = {
    "loco": _Entry("threshold", "LoCo: counts only (LoCo eq. 7)",
                   lambda n, d, t, s: _CountLoss(n, d, t, k_max=s.k_max), "none"),
    "softloc": _Entry("threshold", "SoftLoc (1-α)·L_SLL + α·L_MC (SoftLoc eq. 4)",
                      lambda n, d, t, s: _SoftLocLoss(
                          n, d, t, sigma=s.sigma, k_max=s.k_max, alpha=s.alpha,
                          reduction=s.reduction, distance=s.distance,
                          noise_sigma=s.noise_sigma), "soft"),
    "sll": _Entry("mass-peaks", "L_SLL only (α = 0; SoftLoc eq. 2)",
                  lambda n, d, t, s: _SoftLocLoss(
                      n, d, t, sigma=s.sigma, k_max=s.k_max, alpha=AlphaSchedule.constant(0.0),
                      reduction=s.reduction, distance=s.distance,
                      noise_sigma=s.noise_sigma)),
    "mc": _Entry("threshold", "L_MC only (α = 1; = LoCo on the counts of the labels)",
                 lambda n, d, t, s: _CountLoss(n, d, t, k_max=s.k_max), "none"),
    "bce": _Entry("threshold", "frame-wise cross-entropy on the labelled frames (SoftLoc eq. 5)",
                  lambda n, d, t, s: _BCELoss(n, d, t, reduction=s.reduction, sigma=None)),
    "smoothed-bce": _Entry("peaks", "cross-entropy on Gaussian-smeared labels (peak 1)",
                           lambda n, d, t, s: _BCELoss(
                               n, d, t, reduction=s.reduction, sigma=_finite_sigma(n, s))),
    "one-sided": _Entry("peaks-normalized", "squared error to Φ_σ∗y, labels smoothed only",
                        lambda n, d, t, s: _OneSidedLoss(
                            n, d, t, reduction=s.reduction, sigma=_finite_sigma(n, s))),
    "bootstrap": _Entry("threshold", "soft bootstrapping (Reed et al. 2014)",
                        lambda n, d, t, s: _BootstrapLoss(n, d, t, reduction=s.reduction,
                                                          beta=s.beta)),
}  # fmt: skip
assert tuple(_REGISTRY) == LOSS_NAMES


def _alpha_schedule(fn: str, config: object, max_steps: int) -> AlphaSchedule:
    """The α schedule of ``config``: absolute steps, or fractions of ``max_steps`` when the
    configuration has ``alpha_start_fraction`` / ``alpha_ramp_fraction`` set."""
    start: float = check_int(fn, "alpha_start_step", config.alpha_start_step, minimum=0)
    ramp: float = check_positive_int(fn, "alpha_ramp_steps", config.alpha_ramp_steps)
    start_fraction = getattr(config, "alpha_start_fraction", None)
    ramp_fraction = getattr(config, "alpha_ramp_fraction", None)
    if start_fraction is not None:
        start = round(check_unit_float(fn, "alpha_start_fraction", start_fraction) * max_steps)
    if ramp_fraction is not None:
        frac = check_unit_float(fn, "alpha_ramp_fraction", ramp_fraction)
        ramp = max(1, round(frac * max_steps))
    floor = check_unit_float(fn, "alpha_min", config.alpha_min)
    ceiling = check_unit_float(fn, "alpha_max", config.alpha_max)
    if floor > ceiling:
        raise ValueError(f"{fn}: need alpha_min <= alpha_max, got {floor} > {ceiling}")
    return AlphaSchedule(start=start, ramp=ramp, floor=floor, ceiling=ceiling)


def build_loss(config: LossConfig, *, frame_rate: float, max_steps: int) -> EventLoss:
    """The training loss module of ``config`` (``softloc.config.LossConfig``).

    Args:
        config: the loss section of the run configuration. Read: ``name``, ``k_max``,
            ``softness_ms`` (0 = no smoothing, ``inf`` = the SoftLoc count term alone),
            ``alpha_min``, ``alpha_max``, ``alpha_start_step``, ``alpha_ramp_steps``,
            ``reduction`` (``classes``: sums over time divided by the classes, the SoftLoc
            scaling; ``mean``: means over valid frames / rows), and when present
            ``alpha_start_fraction`` / ``alpha_ramp_fraction`` (the ramp as fractions of
            ``max_steps``, overriding the step counts), ``distance`` (``squared`` or ``log``,
            the point-wise measure of L_SLL) and ``bootstrap_beta`` (default 0.95).
        frame_rate: frames per second of the logits (softness ms -> frames).
        max_steps: optimiser steps of the run (for the fractional α ramp).

    Returns:
        An :class:`EventLoss` taking logits.

    Raises:
        ValueError: an unknown name, a bad setting (named), an infinite softness for a loss
            that needs a finite one.
        TypeError: a setting of the wrong type.

    Example:
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(name="loco", k_max=22, softness_ms=100.0, alpha_min=0.2,
        ...                       alpha_max=0.9, alpha_start_step=0, alpha_ramp_steps=1,
        ...                       reduction="classes")
        >>> loss = build_loss(cfg, frame_rate=200.0, max_steps=1000)
        >>> sorted(loss.requires), loss.decoder
        (['counts'], 'threshold')
    """
    name = canonical_loss_name(config.name)
    fn = f"build_loss({name!r})"
    rate = check_frame_rate(fn, frame_rate)
    steps = check_positive_int(fn, "max_steps", max_steps)
    softness_ms = check_real(fn, "softness_ms", config.softness_ms, finite=False, minimum=0.0)
    settings = _Settings(
        k_max=check_positive_int(fn, "k_max", config.k_max),
        sigma=math.inf if math.isinf(softness_ms) else ms_to_frames(softness_ms, rate),
        alpha=_alpha_schedule(fn, config, steps),
        reduction=check_choice(fn, "reduction", config.reduction, _REDUCTIONS),
        distance=check_choice(fn, "distance", getattr(config, "distance", "squared"), DISTANCES),
        beta=check_unit_float(fn, "bootstrap_beta", getattr(config, "bootstrap_beta", 0.95)),
        noise_sigma=ms_to_frames(
            check_real(fn, "label_noise_ms", getattr(config, "label_noise_ms", 0.0), minimum=0.0),
            rate,
        ),
    )
    entry = _REGISTRY[name]
    return entry.build(name, entry.decoder, entry.description, settings)
