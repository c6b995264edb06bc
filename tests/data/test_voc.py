"""VOC reader: devkit trees, 1-based pixels, difficult flags, plain images/annotations pairs."""

import json
import shutil

import numpy as np
import pytest

from rtdet.data.convert import convert
from rtdet.data.report import Report
from rtdet.data.voc import VOC_CLASSES, parse_xml, read_voc, read_xml, voc_splits


def test_reads_voc07_and_voc12_together(voc_mini):
    ds = read_voc(voc_mini, "train")
    assert len(ds) == 10 and ds.names == VOC_CLASSES and ds.report.ok
    years = {ds.file(i).split("/")[-3] for i in range(len(ds))}
    assert years == {"VOC2007", "VOC2012"}
    assert ds.difficult.any()
    assert voc_splits(voc_mini) == ["test", "trainval"]
    assert len(read_voc(voc_mini / "VOC2007", "val")) == 5


def test_one_based_pixels(voc_mini):
    ds = read_voc(voc_mini / "VOC2007", "trainval")
    i = [ds.file(k).endswith("000001.jpg") for k in range(len(ds))].index(True)
    # 000001.xml: dog 48 240 195 371, person 8 12 352 498 (VOC pixel indices from 1, both ends included)
    np.testing.assert_allclose(ds.annotations(i)["boxes"], [[47, 239, 195, 371], [7, 11, 352, 498]])
    assert ds.names[ds.labels[ds.offsets[i]]] == "dog"


def test_voc_to_coco_round_trip(voc_mini, tmp_path):
    paths, splits = convert("voc", "coco", tmp_path / "c", source=voc_mini)
    assert [p.name for p in paths] == ["test.json", "trainval.json"]
    gt = json.loads(paths[1].read_text())
    count = 0
    for xml in sorted(voc_mini.glob("VOC20*/Annotations/*.xml")):
        root = parse_xml(xml)
        img = next(im for im in gt["images"] if im["file_name"].startswith(xml.stem))
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        objs = [o for o in root.children if o.tag == "object"]
        assert len(objs) == len(anns)
        for o, a in zip(objs, anns):
            b = o.find("bndbox")
            x1, y1, x2, y2 = (float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            np.testing.assert_allclose(a["bbox"], [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1], atol=1e-4)
            assert gt["categories"][a["category_id"]]["name"] == o.findtext("name")
            assert a.get("difficult", 0) == int(o.findtext("difficult", "0"))
            count += 1
    assert count > 0


def test_plain_images_annotations_pair(voc_mini, tmp_path):
    shutil.copytree(voc_mini / "VOC2007" / "JPEGImages", tmp_path / "images")
    shutil.copytree(voc_mini / "VOC2007" / "Annotations", tmp_path / "annotations")
    ds = read_voc(tmp_path, "train")
    assert len(ds) == 5 and ds.report.ok


def test_xml_problems_have_lines(tmp_path):
    (tmp_path / "a.xml").write_text("<annotation>\n<filename>a.jpg</filename>\n<object>\n<name>dog</name>\n"
                                    "<bndbox><xmin>5</xmin><ymin>x</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>\n"
                                    "</object>\n</annotation>\n")
    r = Report()
    assert read_xml(tmp_path / "a.xml", r) is None
    msgs = {(p.line, p.message.split(" (")[0]) for p in r.problems}
    assert (1, "missing or invalid <size>") in msgs
    assert any(line == 3 and "numeric" in m for line, m in msgs)
    (tmp_path / "b.xml").write_text("<annotation>\n<size>\n</annotation>")
    r = Report()
    read_xml(tmp_path / "b.xml", r)
    assert r.problems[0].message.startswith("malformed XML at line 3")


def test_missing_split_is_a_clear_error(voc_mini):
    with pytest.raises(ValueError, match="no 'nosuch' list"):
        read_voc(voc_mini, "nosuch")


def test_jpg_in_upper_case_is_found(voc_mini, tmp_path):
    """Issue 11.6: ``000001.JPG`` on disk, ``<filename>000001.jpg</filename>`` in the XML (was: "image file not found")."""
    root = tmp_path / "VOC2007"
    shutil.copytree(voc_mini / "VOC2007", root)
    (root / "JPEGImages" / "000001.jpg").rename(root / "JPEGImages" / "000001.JPG")
    assert "<filename>000001.jpg</filename>" in (root / "Annotations" / "000001.xml").read_text()
    ref = read_voc(voc_mini / "VOC2007", "trainval")
    ds = read_voc(root, "trainval")
    assert ds.report.ok and len(ds) == len(ref) == 5
    i = [ds.file(k).endswith("000001.JPG") for k in range(len(ds))].index(True)
    np.testing.assert_array_equal(ds.annotations(i)["boxes"], ref.annotations(i)["boxes"])
    # no <filename> at all: the stem with any image suffix, in any case
    xml = root / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text().replace("<filename>000001.jpg</filename>", ""))
    assert read_voc(root, "trainval").report.ok


def test_single_pixel_boxes_of_bccd_are_kept_and_warned():
    """BCCD as published has two RBC boxes with xmin == xmax and ymin == ymax (inclusive VOC pixels):
    they stay in the data set as 1 x 1 px boxes and the report names both."""
    from rtdet.deploy.images import shared_data_dir

    root = shared_data_dir() / "bccd"
    if not root.is_dir():
        pytest.skip("needs ../shared/data/bccd (real photos)")
    ds = read_voc(root, "trainval")
    assert ds.report.ok and len(ds) == 292 and ds.report.boxes == 3943  # nothing skipped, nothing dropped
    warned = sorted((w.file.rsplit("/", 1)[-1], w.message) for w in ds.report.warnings)
    assert warned == [("BloodImage_00338.jpg", "box 12 (RBC) is 1 x 1 px: kept; check the label"),
                      ("BloodImage_00343.jpg", "box 3 (RBC) is 1 x 1 px: kept; check the label")]
    i = next(i for i in range(len(ds)) if ds.file(i).endswith("BloodImage_00338.jpg"))
    box = ds.annotations(i)["boxes"][12]
    assert box[2] - box[0] == 1 and box[3] - box[1] == 1
