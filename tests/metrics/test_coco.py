"""rtdet's COCO numbers equal pycocotools' (<= 1e-9) on the reference case and on random cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rtdet.metrics.coco import (
    COCO_KEYS,
    evaluate,
    evaluate_predictions,
    format_per_class,
    format_table,
    predictions_to_coco,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cocoeval"
TOL = 1e-9


def pycocotools_stats(gt: dict, dets: list[dict]) -> np.ndarray:
    """The 12 numbers from pycocotools itself (on deep copies: it writes into its inputs)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = copy.deepcopy(gt), copy.deepcopy(dets)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes cannot take an empty list; an empty result set is still well defined
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def as_array(result) -> np.ndarray:
    return np.array([result[k] for k in COCO_KEYS])


def random_box(r: np.random.Generator, tiny_huge: bool) -> list[float]:
    u = r.random()
    if tiny_huge and u < 0.08:
        return [float(r.uniform(0, 600)), float(r.uniform(0, 400)), float(r.uniform(0.01, 2)), float(r.uniform(0.01, 2))]
    if tiny_huge and u < 0.14:  # larger than COCO's 1e5² "all" area range
        return [0.0, 0.0, 2e5, float(r.uniform(0.4e5, 1.5e5))]
    if u < 0.2:  # exactly on the small/medium and medium/large borders
        s = float(r.choice([32.0, 96.0]))
        return [float(r.uniform(0, 600)), float(r.uniform(0, 400)), s, s]
    s = float(np.exp(r.uniform(0, 6.5)))
    return [float(r.uniform(0, 600)), float(r.uniform(0, 400)), s * float(r.uniform(0.5, 2)), s * float(r.uniform(0.5, 2))]


def random_case(seed: int) -> tuple[dict, list[dict]]:
    """Varied image counts; empty, crowd-only and detection-heavy images; ties; categories without detections."""
    r = np.random.default_rng(seed)
    n_img, n_cat = int(r.integers(1, 25)), int(r.integers(1, 7))
    images = [{"id": 3 * i + 1, "width": 640, "height": 480} for i in range(n_img)]
    cats = [{"id": 2 * c + 1, "name": f"c{c}"} for c in range(n_cat)]
    tiny_huge = seed % 3 == 0
    anns, dets = [], []
    for im in images:
        kind = r.integers(0, 6)  # 0: empty, 1: crowd only, else ordinary
        for _ in range(0 if kind == 0 else int(r.integers(1, 12))):
            box = random_box(r, tiny_huge)
            area = box[2] * box[3] * (1.0 if r.random() < 0.5 else float(r.uniform(0.3, 1.0)))  # polygon area < box
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cats[r.integers(n_cat)]["id"],
                         "bbox": box, "area": area, "iscrowd": int(kind == 1 or r.random() < 0.05)})
        own = [a for a in anns if a["image_id"] == im["id"]]
        for _ in range(int(r.integers(0, 160 if r.random() < 0.2 else 15))):  # sometimes > 100 per image
            if own and r.random() < 0.6:
                g = own[r.integers(len(own))]
                box = (np.array(g["bbox"]) + r.normal(0, 1, 4) * np.array(g["bbox"])[[2, 3, 2, 3]] / 15).tolist()
                box[2:] = [abs(box[2]), abs(box[3])]
                cat = g["category_id"] if r.random() < 0.9 else cats[r.integers(n_cat)]["id"]
            else:
                box, cat = random_box(r, tiny_huge), cats[r.integers(n_cat)]["id"]
            score = float(np.round(r.random(), 1)) if r.random() < 0.5 else float(r.random())  # ties
            dets.append({"image_id": im["id"], "category_id": int(cat), "bbox": [float(v) for v in box], "score": score})
            if r.random() < 0.1:
                dets.append(copy.deepcopy(dets[-1]))  # exact duplicate
    if n_cat > 1 and r.random() < 0.4:
        dets = [d for d in dets if d["category_id"] != cats[0]["id"]]  # a category without detections
    if r.random() < 0.2:
        for d in dets:
            d["score"] = 0.5  # all tied
    return {"images": images, "categories": cats, "annotations": anns}, dets


