"""Mosaic, mixup, cutmix: boxes follow their image content."""

import numpy as np

from rtdet.data.mosaic import cutmix, mixup, mosaic4
from rtdet.data.transforms import Sample


def _solid(value, h=40, w=60, box=(10, 10, 30, 25)):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = value
    return Sample(img, np.array([box], np.float64), np.array([value]), np.zeros(1, bool), np.zeros(1, bool))


def test_mosaic_boxes_cover_their_pixels():
    samples = [_solid(v) for v in (50, 100, 150, 200)]
    out = mosaic4(samples, 64, np.random.default_rng(0))
    assert out.image.shape == (128, 128, 3)
    for (x1, y1, x2, y2), v in zip(out.boxes.round().astype(int), out.labels):
        patch = out.image[y1:y2, x1:x2, 0]
        assert patch.size and (patch == v).all()
        assert (out.image[..., 0] == v).sum() == patch.size  # no pixel of that colour outside its box


def test_mixup_keeps_both_box_sets():
    a, b = _solid(200), _solid(100, box=(40, 5, 55, 35))
    out = mixup(a, b, np.random.default_rng(0))
    assert out.labels.tolist() == [200, 100] and out.image.shape == a.image.shape
    assert 80 < out.image[15, 20, 0] < 130


def test_cutmix_clips_pasted_boxes():
    a = _solid(200, box=(0, 0, 60, 40))
    b = _solid(100, box=(0, 0, 60, 40))
    out = cutmix(a, b, np.random.default_rng(3), area=(0.5, 0.5))
    (x1, y1, x2, y2) = out.boxes[-1].astype(int)
    assert out.labels[-1] == 100 and (out.image[y1:y2, x1:x2, 0] == 100).all()
    assert ((out.image[..., 0] == 100).sum()) == (x2 - x1) * (y2 - y1)
    assert 200 in out.labels.tolist()  # half covered: a's box survives
