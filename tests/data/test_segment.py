"""Segmentation readers: CamVid through a data.yaml, ADE20K and VOC layouts, and every fault named and counted."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from rtdet.data.masks import read_mask
from rtdet.data.segment import (ADE20K_CLASSES, VOC_SEG_CLASSES, open_segmentation, segmentation_layout,
                                segmentation_splits)
from rtdet.data.yolo import DataFormatError
from tests.data.conftest import SHARED

CAMVID = SHARED / "camvid"
CAMVID_NAMES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
                "bicyclist"]


def camvid_yaml(folder: Path, root: Path = CAMVID) -> Path:
    """A data.yaml for the shared CamVid folders (value 11 = unlabelled)."""
    path = folder / "camvid.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "train_masks": "masks/train", "val_masks": "masks/val",
                                    "names": CAMVID_NAMES, "ignore_index": 11}))
    return path


@pytest.fixture
def camvid(tmp_path) -> Path:
    if not (CAMVID / "masks" / "val").is_dir():
        pytest.skip(f"shared CamVid data absent: {CAMVID}")
    return camvid_yaml(tmp_path)


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (index 15, person, is (192, 128, 128); 255 is (224, 224, 192))."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_image(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def write_mask(path: Path, values: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), "L")
    if mode == "P":
        im = im.convert("P")
        im.putpalette(voc_palette())
        im.frombytes(values.astype(np.uint8).tobytes())  # convert("P") re-indexes: restore the class indices
    elif mode == "RGB":
        im = Image.fromarray(values.astype(np.uint8), "P")
        im.putpalette(voc_palette())
        im = im.convert("RGB")
    im.save(path)
    return path


def stripes(h: int = 24, w: int = 32, values: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """A mask of vertical stripes of ``values``."""
    return np.array(values)[np.arange(w) * len(values) // w][None].repeat(h, 0)


# -- CamVid (real data) ---------------------------------------------------------------------------
def test_camvid_counts_match_an_independent_count(camvid):
    """Every class's pixels and images, counted again from the PNGs with OpenCV; value 11 is ignored."""
    for split, n in (("train", 184), ("val", 101)):
        ds = open_segmentation(camvid, split)
        assert len(ds) == n and ds.report.images == n and ds.report.ok and ds.report.skipped_images == 0
        pixels, images = np.zeros(12, np.int64), np.zeros(12, np.int64)
        for f in sorted((CAMVID / "masks" / split).glob("*.png")):
            counts = np.bincount(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).ravel(), minlength=12)
            pixels += counts
            images += counts > 0
        assert [ds.report.pixels_per_class[c] for c in range(11)] == pixels[:11].tolist()
        assert [ds.report.per_class[c] for c in range(11)] == images[:11].tolist()
        assert ds.report.ignored_pixels == pixels[11] > 0
        assert ds.report.labelled_pixels + ds.report.ignored_pixels == n * 480 * 360
    assert ds.names == CAMVID_NAMES and segmentation_splits(camvid) == ["train", "val"]


def test_camvid_masks_map_unlabelled_to_the_ignore_index(camvid):
    ds = open_segmentation(camvid, "val")
    raw = cv2.imread(ds.mask_file(3), cv2.IMREAD_UNCHANGED)
    mask = ds.load_mask(3)
    assert mask.dtype == np.uint8 and mask.shape == (360, 480) == raw.shape
    assert (raw == 11).any() and (mask[raw == 11] == 255).all()
    np.testing.assert_array_equal(mask[raw != 11], raw[raw != 11])
    image, target = ds[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 360, 480)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), ds.load_image(3))
    assert target["mask"].dtype == torch.int64 and target["image_id"] == 3 and target["orig_size"] == (360, 480)
    other = open_segmentation(camvid, "val", ignore_index=254).load_mask(3)
    assert (other[raw == 11] == 254).all() and (other[raw != 11] == raw[raw != 11]).all()


