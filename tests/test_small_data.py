"""The small-data failure modes users report, on real photos (BCCD blood cells): each run trains,
says what it did (recipe, data notes) and never ends in silent zeros.

Each case is a YOLO set written from BCCD's own boxes (images linked, not copied) and a short
training run through ``rtdet train`` at a small size, so the whole file takes about a minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from rtdet.cli import main
from rtdet.deploy.images import shared_data_dir

BCCD = shared_data_dir() / "bccd"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not BCCD.is_dir(), reason="needs ../shared/data/bccd (real photos)")]


@pytest.fixture(scope="module")
def bccd():
    from rtdet.data import open_dataset

    return open_dataset(str(BCCD), "train")


def write_set(root: Path, ds, indices, keep=lambda i, boxes, labels: (boxes, labels), names=None,
              labels_map=None) -> Path:
    """A YOLO set (train = val) of images ``indices`` of ``ds``; ``keep`` edits each image's boxes."""
    from rtdet.data.yolo import label_lines, place_image

    names = names or ds.names
    for i in indices:
        ann = ds.annotations(i)
        boxes, labels = keep(i, ann["boxes"], ann["labels"])
        if labels_map is not None:
            labels = np.array([labels_map[int(c)] for c in labels], np.int64)
        stem = Path(ds.file(i)).stem
        place_image(ds.file(i), root / "images" / f"{stem}.jpg")
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_text("".join(f"{line}\n" for line in
                                                             label_lines(boxes, labels, tuple(ds.sizes[i]))))
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images", "names": list(names)}))
    return root / "data.yaml"


def train(data: Path, out: Path, capsys, *extra: str) -> tuple[str, dict]:
    code = main(["train", "--model", "rtdet-n", "--data", str(data), "--imgsz", "128", "--epochs", "2",
                 "--batch", "16", "--workers", "0", "--out", str(out), "--no-ema", *extra])
    assert code == 0
    text = capsys.readouterr()
    return text.out + text.err, yaml.safe_load((out / "config.yaml").read_text())


def test_smaller_than_one_batch(tmp_path, bccd, capsys, one_thread):
    data = write_set(tmp_path / "five", bccd, range(5))
    log, cfg = train(data, tmp_path / "run", capsys)
    assert "recipe: nbs           = 16" in log and "recipe: optimizer     = adamw" in log
    assert cfg["optim"]["optimizer"] == "adamw" and cfg["optim"]["nbs"] == 16  # resolved values are saved
    rows = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs of one partial batch each


def test_single_class_with_few_boxes_and_images_without_boxes(tmp_path, bccd, capsys, one_thread):
    wbc = bccd.names.index("WBC")

    def only_wbc(i, boxes, labels):  # WBC boxes in the first 3 images only; the other 9 have none
        keep = (labels == wbc) & (i < 3)
        return boxes[keep], labels[keep]

    data = write_set(tmp_path / "wbc", bccd, range(12), only_wbc, names=["WBC"], labels_map={wbc: 0})
    log, _ = train(data, tmp_path / "run", capsys)
    assert "data: class(es) with fewer than 10 training boxes: WBC (3)" in log
    assert "data: 9 of 12 training images have no boxes" in log


def test_very_small_objects_are_reported(tmp_path, bccd, capsys, one_thread):
    data = write_set(tmp_path / "cells", bccd, range(8))
    log, _ = train(data, tmp_path / "run", capsys, "--imgsz", "32")  # 640 px photos at 32 px: platelets vanish
    line = next(ln for ln in log.splitlines() if "training boxes are under 4 px" in ln)
    assert "Platelets" in line and "imgsz 32" in line


def test_a_run_that_learns_nothing_says_so_with_the_cause(tmp_path, bccd, capsys, one_thread):
    data = write_set(tmp_path / "cells", bccd, range(8))
    log, _ = train(data, tmp_path / "run", capsys, "--lr", "1e-9")
    assert "warning: validation AP stayed at 0 after the warm-up: the model learned nothing usable" in log
    assert "likely cause: only 2 optimizer steps" in log
    assert "likely cause: the training loss barely fell" in log and "too low" in log


def test_no_boxes_at_all_is_the_named_cause(tmp_path, bccd, capsys, one_thread):
    data = write_set(tmp_path / "unlabelled", bccd, range(4), lambda i, boxes, labels: (boxes[:0], labels[:0]))
    log, _ = train(data, tmp_path / "run", capsys)
    assert "data: " in log and "[train] has no usable boxes" in log
    assert "warning: validation AP stayed at 0" in log
    assert "likely cause: " in log and log.count("has no usable boxes") == 2  # at the start and as the cause


def test_labels_outside_the_image_leave_nothing_and_are_one_error(tmp_path, bccd, capsys, one_thread):
    def outside(i, boxes, labels):  # every box shifted past the right edge: the reader skips each image
        w = float(bccd.sizes[i][1])
        return boxes + np.array([w, 0, w, 0]), labels

    data = write_set(tmp_path / "bad", bccd, range(4), outside)
    assert main(["train", "--data", str(data), "--imgsz", "64", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rtdet: error: ") and "the train split has no usable images (4 skipped" in err[-1]
    assert f"rtdet data check {data}" in err[-1]
