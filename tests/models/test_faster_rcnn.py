"""rtdet.models.faster_rcnn: the model contract, the two variants, the rcnn settings, weights in torchvision's
format, fusion, export pairing; and training through the Trainer on real VOC data (slow)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from rtdet.cli import main
from rtdet.config import load_config
from rtdet.engine import Trainer, make_evaluator, seed_everything
from rtdet.engine.checkpoint import load_pretrained
from rtdet.engine.hooks import Hook
from rtdet.engine.recipe import RunFacts, resolve_recipe
from rtdet.errors import ModelError
from rtdet.models import build_from_config, build_model, family_recipe
from rtdet.models.faster_rcnn import FasterRCNN, pair_rows
from rtdet.models.postprocess import postprocess
from rtdet.tasks.detect import collect

VOC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "voc_mini" / "VOCdevkit"


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model("faster-rcnn", 3).eval()


def test_labels_shift_for_torchvision_background_and_ignored_boxes_are_left_out(small):
    target = {"boxes": torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 20.0, 20.0],
                                     [3.0, 3.0, 9.0, 9.0]]),
              "labels": torch.tensor([0, 1, 2, 1]), "iscrowd": torch.tensor([False, False, True, False]),
              "difficult": torch.tensor([False, False, False, True])}
    before = small.dropped_boxes
    tv = small._to_torchvision(target)
    assert tv["labels"].tolist() == [1]  # 0 -> 1; zero-width, crowd and difficult boxes are left out
    assert tv["boxes"].tolist() == [[1.0, 2.0, 30.0, 40.0]] and small.dropped_boxes - before == 3


def test_eval_is_rtdets_decoding_of_the_export_outputs_at_the_input_size(small):
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        image_list, _ = small.net.transform(list(x))
        boxes, scores = small.forward_raw(x)
        out = small(x)
    assert tuple(image_list.tensors.shape[-2:]) == (96, 128)  # torchvision's own resize is off: imgsz rules
    assert boxes.shape[0] == 2 and boxes.shape[2:] == (3, 4) and scores.shape == boxes.shape[:3]
    assert 0 < boxes.shape[1] <= 150  # faster-rcnn keeps torchvision's 320-px variant's 150 test proposals
    assert float(boxes[..., 0::2].max()) <= 128 and float(boxes[..., 1::2].max()) <= 96 and float(boxes.min()) >= 0
    assert float(scores.sum(-1).max()) < 1  # softmax over K + background, background left out
    want = postprocess(boxes, scores, image_size=(96, 128), conf=0.001, iou=0.7, max_det=300)
    for det, ref in zip(out, want):
        assert set(det) == {"boxes", "scores", "labels"} and det["labels"].dtype == torch.int64
        torch.testing.assert_close(det["boxes"], ref["boxes"])
        assert det["labels"].numel() == 0 or (det["labels"].min() >= 0 and det["labels"].max() < 3)


def test_decoding_settings_reach_the_model_and_torchvisions_heads(small):
    x = torch.rand(1, 3, 128, 128)
    small.set_postprocess(conf=0.0, iou=0.5, method="nms", max_det=7)
    heads = small.net.roi_heads
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == (0.0, 0.5, 7)
    with torch.no_grad():
        assert len(small(x)[0]["boxes"]) == 7
        small.set_postprocess(conf=0.99)
        assert len(small(x)[0]["boxes"]) == 0  # an untrained head scores every class about 1/4
    small.set_postprocess(conf=0.001, iou=0.7, method="nms", max_det=300)


def test_both_variants_are_torchvisions_architectures(capsys):
    """rtdet info: the parameter counts of torchvision's own builders (background class included)."""
    tv = {"faster-rcnn": torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn,
          "faster-rcnn-r50": torchvision.models.detection.fasterrcnn_resnet50_fpn}
    for name, builder in tv.items():
        assert main(["info", "--model", name, "--classes", "20", "--imgsz", "64"]) == 0
        out = capsys.readouterr().out
        found = re.search(rf"{name}: ([\d.]+) M parameters, ([\d.]+) GFLOPs at 64x64", out)
        assert found, out
        want = sum(p.numel() for p in builder(weights=None, weights_backbone=None, num_classes=21).parameters())
        assert float(found.group(1)) == pytest.approx(want / 1e6, abs=0.005)
        assert float(found.group(2)) > 0
    assert main(["info", "--model", "faster-rcnn", "--norm", "gn"]) == 2
    assert "takes no --act/--norm overrides" in capsys.readouterr().err


