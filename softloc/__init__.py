"""softloc: detectors of instantaneous events trained from weak labels.

Counts only (LoCo, Schroeter et al. ICML 2019) or misaligned timestamps (SoftLoc, ICLR 2020
submission). Tensors follow the layout ``(batch, class, time)``.

The functional core lives in concept modules, each importable on its own:

- ``softloc.counting``  Poisson-binomial count distribution (LoCo eq. 6, 9, 14)
- ``softloc.losses``    LoCo, soft localization, SoftLoc and baseline losses (SoftLoc eq. 2-6)
- ``softloc.noise``     label-misalignment models
- ``softloc.decode``    probabilities -> events; the one frame <-> seconds conversion
- ``softloc.metrics``   onset P/R/F1 with mir_eval matching, aggregation, count metrics
- ``softloc.inference`` ``Detector``: load a trained run and detect events in audio
"""

from __future__ import annotations

__version__ = "0.1.0"

from softloc.counting import count_distribution, count_log_likelihood, count_prior_bias
from softloc.decode import (
    Events,
    frames_to_seconds,
    ms_to_frames,
    pick_peaks,
    seconds_to_frames,
    stitch_windows,
    threshold_events,
)
from softloc.inference import Detector
from softloc.losses import (
    AlphaSchedule,
    BootstrapLoss,
    FrameBCELoss,
    LoCoLoss,
    OneSidedLoss,
    SoftLocalizationLoss,
    SoftLocLoss,
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
from softloc.metrics import count_metrics, evaluate, match_onsets, onset_scores
from softloc.noise import (
    BinaryNoise,
    NoiseModel,
    NormalNoise,
    RoundedNormalNoise,
    ShiftNoise,
    SkewNormalNoise,
    parse_noise,
    perturb_events,
)

__all__ = [
    "__version__",
    # counting
    "count_distribution",
    "count_log_likelihood",
    "count_prior_bias",
    # losses
    "loco_loss",
    "LoCoLoss",
    "gaussian_kernel",
    "softness_ms_to_sigma",
    "soft_localization_loss",
    "SoftLocalizationLoss",
    "softloc_loss",
    "SoftLocLoss",
    "AlphaSchedule",
    "bce_loss",
    "FrameBCELoss",
    "smoothed_targets",
    "one_sided_loss",
    "OneSidedLoss",
    "bootstrap_loss",
    "BootstrapLoss",
    # noise
    "NoiseModel",
    "NormalNoise",
    "RoundedNormalNoise",
    "BinaryNoise",
    "ShiftNoise",
    "SkewNormalNoise",
    "perturb_events",
    "parse_noise",
    # decode
    "Events",
    "frames_to_seconds",
    "seconds_to_frames",
    "ms_to_frames",
    "threshold_events",
    "pick_peaks",
    "stitch_windows",
    # metrics
    "match_onsets",
    "onset_scores",
    "count_metrics",
    "evaluate",
    # inference
    "Detector",
]
