"""Segmentation augmentation and batches: one 3x3 matrix moves the image and its mask alike.

Training (:class:`SegmentAugment`, ``train=True``) reads the shared augmentation settings of
:class:`rtdet.config.DataConfig` and builds one matrix from the original pixels to the
``h x w`` training size:

1. a horizontal flip with probability ``fliplr``;
2. the letterbox scale (the image fits the output, as in evaluation) times
   ``U(1 - scale, 1 + scale)``, a rotation of ``U(-degrees, degrees)`` and a shear of
   ``U(-shear, shear)`` degrees (:func:`rtdet.data.transforms.random_affine_matrix`);
3. a random crop: along a side where the warped image is larger than the output, the
   window is a uniformly random part of it (mmsegmentation's RandomResize + RandomCrop);
   along a side where it is smaller, it is centred, moved by up to ``translate`` x the
   output size, and padded.

The image is warped once with that matrix (bilinear, grey ``PAD_VALUE`` padding) and the
mask once with the same matrix (nearest neighbour, ``ignore_index`` for pixels from
outside the image), both by :func:`rtdet.data.transforms.warp_image`; then HSV jitter
(``hsv_h``, ``hsv_s``, ``hsv_v``) changes the image only. Evaluation letterboxes both
(the mask with nearest-neighbour resizing and ``ignore_index`` padding); its targets carry
``letterbox = (scale, pad_x, pad_y)`` to map predictions back, and scores belong against
``dataset.load_mask(i)`` in original pixels: evaluation targets carry it as ``orig_mask``
(int64 [H, W]) with the data's ``ignore_index``.

Randomness is a function of ``(seed, epoch, index)``, as for detection and classification.

Example:
    >>> ds = open_segmentation("camvid.yaml", "train")                                # doctest: +SKIP
    >>> loader = build_segmentation_loader(ds, DataConfig(imgsz=512, batch=8), train=True)  # doctest: +SKIP
    >>> for images, targets in loader:                                                 # doctest: +SKIP
    ...     masks = torch.stack([t["mask"] for t in targets])  # int64 [B, 512, 512], 255 = ignore
"""

from __future__ import annotations

import warnings
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Sampler

from rtdet.config import DataConfig
from rtdet.data.dataset import ImageError
from rtdet.data.epoch import EpochDataset
from rtdet.data.loader import DetectionLoader, EpochSampler, auto_workers, worker_init
from rtdet.data.segment import SegmentationDataset
from rtdet.data.transforms import (auto_scale, hsv_jitter, letterbox, letterbox_params, random_affine_matrix, scale_translate,
                                   transform_boxes, warp_image)

MIN_WARP_SCALE = 0.5  # below this a bilinear warp aliases: the image is first shrunk with area averaging


def flip_matrix(width: int) -> np.ndarray:
    """3x3 horizontal flip ``x -> width - x`` of an image ``width`` pixels wide."""
    return np.array([[-1, 0, width], [0, 1, 0], [0, 0, 1]], np.float64)


def random_crop_shift(matrix: np.ndarray, shape: tuple[int, int], out_shape: tuple[int, int],
                      rng: np.random.Generator) -> np.ndarray:
    """``matrix`` followed by a shift that makes the output a uniformly random window of the warped image
    along each side where the warped image (of ``shape = (h, w)``) is larger than ``out_shape``."""
    h, w = shape
    x1, y1, x2, y2 = transform_boxes(np.array([[0.0, 0.0, w, h]]), matrix)[0]
    dx = rng.uniform(out_shape[1] - x2, -x1) if x2 - x1 > out_shape[1] else 0.0
    dy = rng.uniform(out_shape[0] - y2, -y1) if y2 - y1 > out_shape[0] else 0.0
    return scale_translate(1, dx, dy) @ matrix


def warp_mask(mask: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int], ignore_index: int) -> np.ndarray:
    """A class mask (uint8 / uint16 [H, W]) through ``matrix``: nearest neighbour, ``ignore_index`` outside."""
    return warp_image(mask, matrix, out_shape, interpolation=cv2.INTER_NEAREST, fill=ignore_index)


def letterbox_mask(mask: np.ndarray, out_shape: tuple[int, int], ignore_index: int) -> np.ndarray:
    """A class mask placed as :func:`rtdet.data.transforms.letterbox` places its image (``x -> x * scale + pad``,
    exactly; ``cv2.resize`` would use the rounded size's ratio), nearest neighbour, ``ignore_index`` padding."""
    s, px, py = letterbox_params(mask.shape[:2], out_shape)
    return warp_mask(mask, scale_translate(s, px, py), out_shape, ignore_index)