def test_reference_case_matches_pycocotools_and_stored_stats():
    if not DATA.is_dir():
        pytest.skip("../shared/data/cocoeval absent")
    gt = json.loads((DATA / "instances_val2014_100.json").read_text())
    dets = json.loads((DATA / "instances_val2014_fakebbox100_results.json").read_text())
    expected = pycocotools_stats(gt, dets)  # recomputed, not trusted from the file
    stored = json.loads((DATA / "expected_stats_pycocotools.json").read_text())
    assert stored["keys"] == list(COCO_KEYS)
    np.testing.assert_allclose(expected, stored["bbox"], rtol=0, atol=TOL)
    result = evaluate(DATA / "instances_val2014_100.json", DATA / "instances_val2014_fakebbox100_results.json")
    assert np.abs(as_array(result) - expected).max() <= TOL
    assert result["AP"] == pytest.approx(0.505, abs=5e-4)  # the COCO API's own printed summary


@pytest.mark.parametrize("seed", range(60))
def test_random_cases_match_pycocotools(seed):
    gt, dets = random_case(seed)
    assert np.abs(as_array(evaluate(gt, dets)) - pycocotools_stats(gt, dets)).max() <= TOL


def test_random_cases_cover_the_hard_parts():
    """The generator really produces what the parity test claims to cover."""
    seen = {"empty": 0, "crowd_only": 0, "over_100": 0, "no_dets_cat": 0, "dup": 0, "tiny": 0, "huge": 0}
    for seed in range(60):
        gt, dets = random_case(seed)
        per_img = {im["id"]: [a for a in gt["annotations"] if a["image_id"] == im["id"]] for im in gt["images"]}
        seen["empty"] += any(not v for v in per_img.values())
        seen["crowd_only"] += any(v and all(a["iscrowd"] for a in v) for v in per_img.values())
        counts = np.bincount([d["image_id"] for d in dets]) if dets else np.zeros(1)
        seen["over_100"] += counts.max() > 100
        seen["no_dets_cat"] += len({c["id"] for c in gt["categories"]} - {d["category_id"] for d in dets}) > 0
        keys = [json.dumps(d, sort_keys=True) for d in dets]
        seen["dup"] += len(set(keys)) < len(keys)
        areas = [a["bbox"][2] * a["bbox"][3] for a in gt["annotations"]]
        seen["tiny"] += any(a < 4 for a in areas)
        seen["huge"] += any(a > 1e10 for a in areas)
    assert all(v > 0 for v in seen.values()), seen


def test_empty_detections_and_undefined_numbers():
    gt, _ = random_case(1)
    assert np.abs(as_array(evaluate(gt, [])) - pycocotools_stats(gt, [])).max() <= TOL
    only_crowd = copy.deepcopy(gt)
    for a in only_crowd["annotations"]:
        a["iscrowd"] = 1
    result = evaluate(only_crowd, [])
    assert all(v == -1 for v in result.stats.values())  # no category has ground truth: undefined
    assert all(row.AP == -1 for row in result.per_class)


def test_zero_and_duplicate_annotation_ids_are_renumbered():
    gt, dets = random_case(5)
    proper = evaluate(gt, dets)
    odd = copy.deepcopy(gt)
    for a in odd["annotations"]:
        a["id"] = 0  # pycocotools would alias all of them and count matches to id 0 as misses
    assert as_array(evaluate(odd, dets)).tolist() == as_array(proper).tolist()


def test_inputs_are_not_modified_and_nothing_is_printed(capsys):
    gt, dets = random_case(7)
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    evaluate(gt, dets)
    assert gt == gt_before and dets == dets_before
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_missing_area_and_iscrowd_default_to_box_area_and_zero():
    gt, dets = random_case(11)
    full = copy.deepcopy(gt)
    for a in full["annotations"]:
        a["area"], a["iscrowd"] = a["bbox"][2] * a["bbox"][3], 0
    bare = copy.deepcopy(full)
    for a in bare["annotations"]:
        del a["area"], a["iscrowd"]
    assert as_array(evaluate(bare, dets)).tolist() == as_array(evaluate(full, dets)).tolist()


def test_per_class_table_averages_to_the_summary():
    gt, dets = random_case(2)
    result = evaluate(gt, dets)
    defined = [row.AP for row in result.per_class if row.AP > -1]
    assert np.mean(defined) == pytest.approx(result["AP"], abs=1e-12)
    assert sum(row.num_det for row in result.per_class) == len(dets)
    assert sum(row.num_gt for row in result.per_class) == sum(not a["iscrowd"] for a in gt["annotations"])
    text = format_per_class(result)
    assert all(c["name"] in text for c in gt["categories"])
    table = format_table(result)
    assert len(table.splitlines()) == 12 and all(k in table for k in COCO_KEYS)


def _xyxy(boxes: list[list[float]]) -> torch.Tensor:
    return torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in boxes], dtype=torch.float64).reshape(-1, 4)


