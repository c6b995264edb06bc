"""``rtdet data preview``: a grid picture of (augmented) samples with their boxes and class names."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from rtdet.config import DataConfig, DetectConfig
from rtdet.data.dataset import DetectionDataset
from rtdet.data.pipeline import DetectionPipeline


def colour(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label``: the same in every picture rtdet draws."""
    rng = np.random.default_rng(label)
    return tuple(int(v) for v in rng.integers(40, 256, 3))


def draw_boxes(image: np.ndarray, boxes: Any, labels: Any, texts: list[str]) -> np.ndarray:
    """A copy of ``image`` (uint8 HxWx3 RGB) with xyxy ``boxes`` [n, 4] (original pixels) drawn in their
    class colour (``labels`` int [n]) with ``texts`` [n] beside them: torchvision's ``draw_bounding_boxes``
    (its built-in bitmap font; nothing is fetched). The one box drawer of previews, grids and predict."""
    from torchvision.utils import draw_bounding_boxes

    if len(texts) == 0:
        return np.ascontiguousarray(image).copy()
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    width = max(1, round(max(image.shape[:2]) / 400))
    drawn = draw_bounding_boxes(chw, torch.as_tensor(np.asarray(boxes, np.float32)).reshape(-1, 4), labels=texts,
                                colors=[colour(int(c)) for c in np.asarray(labels)], width=width)
    return drawn.permute(1, 2, 0).numpy().copy()


def _names(labels: np.ndarray, names: list[str]) -> list[str]:
    return [names[c] if 0 <= c < len(names) else str(c) for c in np.asarray(labels).tolist()]


def preview(dataset: DetectionDataset, out: str | Path, cfg: DataConfig | None = None, n: int = 16,
            train: bool = True, seed: int = 0, detect: DetectConfig | None = None) -> Path:
    """Write a grid of ``n`` samples as the loader produces them (augmented when ``train``) to ``out``."""
    cfg = cfg or DataConfig()
    pipe = DetectionPipeline(dataset, cfg, train, seed=seed, detect=detect)
    n = min(n, len(pipe))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    s = cfg.imgsz
    grid = np.full((rows * s, cols * s, 3), 255, np.uint8)
    for k in range(n):
        img, t = pipe[k]
        tile = draw_boxes(img, t["boxes"].numpy(), t["labels"].numpy(), _names(t["labels"].numpy(), dataset.names))
        r, c = divmod(k, cols)
        grid[r * s:r * s + tile.shape[0], c * s:c * s + tile.shape[1]] = tile[:s, :s]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
    return out


def prediction_grid(dataset: DetectionDataset, preds: list[dict], names: list[str], out: str | Path,
                    n: int = 16, conf: float = 0.25, tile: int = 320) -> Path:
    """A grid of the first ``n`` predicted images with boxes scoring at least ``conf``.

    ``preds``: per image ``{"image_id", "boxes" [K,4] xyxy original pixels, "scores" [K], "labels" [K]}``.
    """
    index = {int(v): i for i, v in enumerate(dataset.image_ids)}
    preds = [p for p in preds if int(p["image_id"]) in index][:n]
    cols = max(math.ceil(math.sqrt(len(preds))), 1)
    rows = max(math.ceil(len(preds) / cols), 1)
    grid = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for k, p in enumerate(preds):
        image, _ = dataset[index[int(p["image_id"])]]
        keep = np.asarray(p["scores"]) >= conf
        labels = np.asarray(p["labels"])[keep]
        text = [f"{names[c]} {s:.2f}" for c, s in zip(labels, np.asarray(p["scores"])[keep])]
        drawn = draw_boxes(image, np.asarray(p["boxes"])[keep], labels, text)
        scale = tile / max(drawn.shape[:2])
        small = cv2.resize(drawn, (round(drawn.shape[1] * scale), round(drawn.shape[0] * scale)))
        r, c = divmod(k, cols)
        grid[r * tile:r * tile + small.shape[0], c * tile:c * tile + small.shape[1]] = small
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
    return out
