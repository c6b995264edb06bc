"""`rtdet val --save-json` and `rtdet train` on a COCO json with its own ids (issue 11, items 1 and 5).

A randomly initialised rtdet-n whose head says "bowl" everywhere: every saved
detection must carry COCO's id of "bowl" (51; it was label + 1 = 46, "wine
glass") and the json's own (string) image ids, and pycocotools on the user's
json and rtdet's detections.json must print rtdet's numbers.
"""

import json

import pytest
import torch

from rtdet.cli import main
from rtdet.config import Config, config_to_dict
from rtdet.metrics.coco import COCO_KEYS
from rtdet.models import build_model
from tests.data.conftest import COCO128
from tests.metrics.cases import pycocotools_stats

pytestmark = pytest.mark.slow


@pytest.fixture
def string_id_json(tmp_path):
    """4 coco128 photos with string image ids and COCO's non-contiguous category ids; absolute file names."""
    ann = COCO128 / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip("shared coco128 data absent")
    src = json.loads(ann.read_text())
    images = sorted(src["images"], key=lambda im: im["id"])[:4]
    new_id = {im["id"]: f"{im['id']:07d}_01200_d_{k:07d}" for k, im in enumerate(images)}
    data = {"images": [{**im, "id": new_id[im["id"]], "file_name": str(COCO128 / "images" / im["file_name"])}
                       for im in images],
            "annotations": [{**a, "image_id": new_id[a["image_id"]]} for a in src["annotations"]
                            if a["image_id"] in new_id],
            "categories": src["categories"]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, data


def one_class_checkpoint(path, names, label, cat_ids=None):
    """A checkpoint whose model scores class ``label`` 0.98 everywhere and every other class ~0
    (``cat_ids``: the training data set's category ids, as training records them in ``meta``)."""
    torch.manual_seed(0)
    model = build_model("rtdet-n", len(names)).eval()
    with torch.no_grad():
        for branch in model.head.cls:
            branch[-1].weight.zero_()
            branch[-1].bias.fill_(-20.0)
            branch[-1].bias[label] = 4.0
    meta = {"names": names, **({"cat_ids": cat_ids} if cat_ids else {})}
    torch.save({"model": model.state_dict(), "model_args": dict(model.build_args), "meta": meta,
                "config": config_to_dict(Config()), "ema": None}, path)
    return path


def test_val_save_json_uses_the_users_ids(string_id_json, tmp_path):
    pytest.importorskip("pycocotools")
    ann, data = string_id_json
    cats = sorted(data["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in cats]
    bowl = names.index("bowl")
    assert cats[bowl]["id"] == 51 and bowl + 1 != 51
    weights = one_class_checkpoint(tmp_path / "w.pt", names, bowl)
    out = tmp_path / "val"
    assert main(["val", "--weights", str(weights), "--data", str(ann), "--imgsz", "160", "--workers", "0",
                 "--out", str(out), "--save-json"]) == 0
    dets = json.loads((out / "detections.json").read_text())
    assert dets and {d["category_id"] for d in dets} == {51}
    assert {d["image_id"] for d in dets} == {im["id"] for im in data["images"]}
    metrics = json.loads((out / "metrics.json").read_text())
    theirs = pycocotools_stats(ann, out / "detections.json")
    for k in (0, 1, 2, 6, 7, 8):  # over all areas (rtdet's areas are the boxes', COCO's the masks')
        assert abs(theirs[k] - metrics[COCO_KEYS[k]]) < 1e-9, COCO_KEYS[k]


def test_train_on_string_image_ids(string_id_json, tmp_path):
    """`rtdet train --data ann.json` died with "ValueError: invalid literal for int()"."""
    ann, _ = string_id_json
    out = tmp_path / "run"
    assert main(["train", "--data", str(ann), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0",
                 "--mosaic", "0", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(COCO_KEYS)


def test_predict_writes_the_data_sets_category_ids(string_id_json, tmp_path):
    """predict's json names each class by the training data's own id too (COCO: 51 is "bowl"),
    from the checkpoint and from its ONNX export alike."""
    _, data = string_id_json
    cats = sorted(data["categories"], key=lambda c: c["id"])
    names, ids = [c["name"] for c in cats], [c["id"] for c in cats]
    weights = one_class_checkpoint(tmp_path / "w.pt", names, names.index("bowl"), cat_ids=ids)
    source = data["images"][0]["file_name"]
    assert main(["export", "--weights", str(weights), "--imgsz", "160", "--out", str(tmp_path / "w.onnx")]) == 0
    for w in (weights, tmp_path / "w.onnx"):
        out = tmp_path / f"pred-{w.suffix[1:]}"
        assert main(["predict", "--weights", str(w), "--source", source, "--imgsz", "160", "--out", str(out)]) == 0
        recs = json.loads((out / "predictions.json").read_text())
        assert recs and {(r["category"], r["category_id"], r["name"]) for r in recs} == {
            (names.index("bowl"), 51, "bowl")}