@pytest.mark.parametrize("name, stages", [("faster-rcnn", 6), ("faster-rcnn-r50", 5)])
def test_rcnn_settings_freeze_stages_and_batchnorm_as_torchvision_does(name, stages):
    from torchvision.models.detection import backbone_utils
    from torchvision.ops.misc import FrozenBatchNorm2d

    def frozen(body):
        return sorted(n for n, p in body.named_parameters() if not p.requires_grad)

    for n in (0, 3, stages):
        cfg = load_config(None, {"model": name, "trainable_layers": n, "backbone_bn": "frozen"})
        ours = build_from_config(cfg, 20).net.backbone.body
        if name == "faster-rcnn":  # torchvision's own extractors, given the same trainable stages
            ref = backbone_utils._mobilenet_extractor(
                torchvision.models.mobilenet_v3_large(norm_layer=FrozenBatchNorm2d), True, n).body
        else:
            ref = backbone_utils._resnet_fpn_extractor(
                torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), n).body
        assert frozen(ours) == frozen(ref) and (n == stages) == (not frozen(ours))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())
    trained = build_from_config(load_config(None, {"model": name, "backbone_bn": "trained"}), 20)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.net.backbone.body.modules())
    with pytest.raises(ModelError, match=f"stages 0..{stages}, got {stages + 1}"):
        build_from_config(load_config(None, {"model": name, "trainable_layers": stages + 1}), 20)


@pytest.mark.parametrize("weights, want", [("", ("trained", 6)), ("backbone.pth", ("frozen", 3))])
def test_auto_rcnn_settings_follow_the_weights(weights, want):
    cfg = load_config(None, {"model": "faster-rcnn", "weights": weights})
    facts = RunFacts(train_images=10, batch=2, world_size=1, epochs=1, num_classes=20, imgsz=64, family="rcnn")
    resolved, choices = resolve_recipe(cfg, facts, family_recipe("faster-rcnn"))
    assert (resolved.rcnn.backbone_bn, resolved.rcnn.trainable_layers) == want
    assert {c.key for c in choices} >= {"rcnn.backbone_bn", "rcnn.trainable_layers", "optim.lr"}
    assert resolved.optim.lr == 1e-4 and resolved.optim.optimizer == "adamw"  # the rcnn family's AdamW (DETR's)


def test_fuse_folds_torchvisions_batchnorm_and_keeps_the_outputs():
    torch.manual_seed(1)
    for name in ("faster-rcnn", "faster-rcnn-r50"):
        model = build_model(name, 3).eval()
        for m in model.modules():  # statistics that make folding visible
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            ref = model.forward_raw(x)
            fused = model.fuse()
            got = fused.forward_raw(x)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert ref[0].shape == got[0].shape  # within the export's parity tolerance (float rounding of folding)
        torch.testing.assert_close(got[0], ref[0], atol=0.1, rtol=0)
        torch.testing.assert_close(got[1], ref[1], atol=1e-3, rtol=0)


def test_torchvision_format_state_dicts_load_under_the_models_names():
    torch.manual_seed(0)
    r50 = torchvision.models.resnet50(weights=None)  # the layout of resnet50-0676ba61.pth (ImageNet)
    model = build_model("faster-rcnn-r50", 20)
    report = load_pretrained(model, r50.state_dict())
    assert report.moved == ("", "net.backbone.body.") and len(report.loaded) == 318
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"]
    assert torch.equal(model.net.backbone.body.layer3[2].conv2.weight, r50.layer3[2].conv2.weight)
    mobile = torchvision.models.mobilenet_v3_large(weights=None)  # features.* -> the FPN body's children
    model = build_model("faster-rcnn", 20)
    report = load_pretrained(model, mobile.state_dict())
    assert report.moved == ("features.", "net.backbone.body.")
    assert torch.equal(model.net.backbone.body["5"].block[0][0].weight, mobile.features[5].block[0][0].weight)
    assert all(k.startswith("classifier.") for k, why in report.skipped.items() if why.startswith("outside"))
    coco = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    report = load_pretrained(model, coco.state_dict())  # a whole detector: everything but the 91-class predictor
    assert report.moved == ("", "net.") and sorted(report.skipped) == sorted(
        f"roi_heads.box_predictor.{a}.{b}" for a in ("cls_score", "bbox_pred") for b in ("weight", "bias"))


