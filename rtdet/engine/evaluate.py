"""Validation: run a model over a loader, gather predictions from every rank, score them.

:func:`make_evaluator` builds the ``evaluate(model) -> {metric: float}`` callable the
trainer expects. Scoring is pluggable: ``metric_fn(predictions, targets)`` receives
both lists in original-image pixels, ordered by ``image_id``, identical on every
rank; e.g. a wrapper around ``rtdet.metrics.coco.evaluate`` returning the 12 COCO
numbers.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from rtdet.engine import dist
from rtdet.boxes import unletterbox

MetricFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, float]]
_QUIET_IN_LOSS_MODE = (nn.modules.batchnorm._NormBase, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)




@contextlib.contextmanager
def loss_mode(model: nn.Module) -> Iterator[None]:
    """Let ``model`` return its losses without changing it: train mode for the forward
    path, but normalization layers keep their running statistics and dropout is off;
    the global RNG is left untouched (samplers inside the loss may draw from it)."""
    modes = {m: m.training for m in model.modules()}
    model.train()
    for m in model.modules():
        if isinstance(m, _QUIET_IN_LOSS_MODE):
            m.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _to_original(pred: dict[str, torch.Tensor], target: dict[str, Any]) -> tuple[dict, dict]:
    lb = target.get("letterbox", (1.0, 0.0, 0.0))
    p = {"boxes": unletterbox(pred["boxes"].float().cpu(), lb), "scores": pred["scores"].float().cpu(),
         "labels": pred["labels"].cpu(), "image_id": target["image_id"]}
    t = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in target.items()}
    t["boxes"] = unletterbox(t["boxes"].float(), lb)
    return p, t


def predict_all(model: nn.Module, loader: Iterable, device: torch.device, with_loss: bool = False
                ) -> tuple[list[dict], list[dict], dict[str, float]]:
    """This rank's predictions and targets (original pixels) and its summed losses and batch count."""
    preds, targets, loss_sums = [], [], {}
    one_pass = with_loss and hasattr(model, "predict_with_loss")  # detections and losses from one forward
    for images, batch_targets in loader:
        x = images.to(device, non_blocking=True).float() / 255
        if with_loss:
            dev_targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in batch_targets]
        if one_pass:
            batch_preds, losses = model.predict_with_loss(x, dev_targets)
        else:
            batch_preds = model(x)
        for pred, tgt in zip(batch_preds, batch_targets):
            p, t = _to_original(pred, tgt)
            preds.append(p)
            targets.append(t)
        if with_loss:
            if not one_pass:
                with loss_mode(model):
                    losses = model(x, dev_targets)
            total = sum(float(v) for v in losses.values())
            for k, v in list(losses.items()) + [("loss", total)]:
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v)
            loss_sums["_batches"] = loss_sums.get("_batches", 0.0) + 1
    return preds, targets, loss_sums


def make_evaluator(loader: Iterable, metric_fn: MetricFn, device: str | torch.device | None = None,
                   val_loss: bool = False) -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate(model)`` for the trainer.

    In a distributed run give ``loader`` a :class:`rtdet.engine.dist.ShardSampler` so
    each rank predicts a disjoint share; predictions are gathered to every rank and
    sorted by ``image_id``, so the numbers equal a single-process run's. With
    ``val_loss`` the model's losses on the validation data are added as ``val/<name>``.
    """

    def evaluate(model: nn.Module) -> dict[str, float]:
        """Score ``model``; its predictions and targets (original pixels) are kept in ``evaluate.last``."""
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        preds, targets, sums = predict_all(model, loader, dev, with_loss=val_loss)
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


def coco_metrics(names: list[str]) -> MetricFn:
    """``metric_fn`` giving the 12 official COCO numbers ("AP", "AP50", ... "ARl") through
    ``rtdet.metrics.coco.evaluate_predictions`` (imported when first called)."""

    def metric_fn(preds: list[dict[str, Any]], targets: list[dict[str, Any]]) -> dict[str, float]:
        from rtdet.metrics.coco import evaluate_predictions

        return dict(evaluate_predictions(preds, targets, names, frame="original").stats)

    return metric_fn
