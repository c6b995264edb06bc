"""Box-aware augmentation on numpy images: one 3x3 matrix moves the image and its boxes alike.

Coordinates are continuous: pixel ``(col, row)`` covers ``[col, col+1] x [row, row+1]``,
so a box ``[0, 0, W, H]`` is the whole image and a flip maps ``x`` to ``W - x``.
Every geometric step (letterbox, scale, rotation, shear, translation, flip) is
a 3x3 matrix ``M`` acting on these coordinates; :func:`warp_image` resamples the
image once with ``M`` and :func:`warp_boxes` moves the four corners of each
box with the same ``M``, re-fits an axis-aligned box, clips it and drops the
degenerate ones (NanoDet's approach).

Why OpenCV rather than ``torchvision.transforms.v2``: v2 composes geometric
transforms as separate resamplings of a CHW tensor, while here scale, rotation,
shear, translation and the mosaic crop are fused into one ``cv2.warpAffine`` on
the HWC uint8 array the readers produce, which is several times faster on CPU
and interpolates the image once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from rtdet.boxes import unletterbox  # noqa: F401 (re-exported)

PAD_VALUE = 114  # grey padding, the usual letterbox colour
_IDENTITY = np.eye(3)[:2]


@dataclass
class Sample:
    """An image and its labels while being augmented (numpy; boxes float [n,4] xyxy in the image's pixels)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    difficult: np.ndarray
    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))  # original pixels -> current pixels

    def select(self, keep: np.ndarray) -> "Sample":
        """The sample with only the boxes where ``keep`` (bool [n]) is true."""
        return Sample(self.image, self.boxes[keep], self.labels[keep], self.iscrowd[keep], self.difficult[keep],
                      self.matrix)


def letterbox_params(shape: tuple[int, int], new_shape: tuple[int, int], scaleup: bool = True
                     ) -> tuple[float, int, int]:
    """``(scale, pad_x, pad_y)`` fitting an image of ``shape = (h, w)`` centred into ``new_shape``.

    Pads are whole pixels so that the resized image is not shifted by a fraction.
    """
    h, w = shape
    s = min(new_shape[0] / h, new_shape[1] / w)
    if not scaleup:
        s = min(s, 1.0)
    nh, nw = round(h * s), round(w * s)
    return s, (new_shape[1] - nw) // 2, (new_shape[0] - nh) // 2


def letterbox_resize(image: np.ndarray, new_shape: tuple[int, int], scaleup: bool = True,
                     dst: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, int, int]]:
    """The resize step of :func:`letterbox`: ``(resized uint8 image, (scale, pad_x, pad_y))``.

    ``cv2.resize`` is given the scale itself, not a rounded size, so a point ``x`` of the input maps to
    ``x * scale + pad_x`` exactly; area averaging when shrinking, bilinear when enlarging. ``dst``: an
    array to resize into (OpenCV allocates a new one when its shape is not the result's); the image
    itself is returned when the scale is 1. The result is placed at ``(pad_y, pad_x)``, cut at the
    far edges to ``new_shape`` (see :func:`letterbox`).
    """
    s, px, py = letterbox_params(image.shape[:2], new_shape, scaleup)
    if s != 1.0:
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, None, dst, fx=s, fy=s, interpolation=interp)
    return image, (s, px, py)


def letterbox(image: np.ndarray, new_shape: tuple[int, int], scaleup: bool = True
              ) -> tuple[np.ndarray, tuple[float, int, int]]:
    """Resize keeping aspect ratio and pad to ``new_shape = (h, w)`` with :data:`PAD_VALUE`.

    Returns the uint8 [h, w, 3] image and ``(scale, pad_x, pad_y)``: a point ``x``
    of the input maps to ``x * scale + pad_x`` exactly (:func:`letterbox_resize`).
    """
    resized, (s, px, py) = letterbox_resize(image, new_shape, scaleup)
    fit = resized[:new_shape[0] - py, :new_shape[1] - px]
    out = np.full((new_shape[0], new_shape[1], 3), PAD_VALUE, np.uint8)
    out[py:py + fit.shape[0], px:px + fit.shape[1]] = fit
    return out, (s, px, py)


def scale_translate(s: float, tx: float, ty: float) -> np.ndarray:
    """3x3 matrix ``x -> s * x + t``."""
    return np.array([[s, 0, tx], [0, s, ty], [0, 0, 1]], np.float64)


SCALE_JITTER = {"short": 0.25, "long": 0.5}  # the ``scale`` that ``auto`` means, by run length (see auto_scale)


def auto_scale(scale: float | str, long_run: bool = False) -> float:
    """The random scale gain to use for the ``scale`` setting: the value itself, or for ``auto`` the value
    of the run's length (:data:`SCALE_JITTER`): 0.25 for a short run, the classic 0.5 for a long one
    (``long_run``: at least :data:`rtdet.engine.recipe.LONG_RUN_STEPS` iterations). Training resolves
    ``auto`` before building its loaders; a pipeline built outside a run (a preview) takes the short
    run's value.

    Measured (``benchmarks/recipe.md``; rtdet-n 320 px and rtdet-cls-n 32 px, seed 0, 0.25 vs 0.5): BCCD,
    30 epochs, mAP50-95 0.560 vs 0.548; digits, 3 epochs, 0.438 vs 0.310; scikit-learn's digits, 3
    epochs, top-1 0.883 vs 0.774 (20 epochs: 0.9889 both). A short run has too few passes over its
    images to profit from strong scale jitter; long runs keep the published value.
    """
    if scale != "auto":
        return float(scale)
    return SCALE_JITTER["long" if long_run else "short"]


