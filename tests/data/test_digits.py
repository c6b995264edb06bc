"""The digits demo set: deterministic, disjoint source digits, tight boxes, YOLO layout."""

import json

import numpy as np

from rtdet.data.digits import INK_THRESHOLD, NAMES, _sources, ensure_digits, generate_digits, render
from rtdet.data.yolo import read_yolo


def test_layout_and_counts(digits_yaml):
    root = digits_yaml.parent
    assert len(list((root / "images" / "train").glob("*.jpg"))) == 24
    assert len(list((root / "labels" / "val").glob("*.txt"))) == 8
    ds = read_yolo(digits_yaml, "train")
    assert ds.names == NAMES and ds.report.ok and ds.report.empty_images == 0
    counts = np.diff(ds.offsets)
    assert counts.min() >= 1 and counts.max() <= 6
    hw = np.concatenate([ds.boxes[:, 2:] - ds.boxes[:, :2]])
    assert hw.max() <= 0.25 * 160 * 1.5 + 1 and hw.min() >= 3


def test_train_and_val_use_disjoint_digits(digits_yaml):
    stamp = json.loads((digits_yaml.parent / "digits.json").read_text())
    train, val = set(stamp["source_digits"]["train"]), set(stamp["source_digits"]["val"])
    assert not train & val and len(train | val) == 1797


def test_deterministic(tmp_path, digits_yaml):
    generate_digits(tmp_path, n_train=24, n_val=8, imgsz=160, seed=3)
    for rel in ("labels/train/00005.txt", "labels/val/00007.txt", "images/train/00003.jpg"):
        assert (tmp_path / rel).read_bytes() == (digits_yaml.parent / rel).read_bytes()


def test_boxes_are_tight_around_the_ink():
    digits, classes, photos = _sources()
    rng = np.random.default_rng(0)
    flat = [np.full((320, 320, 3), 255, np.uint8)]  # white paper: every dark pixel is ink
    img, boxes, labels = render(rng, digits, classes, np.arange(100), flat, 320, np.zeros((640, 640, 3), np.int16))
    ink = img.min(2) < 255 * (1 - INK_THRESHOLD * 0.85)  # opacity is at least 0.85
    for x1, y1, x2, y2 in boxes.astype(int):
        patch = ink[y1:y2, x1:x2]
        assert patch[:, 0].any() or patch[:, 1].any()  # ink touches (or nearly) every side
        assert patch[0].any() or patch[1].any()
        assert patch[:, -1].any() or patch[:, -2].any()
        assert patch[-1].any() or patch[-2].any()
    outside = ink.copy()
    for x1, y1, x2, y2 in boxes.astype(int):
        outside[y1:y2, x1:x2] = False
    assert not outside.any()


def test_ensure_reuses_an_existing_set(digits_yaml):
    before = digits_yaml.stat().st_mtime_ns
    assert ensure_digits(digits_yaml.parent) == digits_yaml
    assert digits_yaml.stat().st_mtime_ns == before
