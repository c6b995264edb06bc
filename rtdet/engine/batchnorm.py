"""Precise BatchNorm statistics: recompute a model's running means and variances for its current weights.

BatchNorm trains with each batch's statistics and evaluates with running averages of them
(momentum 0.03 in rtdet's layers: a horizon of ~33 steps). When the weights move fast, as in a
short run at a high learning rate, the running averages describe the network of tens of steps
ago, and the evaluated network is not the trained one. A detection transformer is hurt most:
overfitting 8 coco128 photos (rtdet-detr-n, lr 1e-3, 100 steps), the same weights scored AP50
0.953 with the statistics of the 8 photos and 0.000 with the running ones, whose means lay up to
40 standard deviations away in the hybrid encoder. The EMA copy has the same fault (its
statistics are averaged, not measured, for its averaged weights).

The remedy is Wu & Johnson's PreciseBN ("Rethinking 'Batch' in BatchNorm", 2021): before a
model is evaluated, run it over some training batches in training mode without gradients and
set each running mean and variance to the plain average over those batches
(``torch.optim.swa_utils.update_bn``, written for the same reason: SWA's averaged weights).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import update_bn


class _Contract(nn.Module):
    """``update_bn`` calls ``model(batch)``: this calls the model contract's ``model(images, targets)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # update_bn puts back the mode of the module it is given: the model's

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.model(batch["images"], batch["targets"])


def precise_bn(model: nn.Module, batches: Iterable[tuple[torch.Tensor, list[dict[str, Any]]]], count: int,
               prepare: Callable[[torch.Tensor, list[dict[str, Any]]], tuple[torch.Tensor, list[dict[str, Any]]]]
               ) -> int:
    """Set the running statistics of every BatchNorm layer of ``model`` to their averages over the first
    ``count`` of ``batches`` (training batches ``(images uint8 [B, 3, H, W], targets)``, made model
    inputs by ``prepare``). The model runs in training mode without gradients and is left in the mode
    it was in; its weights do not change. Returns the number of batches used (0 when the model has
    no BatchNorm layer)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return 0
    used = 0

    def inputs() -> Iterator[dict[str, Any]]:
        nonlocal used
        for images, targets in islice(batches, count):
            used += 1
            yield dict(zip(("images", "targets"), prepare(images, targets)))

    with torch.no_grad():
        update_bn(inputs(), _Contract(model))
    return used


__all__ = ["precise_bn"]