def random_affine_matrix(rng: np.random.Generator, in_shape: tuple[int, int], out_shape: tuple[int, int],
                         degrees: float = 0.0, translate: float = 0.0, scale: float = 0.0, shear: float = 0.0,
                         base_scale: float = 1.0) -> np.ndarray:
    """A random 3x3 matrix taking an image of ``in_shape`` (h, w) to ``out_shape``.

    The input's centre goes to the output's centre, then is moved by up to
    ``translate`` x output size; around it the image is scaled by
    ``base_scale * U(1 - scale, 1 + scale)``, rotated by ``U(-degrees, degrees)``
    and sheared by ``U(-shear, shear)`` degrees on each axis.
    """
    c_in = scale_translate(1, -in_shape[1] / 2, -in_shape[0] / 2)
    a = math.radians(rng.uniform(-degrees, degrees))
    s = base_scale * rng.uniform(1 - scale, 1 + scale)
    rot = np.array([[s * math.cos(a), s * math.sin(a), 0], [-s * math.sin(a), s * math.cos(a), 0], [0, 0, 1]])
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    tx = out_shape[1] * (0.5 + rng.uniform(-translate, translate))
    ty = out_shape[0] * (0.5 + rng.uniform(-translate, translate))
    return scale_translate(1, tx, ty) @ sh @ rot @ c_in


def warp_image(image: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int],
               border: int = cv2.BORDER_CONSTANT, *, interpolation: int = cv2.INTER_LINEAR,
               fill: int = PAD_VALUE) -> np.ndarray:
    """Resample ``image`` with the continuous-coordinate 3x3 ``matrix`` into ``out_shape = (h, w)``.

    OpenCV addresses pixel centres by integer indices, so the matrix is
    conjugated by a half-pixel shift to keep image and boxes aligned. Pixels
    from outside the image are ``fill`` (grey ``PAD_VALUE`` by default) with the default
    ``border``, or any other ``cv2.BORDER_*`` mode (classification replicates the edge).
    A class mask (uint8 or uint16 [H, W]) goes through the same matrix with
    ``interpolation=cv2.INTER_NEAREST`` and ``fill`` = its ignore index.
    """
    m = matrix[:2].astype(np.float64)  # affine: half^-1 @ matrix @ half in closed form (no 3x3 inverse)
    m[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    if image.shape[:2] == tuple(out_shape) and (np.abs(m - _IDENTITY) <= 1e-8 + 1e-5 * np.abs(_IDENTITY)).all():  # np.allclose, faster
        return image
    return cv2.warpAffine(image, m, (out_shape[1], out_shape[0]), flags=interpolation,
                          borderMode=border, borderValue=(fill,) * 3)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Axis-aligned hull of each xyxy box's four corners under ``matrix``: [n,4] -> [n,4]."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float64)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x1, y2]), np.stack([x2, y2])])  # [4,2,n]
    pts = np.einsum("ij,kjn->kin", matrix[:2, :2], corners) + matrix[:2, 2][None, :, None]
    return np.stack([pts[:, 0].min(0), pts[:, 1].min(0), pts[:, 0].max(0), pts[:, 1].max(0)], 1)


def box_candidates(before: np.ndarray, after: np.ndarray, gain: float, min_size: float = 2.0,
                   min_area: float = 0.1, max_aspect: float = 20.0) -> np.ndarray:
    """Boxes worth keeping after a transform: bool [n].

    ``before``: boxes before the transform, ``after``: clipped boxes after it,
    ``gain``: the transform's area scale (|det|). A box is dropped when it is
    thinner than ``min_size`` px, kept less than ``min_area`` of its
    transformed area (mostly outside the image) or became a sliver.
    """
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / (h1 + 1e-9), h1 / (w1 + 1e-9))
    return (w1 > min_size) & (h1 > min_size) & (w1 * h1 / (w0 * h0 * gain + 1e-9) > min_area) & (aspect < max_aspect)


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Transformed, clipped boxes [n,4] and the keep mask (bool [n]) for an output of ``out_shape``."""
    out = transform_boxes(boxes, matrix)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, out_shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, out_shape[0])
    gain = abs(np.linalg.det(matrix[:2, :2]))
    return out, box_candidates(boxes, out, gain)


def apply_matrix(sample: Sample, matrix: np.ndarray, out_shape: tuple[int, int]) -> Sample:
    """Warp a sample's image and boxes with ``matrix``; degenerate boxes are removed."""
    image = warp_image(sample.image, matrix, out_shape)
    boxes, keep = warp_boxes(sample.boxes, matrix, out_shape)
    out = Sample(image, boxes, sample.labels, sample.iscrowd, sample.difficult, matrix @ sample.matrix)
    return out.select(keep)


def flip_lr(sample: Sample) -> Sample:
    """Horizontal flip: ``x -> W - x``."""
    w = sample.image.shape[1]
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = w - sample.boxes[:, [2, 0]]
    m = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], np.float64)
    return Sample(cv2.flip(sample.image, 1), boxes, sample.labels, sample.iscrowd,
                  sample.difficult, m @ sample.matrix)


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Random hue/saturation/value gains (uint8 RGB [H,W,3] -> same), via lookup tables."""
    if not (hgain or sgain or vgain):
        return image
    r = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)  # OpenCV hue is 0..179
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_erasing(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.2),
                   ratio: tuple[float, float] = (0.3, 3.3)) -> np.ndarray:
    """Fill one random rectangle with noise (a copy). Boxes are kept: the object is partly occluded."""
    h, w = image.shape[:2]
    for _ in range(10):
        a = rng.uniform(*area) * h * w
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        eh, ew = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < eh < h and 0 < ew < w:
            y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            image = image.copy()
            image[y:y + eh, x:x + ew] = rng.integers(0, 256, (eh, ew, 3), dtype=np.uint8)
            return image
    return image

