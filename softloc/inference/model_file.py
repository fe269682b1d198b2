"""One self-describing model file for every softloc network (``RUN/model.pt``, ``drums.pt``).

A model file is a ``torch.save`` of plain data, read back with ``torch.load(weights_only=True)``
(no pickled classes, no code runs on loading)::

    {
      "format": "softloc-model",
      "format_version": 2,
      "model": {"name": "crnn", "args": {...}},   # softloc.models.build_model(name, **args)
      "input_kind": "audio",                      # the Detector's input stage (detector.py)
      "state_dict": {...},                        # the weights, CPU tensors
      "config": {...},                            # the resolved RunConfig as nested plain data
      "softloc_version": "0.2.0",
      "extra": {...},                             # anything else a task stores (plain data)
    }

So a file rebuilds its network by name and arguments alone (asteroid's ``serialize`` /
``from_pretrained``), whatever task wrote it, without importing Lightning or training code.
Format 1 files (``"format": "softloc-model/1"``, softloc 0.1, e.g. the first shipped
``drums.pt``) hold only the config and the weights; their audio CRNN is rebuilt from the config
(``softloc.models.model_from_config``) and they still load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softloc._io import atomic_save
from softloc._version import __version__
from softloc.config import RunConfig, config_from_dict, config_to_dict
from softloc.models.build import build_model, model_from_config, model_spec

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "ModelFile",
    "load_model_file",
    "read_model_file",
    "resolve_model_path",
    "save_model_file",
]

#: Name of the model file inside a run folder.
MODEL_FILE = "model.pt"
#: Value of the file's ``"format"`` key.
FORMAT = "softloc-model"
#: Version written by :func:`save_model_file`; 1 (softloc 0.1) is still read.
FORMAT_VERSION = 2
_FORMAT_V1 = "softloc-model/1"
_KEYS_V2 = ("model", "state_dict", "config")


@dataclass(frozen=True)
class ModelFile:
    """A model file read back by :func:`read_model_file`.

    Attributes:
        path: the file.
        model: the rebuilt network in eval mode (its ``forward`` gives logits).
        config: the run configuration stored with it.
        model_name: the network's name in ``softloc.models.MODEL_REGISTRY``.
        model_args: its constructor arguments.
        input_kind: what the network reads (``"audio"`` ...), the Detector's input stage.
        extra: other plain data the writer stored.
        format_version: 1 or 2.
        softloc_version: the softloc version that wrote the file.
    """

    path: Path
    model: nn.Module
    config: RunConfig
    model_name: str
    model_args: dict[str, Any]
    input_kind: str = "audio"
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    softloc_version: str = ""


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, bool | int | float | str) or value is None:
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"save_model_file: `{where}` keys must be strings, got {k!r}")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(
        f"save_model_file: `{where}` must be plain data (numbers, strings, bools, lists, dicts) "
        f"so that torch.load(weights_only=True) can read it, got {type(value).__name__}"
    )


def save_model_file(
    path: str | os.PathLike,
    model: nn.Module,
    config: RunConfig,
    *,
    extra: Mapping[str, Any] | None = None,
    input_kind: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``model`` (built by ``softloc.models.build_model``), ``config`` and ``extra``.

    The write is atomic (``softloc._io``): a crash leaves the old file or the new one.

    Args:
        path: the file (``RUN/model.pt``).
        model: a network built by ``softloc.models.build_model`` (or ``model_from_config``), so
            that its name and arguments are known.
        config: the resolved run configuration.
        extra: other plain data to store (e.g. a task's settings).
        input_kind: what the network reads: a key of
            ``softloc.inference.detector.INPUT_STAGES`` (default: the network's ``input_kind``
            attribute, e.g. ``"signal"`` for the sensor networks, else ``"audio"``).
        overwrite: replace an existing file (default True).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: ``model`` was not built by ``build_model``.
        TypeError: ``config`` is not a RunConfig, or ``extra`` / the model arguments are not plain
            data.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(
            f"save_model_file: `config` must be a RunConfig, got {type(config).__name__}"
        )
    name, args = model_spec(model)
    if input_kind is None:
        input_kind = str(getattr(model, "input_kind", "audio"))
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    _check_plain(args, "model args")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "args": args},
        "input_kind": str(input_kind),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config_to_dict(config),
        "softloc_version": __version__,
        "extra": extra,
    }
    path = Path(path)
    atomic_save(path, lambda f: torch.save(payload, f), overwrite=overwrite)
    return path


def _load_payload(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError ... (torch's long hints)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            first = ("it holds Python objects that cannot be loaded safely "
                     "(torch.load(weights_only=True)); a softloc model file holds tensors and "
                     "plain data only")
        raise ValueError(f"{path}: not a softloc model file: {first}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a softloc model file (expected a dict with 'format')")
    return payload


def _load_weights(path: Path, model: nn.Module, state_dict: Any, name: str) -> None:
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path}: `state_dict` must be a mapping of tensors")
    try:
        model.load_state_dict(dict(state_dict))
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines[1:] if ln), lines[0] if lines else "")
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        raise ValueError(f"{path}: the weights do not fit model {name!r} built from the file's "
                         f"config: {detail}{more}") from None


def _config_of(path: Path, data: Any) -> RunConfig:
    try:
        return config_from_dict(data if isinstance(data, dict) else {"_": data})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: the stored configuration is invalid: {err}") from None


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file (format 2, or format 1 of softloc 0.1) and rebuild its network.

    Args:
        path: the file (see :func:`resolve_model_path` for run folders).

    Returns:
        a :class:`ModelFile`; its ``model`` is in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a softloc model file, a newer format, a missing key, an unknown model
            name, or weights that do not fit (the message names the file).
    """
    path = Path(path)
    payload = _load_payload(path)
    fmt = payload.get("format")
    if fmt == _FORMAT_V1:
        for key in ("config", "state_dict"):
            if key not in payload:
                raise ValueError(f"{path}: model file (format 1) has no {key!r} entry")
        config = _config_of(path, payload["config"])
        model = model_from_config(config)
        name, args = model_spec(model)
        _load_weights(path, model, payload.get("state_dict"), name)
        return ModelFile(path, model.eval(), config, name, args, "audio", {}, 1,
                         str(payload.get("softloc_version", "")))
    if fmt != FORMAT:
        raise ValueError(f"{path}: not a softloc model file (expected format {FORMAT!r})")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format_version {version!r}; this softloc reads 1 and "
            f"{FORMAT_VERSION} (a newer softloc wrote it?)"
        )
    missing = [k for k in _KEYS_V2 if k not in payload]
    if missing:
        raise ValueError(f"{path}: model file has no {missing[0]!r} entry")
    spec = payload["model"]
    if not isinstance(spec, Mapping) or "name" not in spec or "args" not in spec:
        raise ValueError(f"{path}: `model` must be {{'name': ..., 'args': {{...}}}}, got {spec!r}")
    config = _config_of(path, payload["config"])
    try:
        model = build_model(spec["name"], **dict(spec["args"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot rebuild the model: {err}") from None
    _load_weights(path, model, payload["state_dict"], spec["name"])
    return ModelFile(
        path, model.eval(), config, str(spec["name"]), dict(spec["args"]),
        str(payload.get("input_kind", "audio")), dict(payload.get("extra") or {}), 2,
        str(payload.get("softloc_version", "")),
    )


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """``(model, config, extra)`` of a model file; see :func:`read_model_file`."""
    mf = read_model_file(path)
    return mf.model, mf.config, mf.extra


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The model file of a run folder (``RUN/model.pt``), or ``path`` itself when it is a file.

    Raises:
        FileNotFoundError: neither a run folder with a model file nor a file.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"{p}: run folder has no {MODEL_FILE}; expected a folder written by "
                "`softloc train` or a model file"
            )
        return p / MODEL_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such run folder or model file")
    return p
