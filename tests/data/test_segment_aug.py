"""Segmentation augmentation: the mask moves with the image (the detection box transform as the judge),
pixels from outside the image are ignored, HSV touches the image only, and the loader's contract."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml

from rtdet.config import DataConfig
from rtdet.data.segment import open_segmentation
from rtdet.data.segment_aug import (SegmentAugment, SegmentationPipeline, build_segmentation_loader,
                                    collate_segmentation, warp_mask)
from rtdet.data.transforms import PAD_VALUE, transform_boxes
from tests.data.test_segment import stripes, write_image, write_mask

IGNORE = 255
BOX = np.array([[50.0, 30.0, 130.0, 90.0]])  # xyxy, continuous pixels: columns 50..129, rows 30..89
RED = (255, 0, 0)
NO_HSV = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}
KERNEL = np.ones((3, 3), np.uint8)


def box_sample(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a red rectangle, and a class-0 mask with the rectangle as class 1."""
    image = np.random.default_rng(0).integers(0, 100, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = BOX[0].astype(int)
    image[y1:y2, x1:x2] = RED
    mask[y1:y2, x1:x2] = 1
    return image, mask


def centres(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Continuous coordinates of every pixel centre: x [h, w], y [h, w]."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return xs + 0.5, ys + 0.5


def inside_rect(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """bool [h, w]: pixel centres inside the xyxy ``box``."""
    x, y = centres(shape)
    return (x >= box[0]) & (x < box[2]) & (y >= box[1]) & (y < box[3])


def inside_warped(shape: tuple[int, int], box: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """bool [h, w]: output pixel centres whose source point (through the inverse matrix) lies in ``box``."""
    x, y = centres(shape)
    inv = np.linalg.inv(matrix)
    sx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    sy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
    return (sx >= box[0]) & (sx < box[2]) & (sy >= box[1]) & (sy < box[3])


def assert_up_to_one_pixel(got: np.ndarray, expected: np.ndarray) -> None:
    """``got`` equals ``expected`` except within one pixel of its border."""
    core = cv2.erode(expected.astype(np.uint8), KERNEL).astype(bool)
    hull = cv2.dilate(expected.astype(np.uint8), KERNEL).astype(bool)
    assert (got[core]).all(), f"{(~got[core]).sum()} pixels missing inside"
    assert not (got & ~hull).any(), f"{(got & ~hull).sum()} pixels outside"


def test_mask_of_a_box_follows_the_box_transform():
    """Flip, scale, crop and translation: the warped class-1 mask is the box moved by the same matrix
    (``transform_boxes``, the detection box transform), up to one pixel; the image under it is red."""
    aug = SegmentAugment(DataConfig(fliplr=0.5, degrees=0.0, shear=0.0, translate=0.2, scale=0.5, **NO_HSV), 96)
    image, mask = box_sample()
    flips = 0
    for seed in range(12):
        out, out_mask, m = aug(image, mask, np.random.default_rng(seed))
        assert out.shape == (96, 96, 3) and out_mask.shape == (96, 96) and out_mask.dtype == np.uint8
        flips += m[0, 0] < 0
        box = transform_boxes(BOX, m)[0]
        assert_up_to_one_pixel(out_mask == 1, inside_rect((96, 96), box))
        core = cv2.erode((out_mask == 1).astype(np.uint8), KERNEL, borderType=cv2.BORDER_CONSTANT,
                         borderValue=0).astype(bool)  # the box may end just outside the output
        assert core.any() and (np.abs(out[core].astype(int) - RED) <= 1).all()
    assert 0 < flips < 12


def test_mask_follows_rotation_and_shear():
    """With rotation and shear the mask is the box's parallelogram (one pixel tolerance), and its bounding
    box is the box transform's hull, as detection computes it."""
    aug = SegmentAugment(DataConfig(fliplr=0.5, degrees=30.0, shear=10.0, translate=0.1, scale=0.3, **NO_HSV),
                         (80, 112))
    image, mask = box_sample()
    for seed in range(8):
        out, out_mask, m = aug(image, mask, np.random.default_rng(seed))
        assert out.shape == (80, 112, 3)
        assert_up_to_one_pixel(out_mask == 1, inside_warped((80, 112), BOX[0], m))
        ys, xs = np.nonzero(out_mask == 1)
        if len(xs) and 1 < xs.min() and xs.max() < 110 and 1 < ys.min() and ys.max() < 78:  # not cut by the border
            hull = transform_boxes(BOX, m)[0]
            np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], hull, atol=1.5)


def test_pixels_from_outside_the_image_are_ignored():
    """Shrunk and moved (scale 0.3..0.7 of the letterbox), the new border pixels are the ignore index in the
    mask and grey in the image; every pixel from inside the image keeps a class."""
    aug = SegmentAugment(DataConfig(fliplr=0.5, degrees=10.0, translate=0.2, scale=0.0, **NO_HSV), 128)
    image, mask = box_sample()
    seen = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        m = aug.matrix(image.shape[:2], rng)
        m = np.diag([0.5, 0.5, 1.0]) @ m  # smaller than the output: there is a border to fill
        out_mask = warp_mask(mask, m, (128, 128), IGNORE)
        inside = inside_warped((128, 128), [0, 0, 160, 120], m)
        far_out = ~cv2.dilate(inside.astype(np.uint8), KERNEL).astype(bool)
        core = cv2.erode(inside.astype(np.uint8), KERNEL).astype(bool)
        assert (out_mask[far_out] == IGNORE).all() and (out_mask[core] != IGNORE).all()
        seen += far_out.sum()
    assert seen > 1000
    for seed in range(3):  # 160x120 into 256x128: at most 218 px wide, so there are side bands to fill
        out, out_mask, m = SegmentAugment(DataConfig(scale=0.2, translate=0.0, **NO_HSV), (128, 256))(
            image, mask, np.random.default_rng(seed))
        border = out_mask == IGNORE
        assert border[:, :19].all() and border[:, -19:].all()
        np.testing.assert_array_equal(border, ~inside_warped((128, 256), [0, 0, 160, 120], m))
        assert (out[cv2.erode(border.astype(np.uint8), KERNEL).astype(bool)] == PAD_VALUE).all()


def test_hsv_changes_the_image_only():
    still = {"fliplr": 0.0, "degrees": 0.0, "translate": 0.0, "scale": 0.0, "shear": 0.0}
    image, mask = box_sample()
    plain = SegmentAugment(DataConfig(**still, **NO_HSV), 160)(image, mask, np.random.default_rng(3))
    jitter = SegmentAugment(DataConfig(**still, hsv_h=0.1, hsv_s=0.7, hsv_v=0.4), 160)(image, mask,
                                                                                      np.random.default_rng(3))
    np.testing.assert_array_equal(plain[1], jitter[1])
    np.testing.assert_array_equal(plain[2], jitter[2])
    assert (plain[0] != jitter[0]).mean() > 0.5


def test_evaluation_letterboxes_image_and_mask_alike():
    image, mask = box_sample()  # 160x120 -> 210x210: scale 1.3125, 158 rows from row 26
    out, out_mask, m = SegmentAugment(DataConfig(), 210, train=False)(image, mask)
    np.testing.assert_allclose(m, [[1.3125, 0, 0], [0, 1.3125, 26], [0, 0, 1]])
    assert (out[:26] == PAD_VALUE).all() and (out[184:] == PAD_VALUE).all() and not (out[26:184] == PAD_VALUE).all()
    # labelled where a pixel's centre comes from the image: rows 26..182 (157.5 image rows; the half row is ignored)
    assert (out_mask[26:183] != IGNORE).all() and (out_mask[183:] == IGNORE).all()
    np.testing.assert_array_equal(out_mask == 1, inside_rect((210, 210), transform_boxes(BOX, m)[0]))
    wide = SegmentAugment(DataConfig(), 200, train=False, ignore_index=300)
    assert wide(image, mask.astype(np.uint16))[1].dtype == np.uint16


@pytest.fixture
def tiny(tmp_path):
    for k in range(5):
        write_image(tmp_path / "images" / f"{k}.png", 48, 64, seed=k)
        write_mask(tmp_path / "masks" / f"{k}.png", stripes(48, 64, (0, 1, 2, 9)))
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images", "train_masks": "masks",
                                                        "names": ["a", "b", "c"], "ignore_index": 9}))
    return open_segmentation(tmp_path / "data.yaml", "train")


