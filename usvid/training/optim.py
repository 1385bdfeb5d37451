"""Optimizer, learning-rate schedule and weight EMA of a training stage, built from a :class:`TrainConfig`.

- :func:`make_optimizer`: Adam (the paper) or AdamW, with the FEX in its own parameter group when
  ``fex_lr_scale != 1`` and, for AdamW, biases and normalisation weights exempt from weight decay. The
  paper's setting gives one group, as optimizers saved by earlier versions hold.
- :class:`LrSchedule`: the lr of every step in closed form (linear warm-up, then constant or cosine). It holds
  no state, only the stage's length, so a resumed run continues it exactly and a run resumed with more
  epochs follows the new total instead of a restored, stale one.
- :class:`WeightEma`: an exponential moving average of the model weights for validation and ``best.pt``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from usvid.training.config import TrainConfig


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` as optimizer groups, each with its own ``lr`` and ``weight_decay``."""
    scaled = config.fex_lr_scale != 1.0
    fex = {id(p) for p in model.parameter_groups()["backbone"]} if scaled else set()
    exempt = config.optimizer == "adamw"  # decoupled decay of 1-d tensors only shrinks BN scales and biases
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in fex, exempt and p.ndim <= 1), []).append(p)
    return [
        {"params": params, "lr": config.lr * (config.fex_lr_scale if in_fex else 1.0),
         "weight_decay": 0.0 if no_decay else config.weight_decay}
        for (in_fex, no_decay), params in groups.items()
    ]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over the parameters of ``model`` that require a gradient."""
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(param_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)


@dataclass
class LrSchedule:
    """lr of a stage's step = the group's base lr x :meth:`factor` (a pure function of the position).

    Warm-up rises linearly over ``warmup_epochs`` (the k-th of K warm-up units gets ``k / (K + 1)`` of the lr,
    so no step runs at 0); then the factor stays 1, or follows a cosine from 1 to 0 over the rest of
    ``epochs``. With ``per_step`` the position moves every step, otherwise once per epoch. Without
    warm-up the per-epoch cosine equals ``CosineAnnealingLR(T_max=epochs)``.
    """

    base_lrs: list[float]
    epochs: int
    warmup_epochs: float = 0.0
    cosine: bool = False
    per_step: bool = False
    #: The factor of the latest :meth:`apply` (for the metrics line).
    last_factor: float = 1.0

    @classmethod
    def for_stage(cls, optimizer: torch.optim.Optimizer, config: TrainConfig, epochs: int, *,
                  cosine: bool) -> LrSchedule:
        return cls([g["lr"] for g in optimizer.param_groups], epochs, config.warmup_epochs, cosine,
                   config.schedule_unit == "step")

    def factor(self, epoch: int, step: int, steps: int) -> float:
        unit = 1.0 / max(steps, 1) if self.per_step else 1.0
        t = epoch + step * unit if self.per_step else float(epoch)
        if t < self.warmup_epochs:
            return (t + unit) / (self.warmup_epochs + unit)
        if not self.cosine:
            return 1.0
        span = self.epochs - self.warmup_epochs
        done = (t - self.warmup_epochs) / span if span > 0 else 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, step: int, steps: int) -> None:
        """Set every group's lr for step ``step`` (of ``steps``) of epoch ``epoch`` (0-based)."""
        self.last_factor = self.factor(epoch, step, steps)
        for group, base in zip(optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.last_factor


class WeightEma:
    """An exponential moving average of a model's weights (floating-point parameters and buffers).

    ``update`` after each optimizer step uses ``min(decay, (1 + n) / (10 + n))`` at update ``n``: early on the
    average follows the model quickly instead of staying near the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, new in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.is_floating_point():
                avg.lerp_(new.detach(), 1.0 - decay)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "updates": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
