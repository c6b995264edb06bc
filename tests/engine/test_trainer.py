"""rtdet.engine.trainer: exact resume, accumulation, clipping, AMP, EMA, early stopping, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtdet.engine import Trainer, default_hooks, load_checkpoint, make_evaluator, seed_everything
from rtdet.tasks.detect import collect
from rtdet.engine.hooks import EVENTS, Hook, LossPlot, read_csv
from tests.engine.toy import TinyDetector, box_metric, make_cfg, make_loader


class StopAfter(Hook):
    """Simulates a run interrupted after ``n`` epochs (its checkpoint is still written)."""

    priority = 0
    main_only = False

    def __init__(self, n: int) -> None:
        self.n = n

    def after_epoch(self, trainer) -> None:
        if trainer.epoch + 1 == self.n:
            trainer.request_stop("test interruption")


class Recorder(Hook):
    priority = 0

    def __init__(self) -> None:
        self.events: list[str] = []
        self.models: list[torch.nn.Module] = []

    def __getattribute__(self, name):
        if name in EVENTS:
            return lambda trainer: self.events.append(name)
        return super().__getattribute__(name)


@pytest.fixture
def deterministic():
    yield
    torch.use_deterministic_algorithms(False)


def quiet_hooks(cfg, *extra, plot=False):
    """The default hooks without the progress bar (and, for speed, without the PNG)."""
    hooks = [h for h in default_hooks(cfg, progress=False) if plot or not isinstance(h, LossPlot)]
    return hooks + list(extra)


def run(cfg, sampler="dist", extra=(), dropout=0.1, bn=True, seed=0, **loader_kw):
    seed_everything(seed, cfg.train.deterministic)
    model = TinyDetector(bn=bn, dropout=dropout)
    loader = make_loader(n=16, batch=cfg.data.batch, seed=cfg.train.seed, sampler=sampler, **loader_kw)
    evaluate = make_evaluator(make_loader(n=8, batch=4, sampler="plain", shuffle=False), box_metric, collect)
    trainer = Trainer(model, loader, cfg, evaluate=evaluate, hooks=quiet_hooks(cfg, *extra))
    trainer.train()
    return trainer


def assert_same_state(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), k


@pytest.mark.parametrize("sampler", ["dist", "plain"])
def test_resume_is_exact(tmp_path, sampler):
    """4 epochs straight == 2 epochs, stop, resume for 2 (weights, EMA, optimizer, results.csv)."""
    common = {"epochs": 4, "warmup_iters": 5, "schedule": "cosine"}
    straight = run(make_cfg(tmp_path / "a", **common), sampler)
    first = run(make_cfg(tmp_path / "b", **common), sampler, extra=[StopAfter(2)])
    assert first.epoch + 1 == 2
    (tmp_path / "b/weights/.last.pt.abc123.tmp").write_bytes(b"torn")  # as if killed while writing
    resumed = run(make_cfg(tmp_path / "b", resume=str(tmp_path / "b/weights/last.pt"), **common), sampler, seed=123)
    assert resumed.start_epoch == 2 and resumed.iter == straight.iter == 16
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), atol=0)  # bitwise
    assert_same_state(straight.ema.module.state_dict(), resumed.ema.module.state_dict(), atol=0)
    assert straight.ema.updates == resumed.ema.updates
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and sa
    for k in sa:  # the auto recipe's AdamW here: exp_avg, exp_avg_sq, step
        assert sa[k].keys() == sb[k].keys()
        for name in sa[k]:
            assert torch.allclose(sa[k][name], sb[k][name], atol=1e-6), name
    assert (tmp_path / "a/results.csv").read_text() == (tmp_path / "b/results.csv").read_text()
    assert sorted(p.name for p in (tmp_path / "b/weights").iterdir()) == ["best.pt", "last.pt"]


def test_accumulation_matches_big_batch(tmp_path):
    """batch 2 accumulated 4 times == batch 8 (no BatchNorm, constant lr, no EMA)."""
    common = {"epochs": 2, "nbs": 8, "warmup_epochs": 0.0, "schedule": "step", "ema": False, "momentum": 0.9,
              "optimizer": "sgd", "lr": 0.01,
              "weight_decay": 1e-3}
    small = run(make_cfg(tmp_path / "s", batch=2, **common), bn=False, dropout=0.0)
    big = run(make_cfg(tmp_path / "b", batch=8, **common), bn=False, dropout=0.0)
    assert small.accumulate == 4 and big.accumulate == 1
    assert_same_state(small.model.state_dict(), big.model.state_dict(), atol=1e-6)


def test_gradient_clipping(tmp_path):
    clip, lr = 1e-3, 0.1
    cfg = make_cfg(tmp_path, epochs=1, batch=16, nbs=16, lr=lr, momentum=0.0, weight_decay=0.0,
                   warmup_epochs=0.0, schedule="step", clip_grad=clip, ema=False, optimizer="sgd")
    seed_everything(0)
    model = TinyDetector(bn=False)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, make_loader(16, 16), cfg, hooks=[])
    trainer.train()
    step = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())])
    assert trainer.grad_norm > clip  # the raw norm is reported
    assert float(step.norm()) / lr == pytest.approx(clip, rel=1e-4)


def test_bf16_autocast_on_cpu(tmp_path):
    cfg = make_cfg(tmp_path, epochs=1, amp="bf16")
    seed_everything(0)
    model = TinyDetector()
    trainer = Trainer(model, make_loader(8, 4), cfg, hooks=[])
    trainer.train()
    assert model.seen_dtype == torch.bfloat16
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.epoch_losses.values())
    assert not trainer.scaler.is_enabled()  # loss scaling is only for fp16
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Trainer(TinyDetector(), make_loader(8, 4), make_cfg(tmp_path, amp="fp16"), hooks=[])


def test_ema_is_evaluated_and_saved(tmp_path):
    seen = []

    def evaluate(model):
        seen.append(model)
        assert not model.training
        return {"AP": 0.5}

    cfg = make_cfg(tmp_path, epochs=2)
    seed_everything(0)
    trainer = Trainer(TinyDetector(), make_loader(16, 4), cfg, evaluate=evaluate, hooks=quiet_hooks(cfg))
    trainer.train()
    assert seen and all(m is trainer.ema.module for m in seen)
    assert trainer.model.training  # evaluation did not leave the model in eval mode
    ckpt = load_checkpoint(tmp_path / "weights/last.pt")
    assert_same_state(ckpt["ema"]["module"], trainer.ema.module.state_dict(), atol=0)
    assert ckpt["ema"]["updates"] == trainer.ema.updates == 8
    w = "head.weight"
    assert not torch.equal(ckpt["ema"]["module"][w], ckpt["model"][w])


def test_early_stopping_and_best(tmp_path):
    values = iter([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.9])
    cfg = make_cfg(tmp_path, epochs=7, patience=3)
    seed_everything(0)
    trainer = Trainer(TinyDetector(), make_loader(8, 4), cfg, evaluate=lambda m: {"AP": next(values)},
                      hooks=quiet_hooks(cfg, plot=True))
    trainer.train()
    rows = read_csv(tmp_path / "results.csv")
    assert [r["AP"] for r in rows] == pytest.approx([0.1, 0.3, 0.2, 0.25, 0.3])  # 3 without improvement
    assert "no improvement of AP" in trainer.stop_reason
    assert load_checkpoint(tmp_path / "weights/best.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "weights/last.pt")["epoch"] == 5
    assert (tmp_path / "results.png").stat().st_size > 0 and (tmp_path / "config.yaml").is_file()


def test_seed_and_deterministic_give_identical_results_csv(tmp_path, deterministic):
    for name in ("a", "b"):
        run(make_cfg(tmp_path / name, epochs=3, seed=7, deterministic=True), sampler="plain", seed=7)
    text = (tmp_path / "a/results.csv").read_text()
    assert text == (tmp_path / "b/results.csv").read_text()
    assert text.count("\n") == 4 and "train/cls" in text and "AP" in text


def test_hook_events_in_order(tmp_path):
    rec = Recorder()
    cfg = make_cfg(tmp_path, epochs=1)
    Trainer(TinyDetector(), make_loader(8, 4), cfg, evaluate=lambda m: {"AP": 0.0}, hooks=[rec]).train()
    assert rec.events == ["before_train", "before_epoch", "before_iter", "after_iter", "before_iter", "after_iter",
                          "before_val", "after_val", "after_epoch", "after_train"]


def test_non_finite_loss_names_the_batch(tmp_path):
    class NaNModel(TinyDetector):
        def forward(self, images, targets=None):
            out = super().forward(images, targets)
            return {k: v * float("nan") for k, v in out.items()} if self.training else out

    trainer = Trainer(NaNModel(), make_loader(8, 4), make_cfg(tmp_path), hooks=[])
    with pytest.raises(FloatingPointError, match="epoch 1, batch 0"):
        trainer.train()


VOC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "voc_mini" / "VOCdevkit"


def test_resume_is_exact_with_rtdet_loader_and_augmentation(tmp_path):
    """The data package's loader (mosaic, affine, HSV, flips; shuffled by its generator) resumes exactly."""
    if not VOC.is_dir():
        pytest.skip("shared/data/voc_mini absent")
    from rtdet.data import build_loader, read_voc

    def voc_run(out, extra=(), **kw):
        cfg = make_cfg(out, epochs=4, batch=2, nbs=2, imgsz=64, workers=0, mosaic=0.5, mixup=0.2, **kw)
        seed_everything(0)
        ds = read_voc(VOC, "trainval")
        loader = build_loader(ds, cfg.data, train=True, epochs=4, seed=0)
        trainer = Trainer(TinyDetector(num_classes=20, dropout=0.1), loader, cfg, hooks=quiet_hooks(cfg, *extra))
        trainer.train()
        return trainer

    straight = voc_run(tmp_path / "a")
    voc_run(tmp_path / "b", extra=[StopAfter(2)])
    resumed = voc_run(tmp_path / "b", resume=str(tmp_path / "b/weights/last.pt"))
    assert resumed.start_epoch == 2
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), atol=0)
    assert_same_state(straight.ema.module.state_dict(), resumed.ema.module.state_dict(), atol=0)


