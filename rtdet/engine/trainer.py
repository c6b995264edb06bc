"""The training loop: ``train -> epoch -> iteration``, readable top to bottom.

The trainer knows a model only through the model contract (see ``rtdet/models``):
``model(images, targets) -> {name: scalar loss}`` in train mode and
``model(images) -> [{"boxes", "scores", "labels"}]`` in eval mode, plus an
optional ``param_groups_hint()``. Validation is a callable
``evaluate(model) -> {metric: float}`` (see :func:`rtdet.engine.evaluate.make_evaluator`).

Events fire in this order (see :mod:`rtdet.engine.hooks`)::

    before_train
      before_epoch
        before_iter, after_iter     (once per batch)
      before_val, after_val         (every val_interval epochs and at the last epoch)
      after_epoch
    after_train

Example:
    >>> trainer = Trainer(model, train_loader, cfg, evaluate=make_evaluator(val_loader, metric_fn, collect))
    >>> metrics = trainer.train()
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rtdet.config import Config, config_to_dict
from rtdet.engine import dist
from rtdet.engine.checkpoint import CHECKPOINT_VERSION, load_checkpoint, load_pretrained
from rtdet.engine.batchnorm import precise_bn
from rtdet.engine.ema import ModelEMA
from rtdet.engine.hooks import Hook, call_hooks, default_hooks
from rtdet.engine.memory import release_memory
from rtdet.engine.optim import LRSchedule, build_optimizer
from rtdet.engine.recipe import RunFacts, format_choices, resolve_recipe
from rtdet.engine.seed import rng_state, set_rng_state

LOGGER = logging.getLogger("rtdet")
Evaluate = Callable[[nn.Module], dict[str, float]]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and dist.is_distributed():
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def targets_to(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    return [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]


def set_epoch(loader: Iterable, epoch: int) -> None:
    """Tell the loader (rtdet's DetectionLoader: augmentation seed, close_mosaic) or its sampler
    (DistributedSampler: per-epoch shuffle) which epoch starts, so data order is a function of it."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    elif hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)


class Trainer:
    """Trains ``model`` on ``train_loader`` with the settings of ``cfg``.

    Args:
        model: a module following the model contract (``num_classes`` attribute).
        train_loader: yields ``(images uint8 [B,3,H,W], targets list[dict])``; its
            sampler gets ``set_epoch(epoch)`` each epoch when it has one (use
            :func:`rtdet.engine.dist.train_sampler` for exact resume and DDP).
        cfg: the resolved :class:`~rtdet.config.Config` (``optim`` and ``train`` sections).
        evaluate: ``evaluate(model) -> {metric: float}`` called on every rank with the
            model to score (the EMA copy when EMA is on), in eval mode under no_grad.
        hooks: hooks to fire; ``None`` uses :func:`rtdet.engine.hooks.default_hooks`.
        device: overrides ``cfg.train.device``.
    """

    def __init__(self, model: nn.Module, train_loader: Iterable, cfg: Config, evaluate: Evaluate | None = None,
                 hooks: list[Hook] | None = None, device: str | torch.device | None = None,
                 meta: dict[str, Any] | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.meta = dict(meta or {})  # saved in every checkpoint: what rebuilds the model (class names, ...)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(device) if device is not None else resolve_device(cfg.train.device, local_rank)
        self._check_amp()
        if cfg.train.sync_bn and self.world_size > 1:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:  # torch's SyncBatchNorm runs on GPUs only
                dist.log_info("sync_bn ignored: SyncBatchNorm needs CUDA devices")
        self.model = model.to(self.device)
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)  # 4-d weights only; before the EMA copy
        self.pretrained_report = None
        if cfg.model.weights and not cfg.train.resume:  # before the EMA copy and the DDP broadcast
            self.pretrained_report = load_pretrained(self.model, cfg.model.weights)
            dist.log_info(f"pretrained weights {cfg.model.weights}: {self.pretrained_report.summary()}")
        self.train_loader = train_loader
        self.evaluate = evaluate
        self.hooks = sorted(default_hooks(cfg, progress) if hooks is None else list(hooks), key=lambda h: h.priority)
        self.batch_size = getattr(train_loader, "batch_size", None) or cfg.data.batch
        cfg = self.cfg = self._resolve_auto(cfg, train_loader, model)
        # accumulate gradients up to the nominal batch size, counting every process's images
        self.accumulate = max(round(cfg.optim.nbs / (self.batch_size * self.world_size)), 1)
        wd = cfg.optim.weight_decay * self.batch_size * self.world_size * self.accumulate / cfg.optim.nbs
        self.optimizer = build_optimizer(self.model, cfg.optim, weight_decay=wd)
        self.schedule = LRSchedule(cfg.optim, cfg.train.epochs, len(train_loader))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.net = self._wrap_ddp(self.model)  # broadcasts rank 0's weights: every rank's EMA copy starts alike
        self.ema = ModelEMA(self.model, cfg.train.ema_decay, cfg.train.ema_tau) if cfg.train.ema else None
        self.start_epoch, self.epoch, self.iter, self.batch_index = 0, 0, 0, 0
        self.losses: dict[str, float] = {}  # the current batch's losses
        self.epoch_losses: dict[str, float] = {}  # running (then rank-averaged) epoch means
        self.metrics: dict[str, float] = {}  # the latest validation
        self.grad_norm = float("nan")
        self.stop_reason: str | None = None
        if cfg.train.resume:
            self.resume(cfg.train.resume)

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Train from ``start_epoch`` to ``cfg.train.epochs``; return the last validation metrics."""
        self.call("before_train")
        for self.epoch in range(self.start_epoch, self.cfg.train.epochs):
            self.train_epoch()
            if self.validation_due():
                self.validate()
            self.call("after_epoch")
            if self.stop_reason:
                dist.log_info(f"stopping after epoch {self.epoch + 1}: {self.stop_reason}")
                break
        self.call("after_train")
        return self.metrics

    def train_epoch(self) -> None:
        self.net.train()
        set_epoch(self.train_loader, self.epoch)
        sums: dict[str, float] = {}
        self.call("before_epoch")
        self.optimizer.zero_grad(set_to_none=True)
        n = len(self.train_loader)
        for self.batch_index, (images, targets) in enumerate(self.train_loader):
            self.call("before_iter")
            # step when `accumulate` batches are in, and at the epoch's end so no gradient
            # crosses an epoch boundary (a checkpoint there is then complete)
            step = (self.batch_index + 1) % self.accumulate == 0 or self.batch_index + 1 == n
            self.train_iter(images, targets, step)
            for k, v in self.losses.items():
                sums[k] = sums.get(k, 0.0) + v
            self.epoch_losses = {k: v / (self.batch_index + 1) for k, v in sums.items()}
            self.iter += 1
            self.call("after_iter")
        self.epoch_losses = dist.all_reduce_mean(self.epoch_losses)
        release_memory()  # resident memory stays flat across epochs (see rtdet.engine.memory)

    def train_iter(self, images: torch.Tensor, targets: list[dict[str, Any]], step: bool) -> None:
        """Forward, loss, backward for one batch; an optimizer step when ``step``."""
        self.schedule.apply(self.optimizer, self.iter)
        images, targets = self.inputs(images, targets)
        with self._sync_grads(step):
            with self._autocast():
                losses = self.net(images, targets)
            loss = sum(v.float() for v in losses.values())
            self._check_finite(loss, losses)
            self.scaler.scale(loss / self.accumulate).backward()
        if step:
            self.optimizer_step()
        values = torch.stack([v.detach().float() for v in losses.values()] + [loss.detach()]).tolist()  # one sync
        self.losses = dict(zip([*losses, "loss"], values))

    def inputs(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """A loader batch (images uint8 [B, 3, H, W]) as model inputs on the device: float images in [0, 1]."""
        images = (images.to(self.device, non_blocking=True).float() / 255).contiguous(memory_format=self.memory_format)
        return images, targets_to(targets, self.device)

    def optimizer_step(self) -> None:
        clip = self.cfg.optim.clip_grad
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            self.grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    def validation_due(self) -> bool:
        last = self.epoch + 1 == self.cfg.train.epochs
        return self.evaluate is not None and ((self.epoch + 1) % max(self.cfg.train.val_interval, 1) == 0 or last)

    def validate(self) -> dict[str, float]:
        """Score :attr:`eval_model` with ``evaluate`` (with ``train.precise_bn``, after its BatchNorm statistics
        are recomputed for its weights: :mod:`rtdet.engine.batchnorm`); the result lands in :attr:`metrics`."""
        self.call("before_val")
        model = self.eval_model
        was_training = model.training
        # fork the RNG: how often (or whether) we validate must not change the training run
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if self.cfg.train.precise_bn > 0:  # statistics for the weights evaluated (rtdet.engine.batchnorm)
                set_epoch(self.train_loader, self.epoch)
                with self._autocast():
                    precise_bn(model, self.train_loader, self.cfg.train.precise_bn, self.inputs)
            model.eval()
            # scored in the layout in which `rtdet val` and `predict` run a loaded checkpoint (contiguous), so the
            # final numbers are theirs: channels-last weights take other convolution kernels, whose rounding moved
            # one CamVid pixel's class (AMD EPYC, tests/tasks/test_segment.py::test_val_reproduces_the_final_numbers)
            model.to(memory_format=torch.contiguous_format)
            with torch.no_grad():
                metrics = self.evaluate(model)
            model.to(memory_format=self.memory_format)
        model.train(was_training)
        self.metrics = {k: float(v) for k, v in metrics.items()}
        self.call("after_val")
        return self.metrics

    # ------------------------------------------------------------------ helpers
    @property
    def eval_model(self) -> nn.Module:
        """The model that is evaluated and exported: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def request_stop(self, reason: str) -> None:
        """Hooks call this to end training after the current epoch."""
        self.stop_reason = reason

    def call(self, event: str) -> None:
        call_hooks(self.hooks, event, self)

    def _resolve_auto(self, cfg: Config, train_loader: Iterable, model: nn.Module) -> Config:
        """``cfg`` with the engine's ``auto`` settings resolved, for callers that did not resolve them
        (:func:`rtdet.workflows.train` does, with the task's and the family's facts)."""
        dataset = getattr(train_loader, "dataset", None)
        images = len(dataset) if dataset is not None else len(train_loader) * self.batch_size
        facts = RunFacts(train_images=images, batch=self.batch_size, world_size=self.world_size,
                         epochs=cfg.train.epochs, num_classes=getattr(model, "num_classes", 0), imgsz=cfg.data.imgsz)
        cfg, choices = resolve_recipe(cfg, facts)
        if choices:
            dist.log_info(format_choices(choices))
        return cfg

    def _check_amp(self) -> None:
        amp = self.cfg.train.amp
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError(f"amp=fp16 needs a CUDA device (got {self.device}); use amp=bf16 on CPU")

    def _autocast(self) -> contextlib.AbstractContextManager:
        amp = self.cfg.train.amp
        if amp == "off":
            return contextlib.nullcontext()
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def _sync_grads(self, step: bool) -> contextlib.AbstractContextManager:
        # DDP all-reduces gradients on every backward; while accumulating, skip that
        if isinstance(self.net, DistributedDataParallel) and not step:
            return self.net.no_sync()
        return contextlib.nullcontext()

    def _wrap_ddp(self, model: nn.Module) -> nn.Module:
        if self.world_size <= 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _check_finite(self, loss: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        # with fp16 the GradScaler skips steps with inf/nan gradients by design
        if self.cfg.train.amp != "fp16" and not math.isfinite(float(loss.detach())):
            values = {k: float(v.detach()) for k, v in losses.items()}
            raise FloatingPointError(f"non-finite loss at epoch {self.epoch + 1}, batch {self.batch_index}: {values}")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after the current epoch (see rtdet.engine.checkpoint)."""
        sampler = getattr(self.train_loader, "sampler", None)
        gen = getattr(self.train_loader, "generator", None)
        return {
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch + 1,
            "iter": self.iter,
            "model": self.model.state_dict(),
            "model_args": getattr(self.model, "build_args", None),  # rebuilds the architecture, if the model says how
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": dist.all_gather_object(rng_state()),  # one per rank; collective: call on every rank
            "data": {"generator": gen.get_state() if gen is not None else None,
                     "sampler_seed": getattr(sampler, "seed", None)},
            "hooks": {type(h).__name__: h.state_dict() for h in self.hooks if h.state_dict() is not None},
            "metrics": dict(self.metrics),
            "config": config_to_dict(self.cfg),
            "meta": self.meta,
        }

    def resume(self, path: str) -> None:
        """Load a checkpoint written by :meth:`state_dict` and continue after its epoch."""
        # on the CPU: RNG states must be CPU tensors; load_state_dict moves the rest to the device
        ckpt = load_checkpoint(path, map_location="cpu")
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        saved = ckpt["schedule"]["iters_per_epoch"]
        if saved != self.schedule.iters_per_epoch:
            LOGGER.warning(f"{path}: {saved} batches per epoch when saved, {self.schedule.iters_per_epoch} now")
        planned = ckpt["schedule"].get("epochs", self.schedule.epochs)
        if planned != self.schedule.epochs:  # see LRSchedule: the decay is re-laid over the new total
            dist.log_info(f"{path}: a run of {planned} epochs continues to {self.schedule.epochs}: the learning-rate "
                          f"schedule and close_mosaic now count to epoch {self.schedule.epochs}")
        self.start_epoch, self.iter = int(ckpt["epoch"]), int(ckpt["iter"])
        self.metrics = dict(ckpt.get("metrics", {}))
        states = ckpt.get("hooks", {})
        for h in self.hooks:
            if type(h).__name__ in states:
                h.load_state_dict(states[type(h).__name__])
        seed = getattr(getattr(self.train_loader, "sampler", None), "seed", None)
        if seed != ckpt["data"]["sampler_seed"]:
            LOGGER.warning(f"{path}: the sampler seed was {ckpt['data']['sampler_seed']}, now {seed}: data order differs")
        gen = getattr(self.train_loader, "generator", None)
        if gen is not None and ckpt["data"]["generator"] is not None:
            gen.set_state(ckpt["data"]["generator"])
        rngs = ckpt["rng"]
        set_rng_state(rngs[self.rank] if len(rngs) == self.world_size else rngs[0])
        dist.log_info(f"resumed from {path} after epoch {self.start_epoch} ({self.iter} batches)")
