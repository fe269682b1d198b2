"""Run configuration: frozen dataclasses per concern, composed into one :class:`RunConfig`.

Sections: ``features`` (front end), ``model`` (network sizes), ``loss`` (objective),
``supervision`` (which labels a run trains on: counts, onsets or both; annotation folders and
their softness; label noise), ``data`` (windows, augmentation, batches), ``train`` (optimiser
and trainer), ``inference`` (decoding and its calibration), and ``classes``.

Conventions: a configuration is plain data. It is read from / written to YAML with
:func:`load_config` / :func:`save_config`, presets are YAML files shipped in ``softloc/presets/``
(:func:`load_preset`), and single values are changed by dotted path with :func:`apply_overrides`
(``"train.learning_rate=1e-3"``). Unknown keys and values of the wrong type are errors that name the
key (and the file), never silently ignored. Keys missing from a YAML file take the dataclass
defaults, which are the ``drums`` preset's values.

The resolved configuration is stored in every run folder and inside the model file, so a run
rebuilds its model alone (``softloc.inference.Detector.load``). Files written before a section
existed (e.g. ``supervision``) load with that section's defaults.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from softloc._io import atomic_write_text
from softloc.features import FrontEndConfig
from softloc.losses.registry import LOSS_NAMES, canonical_loss_name

__all__ = [
    "ModelConfig",
    "LossConfig",
    "SupervisionConfig",
    "DataConfig",
    "TrainConfig",
    "InferenceConfig",
    "RunConfig",
    "CALIBRATION_SOURCES",
    "LABEL_MODES",
    "LOSS_NAMES",
    "available_presets",
    "load_preset",
    "load_config",
    "save_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
]


def _loss_name(name: str) -> str:
    """``loss.name`` in the registry's spelling, or a ValueError naming ``loss.name``."""
    try:
        return canonical_loss_name(name)
    except ValueError:
        raise ValueError(f"`loss.name` must be one of {LOSS_NAMES}, got {name!r}") from None


@dataclass(frozen=True)
class ModelConfig:
    """CRNN sizes (fact sheet §3.1; defaults = drums).

    Attributes:
        conv_filters: output channels per [3 x 4] conv layer.
        pool_sizes: frequency-only max-pool size after each conv.
        kernel_time: conv kernel extent in frames.
        kernel_freq: conv kernel extent in feature bins.
        lstm_units: LSTM hidden size.
        hidden_units: sigmoid hidden layer of the head.
        prior_omega: Pr(no event of a class in a training window) encoded in the output bias
            (LoCo eq. 15 over the window's frames). The SoftLoc/drum code used exponent 2/T, i.e.
            omega = 0.64 with exponent 1/T; LoCo used 0.8.
        per_class: one network per class (the papers) instead of one multi-class network.
        input_scale: constant factor on the log-mel/delta features (dB); 1.0 = as computed, 2.0
            = the official 20*log10; 0.05 (dB/20) keeps the high learning rates stable.
    """

    conv_filters: tuple[int, ...] = (8, 16, 16, 16, 16, 16)
    pool_sizes: tuple[int, ...] = (2, 2, 2, 2, 3, 3)
    kernel_time: int = 3
    kernel_freq: int = 4
    lstm_units: int = 24
    hidden_units: int = 16
    prior_omega: float = 0.64
    per_class: bool = False
    input_scale: float = 0.05


@dataclass(frozen=True)
class LossConfig:
    """Training objective.

    Attributes:
        name: one of ``LOSS_NAMES`` (``softloc.losses.registry`` says what each one needs
            and trains on): ``loco`` (counts only, LoCo eq. 7), ``softloc`` (timestamps with
            softness, SoftLoc eq. 5), ``bce`` (exact timestamps, frame-wise binary cross-entropy,
            the fully supervised reference), ``smoothed-bce`` (cross-entropy against a peak-1
            Gaussian heat map of the labels), ``one-sided`` (labels smoothed only, SoftLoc
            baseline), ``bootstrap`` (bootstrapping baseline) ... Underscores are accepted and
            stored as hyphens.
        k_max: top (absorbing) count bin; drums used 23 bins (k_max = 22).
        softness_ms: sigma of the SoftLoc Gaussian in milliseconds.
        alpha_min: SoftLoc weight of the count term before/at the start of the ramp.
        alpha_max: SoftLoc weight of the count term at the end of the ramp.
        alpha_start_step: optimiser step where the alpha ramp starts.
        alpha_ramp_steps: steps over which alpha rises (slope = 1 / alpha_ramp_steps, clipped).
        reduction: reduction of the time-summing losses (``softloc``, ``one_sided``):
            ``classes`` (the original: sum over batch and time / classes, so the localisation term
            keeps its weight against the count term) or ``mean`` (per row, batch-size free).
    """

    name: str = "loco"
    k_max: int = 22
    softness_ms: float = 100.0
    alpha_min: float = 0.2
    alpha_max: float = 0.9
    alpha_start_step: int = 30000
    alpha_ramp_steps: int = 100000
    reduction: str = "classes"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _loss_name(self.name))
        if self.reduction not in ("classes", "mean"):
            raise ValueError(
                f"LossConfig: `reduction` must be 'classes' or 'mean', got {self.reduction!r}"
            )


