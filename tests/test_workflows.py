"""End to end: `rtdet train` -> run folder -> `rtdet val` -> Detector API, on a tiny digits set."""

import json

import numpy as np
import pytest
import yaml

from rtdet import Detector
from rtdet.cli import main
from rtdet.data.digits import generate_digits
from rtdet.metrics.coco import COCO_KEYS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    generate_digits(root, n_train=32, n_val=8, imgsz=160, seed=1)
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "--data", "digits", "--root", str(root), "--epochs", "2", "--imgsz", "160", "--batch", "8",
            "--workers", "0", "--out", str(out), "--optimizer", "adamw", "--lr", "0.002", "--seed", "3"]
    assert main(argv) == 0
    return root, out


def test_run_folder_has_everything(run):
    _, out = run
    for name in ["config.yaml", "results.csv", "results.png", "metrics.json", "pr_curve.png", "f1_curve.png",
                 "confusion_matrix.png", "confusion_matrix_normalized.png", "val_predictions.png",
                 "weights/best.pt", "weights/last.pt"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(COCO_KEYS)
    assert all(-1.0 <= v <= 1.0 for v in metrics.values())
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["optim"]["optimizer"] == "adamw"
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per epoch


def test_val_reproduces_the_final_numbers(run, tmp_path):
    root, out = run
    argv = ["val", "--weights", str(out / "weights" / "best.pt"), "--data", "digits", "--root", str(root),
            "--imgsz", "160", "--workers", "0", "--out", str(tmp_path), "--save-json"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads((out / "metrics.json").read_text())
    dets = json.loads((tmp_path / "detections.json").read_text())
    assert all({"image_id", "category_id", "bbox", "score"} <= set(d) for d in dets)


def test_detector_api_predicts_in_original_pixels(run):
    _, out = run
    det = Detector(str(out / "weights" / "best.pt"), conf=0.0, max_det=5)
    image = np.random.default_rng(0).integers(0, 255, (90, 200, 3), dtype=np.uint8)
    (pred,) = det.predict(image, imgsz=160)
    assert pred["boxes"].shape[1] == 4 and len(pred["boxes"]) == len(pred["scores"]) == len(pred["names"]) <= 5
    assert (pred["boxes"][:, 0::2] <= 200).all() and (pred["boxes"][:, 1::2] <= 90).all()
    assert set(pred["names"]) <= set(det.names)
