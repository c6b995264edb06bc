"""YOLO reader and writer: data.yaml forms, label parsing, exact write/read."""

import cv2
import numpy as np
import pytest
import yaml

from rtdet.data.dataset import DatasetBuilder
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError, label_lines, label_path, load_data_yaml, read_yolo, write_yolo


def _tree(tmp_path, labels: dict[str, str], names=("a", "b"), size=(40, 50)):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    for stem, text in labels.items():
        cv2.imwrite(str(tmp_path / "images" / "train" / f"{stem}.png"), np.zeros((*size, 3), np.uint8))
        if text is not None:
            (tmp_path / "labels" / "train" / f"{stem}.txt").write_text(text)
    cfg = {"path": ".", "train": "images/train", "val": "images/train", "names": dict(enumerate(names))}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "data.yaml"


def test_reads_boxes_in_pixels(tmp_path):
    path = _tree(tmp_path, {"x": "1 0.5 0.5 0.2 0.5\n\n0 0.1 0.1 0.2 0.2\n", "y": None})
    ds = read_yolo(path, "train")
    assert ds.names == ["a", "b"] and len(ds) == 2
    _, t = ds[0]
    assert t["labels"].tolist() == [1, 0]
    np.testing.assert_allclose(t["boxes"].numpy(), [[20, 10, 30, 30], [0, 0, 10, 8]], atol=1e-5)
    assert len(ds[1][1]["boxes"]) == 0 and ds.report.empty_images == 1 and ds.report.ok


def test_polygon_lines_become_boxes(tmp_path):
    ds = read_yolo(_tree(tmp_path, {"x": "0 0.1 0.1 0.5 0.1 0.3 0.5\n"}), "train")
    np.testing.assert_allclose(ds[0][1]["boxes"].numpy(), [[5, 4, 25, 20]], atol=1e-5)


def test_txt_list_split_and_label_path(tmp_path):
    path = _tree(tmp_path, {"x": "0 0.5 0.5 0.2 0.2\n", "y": "1 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "list.txt").write_text("./images/train/y.png\n")
    cfg = yaml.safe_load(path.read_text())
    cfg["val"] = "list.txt"
    path.write_text(yaml.safe_dump(cfg))
    ds = read_yolo(path, "val")
    assert len(ds) == 1 and ds.file(0).endswith("y.png")
    assert label_path(tmp_path / "images" / "a" / "b.jpg") == tmp_path / "labels" / "a" / "b.txt"


def test_bad_yaml_is_a_clear_error(tmp_path):
    (tmp_path / "d.yaml").write_text("train: x\n")
    with pytest.raises(DataFormatError, match="names"):
        load_data_yaml(tmp_path / "d.yaml")
    path = _tree(tmp_path / "t", {"x": ""})
    with pytest.raises(DataFormatError, match="no 'test' split"):
        read_yolo(path, "test")


def test_write_then_read_is_exact(tmp_path):
    img = tmp_path / "src" / "p.png"
    img.parent.mkdir()
    cv2.imwrite(str(img), np.zeros((333, 517, 3), np.uint8))
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (20, 2))], 1)
    b = DatasetBuilder(["a", "b", "c"], Report())
    b.add(str(img), (333, 517), 0, boxes, rng.integers(0, 3, 20), iscrowd=np.arange(20) == 3)
    ds = b.build()
    out = write_yolo({"train": ds}, tmp_path / "out")
    back = read_yolo(out, "train")
    assert (tmp_path / "out" / "images" / "p.png").exists()
    keep = np.arange(20) != 3  # crowd left out by default
    np.testing.assert_allclose(back.boxes, boxes[keep], atol=1e-4)
    assert back.labels.tolist() == ds.labels[keep].tolist()
    assert all(len(f.split(".")[1]) >= 6 for line in label_lines(boxes, ds.labels, (333, 517)) for f in line.split()[1:])
    write_yolo({"train": ds}, tmp_path / "out2", keep_crowd=True)
    assert len(read_yolo(tmp_path / "out2" / "data.yaml", "val")) == 1
    assert len(read_yolo(tmp_path / "out2" / "data.yaml", "train").boxes) == 20


def test_suffixes_match_in_any_case(tmp_path):
    """Issue 11.6: ``X.JPG`` images, a ``.TXT`` label file, a list naming ``y.png`` for ``y.PNG``."""
    path = _tree(tmp_path, {"x": None, "y": "0 0.5 0.5 0.2 0.2\n", "z": None})
    img, lab = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    (img / "x.png").rename(img / "x.JPG")  # a PNG under a camera's name: decoded by content
    (lab / "x.TXT").write_text("1 0.5 0.5 0.4 0.4\n")
    (img / "y.png").rename(img / "y.PNG")
    ds = read_yolo(path, "train")
    assert [ds.file(i).split("/")[-1] for i in range(len(ds))] == ["x.JPG", "y.PNG", "z.png"] and ds.report.ok
    assert ds.labels.tolist() == [1, 0] and ds.offsets.tolist() == [0, 1, 2, 2]
    (tmp_path / "list.txt").write_text("./images/train/y.png\n./images/train/x.jpg\n")
    cfg = yaml.safe_load(path.read_text())
    cfg["val"] = "list.txt"
    path.write_text(yaml.safe_dump(cfg))
    ds = read_yolo(path, "val")
    assert [ds.file(i).split("/")[-1] for i in range(len(ds))] == ["y.PNG", "x.JPG"] and ds.report.ok
    assert ds.source_ids == [0, 1] and ds.labels.tolist() == [0, 1]
