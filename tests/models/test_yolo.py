"""The YOLO detector: model contract, every scale, fusion, variants, export path, learning."""

import pytest
import torch
from torch import nn

from rtdet.boxes import box_iou
from rtdet.models import MODELS, SCALES, RawOutputs, build_model
from tests.models.test_layers import _randomize_bn


def _targets():
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 30.0, 60.0, 62.0]]), "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]


def test_registry_is_flat_and_complete():
    assert set(SCALES) == {"rtdet-n", "rtdet-s", "rtdet-m"}
    assert set(SCALES) | {"faster-rcnn"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model 'rtdet-x'"):
        build_model("rtdet-x", 3)


@pytest.mark.parametrize("name", list(SCALES))
def test_forward_backward_every_scale(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3)
    losses = model(torch.rand(2, 3, 64, 64), _targets())
    assert set(losses) == {"box", "cls", "dfl"}
    total = sum(losses.values())
    assert total.ndim == 0 and torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.head.box[0][-1].weight.grad.abs().sum() > 0  # the box branch learns from image 0's boxes


def test_eval_returns_detections_per_image():
    model = build_model("rtdet-n", num_classes=4).eval()
    model.set_postprocess(conf=0.0, iou=1.0, max_det=7)  # iou 1: NMS suppresses nothing
    with torch.no_grad():
        out = model(torch.rand(3, 3, 64, 96))
    assert len(out) == 3
    for det in out:
        assert det["boxes"].shape == (7, 4) and det["scores"].shape == (7,) and det["labels"].dtype == torch.int64
        assert (det["boxes"][:, 2] <= 96).all() and (det["boxes"][:, 3] <= 64).all()  # clipped to the input
        assert (det["labels"] < 4).all()


def test_predict_with_loss_equals_the_two_separate_passes():
    from rtdet.models.base import loss_mode

    torch.manual_seed(0)
    model = build_model("rtdet-n", num_classes=3)
    _randomize_bn(model)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dets, losses = model.predict_with_loss(x, _targets())
        expected = model(x)
        with loss_mode(model):
            expected_losses = model(x, _targets())
    assert not model.training
    for got, want in zip(dets, expected):
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(got[k], want[k])
    assert {k: float(v) for k, v in losses.items()} == {k: float(v) for k, v in expected_losses.items()}


def test_training_without_targets_and_bad_sizes_are_clear_errors():
    model = build_model("rtdet-n", num_classes=2)
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64), _targets()[:1])


@pytest.mark.parametrize("name", list(SCALES))
def test_fused_equals_unfused(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5)
    _randomize_bn(model)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref_boxes, ref_scores = model.forward_raw(x)
        model.fuse()
        boxes, scores = model.forward_raw(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(boxes, ref_boxes, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores, ref_scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("act, norm", [("relu", "gn"), ("lrelu", "bn"), ("silu", "gn"), ("frelu", "bn")])
def test_activation_and_norm_variants(act, norm):
    model = build_model("rtdet-n", num_classes=3, act=act, norm=norm)
    assert model.build_args["act"] == act and model.build_args["norm"] == norm
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("GroupNorm" in kinds) == (norm == "gn") and ("BatchNorm2d" in kinds) == (norm == "bn")
    sum(model(torch.rand(2, 3, 64, 64), _targets()).values()).backward()


def test_build_args_rebuild_the_same_architecture():
    model = build_model("rtdet-n", num_classes=3, act="silu", reg_max=8)
    again = build_model(**model.build_args)
    again.load_state_dict(model.state_dict())  # strict: same names and shapes
    assert again.reg_max == 8


def test_raw_outputs_wrapper_and_shapes():
    model = build_model("rtdet-n", num_classes=3).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        boxes, scores = RawOutputs(model)(x)
    n = (8 * 12) + (4 * 6) + (2 * 3)
    assert boxes.shape == (1, n, 4) and scores.shape == (1, n, 3)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = build_model("rtdet-n", num_classes=3).fuse()
    x = torch.rand(1, 3, 64, 64)
    path = tmp_path / "m.onnx"
    torch.onnx.export(RawOutputs(model), (x,), str(path), input_names=["images"],
                      output_names=["boxes", "scores"], opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = model.forward_raw(x)
    torch.testing.assert_close(torch.from_numpy(boxes), ref_boxes, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(scores), ref_scores, atol=1e-4, rtol=1e-4)


def _synthetic(seed: int, size: int = 128) -> tuple[torch.Tensor, dict]:
    """Three solid red/green/blue rectangles (classes 0/1/2) on dim noise."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, size, size, generator=g) * 0.3
    boxes = []
    for c in range(3):
        w, h = torch.randint(16, 48, (2,), generator=g).tolist()
        x0 = int(torch.randint(0, size - w, (1,), generator=g))
        y0 = int(torch.randint(0, size - h, (1,), generator=g))
        img[:, y0:y0 + h, x0:x0 + w] = 0.0
        img[c, y0:y0 + h, x0:x0 + w] = 0.9
        boxes.append([x0, y0, x0 + w, y0 + h])
    return img, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.arange(3)}



@pytest.mark.slow
def test_overfits_synthetic_rectangles(one_thread):
    torch.manual_seed(0)
    data = [_synthetic(1), _synthetic(2)]
    images, targets = torch.stack([d[0] for d in data]), [d[1] for d in data]
    model = build_model("rtdet-n", num_classes=3)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    first = None
    for _ in range(150):
        loss = sum(model(images, targets).values())
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5
    # BN running statistics lag weights that moved fast in 150 steps; refresh them (no gradient)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exact statistics of the training images
    with torch.no_grad():
        model.raw_outputs(images)
    model.eval().set_postprocess(conf=0.25, iou=0.5)
    with torch.no_grad():
        dets = model(images)
    for det, t in zip(dets, targets):
        iou = box_iou(t["boxes"], det["boxes"])  # [3 GT, D]
        best = iou.argmax(1)
        assert (iou.max(1).values > 0.7).all(), iou
        assert torch.equal(det["labels"][best], t["labels"])


def test_build_from_config_sets_model_and_loss():
    from rtdet.config import load_config
    from rtdet.models import build_from_config

    cfg = load_config(None, {"model": "rtdet-n", "act": "silu", "cls_loss": "varifocal", "box_loss": "giou", "box_gain": 5.0})
    model = build_from_config(cfg, num_classes=4)
    assert model.num_classes == 4 and model.build_args["act"] == "silu"
    assert model.criterion.cls_kind == "varifocal" and model.criterion.box_kind == "giou"
    assert model.criterion.gains["box"] == 5.0
