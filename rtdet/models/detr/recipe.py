"""The DETR family's training recipe: the settings DETR-style detectors train with, chosen once per run.

:mod:`rtdet.engine.recipe` resolves the engine's ``auto`` settings (optimizer, lr, ...) with the
table :data:`rtdet.engine.recipe.FAMILY_RECIPES` (DETR: AdamW only, lr 1e-4, weight decay 1e-4).
The rest of the recipe the DETR papers share differs from the YOLO defaults of the engine and is
chosen here, for every setting the run does not give explicitly (a given one always wins), each
printed with its reason at the start of training and saved resolved in the run's config:

- ``optim.nbs`` = the batch: no gradient accumulation at any run length (the engine accumulates
  long runs to 64 images as the YOLO recipe does; DETR, Deformable DETR and RT-DETR step once per batch).
- ``optim.clip_grad`` = 0.1: the gradient norm clipped to 0.1 (DETR's and RT-DETR's ``clip_max_norm``).
- ``optim.schedule`` = ``step`` with one ``optim.lr_drop`` at 80% of the run (Deformable DETR: epoch 40
  of 50; DETR: 200 of 300), ``lr_gamma`` 0.1.
- ``optim.momentum`` = 0.9 and ``optim.warmup_momentum`` = 0.9: AdamW's ``beta1`` as DETR trains
  (``torch.optim.AdamW``'s default), held through the warm-up (YOLO ramps SGD's momentum from 0.8).
- ``optim.warmup_bias_lr`` = 0: every parameter's lr rises from 0 in the warm-up (RT-DETR's linear
  warm-up; YOLO starts the biases at 0.1, which is 1,000 times DETR's learning rate).
- ``detr.backbone_lr_scale`` = 0.1 when the run starts from ``--weights`` (RT-DETR's multiplier, for a
  backbone that was trained before), 1 from scratch, where a backbone held to a tenth of the rate
  starts as far from useful features as the rest of the network. Measured on the digits run below:
  mAP50-95 0.018 at a tenth, 0.047 at the full lr.
- ``train.precise_bn`` = 10: the evaluated model's BatchNorm statistics are measured over 10 training
  batches before each validation (:mod:`rtdet.engine.batchnorm` says why a transformer needs it).
- ``optim.lr`` = :data:`SHORT_RUN_LR` for a run from scratch (no ``--weights``) shorter than
  :data:`rtdet.engine.recipe.LONG_RUN_STEPS` steps: RT-DETR's 1e-4 is meant for 72 epochs of COCO
  from an ImageNet backbone. Measured on digits (300 training / 100 validation images at 128 px,
  10 epochs, batch 8, ``benchmarks/detr.py``): mAP50-95 / mAP50 0.001 / 0.004 at 1e-4,
  0.018 / 0.045 at 1e-3.

A resumed run keeps the settings its checkpoint saved (they were chosen when it started).
"""

from __future__ import annotations

from typing import Any

from rtdet.config import AUTO
from rtdet.engine.recipe import LONG_RUN_STEPS, Choice, short_run_from_scratch

SHORT_RUN_LR = 1e-3  # AdamW's lr for a short run from scratch: 10x RT-DETR's 1e-4 (see the module docstring)
CLIP_MAX_NORM = 0.1  # DETR / RT-DETR clip_max_norm
LR_DROP_AT = 0.8  # the step schedule's drop, as a fraction of the run (Deformable DETR: 40 of 50 epochs)
ADAM_BETA1 = 0.9  # torch.optim.AdamW's default, as DETR trains
PRECISE_BN_BATCHES = 10  # training batches over which BatchNorm statistics are measured before each validation


def lr_drop_epoch(epochs: int) -> int:
    """The epoch of the single lr drop of a run of ``epochs`` (at least 1)."""
    return max(1, round(LR_DROP_AT * epochs))


def detr_recipe(cfg: Any, facts: Any) -> list[Choice]:
    """The detr family's choices for ``cfg`` (an :class:`rtdet.config.Config`) and ``facts``
    (:class:`rtdet.engine.recipe.RunFacts`), for the settings not given explicitly; none when resuming."""
    if cfg.train.resume:
        return []
    o, out = cfg.optim, []
    if cfg.detr.backbone_lr_scale == AUTO:
        from rtdet.models.detr.model import BACKBONE_LR_SCALE

        pretrained = bool(cfg.model.weights)
        out.append(Choice("detr.backbone_lr_scale", BACKBONE_LR_SCALE if pretrained else 1.0,
                          "RT-DETR's tenth of lr for a backbone that starts trained (--weights)" if pretrained else
                          "from scratch the backbone learns at the full lr"))
    if o.lr == AUTO and short_run_from_scratch(cfg, facts):
        out.append(Choice("optim.lr", SHORT_RUN_LR, f"short run from scratch ({facts.iterations:,} iterations < "
                                                    f"{LONG_RUN_STEPS:,}): 10x RT-DETR's 1e-4"))
    if o.nbs == AUTO:
        batch = facts.batch * facts.world_size
        out.append(Choice("optim.nbs", batch, "DETR steps once per batch at any run length (no accumulation)"))
    wanted = [("clip_grad", CLIP_MAX_NORM, "DETR's clip_max_norm"),
              ("momentum", ADAM_BETA1, "AdamW's beta1 as DETR trains"),
              ("warmup_momentum", ADAM_BETA1, "beta1 held through the warm-up"),
              ("warmup_bias_lr", 0.0, "every lr rises from 0 in the warm-up (RT-DETR)")]
    if not cfg.explicit("schedule"):
        wanted.append(("schedule", "step", "DETR's step schedule"))
    if not cfg.explicit("schedule") or o.schedule == "step":
        drop = lr_drop_epoch(facts.epochs)
        wanted.append(("lr_drop", [drop], f"lr x{o.lr_gamma} at epoch {drop} of {facts.epochs} (80%, Deformable "
                                          "DETR's 40 of 50)"))
    out += [Choice(f"optim.{name}", value, why) for name, value, why in wanted if not cfg.explicit(name)]
    if not cfg.explicit("precise_bn"):
        out.append(Choice("train.precise_bn", PRECISE_BN_BATCHES, "BatchNorm statistics measured for the weights "
                          "evaluated (rtdet.engine.batchnorm)"))
    return out


__all__ = ["SHORT_RUN_LR", "detr_recipe", "lr_drop_epoch"]
