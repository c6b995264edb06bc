"""A tiny detector and a synthetic data set that follow rtdet's model and batch contracts.

Used by the engine tests so they need neither the data package nor a real model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rtdet.config import Config, load_config
from rtdet.engine.dist import train_sampler
from rtdet.models.base import RtdetModel


class SyntheticBoxes(Dataset):
    """``n`` images of ``size`` x ``size`` with one colored rectangle; the color is the class."""

    names = ["red", "green", "blue"]

    def __init__(self, n: int = 16, size: int = 32, seed: int = 0) -> None:
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(self.seed * 100_003 + i)
        s = self.size
        img = rng.integers(0, 60, (s, s, 3), dtype=np.uint8)
        label = int(rng.integers(0, 3))
        x1, y1 = rng.integers(0, s // 2, 2)
        x2, y2 = x1 + rng.integers(4, s // 2), y1 + rng.integers(4, s // 2)
        img[y1:y2, x1:x2, label] = 230
        target = {
            "boxes": torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32),
            "labels": torch.tensor([label], dtype=torch.int64),
            "iscrowd": torch.zeros(1, dtype=torch.bool),
            "difficult": torch.zeros(1, dtype=torch.bool),
            "image_id": i,
            "file": f"synthetic_{i}.png",
            "orig_size": (s, s),
            "letterbox": (1.0, 0.0, 0.0),
        }
        return img, target


def collate(batch: list) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    images = torch.from_numpy(np.stack([img for img, _ in batch])).permute(0, 3, 1, 2).contiguous()
    return images, [t for _, t in batch]


class TinyDetector(RtdetModel):
    """One box per image: class logits + normalized xyxy from a small conv net."""

    def __init__(self, num_classes: int = 3, bn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        norm = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), norm, nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(8, num_classes + 4)
        self.seen_dtype: torch.dtype | None = None

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None):
        out = self.head(self.features(images))
        self.seen_dtype = out.dtype
        logits, box = out[:, : self.num_classes], out[:, self.num_classes:].sigmoid()
        h, w = images.shape[-2:]
        scale = images.new_tensor([w, h, w, h])
        if self.training:  # images left without boxes by augmentation do not count
            has = torch.tensor([len(t["labels"]) > 0 for t in targets], device=images.device)
            if not has.any():
                return {"cls": out.sum() * 0, "box": out.sum() * 0}
            labels = torch.stack([t["labels"][0] for t in targets if len(t["labels"])])
            gt = torch.stack([t["boxes"][0] for t in targets if len(t["labels"])]) / scale
            return {"cls": nn.functional.cross_entropy(logits[has].float(), labels),
                    "box": (box[has].float() - gt).abs().mean()}
        scores, labels = logits.float().softmax(1).max(1)
        box = torch.cat([torch.minimum(box[:, :2], box[:, 2:]), torch.maximum(box[:, :2], box[:, 2:])], 1)
        return [{"boxes": (b * scale)[None], "scores": s[None], "labels": c[None]}
                for b, s, c in zip(box.float(), scores, labels)]


def make_loader(n: int = 16, batch: int = 4, seed: int = 0, sampler: str = "dist", shuffle: bool = True,
                num_workers: int = 0) -> DataLoader:
    ds = SyntheticBoxes(n)
    if sampler == "dist":
        return DataLoader(ds, batch_size=batch, sampler=train_sampler(ds, shuffle=shuffle, seed=seed),
                          collate_fn=collate, num_workers=num_workers)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, collate_fn=collate, num_workers=num_workers)


def make_cfg(out, **overrides) -> Config:
    """Small, quick settings: no warm-up surprises unless asked, no progress bar noise."""
    base = {"epochs": 2, "out": str(out), "device": "cpu", "lr": 0.05, "nbs": 4, "batch": 4,
            "warmup_epochs": 1.0, "ema_tau": 5.0, "patience": 0, "metric": "AP"}
    return load_config(None, base | overrides)


def box_metric(preds: list[dict], targets: list[dict]) -> dict[str, float]:
    """A stand-in for COCO AP: mean IoU of each image's first prediction with its first box,
    counted only when the class is right."""
    from torchvision.ops import box_iou

    vals = []
    for p, t in zip(preds, targets):
        iou = float(box_iou(p["boxes"][:1], t["boxes"][:1])[0, 0])
        vals.append(iou if int(p["labels"][0]) == int(t["labels"][0]) else 0.0)
    return {"AP": sum(vals) / len(vals), "n": float(len(vals)), "sum_score": float(sum(float(p["scores"][0]) for p in preds))}
