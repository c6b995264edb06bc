"""`rtdet data convert` through the CLI: YOLO -> COCO and VOC -> YOLO."""

import json
from pathlib import Path

import pytest

from rtdet.cli import main
from rtdet.data import open_dataset
from rtdet.data.coco import detections_to_coco_results
from rtdet.data.convert import convert
from rtdet.data.yolo import read_yolo
from rtdet.metrics.coco import evaluate_predictions
from tests.data.test_coco import fake_predictions, pycocotools_stats


def test_yolo_to_coco_cli(digits_yaml, tmp_path, capsys):
    assert main(["data", "convert", "--from", "yolo", "--to", "coco", str(digits_yaml), "--out", str(tmp_path)]) == 0
    gt = json.loads((tmp_path / "annotations" / "val.json").read_text())
    assert len(gt["images"]) == 8 and [c["name"] for c in gt["categories"]] == [str(d) for d in range(10)]
    assert [im["file_name"] for im in gt["images"]] == [f"{k:05d}.jpg" for k in range(8)]  # names kept
    assert all((tmp_path / "images" / "val" / im["file_name"]).exists() for im in gt["images"])
    assert "wrote" in capsys.readouterr().out


def test_voc_to_yolo_cli(voc_mini, tmp_path):
    assert main(["data", "convert", "--from", "voc", "--to", "yolo", str(voc_mini), "--out", str(tmp_path),
                 "--copy"]) == 0
    assert (tmp_path / "trainval.txt").exists() and not (tmp_path / "images" / "000001.jpg").is_symlink()
    ds = read_yolo(tmp_path / "data.yaml", "train")
    assert len(ds) == 10 and ds.names[0] == "aeroplane"


def test_missing_ann_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "convert", "--from", "coco", "--to", "yolo", "--out", str(tmp_path)]) == 2
    assert "--ann" in capsys.readouterr().err


def _check_against_converted(ds, gt_path, tmp_path):
    """Detections written for ``ds`` name the same files and classes in the converted json; returns their path."""
    preds, _ = fake_predictions(ds)
    dets = detections_to_coco_results(preds, ds)
    gt = json.loads(gt_path.read_text())
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    expected = [(Path(ds.file(p["image_id"])).name, ds.names[c]) for p in preds for c in p["labels"].tolist()]
    assert [(files[d["image_id"]], cats[d["category_id"]]) for d in dets] == expected
    (tmp_path / "detections.json").write_text(json.dumps(dets))
    return preds, tmp_path / "detections.json"


def test_yolo_detections_score_against_the_converted_json(digits_yaml, tmp_path):
    """Issue 11.1 for data without ids: image = position in the split, category = label, as convert writes."""
    pytest.importorskip("pycocotools")
    convert("yolo", "coco", tmp_path / "c", source=digits_yaml)
    ds = open_dataset(digits_yaml, "val")  # what `rtdet val` reads
    preds, dets = _check_against_converted(ds, tmp_path / "c" / "annotations" / "val.json", tmp_path)
    targets = [{**ds.annotations(i), "image_id": i} for i in range(len(ds))]
    ours = evaluate_predictions(preds, targets, ds.names)["AP"]
    assert ours > 0.2 and abs(pycocotools_stats(tmp_path / "c" / "annotations" / "val.json", dets)[0] - ours) < 1e-9


def test_voc_detections_name_the_converted_files_and_classes(voc_mini, tmp_path):
    convert("voc", "coco", tmp_path / "c", source=voc_mini)
    _check_against_converted(open_dataset(voc_mini, "val"), tmp_path / "c" / "annotations" / "test.json", tmp_path)


def test_difficult_survives_voc_to_coco_and_back_and_yolo_leaves_it_out(voc_mini, tmp_path, capsys):
    """VOC difficult -> COCO ``iscrowd`` 1 + ``difficult`` 1 (a COCO scorer ignores it) -> difficult again."""
    from rtdet.data.coco import read_coco

    voc = open_dataset(voc_mini, "test")
    assert int(voc.difficult.sum()) == 2 and not voc.iscrowd.any()
    convert("voc", "coco", tmp_path / "c", source=voc_mini)
    gt = json.loads((tmp_path / "c" / "annotations" / "test.json").read_text())
    marked = [a for a in gt["annotations"] if a.get("difficult")]
    assert len(marked) == 2 and all(a["iscrowd"] == 1 for a in marked)
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 2
    back = read_coco(tmp_path / "c" / "annotations" / "test.json", tmp_path / "c" / "images" / "test")
    assert back.difficult.tolist() == voc.difficult.tolist() and not back.iscrowd.any()
    assert back.boxes.tolist() == voc.boxes.tolist()  # 1-based VOC pixels converted once, kept since
    assert main(["data", "convert", "--from", "voc", "--to", "yolo", str(voc_mini), "--out", str(tmp_path / "y")]) == 0
    assert "4 crowd / difficult boxes left out" in capsys.readouterr().out  # test and trainval hold the 2 each
