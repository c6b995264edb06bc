"""Per-sample processing for training and evaluation: letterbox, augmentation, the target dict.

:class:`DetectionPipeline` wraps a :class:`DetectionDataset`. In evaluation it
only letterboxes to ``imgsz`` (or to the batch's rectangle) and records the
``letterbox`` mapping back to original pixels. In training it applies, with the
probabilities of :class:`rtdet.config.DataConfig` and :class:`~rtdet.config.DetectConfig`: mosaic (off for the
last ``close_mosaic`` epochs), random affine, mixup, cutmix, HSV, flip, erasing.

A training target's ``letterbox`` is read off the final matrix (scale = sqrt|det|,
pad = translation); it maps original pixels exactly only for single images
without rotation or shear (with mosaic it describes the canvas crop).

Randomness is a function of ``(seed, epoch, index)``, so a run gives the same
batches whatever the number of workers. The epoch lives in a shared-memory
tensor: ``set_epoch`` in the main process reaches persistent workers too.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import cv2
import numpy as np
import torch

from rtdet.config import AUTO, DataConfig, DetectConfig
from rtdet.data.dataset import DetectionDataset, ImageError
from rtdet.data.epoch import EpochDataset
from rtdet.data.mosaic import cutmix, mixup, mosaic4
from rtdet.data.transforms import (Sample, apply_matrix, auto_scale, flip_lr, hsv_jitter, letterbox, random_affine_matrix,
                                   random_erasing, scale_translate)


def auto_close_mosaic(epochs: int) -> int:
    """Epochs without mosaic at the end of a run of ``epochs`` when ``close_mosaic`` is ``auto``.

    A third of the run, 1 to 10 epochs: the classic recipe's 10 for runs of 30 epochs or
    more (YOLOv8's default), and for a short run enough epochs on whole images to adapt
    to them. Measured on BCCD (rtdet-n, 30 epochs, AdamW, all else equal): the last 10
    epochs without mosaic gave mAP50-95 0.547, the last 4 gave 0.535
    (``benchmarks/recipe.md``); the digits demo's 2 of 6 is this rule's value too.
    """
    return min(10, max(1, round(epochs / 3)))


class DetectionPipeline(EpochDataset):
    """``pipe[i] -> (image uint8 [S,S,3] RGB, target)`` at the training size; see the module docstring."""

    def __init__(self, dataset: DetectionDataset, cfg: DataConfig, train: bool, epochs: int = 0, seed: int = 0,
                 detect: DetectConfig | None = None):
        super().__init__()
        self.base, self.cfg, self.train, self.epochs, self.seed = dataset, cfg, train, epochs, seed
        self.detect = detect or DetectConfig()  # mosaic settings
        self.imgsz = cfg.imgsz
        self.rect_shapes: np.ndarray | None = None  # [N, 2] (h, w) per image for rectangular evaluation

    names = property(lambda self: self.base.names)
    report = property(lambda self: self.base.report)

    def __len__(self) -> int:
        return len(self.base)

    def mosaic_on(self) -> bool:
        d = self.detect
        close = auto_close_mosaic(self.epochs) if d.close_mosaic == AUTO else d.close_mosaic
        return d.mosaic > 0 and not (self.epochs and self.epoch >= self.epochs - close)

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            try:
                return self._train_item(j) if self.train else self._eval_item(j)
            except ImageError as e:  # a file that went bad after the data set was checked
                warnings.warn(f"skipping unreadable sample: {e}", RuntimeWarning, stacklevel=2)
        raise ImageError("no readable image in the data set")

    # -- evaluation ---------------------------------------------------------------------------------
    def _eval_item(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        image, cache_scale = self.base.load_image(i)
        shape = tuple(self.rect_shapes[i]) if self.rect_shapes is not None else (self.imgsz, self.imgsz)
        image, (s, px, py) = letterbox(image, shape)
        ann = self.base.annotations(i)
        scale = cache_scale * s
        boxes = ann["boxes"] * scale + np.array([px, py, px, py])
        return image, self._target(i, boxes, ann["labels"], ann["iscrowd"], ann["difficult"], (scale, px, py))

    # -- training -----------------------------------------------------------------------------------
    def _load_resized(self, i: int) -> Sample:
        """Image ``i`` with its long side at ``imgsz`` and its labels (crowd boxes left out of training)."""
        image, cache_scale = self.base.load_image(i)
        r = self.imgsz / max(image.shape[:2])
        if r != 1.0:
            image = cv2.resize(image, None, fx=r, fy=r, interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        ann = self.base.annotations(i)
        keep = ~ann["iscrowd"]
        s = cache_scale * r
        return Sample(image, ann["boxes"][keep] * s, ann["labels"][keep], ann["iscrowd"][keep],
                      ann["difficult"][keep], scale_translate(s, 0, 0))

    def _geometric(self, i: int, rng: np.random.Generator) -> Sample:
        """Mosaic or a single image, then one random affine into the ``imgsz`` square."""
        c, size = self.cfg, self.imgsz
        if self.mosaic_on() and rng.random() < self.detect.mosaic:
            others = rng.integers(0, len(self), 3)
            smp = mosaic4([self._load_resized(int(j)) for j in (i, *others)], size, rng)
        else:
            smp = self._load_resized(i)
        m = random_affine_matrix(rng, smp.image.shape[:2], (size, size), c.degrees, c.translate,
                                 auto_scale(c.scale), c.shear)
        return apply_matrix(smp, m, (size, size))

    def _train_item(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        c = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch, i])
        smp = self._geometric(i, rng)
        if c.mixup > 0 and rng.random() < c.mixup:
            smp = mixup(smp, self._geometric(int(rng.integers(len(self))), rng), rng)
        if c.cutmix > 0 and rng.random() < c.cutmix:
            smp = cutmix(smp, self._geometric(int(rng.integers(len(self))), rng), rng)
        smp.image = hsv_jitter(smp.image, rng, c.hsv_h, c.hsv_s, c.hsv_v)
        if c.fliplr > 0 and rng.random() < c.fliplr:
            smp = flip_lr(smp)
        if c.erasing > 0 and rng.random() < c.erasing:
            smp.image = random_erasing(smp.image, rng)
        m = smp.matrix
        lb = (math.sqrt(abs(np.linalg.det(m[:2, :2]))), float(m[0, 2]), float(m[1, 2]))
        return smp.image, self._target(i, smp.boxes, smp.labels, smp.iscrowd, smp.difficult, lb)

    def _target(self, i: int, boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray, difficult: np.ndarray,
                lb: tuple[float, float, float]) -> dict[str, Any]:
        h, w = (int(v) for v in self.base.sizes[i])
        return {
            "boxes": torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, np.int64)),
            "iscrowd": torch.from_numpy(np.asarray(iscrowd, bool)),
            "difficult": torch.from_numpy(np.asarray(difficult, bool)),
            "image_id": int(self.base.image_ids[i]),
            "file": self.base.file(i),
            "orig_size": (h, w),
            "letterbox": (float(lb[0]), float(lb[1]), float(lb[2])),
        }
