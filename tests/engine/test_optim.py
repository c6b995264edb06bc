"""rtdet.engine.optim: parameter groups and the learning-rate curve at chosen steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rtdet.config import ConfigError, OptimConfig
from rtdet.engine.optim import LRSchedule, build_optimizer, param_groups


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return self.fc(self.ln(self.gn(self.bn(self.conv(x))).mean((2, 3))))


def names_by_kind(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["kind"]: {name_of[id(p)] for p in g["params"]} for g in groups}


def test_decay_and_no_decay_groups():
    model = Net()
    groups = param_groups(model, weight_decay=5e-4, lr=0.01)
    kinds = names_by_kind(model, groups)
    assert kinds == {
        "decay": {"conv.weight", "fc.weight"},
        "no_decay": {"bn.weight", "gn.weight", "ln.weight"},
        "bias": {"conv.bias", "bn.bias", "gn.bias", "ln.bias", "fc.bias"},
    }
    wd = {g["kind"]: g["weight_decay"] for g in groups}
    assert wd == {"decay": 5e-4, "no_decay": 0.0, "bias": 0.0}


def test_param_groups_hint_moves_params_and_scales_lr():
    model = Net()
    model.param_groups_hint = lambda: {"fc.weight": {"no_decay": True}, "conv.weight": {"lr_scale": 0.1}}
    groups = param_groups(model, weight_decay=1e-2, lr=1.0)
    name_of = {id(p): n for n, p in model.named_parameters()}
    where = {name_of[id(p)]: (g["kind"], g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert where["conv.weight"] == ("decay", 0.1, 1e-2)
    assert where["fc.weight"] == ("no_decay", 1.0, 0.0)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop),
                                      ("adagrad", torch.optim.Adagrad)])
def test_every_optimizer_builds_and_steps(name, cls):
    torch.manual_seed(0)
    model = Net()
    opt = build_optimizer(model, OptimConfig(optimizer=name, lr=0.01, weight_decay=5e-4))
    assert isinstance(opt, cls) and [g["kind"] for g in opt.param_groups] == ["decay", "no_decay", "bias"]
    before = model.fc.weight.detach().clone()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.fc.weight)
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.937


def test_unresolved_auto_settings_are_refused():
    with pytest.raises(ConfigError, match="optim.lr is 'auto'"):
        build_optimizer(Net(), OptimConfig(optimizer="sgd", weight_decay=0.0))
    with pytest.raises(ConfigError, match="optim.optimizer is 'auto'"):
        build_optimizer(Net(), OptimConfig(lr=0.01, weight_decay=0.0))


def cosine(e, E=10, lrf=0.01):
    return lrf + (1 - lrf) * (1 + math.cos(math.pi * e / E)) / 2


CFG = dict(lr=0.1, lrf=0.01, momentum=0.9, warmup_iters=10, warmup_momentum=0.5, warmup_bias_lr=0.2)


@pytest.mark.parametrize("it,lr,bias_lr,momentum", [
    (0, 0.0, 0.2, 0.5),  # warm-up starts at 0 (biases at warmup_bias_lr)
    (5, 0.5 * 0.1 * cosine(0.5), 0.2 + (0.1 * cosine(0.5) - 0.2) * 0.5, 0.7),  # halfway: linear blend
    (10, 0.1 * cosine(1.0), 0.1 * cosine(1.0), 0.9),  # warm-up over
    (50, 0.1 * (0.01 + 0.99 * 0.5), 0.0505, 0.9),  # half of the run: mid-way on the cosine
    (100, 0.001, 0.001, 0.9),  # end: lr * lrf
])
def test_cosine_with_warmup_values(it, lr, bias_lr, momentum):
    sched = LRSchedule(OptimConfig(schedule="cosine", **CFG), epochs=10, iters_per_epoch=10)
    assert sched.values(it, "decay", 0.1) == pytest.approx((lr, momentum))
    assert sched.values(it, "bias", 0.1) == pytest.approx((bias_lr, momentum))


def test_linear_and_step_schedules():
    lin = LRSchedule(OptimConfig(schedule="linear", warmup_epochs=0, **{k: v for k, v in CFG.items()
                                                                        if k != "warmup_iters"}), 10, 10)
    assert lin.values(0, "decay", 0.1)[0] == pytest.approx(0.1)
    assert lin.values(50, "decay", 0.1)[0] == pytest.approx(0.1 * (1 - 0.99 * 0.5))
    assert lin.values(100, "decay", 0.1)[0] == pytest.approx(0.001)
    step = LRSchedule(OptimConfig(schedule="step", lr_drop=[6, 3], lr_gamma=0.1, warmup_iters=0, warmup_epochs=0), 10, 10)
    got = [step.values(it, "decay", 0.1)[0] for it in (0, 29, 30, 59, 60, 99)]
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_epochs_and_apply_sets_groups():
    model = Net()
    cfg = OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.05, warmup_epochs=2.0, warmup_momentum=0.8, momentum=0.9,
                      warmup_bias_lr=0.1)
    opt = build_optimizer(model, cfg)
    sched = LRSchedule(cfg, epochs=5, iters_per_epoch=4)
    assert sched.warmup_iters == 8
    sched.apply(opt, 4)
    decay, _, bias = opt.param_groups
    target = 0.01 * cosine(1.0, E=5)
    assert decay["lr"] == pytest.approx(target * 0.5)
    assert bias["lr"] == pytest.approx(0.1 + (target - 0.1) * 0.5)
    assert decay["betas"] == pytest.approx((0.85, 0.999))