#: Supervision modes (``supervision.labels``).
LABEL_MODES = ("counts", "onsets", "mixed")


@dataclass(frozen=True)
class SupervisionConfig:
    """Which labels a run trains on (SoftLoc §4.4; ``softloc.data.supervision``).

    Attributes:
        labels: ``counts`` (``counts.csv`` windows only, LoCo), ``onsets`` (windows cut from
            annotated files, counts derived from the events), or ``mixed`` (annotated files as
            in ``onsets``, training files without annotations from their ``counts.csv`` windows,
            count term only).
        annotations: annotation folders relative to the dataset root (or absolute), one per
            annotator, each ``"DIR"`` or ``"DIR:SOFTNESS_MS"``; the first one also gives the
            validation labels.
        softness_csv: per-file softness table (``file,softness_ms``); ``None`` = the dataset's
            ``softness.csv`` when there is one.
        label_noise: perturb the training timestamps, e.g. ``"normal:100ms"``
            (``softloc.noise``); ``None`` = as annotated.
    """

    labels: str = "counts"
    annotations: tuple[str, ...] = ("annotations",)
    softness_csv: str | None = None
    label_noise: str | None = None

    def __post_init__(self) -> None:
        if self.labels not in LABEL_MODES:
            raise ValueError(
                f"SupervisionConfig: `labels` must be one of {LABEL_MODES}, got {self.labels!r}"
            )
        if not self.annotations:
            raise ValueError(
                "SupervisionConfig: `annotations` is empty; expected at least one folder"
            )


