"""rtdet.models.m2f.recipe: a short run from scratch trains at the seg family's lr and clip; long runs,
pretrained runs and explicit settings keep theirs."""

from __future__ import annotations

from rtdet.config import load_config
from rtdet.engine.recipe import FAMILY_RECIPES, LONG_RUN_STEPS, RunFacts, format_choices, resolve_recipe
from rtdet.models import family_recipe
from rtdet.models.m2f.recipe import SHORT_RUN_CLIP, SHORT_RUN_LR
from rtdet.tasks import get_task


def resolved(overrides=None, epochs=30, images=184, batch=8):
    facts = RunFacts(train_images=images, batch=batch, world_size=1, epochs=epochs, num_classes=11, imgsz=480,
                     family="m2f")
    cfg = load_config(None, {"model": "rtdet-m2f", **(overrides or {})})
    return resolve_recipe(cfg, facts, get_task("segment").recipe, family_recipe("rtdet-m2f"))


def test_a_short_run_from_scratch_trains_faster_than_mask2formers_recipe():
    cfg, choices = resolved()  # 30 epochs x 23 batches: 690 steps
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.clip_grad) == ("adamw", SHORT_RUN_LR, SHORT_RUN_CLIP)
    assert cfg.optim.weight_decay == FAMILY_RECIPES["m2f"]["adamw"]["weight_decay"]
    assert "Mask2Former's 1e-4 barely moves" in format_choices(choices)


def test_long_and_pretrained_runs_keep_mask2formers_recipe(tmp_path):
    long_epochs = LONG_RUN_STEPS // 23 + 1
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    for cfg, _ in (resolved(epochs=long_epochs), resolved({"weights": str(weights)})):
        m2f = FAMILY_RECIPES["m2f"]["adamw"]
        assert (cfg.optim.lr, cfg.optim.clip_grad) == (m2f["lr"], m2f["clip_grad"])


def test_explicit_settings_win():
    cfg, choices = resolved({"lr": 5e-4, "clip_grad": 1.0})
    assert (cfg.optim.lr, cfg.optim.clip_grad) == (5e-4, 1.0)
    assert not any(c.key in ("optim.lr", "optim.clip_grad") for c in choices)
