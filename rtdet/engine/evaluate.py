"""Validation: run a model over a loader, gather predictions from every rank, score them.

:func:`make_evaluator` builds the ``evaluate(model) -> {metric: float}`` callable the
trainer expects. What is task-specific comes in as two functions (see
:mod:`rtdet.tasks`): ``collect(prediction, target) -> (record, target record)`` turns
one image's model output and target into CPU records in original pixels, and
``metric_fn(records, target records)`` scores the gathered lists, ordered by
``image_id`` and identical on every rank.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from rtdet.engine import dist

MetricFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, float]]
Collect = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


def predict_all(model: nn.Module, loader: Iterable, device: torch.device, collect: Collect,
                with_loss: bool = False) -> tuple[list[dict], list[dict], dict[str, float]]:
    """This rank's collected predictions and targets, and its summed losses and batch count.

    ``model`` follows :class:`rtdet.models.base.RtdetModel`: ``model(images)`` in eval mode,
    ``model.predict_with_loss(images, targets)`` when ``with_loss``.
    """
    preds, targets, loss_sums = [], [], {}
    for images, batch_targets in loader:
        x = images.to(device, non_blocking=True).float() / 255
        if with_loss:
            dev_targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in batch_targets]
            batch_preds, losses = model.predict_with_loss(x, dev_targets)
            total = sum(float(v) for v in losses.values())
            for k, v in list(losses.items()) + [("loss", total)]:
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v)
            loss_sums["_batches"] = loss_sums.get("_batches", 0.0) + 1
        else:
            batch_preds = model(x)
        for pred, tgt in zip(batch_preds, batch_targets):
            p, t = collect(pred, tgt)
            preds.append(p)
            targets.append(t)
    return preds, targets, loss_sums


def make_evaluator(loader: Iterable, metric_fn: MetricFn, collect: Collect, device: str | torch.device | None = None,
                   val_loss: bool = False) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate(model)`` for the trainer.

    In a distributed run give ``loader`` a :class:`rtdet.engine.dist.ShardSampler` so
    each rank predicts a disjoint share; predictions are gathered to every rank and
    sorted by ``image_id``, so the numbers equal a single-process run's. With
    ``val_loss`` the model's losses on the validation data are added as ``val/<name>``.
    """

    def evaluate(model: nn.Module) -> dict[str, float]:
        """Score ``model``; its collected predictions and targets are kept in ``evaluate.last``."""
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        preds, targets, sums = predict_all(model, loader, dev, collect, with_loss=val_loss)
        gathered = dist.all_gather_object((preds, targets, sums))
        pairs = sorted(((p, t) for ps, ts, _ in gathered for p, t in zip(ps, ts)), key=lambda pt: pt[1]["image_id"])
        evaluate.last = ([p for p, _ in pairs], [t for _, t in pairs])  # for a final report without re-running
        metrics = dict(metric_fn(*evaluate.last))
        if val_loss:
            total: dict[str, float] = {}
            for _, _, s in gathered:
                for k, v in s.items():
                    total[k] = total.get(k, 0.0) + v
            n = max(total.pop("_batches", 0.0), 1.0)
            metrics |= {f"val/{k}": v / n for k, v in total.items()}
        return metrics

    evaluate.last = None
    return evaluate
