"""A deliberately broken data set in each format: every fault is reported with its file (and line)."""

import json

import cv2
import numpy as np
import pytest
import yaml

from rtdet.cli import main
from rtdet.data import open_dataset
from rtdet.data.check import check_data, format_reports
from tests.data.conftest import VOC_MINI


def _jpg(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


def broken_yolo(root):
    img, lab = root / "images", root / "labels"
    for k in range(9):
        _jpg(img / f"{k}.jpg", k)
    lab.mkdir()
    (img / "unreadable.jpg").write_bytes(b"this is not a jpeg")
    data = (img / "0.jpg").read_bytes()
    (img / "truncated.jpg").write_bytes(data[: len(data) * 2 // 3])
    labels = {
        "0": "0 0.5 0.5 0.2 0.2\n",  # good
        "1": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n",  # wrong number of fields, line 2
        "2": "0 0.5 zero 0.2 0.2\n",  # not a number
        "3": "0 0.5 0.5 0.2 0.2\n\n7 0.5 0.5 0.2 0.2\n",  # class out of range, line 3
        "4": "1 1.2 0.5 0.2 0.2\n",  # coordinate outside [0, 1]
        "5": "0 0.5 0.5 0.0 0.2\n",  # zero width
        "6": "1 0.5 0.5 0.2 -0.1\n",  # negative height
        "7": "",  # background image, fine
    }
    for stem, text in labels.items():
        (lab / f"{stem}.txt").write_text(text)
    files = [f"./images/{k}.jpg" for k in range(9)] + ["./images/unreadable.jpg", "./images/truncated.jpg",
                                                       "./images/missing.jpg"]
    (root / "train.txt").write_text("\n".join(files) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "val": "train.txt", "names": ["a", "b"]}))
    return root / "data.yaml"


YOLO_FAULTS = [  # (file suffix, line, words in the message)
    ("unreadable.jpg", None, "unreadable"),
    ("truncated.jpg", None, "truncated"),
    ("missing.jpg", None, "not found"),
    ("labels/1.txt", 2, "expected 5 fields"),
    ("labels/2.txt", 1, "non-numeric"),
    ("labels/3.txt", 3, "out of range"),
    ("labels/4.txt", 1, "outside [0, 1]"),
    ("labels/5.txt", 1, "zero or negative width/height"),
    ("labels/6.txt", 1, "zero or negative width/height"),
]


def _assert_reported(problems, faults):
    for suffix, line, words in faults:
        hits = [p for p in problems if p.file.endswith(suffix) and words in p.message and p.line == line]
        assert hits, f"fault not reported: {suffix}:{line} {words!r}\n" + "\n".join(map(str, problems))


def test_yolo_faults_are_reported(tmp_path):
    (ds, _) = check_data(broken_yolo(tmp_path))
    _assert_reported(ds.report.problems, YOLO_FAULTS)
    assert len(ds.report.problems) == len(YOLO_FAULTS)


def test_training_skips_and_counts_bad_samples(tmp_path):
    ds = open_dataset(broken_yolo(tmp_path), "train")
    assert len(ds) == 3 and ds.report.skipped_images == 9  # 0.jpg, 7.jpg and 8.jpg (no label file) are fine
    assert "skipped 9 bad images" in ds.report.summary()
    assert all(ds[i][0].shape == (48, 64, 3) for i in range(len(ds)))


def broken_coco(root):
    for k in range(5):
        _jpg(root / "images" / f"{k}.jpg", k)
    images = [{"id": k, "file_name": f"{k}.jpg", "height": 48, "width": 64} for k in range(5)]
    images += [{"id": 2, "file_name": "2.jpg", "height": 48, "width": 64},  # duplicate image id
               {"id": 9, "file_name": "gone.jpg", "height": 48, "width": 64}]  # missing image file
    box = [1, 2, 10, 10]
    anns = [{"id": 1, "image_id": 0, "category_id": 3, "bbox": box, "iscrowd": 0, "area": 100},
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": box, "iscrowd": 0, "area": 100},  # duplicate ann id
            {"id": 2, "image_id": 77, "category_id": 3, "bbox": box, "iscrowd": 0, "area": 100},  # unknown image
            {"id": 3, "image_id": 3, "category_id": 5, "bbox": box, "iscrowd": 0, "area": 100},  # unknown category
            {"id": 4, "image_id": 4, "category_id": 3, "bbox": [1, 2, 0, 5], "iscrowd": 0, "area": 0}]  # zero w
    data = {"images": images, "annotations": anns, "categories": [{"id": 3, "name": "c"}, {"id": 4, "name": "d"}]}
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json"


def test_coco_faults_are_reported(tmp_path):
    (ds,) = check_data(broken_coco(tmp_path), tmp_path / "images")
    _assert_reported(ds.report.problems, [
        ("ann.json", None, "duplicate image id 2"),
        ("ann.json", None, "duplicate annotation id 1"),
        ("ann.json", None, "image id 77, which is not in 'images'"),
        ("ann.json", None, "unknown category id 5"),
        ("ann.json", None, "zero or negative width/height"),
        ("gone.jpg", None, "not found"),
    ])
    # kept: 0 and 2; 1, 3, 4: a bad annotation; the second 2: a duplicate id; 9: file missing
    assert ds.source_ids == [0, 2] and ds.image_ids.tolist() == [0, 1]


def broken_voc(root):
    for k in range(3):
        _jpg(root / "images" / f"{k}.jpg", k)
    (root / "annotations").mkdir()
    size = "<size><width>64</width><height>48</height><depth>3</depth></size>"
    obj = "<object>\n<name>{}</name><difficult>0</difficult>\n<bndbox>{}</bndbox>\n</object>\n"
    good = "<xmin>2</xmin><ymin>3</ymin><xmax>20</xmax><ymax>30</ymax>"
    (root / "annotations" / "0.xml").write_text(f"<annotation>\n{size}\n{obj.format('cat', good)}</annotation>\n")
    (root / "annotations" / "1.xml").write_text(f"<annotation>\n{obj.format('cat', good)}</annotation>\n")
    bad_box = "<xmin>20</xmin><ymin>3</ymin><xmax>2</xmax><ymax>30</ymax>"
    (root / "annotations" / "2.xml").write_text(
        f"<annotation>\n{size}\n{obj.format('cat', good)}{obj.format('dog', bad_box)}</annotation>\n")
    return root


def test_voc_faults_are_reported(tmp_path):
    (ds,) = check_data(broken_voc(tmp_path))
    _assert_reported(ds.report.problems, [
        ("1.xml", 1, "missing or invalid <size>"),
        ("2.xml", 7, "zero or negative size box"),
    ])
    assert len(ds) == 1


def test_cli_exit_codes(tmp_path, capsys, digits_yaml):
    assert main(["data", "check", str(broken_yolo(tmp_path / "y"))]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 18 problem(s)" in out and "labels/3.txt:3: class index 7 out of range 0..1" in out
    assert main(["data", "check", str(digits_yaml)]) == 0
    assert "OK: no problems found" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nothing.yaml")]) == 2


def test_report_text_lists_classes(digits_yaml):
    text = format_reports(check_data(digits_yaml, decode=False))
    assert "classes: 10" in text and "boxes per class" in text and "[" in text


def test_extra_bytes_are_kept_and_cut_files_reported(tmp_path, capsys):
    """Issue 11.3 through `rtdet data check` and training's reader: a photo with 2 KB after its end is
    kept (same pixels); one cut in half is reported by name and left out; --no-decode rejects neither."""
    img = tmp_path / "images"
    names = []
    for suffix in (".jpg", ".png"):
        good = _jpg(img / f"good{suffix}", 5)
        data = good.read_bytes()
        (img / f"extra{suffix}").write_bytes(data + np.random.default_rng(2).integers(0, 256, 2048, np.uint8).tobytes())
        (img / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        names += [f"good{suffix}", f"extra{suffix}", f"cut{suffix}"]
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images", "names": ["a"]}))
    ds = open_dataset(tmp_path / "data.yaml", "train")
    kept = sorted(ds.file(i).split("/")[-1] for i in range(len(ds)))
    assert kept == ["extra.jpg", "extra.png", "good.jpg", "good.png"]
    assert ds.report.skipped_images == 2
    pixels = {ds.file(i).split("/")[-1]: ds[i][0] for i in range(len(ds))}
    assert all(np.array_equal(pixels[f"extra{s}"], pixels[f"good{s}"]) for s in (".jpg", ".png"))
    assert main(["data", "check", str(tmp_path / "data.yaml"), "--split", "train"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 problem(s)" in out and "extra." not in out
    for suffix in (".jpg", ".png"):
        assert any(f"cut{suffix}: image data does not decode" in line and "truncated" in line
                   for line in out.splitlines()), out
    assert main(["data", "check", str(tmp_path / "data.yaml"), "--split", "train", "--no-decode"]) == 0
    assert "OK: no problems found" in capsys.readouterr().out


def test_data_check_reads_classification_folders(tmp_path, capsys):
    """Class folders are checked as classification data: a cut image named, counted, exit code 1."""
    import cv2
    import numpy as np

    from rtdet.cli import main

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / split / name / "a.JPG"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    good = (tmp_path / "train" / "cat" / "a.JPG").read_bytes()
    (tmp_path / "train" / "dog" / "cut.jpg").write_bytes(good[: len(good) // 2])
    assert main(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "classes: 2 (cat, dog)" in out and "cut.jpg" in out and "FAILED: 1 problem(s) found" in out
    (tmp_path / "train" / "dog" / "cut.jpg").unlink()
    assert main(["data", "check", str(tmp_path), "--task", "classify"]) == 0


def test_data_check_segmentation_camvid(tmp_path, capsys):
    """CamVid through a data.yaml is detected as segmentation: counts per split, exit 0; a copy of four
    val pairs with one mask holding values that are no class fails with that file named, exit 1."""
    import shutil

    from rtdet.data.check import is_segmentation
    from tests.data.test_segment import CAMVID, camvid_yaml

    if not (CAMVID / "masks" / "val").is_dir():
        pytest.skip(f"shared CamVid data absent: {CAMVID}")
    spec = camvid_yaml(tmp_path)
    assert is_segmentation(spec) and not is_segmentation(VOC_MINI if VOC_MINI.is_dir() else tmp_path)
    assert main(["data", "check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "classes: 11 (sky, building, pole, road," in out and "OK: no problems found" in out
    assert "[" + str(spec) + " [train]]\n  images: 184  labelled pixels: 30526392  ignored pixels: 1268808" in out
    assert "images: 101  labelled pixels: 17155529  ignored pixels: 297271" in out
    assert "      10 bicyclist                 98        98040   0.32%" in out  # train: images, pixels, share

    copy = tmp_path / "copy"
    stems = sorted(p.stem for p in (CAMVID / "masks" / "val").glob("*.png"))[:4]
    for kind in ("images", "masks"):
        (copy / kind / "val").mkdir(parents=True)
        for stem in stems:
            shutil.copy(CAMVID / kind / "val" / f"{stem}.png", copy / kind / "val")
    bad = copy / "masks" / "val" / f"{stems[2]}.png"
    mask = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    mask[:10, :20] = 40
    cv2.imwrite(str(bad), mask)
    assert main(["data", "check", str(camvid_yaml(tmp_path / "copy", copy)), "--split", "val"]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: mask values that are neither a class (0..10) nor unlabelled (11): 40 (200 px)" in out
    assert "images: 3 " in out and "skipped images: 1" in out and "FAILED: 1 problem(s) found" in out


def test_full_voc_tree_stays_detection(tmp_path, capsys):
    """A VOC tree with Annotations/ and SegmentationClass/ is checked as detection unless --task segment."""
    from rtdet.data.check import is_segmentation
    from tests.data.test_segment import voc_seg

    year = voc_seg(tmp_path / "VOC2012")
    (year / "Annotations").mkdir()
    assert not is_segmentation(year)
    assert main(["data", "check", str(year), "--task", "segment", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "classes: 21 (background, aeroplane," in out and "images: 1 " in out and "OK: no problems found" in out
    (year / "Annotations").rmdir()
    assert is_segmentation(year)
