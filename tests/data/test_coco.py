"""COCO reader/writer on the shared coco128 set; ground truth for metrics."""

import json

import cv2
import numpy as np
import pytest

from rtdet.cli import main
from rtdet.data.coco import detections_to_coco_results, read_coco, to_coco_gt
from rtdet.metrics.coco import COCO_KEYS, evaluate, evaluate_predictions
from rtdet.data.convert import convert
from rtdet.data.yolo import read_yolo
from tests.metrics.cases import pycocotools_stats


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
        labels = np.concatenate([labels, rng.integers(0, len(ds.names), 2)])
        preds.append({"image_id": int(ds.image_ids[i]), "boxes": np.concatenate([b, extra]),
                      "scores": rng.random(len(b) + 2), "labels": labels})
        targets.append({**a, "image_id": int(ds.image_ids[i]), "orig_size": (h, w)})
    return preds, targets


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


# -- ids as the json has them -----------------------------------------------------------------------------


def _tiny_coco(root, image_ids, cat_ids=(3, 4), ann_image_ids=None):
    """``len(image_ids)`` noise images with one box each (category ``cat_ids[0]``)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for k, img_id in enumerate(image_ids):
        cv2.imwrite(str(root / "images" / f"{k}.jpg"), np.full((48, 64, 3), 40 * k, np.uint8))
        images.append({"id": img_id, "file_name": f"{k}.jpg", "height": 48, "width": 64})
    anns = [{"id": k + 1, "image_id": i, "category_id": cat_ids[0], "bbox": [1, 2, 10 + k, 10], "area": 100,
             "iscrowd": 0} for k, i in enumerate(ann_image_ids if ann_image_ids is not None else image_ids)]
    cats = [{"id": c, "name": f"c{n}"} for n, c in enumerate(cat_ids)]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "ann.json"


STRING_IDS = ["0000007_01200_d_0000003", "0000007_01200_d_0000001", "b"]


def test_string_image_ids_are_read_and_written_back(tmp_path):
    """Issue 11.5: string ids (which crashed the reader with a ValueError) are kept for writing out."""
    ann = _tiny_coco(tmp_path, STRING_IDS, cat_ids=("cat", 7))
    ds = read_coco(ann)
    assert ds.report.ok and len(ds) == 3
    assert ds.source_ids == STRING_IDS and ds.image_ids.tolist() == [0, 1, 2]
    assert ds.cat_ids == [7, "cat"] and ds.names == ["c1", "c0"]  # integers sort before strings
    assert [ds[i][1]["image_id"] for i in range(3)] == [0, 1, 2] and ds.labels.tolist() == [1, 1, 1]
    gt = to_coco_gt(ds, original_ids=True)
    assert [im["id"] for im in gt["images"]] == STRING_IDS
    assert {a["image_id"] for a in gt["annotations"]} == set(STRING_IDS)
    assert {a["category_id"] for a in gt["annotations"]} == {"cat"}
    paths, _ = convert("coco", "coco", tmp_path / "out", ann=ann)
    back = json.loads(paths[0].read_text())
    assert [(im["id"], im["file_name"]) for im in back["images"]] == list(zip(STRING_IDS, ["0.jpg", "1.jpg", "2.jpg"]))
    assert sorted(c["id"] for c in back["categories"] if isinstance(c["id"], int)) == [7]
    # the metric dict rtdet val / training builds, and detections in the json's own ids
    preds, targets = fake_predictions(ds)
    assert 0.0 <= evaluate_predictions(preds, targets, ds.names)["AP"] <= 1.0
    dets = detections_to_coco_results(preds, ds)
    assert {d["image_id"] for d in dets} <= set(STRING_IDS) and {d["category_id"] for d in dets} <= {7, "cat"}


def test_int_and_string_ids_are_never_merged(tmp_path):
    ann = _tiny_coco(tmp_path, [1, "1", 2])
    ds = read_coco(ann)
    assert ds.report.ok and ds.source_ids == [1, "1", 2]
    assert [len(ds.annotations(i)["boxes"]) for i in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("bad, words", [
    (None, "got null (null)"),
    (True, "got true (boolean)"),
    (1.5, "got 1.5 (number)"),
    ([1, 2], "got [1, 2] (array)"),
    ({"a": 1}, "got {\"a\": 1} (object)"),
])
def test_unusable_image_ids_are_reported_not_raised(tmp_path, bad, words):
    """Issue 11.5: an id that cannot be an id names the file and the entry; that image is skipped and counted."""
    ann = _tiny_coco(tmp_path, [10, bad, 12], ann_image_ids=[10, bad, 12])
    ds = read_coco(ann)
    assert ds.source_ids == [10, 12] and ds.report.skipped_images == 1
    msgs = [str(p) for p in ds.report.problems]
    words = "must be an integer or a string, " + words
    assert any(m.startswith(str(ann)) and "images[1]: id " + words in m for m in msgs), msgs
    assert any("annotations[1]" in m and "image_id " + words in m for m in msgs), msgs


def test_unusable_category_ids_and_mismatched_id_types_are_reported(tmp_path):
    ann = _tiny_coco(tmp_path, [1, 2], cat_ids=(3, [4]), ann_image_ids=[1, "2"])
    ds = read_coco(ann)
    msgs = [str(p) for p in ds.report.problems]
    assert any("categories[1]: id must be an integer or a string, got [4] (array)" in m for m in msgs), msgs
    assert any("annotations[1] (id 2) points at image id '2', which is not in 'images' (there is an id 2" in m
               for m in msgs), msgs
    assert ds.cat_ids == [3] and ds.source_ids == [1, 2]  # image 2 is kept, without the box that missed it


def test_cli_string_ids_and_broken_json_never_print_a_traceback(tmp_path, capsys):
    ann = _tiny_coco(tmp_path / "s", STRING_IDS)
    assert main(["data", "check", str(ann), "--images", str(tmp_path / "s" / "images")]) == 0
    assert "OK: no problems found" in capsys.readouterr().out
    ann = _tiny_coco(tmp_path / "u", [1, [2], {"x": 3}])
    assert main(["data", "check", str(ann)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "images[1]: id must be an integer or a string" in out and "Traceback" not in out
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["data", "check", str(tmp_path / "list.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "list.json" in err and "got a JSON array" in err


def test_file_name_suffix_in_another_case_is_found(tmp_path):
    """Issue 11.6 for COCO: ``file_name`` says ``0.jpg``, the file is ``0.JPG``; file names are written back as stored."""
    ann = _tiny_coco(tmp_path, [5, 6])
    (tmp_path / "images" / "0.jpg").rename(tmp_path / "images" / "0.JPG")
    ds = read_coco(ann)
    assert ds.report.ok and ds.file(0).endswith("0.JPG") and ds.source_ids == [5, 6]
    paths, _ = convert("coco", "coco", tmp_path / "out", ann=ann)
    back = json.loads(paths[0].read_text())
    assert [(im["id"], im["file_name"]) for im in back["images"]] == [(5, "0.JPG"), (6, "1.jpg")]
    assert (tmp_path / "out" / "images" / "0.JPG").exists()
