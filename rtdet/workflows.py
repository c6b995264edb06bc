"""What ``rtdet train`` and ``rtdet val`` do, as plain functions, for every task.

Each step is a call into its own package: the task (:mod:`rtdet.tasks`: data,
collect, metrics, report), the model (:mod:`rtdet.models`), the engine
(:mod:`rtdet.engine`). Nothing here knows boxes or classes; the CLI and the Python
API (:class:`rtdet.api.Model`) run the same code.

Example:
    >>> from rtdet.config import load_config
    >>> result = train(load_config(None, {"data": "digits", "epochs": 3, "out": "runs/x"}))  # doctest: +SKIP
    >>> result.metrics["AP50"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from rtdet.config import Config, ConfigError, refuse_other_tasks, resolve_task_defaults
from rtdet.engine import Trainer, dist, make_evaluator, resume_config, seed_everything
from rtdet.engine.denormal import flush_denormal
from rtdet.engine.diagnose import diagnose_run
from rtdet.engine.hooks import Checkpointer, read_csv
from rtdet.engine.recipe import RunFacts, format_choices, resolve_recipe
from rtdet.engine.resume import requested_settings
from rtdet.engine.trainer import resolve_device
from rtdet.data.yolo import DataFormatError
from rtdet.errors import ModelError
from rtdet.models import build_from_config, family_recipe
from rtdet.models.load import load_trained
from rtdet.registry import model_spec
from rtdet.tasks import get_task, task_for
from rtdet.tasks.base import RunResult, Task

LOGGER = logging.getLogger("rtdet")

__all__ = ["RunResult", "open_splits", "train", "validate"]


def open_splits(cfg: Config, task: Task) -> tuple[Any, Any]:
    """The train split and the validation split (``cfg.data.split``) of ``cfg.data.data``; bad samples are
    counted and reported."""
    train_ds, val_ds = task.open_split(cfg, "train"), task.open_split(cfg, cfg.data.split)
    for split, ds in (("train", train_ds), (cfg.data.split, val_ds)):
        skipped, problems = ds.report.skipped_images, len(ds.report.problems)
        dist.log_info(f"{split}: {len(ds)} images, {len(ds.names)} classes, {skipped} images skipped, "
                      f"{problems} problems" + (" (run `rtdet data check` for the list)" if problems else ""))
        if len(ds) == 0:
            raise DataFormatError(f"{cfg.data.data}: the {split} split has no usable images ({skipped} skipped for "
                                  f"{problems} problems: `rtdet data check {cfg.data.data}` lists them)")
    if train_ds.names != val_ds.names:
        raise ModelError(f"train and val class names differ: {train_ds.names} vs {val_ds.names}")
    return train_ds, val_ds


def train(cfg: Config, progress: bool = True) -> RunResult:
    """Train ``cfg.model.model`` on ``cfg.data.data``; validate, checkpoint and draw into ``cfg.train.out``.

    With ``cfg.train.resume`` the checkpoint's settings apply; the explicit ones of ``cfg``
    (``cfg.given``) are taken or refused as :mod:`rtdet.engine.resume` says. Denormal floats
    are flushed to zero meanwhile (:mod:`rtdet.engine.denormal`).
    """
    with flush_denormal():
        return _train(cfg, progress)


def _train(cfg: Config, progress: bool) -> RunResult:
    if cfg.train.resume:
        cfg = resume_config(cfg.train.resume, requested_settings(cfg))
    info = dist.init_distributed("gloo" if cfg.train.device == "cpu" else None)
    task = get_task(task_for(cfg))
    cfg = resolve_task_defaults(cfg)  # saved in config.yaml: the run says what it used
    if not cfg.train.metric:
        cfg = replace(cfg, train=replace(cfg.train, metric=task.metric))
    seed_everything(cfg.train.seed + info.rank, cfg.train.deterministic)
    out = Path(cfg.train.out)
    train_ds, val_ds = open_splits(cfg, task)
    data_notes = task.diagnose(train_ds, cfg)
    for note in data_notes:
        dist.log_info(f"data: {note}")
    num_classes = cfg.model.num_classes or len(train_ds.names)
    facts = RunFacts(train_images=len(train_ds), batch=cfg.data.batch, world_size=info.world_size,
                     epochs=cfg.train.epochs, num_classes=num_classes, imgsz=cfg.data.imgsz,
                     family=model_spec(cfg.model.model).family)
    cfg, choices = resolve_recipe(cfg, facts, task.recipe, family_recipe(cfg.model.model))  # saved in config.yaml
    if choices:
        dist.log_info(format_choices(choices))
    model = build_from_config(cfg, num_classes)
    model.check_input_size(cfg.data.imgsz, cfg.data.imgsz)
    for note in task.prepare_model(model, train_ds, cfg):
        dist.log_info(note)
    model.set_postprocess(**task.settings(cfg, scoring=True))
    sampler = dist.train_sampler(train_ds, shuffle=True, seed=cfg.train.seed)  # N ranks x b == 1 process x N*b
    train_loader = task.build_loader(train_ds, cfg, True, epochs=cfg.train.epochs, seed=cfg.train.seed,
                                     sampler=sampler)
    val_sampler = dist.ShardSampler(val_ds) if info.world_size > 1 else None
    val_loader = task.build_loader(val_ds, cfg, False, sampler=val_sampler)
    evaluate = make_evaluator(val_loader, task.metric_fn(train_ds.names, cfg.train.metric), task.collect,
                              val_loss=True)
    meta = {"names": train_ds.names, "task": task.name, **dataset_meta(train_ds)}
    trainer = Trainer(model, train_loader, cfg, evaluate, meta=meta, progress=progress)
    trainer.train()
    best = out / "weights" / "best.pt"
    weights = best if best.is_file() else out / "weights" / "last.pt"
    result = RunResult(out, dict(trainer.metrics), weights, task=task.name)
    if info.rank == 0 and weights.is_file():
        reuse = evaluate.last if _last_validation_is_best(trainer) else None
        trained = load_trained(weights)
        trained.model.set_postprocess(**task.settings(cfg, scoring=True))
        full_val = val_loader if val_sampler is None else task.build_loader(val_ds, cfg, False)  # every val image
        final = task.final_report(trained.model, full_val, train_ds.names, out, trainer.device, predictions=reuse,
                                  metric=cfg.train.metric)
        result.metrics, result.files = final.metrics, final.files
        if (out / "results.csv").is_file():
            result.warnings = diagnose_run(read_csv(out / "results.csv"), cfg.train.metric, cfg,
                                           trainer.iter // trainer.accumulate,
                                           trainer.schedule.warmup_iters // trainer.accumulate, data_notes,
                                           chance=task.chance(val_ds))
    dist.cleanup()
    return result


def dataset_meta(ds: Any) -> dict[str, Any]:
    """What a checkpoint keeps of its data set besides class names: the data set's own category ids."""
    cat_ids = getattr(ds, "cat_ids", None)
    return {"cat_ids": [c if isinstance(c, (int, str)) else str(c) for c in cat_ids]} if cat_ids else {}


