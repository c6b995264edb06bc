"""rtdet-m2f: registry and config, the contract in every mode, semantic inference, rebuilding and fusing, the
backbone's learning rate, ONNX export against PyTorch, info, and learning real street scenes."""

import re

import numpy as np
import pytest
import torch

from rtdet.config import load_config
from rtdet.engine.checkpoint import load_pretrained
from rtdet.errors import ModelError
from rtdet.models import build_from_config, build_model
from rtdet.models.m2f.model import M2F_SCALES, build_m2f, semantic_scores
from rtdet.registry import MODELS
from tests.models.test_layers import _randomize_bn
from tests.models.test_seg import _targets, assert_rebuilds_and_fuses

SMALL = {"num_queries": 12, "num_decoder_layers": 3}  # quick variants for contract tests


def test_registry_and_config_build_the_model():
    assert MODELS["rtdet-m2f"].task == "segment" and set(M2F_SCALES) == {"rtdet-m2f"}
    cfg = load_config(None, {"model": "rtdet-m2f", "m2f_queries": 20, "m2f_layers": 4, "m2f_dims": 64, "m2f_heads": 4,
                             "m2f_points": 100, "m2f_no_object": 0.2, "m2f_backbone_lr_scale": 0.5, "act": "silu",
                             "norm": "gn"})
    model = build_from_config(cfg, 5)
    assert model.decoder.query_feat.weight.shape == (20, 64) and len(model.decoder.layers) == 4
    assert model.decoder.layers[0].cross_attn.heads == 4 and model.backbone_lr_scale == 0.5
    assert model.criterion.num_points == model.criterion.matcher.num_points == 100
    assert model.criterion.no_object == 0.2 and model.build_args["act"] == "silu"
    assert isinstance(model.backbone.stem.norm, torch.nn.GroupNorm)
    again = build_m2f(**model.build_args)
    assert again.decoder.query_feat.weight.shape == (20, 64) and again.build_args == model.build_args
    with pytest.raises(ModelError, match="unknown Mask2Former model"):
        build_m2f("rtdet-m2f-x", 3)
    with pytest.raises(ModelError, match="num_classes >= 2"):
        build_model("rtdet-m2f", 1)
    with pytest.raises(ModelError, match="divisible by 4 and by m2f_heads 8"):
        build_model("rtdet-m2f", 3, m2f_dims=60)


def test_contract_in_every_mode(one_thread):
    torch.manual_seed(0)
    model = build_model("rtdet-m2f", 5, **SMALL)
    x = torch.rand(2, 3, 64, 96)
    losses = model.train()(x, _targets(2, 64, 96))
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.decoder.query_feat.weight.grad.abs().sum() > 0 and model.backbone.stem.conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        preds = model(x)
        (raw,) = model.forward_raw(x)
        both, loss = model.predict_with_loss(x, _targets(2, 64, 96))
    assert len(preds) == 2 and preds[0]["logits"].shape == (5, 16, 24) and raw.shape == (2, 5, 16, 24)
    assert all(p["input_size"] == (64, 96) for p in [*preds, *both])
    torch.testing.assert_close(torch.stack([p["logits"] for p in both]), raw)
    assert set(loss) == set(losses)
    assert 0 <= float(raw.min()) and float(raw.sum(1).max()) <= 12  # at most one unit of score per query
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match="needs targets"):
        model.train()(x)


def test_semantic_scores_are_class_probabilities_times_mask_probabilities():
    g = torch.Generator().manual_seed(0)
    logits, embed, features = torch.randn(1, 4, 4, generator=g), torch.randn(1, 4, 6, generator=g), \
        torch.randn(1, 6, 3, 5, generator=g)
    got = semantic_scores(logits, embed, features)
    want = torch.zeros(1, 3, 3, 5)
    for q in range(4):
        mask = (features[0].permute(1, 2, 0) @ embed[0, q]).sigmoid()
        for k in range(3):  # class 3 is "no object": left out
            want[0, k] += logits[0, q].softmax(-1)[k] * mask
    torch.testing.assert_close(got, want)


