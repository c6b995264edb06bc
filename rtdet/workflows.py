"""What ``rtdet train``, ``rtdet val`` and ``rtdet demo`` do, as plain functions.

Each step is a call into its own package: data (:mod:`rtdet.data`), model
(:mod:`rtdet.models`), engine (:mod:`rtdet.engine`) and metrics
(:mod:`rtdet.metrics`); this module only wires them together, so the CLI and
the Python API (:class:`rtdet.api.Detector`) run the same code.

Example:
    >>> from rtdet.config import load_config
    >>> result = train(load_config(None, {"data": "digits", "epochs": 3, "out": "runs/x"}))  # doctest: +SKIP
    >>> result.metrics["AP50"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtdet.config import Config, config_from_dict
from rtdet.data import build_loader, open_dataset
from rtdet.data.dataset import DetectionDataset
from rtdet.engine import Trainer, coco_metrics, dist, load_checkpoint, make_evaluator, resume_config, seed_everything
from rtdet.engine.hooks import Checkpointer
from rtdet.engine.trainer import resolve_device
from rtdet.metrics.coco import COCO_KEYS
from rtdet.models import build_from_config, build_model

LOGGER = logging.getLogger("rtdet")


@dataclass
class RunResult:
    """What a training or validation run leaves behind."""

    out: Path  # the run folder
    metrics: dict[str, float]  # the 12 COCO numbers (keys as in COCO_KEYS) and P/R/F1 summaries
    weights: Path | None = None  # best.pt (training) or the evaluated checkpoint
    files: list[Path] = field(default_factory=list)  # pictures and json files written


def open_splits(cfg: Config) -> tuple[DetectionDataset, DetectionDataset]:
    """The train and val splits named by ``cfg.data.data``; bad samples are counted and reported."""
    root = cfg.data.root or None
    train_ds = open_dataset(cfg.data.data, "train", root=root)
    val_ds = open_dataset(cfg.data.data, "val", root=root)
    for split, ds in (("train", train_ds), ("val", val_ds)):
        skipped = ds.report.skipped if hasattr(ds.report, "skipped") else 0
        dist.log_info(f"{split}: {len(ds)} images, {len(ds.names)} classes, {skipped} bad samples skipped"
                      + (" (run `rtdet data check` for the list)" if skipped else ""))
    if train_ds.names != val_ds.names:
        raise ValueError(f"train and val class names differ: {train_ds.names} vs {val_ds.names}")
    return train_ds, val_ds


def build_detector(cfg: Config, num_classes: int) -> nn.Module:
    """The model named by ``cfg.model`` with decoding settings from ``cfg.eval``."""
    model = build_from_config(cfg.model, cfg.model.num_classes or num_classes)
    configure_decoding(model, cfg)
    return model


def decoding_args(cfg: Config) -> dict[str, Any]:
    return {"conf": cfg.eval.conf, "iou": cfg.eval.iou, "method": cfg.eval.nms, "max_det": cfg.eval.max_det}


def configure_decoding(model: nn.Module, cfg: Config) -> None:
    if hasattr(model, "set_postprocess"):
        model.set_postprocess(**decoding_args(cfg))


def train(cfg: Config, progress: bool = True) -> RunResult:
    """Train ``cfg.model.model`` on ``cfg.data.data``; validate, checkpoint and draw into ``cfg.train.out``."""
    info = dist.init_distributed()
    if cfg.train.resume:  # continue exactly: the checkpoint's own settings, not today's defaults
        cfg = resume_config(cfg.train.resume)
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    out = Path(cfg.train.out)
    train_ds, val_ds = open_splits(cfg)
    model = build_detector(cfg, len(train_ds.names))
    sampler = dist.train_sampler(train_ds, shuffle=True, seed=cfg.train.seed) if info.world_size > 1 else None
    train_loader = build_loader(train_ds, cfg.data, train=True, epochs=cfg.train.epochs, seed=cfg.train.seed,
                                sampler=sampler)
    val_sampler = dist.ShardSampler(len(val_ds)) if info.world_size > 1 else None
    val_loader = build_loader(val_ds, cfg.data, train=False, sampler=val_sampler)
    evaluate = make_evaluator(val_loader, coco_metrics(train_ds.names), val_loss=True)
    meta = {"names": train_ds.names}
    trainer = Trainer(model, train_loader, cfg, evaluate, meta=meta, progress=progress)
    trainer.train()
    best = out / "weights" / "best.pt"
    weights = best if best.is_file() else out / "weights" / "last.pt"
    result = RunResult(out, dict(trainer.metrics), weights)
    if info.rank == 0 and weights.is_file():
        reuse = evaluate.last if _last_validation_is_best(trainer) else None
        final = final_report(load_detector(weights, cfg)[0], val_loader, train_ds.names, out, trainer.device,
                             predictions=reuse)
        result.metrics, result.files = final.metrics, final.files
    dist.cleanup()
    return result


def _last_validation_is_best(trainer: Trainer) -> bool:
    """Whether best.pt holds the model of the last validation (its predictions can then be reused)."""
    ckpt = next((h for h in trainer.hooks if isinstance(h, Checkpointer)), None)
    return ckpt is not None and ckpt.best_epoch == trainer.epoch and trainer.validation_due()


def load_detector(weights: str | Path, cfg: Config | None = None) -> tuple[nn.Module, list[str], Config]:
    """Rebuild the model saved in a checkpoint (EMA weights when present), in eval mode.

    Returns ``(model, class names, the checkpoint's config with cfg.eval applied)``.
    """
    ckpt = load_checkpoint(weights)
    meta = ckpt.get("meta") or {}
    saved = config_from_dict(ckpt["config"])
    if cfg is not None:
        saved.eval = cfg.eval
    args = dict(ckpt.get("model_args") or {})
    names = list(meta.get("names") or [])
    if not args or not names:
        raise ValueError(f"{weights}: not an rtdet training checkpoint (no model arguments or class names)")
    model = build_model(args.pop("name"), args.pop("num_classes"), **args)
    state = ckpt["ema"]["module"] if ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(state)
    configure_decoding(model, saved)
    return model.eval(), names, saved


@torch.no_grad()
def final_report(model: nn.Module, loader: Any, names: list[str], out: Path, device: torch.device,
                 save_json: bool = False, predictions: tuple[list, list] | None = None) -> RunResult:
    """Official COCO table, P/R/F1, pictures and ``metrics.json`` for ``model`` on ``loader``.

    With ``save_json`` the same predictions are also written as ``detections.json`` in COCO
    results format (bbox xywh in original pixels, category = label + 1). ``predictions``:
    ``(predictions, targets)`` this model already produced on ``loader`` (e.g. its last
    validation during training), used instead of running it again.
    """
    from rtdet.engine.evaluate import predict_all
    from rtdet.data.preview import prediction_grid
    from rtdet.metrics.coco import predictions_to_coco
    from rtdet.metrics.report import detection_report

    if predictions is None:
        preds, targets, _ = predict_all(model.to(device).eval(), loader, device)
    else:
        preds, targets = predictions
    report = detection_report(preds, targets, names, out_dir=out)
    metrics = {k: report.coco.stats[k] for k in COCO_KEYS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    files = [*report.plots, out / "metrics.json"]
    files.append(prediction_grid(loader.dataset.base, preds, names, out / "val_predictions.png"))
    if save_json:
        _, dets = predictions_to_coco(preds, targets, names)
        (out / "detections.json").write_text(json.dumps(dets))
        files.append(out / "detections.json")
    print(report.text())
    best = report.prf.best
    extra = {**best.mean(), "best_conf": best.conf}
    return RunResult(out, {**metrics, **extra}, None, files)


def validate(weights: str | Path, cfg: Config, out: str | Path | None = None, save_json: bool = False) -> RunResult:
    """Score a checkpoint (or an exported ``.onnx``, run by ONNX Runtime) on the ``val`` split of
    ``cfg.data.data`` with the official COCO evaluation."""
    if Path(weights).suffix == ".onnx":  # static graph: square inputs of its own size
        from rtdet.deploy.runtime import BackendModel, OrtBackend

        backend = OrtBackend(weights)
        model, names = BackendModel(backend, **decoding_args(cfg)), backend.names
        data = replace(cfg.data, imgsz=backend.imgsz, rect=backend.dynamic and cfg.data.rect)
        cfg = replace(cfg, data=data)  # the caller's config is left as it was
    else:
        model, names, _ = load_detector(weights, cfg)
        if cfg.eval.backend != "torch":  # same loader, decoding and metrics; only the network runs elsewhere
            from rtdet.deploy.runtime import eval_model

            model = eval_model(model, names, cfg.eval.backend, cfg.data.imgsz)
    ds = open_dataset(cfg.data.data, "val", root=cfg.data.root or None)
    if ds.names != names:
        raise ValueError(f"{weights} was trained on classes {names}, the data set has {ds.names}")
    loader = build_loader(ds, cfg.data, train=False)
    out = Path(out or Path(weights).resolve().parent.parent / ("val" if Path(weights).suffix != ".onnx"
                                                              else f"val-{Path(weights).stem}"))
    result = final_report(model, loader, names, out, resolve_device(cfg.train.device), save_json)
    result.weights = Path(weights)
    return result


def print_summary(result: RunResult) -> None:
    """One closing line after the final table (which :func:`final_report` printed)."""
    ap, ap50 = result.metrics.get("AP", float("nan")), result.metrics.get("AP50", float("nan"))
    print(f"mAP50-95 {ap:.4f}  mAP50 {ap50:.4f}  weights {result.weights}  results in {result.out}")

