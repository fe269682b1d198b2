"""The one LightningModule of softloc: a network, an injected loss, the optimiser recipe
(asteroid's ``System``).

:class:`EventModule` knows nothing about audio, digits or sensors, nor about loss names: the
network maps ``batch["inputs"]`` (and ``batch["lengths"]``) to LOGITS ``(batch, class, time)``,
and the loss module (built by ``softloc.losses.registry.build_loss``) receives those logits and
the labels it declares in its ``requires`` attribute (``"targets"`` ``(batch, class, time)``,
``"counts"`` ``(batch, class)``), those of its ``optional`` attribute that the batch carries
(``"sigma_frames"`` ``(batch,)``: per-item softness, ``inf`` for count-only items), plus
``lengths`` and the optimiser ``step`` for its own schedules (SoftLoc eq. 4's alpha). No
loss-name ``if`` chains here.

Validation logs ``val/loss``, the exact-count rate ``val/count_acc`` and ``val/count_mae`` of the
most likely count (LoCo eq. 9, when batches carry ``counts`` and ``count_k_max`` is set), any
metrics of an optional ``validator(model) -> {name: value}`` (e.g. F1 on whole validation
files), and ``val/score``: the validator's ``score_key`` when it gives one, else
``val/count_acc`` (what checkpoint selection maximises).

Batches are dicts: ``"inputs"`` (the network input), ``"lengths"`` ``(batch,)`` valid steps, and
the label keys (see ``softloc.training.loaders``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from softloc.counting import count_distribution
from softloc.losses.registry import EventLoss

__all__ = ["EventModule", "OptimSettings", "cosine_factor", "parameter_groups", "warmup_factor"]

#: Learning-rate schedules of :class:`OptimSettings`.
LR_SCHEDULES = ("constant", "cosine")
#: Optimisers of :class:`OptimSettings`.
OPTIMIZERS = ("adam", "adamw")


@dataclass(frozen=True)
class OptimSettings:
    """The optimiser and its learning-rate schedule (the training recipe).

    The learning rate at optimiser step ``s`` (counted from 0) is
    ``learning_rate * warmup_factor(s) * schedule_factor(s)``: a linear warm-up over the first
    ``warmup_steps`` steps (:func:`warmup_factor`), then ``constant`` or ``cosine`` decay to
    5% at ``max_steps`` (:func:`cosine_factor`).

    Attributes:
        learning_rate: peak learning rate (finite, > 0).
        max_steps: optimiser steps of the run (the cosine schedule ends there).
        lr_schedule: ``constant`` or ``cosine``.
        optimizer: ``adam`` (the papers) or ``adamw`` (decoupled weight decay on weight
            matrices and kernels only: biases, including the LoCo eq. 15 output prior, and
            other 1-D parameters are not decayed).
        weight_decay: AdamW's decoupled weight decay (ignored by ``adam``).
        warmup_steps: steps of linear warm-up (0 = none).

    The defaults are the papers' plain Adam; :meth:`from_config` gives a run configuration's
    recipe (``softloc.config.TrainConfig``: AdamW, warm-up, cosine by default).
    """

    learning_rate: float = 1e-2
    max_steps: int = 800
    lr_schedule: str = "constant"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        fn = "OptimSettings"
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"{fn}: `lr_schedule` must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"{fn}: `optimizer` must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"{fn}: `learning_rate` must be a finite number > 0, got {self.learning_rate}"
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(
                f"{fn}: `weight_decay` must be a finite number >= 0, got {self.weight_decay}"
            )
        if self.max_steps < 1 or self.warmup_steps < 0:
            raise ValueError(
                f"{fn}: need `max_steps` >= 1 and `warmup_steps` >= 0, got {self.max_steps} "
                f"and {self.warmup_steps}"
            )

    @classmethod
    def from_config(cls, train: Any) -> OptimSettings:
        """The recipe of a ``softloc.config.TrainConfig``."""
        return cls(float(train.learning_rate), int(train.max_steps), str(train.lr_schedule),
                   optimizer=str(train.optimizer), weight_decay=float(train.weight_decay),
                   warmup_steps=int(train.warmup_steps))

    def lr_factor(self, step: int) -> float:
        """The factor on ``learning_rate`` at optimiser step ``step`` (warm-up x schedule)."""
        factor = warmup_factor(step, self.warmup_steps)
        if self.lr_schedule == "cosine":
            factor *= cosine_factor(step, self.max_steps)
        return factor


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: ``(step + 1) / warmup_steps`` for the first steps, then 1.

    Example:
        >>> [warmup_factor(s, 4) for s in range(5)]
        [0.25, 0.5, 0.75, 1.0, 1.0]
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def cosine_factor(step: int, max_steps: int, *, floor: float = 0.05) -> float:
    """Learning-rate factor of the cosine schedule: 1 at step 0, ``floor`` from ``max_steps``.

    ``floor + (1 - floor) * (1 + cos(pi * min(step / max_steps, 1))) / 2``.

    Example:
        >>> cosine_factor(0, 100), round(cosine_factor(50, 100), 3), cosine_factor(100, 100)
        (1.0, 0.525, 0.05)
    """
    progress = min(step / max(max_steps, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight matrices and kernels (``ndim >= 2``) decayed, biases and other
    1-D parameters (the LoCo eq. 15 output prior among them) not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    keep = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": keep, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class EventModule(L.LightningModule):
    """One Lightning module for every task: ``model`` trained by the injected ``loss``.

    Args:
        model: the network; ``model(inputs, lengths)`` -> logits ``(batch, class, time)``.
        loss: an ``EventLoss`` (``softloc.losses.registry.build_loss``): ``requires`` names the
            batch keys it needs, ``optional`` (if any) keys it reads when the batch has them;
            ``loss(logits, *, lengths=, step=, <those keys>=)``.
        optim: Adam settings and schedule.
        count_k_max: top count bin for the validation count metrics (``loss.k_max``; ``None``
            switches them off).
        validator: optional ``validator(model) -> {"val/<name>": value}`` called at the end of
            each validation (the model is in eval mode during the call; gradients are off).
        score_key: the validator's metric that becomes ``val/score`` when present.

    Shape:
        ``batch["inputs"]`` as the network takes it, ``batch["lengths"] (batch,)``;
        ``batch["targets"] (batch, class, time)``, ``batch["counts"] (batch, class)``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: EventLoss,
        *,
        optim: OptimSettings,
        count_k_max: int | None = None,
        validator: Callable[[nn.Module], Mapping[str, float]] | None = None,
        score_key: str = "val/f1",
    ) -> None:
        super().__init__()
        if not isinstance(optim, OptimSettings):
            raise TypeError(
                f"EventModule: `optim` must be an OptimSettings, got {type(optim).__name__}"
            )
        requires = getattr(loss, "requires", None)
        if not isinstance(requires, frozenset | set | tuple | list):
            raise TypeError(
                "EventModule: `loss` must be an EventLoss with a `requires` set of batch keys "
                "(build it with softloc.losses.registry.build_loss)"
            )
        self.model = model
        self.loss: EventLoss = loss
        self.optim = optim
        self.count_k_max = count_k_max
        self.validator = validator
        self.score_key = score_key
        self._val_hits: list[torch.Tensor] = []
        self._val_abs: list[torch.Tensor] = []

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, class, time)`` of the network."""
        return self.model(inputs, lengths)

    def compute_loss(self, logits: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """The injected loss of one batch: the keys it requires (and the optional ones the batch
        has), the lengths, the step."""
        missing = [k for k in self.loss.requires if k not in batch]
        if missing:
            raise ValueError(
                f"EventModule: the loss needs batch keys {sorted(self.loss.requires)}; "
                f"the batch has no {missing[0]!r}"
            )
        optional: frozenset[str] = getattr(self.loss, "optional", frozenset())
        keys = set(self.loss.requires) | {k for k in optional if k in batch}
        labels = {k: batch[k] for k in keys}
        return self.loss(logits, lengths=batch.get("lengths"), step=int(self.global_step),
                         **labels)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["inputs"], batch.get("lengths"))
        loss = self.compute_loss(logits, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        if "inputs" not in batch:  # the placeholder loader of validator-only runs
            return
        logits = self.model(batch["inputs"], batch.get("lengths"))
        self.log("val/loss", self.compute_loss(logits, batch), batch_size=logits.shape[0])
        if self.count_k_max is None or "counts" not in batch:
            return
        dist = count_distribution(logits.float(), self.count_k_max, lengths=batch.get("lengths"),
                                  logits=True)  # (B, C, K+1)
        predicted = dist.argmax(-1)  # (B, C, K+1) -> (B, C)
        target = batch["counts"].clamp(max=self.count_k_max)
        self._val_hits.append((predicted == target).float().flatten().cpu())
        self._val_abs.append((predicted - target).abs().float().flatten().cpu())

    def on_validation_epoch_end(self) -> None:
        metrics: dict[str, float] = {}
        if self._val_hits:
            metrics["val/count_acc"] = float(torch.cat(self._val_hits).mean())
            metrics["val/count_mae"] = float(torch.cat(self._val_abs).mean())
        self._val_hits.clear()
        self._val_abs.clear()
        if self.validator is not None:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                metrics.update({k: float(v) for k, v in self.validator(self.model).items()})
            self.model.train(was_training)
        metrics["val/score"] = metrics.get(self.score_key, metrics.get("val/count_acc", 0.0))
        for key, value in metrics.items():
            self.log(key, value, prog_bar=key == "val/score", sync_dist=True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints of softloc 0.1 (DetectorModule) hold the network only; the loss's own
        # buffers (kernels, schedules) are rebuilt from the configuration.
        state = checkpoint.get("state_dict", {})
        for key, value in self.loss.state_dict(prefix="loss.").items():
            state.setdefault(key, value)

    def configure_optimizers(self) -> Any:
        o = self.optim
        if o.optimizer == "adamw":
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                parameter_groups(self.model, o.weight_decay), lr=o.learning_rate)
        else:
            optimizer = torch.optim.Adam(self.model.parameters(), lr=o.learning_rate)
        if o.lr_schedule == "constant" and o.warmup_steps == 0:
            return optimizer
        # a plain function: LambdaLR's state dict then stores no object of ours
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: o.lr_factor(step))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
