"""The detect task: what val scores is what predict delivers, box for box, on real photos."""

import json

import numpy as np
import pytest
import torch

from rtdet.config import load_config
from rtdet.data.dataset import read_image
from rtdet.deploy.runtime import TorchBackend, infer
from rtdet.engine.evaluate import predict_all
from rtdet.tasks.detect import TASK, collect, settings
from tests.data.conftest import COCO128
from tests.deploy.conftest import make_model


@pytest.fixture(scope="module")
def coco_subset(tmp_path_factory):
    """The first 6 coco128 images with their official annotations (COCO's own non-contiguous ids)."""
    ann = COCO128 / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip("shared coco128 data absent")
    data = json.loads(ann.read_text())
    images = sorted(data["images"], key=lambda im: im["id"])[:6]
    ids = {im["id"] for im in images}
    subset = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    path = tmp_path_factory.mktemp("coco") / "val.json"
    path.write_text(json.dumps(subset))
    return path


def test_val_detections_equal_predict_detections_box_for_box(coco_subset):
    cfg = load_config(None, {"data": str(coco_subset), "imgsz": 160, "batch": 1, "workers": 0})
    ds = TASK.open_split(cfg, "val")
    names = ds.names
    backend = TorchBackend(make_model(num_classes=len(names)), names, 160)  # the fused network both paths run
    scoring = settings(cfg, scoring=True)
    net = backend.model
    net.set_postprocess(**scoring)
    loader = TASK.build_loader(ds, cfg, False)
    with torch.no_grad():
        val_preds, targets, _ = predict_all(net, loader, torch.device("cpu"), collect)
    photos = [read_image(ds.file(i)) for i in range(len(ds))]
    delivered = infer(backend, photos, 160, scoring)
    outside = 0
    for v, d, t, photo in zip(val_preds, delivered, targets, photos):
        h, w = photo.shape[:2]
        assert t["orig_size"] == (h, w)
        assert len(v["boxes"]) > 0
        torch.testing.assert_close(v["boxes"], d["boxes"], atol=1e-4, rtol=0)
        assert v["labels"].tolist() == d["labels"].tolist()
        torch.testing.assert_close(v["scores"], d["scores"], atol=1e-6, rtol=0)
        b = v["boxes"]
        outside += int(((b[:, 0::2] < 0) | (b[:, 0::2] > w) | (b[:, 1::2] < 0) | (b[:, 1::2] > h)).sum())
    assert outside == 0  # scored boxes are clipped to the image, as delivered ones are


def test_predict_settings_come_from_the_config_alone(tmp_path):
    (tmp_path / "run.yaml").write_text("detect:\n  conf: 0.001\n")
    cfg = load_config(tmp_path / "run.yaml")
    assert settings(cfg)["conf"] == 0.001  # an explicit YAML value wins, whatever it is
    assert settings(load_config())["conf"] == 0.25 and settings(load_config(), scoring=True)["conf"] == 0.001
    assert np.isclose(settings(load_config(None, {"conf": 0.4}))["conf"], 0.4)