def test_pipeline_items_and_loader(tiny):
    cfg = DataConfig(imgsz=32, batch=2, workers=0)
    pipe = SegmentationPipeline(tiny, SegmentAugment(cfg, train=True, ignore_index=tiny.ignore_index), seed=1)
    image, target = pipe[2]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert target["mask"].dtype == torch.int64 and target["mask"].shape == (32, 32)
    assert set(target["mask"].unique().tolist()) <= {0, 1, 2, 255}
    assert target["image_id"] == 2 and target["orig_size"] == (48, 64) and "letterbox" not in target
    assert torch.equal(pipe[2][1]["mask"], target["mask"])  # a function of (seed, epoch, index)
    pipe.set_epoch(1)
    assert any(not torch.equal(pipe[k][1]["mask"], SegmentationPipeline(tiny, pipe.augment, 1)[k][1]["mask"])
               for k in range(5))
    loader = build_segmentation_loader(tiny, cfg, train=False)
    images, targets = next(iter(loader))
    assert images.shape == (2, 3, 32, 32) and [t["image_id"] for t in targets] == [0, 1]
    assert targets[0]["letterbox"] == (0.5, 0.0, 4.0) and (targets[0]["mask"][:4] == 255).all()
    train = build_segmentation_loader(tiny, cfg, train=True, seed=2)
    assert sum(len(t) for _, t in train) == 4  # the fifth sample is in a dropped partial batch
    with pytest.raises(ValueError, match="different sizes"):
        collate_segmentation([tiny[0], (torch.zeros(3, 8, 8, dtype=torch.uint8), {})])