def _rtdet_case(seed: int):
    """rtdet targets and predictions (xyxy tensors) for the same scene as ``random_case``."""
    gt, dets = random_case(seed)
    index = {c["id"]: k for k, c in enumerate(gt["categories"])}
    targets, preds = [], []
    for im in gt["images"]:
        a = [x for x in gt["annotations"] if x["image_id"] == im["id"]]
        d = [x for x in dets if x["image_id"] == im["id"]]
        targets.append({
            "boxes": _xyxy([x["bbox"] for x in a]),
            "labels": torch.tensor([index[x["category_id"]] for x in a], dtype=torch.int64),
            "iscrowd": torch.tensor([bool(x["iscrowd"]) for x in a], dtype=torch.bool),
            "image_id": im["id"], "orig_size": (480, 640),
        })
        preds.append({
            "boxes": _xyxy([x["bbox"] for x in d]),
            "scores": torch.tensor([x["score"] for x in d], dtype=torch.float64),
            "labels": torch.tensor([index[x["category_id"]] for x in d], dtype=torch.int64),
        })
    names = [c["name"] for c in gt["categories"]]
    return gt, dets, targets, preds, names


@pytest.mark.parametrize("seed", [0, 4, 8])
def test_evaluate_predictions_matches_pycocotools(seed):
    gt, dets, targets, preds, names = _rtdet_case(seed)
    # the reference sees the xyxy -> xywh round trip too ((x + w) - x != w in floating point), and
    # rtdet targets carry boxes, not polygon areas
    xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
    gt["annotations"] = [{**a, "bbox": xywh(b), "area": xywh(b)[2] * xywh(b)[3]} for a, b in
                         zip(gt["annotations"], [b for t in targets for b in t["boxes"].tolist()])]
    dets = [{**d, "image_id": im} for im, t, p in zip([im["id"] for im in gt["images"]], targets, preds)
            for d in [{"category_id": gt["categories"][c]["id"], "bbox": xywh(b), "score": s}
                      for b, s, c in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist())]]
    result = evaluate_predictions(preds, targets, names)
    assert np.abs(as_array(result) - pycocotools_stats(gt, dets)).max() <= 1e-9
    assert [r.name for r in result.per_class] == names


def test_letterboxed_frame_is_mapped_back():
    _, _, targets, preds, names = _rtdet_case(3)
    direct = evaluate_predictions(preds, targets, names)
    scale, px, py = 0.5, 7.0, 3.0
    boxed_t, boxed_p = [], []
    for t, p in zip(targets, preds):
        shift = torch.tensor([px, py, px, py], dtype=torch.float64)
        boxed_t.append({**t, "boxes": t["boxes"] * scale + shift, "letterbox": (scale, px, py)})
        boxed_p.append({**p, "boxes": p["boxes"] * scale + shift})
    mapped = evaluate_predictions(boxed_p, boxed_t, names, frame="input")
    np.testing.assert_allclose(as_array(mapped), as_array(direct), atol=1e-12)


def test_difficult_boxes_become_ignored_regions():
    t = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "labels": torch.tensor([0, 0]),
          "difficult": torch.tensor([False, True]), "image_id": 1}]
    p = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "scores": torch.tensor([0.9, 0.8]),
          "labels": torch.tensor([0, 0])}]
    gt, dets = predictions_to_coco(p, t, ["a"])
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1]
    assert evaluate_predictions(p, t, ["a"])["AP"] == pytest.approx(1.0)  # the hit on a difficult box is not an FP


