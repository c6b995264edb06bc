"""The adaptive recipe: each ``auto`` rule and explicit settings winning."""

from __future__ import annotations

import pytest

from rtdet.cli import build_parser
from rtdet.config import AUTO, load_config
from rtdet.data.pipeline import auto_close_mosaic
from rtdet.engine.recipe import LONG_RUN_STEPS, RunFacts, format_choices, resolve_recipe
from rtdet.tasks import get_task


def facts(images=160, batch=16, epochs=60, family="yolo", world_size=1):
    return RunFacts(train_images=images, batch=batch, world_size=world_size, epochs=epochs, num_classes=1, imgsz=320,
                    family=family)


def resolved(overrides=None, **kw):
    cfg, choices = resolve_recipe(load_config(None, overrides or {}), facts(**kw), get_task("detect").recipe)
    return cfg, {c.key: c.value for c in choices}


def test_short_run_takes_adamw_without_accumulation():
    cfg, chosen = resolved(images=160, batch=16, epochs=60)  # the 200-photo case: 600 iterations
    o = cfg.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.nbs) == ("adamw", 0.002, 0.05, 16)
    assert o.warmup_epochs == 3.0 and cfg.detect.close_mosaic == 10
    assert cfg.data.scale == 0.25  # weaker scale jitter for a short run
    assert set(chosen) == {"optim.optimizer", "optim.lr", "optim.weight_decay", "optim.nbs", "optim.warmup_epochs",
                           "optim.clip_grad", "detect.close_mosaic", "data.scale"}
    assert o.clip_grad == 10.0
    values = [getattr(cfg.optim, k) for k in ("optimizer", "lr", "weight_decay", "nbs", "warmup_epochs", "clip_grad")]
    assert AUTO not in values + [cfg.detect.close_mosaic, cfg.data.scale]  # nothing left unresolved
    assert cfg.train.ema_tau == 2000.0  # not adapted: measured no better (benchmarks/recipe.md)


@pytest.mark.parametrize("epochs", [10, 1000])
def test_detr_family_trains_with_adamw_at_every_length(epochs):
    cfg, chosen = resolved({"model": "rtdet-detr-n"}, images=1600, batch=16, epochs=epochs, family="detr")
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 1e-4, 1e-4)
    assert cfg.optim.nbs == (64 if epochs == 1000 else 16)  # the engine's rule; the family's own: tests/models/detr
    sgd, _ = resolved({"model": "rtdet-detr-n", "optimizer": "sgd"}, epochs=epochs, family="detr")
    assert sgd.optim.optimizer == "sgd" and sgd.optim.lr == 0.01  # an explicit optimizer wins


@pytest.mark.parametrize("epochs", [10, 1000])
def test_m2f_family_trains_as_mask2former(epochs):
    cfg, _ = resolved({"model": "rtdet-m2f"}, images=1600, batch=16, epochs=epochs, family="m2f")
    o = cfg.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.clip_grad) == ("adamw", 1e-4, 0.05, 0.01)
    given, _ = resolved({"model": "rtdet-m2f", "clip_grad": 1.0}, epochs=epochs, family="m2f")
    assert given.optim.clip_grad == 1.0  # an explicit clip wins
    sgd, _ = resolved({"model": "rtdet-m2f", "optimizer": "sgd"}, epochs=epochs, family="m2f")
    assert (sgd.optim.lr, sgd.optim.clip_grad) == (0.01, 10.0)  # Mask2Former's numbers are AdamW's


def test_long_run_takes_the_classic_sgd_recipe():
    n = LONG_RUN_STEPS * 16 // 100  # 100 epochs of this set make exactly LONG_RUN_STEPS iterations
    cfg, _ = resolved(images=n, batch=16, epochs=100)
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.nbs) == ("sgd", 0.01, 5e-4, 64)
    assert cfg.optim.warmup_epochs == 3.0 and cfg.detect.close_mosaic == 10 and cfg.data.scale == 0.5
    cfg, _ = resolved(images=n - 16, batch=16, epochs=100)  # one iteration per epoch fewer: short
    assert cfg.optim.optimizer == "adamw" and cfg.data.scale == 0.25


