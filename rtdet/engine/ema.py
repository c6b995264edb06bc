"""Exponential moving average of a model's weights.

The average is what gets evaluated and saved as the final model when EMA is on.
Its decay ramps up from 0 so the first, noisy weights are forgotten quickly:
``d = decay * (1 - exp(-updates / tau))``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel / DataParallel wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ModelEMA:
    """A frozen copy of ``model`` whose floating-point tensors track an EMA of the model's.

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        # parameters and buffers in registration order: the same list as state_dict's values
        # for the same architecture, gathered 5x faster (state_dict took 7.5 ms per call for rtdet-n)
        source = [*unwrap(model).parameters(), *unwrap(model).buffers()]
        mine = [*self.module.parameters(), *self.module.buffers()]
        if len(source) != len(mine):
            raise ValueError(f"EMA: the model has {len(source)} tensors, its average {len(mine)}")
        avg, new = [], []
        for a, b in zip(mine, source):
            if a.dtype.is_floating_point:
                avg.append(a)
                new.append(b.detach().to(a.dtype))
            else:
                a.copy_(b)
        if avg:  # a += (1 - d) * (b - a) in one multi-tensor call (as torch.optim.swa_utils does)
            torch._foreach_lerp_(avg, new, 1.0 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
