"""Batches for training and evaluation: ``build_loader``, ``collate``, ``pad_targets``.

A batch is ``(images uint8 [B,3,H,W] RGB, targets)`` with one target dict per
image (boxes in the batch's pixel frame). The trainer converts images with
``images.float() / 255`` on its device.

Memory stays flat over epochs: the dataset holds numpy arrays rather than
lists of per-image objects, the optional RAM cache is one shared-memory
buffer, and workers are persistent (started once, not re-forked each epoch).

Example:
    >>> ds = open_dataset("digits", "train")                              # doctest: +SKIP
    >>> loader = build_loader(ds, DataConfig(batch=8), train=True, epochs=10)  # doctest: +SKIP
    >>> for epoch in range(10):                                            # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for images, targets in loader: ...
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
from typing import Any, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from rtdet.config import DataConfig, DetectConfig
from rtdet.data.dataset import DetectionDataset
from rtdet.data.pipeline import DetectionPipeline

STRIDE = 32  # rectangular and multi-scale sizes are multiples of the largest model stride


def collate(batch: list[tuple[np.ndarray, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack samples into uint8 [B,3,H,W]; images of different sizes are padded bottom/right with 114."""
    h = max(img.shape[0] for img, _ in batch)
    w = max(img.shape[1] for img, _ in batch)
    images = torch.full((len(batch), 3, h, w), 114, dtype=torch.uint8)
    for k, (img, _) in enumerate(batch):
        images[k, :, :img.shape[0], :img.shape[1]] = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return images, [t for _, t in batch]


