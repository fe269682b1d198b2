"""Initialisation steps of the training recipe that need data: unit-variance convolutions
(:func:`unit_variance_convolutions`) and the exact LoCo eq. 15 prior (:func:`match_output_prior`).

LoCo §5.2 initialises the pre-sigmoid predictions to the bias of eq. 15,
``b = log((1 - ω^(1/T)) / ω^(1/T))``, so that the initial count distribution of a window of ``T``
frames puts mass ω on "no event" and the first count losses are moderate. The paper adds ``b``
to predictions assumed to be near 0 at initialisation; with the official code's N(0, 1) head
weights they are not: each class starts ``b`` plus a random offset of a few logits (seen on the
drum CRNN: from −3.6 to +5.8 around ``b`` = −5.8 over six seeds, i.e. expected counts per window
from 0.01 to 75), which is what the first updates then have to undo.

:func:`match_output_prior` makes eq. 15 hold exactly: it shifts each class's output bias so that
the mean initial logit of the class over one training batch equals ``b``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["match_output_prior", "output_layers", "unit_variance_convolutions"]


def output_layers(model: nn.Module, n_classes: int) -> list[nn.Linear] | None:
    """The final ``out`` linear layers of a LoCo head (``softloc.models.heads``), in class order.

    One layer with ``n_classes`` outputs (a multi-class network) or one per class (a per-class
    network, ``nets.<c>.out``); ``None`` when the model has no such head.
    """
    layers = [m for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and name.split(".")[-1] == "out"]
    if sum(m.out_features for m in layers) != n_classes or not layers:
        return None
    return layers


@torch.no_grad()
def match_output_prior(model: nn.Module, batch: Mapping[str, Any], *,
                       output_bias: float | Sequence[float]) -> list[float] | None:
    """Shift the output biases so the mean initial logit of every class is ``output_bias``
    (one value for all classes, or one per class).

    Args:
        model: the freshly initialised network; ``model(inputs, lengths)`` -> logits
            ``(batch, class, time)``.
        batch: one training batch (``"inputs"``, ``"lengths"``).
        output_bias: the target logit, LoCo eq. 15 (``softloc.models.heads.prior_output_bias``),
            or one per class (:func:`count_prior_biases`).

    Raises:
        ValueError: ``output_bias`` holds a number of values other than one or the classes'.

    Returns:
        the per-class shifts applied, or ``None`` (nothing changed) when the model has no LoCo
        head (:func:`output_layers`).
    """
    was_training = model.training
    model.eval()
    lengths = batch.get("lengths")
    logits = model(batch["inputs"], lengths)  # (B, C, T)
    model.train(was_training)
    layers = output_layers(model, logits.shape[1])
    if layers is None:
        return None
    steps = torch.arange(logits.shape[-1])
    if lengths is None:
        mask = torch.ones(logits.shape[0], logits.shape[-1], dtype=torch.bool)
    else:
        mask = steps[None, :] < lengths[:, None]  # (B, T)
    weights = mask[:, None, :].to(logits.dtype)  # (B, 1, T)
    mean = (logits * weights).sum((0, 2)) / weights.sum((0, 2)).clamp(min=1)  # (C,)
    target = torch.as_tensor(output_bias, dtype=mean.dtype)
    if target.dim() > 0 and target.shape != mean.shape:
        raise ValueError(f"match_output_prior: `output_bias` must be one number or one per class "
                         f"({mean.numel()}), got {target.numel()} values")
    shifts = (target - mean).tolist()
    c = 0
    for layer in layers:
        n = layer.out_features
        layer.bias.add_(torch.tensor(shifts[c:c + n], dtype=layer.bias.dtype))
        c += n
    return [float(s) for s in shifts]


def count_prior_biases(counts: torch.Tensor, window_steps: int, fallback: float) -> list[float]:
    """Per-class initial logits whose expected count per window is the class's mean count.

    LoCo eq. 15 with the rate taken from the data: ``sigmoid(b_c) * window_steps`` = the mean of
    ``counts[:, c]``, i.e. ``b_c = logit(mean_c / window_steps)`` (the rate capped at 1/2).

    Args:
        counts: ``(batch, class)`` events per training window.
        window_steps: steps (frames) of one training window, >= 1.
        fallback: the bias of classes with no event in ``counts``.

    Returns:
        one bias per class.
    """
    rate = counts.to(torch.float64).mean(0) / window_steps
    bias = torch.logit(rate.clamp(max=0.5))
    return torch.where(rate > 0, bias, torch.full_like(bias, fallback)).tolist()


_CONVS = (nn.Conv1d, nn.Conv2d)


@torch.no_grad()
def unit_variance_convolutions(model: nn.Module, batch: Mapping[str, Any]) -> list[float]:
    """Layer-sequential unit-variance initialisation of the convolutions (LSUV, Mishkin & Matas
    2016) on one training batch.

    In forward order, each convolution's weights and bias are divided by the standard deviation
    of its output on ``batch``, so that every convolution starts with unit output variance.
    With Glorot weights, ReLU and max-pooling, the drum CRNN's activations otherwise shrink by
    ~2.5x per layer (time-std 0.67 at the input, 0.014 after five convolutions, 0.005 after the
    LSTM): the initial network is nearly input-independent and the count loss has little to
    start from.

    Args:
        model: the freshly initialised network.
        batch: one training batch (``"inputs"``, ``"lengths"``).

    Returns:
        the factor each convolution was divided by, in forward order (empty: no convolution).
    """
    convs = [m for m in model.modules() if isinstance(m, _CONVS)]
    was_training = model.training
    model.eval()
    factors = []
    for conv in convs:
        seen: list[torch.Tensor] = []
        handle = conv.register_forward_hook(lambda mod, inp, out, seen=seen: seen.append(out))
        try:
            model(batch["inputs"], batch.get("lengths"))
        finally:
            handle.remove()
        std = float(seen[0].float().std()) if seen else 0.0
        if std > 0 and std == std:
            conv.weight.div_(std)
            if conv.bias is not None:
                conv.bias.div_(std)
            factors.append(std)
    model.train(was_training)
    return factors
