"""TEMPORARY stand-in for ``softloc.losses.registry.build_loss`` until the registry lands.

Implements the contract (``EventLoss``: ``requires``, ``forward(logits, *, targets, counts,
lengths, step, sigma_frames)``) with the functional losses; delete this file once
``softloc.losses.registry`` exists (``softloc.training.fit`` imports the registry first).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from softloc.losses import (
    AlphaSchedule,
    bce_loss,
    bootstrap_loss,
    loco_loss,
    one_sided_loss,
    smoothed_targets,
    softloc_loss,
)
from softloc.timebase import ms_to_frames

__all__ = ["build_loss"]

_REQUIRES = {
    "loco": frozenset({"counts"}),
    "softloc": frozenset({"targets", "counts", "sigma_frames"}),
}


class _AdapterLoss(nn.Module):
    def __init__(self, config, *, frame_rate: float, max_steps: int) -> None:
        super().__init__()
        self.name = config.name
        self.k_max = config.k_max
        self.reduction = config.reduction
        self.sigma_frames = ms_to_frames(config.softness_ms, frame_rate)
        self.alpha = AlphaSchedule(start=config.alpha_start_step, ramp=config.alpha_ramp_steps,
                                   floor=config.alpha_min, ceiling=config.alpha_max)
        self.requires = _REQUIRES.get(self.name, frozenset({"targets"}))

    def forward(self, logits, *, targets=None, counts=None, lengths=None, step=0,
                sigma_frames=None):
        name = self.name
        if name == "loco":
            return loco_loss(logits, counts, self.k_max, lengths=lengths, logits=True)
        targets = targets.clamp(max=1.0)
        if name == "softloc":
            sigma = sigma_frames if sigma_frames is not None else self.sigma_frames
            return softloc_loss(logits, targets, sigma, self.alpha(int(step)), self.k_max,
                                lengths=lengths, counts=counts, reduction=self.reduction,
                                logits=True)
        if name == "bce":
            return bce_loss(logits, targets, lengths=lengths, logits=True)
        if name == "smoothed-bce":
            heat = smoothed_targets(targets, self.sigma_frames, lengths=lengths, normalize="peak")
            return bce_loss(logits, heat, lengths=lengths, logits=True)
        if name == "one-sided":
            return one_sided_loss(torch.sigmoid(logits), targets, self.sigma_frames,
                                  lengths=lengths, reduction=self.reduction)
        if name == "bootstrap":
            return bootstrap_loss(logits, targets, lengths=lengths, logits=True)
        raise ValueError(f"build_loss: loss {name!r} is not in the temporary adapter")


def build_loss(config, *, frame_rate: float, max_steps: int) -> nn.Module:
    if not math.isfinite(frame_rate):
        raise ValueError("build_loss: `frame_rate` must be finite")
    return _AdapterLoss(config, frame_rate=frame_rate, max_steps=max_steps)