class MultiScaleCollate:
    """``collate``, then resize the whole batch to a random size in ``[0.5, 1.5] * imgsz`` (multiple of 32)."""

    def __init__(self, imgsz: int, seed: int = 0):
        self.imgsz, self.seed, self.calls = imgsz, seed, 0

    def __call__(self, batch: list[tuple[np.ndarray, dict]]) -> tuple[torch.Tensor, list[dict]]:
        images, targets = collate(batch)
        ids = [t["image_id"] for t in targets]
        rng = np.random.default_rng([self.seed, *ids[:4]])  # same batch -> same size, whatever the worker
        size = int(rng.integers(math.ceil(self.imgsz * 0.5 / STRIDE), self.imgsz * 1.5 // STRIDE + 1)) * STRIDE
        s = size / max(images.shape[2:])
        if s == 1.0:
            return images, targets
        out = F.interpolate(images.float(), scale_factor=s, mode="bilinear", align_corners=False,
                            recompute_scale_factor=False)
        for t in targets:
            t["boxes"] = t["boxes"] * s
            sc, px, py = t["letterbox"]
            t["letterbox"] = (sc * s, px * s, py * s)
        return out.round().clamp_(0, 255).to(torch.uint8), targets


def pad_targets(targets: list[dict], device=None, drop_crowd: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense ground truth from per-image target dicts (Sample contract).

    Crowd boxes (``iscrowd``) are masked out when ``drop_crowd``: they mark
    regions, not objects, and would teach the model to merge instances.

    Returns:
        boxes (torch.Tensor[B, M, 4] float32 xyxy), labels (torch.Tensor[B, M] int64, -1 pad),
        mask (torch.Tensor[B, M] bool); ``M`` is the largest box count (may be 0).
    """
    m = max((len(t["boxes"]) for t in targets), default=0)
    b = len(targets)
    boxes = torch.zeros(b, m, 4, dtype=torch.float32, device=device)
    labels = torch.full((b, m), -1, dtype=torch.int64, device=device)
    mask = torch.zeros(b, m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        n = len(t["boxes"])
        if n == 0:
            continue
        boxes[i, :n] = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(n, 4).to(device)
        labels[i, :n] = torch.as_tensor(t["labels"], dtype=torch.int64).to(device)
        keep = torch.ones(n, dtype=torch.bool)
        if drop_crowd and "iscrowd" in t:
            keep = ~torch.as_tensor(t["iscrowd"], dtype=torch.bool).reshape(n)
        mask[i, :n] = keep.to(device)
    labels[~mask] = -1
    return boxes, labels, mask


def rect_batches(dataset: DetectionDataset, imgsz: int, batch: int) -> tuple[list[list[int]], np.ndarray]:
    """Batches of similar aspect ratio and each image's letterbox shape [N,2] (h, w) for rectangular eval."""
    ar = dataset.sizes[:, 0] / dataset.sizes[:, 1]  # h / w
    order = np.argsort(ar, kind="stable")
    shapes = np.zeros((len(dataset), 2), np.int64)
    batches = []
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        lo, hi = ar[idx].min(), ar[idx].max()
        rel = (hi, 1.0) if hi < 1 else (1.0, 1 / lo) if lo > 1 else (1.0, 1.0)
        shapes[idx] = [math.ceil(imgsz * r / STRIDE) * STRIDE for r in rel]
        batches.append(idx.tolist())
    return batches, shapes


def worker_init(worker_id: int) -> None:
    """Start-up of each loader worker process.

    ``gc.freeze()`` moves the objects inherited from the parent out of the
    collector's reach: otherwise every collection writes to their headers and
    the worker slowly copies the parent's pages (memory growing over epochs).
    OpenCV's own thread pool is turned off because workers already run in
    parallel and each extra pool adds threads and malloc arenas. On glibc, a
    fixed mmap threshold sends every image-sized buffer back to the system when
    freed, instead of letting the heap fragment as buffer sizes vary.
    """
    gc.freeze()
    cv2.setNumThreads(0)
    _fixed_mmap_threshold()


def _fixed_mmap_threshold(nbytes: int = 1 << 17) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class EpochSampler(Sampler[int]):
    """A shuffle that depends only on ``(seed, epoch)``, so a resumed run sees the same order."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class DetectionLoader(DataLoader):
    """A DataLoader whose ``set_epoch`` reaches the dataset (augmentation seed, close_mosaic) and sampler.

    When ``set_epoch`` is not called, each new iteration advances the epoch by
    itself, so augmentation never repeats by accident.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._next_epoch, self._epoch_set = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._next_epoch, self._epoch_set = epoch + 1, True

    def __iter__(self) -> Iterator:
        if not self._epoch_set:
            self.set_epoch(self._next_epoch)
        self._epoch_set = False
        return super().__iter__()


def auto_workers(workers: int) -> int:
    """``workers``, or for -1 a count suited to this machine.

    On 2 cores, loader processes and PyTorch's two compute threads oversubscribe the
    CPU: a training step of the demo took 740 ms with 2 workers, 670 with 1 and
    571 with 0 (the per-image pipeline costs 3-5 ms, little next to the step).
    """
    if workers >= 0:
        return workers
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


def build_loader(dataset: DetectionDataset, cfg: DataConfig, train: bool, *, detect: DetectConfig | None = None,
                 batch: int | None = None,
                 workers: int | None = None, shuffle: bool | None = None, epochs: int = 0, seed: int = 0,
                 sampler: Sampler | None = None, drop_last: bool | None = None) -> DetectionLoader:
    """A DataLoader yielding ``(images uint8 [B,3,H,W], targets)`` letterboxed to ``cfg.imgsz``.

    Args:
        dataset: from :func:`rtdet.data.open_dataset`.
        cfg: data settings (size, batch, workers, cache, augmentation).
        detect: the detect task's settings (mosaic, close_mosaic, multi_scale, rect); defaults when None.
        train: augment (per ``cfg``), shuffle and drop the last partial batch; else letterbox only.
        epochs: total epochs, so mosaic can stop for the last ``detect.close_mosaic`` of them.
        seed: augmentation and shuffling seed.
        sampler: e.g. a DistributedSampler (then ``shuffle`` is the sampler's business). Without one,
            training shuffles with a permutation of ``(seed, epoch)``.
    """
    detect = detect or DetectConfig()
    batch = batch or cfg.batch
    workers = auto_workers(cfg.workers if workers is None else workers)
    shuffle = train if shuffle is None else shuffle
    pipe = DetectionPipeline(dataset, cfg, train, epochs=epochs, seed=seed, detect=detect)
    if cfg.cache and dataset._cache is None:
        dataset.cache_images(max_side=cfg.imgsz if not detect.multi_scale else None)
    kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": False}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=worker_init)
    collate_fn = MultiScaleCollate(cfg.imgsz, seed) if (train and detect.multi_scale) else collate
    if not train and detect.rect and sampler is None:
        batches, pipe.rect_shapes = rect_batches(dataset, cfg.imgsz, batch)
        return DetectionLoader(pipe, batch_sampler=batches, collate_fn=collate_fn, **kwargs)
    if sampler is None and shuffle:
        sampler = EpochSampler(len(dataset), seed)
    if drop_last is None:  # judged on this process's share, so W ranks x b drop what one process x W*b drops
        drop_last = train and len(sampler if sampler is not None else dataset) >= 2 * batch
    return DetectionLoader(pipe, batch_size=batch, sampler=sampler, collate_fn=collate_fn, drop_last=drop_last,
                           **kwargs)
