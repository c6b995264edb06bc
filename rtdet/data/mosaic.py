"""Multi-image augmentation: mosaic (4 images), mixup and cutmix, on :class:`Sample` s."""

from __future__ import annotations

import numpy as np

from rtdet.data.transforms import PAD_VALUE, Sample, box_candidates


def _concat(samples: list[Sample], image: np.ndarray, boxes: list[np.ndarray]) -> Sample:
    return Sample(image, np.concatenate(boxes).reshape(-1, 4),
                  np.concatenate([s.labels for s in samples]),
                  np.concatenate([s.iscrowd for s in samples]),
                  np.concatenate([s.difficult for s in samples]))


def mosaic4(samples: list[Sample], size: int, rng: np.random.Generator) -> Sample:
    """Four samples (each at most ``size`` px on its long side) around a random centre of a 2*size canvas.

    The centre lies in the middle half of the canvas; image k's corner touches
    it (0: top-left, 1: top-right, 2: bottom-left, 3: bottom-right). Boxes are
    shifted with their image and clipped to the canvas; a later affine crops
    the canvas to the training size.
    """
    s2 = 2 * size
    xc, yc = (int(v) for v in rng.uniform(0.5 * size, 1.5 * size, 2))
    canvas = np.full((s2, s2, 3), PAD_VALUE, np.uint8)
    boxes = []
    for k, smp in enumerate(samples):
        h, w = smp.image.shape[:2]
        x0 = xc - w if k in (0, 2) else xc  # where the image's top-left corner lands
        y0 = yc - h if k in (0, 1) else yc
        cx1, cy1, cx2, cy2 = max(x0, 0), max(y0, 0), min(x0 + w, s2), min(y0 + h, s2)
        canvas[cy1:cy2, cx1:cx2] = smp.image[cy1 - y0:cy2 - y0, cx1 - x0:cx2 - x0]
        boxes.append(smp.boxes + np.array([x0, y0, x0, y0], np.float64))
    out = _concat(samples, canvas, boxes)
    clipped = out.boxes.clip(0, s2)
    keep = box_candidates(out.boxes, clipped, 1.0, min_size=1.0, min_area=0.05)
    out.boxes = clipped
    return out.select(keep)


def mixup(a: Sample, b: Sample, rng: np.random.Generator) -> Sample:
    """Blend two same-size samples with a Beta(32, 32) weight and keep both sets of boxes."""
    r = rng.beta(32.0, 32.0)
    image = (a.image.astype(np.float32) * r + b.image.astype(np.float32) * (1 - r)).round().astype(np.uint8)
    return _concat([a, b], image, [a.boxes, b.boxes])


def cutmix(a: Sample, b: Sample, rng: np.random.Generator, area: tuple[float, float] = (0.1, 0.5),
           max_hidden: float = 0.6) -> Sample:
    """Paste a random rectangle of ``b`` into ``a`` (same size).

    ``b``'s boxes are clipped to the rectangle (kept if at least 40 % survives);
    ``a``'s boxes more than ``max_hidden`` covered by the patch are dropped.
    """
    h, w = a.image.shape[:2]
    frac = rng.uniform(*area)
    ph, pw = max(1, int(h * np.sqrt(frac))), max(1, int(w * np.sqrt(frac)))
    y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    image = a.image.copy()
    image[y:y + ph, x:x + pw] = b.image[y:y + ph, x:x + pw]
    rect = np.array([x, y, x + pw, y + ph], np.float64)
    inter = np.concatenate([np.maximum(a.boxes[:, :2], rect[:2]), np.minimum(a.boxes[:, 2:], rect[2:])], 1)
    iw, ih = (inter[:, 2] - inter[:, 0]).clip(0), (inter[:, 3] - inter[:, 1]).clip(0)
    area_a = (a.boxes[:, 2] - a.boxes[:, 0]) * (a.boxes[:, 3] - a.boxes[:, 1])
    keep_a = iw * ih <= max_hidden * area_a
    b_clipped = np.concatenate([np.maximum(b.boxes[:, :2], rect[:2]), np.minimum(b.boxes[:, 2:], rect[2:])], 1)
    keep_b = box_candidates(b.boxes, b_clipped.clip(min=0), 1.0, min_size=2.0, min_area=0.4)
    a, b = a.select(keep_a), b.select(keep_b)
    return _concat([a, b], image, [a.boxes, b_clipped[keep_b]])
