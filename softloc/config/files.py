"""Run configurations to and from YAML, presets and ``key=value`` overrides.

A YAML file may leave keys out: they are layered on a base configuration (the dataclass
defaults = the ``drums`` preset, or the preset named as ``base``). Unknown keys and values of the
wrong type are a :class:`ConfigError` naming the dotted key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from softloc._io import atomic_write_text
from softloc.config.sections import RunConfig

__all__ = [
    "ConfigError",
    "available_presets",
    "load_preset",
    "load_config",
    "save_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
]


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


def _layered(base: dict, data: dict) -> dict:
    """``base`` with ``data``'s values put over it, section by section (mappings merge)."""
    out = dict(base)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _layered(out[key], value)
        else:
            out[key] = value
    return out


def _base_dict(base: RunConfig | str | None) -> dict:
    if base is None:
        return {}
    if isinstance(base, str):
        return config_to_dict(load_preset(base))
    if isinstance(base, RunConfig):
        return config_to_dict(base)
    raise TypeError(
        f"config_from_dict: `base` must be a RunConfig, a preset name or None, got "
        f"{type(base).__name__}"
    )


def config_from_dict(data: dict, *, base: RunConfig | str | None = None) -> RunConfig:
    """A :class:`RunConfig` from nested plain data; missing keys are taken from ``base``.

    Args:
        data: nested mappings (a parsed YAML file).
        base: what missing keys take: ``None`` = the dataclass defaults (= the ``drums``
            preset), a preset name (``"demo"``) or a :class:`RunConfig`.

    Raises:
        ValueError: unknown key, wrong value type or a value out of range; the message names
            the dotted key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config_from_dict: expected a mapping, got {type(data).__name__}")
    _check_keys(RunConfig, data)
    return _from_dict(RunConfig, _layered(_base_dict(base), data))


def _check_keys(cls: type, data: dict, prefix: str = "") -> None:
    """Unknown keys of ``data`` are errors (before layering hides nothing, names the key)."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"unknown key `{prefix}{key}`; expected one of: {', '.join(sorted(names))}"
            )
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_keys(hints[key], value, f"{prefix}{key}.")


def config_to_dict(config: Any) -> dict:
    """Nested plain data (lists instead of tuples) of a config dataclass, for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(config)


def load_config(path: str | os.PathLike, *, base: RunConfig | str | None = None) -> RunConfig:
    """Read a YAML run configuration; keys it lacks are taken from ``base``.

    Args:
        path: the YAML file.
        base: ``None`` (the dataclass defaults, which are the ``drums`` preset), a preset name
            such as ``"demo"`` (what ``softloc train --config FILE --preset demo`` layers on), or
            a :class:`RunConfig`.

    Raises:
        ValueError: an unreadable file, invalid YAML, an unknown key or a bad value; the
            message names the file and the key.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ValueError(f"{path}: cannot read config: {err}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    try:
        return config_from_dict(data, base=base)
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
