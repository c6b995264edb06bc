"""Hooks: code that runs at fixed events of the training loop.

Events, in the order the trainer fires them (each method gets the trainer)::

    before_train                  once, after resume / pretrained loading
      before_epoch                each epoch, model in train mode
        before_iter, after_iter   each batch (after_iter sees trainer.losses, trainer.lr)
      before_val, after_val       when validating (after_val sees trainer.metrics)
      after_epoch                 each epoch (trainer.epoch_losses, trainer.metrics)
    after_train                   once

What a hook may read on the trainer is the :class:`TrainerView` protocol below;
hooks depend on it and on nothing of :mod:`rtdet.engine.trainer` (the trainer
imports the hooks, never the other way round).

Hooks may log, save or stop (``trainer.request_stop(reason)``); they never change
the model, the optimizer or the config. Hooks with ``main_only = True`` run on
rank 0 only. Hooks run in ascending ``priority``; the checkpoint hook runs last so
it saves the other hooks' state. A hook with state (early stopping, the CSV rows)
returns it from ``state_dict()`` so a resumed run carries on exactly.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Protocol

from torch import nn
from torch.optim import Optimizer

from rtdet.config import Config, save_config
from rtdet.engine.checkpoint import atomic_save

LOGGER = logging.getLogger("rtdet")
EVENTS = ("before_train", "before_epoch", "before_iter", "after_iter", "before_val", "after_val",
          "after_epoch", "after_train")


class TrainerView(Protocol):
    """What hooks may read on the trainer (:class:`rtdet.engine.trainer.Trainer` provides it)."""

    cfg: Config
    model: nn.Module  # the plain module (not the DDP wrapper)
    ema: Any  # rtdet.engine.ema.ModelEMA, or None when EMA is off
    optimizer: Optimizer
    train_loader: Iterable
    epoch: int  # 0-based
    iter: int  # batches seen
    batch_index: int  # within the epoch
    losses: dict[str, float]  # this batch, with "loss" = their sum
    epoch_losses: dict[str, float]  # running means; rank-averaged at the epoch's end
    metrics: dict[str, float]  # latest validation
    grad_norm: float
    batch_size: int  # per process
    accumulate: int
    world_size: int
    stop_reason: str | None

    @property
    def eval_model(self) -> nn.Module: ...  # the EMA copy when EMA is on
    @property
    def lr(self) -> list[float]: ...  # per optimizer group
    @property
    def is_main(self) -> bool: ...
    def validation_due(self) -> bool: ...
    def state_dict(self) -> dict[str, Any]: ...
    def request_stop(self, reason: str) -> None: ...


class Hook:
    """Base class: every event is a no-op."""

    priority: int = 50
    main_only: bool = True

    def before_train(self, trainer: TrainerView) -> None: ...
    def before_epoch(self, trainer: TrainerView) -> None: ...
    def before_iter(self, trainer: TrainerView) -> None: ...
    def after_iter(self, trainer: TrainerView) -> None: ...
    def before_val(self, trainer: TrainerView) -> None: ...
    def after_val(self, trainer: TrainerView) -> None: ...
    def after_epoch(self, trainer: TrainerView) -> None: ...
    def after_train(self, trainer: TrainerView) -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def call_hooks(hooks: list[Hook], event: str, trainer: TrainerView) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown hook event '{event}'; events are {', '.join(EVENTS)}")
    for h in hooks:
        if h.main_only and not trainer.is_main:
            continue
        getattr(h, event)(trainer)


def higher_is_better(metric: str) -> bool:
    """Metrics are maximised, except those named ``...loss``."""
    return not metric.lower().endswith("loss")


class ProgressBar(Hook):
    """A tqdm bar per epoch with the running losses, the lr and images per second."""

    priority = 10

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def before_epoch(self, trainer: TrainerView) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=len(trainer.train_loader), desc=f"epoch {trainer.epoch + 1}/{trainer.cfg.train.epochs}",
                        disable=not self.enabled, leave=True, dynamic_ncols=True)
        self.t0, self.images = time.perf_counter(), 0

    def after_iter(self, trainer: TrainerView) -> None:
        self.images += trainer.batch_size * trainer.world_size
        speed = self.images / max(time.perf_counter() - self.t0, 1e-9)
        post = {k: f"{v:.4g}" for k, v in trainer.epoch_losses.items()}
        post |= {"lr": f"{trainer.lr[0]:.3g}", "img/s": f"{speed:.1f}"}
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def after_epoch(self, trainer: TrainerView) -> None:
        if self.bar is not None:
            self.bar.close()

    def after_val(self, trainer: TrainerView) -> None:
        if self.enabled:
            from tqdm import tqdm

            tqdm.write("val: " + "  ".join(f"{k} {v:.4g}" for k, v in trainer.metrics.items()))


class CSVLogger(Hook):
    """``results.csv`` in the run folder: one row per epoch (epoch, lrs, train losses, metrics).

    No wall-clock column, so two seeded deterministic runs write identical files.
    The whole file is rewritten each epoch (columns can appear when validation starts).
    """

    priority = 60

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / "results.csv"
        self.rows: list[dict[str, Any]] = []

    def after_epoch(self, trainer: TrainerView) -> None:
        row: dict[str, Any] = {"epoch": trainer.epoch + 1}
        row |= {f"lr/pg{i}": lr for i, lr in enumerate(trainer.lr)}
        row |= {f"train/{k}": v for k, v in trainer.epoch_losses.items()}
        row |= dict(trainer.metrics) if trainer.validation_due() else {}
        self.rows.append(row)
        write_csv(self.path, self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """``results.csv`` rows as floats (empty cells become NaN)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v != "" else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


