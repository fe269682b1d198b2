"""Run configuration: frozen dataclasses per concern, composed into one :class:`RunConfig`.

Sections: ``features`` (front end), ``model`` (network sizes), ``loss`` (objective),
``supervision`` (which labels a run trains on: counts, onsets or both; annotation folders and
their softness; label noise), ``data`` (windows, augmentation, batches), ``train`` (optimiser
and trainer), ``inference`` (decoding and its calibration), and ``classes``.

Conventions: a configuration is plain data. It is read from / written to YAML with
:func:`load_config` / :func:`save_config`, presets are YAML files shipped in ``softloc/presets/``
(:func:`load_preset`), and single values are changed by dotted path with :func:`apply_overrides`
(``"train.learning_rate=1e-3"``). Unknown keys, values of the wrong type and values out of range
(a batch size of 0, a NaN learning rate, a threshold of 2 ...) are errors that name the key (and
the file) when the configuration is built, before any work, never silently ignored. Keys missing
from a YAML file are layered on a base configuration: the dataclass defaults, which are the
``drums`` preset's values (``tests/test_config.py`` checks that), or the preset given as
``load_config(path, base="demo")``.

The resolved configuration is stored in every run folder and inside the model file, so a run
rebuilds its model alone (``softloc.inference.Detector.load``). Files written before a section
existed (e.g. ``supervision``) load with that section's defaults.
"""

from softloc.config.files import (
    ConfigError,
    apply_overrides,
    available_presets,
    config_from_dict,
    config_to_dict,
    load_config,
    load_preset,
    save_config,
)
from softloc.config.sections import (
    CALIBRATION_SOURCES,
    LABEL_MODES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    DataConfig,
    InferenceConfig,
    LossConfig,
    ModelConfig,
    RunConfig,
    SupervisionConfig,
    TrainConfig,
    parse_devices,
)
from softloc.losses.registry import LOSS_NAMES

__all__ = [
    "ModelConfig",
    "LossConfig",
    "SupervisionConfig",
    "DataConfig",
    "TrainConfig",
    "InferenceConfig",
    "RunConfig",
    "CALIBRATION_SOURCES",
    "ConfigError",
    "LABEL_MODES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "PRECISIONS",
    "LOSS_NAMES",
    "available_presets",
    "load_preset",
    "load_config",
    "save_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "parse_devices",
]