def test_resume_config_and_missing_metric_warning(tmp_path, caplog):
    from rtdet.engine import resume_config

    cfg = make_cfg(tmp_path, epochs=1, lr=0.03, metric="mAP")
    seed_everything(0)
    Trainer(TinyDetector(), make_loader(8, 4), cfg, evaluate=lambda m: {"AP": 1.0}, hooks=quiet_hooks(cfg)).train()
    assert "metric 'mAP' is not among the validation results (AP)" in caplog.text
    assert not (tmp_path / "weights/best.pt").exists()
    again = resume_config(tmp_path / "weights/last.pt", {"epochs": 2})  # the run finished: more epochs to resume
    assert again.optim.lr == 0.03 and again.train.resume == str(tmp_path / "weights/last.pt")
    assert again.train.epochs == 2


def test_tensorboard_hook_needs_the_package(tmp_path):
    cfg = make_cfg(tmp_path, epochs=1, tensorboard=True)
    trainer = Trainer(TinyDetector(), make_loader(8, 4), cfg, hooks=quiet_hooks(cfg))
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="pip install tensorboard"):
            trainer.train()
    else:
        trainer.train()
        assert any((tmp_path / "tensorboard").iterdir())


def test_coco_metrics_through_the_evaluator():
    pytest.importorskip("rtdet.metrics.coco", reason="rtdet.metrics not merged in this branch")
    from rtdet.tasks.detect import metric_fn

    evaluate = make_evaluator(make_loader(8, 4, sampler="plain", shuffle=False), metric_fn(["r", "g", "b"]), collect)
    seed_everything(0)
    with torch.no_grad():
        metrics = evaluate(TinyDetector().eval())
    assert {"AP", "AP50", "ARl"} <= metrics.keys()


