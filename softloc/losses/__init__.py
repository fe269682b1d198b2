"""Training losses: functions of tensors, thin ``nn.Module`` wrappers, and the registry.

- :mod:`softloc.losses.loco`: :func:`loco_loss` / :class:`LoCoLoss`, the count loss (LoCo eq. 7).
- :mod:`softloc.losses.softloc`: :func:`gaussian_kernel`, :func:`soft_localization_loss` /
  :class:`SoftLocalizationLoss` (SoftLoc eq. 2), :func:`softloc_loss` / :class:`SoftLocLoss` and
  :class:`AlphaSchedule` (SoftLoc eq. 3-6).
- :mod:`softloc.losses.baselines`: :func:`bce_loss`, :func:`smoothed_targets`,
  :func:`one_sided_loss`, :func:`bootstrap_loss` and their modules.
- :mod:`softloc.losses.registry`: :data:`LOSS_NAMES`, :func:`build_loss` (a loss configuration
  -> an :class:`EventLoss` on logits, what the trainer holds).
- :mod:`softloc.losses.segmentation`: losses of action segmentation (import the submodule).

Conventions: ``probs`` ``(batch, class, time)`` are probabilities p(t) in [0, 1], or logits with
``logits=True``; ``targets`` the same shape, 1 at event frames; ``counts`` ``(batch, class)``
whole numbers >= 0; ``lengths`` ``(batch,)`` valid steps (later steps never contribute).
Softness ``sigma`` is in frames (:func:`softloc.timebase.ms_to_frames`).

References:
    Schroeter, Sidorov, Marshall. Weakly-Supervised Temporal Localization via Occurrence Count
    Learning. ICML 2019 ("LoCo").
    SoftLoc: Robust Temporal Localization under Label Misalignment. ICLR 2020 submission
    ("SoftLoc").
    Reed et al. Training Deep Neural Networks on Noisy Labels with Bootstrapping. 2014.
"""

from softloc.losses.baselines import (
    BootstrapLoss,
    FrameBCELoss,
    OneSidedLoss,
    bce_loss,
    bootstrap_loss,
    one_sided_loss,
    smoothed_targets,
)
from softloc.losses.loco import LoCoLoss, loco_loss
from softloc.losses.registry import (
    LOSS_NAMES,
    EventLoss,
    build_loss,
    canonical_loss_name,
    trusts_timestamps,
)
from softloc.losses.softloc import (
    AlphaSchedule,
    SoftLocalizationLoss,
    SoftLocLoss,
    gaussian_kernel,
    soft_localization_loss,
    softloc_loss,
    softness_ms_to_sigma,
)

__all__ = [
    "LOSS_NAMES",
    "AlphaSchedule",
    "BootstrapLoss",
    "EventLoss",
    "FrameBCELoss",
    "LoCoLoss",
    "OneSidedLoss",
    "SoftLocLoss",
    "SoftLocalizationLoss",
    "bce_loss",
    "bootstrap_loss",
    "build_loss",
    "trusts_timestamps",
    "canonical_loss_name",
    "gaussian_kernel",
    "loco_loss",
    "one_sided_loss",
    "smoothed_targets",
    "soft_localization_loss",
    "softloc_loss",
    "softness_ms_to_sigma",
]
