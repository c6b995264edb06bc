"""`rtdet data convert` through the CLI: YOLO -> COCO and VOC -> YOLO."""

import json

from rtdet.cli import main
from rtdet.data.yolo import read_yolo


def test_yolo_to_coco_cli(digits_yaml, tmp_path, capsys):
    assert main(["data", "convert", "--from", "yolo", "--to", "coco", str(digits_yaml), "--out", str(tmp_path)]) == 0
    gt = json.loads((tmp_path / "annotations" / "val.json").read_text())
    assert len(gt["images"]) == 8 and [c["name"] for c in gt["categories"]] == [str(d) for d in range(10)]
    assert (tmp_path / "images" / gt["images"][0]["file_name"]).exists()
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
