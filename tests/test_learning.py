"""The detector learns real data through the real trainer: overfit 8 coco128 photos.

Proves the whole training path (COCO reader, loader, TAL assignment, losses,
optimizer, EMA, decoding, official COCO scoring) works together on real images.
"""

import json
from pathlib import Path

import pytest

from rtdet.config import load_config
from rtdet.workflows import train

COCO128 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco128"

pytestmark = pytest.mark.slow


def eight_image_subset(tmp_path: Path) -> Path:
    data = json.loads((COCO128 / "annotations" / "instances_val2017.json").read_text())
    with_objects = sorted({a["image_id"] for a in data["annotations"] if not a["iscrowd"]})
    keep = set(with_objects[:8])
    subset = {**data, "images": [i for i in data["images"] if i["id"] in keep],
              "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}
    path = tmp_path / "coco8.json"
    path.write_text(json.dumps(subset))
    return path


def test_overfits_eight_coco_images(tmp_path):
    if not COCO128.is_dir():
        pytest.skip(f"shared data absent: {COCO128}")
    ann = eight_image_subset(tmp_path)
    spec = tmp_path / "coco8.yaml"  # the same json serves as train and val split
    spec.write_text(f"train: {ann}\nval: {ann}\ntrain_images: {COCO128 / 'images'}\nval_images: {COCO128 / 'images'}\n")
    no_augmentation = {"mosaic": 0.0, "fliplr": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0,
                       "translate": 0.0, "scale": 0.0}
    cfg = load_config(None, {
        "model": "rtdet-n", "data": str(spec), "imgsz": 320, "batch": 8, "workers": 0, "epochs": 300,
        "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.0, "warmup_epochs": 0.0, "nbs": 8,
        "val_interval": 1000, "patience": 0, "ema_tau": 50.0, "seed": 0, "out": str(tmp_path / "run"),
        **no_augmentation,
    })
    result = train(cfg, progress=False)
    assert result.metrics["AP50"] >= 0.9, result.metrics
