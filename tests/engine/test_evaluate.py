"""rtdet.engine.evaluate: letterbox inversion, gathered predictions, validation losses."""

import pytest
import torch

from rtdet.boxes import unletterbox
from rtdet.engine import make_evaluator, seed_everything
from rtdet.models.base import loss_mode
from rtdet.tasks.detect import collect
from tests.engine.toy import TinyDetector, box_metric, make_loader


def test_unletterbox_inverts_the_letterbox():
    orig = torch.tensor([[10.0, 20.0, 110.0, 220.0]])
    scale, px, py = 0.5, 3.0, 7.0
    boxed = orig * scale + torch.tensor([px, py, px, py])
    assert torch.allclose(unletterbox(boxed, (scale, px, py)), orig)


def test_predictions_reach_metric_fn_in_original_pixels_sorted_by_image_id():
    seen = {}

    def metric_fn(preds, targets):
        seen["ids"] = [t["image_id"] for t in targets]
        seen["box"] = targets[0]["boxes"]
        return {"AP": 1.0}

    loader = make_loader(6, 4, sampler="plain", shuffle=True)
    original = loader.dataset[0][1]["boxes"]
    real_getitem = type(loader.dataset).__getitem__

    def halved(self, i):  # pretend the pipeline letterboxed every image by 0.5 with padding (2, 4)
        img, t = real_getitem(self, i)
        t = dict(t, boxes=t["boxes"] * 0.5 + torch.tensor([2.0, 4.0, 2.0, 4.0]), letterbox=(0.5, 2.0, 4.0))
        return img, t

    type(loader.dataset).__getitem__ = halved
    try:
        with torch.no_grad():
            assert make_evaluator(loader, metric_fn, collect)(TinyDetector().eval()) == {"AP": 1.0}
    finally:
        type(loader.dataset).__getitem__ = real_getitem
    assert seen["ids"] == list(range(6))
    assert torch.allclose(seen["box"], original)


def test_val_loss_is_logged_and_model_left_unchanged():
    seed_everything(0)
    model = TinyDetector(dropout=0.5)
    evaluate = make_evaluator(make_loader(8, 4, sampler="plain", shuffle=False), box_metric, collect, val_loss=True)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        metrics = evaluate(model)
        again = evaluate(model)
    assert {"AP", "val/cls", "val/box", "val/loss"} <= metrics.keys()
    assert metrics == again  # dropout off, BatchNorm in eval mode: the loss is deterministic
    assert metrics["val/loss"] == pytest.approx(metrics["val/cls"] + metrics["val/box"])
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k  # BatchNorm statistics untouched


def test_loss_mode_restores_every_module_mode():
    model = TinyDetector()
    model.eval()
    model.features[1].train()  # a mixed state must come back as it was
    with loss_mode(model):
        assert model.training and not model.features[1].training
    assert not model.training and model.features[1].training
