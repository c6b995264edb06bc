"""The m2f family's training recipe for short runs from scratch.

Mask2Former trains with AdamW at lr 1e-4, the gradient norm clipped at 0.01 and the backbone at a
tenth of the learning rate, for 160,000 steps from an ImageNet backbone (its ``Base-*.yaml``; the
engine's table :data:`rtdet.engine.recipe.FAMILY_RECIPES` holds these values). A run from scratch
shorter than :data:`rtdet.engine.recipe.LONG_RUN_STEPS` optimizer steps barely moves at that learning
rate: on 32 CamVid images for 100 steps it predicts the majority class everywhere (val mIoU 0.026),
while lr 2e-3 with the gradient clipped at 10 (the seg family's values) starts to separate classes
(0.091); fitting four images, lr 1e-4 reaches mIoU 0.120 and 1e-3 0.717 (``benchmarks/recipe.md``,
*Segmentation: rtdet-m2f*). So for such a run, and only for the settings left ``auto``:

- ``optim.lr`` = :data:`SHORT_RUN_LR` (with AdamW, the family's only optimizer);
- ``optim.clip_grad`` = :data:`SHORT_RUN_CLIP`.

Runs with ``--weights`` (a pretrained network) and long runs keep Mask2Former's values.
"""

from __future__ import annotations

from typing import Any

from rtdet.config import AUTO

SHORT_RUN_LR = 0.002  # the seg family's AdamW lr (rtdet.engine.recipe.FAMILY_RECIPES["default"])
SHORT_RUN_CLIP = 10.0  # the engine's default gradient-norm clip (rtdet.engine.recipe.CLIP_GRAD)


def m2f_recipe(cfg: Any, facts: Any) -> list:
    """The m2f family's choices for ``cfg`` (an :class:`rtdet.config.Config`) and ``facts``
    (:class:`rtdet.engine.recipe.RunFacts`): see the module docstring; none when resuming."""
    from rtdet.engine.recipe import LONG_RUN_STEPS, Choice, short_run_from_scratch

    o = cfg.optim
    if cfg.train.resume or not short_run_from_scratch(cfg, facts):
        return []
    why = f"short run from scratch ({facts.iterations:,} iterations < {LONG_RUN_STEPS:,})"
    out = []
    if o.lr == AUTO:
        out.append(Choice("optim.lr", SHORT_RUN_LR, f"{why}: Mask2Former's 1e-4 barely moves"))
    if o.clip_grad == AUTO:
        out.append(Choice("optim.clip_grad", SHORT_RUN_CLIP, f"{why}: Mask2Former's 0.01 clips every step"))
    return out


__all__ = ["SHORT_RUN_CLIP", "SHORT_RUN_LR", "m2f_recipe"]
