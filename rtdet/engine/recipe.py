"""The adaptive training recipe: settings left at ``auto`` are chosen from the run itself.

A new user's run differs from the runs a published recipe was tuned on: a few
hundred photos for 30 epochs on a CPU make a few hundred optimizer steps, where
the classic YOLO recipe (SGD, lr 0.01, gradients accumulated to 64 images, an EMA
ramp of 2,000 updates) assumes hundreds of thousands. Left at ``auto`` (the
defaults), these settings are resolved once, before training, from facts about
the run (:class:`RunFacts`), printed with the reason for each value, and saved
resolved in ``config.yaml`` and the checkpoints (a resumed run uses them as they
were). An explicit setting always wins.

The rules and the runs behind them (``benchmarks/recipe.md``; every row trained
from scratch, rtdet-n, 320 px, batch 16, seed 0, on bccd, coco128 and digits):

- ``nbs`` (nominal batch size; gradients are accumulated up to it): the batch itself
  (no accumulation) while the run is short (< :data:`LONG_RUN_STEPS` optimizer steps
  counted without accumulation): accumulation divides the number of steps, and a
  short run needs every one. Long runs accumulate to 64 as the classic recipe does.
- ``optimizer``: AdamW for short runs, SGD (momentum 0.937, Nesterov) for long ones; a family that
  trains with one optimizer only (DETR: AdamW) uses it at every length.
- ``lr``, ``weight_decay``, ``clip_grad``: the family's values for the chosen optimizer
  (:data:`FAMILY_RECIPES`; a family without a ``clip_grad`` clips the gradient norm at :data:`CLIP_GRAD`).
- ``warmup_epochs``: 3 epochs, but at most a tenth of the run.
- ``data.scale`` (the random scale gain of every task's augmentation): 0.25 for short runs, the
  classic 0.5 for long ones (:func:`rtdet.data.transforms.auto_scale`).
- The EMA ramp (``train.ema_tau``) stays the classic 2,000 updates: ramps scaled to the
  run (an averaging horizon of a tenth of it) were no better on any set (BCCD 0.547 vs
  0.548, coco128 0.006 vs 0.010, the classifier 0.922 vs 0.928): in a short run whose
  learning rate decays to 1% the last weights are already the settled ones, and the
  2,000-update ramp leaves the EMA close to them (decay 0.24 after 540 updates) while a
  long run gets the full average.

A task adds its own (the detect task: ``close_mosaic``, see
:func:`rtdet.data.pipeline.auto_close_mosaic`); a family may change the numbers
(:data:`FAMILY_RECIPES`) and resolve its own settings (its registry entry's ``recipe``:
Faster R-CNN's frozen backbone stages and BatchNorm, :func:`rtdet.models.faster_rcnn.rcnn_recipe`; the DETR
family's schedule, clipping and no accumulation, :func:`rtdet.models.detr.recipe.detr_recipe`). A family's
choice of a setting replaces the engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from rtdet.config import AUTO, Config

LONG_RUN_STEPS = 10_000  # optimizer steps (without accumulation) from which the long-run recipe applies

# The optimizer settings a family uses when they are "auto": {family: {optimizer: {"lr", "weight_decay"}}}.
# AdamW's decay is decoupled (multiplied by lr), hence 100x SGD's. "default" serves families without an entry.
# rcnn: SGD as torchvision's detection references train Faster R-CNN (lr 0.02 for 16 images a step, weight decay
# 1e-4, references/detection/README.md); AdamW as DETR trains its detector (lr 1e-4, weight decay 1e-4).
# detr: AdamW only, at every run length, as DETR and RT-DETR train (lr 1e-4, weight decay 1e-4, rtdetr_pytorch's
# optimizer.yml; the backbone at a tenth of it: the model's param_groups_hint, setting detr.backbone_lr_scale).
# m2f: AdamW only, as Mask2Former trains (lr 1e-4, weight decay 0.05, the gradient's norm clipped at 0.01 over the
# whole model: its Base-*.yaml SOLVER settings; the backbone at a tenth of lr: setting m2f.m2f_backbone_lr_scale).
# A family whose table names one optimizer uses it whatever the run's length.
FAMILY_RECIPES: dict[str, dict[str, dict[str, float]]] = {
    "default": {"adamw": {"lr": 0.002, "weight_decay": 0.05}, "sgd": {"lr": 0.01, "weight_decay": 5e-4}},
    "rcnn": {"adamw": {"lr": 1e-4, "weight_decay": 1e-4}, "sgd": {"lr": 0.02, "weight_decay": 1e-4}},
    "detr": {"adamw": {"lr": 1e-4, "weight_decay": 1e-4}},
    "m2f": {"adamw": {"lr": 1e-4, "weight_decay": 0.05, "clip_grad": 0.01}},
}
CLIP_GRAD = 10.0  # the gradient-norm clip of a family whose recipe names none


@dataclass(frozen=True)
class RunFacts:
    """What the recipe rules look at.

    Attributes:
        train_images: images in the training split (all processes together).
        batch: images per batch per process; ``world_size`` processes.
        epochs: planned epochs.
        num_classes: classes of the model.
        imgsz: training image size in pixels.
        family: the model family (``yolo``, ``cls``, ...; see :mod:`rtdet.registry`).
    """

    train_images: int
    batch: int
    world_size: int
    epochs: int
    num_classes: int
    imgsz: int
    family: str = "default"

    @property
    def iters_per_epoch(self) -> int:
        """Batches per epoch on each process (a partial last batch counts)."""
        return max(math.ceil(self.train_images / max(self.batch * self.world_size, 1)), 1)

    @property
    def iterations(self) -> int:
        return self.iters_per_epoch * self.epochs


@dataclass(frozen=True)
class Choice:
    """One resolved setting: ``section.name = value``, and why."""

    key: str
    value: Any
    reason: str


def family_recipe(family: str, optimizer: str) -> dict[str, float]:
    """The family's ``{"lr", "weight_decay"}`` for ``optimizer`` (the default family's if it has none)."""
    table = FAMILY_RECIPES.get(family, FAMILY_RECIPES["default"])
    return table.get(optimizer, FAMILY_RECIPES["default"].get(optimizer, FAMILY_RECIPES["default"]["sgd"]))


def optim_choices(cfg: Config, facts: RunFacts) -> list[Choice]:
    """The engine's ``auto`` settings (optimizer, lr, weight decay, gradient clip, nbs, warm-up) for ``facts``."""
    o, out = cfg.optim, []
    long_run = facts.iterations >= LONG_RUN_STEPS
    length = f"{facts.iterations:,} iterations ({facts.epochs} epochs x {facts.iters_per_epoch})"
    nbs = o.nbs
    if nbs == AUTO:
        nbs = 64 if long_run else facts.batch * facts.world_size
        why = (f"long run ({length} >= {LONG_RUN_STEPS:,}): accumulate to 64 images" if long_run else
               f"short run ({length} < {LONG_RUN_STEPS:,}): one optimizer step per batch")
        out.append(Choice("optim.nbs", nbs, why))
    accumulate = max(round(nbs / (facts.batch * facts.world_size)), 1)
    steps = max(facts.iterations // accumulate, 1)
    optimizer = o.optimizer
    if optimizer == AUTO:
        optimizer = "sgd" if long_run else "adamw"
        why = f"{'long' if long_run else 'short'} run, {steps:,} optimizer steps"
        only = FAMILY_RECIPES.get(facts.family, {})
        if len(only) == 1:
            optimizer, why = next(iter(only)), f"the {facts.family} family trains with {next(iter(only))} only"
        out.append(Choice("optim.optimizer", optimizer, why))
    recipe = family_recipe(facts.family, optimizer)
    for name in ("lr", "weight_decay"):
        if getattr(o, name) == AUTO:
            out.append(Choice(f"optim.{name}", recipe[name], f"{facts.family} family's value for {optimizer}"))
    if o.clip_grad == AUTO:
        why = f"{facts.family} family's value for {optimizer}" if "clip_grad" in recipe else "the default"
        out.append(Choice("optim.clip_grad", recipe.get("clip_grad", CLIP_GRAD), why))
    if o.warmup_epochs == AUTO:
        warmup = round(min(3.0, 0.1 * facts.epochs), 3)
        why = "3 epochs" if warmup == 3.0 else f"a tenth of the {facts.epochs}-epoch run (3 epochs at most)"
        out.append(Choice("optim.warmup_epochs", warmup, why))
    return out


def short_run_from_scratch(cfg: Config, facts: RunFacts) -> bool:
    """Whether the run trains from scratch (no ``--weights``) for fewer than :data:`LONG_RUN_STEPS` iterations
    with AdamW (given or ``auto``): the runs for which the transformer families raise their papers' learning
    rates (:mod:`rtdet.models.detr.recipe`, :mod:`rtdet.models.m2f.recipe`)."""
    return (not cfg.model.weights and facts.iterations < LONG_RUN_STEPS
            and cfg.optim.optimizer in (AUTO, "adamw"))


def augment_choices(cfg: Config, facts: RunFacts) -> list[Choice]:
    """The ``auto`` augmentation strength (``data.scale``) for the run's length."""
    from rtdet.data.transforms import auto_scale

    if cfg.data.scale != AUTO:
        return []
    long_run = facts.iterations >= LONG_RUN_STEPS
    value = auto_scale(AUTO, long_run)
    why = ("long run: the classic scale jitter" if long_run else
           f"short run ({facts.epochs} epochs): weaker scale jitter than the classic 0.5")
    return [Choice("data.scale", value, why)]


def apply_choices(cfg: Config, choices: list[Choice]) -> Config:
    """``cfg`` with ``choices`` set (``cfg.given`` unchanged: the recipe chose them, not the user)."""
    sections: dict[str, dict[str, Any]] = {}
    for c in choices:
        section, name = c.key.split(".")
        sections.setdefault(section, {})[name] = c.value
    return replace(cfg, **{s: replace(getattr(cfg, s), **values) for s, values in sections.items()})


def resolve_recipe(cfg: Config, facts: RunFacts,
                   *rules: Callable[[Config, RunFacts], list[Choice]] | None) -> tuple[Config, list[Choice]]:
    """Resolve every ``auto`` setting of ``cfg``: the engine's (:func:`optim_choices`, :func:`augment_choices`),
    then those of ``rules`` (the task's, the model family's); a rule's choice of a setting replaces an earlier one's.

    Returns the resolved config and the choices made (empty when nothing was ``auto``).
    """
    chosen: dict[str, Choice] = {}
    for c in optim_choices(cfg, facts) + augment_choices(cfg, facts) + [c for rule in rules if rule
                                                                          for c in rule(cfg, facts)]:
        chosen.pop(c.key, None)  # a later rule (the task's, the family's) overrides an earlier one's choice
        chosen[c.key] = c
    choices = list(chosen.values())
    return apply_choices(cfg, choices), choices


def format_choices(choices: list[Choice]) -> str:
    """The choices as lines ``recipe: lr = 0.002  (why)`` for the start of training."""
    width = max((len(c.key.split(".")[1]) for c in choices), default=0)
    return "\n".join(f"recipe: {c.key.split('.')[1]:{width}s} = {c.value!s:8s} ({c.reason})" for c in choices)
