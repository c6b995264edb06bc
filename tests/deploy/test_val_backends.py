"""COCO numbers with the ONNX Runtime backend (or an exported .onnx) equal the torch backend's (within 0.001 AP)."""

import json

import numpy as np
import pytest
import torch

from rtdet.cli import main
from rtdet.config import Config, config_to_dict
from rtdet.deploy.images import sample_images, shared_data_dir
from rtdet.deploy.runtime import OrtBackend, TorchBackend, infer
from rtdet.metrics.coco import COCO_KEYS, evaluate_predictions
from tests.deploy.conftest import DECODE, NAMES, make_model

pytest.importorskip("onnxruntime")
COCO128 = shared_data_dir() / "coco128"


def _pseudo_targets(preds, seed=0):
    """Ground truth made from the torch detections (top 4 per image, jittered by up to 4 px), so AP is far from 0."""
    rng = np.random.default_rng(seed)
    targets = []
    for i, p in enumerate(preds):
        boxes = p["boxes"][:4].clone()
        boxes += torch.from_numpy(rng.uniform(-4, 4, boxes.shape)).float()
        targets.append({"boxes": boxes, "labels": p["labels"][:4].clone(), "image_id": i,
                        "iscrowd": torch.zeros(len(boxes), dtype=torch.bool)})
    return targets


def test_coco_numbers_equal_across_backends(model, onnx_file):
    images = sample_images(8)
    preds_t = infer(TorchBackend(model, NAMES, 160), images, settings=dict(DECODE, conf=0.001, max_det=100))
    preds_o = infer(OrtBackend(onnx_file, threads=1), images, settings=dict(DECODE, conf=0.001, max_det=100))
    targets = _pseudo_targets(preds_t)
    for p, i in zip(preds_t + preds_o, list(range(8)) * 2):
        p["image_id"] = i
    st = evaluate_predictions(preds_t, targets, NAMES).stats
    so = evaluate_predictions(preds_o, targets, NAMES).stats
    assert st["AP50"] > 0.1  # a non-trivial score, so that equality means something
    for key in COCO_KEYS:
        assert abs(st[key] - so[key]) <= 1e-3, (key, st[key], so[key])


@pytest.mark.slow
def test_rtdet_val_onnxruntime_equals_torch(tmp_path):
    ann = COCO128 / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip("shared coco128 absent")
    names = [c["name"] for c in sorted(json.loads(ann.read_text())["categories"], key=lambda c: c["id"])]
    model = make_model(num_classes=len(names))
    ckpt = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "model_args": dict(model.build_args), "meta": {"names": names},
                "config": config_to_dict(Config()), "ema": None}, ckpt)
    from rtdet.deploy.onnx import export_onnx

    exported = export_onnx(ckpt, tmp_path / "best.onnx", imgsz=160)  # static 160 px graph, scored as a file
    stats = {}
    for backend, weights in (("torch", ckpt), ("onnxruntime", ckpt), ("onnx file", exported)):
        out = tmp_path / backend.replace(" ", "_")
        argv = ["val", "--weights", str(weights), "--data", str(ann), "--imgsz", "160", "--workers", "0",
                "--out", str(out)] + (["--backend", backend] if weights == ckpt else [])
        assert main(argv) == 0
        stats[backend] = json.loads((out / "metrics.json").read_text())
    for key in COCO_KEYS:
        assert abs(stats["torch"][key] - stats["onnxruntime"][key]) <= 1e-3, key
        assert abs(stats["torch"][key] - stats["onnx file"][key]) <= 1e-3, key
