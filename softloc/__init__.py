"""softloc: detectors of instantaneous events trained from weak labels.

Counts only (LoCo, Schroeter et al. ICML 2019) or misaligned timestamps (SoftLoc, ICLR 2020
submission). Tensors follow the layout ``(batch, class, time)``.

The functional core lives in concept modules, each importable on its own:

- ``softloc.timebase``  the one frame <-> seconds conversion; window and hop frame counts
- ``softloc.counting``  Poisson-binomial count distribution (LoCo eq. 6, 9, 14)
- ``softloc.losses``    LoCo, soft localization, SoftLoc and baseline losses (SoftLoc eq. 2-6),
  and ``build_loss``, the registry that turns a loss configuration into a module
- ``softloc.noise``     label-misalignment models
- ``softloc.decode``    probabilities -> events
- ``softloc.metrics``   onset P/R/F1 with mir_eval matching, aggregation, count metrics
- ``softloc.inference`` ``Detector``: load a trained run and detect events in audio
- ``softloc.training``  ``train``: fit a detector on a dataset folder

``import softloc`` imports nothing heavy (not even torch): every name below is loaded from its
module on first access (module ``__getattr__``, PEP 562), so ``softloc --version`` stays instant
and ``import softloc.counting`` loads only the counting code.
"""

from __future__ import annotations

import importlib
from typing import Any

from softloc._version import __version__

# Public name -> module that defines it. The one table of the package surface.
_EXPORTS: dict[str, str] = {
    # timebase
    "frames_to_seconds": "softloc.timebase",
    "seconds_to_frames": "softloc.timebase",
    "ms_to_frames": "softloc.timebase",
    "duration_frames": "softloc.timebase",
    "padded_window_frames": "softloc.timebase",
    # counting
    "count_distribution": "softloc.counting",
    "count_log_likelihood": "softloc.counting",
    "count_prior_bias": "softloc.counting",
    # losses
    "loco_loss": "softloc.losses",
    "LoCoLoss": "softloc.losses",
    "gaussian_kernel": "softloc.losses",
    "softness_ms_to_sigma": "softloc.losses",
    "soft_localization_loss": "softloc.losses",
    "SoftLocalizationLoss": "softloc.losses",
    "softloc_loss": "softloc.losses",
    "SoftLocLoss": "softloc.losses",
    "AlphaSchedule": "softloc.losses",
    "bce_loss": "softloc.losses",
    "FrameBCELoss": "softloc.losses",
    "smoothed_targets": "softloc.losses",
    "one_sided_loss": "softloc.losses",
    "OneSidedLoss": "softloc.losses",
    "bootstrap_loss": "softloc.losses",
    "BootstrapLoss": "softloc.losses",
    "LOSS_NAMES": "softloc.losses",
    "EventLoss": "softloc.losses",
    "build_loss": "softloc.losses",
    # noise
    "NoiseModel": "softloc.noise",
    "NormalNoise": "softloc.noise",
    "RoundedNormalNoise": "softloc.noise",
    "BinaryNoise": "softloc.noise",
    "ShiftNoise": "softloc.noise",
    "SkewNormalNoise": "softloc.noise",
    "perturb_events": "softloc.noise",
    "parse_noise": "softloc.noise",
    # decode
    "Events": "softloc.decode",
    "threshold_events": "softloc.decode",
    "pick_peaks": "softloc.decode",
    "stitch_windows": "softloc.decode",
    # metrics
    "match_onsets": "softloc.metrics",
    "onset_scores": "softloc.metrics",
    "count_metrics": "softloc.metrics",
    "evaluate": "softloc.metrics",
    # heavy members: inference and training
    "Detector": "softloc.inference",
    "train": "softloc.training",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access (and cache it in this module)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'softloc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
