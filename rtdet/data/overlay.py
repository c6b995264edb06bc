"""Pictures of class maps: colours per class laid over the image, a legend, and comparison grids.

A class keeps its colour in every picture rtdet draws (:func:`rtdet.data.preview.colour`, the
boxes' colours too). Pixels whose value is not a class (unlabelled, ``ignore_index``) keep the
image's own colours in an overlay and are black in a plain colour map. Images are uint8
``[H, W, 3]`` RGB; class maps are integer ``[H, W]`` of the same size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtdet.data.preview import colour

LEGEND_ROWS = 20  # classes listed in a legend at most (the most frequent; "+n more" after them)


def palette(num_classes: int) -> np.ndarray:
    """uint8 [K + 1, 3]: the RGB colour of each class, then black for everything else."""
    return np.array([colour(k) for k in range(num_classes)] + [(0, 0, 0)], np.uint8)


def colour_map(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 [H, W, 3]: each pixel in its class colour; values outside ``0..K-1`` black."""
    m = np.asarray(mask).astype(np.int64)
    return palette(num_classes)[np.where((m >= 0) & (m < num_classes), m, num_classes)]


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float) -> np.ndarray:
    """A copy of ``image`` with the class colours of ``mask`` blended in at opacity ``alpha`` (0..1);
    pixels that are not a class keep the image."""
    if image.shape[:2] != np.asarray(mask).shape[:2]:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} and mask {mask.shape[1]}x{mask.shape[0]} differ")
    m = np.asarray(mask)
    rgb = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image
    blended = cv2.addWeighted(rgb, 1.0 - alpha, colour_map(m, num_classes), alpha, 0.0)
    return np.where(((m >= 0) & (m < num_classes))[..., None], blended, rgb).astype(np.uint8)


def draw_legend(image: np.ndarray, counts: np.ndarray, names: list[str]) -> np.ndarray:
    """A copy of ``image`` with a legend in its top-left corner: a colour swatch and the name of each class
    with pixels (``counts`` int [K]), the most frequent first (at most :data:`LEGEND_ROWS`)."""
    out = np.ascontiguousarray(image).copy()
    present = [int(k) for k in np.argsort(-np.asarray(counts), kind="stable") if counts[k] > 0]
    rows = [(k, names[k] if k < len(names) else str(k)) for k in present[:LEGEND_ROWS]]
    if len(present) > LEGEND_ROWS:
        rows.append((-1, f"+{len(present) - LEGEND_ROWS} more"))
    font = max(0.35, min(out.shape[:2]) / 700)  # OpenCV font scale: ~11 px high at 0.5
    step = max(8, int(24 * font))
    width = max((cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0] for _, t in rows), default=0)
    box = out[:min(len(rows) * step + 6, out.shape[0]), :min(width + step + 10, out.shape[1])]
    box[:] = (box * 0.4).astype(np.uint8)  # darkened background keeps the text legible on any scene
    for row, (k, text) in enumerate(rows):
        y0 = 3 + row * step
        if k >= 0:
            cv2.rectangle(out, (4, y0 + 1), (4 + step - 4, y0 + step - 3), colour(k), -1)
        cv2.putText(out, text, (step + 6, y0 + step - 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def comparison_grid(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], names: list[str], path: str | Path,
                    alpha: float, side: int = 320) -> Path:
    """One row per image: the image, its ground truth and the prediction laid over it, each with the legend
    of the classes it shows; every panel resized to ``side`` pixels wide. Written as PNG to ``path``.

    Args:
        rows: ``(image uint8 [H, W, 3], ground truth [H, W], prediction [H, W])`` per image.
    """
    k, panels = len(names), []
    for image, truth, pred in rows:
        row = []
        for mask, title in ((None, "image"), (truth, "ground truth"), (pred, "prediction")):
            p = image if mask is None else overlay(image, mask, k, alpha)
            h = max(1, round(p.shape[0] * side / p.shape[1]))
            p = cv2.resize(p, (side, h), interpolation=cv2.INTER_NEAREST)
            if mask is not None:  # drawn at the panel's size, so that the text stays legible
                p = draw_legend(p, np.bincount(np.clip(np.asarray(mask).ravel(), 0, k), minlength=k + 1)[:k], names)
            cv2.putText(p, title, (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(p)
        panels.append(np.concatenate(row, 1))
    width = max(p.shape[1] for p in panels)
    grid = np.concatenate([np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0))) for p in panels], 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path
