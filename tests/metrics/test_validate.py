"""Bad ground truth or detections give one clear error naming the entry, never a deep stack trace."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rtdet.metrics.coco import evaluate
from rtdet.metrics.validate import MetricsInputError, check_detections, check_ground_truth

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "cat"}, {"id": 5, "name": "dog"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 5, "bbox": [30, 30, 20, 10], "area": 200, "iscrowd": 0},
    ],
}


def det(**kw):
    d = {"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.9}
    d.update(kw)
    return d


@pytest.mark.parametrize("bad, message", [
    (det(image_id=7), "detection 1: image_id 7 is not in the ground truth images"),
    (det(category_id=3), "detection 1: category_id 3 is not in the ground truth categories"),
    (det(score=math.nan), "detection 1: score must be a finite number, got nan"),
    (det(score=None), "detection 1: score must be a finite number, got None"),
    (det(bbox=[1.0, math.nan, 2.0, 2.0]), "detection 1: bbox has a non-finite value"),
    (det(bbox=[1.0, 1.0, -2.0, 2.0]), "detection 1: bbox has a negative width or height"),
    (det(bbox=[1.0, 1.0, 2.0]), "detection 1: bbox must be a list of 4 numbers"),
    (det(bbox=[[1.0, 1.0, 2.0, 2.0]]), "detection 1: bbox must be a list of 4 numbers"),
    (det(image_id="1"), "detection 1: image_id '1' is not in the ground truth images"),  # "1" is not 1
    (det(image_id=1.0), "detection 1: image_id must be an integer or a string, got 1.0"),
    (det(category_id=[1]), "detection 1: category_id must be an integer or a string, got [1]"),
    ({"image_id": 1, "category_id": 1, "score": 0.3}, "detection 1: missing key(s) bbox"),
    ([1, 2, 3], "detection 1: expected an object"),
])
def test_bad_detection_is_named(bad, message):
    with pytest.raises(MetricsInputError) as e:
        evaluate(GT, [det(), bad, det()])
    assert message in str(e.value)


def test_detections_must_be_a_list():
    with pytest.raises(MetricsInputError, match="a ground-truth file"):
        check_detections(GT, check_ground_truth(GT))
    with pytest.raises(MetricsInputError, match="expected a list of detections, got int"):
        check_detections(3, check_ground_truth(GT))


@pytest.mark.parametrize("change, message", [
    (lambda g: g["annotations"][1].update(image_id=9), "annotation 1: image_id 9 is not in the ground truth images"),
    (lambda g: g["annotations"][1].update(category_id=2), "annotation 1: category_id 2 is not in the ground truth"),
    (lambda g: g["annotations"][0].update(bbox=[0, 0, 5, -1]), "annotation 0: bbox has a negative width or height"),
    (lambda g: g["annotations"][0].update(area=math.inf), "annotation 0: area must be a finite number"),
    (lambda g: g["annotations"][0].update(area=-4), "annotation 0: area must be >= 0"),
    (lambda g: g["annotations"][0].update(iscrowd=2), "annotation 0: iscrowd must be 0 or 1"),
    (lambda g: g["images"].append({"id": 1}), "images[2]: duplicate id 1"),
    (lambda g: g["categories"].append({"name": "x"}), "categories[2]: needs an integer or string 'id'"),
    (lambda g: g.pop("images"), "ground truth needs a 'images' list"),
])
def test_bad_ground_truth_is_named(change, message):
    gt = json.loads(json.dumps(GT))
    change(gt)
    with pytest.raises(MetricsInputError) as e:
        evaluate(gt, [det()])
    assert message in str(e.value)


def test_files_are_named_and_malformed_json_is_reported(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "dets.json").write_text('[{"image_id": 1,\n "category_id": }]')
    with pytest.raises(MetricsInputError) as e:
        evaluate(tmp_path / "gt.json", tmp_path / "dets.json")
    assert f"{tmp_path / 'dets.json'}: malformed JSON" in str(e.value) and "line 2" in str(e.value)
    (tmp_path / "dets.json").write_text(json.dumps([det(), det(category_id=4)]))
    with pytest.raises(MetricsInputError, match=r"dets.json: detection 1: category_id 4"):
        evaluate(tmp_path / "gt.json", tmp_path / "dets.json")
    with pytest.raises(MetricsInputError, match="cannot read"):
        evaluate(tmp_path / "missing.json", [])


def test_error_is_a_value_error():
    assert issubclass(MetricsInputError, ValueError)


def test_zero_size_boxes_are_allowed():
    result = evaluate(GT, [det(bbox=[10.0, 10.0, 0.0, 0.0])])
    assert result["AP"] == 0.0


@pytest.mark.parametrize("change, message", [
    (lambda p, t: p[1].update(labels=torch.tensor([2])), "image 1: predictions: label outside 0..1"),
    (lambda p, t: t[0].update(labels=torch.tensor([-1])), "image 0: targets: label outside 0..1"),
    (lambda p, t: p[1].update(scores=torch.tensor([float("nan")])), "image 1: predictions: non-finite box or score"),
    (lambda p, t: p[0].update(scores=torch.tensor([0.1, 0.2])), "image 0: predictions: 1 boxes, 2 scores, 1 labels"),
    (lambda p, t: t[1].update(boxes=torch.tensor([[5.0, 5, 1, 9]])), "image 1: targets: box with x2 < x1"),
    (lambda p, t: p.pop(), "1 predictions for 2 targets"),
])
def test_bad_rtdet_predictions_are_named(change, message):
    from rtdet.metrics.coco import evaluate_predictions

    targets = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0]), "image_id": i} for i in range(2)]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
             for _ in range(2)]
    change(preds, targets)
    with pytest.raises(MetricsInputError) as e:
        evaluate_predictions(preds, targets, ["a", "b"])
    assert message in str(e.value)
