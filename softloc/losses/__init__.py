"""Training losses (LoCo, SoftLoc, baselines) as functions and thin nn.Module wrappers."""

from softloc.losses.functional import (
    AlphaSchedule,
    BootstrapLoss,
    FrameBCELoss,
    LoCoLoss,
    OneSidedLoss,
    SoftLocLoss,
    SoftLocalizationLoss,
    bce_loss,
    bootstrap_loss,
    gaussian_kernel,
    loco_loss,
    one_sided_loss,
    smoothed_targets,
    soft_localization_loss,
    softloc_loss,
    softness_ms_to_sigma,
)

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