def test_fused_equals_unfused_and_rebuilds_from_build_args(one_thread):
    torch.manual_seed(0)
    assert_rebuilds_and_fuses(build_model("rtdet-m2f", 4, **SMALL))


def test_backbone_transfers_and_trains_at_a_tenth_of_the_learning_rate():
    from rtdet.engine.optim import param_groups

    model = build_model("rtdet-m2f", 4, **SMALL)
    report = load_pretrained(model, build_model("rtdet-n", 10).state_dict())
    backbone = [k for k in model.state_dict() if k.startswith("backbone.")]
    assert sorted(k for k in report.loaded if k.startswith("backbone.")) == sorted(backbone)
    ids = {id(p) for p in model.backbone.parameters()}
    for g in param_groups(model, weight_decay=0.05, lr=1e-4):
        inside = {id(p) in ids for p in g["params"]}
        assert len(inside) == 1 and g["lr_scale"] == (0.1 if inside.pop() else 1.0)


def test_onnx_export_matches_pytorch(tmp_path, one_thread):
    """rtdet's parity check (real photos) passes for the scores (a dynamic graph) and the in-graph arg-max; the
    graphs themselves are compared here on another batch and size."""
    ort = pytest.importorskip("onnxruntime")
    from rtdet.deploy.onnx import export_onnx
    from rtdet.deploy.onnx_argmax import input_frame_logits

    torch.manual_seed(0)
    model = build_model("rtdet-m2f", 5, **SMALL).eval()
    _randomize_bn(model)
    report: dict = {}
    path = export_onnx(model, tmp_path / "m2f.onnx", imgsz=64, dynamic=True, names=list("abcde"), report=report)
    assert report["logits"] < 1e-4  # measured: 6e-6
    labels = export_onnx(model, tmp_path / "labels.onnx", imgsz=64, argmax=True, names=list("abcde"), report=report)
    assert report["labels"] < 1e-3
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        want = model.forward_raw(x)[0].numpy()
        at_64 = input_frame_logits(model, x[:1, :, :64, :64]).numpy()
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], {"images": x.numpy()})
    np.testing.assert_allclose(got, want, atol=1e-4)
    (cls,) = ort.InferenceSession(str(labels), providers=["CPUExecutionProvider"]).run(
        ["labels"], {"images": x[:1, :, :64, :64].numpy()})
    assert (cls != at_64.argmax(1)).mean() < 1e-3


def test_info_prints_params_and_gflops(capsys):
    from rtdet.cli import main

    assert main(["info", "--model", "rtdet-m2f", "--imgsz", "480", "--classes", "11"]) == 0
    m = re.search(r"rtdet-m2f: ([\d.]+) M parameters, ([\d.]+) GFLOPs at 480x480 \(segment, 11 classes, act=relu, "
                  r"norm=bn", capsys.readouterr().out)
    assert m and 2.0 < float(m.group(1)) < 3.5 and 3.0 < float(m.group(2)) < 5.0  # measured: 2.79 M, 4.43 GFLOPs


def test_learns_four_street_scenes(tmp_path, one_thread):
    """60 steps (~30 s of one core) on 4 CamVid images at 128 px: mIoU on them far above chance (measured:
    mIoU 0.555, aAcc 0.907; the majority class everywhere: mIoU 0.037, aAcc 0.37). GroupNorm: in 60 steps at
    this learning rate the weights move faster than BatchNorm's running statistics follow (scored in train mode,
    the same network reaches 0.62; in eval mode 0.003), so the test scores a network that behaves alike in both."""
    from tests.tasks.test_segment import camvid_subset, overfit

    torch.manual_seed(0)
    model = build_model("rtdet-m2f", 11, norm="gn")
    res, majority = overfit(model, camvid_subset(tmp_path, n_train=4, n_val=1), 128,
                            torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05), 60)
    assert res.aacc > majority + 0.3 and res.miou > 0.35, (res.aacc, majority, res.miou)