# -- ADE20K ---------------------------------------------------------------------------------------
def ade20k(root: Path) -> Path:
    for split, seed in (("training", 0), ("validation", 1)):
        write_image(root / "images" / split / "ADE_a.jpg", seed=seed)
        write_mask(root / "annotations" / split / "ADE_a.png", stripes(values=(0, 1, 150, 255)))
    write_image(root / "images" / "validation" / "ADE_bad.jpg")
    write_mask(root / "annotations" / "validation" / "ADE_bad.png", stripes(values=(3, 151, 200)))
    return root


def test_ade20k_reduces_the_zero_label(tmp_path):
    root = ade20k(tmp_path / "ADEChallengeData2016")
    assert segmentation_layout(tmp_path)[0] == "ade20k" and segmentation_splits(tmp_path) == ["train", "val"]
    train = open_segmentation(tmp_path, "train")
    assert len(ADE20K_CLASSES) == 150 and train.names == ADE20K_CLASSES and len(train) == 1
    # stored 0 ("other") -> ignored, k -> k-1, 255 stays ignored (mmsegmentation's reduce_zero_label)
    np.testing.assert_array_equal(np.unique(train.load_mask(0)[0]), [0, 149, 255])
    np.testing.assert_array_equal(train.load_mask(0), np.array([255, 0, 149, 255])[np.arange(32) * 4 // 32][None]
                                  .repeat(24, 0))
    assert train.report.per_class == {0: 1, 149: 1}
    val = open_segmentation(root, "val")
    assert len(val) == 1 and val.report.skipped_images == 1
    (problem,) = val.report.problems
    assert problem.file.endswith("ADE_bad.png")
    assert "neither a class (1..150)" in problem.message and "151 (264 px), 200 (240 px)" in problem.message


# -- Pascal VOC -----------------------------------------------------------------------------------
def voc_seg(year: Path) -> Path:
    person_and_boundary = stripes(values=(0, 15, 255))
    for k, stem in enumerate(("2007_000032", "2007_000033", "2007_000039")):
        write_image(year / "JPEGImages" / f"{stem}.jpg", seed=k)
    write_mask(year / "SegmentationClass" / "2007_000032.png", person_and_boundary, "P")
    write_mask(year / "SegmentationClass" / "2007_000033.png", person_and_boundary, "RGB")  # colours, not indices
    lists = year / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000032\n2007_000033\n2007_000039\n")  # 039 has no mask
    (lists / "val.txt").write_text("2007_000032\n")
    return year


def test_voc_palette_indices_are_classes(tmp_path):
    voc_seg(tmp_path / "VOCdevkit" / "VOC2012")
    with Image.open(tmp_path / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000032.png") as im:
        assert im.mode == "P" and im.convert("RGB").getpixel((15, 0)) == (192, 128, 128)  # person's colour
    assert segmentation_layout(tmp_path / "VOCdevkit")[0] == "voc"
    assert segmentation_splits(tmp_path / "VOCdevkit") == ["train", "val"]
    ds = open_segmentation(tmp_path / "VOCdevkit", "train")
    assert ds.names == VOC_SEG_CLASSES and len(ds.names) == 21 and ds.names[15] == "person"
    assert len(ds) == 1 and ds.report.skipped_images == 2
    np.testing.assert_array_equal(ds.load_mask(0), stripes(values=(0, 15, 255)))
    assert ds.report.per_class == {0: 1, 15: 1} and ds.report.ignored_pixels == 24 * 10
    problems = {Path(p.file).name: p.message for p in ds.report.problems}
    assert "colour (RGB) mask" in problems["2007_000033.png"]
    assert "mask file not found" in problems["2007_000039.png"]


# -- faults in a data.yaml layout -----------------------------------------------------------------
def broken_yaml(root: Path) -> Path:
    img, msk = root / "images", root / "masks"
    for stem in ("good", "no_mask", "small", "values", "colour", "grey_rgb", "bad_mask"):
        write_image(img / f"{stem}.png", seed=len(stem))
    (img / "cut.png").write_bytes((img / "good.png").read_bytes()[:200])
    good = stripes(values=(0, 1, 2, 3))
    for stem in ("good", "cut", "orphan"):
        write_mask(msk / f"{stem}.png", good)
    write_mask(msk / "small.png", good[:20])
    write_mask(msk / "values.png", stripes(values=(0, 7, 3, 9)))
    write_mask(msk / "colour.png", good, "RGB")
    Image.fromarray(np.repeat(good[..., None], 3, 2).astype(np.uint8), "RGB").save(msk / "grey_rgb.png")
    (msk / "bad_mask.png").write_bytes(b"not a png")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images", "train_masks": "masks",
                                                    "names": ["a", "b", "c"], "ignore_index": [3, 255]}))
    return root / "data.yaml"