def test_torchvision_weights_by_name_are_fetched_only_when_named(monkeypatch):
    from rtdet.engine import checkpoint

    with pytest.raises(ModelError, match="torchvision has no weights of that name"):
        load_pretrained(build_model("faster-rcnn", 2), "torchvision:NoSuch_Weights.V1")
    asked = []

    class Fake:
        def get_state_dict(self, progress, check_hash):
            asked.append(check_hash)
            return {"conv1.weight": torch.zeros(64, 3, 7, 7)}

    monkeypatch.setattr(torchvision.models, "get_weight", lambda name: asked.append(name) or Fake())
    report = checkpoint.load_pretrained(build_model("faster-rcnn-r50", 2), "torchvision:ResNet50_Weights.IMAGENET1K_V1")
    assert asked == ["ResNet50_Weights.IMAGENET1K_V1", True] and report.loaded == ["net.backbone.body.conv1.weight"]


def test_proposal_rows_pair_across_an_insertion():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 300, (20, 8))
    b = np.delete(a, 5, 0) + 1e-4  # ONNX Runtime lost a proposal at the cut-off; the rest moved up
    b = np.insert(b, 11, rng.uniform(0, 300, 8), 0)  # and gained another one
    pairs = pair_rows(a, b, box_cols=4)
    assert len(pairs) == 19 and 5 not in pairs[:, 0] and 11 not in pairs[:, 1]
    assert np.abs(a[pairs[:, 0]] - b[pairs[:, 1]]).max() < 1e-3


def test_export_pairs_proposals_and_refuses_a_dynamic_graph(small, tmp_path):
    from rtdet.deploy.onnx import export_onnx

    boxes, scores = (np.zeros((1, 50, 3, 4), np.float32), np.zeros((1, 50, 3), np.float32))
    with pytest.raises(ValueError, match="50 of 50 proposals differ"):
        small.parity_align((boxes, scores), (boxes + 5, scores))
    with pytest.raises(ModelError, match="batch 1, static"):
        export_onnx(small, tmp_path / "d.onnx", imgsz=64, dynamic=True)
    report: dict = {}
    export_onnx(small, tmp_path / "m.onnx", imgsz=128, names=list("abc"), report=report)
    assert report["images"] == 2 and report["boxes"] < 0.1 and report["scores"] < 1e-3


class EpochLosses(Hook):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_epoch(self, trainer) -> None:
        self.losses.append(trainer.epoch_losses["loss"])


@pytest.mark.slow
def test_trains_from_scratch_on_voc_mini_and_loss_goes_down(tmp_path, one_thread):
    if not VOC.is_dir():
        pytest.skip("shared/data/voc_mini absent")
    from rtdet.data import build_loader, read_voc

    cfg = load_config(None, dict(
        epochs=2, out=str(tmp_path), device="cpu", batch=2, workers=0, imgsz=320, mosaic=0.0, fliplr=0.0,
        hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, optimizer="sgd", lr=0.02, nbs=2,
        warmup_iters=2, ema=True, ema_tau=3.0, patience=0))
    seed_everything(0)
    ds = read_voc(VOC, "trainval")
    assert len(ds) == 10 and len(ds.names) == 20
    train_loader = build_loader(ds, cfg.data, train=True, epochs=cfg.train.epochs, seed=0)
    val_loader = build_loader(ds, cfg.data, train=False, batch=5)

    def count_metric(preds, targets):
        assert [t["image_id"] for t in targets] == sorted(t["image_id"] for t in targets)
        return {"AP": 0.0, "images": float(len(preds)), "dets": float(sum(len(p["boxes"]) for p in preds))}

    # smaller RoI and proposal samples than torchvision's defaults (512, 2000): the box head dominates CPU time
    model = build_model("faster-rcnn", len(ds.names), box_batch_size_per_image=64, rpn_post_nms_top_n_train=300)
    assert isinstance(model, FasterRCNN)
    record = EpochLosses()
    trainer = Trainer(model, train_loader, cfg, evaluate=make_evaluator(val_loader, count_metric, collect),
                      hooks=[record])
    metrics = trainer.train()
    assert record.losses[-1] < 0.8 * record.losses[0], record.losses
    assert metrics["images"] == 10
    assert trainer.iter == 10 and trainer.ema.updates == 10
    ckpt = trainer.state_dict()
    assert ckpt["model_args"]["name"] == "faster-rcnn" and ckpt["model_args"]["num_classes"] == 20
