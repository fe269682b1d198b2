"""Training on PyTorch Lightning: one module for every task, data loaders, the run folder.

* ``module``: :class:`EventModule` (network + injected loss + optimiser recipe),
  :class:`OptimSettings` (Adam/AdamW, linear warm-up, constant/cosine schedule);
* ``recipe``: :func:`match_output_prior` (LoCo eq. 15 made exact at initialisation);
* ``loaders``: dataset -> features -> supervision -> window datasets -> loaders (audio runs;
  batches are a function of the seed and the step, :class:`StepSampler`);
* ``fit``: :func:`fit` / :func:`train` write a run folder (Trainer, calibration, ``model.pt``,
  ``metrics.json``);
* ``run_folder``: its checks, atomic ``weights_only`` checkpoints, resume
  (:data:`RUNTIME_FIELDS`), :class:`TrainingInterrupted` on Ctrl-C.
* ``recalibrate``: ``recalibrate_run`` (``softloc calibrate``): a finished run's calibration
  again, with other inference settings, into a new run folder.

The networks (``softloc.models``) and inference (``softloc.inference``) never import this package.
"""

from __future__ import annotations

from softloc.training.fit import (
    TrainResult,
    file_f1_validator,
    fit,
    parse_devices,
    train,
)
from softloc.training.loaders import (
    StepSampler,
    TrainingData,
    carve_validation,
    check_supervision,
    collate_batch,
    make_loaders,
    noisy_index,
    prepare_training_data,
)
from softloc.training.module import (
    EventModule,
    OptimSettings,
    cosine_factor,
    parameter_groups,
    warmup_factor,
)
from softloc.training.recipe import match_output_prior
from softloc.training.run_folder import RUNTIME_FIELDS, TrainingInterrupted

__all__ = [
    "RUNTIME_FIELDS",
    "EventModule",
    "OptimSettings",
    "StepSampler",
    "TrainResult",
    "TrainingData",
    "TrainingInterrupted",
    "carve_validation",
    "check_supervision",
    "collate_batch",
    "cosine_factor",
    "file_f1_validator",
    "fit",
    "make_loaders",
    "match_output_prior",
    "noisy_index",
    "parameter_groups",
    "parse_devices",
    "prepare_training_data",
    "train",
    "warmup_factor",
]
