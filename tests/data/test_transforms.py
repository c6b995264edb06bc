"""Geometric transforms against direct computation on known boxes; image and boxes stay aligned."""

import math

import numpy as np
import pytest

from rtdet.data.transforms import (Sample, apply_matrix, box_candidates, flip_lr, hsv_jitter, letterbox,
                                   random_affine_matrix, random_erasing, scale_translate, transform_boxes,
                                   warp_boxes, warp_image)


def _sample(h=60, w=80, boxes=((10, 20, 30, 50), (50, 5, 75, 25))):
    """An image whose boxes are white rectangles on black, so their pixels can be found after a transform."""
    img = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = 255
    b = np.array(boxes, np.float64)
    n = len(b)
    return Sample(img, b, np.arange(n), np.zeros(n, bool), np.zeros(n, bool))


def _mask_box(img, box):
    """Bounding box of the bright pixels inside (a 2 px margin around) ``box``."""
    x1, y1, x2, y2 = (int(v) for v in np.round(box))
    m = img[max(y1 - 2, 0):y2 + 2, max(x1 - 2, 0):x2 + 2].mean(2) > 127
    ys, xs = np.nonzero(m)
    return np.array([xs.min() + max(x1 - 2, 0), ys.min() + max(y1 - 2, 0),
                     xs.max() + 1 + max(x1 - 2, 0), ys.max() + 1 + max(y1 - 2, 0)])


def test_letterbox_maps_points_exactly():
    s = _sample(h=60, w=80)
    out, (scale, px, py) = letterbox(s.image, (128, 128))
    assert out.shape == (128, 128, 3) and (scale, px, py) == (1.6, 0, 16)
    for box in s.boxes:
        np.testing.assert_allclose(_mask_box(out, box * scale + [px, py, px, py]), box * scale + [px, py, px, py],
                                   atol=1)
    assert (out[:16] == 114).all() and (out[-16:] == 114).all()
    out, (scale, px, py) = letterbox(np.zeros((50, 200, 3), np.uint8), (64, 64))
    assert scale == 0.32 and (px, py) == (0, 24) and out.shape == (64, 64, 3)


def test_flip_lr():
    s = flip_lr(_sample())
    np.testing.assert_allclose(s.boxes, [[50, 20, 70, 50], [5, 5, 30, 25]])
    for box in s.boxes:
        np.testing.assert_allclose(_mask_box(s.image, box), box)
    np.testing.assert_allclose(s.matrix @ [10, 20, 1], [70, 20, 1])


def test_transform_boxes_direct():
    boxes = np.array([[10.0, 20, 30, 50]])
    np.testing.assert_allclose(transform_boxes(boxes, scale_translate(2, 5, -3)), [[25, 37, 65, 97]])
    rot90 = np.array([[0, -1, 100], [1, 0, 0], [0, 0, 1]], float)  # (x, y) -> (100 - y, x)
    np.testing.assert_allclose(transform_boxes(boxes, rot90), [[50, 10, 80, 30]])
    a = math.radians(45)  # a square rotated by 45 degrees: its hull grows by sqrt(2)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    out = transform_boxes(np.array([[-1.0, -1, 1, 1]]), rot)
    np.testing.assert_allclose(out, [[-math.sqrt(2), -math.sqrt(2), math.sqrt(2), math.sqrt(2)]], atol=1e-12)
    shear = np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]], float)  # x += y / 2
    np.testing.assert_allclose(transform_boxes(boxes, shear), [[20, 20, 55, 50]])


def test_warp_boxes_clip_and_drop():
    boxes = np.array([[10.0, 10, 30, 30], [-50, 0, -10, 20], [0, 0, 200, 10], [90, 90, 99.5, 99.5]])
    out, keep = warp_boxes(boxes, np.eye(3), (100, 100))
    assert keep.tolist() == [True, False, True, True]
    np.testing.assert_allclose(out[2], [0, 0, 100, 10])
    assert not box_candidates(np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 0.5]]), 1.0)[0]


@pytest.mark.parametrize("seed", range(4))
def test_random_affine_moves_image_and_boxes_alike(seed):
    s = _sample(h=120, w=160, boxes=((30, 40, 70, 90), (100, 20, 140, 60)))
    rng = np.random.default_rng(seed)
    m = random_affine_matrix(rng, (120, 160), (128, 128), degrees=0, translate=0.1, scale=0.4, shear=0)
    out = apply_matrix(s, m, (128, 128))
    assert out.image.shape == (128, 128, 3)
    for box in out.boxes:  # no rotation: the white rectangles stay axis-aligned, so boxes match them
        np.testing.assert_allclose(_mask_box(out.image, box), box, atol=1.0)
    np.testing.assert_allclose(out.matrix, m)


def test_rotation_keeps_centres():
    s = _sample(h=100, w=100, boxes=((40, 40, 60, 60),))
    m = random_affine_matrix(np.random.default_rng(0), (100, 100), (100, 100), degrees=30)
    out = apply_matrix(s, m, (100, 100))
    np.testing.assert_allclose((out.boxes[0, :2] + out.boxes[0, 2:]) / 2, [50, 50], atol=1e-9)
    mb = _mask_box(out.image, out.boxes[0])
    assert (mb[:2] >= out.boxes[0, :2] - 1).all() and (mb[2:] <= out.boxes[0, 2:] + 1).all()


def test_warp_identity_is_free():
    img = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    assert warp_image(img, np.eye(3), (4, 5)) is img


def test_hsv_and_erasing_keep_shape():
    img = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    out = hsv_jitter(img, rng, 0.015, 0.7, 0.4)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    assert hsv_jitter(img, rng, 0, 0, 0) is img
    er = random_erasing(img, rng)
    assert er.shape == img.shape and (er != img).any(axis=2).mean() > 0.01


def test_transform_boxes_matches_a_looped_reference():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = np.eye(3)
        m[:2] = rng.normal(0, 1, (2, 3))
        xy = rng.uniform(-10, 10, (5, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(0, 5, (5, 2))], 1)
        ref = []
        for x1, y1, x2, y2 in boxes:
            pts = [m @ [x, y, 1] for x in (x1, x2) for y in (y1, y2)]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ref.append([min(xs), min(ys), max(xs), max(ys)])
        np.testing.assert_allclose(transform_boxes(boxes, m), ref, atol=1e-12)