def test_trimmed_evaluator_equals_stock_faster_coco_eval():
    """The speed-up path is active and gives faster-coco-eval's own arrays, bit for bit."""
    import faster_coco_eval.faster_eval_api_cpp as _C
    from faster_coco_eval import COCO, COCOeval_faster

    from rtdet.metrics.coco import _trimmed_evaluator
    from rtdet.metrics.validate import check_detections, check_ground_truth

    assert hasattr(_C, "COCOevalEvaluateAccumulate")  # else the stock (slower) path runs
    gt, dets = random_case(9)
    gt = check_ground_truth(gt)
    dets = check_detections(dets, gt)
    out = []
    for cls in (COCOeval_faster, _trimmed_evaluator()):
        coco_gt = COCO(copy.deepcopy(gt))
        ev = cls(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox", print_function=lambda *a: None)
        ev.evaluate()
        ev.accumulate()
        out.append((ev.eval["precision"], ev.eval["recall"], ev.eval["scores"]))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_coco128_real_annotations_match_pycocotools():
    """Real COCO ground truth (polygon areas, RLE crowds, 80 ids in 1..90) with seeded fake detections."""
    path = DATA.parent / "coco128" / "annotations" / "instances_val2017.json"
    if not path.is_file():
        pytest.skip("../shared/data/coco128 absent")
    gt = json.loads(path.read_text())
    r = np.random.default_rng(0)
    cat_ids = [c["id"] for c in gt["categories"]]
    dets = []
    for a in gt["annotations"]:
        for _ in range(int(r.integers(0, 3))):
            x, y, w, h = a["bbox"]
            jitter = r.normal(0, 0.08, 4) * [w, h, w, h]
            cat = a["category_id"] if r.random() < 0.9 else int(r.choice(cat_ids))
            dets.append({"image_id": a["image_id"], "category_id": cat, "score": float(r.random()),
                         "bbox": [x + jitter[0], y + jitter[1], abs(w + jitter[2]), abs(h + jitter[3])]})
    for im in gt["images"]:
        for _ in range(int(r.integers(0, 5))):
            dets.append({"image_id": im["id"], "category_id": int(r.choice(cat_ids)), "score": float(r.random()),
                         "bbox": [float(v) for v in r.uniform(0, 300, 4)]})
    result = evaluate(path, dets)
    assert np.abs(as_array(result) - pycocotools_stats(gt, dets)).max() <= TOL
    assert 0.2 < result["AP"] < 0.9


def test_coco_to_rtdet_round_trip():
    from rtdet.metrics.coco import coco_to_rtdet

    gt, dets = random_case(13)
    for a in gt["annotations"]:  # integer boxes: xywh -> xyxy -> xywh is exact
        a["bbox"] = [float(round(v)) for v in a["bbox"]]
        a["area"] = a["bbox"][2] * a["bbox"][3]
    for d in dets:
        d["bbox"] = [float(round(v)) for v in d["bbox"]]
    preds, targets, names = coco_to_rtdet(gt, dets)
    assert len(preds) == len(targets) == len(gt["images"]) and names == [c["name"] for c in gt["categories"]]
    assert sum(len(p["scores"]) for p in preds) == len(dets)
    assert as_array(evaluate_predictions(preds, targets, names)).tolist() == as_array(evaluate(gt, dets)).tolist()


def with_string_ids(gt: dict, dets: list[dict], mixed: bool) -> tuple[dict, list[dict]]:
    """The same case with string image ids and (when ``mixed``) some string category ids beside integer ones."""
    img = {im["id"]: f"img_{im['id']:04d}" for im in gt["images"]}
    cat = {c["id"]: (f"cat-{c['id']}" if mixed and k % 2 else c["id"]) for k, c in enumerate(gt["categories"])}
    new = {"images": [{**im, "id": img[im["id"]]} for im in gt["images"]],
           "categories": [{**c, "id": cat[c["id"]]} for c in gt["categories"]],
           "annotations": [{**a, "image_id": img[a["image_id"]], "category_id": cat[a["category_id"]]}
                           for a in gt["annotations"]]}
    return new, [{**d, "image_id": img[d["image_id"]], "category_id": cat[d["category_id"]]} for d in dets]


@pytest.mark.parametrize("seed", range(6))
def test_string_ids_score_as_pycocotools_scores_them(seed):
    """Issue 11.5: ids of any JSON type are numbered, never merged; the numbers do not change."""
    gt, dets = random_case(seed)
    ref = as_array(evaluate(gt, dets))
    sgt, sdets = with_string_ids(gt, dets, mixed=False)
    np.testing.assert_allclose(as_array(evaluate(sgt, sdets)), pycocotools_stats(sgt, sdets), rtol=0, atol=TOL)
    np.testing.assert_allclose(as_array(evaluate(sgt, sdets)), ref, rtol=0, atol=TOL)
    mgt, mdets = with_string_ids(gt, dets, mixed=True)  # pycocotools cannot sort mixed ids; rtdet can
    result = evaluate(mgt, mdets)
    np.testing.assert_allclose(as_array(result), ref, rtol=0, atol=TOL)
    assert {r.category_id for r in result.per_class} == {c["id"] for c in mgt["categories"]}


def test_int_and_string_ids_are_different_ids():
    gt = {"images": [{"id": 1, "width": 100, "height": 100}, {"id": "1", "width": 100, "height": 100}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400}]}
    hit = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}
    assert evaluate(gt, [hit])["AP"] == pytest.approx(1.0)
    assert evaluate(gt, [{**hit, "image_id": "1"}])["AP"] == 0.0  # the other image, which has no boxes