def test_distributed_runs_count_every_process():
    # 2 processes x batch 8 == 1 process x batch 16: same iterations, same choices, the same global nbs
    one, _ = resolved(images=320, batch=16, epochs=10)
    two, _ = resolved(images=320, batch=8, epochs=10, world_size=2)
    assert one.optim == two.optim


def test_explicit_settings_win_and_steer_the_rest():
    cfg, chosen = resolved({"optimizer": "sgd", "lr": 0.02, "close_mosaic": 0})
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.detect.close_mosaic) == ("sgd", 0.02, 0)
    assert cfg.optim.weight_decay == 5e-4  # the family's value for the optimizer the user chose
    assert not {"optim.optimizer", "optim.lr", "detect.close_mosaic"} & set(chosen)
    assert "optim.lr" not in cfg.given or cfg.given == load_config(None, {"optimizer": "sgd", "lr": 0.02,
                                                                          "close_mosaic": 0}).given
    cfg, chosen = resolved({"nbs": 64}, images=160, batch=16, epochs=60)  # accumulation 4: 150 steps
    assert cfg.optim.nbs == 64 and "optim.nbs" not in chosen
    assert "150 optimizer steps" in next(c.reason for c in resolve_recipe(
        load_config(None, {"nbs": 64}), facts(images=160, batch=16, epochs=60))[1] if c.key == "optim.optimizer")


def test_warmup_is_at_most_a_tenth_of_the_run():
    for epochs in (1, 5, 20, 30, 300):
        cfg, choices = resolve_recipe(load_config(None, {}), facts(epochs=epochs), get_task("detect").recipe)
        assert cfg.optim.warmup_epochs == pytest.approx(min(3.0, 0.1 * epochs))
        why = next(c.reason for c in choices if c.key == "optim.warmup_epochs")  # the reason names the value
        assert why == ("3 epochs" if epochs >= 30 else f"a tenth of the {epochs}-epoch run (3 epochs at most)")


@pytest.mark.parametrize("epochs,n", [(1, 1), (3, 1), (5, 2), (6, 2), (20, 7), (29, 10), (30, 10), (300, 10)])
def test_auto_close_mosaic(epochs, n):
    assert auto_close_mosaic(epochs) == n


def test_pipeline_reads_auto_close_mosaic(tmp_path):
    from rtdet.config import DataConfig, DetectConfig
    from rtdet.data.pipeline import DetectionPipeline

    pipe = DetectionPipeline([], DataConfig(), train=True, epochs=20, detect=DetectConfig())  # close_mosaic auto: 7
    on = []
    for epoch in range(20):
        pipe.set_epoch(epoch)
        on.append(pipe.mosaic_on())
    assert on == [True] * 13 + [False] * 7


def test_choices_print_one_line_each_with_the_reason():
    _, choices = resolve_recipe(load_config(None, {}), facts(), get_task("detect").recipe)
    text = format_choices(choices)
    assert len(text.splitlines()) == len(choices) == 8
    assert "optimizer     = adamw" in text and "600 iterations (60 epochs x 10)" in text


def test_cli_takes_auto_or_a_number(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--lr", "auto", "--nbs", "32", "--ema-tau", "50"])
    assert (args.lr, args.nbs, args.ema_tau) == ("auto", 32, 50.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--nbs", "3.5"])
    assert "invalid int or 'auto' value: '3.5'" in capsys.readouterr().err


def test_auto_scale_reaches_every_augmenter():
    """An explicit scale wins; ``auto`` left unresolved (a pipeline built outside a run) is the short run's."""
    from rtdet.config import DataConfig
    from rtdet.data.transforms import SCALE_JITTER, auto_scale

    assert auto_scale(0.7) == 0.7 and auto_scale(AUTO) == SCALE_JITTER["short"] == 0.25
    assert auto_scale(AUTO, long_run=True) == SCALE_JITTER["long"] == 0.5
    cfg, chosen = resolved({"scale": 0.9})
    assert cfg.data.scale == 0.9 and "data.scale" not in chosen
    assert DataConfig().scale == AUTO
    from rtdet.tasks.classify import augment

    assert augment(load_config(None, {"model": "rtdet-cls-n"})).scale == 0.25
