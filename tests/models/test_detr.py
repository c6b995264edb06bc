"""The DETR detector (rtdet-detr-n/s): model contract, shapes, decoding, learning, export, registry, info."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rtdet.config import load_config, run_sections
from rtdet.errors import ModelError
from rtdet.models import MODELS, build_from_config, build_model
from rtdet.models.detr.model import DETR_SCALES
from rtdet.models.postprocess import postprocess
from tests.models.test_layers import _randomize_bn

COCO128 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coco128"
SMALL = {"num_queries": 20}  # a 64x64 input has 8x8 + 4x4 + 2x2 = 84 encoder tokens


def _targets():
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 30.0, 60.0, 62.0]]), "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]


def test_registry_config_and_builder():
    for name in DETR_SCALES:
        assert (MODELS[name].family, MODELS[name].task, MODELS[name].section) == ("detr", "detect", "detr")
    cfg = load_config(None, {"model": "rtdet-detr-n", "num_queries": 50, "num_denoising": 10, "l1_gain": 3.0,
                             "o2m_k": 3})
    assert "detr" in run_sections(cfg) and "yolo" not in run_sections(cfg)
    model = build_from_config(cfg, 4)
    assert model.num_queries == 50 and model.build_args["num_queries"] == 50  # shapes the network: recorded
    assert model.denoising["num_denoising"] == 10 and model.criterion.gains["l1"] == 3.0
    assert model.criterion.o2m_k == 3 and "o2m_k" not in model.build_args  # a training setting only
    assert model.decoder.layers[0].self_attn.dims == 128  # embed_dims 0: the scale's own
    rebuilt = build_model(**model.build_args)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="unknown model"):
        build_model("rtdet-detr-x", 3)


@pytest.mark.parametrize("name", list(DETR_SCALES))
def test_forward_backward_every_scale(name, one_thread):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, **SMALL)
    losses = model(torch.rand(2, 3, 64, 64), _targets())
    assert set(losses) == {"cls", "l1", "giou"}
    total = sum(losses.values())
    assert total.ndim == 0 and torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())  # every head, the denoising embedding too
    assert model.decoder.box_heads[-1].layers[-1].weight.grad.abs().sum() > 0


def test_one_to_many_training_reaches_every_parameter_and_leaves_inference_alone(one_thread):
    models = []
    for extra in ({"o2m_k": 4}, {}):
        torch.manual_seed(0)
        models.append(build_from_config(load_config(None, {"model": "rtdet-detr-n", **SMALL, **extra}), 3))
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(*(m.eval().forward_raw(images) for m in models)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    model = models[0].train()
    total = sum(model(torch.rand(2, 3, 64, 64), _targets()).values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_eval_output_format_and_settings(one_thread):
    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=4, **SMALL).eval()
    model.set_postprocess(conf=0.0, iou=0.1, method="nms", max_det=7)  # iou and method: nothing to suppress
    with torch.no_grad():
        out = model(torch.rand(3, 3, 64, 96))
        boxes, scores = model.forward_raw(torch.rand(3, 3, 64, 96))
    assert boxes.shape == (3, 20, 4) and scores.shape == (3, 20, 4)
    assert ((scores >= 0) & (scores <= 1)).all() and (boxes[..., 2:] >= boxes[..., :2]).all()
    assert len(out) == 3
    for det in out:
        assert det["boxes"].shape == (7, 4) and det["scores"].shape == (7,) and det["labels"].dtype == torch.int64
        assert (det["boxes"][:, 2] <= 96).all() and (det["boxes"][:, 3] <= 64).all()  # clipped to the input
        assert (det["scores"][:-1] >= det["scores"][1:]).all() and (det["labels"] < 4).all()
    model.set_postprocess(conf=0.99)
    with torch.no_grad():
        assert all(len(d["boxes"]) == 0 for d in model(torch.rand(1, 3, 64, 64)))


def test_eval_is_the_top_k_of_the_export_outputs(one_thread):
    """The task's decoding of the export outputs (what ONNX Runtime deployments run) equals eval mode."""
    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=5, **SMALL).eval()
    x = torch.rand(2, 3, 64, 64)
    model.set_postprocess(conf=0.01, max_det=30)
    with torch.no_grad():
        dets = model(x)
        boxes, scores = model.forward_raw(x)
    expected = postprocess(boxes, scores, conf=0.01, max_det=30, method="none", image_size=(64, 64))
    for got, want in zip(dets, expected):
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(got[k], want[k])
    q, k = scores[0].flatten().topk(30)  # the pairs are the 30 best of queries x classes
    torch.testing.assert_close(dets[0]["scores"], q[q > 0.01])


