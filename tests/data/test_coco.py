"""COCO reader/writer on the shared coco128 set; ground truth for metrics."""

import json

import numpy as np
import pytest

from rtdet.data.coco import read_coco, to_coco_gt
from rtdet.data.convert import convert
from rtdet.data.yolo import read_yolo


def test_reads_coco128(coco128):
    ann, images = coco128
    ds = read_coco(ann, images)
    raw = json.loads(ann.read_text())
    assert len(ds) == 128 and len(ds.boxes) == 939 and ds.iscrowd.sum() == 10
    assert ds.cat_ids == sorted(c["id"] for c in raw["categories"]) and len(ds.names) == 80
    assert ds.report.ok
    a = raw["annotations"][0]
    i = int(np.nonzero(ds.image_ids == a["image_id"])[0][0])
    x, y, w, h = a["bbox"]
    got = ds.annotations(i)
    row = np.nonzero(np.abs(got["boxes"] - [x, y, x + w, y + h]).max(1) < 1e-9)[0]
    assert len(row) == 1 and ds.cat_ids[got["labels"][row[0]]] == a["category_id"]


def test_images_folder_is_inferred(coco128):
    ann, _ = coco128
    assert len(read_coco(ann)) == 128


def _by_file(gt):
    files = {im["id"]: im["file_name"].split("/")[-1] for im in gt["images"]}
    out = {}
    for a in gt["annotations"]:
        out.setdefault(files[a["image_id"]], []).append(a)
    return out


def test_coco_yolo_coco_round_trip(coco128, tmp_path):
    ann, images = coco128
    src = json.loads(ann.read_text())
    (yaml_path,), _ = convert("coco", "yolo", tmp_path / "y", ann=ann, images=images)
    assert len(list((tmp_path / "y" / "labels").glob("*.txt"))) == 128
    y = read_yolo(yaml_path, "train")
    assert len(y.boxes) == 929  # 939 minus the 10 crowd boxes
    cats = {c["id"]: c["name"] for c in src["categories"]}
    assert y.names == [cats[c] for c in sorted(cats)]
    paths, _ = convert("yolo", "coco", tmp_path / "c", source=yaml_path)
    back = json.loads(paths[0].read_text())
    want = _by_file(src)
    got = _by_file(back)
    names_back = {c["id"]: c["name"] for c in back["categories"]}
    for f, anns in want.items():
        ref = sorted((cats[a["category_id"]], *np.round(a["bbox"], 2)) for a in anns if not a["iscrowd"])
        out = sorted((names_back[a["category_id"]], *np.round(a["bbox"], 2)) for a in got.get(f, []))
        ref_exact = {tuple(np.round(a["bbox"], 2)): a["bbox"] for a in anns}
        out_exact = {tuple(np.round(a["bbox"], 2)): a["bbox"] for a in got.get(f, [])}
        ref = [(r[0], *ref_exact[tuple(r[1:])]) for r in ref]
        out = [(o[0], *out_exact[tuple(o[1:])]) for o in out]
        assert [r[0] for r in ref] == [o[0] for o in out], f
        np.testing.assert_allclose([r[1:] for r in ref], [o[1:] for o in out], atol=1e-4, err_msg=f)


def test_keep_crowd(coco128, tmp_path):
    ann, images = coco128
    (yaml_path,), _ = convert("coco", "yolo", tmp_path / "y", ann=ann, images=images, keep_crowd=True)
    assert len(read_yolo(yaml_path, "train").boxes) == 939


def test_ground_truth_scores_perfectly(coco128):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann, images = coco128
    ds = read_coco(ann, images)
    for original in (False, True):
        gt = to_coco_gt(ds, original_ids=original)
        assert {c["id"] for c in gt["categories"]} == (set(ds.cat_ids) if original else set(range(80)))
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
                for a in gt["annotations"] if not a["iscrowd"]]
        e = COCOeval(coco, coco.loadRes(dets), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        assert e.stats[0] == pytest.approx(1.0)
