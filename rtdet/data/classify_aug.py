"""Classification augmentation and batches: per-image transforms, batch mixup / cutmix, the loader.

A batch is ``(images uint8 [B, 3, S, S] RGB, targets)`` with one dict per image:
``{"label": LongTensor [] (the image's own class), "soft": FloatTensor [K] (the
training target: one-hot, or mixed by mixup / cutmix), "image_id": int, "file": str}``.
The trainer converts images with ``images.float() / 255`` on its device.

Evaluation (:func:`center_crop_resize`): the largest centred square is resized
to ``S x S`` (the same as resizing the shorter side to ``S`` and cropping the
centre, torchvision's and Ultralytics' evaluation transform); square images such
as digits are simply resized. Training (:class:`ClassifyTransform`): a random
resized crop, an optional small affine and flip, all fused into one 3x3 matrix
and one ``cv2.warpAffine`` (:mod:`rtdet.data.transforms`), then HSV / brightness
jitter and random erasing. Pixels brought in from outside the image replicate
its edge, so a digit's black background stays black. Mixup and cutmix act on
whole batches in the collate function.

Randomness is a function of ``(seed, epoch, index)`` (per image) and of
``(seed, epoch, image ids)`` (per batch): a run gives the same batches whatever the
number of workers, and workers never repeat each other's draws.

Example:
    >>> ds = open_classification("../shared/data/mnist", "train")                # doctest: +SKIP
    >>> loader = build_classification_loader(ds, 32, 64, train=True, augment=DIGITS_AUGMENT)  # doctest: +SKIP
    >>> for epoch in range(10):                                                  # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for images, targets in loader: ...
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Sampler

from rtdet.data.classify import ClassificationDataset
from rtdet.data.dataset import ImageError
from rtdet.data.epoch import EpochDataset
from rtdet.data.loader import DetectionLoader, EpochSampler, auto_workers, worker_init
from rtdet.data.transforms import hsv_jitter, random_affine_matrix, random_erasing, warp_image


@dataclass(frozen=True)
class ClassifyAugment:
    """Training augmentation of a classifier; probabilities per image unless said otherwise."""

    crop_scale: tuple[float, float] = (0.6, 1.0)  # random resized crop: share of the image's area kept
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random resized crop: range of width / height
    fliplr: float = 0.0  # horizontal flip; off because mirrored digits and letters change meaning
    degrees: float = 0.0  # rotation range (+/-) of the affine after the crop
    translate: float = 0.0  # translation (+/-, fraction of the output size)
    scale: float = 0.0  # scale gain (+/-)
    shear: float = 0.0  # shear in degrees (+/-)
    hsv_h: float = 0.015  # hue jitter (fraction of the hue circle)
    hsv_s: float = 0.4  # saturation jitter (fraction)
    hsv_v: float = 0.4  # value (brightness) jitter (fraction)
    erasing: float = 0.0  # probability of erasing a random rectangle (filled with noise)
    mixup: float = 0.0  # probability per batch of mixup (images and soft targets blended)
    mixup_alpha: float = 0.2  # mixup weight ~ Beta(alpha, alpha)
    cutmix: float = 0.0  # probability per batch of cutmix (a rectangle pasted from another image)
    cutmix_alpha: float = 1.0  # cutmix kept area ~ Beta(alpha, alpha)
    close_mix: int = 0  # no mixup / cutmix in the last N epochs (needs the loader's ``epochs``)


# Handwritten digits (MNIST, scikit-learn's digits): no flip, mild crop, small affine.
DIGITS_AUGMENT = ClassifyAugment(crop_scale=(0.8, 1.0), crop_ratio=(0.9, 1.1), degrees=10.0, translate=0.08,
                                 scale=0.1, hsv_h=0.0, hsv_s=0.0, hsv_v=0.3)

_BORDER = cv2.BORDER_REPLICATE


def center_crop_resize(image: np.ndarray, imgsz: int, dst: np.ndarray | None = None) -> np.ndarray:
    """Evaluation transform: the centred ``min(h, w)`` square resized to uint8 [imgsz, imgsz, 3].

    ``dst``: a uint8 [imgsz, imgsz, 3] array to resize into (a stream's reused buffer); when no resize
    is needed the crop is returned as a view of ``image`` then.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    crop = image[y:y + side, x:x + side]
    if side == imgsz:
        return crop if dst is not None else np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if side > imgsz else cv2.INTER_LINEAR
    return cv2.resize(crop, (imgsz, imgsz), dst, interpolation=interp)


def random_crop_box(rng: np.random.Generator, shape: tuple[int, int], scale: tuple[float, float],
                    ratio: tuple[float, float]) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of a random crop of an image of ``shape = (h, w)`` (continuous pixels).

    The crop covers ``U(*scale)`` of the image's area with width / height
    log-uniform in ``ratio``; after 10 misses, the centred crop with the ratio
    clamped into range (torchvision's RandomResizedCrop rule).
    """
    h, w = shape
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        r = math.exp(rng.uniform(lo, hi))
        cw, ch = math.sqrt(area * r), math.sqrt(area / r)
        if cw <= w and ch <= h:
            return rng.uniform(0, w - cw), rng.uniform(0, h - ch), cw, ch
    r = min(max(w / h, ratio[0]), ratio[1])
    cw, ch = (w, w / r) if w / h < r else (h * r, h)
    return (w - cw) / 2, (h - ch) / 2, cw, ch


def brightness_jitter(image: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    """Every channel times ``1 + U(-gain, gain)``, clipped (uint8 [H,W,3] -> same).

    :func:`rtdet.data.transforms.hsv_jitter` with value jitter only, without the
    HSV round trip; identical for gray images, and for colour ones except where
    a channel saturates.
    """
    return cv2.convertScaleAbs(image, alpha=1 + rng.uniform(-gain, gain))  # rounds and saturates to uint8


class ClassifyTransform:
    """``transform(image uint8 [H,W,3], rng) -> uint8 [3, S, S]``; see the module docstring.

    Args:
        imgsz: output side ``S``.
        train: augment with ``augment`` (needs ``rng``); else :func:`center_crop_resize`.
        augment: training settings (default :class:`ClassifyAugment`).
    """

    def __init__(self, imgsz: int, train: bool, augment: ClassifyAugment | None = None):
        self.imgsz, self.train, self.augment = imgsz, train, augment or ClassifyAugment()

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        out = self._train(image, rng) if self.train else center_crop_resize(image, self.imgsz)
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def matrix(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The 3x3 matrix from an image of ``shape`` to the ``S x S`` output: crop, affine, flip."""
        a, s = self.augment, self.imgsz
        x, y, cw, ch = random_crop_box(rng, shape, a.crop_scale, a.crop_ratio)
        crop = np.array([[s / cw, 0, -x * s / cw], [0, s / ch, -y * s / ch], [0, 0, 1]], np.float64)
        m = random_affine_matrix(rng, (s, s), (s, s), a.degrees, a.translate, a.scale, a.shear) @ crop
        if a.fliplr > 0 and rng.random() < a.fliplr:
            m = np.array([[-1, 0, s], [0, 1, 0], [0, 0, 1]], np.float64) @ m
        return m

    def _train(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if rng is None:
            raise ValueError("ClassifyTransform(train=True) needs a random generator")
        a, s = self.augment, self.imgsz
        short = min(image.shape[:2])
        if short > 2 * s:  # shrink with area averaging first: one bilinear warp over > 2x would alias
            f = 2 * s / short
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out = warp_image(image, self.matrix(image.shape[:2], rng), (s, s), border=_BORDER)
        if a.hsv_h or a.hsv_s:
            out = hsv_jitter(out, rng, a.hsv_h, a.hsv_s, a.hsv_v)
        elif a.hsv_v:
            out = brightness_jitter(out, rng, a.hsv_v)
        if a.erasing > 0 and rng.random() < a.erasing:
            out = random_erasing(out, rng)
        return out


class ClassificationPipeline(EpochDataset):
    """``pipe[i] -> (image uint8 [3, S, S], target dict of pipe.dataset)`` with the epoch's randomness.

    The epoch (:class:`rtdet.data.epoch.EpochDataset`) reaches persistent workers too.
    """

    def __init__(self, dataset: ClassificationDataset, transform: ClassifyTransform, seed: int = 0):
        super().__init__()
        self.dataset, self.transform, self.seed = dataset, transform, seed

    names = property(lambda self: self.dataset.names)
    report = property(lambda self: self.dataset.report)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            try:
                image, target = self.dataset[j]
            except ImageError as e:  # a file that went bad after the data set was read
                warnings.warn(f"skipping unreadable sample: {e}", RuntimeWarning, stacklevel=2)
                continue
            rng = np.random.default_rng([self.seed, self.epoch, j]) if self.transform.train else None
            return self.transform(image, rng), target
        raise ImageError(f"{self.dataset.source}: no readable image in the data set")


def mixup_batch(images: torch.Tensor, soft: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image with the previous one of the batch (``roll(1)``): uint8 [B,3,S,S], float [B,K]."""
    mixed = images.float() * lam + images.roll(1, 0).float() * (1 - lam)
    return mixed.round_().to(torch.uint8), soft * lam + soft.roll(1, 0) * (1 - lam)


def cutmix_batch(images: torch.Tensor, soft: torch.Tensor, lam: float, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste into each image a rectangle of about ``1 - lam`` of its area from the previous image.

    Soft targets are mixed by the area actually pasted (after clipping to the image).
    """
    h, w = images.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y1, y2 = max(cy - ch // 2, 0), min(cy + (ch + 1) // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + (cw + 1) // 2, w)
    out = images.clone()
    out[..., y1:y2, x1:x2] = images.roll(1, 0)[..., y1:y2, x1:x2]
    kept = 1 - (y2 - y1) * (x2 - x1) / (h * w)
    return out, soft * kept + soft.roll(1, 0) * (1 - kept)


class ClassifyCollate:
    """Stack a batch, add one-hot ``soft`` targets, and apply batch mixup / cutmix when training."""

    def __init__(self, num_classes: int, augment: ClassifyAugment | None = None, seed: int = 0,
                 epoch: torch.Tensor | None = None, epochs: int = 0):
        self.num_classes, self.augment, self.seed, self.epochs = num_classes, augment, seed, epochs
        self._epoch = epoch if epoch is not None else torch.zeros(1, dtype=torch.int64)

    def mixing(self) -> bool:
        a, epoch = self.augment, self._epoch.item()
        if a is None or not (a.mixup > 0 or a.cutmix > 0):
            return False
        return not (self.epochs and a.close_mix and epoch >= self.epochs - a.close_mix)

    def __call__(self, batch: list[tuple[np.ndarray, dict]]) -> tuple[torch.Tensor, list[dict]]:
        images = torch.from_numpy(np.stack([img for img, _ in batch]))
        labels = torch.tensor([t["label"] for _, t in batch], dtype=torch.int64)
        soft = torch.nn.functional.one_hot(labels, self.num_classes).float()
        if self.mixing():
            a = self.augment
            rng = np.random.default_rng([self.seed, self._epoch.item(), *(t["image_id"] for _, t in batch)])
            if rng.random() < a.mixup:
                images, soft = mixup_batch(images, soft, float(rng.beta(a.mixup_alpha, a.mixup_alpha)))
            if rng.random() < a.cutmix:
                images, soft = cutmix_batch(images, soft, float(rng.beta(a.cutmix_alpha, a.cutmix_alpha)), rng)
        targets = [{"label": labels[k], "soft": soft[k], "image_id": t["image_id"], "file": t["file"]}
                   for k, (_, t) in enumerate(batch)]
        return images, targets


class ClassificationLoader(DetectionLoader):
    """A DataLoader whose ``set_epoch`` reaches the pipeline (augmentation seed) and the sampler.

    The epoch handling is :class:`rtdet.data.loader.DetectionLoader`'s: without a
    ``set_epoch`` call each new iteration advances the epoch by itself.
    """


def build_classification_loader(ds: ClassificationDataset, imgsz: int, batch: int, train: bool, *,
                                workers: int = 0, seed: int = 0, epochs: int = 0, sampler: Sampler | None = None,
                                augment: ClassifyAugment | None = None, shuffle: bool | None = None,
                                drop_last: bool | None = None) -> ClassificationLoader:
    """A loader of ``(images uint8 [B, 3, imgsz, imgsz], targets)`` (module docstring).

    Args:
        ds: from :func:`rtdet.data.classify.open_classification`.
        train: augment with ``augment`` (default :class:`ClassifyAugment`), shuffle and drop the last
            partial batch; else the evaluation transform, in order.
        workers: loader processes; -1 picks a count for this machine (:func:`rtdet.data.loader.auto_workers`).
        seed: augmentation and shuffling seed.
        epochs: total epochs, so mixup / cutmix can stop for the last ``augment.close_mix`` of them.
        sampler: e.g. a DistributedSampler; without one, training shuffles with a permutation of ``(seed, epoch)``.
    """
    augment = (augment or ClassifyAugment()) if train else None
    pipe = ClassificationPipeline(ds, ClassifyTransform(imgsz, train, augment), seed)
    collate = ClassifyCollate(len(ds.names), augment, seed, pipe._epoch, epochs)
    workers = auto_workers(workers)
    kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": False}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=worker_init)
    shuffle = train if shuffle is None else shuffle
    if sampler is None and shuffle:
        sampler = EpochSampler(len(ds), seed)
    if drop_last is None:  # judged on this process's share, so W ranks x b drop what one process x W*b drops
        drop_last = train and len(sampler if sampler is not None else ds) >= 2 * batch
    return ClassificationLoader(pipe, batch_size=batch, sampler=sampler, collate_fn=collate, drop_last=drop_last,
                                **kwargs)