def test_backends_decode_without_nms_whatever_the_settings(one_thread):
    """val/predict through a backend decode the export outputs as eval mode does: no NMS (the registry's
    decoding for the family), even when the run's settings name an NMS method."""
    from rtdet.deploy.runtime import BackendModel, TorchBackend

    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=3, **SMALL).fuse()  # the backend's fused copy is the same
    settings = {"conf": 0.001, "iou": 0.1, "method": "nms", "max_det": 40}
    model.set_postprocess(**settings)
    backend = TorchBackend(model, ["a", "b", "c"], 64)
    assert backend.decoding == {"method": "none"}
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    for got, exp in zip(BackendModel(backend, settings)(x), want):
        assert len(got["boxes"]) == 40  # NMS at IoU 0.1 would have removed overlapping queries
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(got[k], exp[k])


def test_predict_with_loss_equals_eval_predictions(one_thread):
    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=3, **SMALL)
    _randomize_bn(model)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dets, losses = model.predict_with_loss(x, _targets())
        expected = model(x)
    assert not model.training and set(losses) == {"cls", "l1", "giou"}
    assert all(torch.isfinite(v) for v in losses.values())
    for got, want in zip(dets, expected):
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(got[k], want[k])


def test_clear_errors():
    model = build_model("rtdet-detr-n", num_classes=2, **SMALL)
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64), _targets()[:1])
    with pytest.raises(ValueError, match="fewer than num_queries"):
        build_model("rtdet-detr-n", num_classes=2)(torch.rand(1, 3, 64, 64), _targets()[:1])
    model = build_model("rtdet-detr-n", num_classes=2)  # 300 queries: 128 px (256 + 64 + 16 tokens) is the least
    model.check_input_size(128, 128)
    with pytest.raises(ModelError, match=r"96x96 gives 189 encoder tokens, fewer than num_queries 300: use "
                                         r"--imgsz 128 or more"):
        model.check_input_size(96, 96)


