"""COCO reader/writer on the shared coco128 set; ground truth for metrics."""

import contextlib
import io
import json

import numpy as np
import pytest

from rtdet.data.coco import detections_to_coco_results, read_coco, to_coco_gt
from rtdet.metrics.coco import COCO_KEYS, evaluate, evaluate_predictions
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
    i = ds.source_ids.index(a["image_id"])  # the json's own id; inside rtdet an image is its position
    assert ds.image_ids.tolist() == list(range(128)) and ds[i][1]["image_id"] == i
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


# -- what rtdet writes scores against the user's own json ---------------------------------------------------


def coco_subset(ann, n, string_ids=False):
    """The first ``n`` coco128 images (COCO's non-contiguous category ids), optionally with string image ids
    (``"0000007_01200_d_0000003"``-style, as some public sets ship)."""
    src = json.loads(ann.read_text())
    images = sorted(src["images"], key=lambda im: im["id"])[:n]
    keep = {im["id"] for im in images}
    rename = (lambda i: f"{i:07d}_01200_d_{i % 7:07d}") if string_ids else (lambda i: i)
    return {"images": [{**im, "id": rename(im["id"])} for im in images],
            "annotations": [{**a, "image_id": rename(a["image_id"])} for a in src["annotations"]
                            if a["image_id"] in keep],
            "categories": src["categories"]}


def fake_predictions(ds, seed=0):
    """Per image of ``ds``: its GT boxes perturbed, random scores, one in five labels wrong, plus two
    random boxes; ``image_id`` as targets carry it. Also the matching targets."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(len(ds)):
        a = ds.annotations(i)
        h, w = (int(v) for v in ds.sizes[i])
        b = a["boxes"].copy()
        wh = np.tile(b[:, 2:] - b[:, :2], 2)
        b = b + rng.normal(0, 0.08, b.shape) * wh
        b = np.concatenate([np.minimum(b[:, :2], b[:, 2:] - 1), np.maximum(b[:, 2:], b[:, :2] + 1)], 1)
        labels = np.where(rng.random(len(b)) < 0.2, rng.integers(0, len(ds.names), len(b)), a["labels"])
        xy = rng.uniform(0, [w * 0.7, h * 0.7], (2, 2))
        extra = np.concatenate([xy, xy + rng.uniform(5, 100, (2, 2))], 1)
        preds.append({"image_id": int(ds.image_ids[i]), "boxes": np.concatenate([b, extra]),
                      "scores": rng.random(len(b) + 2), "labels": np.concatenate([labels, rng.integers(0, 80, 2)])})
        targets.append({**a, "image_id": int(ds.image_ids[i]), "orig_size": (h, w)})
    return preds, targets


def pycocotools_stats(gt_path, dets_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        e = COCOeval(gt, gt.loadRes(str(dets_path)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


@pytest.mark.parametrize("string_ids", [False, True])
def test_saved_detections_score_against_the_users_json(coco128, tmp_path, string_ids):
    """Issue 11.1: pycocotools(user's json, rtdet's detections) == rtdet's own AP (it was 0: ids were label + 1)."""
    pytest.importorskip("pycocotools")
    ann, images = coco128
    gt_path = tmp_path / "ann.json"
    gt_path.write_text(json.dumps(coco_subset(ann, 24, string_ids)))
    ds = read_coco(gt_path, images)
    assert len(ds) == 24 and ds.report.ok
    preds, targets = fake_predictions(ds)
    dets = detections_to_coco_results(preds, ds)
    assert len(dets) == sum(len(p["scores"]) for p in preds)
    user = json.loads(gt_path.read_text())
    assert {d["image_id"] for d in dets} <= {im["id"] for im in user["images"]}
    assert {d["category_id"] for d in dets} <= {c["id"] for c in user["categories"]}
    (tmp_path / "detections.json").write_text(json.dumps(dets))
    ours = evaluate_predictions(preds, targets, ds.names)
    theirs = pycocotools_stats(gt_path, tmp_path / "detections.json")
    assert 0.2 < ours["AP"] < 0.9
    for k in (0, 1, 2, 6, 7, 8):  # the numbers over all areas (rtdet measures area on the box, COCO on the mask)
        assert abs(theirs[k] - ours.stats[COCO_KEYS[k]]) < 1e-9, COCO_KEYS[k]
    # the same detections through the json's own areas: all 12 numbers
    full = evaluate(to_coco_gt(ds, original_ids=True), dets)
    np.testing.assert_allclose([full[k] for k in COCO_KEYS], theirs, atol=1e-9)