class SegmentAugment:
    """``aug(image uint8 [H,W,3], mask [H,W], rng) -> (image uint8 [h,w,3], mask [h,w], matrix float64 [3,3])``.

    ``matrix`` maps original pixels to output pixels (for evaluation, the letterbox). See the module docstring.

    Args:
        cfg: augmentation settings (``fliplr``, ``hsv_h/s/v``, ``degrees``, ``translate``, ``scale``, ``shear``).
        imgsz: output size: a side (square) or ``(h, w)``; default ``cfg.imgsz``.
        train: augment (needs ``rng``); else letterbox only.
        ignore_index: mask value of pixels without a label (padding included).
    """

    def __init__(self, cfg: DataConfig, imgsz: int | tuple[int, int] | None = None, train: bool = True,
                 ignore_index: int = 255):
        size = cfg.imgsz if imgsz is None else imgsz
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.cfg, self.train, self.ignore_index = cfg, train, ignore_index

    def matrix(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """A random 3x3 matrix from an image of ``shape = (h, w)`` to the output: flip, scale, rotate, shear, crop."""
        c = self.cfg
        base = letterbox_params(shape, self.size)[0]
        m = random_affine_matrix(rng, shape, self.size, c.degrees, c.translate, auto_scale(c.scale), c.shear,
                                 base_scale=base)
        m = random_crop_shift(m, shape, self.size, rng)
        if c.fliplr > 0 and rng.random() < c.fliplr:
            m = m @ flip_matrix(shape[1])
        return m

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError(f"image {image.shape[1]}x{image.shape[0]} and mask {mask.shape[1]}x{mask.shape[0]} differ")
        if not self.train:
            out, (s, px, py) = letterbox(image, self.size)
            return out, letterbox_mask(mask, self.size, self.ignore_index), scale_translate(s, px, py)
        if rng is None:
            raise ValueError("SegmentAugment(train=True) needs a random generator")
        m = self.matrix(image.shape[:2], rng)
        out_mask = warp_mask(mask, m, self.size, self.ignore_index)
        shrink = min(1.0, abs(np.linalg.det(m[:2, :2])) ** 0.5 / MIN_WARP_SCALE)
        shrink = max(shrink, 1.0 / max(image.shape[:2]))  # a scale gain >= 1 can draw ~0: keep one pixel
        if shrink < 1.0:  # the same geometry: continuous x of the original is x * shrink in the shrunk image
            image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        out = warp_image(image, m @ scale_translate(1 / shrink, 0, 0), self.size)
        c = self.cfg
        return hsv_jitter(out, rng, c.hsv_h, c.hsv_s, c.hsv_v), out_mask, m


class SegmentationPipeline(EpochDataset):
    """``pipe[i] -> (image uint8 [3,h,w] tensor, {"mask": int64 [h,w], "image_id", "orig_size", "file"})``,
    plus ``"letterbox": (scale, pad_x, pad_y)``, ``"orig_mask"`` (int64 [H, W], the mask in original pixels)
    and ``"ignore_index"`` when evaluating; augmented with the epoch's randomness.

    The epoch (:class:`rtdet.data.epoch.EpochDataset`) reaches persistent workers too.
    A sample that no longer reads (a file changed after the split was checked) is skipped with a
    warning and the next one is delivered.
    """

    def __init__(self, dataset: SegmentationDataset, augment: SegmentAugment, seed: int = 0):
        super().__init__()
        self.dataset, self.augment, self.seed = dataset, augment, seed

    names = property(lambda self: self.dataset.names)
    report = property(lambda self: self.dataset.report)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            try:
                image, mask = self.dataset.load_image(j), self.dataset.load_mask(j)
            except ImageError as e:
                warnings.warn(f"skipping unreadable sample: {e}", RuntimeWarning, stacklevel=2)
                continue
            return self._sample(j, image, mask)
        raise ImageError(f"{self.dataset.source}: no readable sample in the data set")

    def _sample(self, j: int, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
        rng = np.random.default_rng([self.seed, self.epoch, j]) if self.augment.train else None
        out, out_mask, m = self.augment(image, mask, rng)
        target: dict[str, Any] = {"mask": torch.from_numpy(out_mask.astype(np.int64)), "image_id": j,
                                  "orig_size": tuple(int(v) for v in image.shape[:2]), "file": self.dataset.file(j)}
        if not self.augment.train:  # what scoring in original pixels needs (rtdet.tasks.segment.collect)
            target["letterbox"] = (float(m[0, 0]), float(m[0, 2]), float(m[1, 2]))
            target["orig_mask"] = torch.from_numpy(mask.astype(np.int64))
            target["ignore_index"] = self.dataset.ignore_index
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))), target


def collate_segmentation(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack same-size samples: ``(images uint8 [B,3,h,w], targets)``; ``torch.stack`` the targets' masks."""
    sizes = {tuple(img.shape) for img, _ in batch}
    if len(sizes) > 1:
        raise ValueError(f"segmentation samples of different sizes in one batch: {sorted(sizes)}")
    return torch.stack([img for img, _ in batch]), [t for _, t in batch]


def build_segmentation_loader(ds: SegmentationDataset, cfg: DataConfig, train: bool, *,
                              imgsz: int | tuple[int, int] | None = None, batch: int | None = None,
                              workers: int | None = None, seed: int = 0, sampler: Sampler | None = None,
                              shuffle: bool | None = None, drop_last: bool | None = None) -> DetectionLoader:
    """A loader of ``(images uint8 [B,3,h,w], targets)`` at ``imgsz`` (default ``cfg.imgsz``).

    Training augments (:class:`SegmentAugment`), shuffles with a permutation of ``(seed, epoch)``
    unless a ``sampler`` is given, and drops a last partial batch; evaluation letterboxes, in order.
    ``set_epoch(e)`` on the loader reseeds augmentation and shuffling.
    """
    pipe = SegmentationPipeline(ds, SegmentAugment(cfg, imgsz, train, ds.ignore_index), seed)
    workers = auto_workers(cfg.workers if workers is None else workers)
    kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": False}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=worker_init)
    shuffle = train if shuffle is None else shuffle
    if sampler is None and shuffle:
        sampler = EpochSampler(len(ds), seed)
    batch = batch or cfg.batch
    if drop_last is None:
        drop_last = train and len(sampler if sampler is not None else ds) >= 2 * batch
    return DetectionLoader(pipe, batch_size=batch, sampler=sampler, collate_fn=collate_segmentation,
                           drop_last=drop_last, **kwargs)
