"""Classifiers: contract, every model, fusion, backbone transfer into the detector, learning, size."""

import pytest
import torch
from torch import nn

from rtdet.config import load_config
from rtdet.engine.checkpoint import load_pretrained
from rtdet.errors import ModelError
from rtdet.models import build_from_config, build_model
from rtdet.models.base import RtdetModel
from rtdet.models.cls import CLASSIFIERS, CLS_SCALES, build_classifier
from rtdet.models.info import model_info
from rtdet.registry import MODELS
from tests.models.test_layers import _randomize_bn

NAMES = list(CLASSIFIERS)


def _targets(labels):
    return [{"label": int(c)} for c in labels]


def test_registry_and_unknown_names():
    assert set(CLASSIFIERS) == {"rtdet-cls-n", "rtdet-cls-s", "lenet"}
    assert set(CLASSIFIERS) == {n for n, s in MODELS.items() if s.task == "classify"}  # the registry's entries
    for name in CLASSIFIERS:
        model = build_model(name, 3)  # through the registry
        assert isinstance(model, RtdetModel) and model.task == "classify" and model.output_names == ("probs",)
    with pytest.raises(ModelError, match="unknown classifier 'rtdet-cls-x'"):
        build_classifier("rtdet-cls-x", 10)
    with pytest.raises(ValueError, match="lenet has no normalization"):
        build_classifier("lenet", 10, norm="gn")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        build_classifier("rtdet-cls-n", 1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [32, 64])
def test_train_and_eval_contract(name, size):
    torch.manual_seed(0)
    model = build_classifier(name, num_classes=7)
    assert model.num_classes == 7
    images = torch.rand(3, 3, size, size)
    losses = model(images, _targets([0, 3, 6]))
    assert set(losses) == {"loss_cls"} and losses["loss_cls"].ndim == 0 and torch.isfinite(losses["loss_cls"])
    losses["loss_cls"].backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    model.eval()
    with torch.no_grad():
        out = model(images)
        (raw,) = model.forward_raw(images)
    assert len(out) == 3 and all(set(o) == {"probs"} for o in out)
    assert out[0]["probs"].shape == (7,) and out[0]["probs"].dtype == torch.float32
    assert raw.shape == (3, 7) and (raw >= 0).all()
    torch.testing.assert_close(raw.sum(1), torch.ones(3))
    torch.testing.assert_close(torch.stack([o["probs"] for o in out]), raw)
    preds, loss = model.predict_with_loss(images, _targets([0, 3, 6]))
    torch.testing.assert_close(torch.stack([p["probs"] for p in preds]), raw)
    assert torch.isfinite(loss["loss_cls"])


def test_lenet_takes_28_pixel_digits():
    model = build_classifier("lenet", 10).eval()
    assert model.forward_raw(torch.rand(2, 3, 28, 28))[0].shape == (2, 10)


@pytest.mark.parametrize("name", NAMES)
def test_build_args_rebuild_the_architecture(name):
    model = build_classifier(name, 5, act="silu", dropout=0.1)
    assert model.build_args["name"] == name and model.build_args["act"] == "silu"
    again = build_classifier(**model.build_args)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert again.load_state_dict(model.state_dict()) is not None


def test_act_and_norm_options():
    model = build_classifier("rtdet-cls-n", 4, act="frelu", norm="gn")
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model(torch.rand(2, 3, 32, 32), _targets([0, 1]))["loss_cls"].backward()


def test_label_smoothing_is_settable():
    torch.manual_seed(0)
    model = build_classifier("lenet", 4).eval()
    x, t = torch.rand(4, 3, 32, 32), _targets([0, 1, 2, 3])
    logits = model.logits(x)
    model.train()
    model.label_smoothing = 0.1
    assert model.label_smoothing == 0.1
    torch.testing.assert_close(model(x, t)["loss_cls"],
                               nn.functional.cross_entropy(logits, torch.arange(4), label_smoothing=0.1))
    with pytest.raises(ValueError, match="label_smoothing"):
        model.label_smoothing = 1.5


def test_cls_config_section_reaches_the_model():
    cfg = load_config(None, {"model": "rtdet-cls-n", "label_smoothing": 0.2, "dropout": 0.3})
    model = build_from_config(cfg, 10)
    assert model.label_smoothing == 0.2 and model.head.dropout.p == 0.3
    default = build_from_config(load_config(None, {"model": "lenet"}), 10)
    assert default.label_smoothing == cfg.cls.__class__().label_smoothing


@pytest.mark.parametrize("name", NAMES)
def test_fuse_keeps_outputs(name):
    torch.manual_seed(0)
    model = build_classifier(name, 10)
    _randomize_bn(model)
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        (before,) = model.forward_raw(x)
        fused = model.fuse()
        (after,) = fused.forward_raw(x)
    assert fused is model and not model.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls_name", list(CLS_SCALES))
def test_backbone_loads_into_the_detector(cls_name):
    """A classifier checkpoint's backbone tensors are copied into the detector by load_pretrained."""
    torch.manual_seed(0)
    classifier = build_classifier(cls_name, 10)
    _randomize_bn(classifier)
    detector = build_model(CLS_SCALES[cls_name], 3)
    backbone = {f"backbone.{k}" for k in detector.backbone.state_dict()}
    assert backbone == {f"backbone.{k}" for k in classifier.backbone.state_dict()}
    report = load_pretrained(detector, {"model": classifier.state_dict()})
    assert set(report.loaded) == backbone and len(report.loaded) == len(backbone)
    assert set(report.skipped) == {k for k in classifier.state_dict() if not k.startswith("backbone.")}
    assert all(v == "not in the model" for v in report.skipped.values())
    assert set(report.missing) == set(detector.state_dict()) - backbone  # neck and head stay as built
    assert report.summary().startswith(f"loaded {len(backbone)} tensors")
    own, src = detector.state_dict(), classifier.state_dict()
    for k in backbone:
        torch.testing.assert_close(own[k], src[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_tiny_batch(name, one_thread):
    torch.manual_seed(0)
    model = build_classifier(name, 4)
    x = torch.rand(8, 3, 32, 32)
    t = _targets([0, 1, 2, 3, 0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model(x, t)["loss_cls"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_model_info(name):
    info = model_info(build_classifier(name, 10), 32)
    assert info["params"] == info["trainable"] > 0 and info["gflops"] > 0 and info["imgsz"] == 32
    if name == "lenet":
        assert info["params"] == 62006  # 3-channel input: (3*25+1)*6 + (6*25+1)*16 + 401*120 + 121*84 + 85*10
