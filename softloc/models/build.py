"""Networks by name: ``build_model(name, **args)``, and the audio CRNN of a run configuration.

Conventions: a network that softloc can save and load is named in :data:`MODEL_REGISTRY` (name ->
``module:class``, imported only when that network is built) and is rebuilt from its name and its
constructor arguments alone, so a model file needs neither pickled classes nor the training code
(``softloc.inference.model_file``). Arguments are plain data (numbers, strings, booleans, lists,
dicts); :func:`build_model` remembers them on the network, :func:`model_spec` reads them back.

Every registered network maps its input to LOGITS ``(batch, class, time)``; ``torch.sigmoid``
gives p(t).

This module never imports Lightning or training code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from softloc.models.heads import prior_output_bias
from softloc.timebase import duration_frames

__all__ = [
    "MODEL_REGISTRY",
    "build_model",
    "crnn_spec",
    "model_from_config",
    "model_spec",
    "window_frames",
]

#: Network name -> ``"module:class"``. Add a line here to make a network loadable from a model file.
MODEL_REGISTRY: dict[str, str] = {
    "crnn": "softloc.models.crnn:CRNN",
    "per-class-crnn": "softloc.models.crnn:PerClassCRNN",
    "digits": "softloc.models.digits:DigitDetector",
    "fc-lstm": "softloc.models.sensor:FCLSTM",
    "signal-crnn": "softloc.models.sensor:SignalCRNN",
    "pitch-band-crnn": "softloc.models.piano:PitchBandCRNN",
    "harmonic-key": "softloc.models.harmonic:HarmonicKeyNet",
    "ed-tcn": "softloc.models.tcn:EDTCN",
    "ms-tcn": "softloc.models.tcn:MSTCN",
}

# The attribute under which build_model stores (name, args) on the network.
_SPEC_ATTR = "softloc_model_spec"


def _plain(value: Any, where: str) -> Any:
    """Arguments as plain data (tuples -> lists), or a TypeError naming the argument."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(
        f"build_model: argument `{where}` must be plain data (number, string, bool, list, dict) "
        f"so that a model file can store it, got {type(value).__name__}"
    )


def _model_class(name: str) -> type[nn.Module]:
    if name not in MODEL_REGISTRY:
        raise ValueError(
            f"build_model: unknown model {name!r}; expected one of {sorted(MODEL_REGISTRY)}"
        )
    module, _, attr = MODEL_REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_model(name: str, **args: Any) -> nn.Module:
    """A freshly initialised network ``name`` built with ``args``; it remembers both.

    Args:
        name: a key of :data:`MODEL_REGISTRY` (``"crnn"``, ``"per-class-crnn"``, ``"digits"``).
        **args: the network's constructor arguments, as plain data.

    Returns:
        the network (``nn.Module``); :func:`model_spec` returns ``(name, args)`` of it.

    Raises:
        ValueError: unknown ``name``, or an argument the network does not take (the message lists
            the ones it takes).
        TypeError: an argument that is not plain data.

    Example:
        >>> net = build_model("crnn", n_mels=16, n_classes=2, conv_filters=[4], pool_sizes=[32],
        ...                   lstm_units=4, hidden_units=3)
        >>> model_spec(net)[0]
        'crnn'
    """
    cls = _model_class(name)
    plain = {k: _plain(v, k) for k, v in args.items()}
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(plain) - set(params))
    if unknown and not takes_any:
        raise ValueError(
            f"build_model: model {name!r} takes no argument {unknown[0]!r}; expected some of "
            f"{sorted(params)}"
        )
    model = cls(**plain)
    setattr(model, _SPEC_ATTR, (name, plain))
    return model


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` with which :func:`build_model` built ``model``.

    Raises:
        ValueError: ``model`` was not built by :func:`build_model` (its file could not rebuild it).
    """
    spec = getattr(model, _SPEC_ATTR, None)
    if spec is None:
        raise ValueError(
            f"model_spec: this {type(model).__name__} was not built by "
            "softloc.models.build_model, so a model file cannot rebuild it; build it with "
            "build_model(name, **args) (names: " + ", ".join(sorted(MODEL_REGISTRY)) + ")"
        )
    name, args = spec
    return name, dict(args)


def window_frames(config: Any) -> int:
    """Frames of one window of ``config.data.window_s`` seconds at the front end's frame rate."""
    return duration_frames(config.data.window_s, config.features.frame_rate)


def crnn_spec(config: Any) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of the audio CRNN that ``config`` (a ``RunConfig``) describes.

    The output bias encodes Pr(no event of a class in one window) = ``model.prior_omega`` over
    the window's frames (LoCo eq. 15, :func:`softloc.models.heads.prior_output_bias`).

    Raises:
        ValueError: ``config.classes`` is empty (the number of outputs is unknown).
    """
    if not config.classes:
        raise ValueError("model_from_config: `config.classes` is empty; set the class labels")
    m = config.model
    args = {
        "n_mels": config.features.n_mels,
        "n_classes": len(config.classes),
        "conv_filters": list(m.conv_filters),
        "pool_sizes": list(m.pool_sizes),
        "lstm_units": m.lstm_units,
        "hidden_units": m.hidden_units,
        "output_bias": prior_output_bias(window_frames(config), m.prior_omega),
        "kernel_time": m.kernel_time,
        "kernel_freq": m.kernel_freq,
        "input_scale": m.input_scale,
    }
    return ("per-class-crnn" if m.per_class else "crnn"), args


def model_from_config(config: Any) -> nn.Module:
    """A freshly initialised audio CRNN (or per-class CRNN) for ``config`` (a ``RunConfig``),
    the piano-key network (``model.name: harmonic-key``, ``softloc.models.harmonic``) or the
    sensor network ``config.model.name`` names (``softloc.models.sensor.sensor_spec``).

    Raises:
        ValueError: ``config.classes`` is empty.
    """
    model_name = getattr(config.model, "name", "crnn")
    if model_name == "harmonic-key":
        from softloc.models.harmonic import harmonic_key_spec as spec
    elif model_name != "crnn":
        from softloc.models.sensor import sensor_spec as spec
    else:
        spec = crnn_spec
    name, args = spec(config)
    return build_model(name, **args)
