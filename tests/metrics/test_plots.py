"""The metric pictures are written, have the expected size and are not blank."""

from __future__ import annotations


import cv2
import numpy as np

from rtdet.metrics.plots import save_detection_plots
from rtdet.metrics.prf import confusion_matrix, precision_recall_f1
from tests.metrics.cases import random_voc


def check_png(path, min_side=300):
    img = cv2.imread(str(path))
    assert img is not None, f"{path} is not a readable PNG"
    h, w = img.shape[:2]
    assert h >= min_side and w >= min_side
    assert img.std() > 5  # not blank: axes, curves and text vary the pixels
    assert (img < 250).mean() > 0.01  # some ink on the white page
    return img


def test_detection_plots(tmp_path):
    preds, targets = random_voc(3)
    names = ["cat", "dog", "bird", "fish"]
    res = precision_recall_f1(preds, targets, names)
    cm = confusion_matrix(preds, targets, len(names))
    paths = save_detection_plots(res, cm, tmp_path / "run")
    assert [p.name for p in paths] == ["pr_curve.png", "f1_curve.png", "confusion_matrix.png",
                                       "confusion_matrix_normalized.png"]
    for p in paths:
        img = check_png(p)
    assert img.shape[:2] == cv2.imread(str(paths[2])).shape[:2]  # same layout, counts vs shares


def test_many_classes_stay_readable(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(40)]
    preds, targets = random_voc(5, k=40)
    res = precision_recall_f1(preds, targets, names)
    cm = rng.integers(0, 5, (41, 41))
    for p in save_detection_plots(res, cm, tmp_path):
        check_png(p)