@dataclass(frozen=True)
class DataConfig:
    """Training windows and augmentation (fact sheet §2.5, drums).

    Attributes:
        window_s: training/inference window length in seconds.
        hop_s: hop between the training windows cut from annotated files (onsets mode).
        rate_factors: precomputed sample-rate variation factors (7/8 .. 9/8); ``[1.0]`` disables.
        stack_prob: probability of summing a second window into a training window (extract
            stacking; counts and targets add).
        variable_length: randomly shorten training windows (LoCo §4.5).
        valid_fraction: share of stems used for validation when ``splits/`` is absent.
        test_fraction: share of stems used for test when ``splits/`` is absent.
        batch_size: training batch size.
        num_workers: DataLoader worker processes (0 = in the main process).
    """

    window_s: float = 1.5
    hop_s: float = 0.5
    rate_factors: tuple[float, ...] = (0.875, 1.0, 1.125)
    stack_prob: float = 0.0
    variable_length: bool = True
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    batch_size: int = 32
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the Lightning trainer.

    Attributes:
        learning_rate: Adam learning rate. The paper used 1e-4 for 150k steps; the presets use a
            larger rate and far fewer steps so that training fits in minutes on a CPU.
        max_steps: optimiser steps.
        lr_schedule: ``constant`` (the papers) or ``cosine`` (decay to 5% of the rate at
            ``max_steps``; sharpens the count-trained outputs at the end of short schedules).
        grad_clip_norm: global gradient-norm clip (10 in the official code).
        val_every_n_steps: validation (and checkpoint selection) interval in steps.
        seed: seed of everything (data sampling, initialisation).
        accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto`` ...).
        devices: Lightning devices (``"1"``, ``"2"``, ``"auto"``).
        num_nodes: nodes for multi-node DDP.
        strategy: Lightning strategy (``auto``, ``ddp`` ...).
        precision: Lightning precision (``32-true``, ``bf16-mixed`` ...).
        num_threads: torch CPU threads (0 = torch's default).
    """

    learning_rate: float = 1e-2
    max_steps: int = 800
    lr_schedule: str = "constant"
    grad_clip_norm: float = 10.0
    val_every_n_steps: int = 200
    seed: int = 0
    accelerator: str = "cpu"
    devices: str = "1"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"TrainConfig: `lr_schedule` must be 'constant' or 'cosine', "
                f"got {self.lr_schedule!r}"
            )


#: Accepted values of ``inference.calibrate_with``.
CALIBRATION_SOURCES = ("auto", "timestamps", "counts")


@dataclass(frozen=True)
class InferenceConfig:
    """Whole-file detection (fact sheet §5).

    Attributes:
        threshold: event threshold on p(t) (0.4 for drums in the official code).
        hop_s: hop between the overlapping inference windows.
        time_offset_s: added to every detected time; calibrated on validation data after
            training when timestamps are available (``calibrate_offset``).
        min_distance_s: minimum distance between two events of one class (peak picking).
        tta_factors: extra sample-rate factors for test-time augmentation (empty = off).
        calibrate_offset: estimate per-class time offsets on validation annotations after
            training (when the validation files have timestamps).
        calibrate_threshold: choose per-class thresholds on the validation files: maximising F1
            against their timestamps, or, with counts only, minimising the count error of the
            detections in the counts.csv windows.
        calibrate_with: ``"auto"`` (timestamps when the validation files have them, else
            counts), ``"timestamps"`` or ``"counts"`` (thresholds only; a count carries no time,
            so offsets stay as they are).
        batch_size: windows per forward pass (8: the CRNN's activations stay in cache).
        class_offsets_s: per-class offsets added on top of ``time_offset_s`` (empty = none);
            written by the calibration.
        class_thresholds: per-class thresholds replacing ``threshold`` (empty = ``threshold``);
            written by the calibration.
    """

    threshold: float = 0.4
    hop_s: float = 0.5
    time_offset_s: float = 0.0
    min_distance_s: float = 0.03
    tta_factors: tuple[float, ...] = ()
    calibrate_offset: bool = True
    calibrate_threshold: bool = True
    calibrate_with: str = "auto"
    batch_size: int = 8
    class_offsets_s: tuple[float, ...] = ()
    class_thresholds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.calibrate_with not in CALIBRATION_SOURCES:
            raise ValueError(
                f"InferenceConfig: `calibrate_with` must be one of {CALIBRATION_SOURCES}, "
                f"got {self.calibrate_with!r}"
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; stored as ``config.yaml`` in the run folder.

    Attributes:
        classes: class labels in output order (filled from the dataset when empty).
    """

    features: FrontEndConfig = field(default_factory=FrontEndConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    classes: tuple[str, ...] = ()


# ---------------------------------------------------------------- dict <-> dataclass


class ConfigError(ValueError):
    """A configuration value or key is invalid (a ValueError naming the dotted key)."""


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping, got {value!r}")
        return _from_dict(tp, value, key + ".")  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"`{key}`: invalid value {value!r}")
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"`{key}` must be a list, got {value!r}")
        return tuple(_convert(v, elem, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads '1e-3' (no dot) as a string.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"`{key}` must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"`{key}` must be a string, got {value!r}")
        return str(value)
    return value


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key `{prefix}{unknown[0]}`; expected one of: {', '.join(sorted(names))}"
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"invalid `{prefix.rstrip('.') or cls.__name__}`: {err}") from err


def config_from_dict(data: dict) -> RunConfig:
    """A :class:`RunConfig` from nested plain data; missing keys take the defaults.

    Raises:
        ValueError: unknown key or wrong value type; the message names the dotted key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config_from_dict: expected a mapping, got {type(data).__name__}")
    return _from_dict(RunConfig, data)


def config_to_dict(config: Any) -> dict:
    """Nested plain data (lists instead of tuples) of a config dataclass, for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(config)


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a YAML run configuration; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ValueError(f"{path}: cannot read config: {err}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def save_config(config: RunConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML atomically (temp file + rename)."""
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))


def available_presets() -> list[str]:
    """Names of the presets shipped in ``softloc/presets/``."""
    root = resources.files("softloc") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> RunConfig:
    """The shipped preset ``name`` (``drums``, ``demo``, ``piano-loco``, ``piano-softloc``)."""
    names = available_presets()
    if name not in names:
        raise ValueError(f"load_preset: unknown preset {name!r}; available: {', '.join(names)}")
    res = resources.files("softloc") / "presets" / f"{name}.yaml"
    data = yaml.safe_load(res.read_text()) or {}
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"preset {name}.yaml: {err}") from err


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Return ``config`` with ``"dotted.key=value"`` overrides applied (values parsed as YAML).

    Example: ``apply_overrides(cfg, ["train.learning_rate=1e-3", "data.rate_factors=[1.0]"])``.

    Raises:
        ValueError: malformed override, unknown key or wrong value type.
    """
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected 'dotted.key=value'")
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: unknown key `{'.'.join(parts[: i + 1])}`")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key `{key.strip()}`")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return config_from_dict(data)
