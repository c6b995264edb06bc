"""open_dataset: every kind of `data` setting resolves to a DetectionDataset."""

import json

import pytest
import yaml

from rtdet.data import DataFormatError, dataset_splits, open_dataset


def test_digits_generated_on_demand(tmp_path, monkeypatch):
    import rtdet.data.digits as digits

    calls = []
    real = digits.generate_digits
    monkeypatch.setattr(digits, "generate_digits", lambda root, **kw: calls.append(root) or real(root, 6, 2, 64))
    ds = open_dataset("digits", "val", root=tmp_path / "d")
    assert len(ds) == 2 and ds.names[3] == "3" and len(calls) == 1
    open_dataset("digits", "train", root=tmp_path / "d")
    assert len(calls) == 1  # reused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folder left behind


def test_yaml_folder_and_splits(digits_yaml):
    assert len(open_dataset(digits_yaml, "train")) == 24
    assert len(open_dataset(digits_yaml.parent, "val")) == 8
    assert dataset_splits(digits_yaml) == ["train", "val"]


def test_coco_json_and_coco_yaml(coco128, tmp_path):
    ann, images = coco128
    assert len(open_dataset(ann, "val", images=images)) == 128
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"path": str(ann.parent.parent), "train":
                                                     "annotations/instances_val2017.json", "train_images": "images"}))
    assert len(open_dataset(tmp_path / "c.yaml", "train")) == 128
    assert dataset_splits(ann) == ["instances_val2017"]


def test_voc_tree(voc_mini):
    assert len(open_dataset(voc_mini, "val")) == 10


def test_unknown_is_a_clear_error(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        open_dataset(tmp_path / "nope.txt", "train")


def test_coco_folder(coco128, tmp_path):
    """A folder holding ``annotations/*.json`` and the images reads as COCO: the json named for the split,
    or the only json for every split."""
    ann, images = coco128
    folder = ann.parent.parent
    assert len(open_dataset(folder, "train")) == len(open_dataset(folder, "val")) == 128
    two = tmp_path / "coco"
    (two / "annotations").mkdir(parents=True)
    data = json.loads(ann.read_text())
    few = {**data, "images": data["images"][:3],
           "annotations": [a for a in data["annotations"] if a["image_id"] in {i["id"] for i in data["images"][:3]}]}
    for name in ("instances_train2017.json", "instances_val2017.json"):
        (two / "annotations" / name).write_text(json.dumps(few if "val" in name else data))
    (two / "images").symlink_to(images)
    assert len(open_dataset(two, "val", images=images)) == 3 and len(open_dataset(two, "train", images=images)) == 128
    assert dataset_splits(two) == ["train", "val"]
    with pytest.raises(DataFormatError, match="no json for the 'test' split"):
        open_dataset(two, "test", images=images)
