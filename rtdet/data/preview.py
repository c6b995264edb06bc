"""``rtdet data preview``: a grid picture of (augmented) samples with their boxes and class names."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from rtdet.config import DataConfig, DetectConfig
from rtdet.data.dataset import DetectionDataset
from rtdet.data.pipeline import DetectionPipeline


def _colour(label: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(label)
    return tuple(int(v) for v in rng.integers(40, 256, 3))


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, names: list[str]) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB) with xyxy ``boxes`` [n,4] and their class names drawn."""
    out = np.ascontiguousarray(image).copy()
    for (x1, y1, x2, y2), c in zip(np.asarray(boxes).round().astype(int), np.asarray(labels)):
        col = _colour(int(c))
        cv2.rectangle(out, (x1, y1), (x2, y2), col, 1)
        text = names[c] if 0 <= c < len(names) else str(c)
        cv2.putText(out, text, (x1 + 1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1, cv2.LINE_AA)
    return out


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
        tile = draw_boxes(img, t["boxes"].numpy(), t["labels"].numpy(), dataset.names)
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
        drawn = draw_boxes(image, np.asarray(p["boxes"])[keep], np.arange(len(text)), text)
        scale = tile / max(drawn.shape[:2])
        small = cv2.resize(drawn, (round(drawn.shape[1] * scale), round(drawn.shape[0] * scale)))
        r, c = divmod(k, cols)
        grid[r * tile:r * tile + small.shape[0], c * tile:c * tile + small.shape[1]] = small
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
    return out