def test_an_image_size_too_small_is_one_error_line_before_training(tmp_path, capsys):
    """`rtdet train --model rtdet-detr-n --imgsz 64` failed with a traceback at the first step."""
    import cv2

    from rtdet.cli import main

    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "images" / split / f"{i}.jpg"), np.full((64, 64, 3), 128, np.uint8))
            (tmp_path / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    assert main(["train", "--model", "rtdet-detr-n", "--data", str(tmp_path / "data.yaml"), "--imgsz", "64",
                 "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "rtdet: error: DETR input 64x64 gives 84 encoder tokens" in err and "--imgsz 128" in err, err
    assert "Traceback" not in err and not (tmp_path / "run" / "results.csv").exists()


def test_fused_equals_unfused(one_thread):
    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=3, **SMALL)
    _randomize_bn(model)
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = model.forward_raw(x)
        got = model.fuse().forward_raw(x)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_backbone_trains_at_a_tenth_of_the_learning_rate():
    from rtdet.engine.optim import param_groups

    model = build_model("rtdet-detr-n", num_classes=3, **SMALL)
    groups = param_groups(model, weight_decay=1e-4, lr=1e-4)
    backbone = {id(p) for p in model.backbone.parameters()}
    for g in groups:
        in_backbone = {id(p) in backbone for p in g["params"]}
        assert len(in_backbone) == 1 and g["lr_scale"] == (0.1 if in_backbone.pop() else 1.0)


def _coco_batch(n: int, imgsz: int):
    """The first ``n`` coco128 photos with boxes, letterboxed to ``imgsz``: images [n, 3, S, S] and targets."""
    from rtdet.data import open_dataset
    from rtdet.deploy.images import to_input

    ds = open_dataset(COCO128 / "annotations" / "instances_val2017.json", "val", decode=False)
    images, targets = [], []
    for i in range(len(ds)):
        img, t = ds[i]
        if len(t["boxes"]) == 0:
            continue
        x, (s, px, py) = to_input(img, imgsz)
        images.append(x)
        targets.append({"boxes": t["boxes"] * s + torch.tensor([px, py, px, py]), "labels": t["labels"].long()})
        if len(images) == n:
            break
    return torch.cat(images), targets, len(ds.names)


@pytest.mark.skipif(not COCO128.is_dir(), reason="shared coco128 data absent")
def test_loss_decreases_on_two_coco128_photos(one_thread):
    torch.manual_seed(0)
    images, targets, k = _coco_batch(2, 128)
    model = build_model("rtdet-detr-n", num_classes=k, num_queries=100)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)  # 20x RT-DETR's: 12 steps only
    totals = []
    for _ in range(12):
        losses = model(images, targets)
        total = sum(losses.values())
        assert torch.isfinite(total), losses
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        totals.append(float(total.detach()))
    assert np.mean(totals[-3:]) < 0.85 * np.mean(totals[:3]), totals  # measured: 0.73


def test_onnx_export_matches_pytorch(tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from rtdet.deploy.onnx import export_onnx

    torch.manual_seed(0)
    model = build_model("rtdet-detr-n", num_classes=3, num_queries=50).eval()
    report = {}
    path = export_onnx(model, tmp_path / "detr.onnx", imgsz=128, dynamic=True, names=["a", "b", "c"], report=report)
    assert report["boxes"] <= 1e-3 and report["scores"] <= 1e-4  # rtdet's parity check on real photos passed
    from rtdet.deploy.runtime import OrtBackend

    assert OrtBackend(path, threads=1).decoding == {"method": "none"}  # the metadata names the model
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 96, 160)  # another batch and size than the export's
    with torch.no_grad():
        want = model.forward_raw(x)
    got = sess.run(["boxes", "scores"], {"images": x.numpy()})
    assert got[0].shape == (2, 50, 4) and got[1].shape == (2, 50, 3)
    np.testing.assert_allclose(got[0], want[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(got[1], want[1].numpy(), atol=1e-4)


def test_parity_pairs_queries_that_swapped_places():
    from rtdet.models.detr.model import pair_queries

    rng = np.random.default_rng(0)
    boxes, scores = rng.uniform(0, 320, (10, 4)), rng.uniform(0, 1, (10, 3))
    order = np.array([1, 0, 2, 3, 4, 5, 6, 7, 9, 8])  # two swaps
    other_boxes, other_scores = boxes[order] + 1e-4, scores[order].copy()
    other_boxes[5] += 50  # query 5 was not selected by the other runtime
    pairs = pair_queries(boxes, scores, other_boxes, other_scores)
    assert pairs.tolist() == [[i, int(np.flatnonzero(order == i)[0])] for i in range(10) if i != 5]
    model = build_model("rtdet-detr-n", num_classes=3, **SMALL)
    ref, got = model.parity_align((boxes[None], scores[None]), (other_boxes[None], other_scores[None]))
    assert ref[0].shape == (1, 9, 4) and np.abs(ref[0] - got[0]).max() < 1e-3
    other_boxes[:4] += 50
    with pytest.raises(ValueError, match="5 of 10 queries differ"):
        model.parity_align((boxes[None], scores[None]), (other_boxes[None], other_scores[None]))


def test_info_prints_params_and_gflops(capsys):
    from rtdet.cli import main

    assert main(["info", "--model", "rtdet-detr-n", "--imgsz", "320"]) == 0
    m = re.search(r"rtdet-detr-n: ([\d.]+) M parameters, ([\d.]+) GFLOPs at 320x320", capsys.readouterr().out)
    assert m and 1.0 < float(m.group(1)) < 4.0 and 1.0 < float(m.group(2)) < 3.0