def _last_validation_is_best(trainer: Trainer) -> bool:
    """Whether best.pt holds the model of the last validation (its predictions can then be reused)."""
    ckpt = next((h for h in trainer.hooks if isinstance(h, Checkpointer)), None)
    return ckpt is not None and ckpt.best_epoch == trainer.epoch and trainer.validation_due()


def validate(weights: str | Path, cfg: Config, out: str | Path | None = None, save_json: bool = False) -> RunResult:
    """Score a checkpoint (or an exported ``.onnx``, run by ONNX Runtime or, with ``--backend openvino``,
    OpenVINO) on the split ``cfg.data.split`` of
    ``cfg.data.data`` with the task's official metrics (detect: COCO, and VOC when ``cfg.train.metric`` is
    ``voc07`` or ``voc``). A checkpoint's own data set, size, split and metric apply unless given."""
    with flush_denormal():
        return _validate(weights, cfg, out, save_json)


def _validate(weights: str | Path, cfg: Config, out: str | Path | None, save_json: bool) -> RunResult:
    from rtdet.deploy.runtime import BackendModel, eval_model, onnx_backend

    static = False  # an ONNX graph for square inputs of one size: no rectangular batches
    if Path(weights).suffix == ".onnx":
        if cfg.explicit("backend") and cfg.eval.backend == "torch":
            raise ModelError(f"{weights}: the torch backend needs a .pt checkpoint (use --backend onnxruntime)")
        backend = onnx_backend(weights, cfg.eval.backend if cfg.explicit("backend") else "onnxruntime")
        task = get_task(backend.task)
        model, names = BackendModel(backend, task.settings(cfg, scoring=True)), backend.names
        static = not backend.dynamic
        cfg = resolve_task_defaults(replace(cfg, model=replace(cfg.model, task=task.name)))  # e.g. segment's data
        cfg = replace(cfg, data=replace(cfg.data, imgsz=backend.imgsz))  # the caller's config is left as it was
    else:
        trained = load_trained(weights)
        task, model, names = get_task(trained.task), trained.model, trained.names
        model.set_postprocess(**task.settings(cfg, scoring=True))
        saved = trained.config  # what the model was trained at, on and scored by, unless given
        keep = {k: getattr(saved.data, k) for k in ("imgsz", "data", "root", "split") if not cfg.explicit(k)}
        cfg = replace(cfg, data=replace(cfg.data, **keep))
        if not cfg.explicit("metric"):
            cfg = replace(cfg, train=replace(cfg.train, metric=saved.train.metric))
        if cfg.eval.backend != "torch":  # same loader, decoding and metrics; only the network runs elsewhere
            model = eval_model(model, names, cfg.eval.backend, cfg.data.imgsz, task.settings(cfg, scoring=True))
            static = not model.backend.dynamic
    if static and task.name == "detect":
        cfg = replace(cfg, detect=replace(cfg.detect, rect=False))
    refuse_other_tasks(cfg, task.name)
    if cfg.explicit("metric") and cfg.train.metric not in (*task.reports, task.metric):
        raise ConfigError(f"--metric {cfg.train.metric!r}: val of a {task.name} model reports "
                          + (", ".join(task.reports) if task.reports else "its own metrics, with no --metric"))
    ds = task.open_split(cfg, cfg.data.split)
    if ds.names != names:
        raise ModelError(f"{weights} was trained on classes {names}, the data set has {ds.names}")
    loader = task.build_loader(ds, cfg, False)
    out = Path(out or Path(weights).resolve().parent.parent / ("val" if Path(weights).suffix != ".onnx"
                                                              else f"val-{Path(weights).stem}"))
    result = task.final_report(model, loader, names, out, resolve_device(cfg.train.device), save_json,
                               metric=cfg.train.metric)
    result.weights = Path(weights)
    return result


def print_summary(result: RunResult) -> None:
    """One closing line after the final table (which the task's ``final_report`` printed), then any
    warning about the run (e.g. that it learned nothing, with the likely causes)."""
    print(get_task(result.task).summary(result))
    for line in result.warnings:
        print(line)
