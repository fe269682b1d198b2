"""Training on PyTorch Lightning: one module for every task, data loaders, the run folder.

* ``module``: :class:`EventModule` (network + injected loss + Adam), :class:`OptimSettings`;
* ``loaders``: dataset -> features -> supervision -> window datasets -> loaders (audio runs);
* ``fit``: :func:`fit` / :func:`train` write a run folder (resume, checkpoints, calibration,
  ``model.pt``, ``metrics.json``).

The networks (``softloc.models``) and inference (``softloc.inference``) never import this package.
"""

from __future__ import annotations

from softloc.training.fit import (
    RUNTIME_FIELDS,
    TrainResult,
    file_f1_validator,
    fit,
    parse_devices,
    train,
)
from softloc.training.loaders import (
    TrainingData,
    check_supervision,
    collate_batch,
    make_loaders,
    noisy_index,
    prepare_training_data,
)
from softloc.training.module import EventModule, OptimSettings, cosine_factor

__all__ = [
    "RUNTIME_FIELDS",
    "EventModule",
    "OptimSettings",
    "TrainResult",
    "TrainingData",
    "check_supervision",
    "collate_batch",
    "cosine_factor",
    "file_f1_validator",
    "fit",
    "make_loaders",
    "noisy_index",
    "parse_devices",
    "prepare_training_data",
    "train",
]
