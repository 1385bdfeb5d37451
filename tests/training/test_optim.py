"""Optimizer groups, the closed-form lr schedule and the weight EMA."""

from __future__ import annotations

import math

import pytest
import torch

from usvid.models import create_model
from usvid.training.config import TrainConfig
from usvid.training.optim import LrSchedule, WeightEma, make_optimizer


def _model():
    torch.manual_seed(0)
    return create_model("lanet_tiny", num_classes=2, in_channels=1)


def test_paper_setting_is_one_adam_group():
    opt = make_optimizer(_model(), TrainConfig())
    assert type(opt) is torch.optim.Adam and len(opt.param_groups) == 1


def test_fex_lr_scale_and_adamw_decay_exemptions():
    model = _model()
    opt = make_optimizer(model, TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05, fex_lr_scale=0.1))
    assert type(opt) is torch.optim.AdamW
    fex = {id(p) for p in model.parameter_groups()["backbone"]}
    for group in opt.param_groups:
        in_fex = {id(p) in fex for p in group["params"]}
        assert len(in_fex) == 1  # a group is all FEX or no FEX
        assert group["lr"] == pytest.approx(1e-4 if in_fex == {True} else 1e-3)
        ndims = {p.ndim <= 1 for p in group["params"]}
        assert len(ndims) == 1 and group["weight_decay"] == (0.0 if ndims == {True} else 0.05)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_per_epoch_cosine_without_warmup_is_cosine_annealing():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    schedule = LrSchedule([1.0], epochs=5, cosine=True)
    for epoch in range(5):
        assert schedule.factor(epoch, 0, 10) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()


def test_warmup_then_cosine_per_epoch_and_per_step():
    by_epoch = LrSchedule([1.0], epochs=6, warmup_epochs=2, cosine=True)
    assert [by_epoch.factor(e, 0, 4) for e in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert by_epoch.factor(4, 0, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    by_step = LrSchedule([1.0], epochs=3, warmup_epochs=1, cosine=False, per_step=True)
    assert [by_step.factor(0, s, 4) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert by_step.factor(1, 0, 4) == by_step.factor(2, 3, 4) == 1.0
    cosine = LrSchedule([1.0], epochs=2, cosine=True, per_step=True)
    factors = [cosine.factor(e, s, 4) for e in range(2) for s in range(4)]
    assert factors[0] == 1.0 and all(a > b for a, b in zip(factors, factors[1:], strict=False)) and factors[-1] > 0


def test_weight_ema_follows_with_a_start_up_and_round_trips():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = WeightEma(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.99, 2 / 11)
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 1 - 2 / 11))
    again = WeightEma(model, decay=0.99)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 1 and torch.equal(again.model.weight, ema.model.weight)