class LossPlot(Hook):
    """``results.png``: each train loss per epoch next to its validation twin (``val/<name>``)
    when the evaluator reports one, plus the primary metric."""

    priority = 70

    def __init__(self, out: str | Path, metric: str = "AP") -> None:
        self.out = Path(out)
        self.metric = metric

    def after_epoch(self, trainer: TrainerView) -> None:
        csv_path = self.out / "results.csv"
        if csv_path.is_file():
            plot_results(read_csv(csv_path), self.out / "results.png", self.metric)


def plot_results(rows: list[dict[str, float]], path: Path, metric: str) -> Path:
    """Draw the loss curves (train solid, val dashed) and ``metric`` per epoch into ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; set here, not at import
    import matplotlib.pyplot as plt

    losses = [k.split("/", 1)[1] for k in rows[0] if k.startswith("train/")]
    panels = losses + ([metric] if any(metric in r for r in rows) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for ax, name in zip(axes[0], panels):
        if name == metric and name not in losses:
            ax.plot(epochs, [r.get(name, math.nan) for r in rows], "o-", label=name)
        else:
            ax.plot(epochs, [r.get(f"train/{name}", math.nan) for r in rows], "-", label="train")
            if any(f"val/{name}" in r for r in rows):
                ax.plot(epochs, [r.get(f"val/{name}", math.nan) for r in rows], "--", label="val")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class EarlyStopping(Hook):
    """Stop when ``metric`` has not improved for ``patience`` validations (0 disables).

    Runs on every rank (metrics are gathered, so every rank decides the same).
    """

    priority = 40
    main_only = False

    def __init__(self, patience: int, metric: str = "AP") -> None:
        self.patience, self.metric = patience, metric
        self.best, self.bad = None, 0

    def after_val(self, trainer: TrainerView) -> None:
        value = trainer.metrics.get(self.metric)
        if value is None or self.patience <= 0:
            return
        if self.best is None or (value > self.best if higher_is_better(self.metric) else value < self.best):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            trainer.request_stop(f"no improvement of {self.metric} for {self.bad} validations (best {self.best:.4g})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], state["bad"]


class Checkpointer(Hook):
    """``weights/last.pt`` every epoch, ``weights/best.pt`` when ``metric`` improves.

    Runs on every rank because the checkpoint gathers every rank's RNG state; only
    rank 0 writes. Also saves the resolved config as ``config.yaml`` at the start.
    Each file is replaced atomically, and last.pt is written after best.pt and after
    the other hooks' output for the epoch (results.csv): a run killed at any moment
    resumes from a complete last.pt whose epoch is redone with the same result, and
    results.csv is rewritten from the rows last.pt holds, so no row is duplicated.
    """

    priority = 90
    main_only = False

    def __init__(self, out: str | Path, metric: str = "AP") -> None:
        self.out = Path(out)
        self.metric = metric
        self.best: float | None = None
        self.best_epoch: int | None = None  # 0-based epoch whose model best.pt holds
        self.warned = False

    def before_train(self, trainer: TrainerView) -> None:
        if trainer.is_main:
            save_config(trainer.cfg, self.out / "config.yaml")
            for stale in (self.out / "weights").glob(".*.pt.*.tmp"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)

    def after_epoch(self, trainer: TrainerView) -> None:
        if trainer.validation_due() and self.metric not in trainer.metrics and not self.warned:
            self.warned = True
            LOGGER.warning(f"metric '{self.metric}' is not among the validation results "
                           f"({', '.join(trainer.metrics)}): best.pt will not be written")
        value = trainer.metrics.get(self.metric) if trainer.validation_due() else None
        improved = value is not None and (
            self.best is None or (value > self.best if higher_is_better(self.metric) else value < self.best))
        if improved:
            self.best, self.best_epoch = value, trainer.epoch
        state = trainer.state_dict()
        if trainer.is_main:  # best.pt first: a kill between the two writes redoes this epoch, and best.pt with it
            if improved:
                atomic_save(state, self.out / "weights" / "best.pt")
            atomic_save(state, self.out / "weights" / "last.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state.get("best_epoch")


class TensorBoardLogger(Hook):
    """Epoch losses, lrs and metrics as TensorBoard scalars (needs the ``tensorboard`` package)."""

    priority = 65

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.writer = None

    def before_train(self, trainer: TrainerView) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise RuntimeError("tensorboard=True needs the tensorboard package: pip install tensorboard") from e
        self.writer = SummaryWriter(str(self.out / "tensorboard"))

    def after_epoch(self, trainer: TrainerView) -> None:
        step = trainer.epoch + 1
        for k, v in trainer.epoch_losses.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        for i, lr in enumerate(trainer.lr):
            self.writer.add_scalar(f"lr/pg{i}", lr, step)
        for k, v in trainer.metrics.items():
            self.writer.add_scalar(f"val/{k}" if "/" not in k else k, v, step)

    def after_train(self, trainer: TrainerView) -> None:
        if self.writer is not None:
            self.writer.close()


def default_hooks(cfg: Config, progress: bool = True) -> list[Hook]:
    """The built-in hooks for ``cfg``: progress bar, early stopping, CSV, plot, (TensorBoard), checkpoints."""
    out, metric = cfg.train.out, cfg.train.metric
    hooks: list[Hook] = [ProgressBar(progress), EarlyStopping(cfg.train.patience, metric), CSVLogger(out),
                         LossPlot(out, metric), Checkpointer(out, metric)]
    if cfg.train.tensorboard:
        hooks.append(TensorBoardLogger(out))
    return hooks