def test_validation_does_not_change_the_training_run(tmp_path):
    """Validating (which draws loader seeds from the global RNG) leaves the training trajectory alone."""
    runs = []
    for evaluate in (None, lambda m: {"AP": float(sum(d["scores"].sum() for d in m(torch.rand(2, 3, 32, 32))))}):
        cfg = make_cfg(tmp_path / str(len(runs)), epochs=2)
        seed_everything(0)
        trainer = Trainer(TinyDetector(dropout=0.3), make_loader(8, 4, sampler="plain"), cfg, evaluate=evaluate,
                          hooks=[])
        trainer.train()
        runs.append(trainer.model.state_dict())
    assert_same_state(runs[0], runs[1], atol=0)


def test_trainer_loads_pretrained_weights_and_reports_skips(tmp_path, caplog):
    import logging

    from rtdet.engine import atomic_save

    source = TinyDetector(num_classes=5)
    atomic_save({"model": source.state_dict()}, tmp_path / "pre.pt")
    cfg = make_cfg(tmp_path, epochs=1, weights=str(tmp_path / "pre.pt"))
    with caplog.at_level(logging.INFO, logger="rtdet"):
        trainer = Trainer(TinyDetector(num_classes=3), make_loader(8, 4), cfg, hooks=[])
    report = trainer.pretrained_report
    assert set(report.skipped) == {"head.weight", "head.bias"} and "features.0.weight" in report.loaded
    assert torch.equal(trainer.model.features[0].weight, source.features[0].weight.to(trainer.device))
    assert torch.equal(trainer.ema.module.features[0].weight, trainer.model.features[0].weight)  # EMA starts there
    assert "skipped 2" in caplog.text and "head.weight: shape (9, 8) in file, (7, 8) in model" in caplog.text


@pytest.mark.parametrize("ema", [True, False])
def test_validation_scores_in_the_layout_val_and_predict_use(tmp_path, ema):
    """Training runs in channels-last; the validation scores the model with contiguous weights, as `rtdet val` and
    `predict` run a loaded checkpoint (other layouts take other kernels, whose rounding can move a pixel's class),
    and training goes on in channels-last after it."""
    cfg = make_cfg(tmp_path, epochs=1, ema=ema)
    assert cfg.train.channels_last
    model = TinyDetector()
    layouts = []

    def evaluate(m):
        layouts.append([p.is_contiguous() for p in m.parameters() if p.dim() == 4])
        return {"AP": 0.5}

    trainer = Trainer(model, make_loader(n=8, batch=4), cfg, evaluate=evaluate, hooks=quiet_hooks(cfg))
    trainer.train()
    assert layouts and all(all(c) for c in layouts) and len(layouts[0]) > 0
    weights = [p for p in trainer.model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in weights)
