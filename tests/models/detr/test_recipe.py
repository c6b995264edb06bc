"""rtdet.models.detr.recipe: the DETR family's choices, each with its reason; explicit settings win."""

from __future__ import annotations

import pytest

from rtdet.config import load_config
from rtdet.engine.recipe import RunFacts, format_choices, resolve_recipe
from rtdet.models import family_recipe
from rtdet.models.detr.recipe import SHORT_RUN_LR, lr_drop_epoch
from rtdet.tasks import get_task


def resolved(overrides=None, epochs=30, images=600, batch=16):
    facts = RunFacts(train_images=images, batch=batch, world_size=1, epochs=epochs, num_classes=10, imgsz=320,
                     family="detr")
    cfg = load_config(None, {"model": "rtdet-detr-n", **(overrides or {})})
    return resolve_recipe(cfg, facts, get_task("detect").recipe, family_recipe("rtdet-detr-n"))


@pytest.mark.parametrize("epochs", [10, 1000])  # a short and a long run (the engine accumulates long ones)
def test_the_family_recipe_at_every_run_length(epochs):
    cfg, choices = resolved(epochs=epochs)
    o = cfg.optim
    lr = SHORT_RUN_LR if epochs == 10 else 1e-4  # RT-DETR's lr barely moves a short run from scratch
    assert (o.optimizer, o.lr, o.weight_decay, o.nbs, o.clip_grad) == ("adamw", lr, 1e-4, 16, 0.1)
    assert (o.schedule, o.lr_drop, o.lr_gamma) == ("step", [lr_drop_epoch(epochs)], 0.1)
    assert (o.momentum, o.warmup_momentum, o.warmup_bias_lr) == (0.9, 0.9, 0.0)
    assert cfg.train.precise_bn == 10
    keys = [c.key for c in choices]
    assert len(keys) == len(set(keys)) and "optim.nbs" in keys  # the family's nbs replaced the engine's, once
    text = format_choices(choices)
    assert "clip_grad" in text and "DETR's clip_max_norm" in text and "no accumulation" in text


def test_a_pretrained_or_explicit_lr_is_kept(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    assert resolved({"weights": str(weights)}, epochs=10)[0].optim.lr == 1e-4  # RT-DETR's, for a trained network
    cfg, choices = resolved({"lr": 3e-4}, epochs=10)
    assert cfg.optim.lr == 3e-4 and "optim.lr" not in [c.key for c in choices]


def test_the_backbone_learns_at_full_lr_from_scratch_and_at_a_tenth_from_weights(tmp_path):
    from rtdet.models import build_from_config

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    scratch, pretrained = resolved()[0], resolved({"weights": str(weights)})[0]
    assert (scratch.detr.backbone_lr_scale, pretrained.detr.backbone_lr_scale) == (1.0, 0.1)
    assert resolved({"backbone_lr_scale": 0.5})[0].detr.backbone_lr_scale == 0.5  # a given scale wins
    model = build_from_config(scratch, 10)
    assert model.backbone_lr_scale == 1.0
    hint = model.param_groups_hint()
    assert {hint[n]["lr_scale"] for n, _ in model.backbone.named_parameters(prefix="backbone")} == {1.0}


def test_lr_drop_at_four_fifths_of_the_run():
    assert [lr_drop_epoch(e) for e in (1, 5, 30, 50, 72)] == [1, 4, 24, 40, 58]


def test_explicit_settings_win():
    given = {"clip_grad": 1.0, "schedule": "cosine", "momentum": 0.95, "warmup_bias_lr": 0.05, "precise_bn": 0,
             "nbs": 64}
    cfg, choices = resolved(given)
    o = cfg.optim
    assert (o.clip_grad, o.schedule, o.lr_drop, o.momentum, o.warmup_bias_lr, o.nbs) == (1.0, "cosine", [], 0.95,
                                                                                           0.05, 64)
    assert cfg.train.precise_bn == 0
    assert not {c.key.split(".")[1] for c in choices} & set(given)
    cfg, _ = resolved({"lr_drop": [7]})  # a given drop keeps the family's step schedule
    assert (cfg.optim.schedule, cfg.optim.lr_drop) == ("step", [7])


def test_a_resumed_run_keeps_its_settings():
    cfg = load_config(None, {"model": "rtdet-detr-n", "resume": "last.pt"})
    facts = RunFacts(train_images=600, batch=16, world_size=1, epochs=30, num_classes=10, imgsz=320, family="detr")
    assert family_recipe("rtdet-detr-n")(cfg, facts) == []