FAULTS = [  # (file name, words in the message)
    ("no_mask.png", "image without a mask"),
    ("orphan.png", "mask without an image"),
    ("cut.png", "image data does not decode"),
    ("bad_mask.png", "mask does not decode"),
    ("small.png", "mask is 32x20, its image small.png is 32x24"),
    ("values.png", "neither a class (0..2) nor unlabelled (3, 255): 7 (192 px), 9 (192 px)"),
    ("colour.png", "colour (RGB) mask"),
]


def test_every_fault_is_named_and_counted(tmp_path):
    ds = open_segmentation(broken_yaml(tmp_path), "train")
    rep = ds.report
    for name, words in FAULTS:
        hits = [p for p in rep.problems if Path(p.file).name == name and words in p.message]
        assert hits, f"not reported: {name} {words!r}\n" + "\n".join(map(str, rep.problems))
    assert len(rep.problems) == len(FAULTS)
    assert rep.skipped_images == len(FAULTS) - 1 and rep.masks_without_image == 1  # the orphan mask skips no image
    assert sorted(Path(ds.file(i)).name for i in range(len(ds))) == ["good.png", "grey_rgb.png"]
    assert rep.images == 2 and rep.per_class == {0: 2, 1: 2, 2: 2} and rep.ignored_pixels == 2 * 24 * 8
    assert "skipped 6 bad images (7 problems" in rep.summary()
    text = rep.format(ds.names)
    assert "masks without an image: 1" in text and "problems: 7" in text and "values.png" in text


def test_grey_stored_as_rgb_reads_as_indices(tmp_path):
    ds = open_segmentation(broken_yaml(tmp_path), "train")
    i = [Path(ds.file(k)).name for k in range(len(ds))].index("grey_rgb.png")
    np.testing.assert_array_equal(ds.load_mask(i), np.array([0, 1, 2, 255])[np.arange(32) * 4 // 32][None]
                                  .repeat(24, 0))
    assert read_mask(Path(ds.mask_file(i))).ndim == 2


def test_layout_errors_name_the_file(tmp_path):
    with pytest.raises(DataFormatError, match="not a segmentation data set"):
        segmentation_layout(tmp_path)
    (tmp_path / "det.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images", "names": ["a"]}))
    with pytest.raises(DataFormatError, match="det.yaml: not a segmentation data set"):
        open_segmentation(tmp_path / "det.yaml", "train")
    (tmp_path / "nonames.yaml").write_text(yaml.safe_dump({"train": "i", "train_masks": "m"}))
    with pytest.raises(DataFormatError, match="nonames.yaml: a segmentation data.yaml needs 'names'"):
        open_segmentation(tmp_path / "nonames.yaml", "train")
    (tmp_path / "clash.yaml").write_text(yaml.safe_dump({"train": "i", "train_masks": "m", "names": ["a", "b"],
                                                         "ignore_index": 1}))
    with pytest.raises(DataFormatError, match=r"clash.yaml: unlabelled value\(s\) \[1\] are also class values"):
        open_segmentation(tmp_path / "clash.yaml", "train")
    with pytest.raises(DataFormatError, match="split 'val' needs 'val' .* 'val_masks'.*has: train"):
        open_segmentation(tmp_path / "clash.yaml", "val")
    (tmp_path / "nofolder.yaml").write_text(yaml.safe_dump({"train": "i", "train_masks": "m", "names": ["a"]}))
    with pytest.raises(DataFormatError, match=r"nofolder.yaml \[train\]: folder .*/i not found"):
        open_segmentation(tmp_path / "nofolder.yaml", "train")

