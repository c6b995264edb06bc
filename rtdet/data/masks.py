"""Class-index mask files: reading them, and how their stored values become classes.

A mask is read with Pillow, so a palette PNG (Pascal VOC) gives its palette indices, not its
colours; a 3-channel mask whose channels are equal is read as grey, one with colours is refused
(:class:`MaskError`). A :class:`LabelMapping` says which stored values are classes and which
mean "unlabelled" (CamVid's 11, VOC's 255, ADE20K's 0 with ``reduce_zero_label``);
:func:`value_table` turns it into a lookup table and :func:`mask_counts` counts a mask's pixels
per class and names the values that are neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from rtdet.data.dataset import ImageError

MAX_MASK_VALUE = 65535  # 16-bit masks at most


class MaskError(ImageError):
    """A mask file that is missing, does not decode, or holds colours instead of class indices."""


@dataclass(frozen=True)
class LabelMapping:
    """How the values stored in mask files become class indices."""

    num_classes: int
    ignore_values: tuple[int, ...] = (255,)  # stored values of unlabelled pixels
    reduce_zero_label: bool = False  # stored 0 is unlabelled, stored k is class k-1 (ADE20K)
    ignore_index: int = 255  # what unlabelled pixels become

    def __post_init__(self) -> None:
        if not 0 <= self.ignore_index <= MAX_MASK_VALUE or self.ignore_index < self.num_classes:
            raise ValueError(f"ignore_index {self.ignore_index} must lie in {self.num_classes}..{MAX_MASK_VALUE} "
                             f"(above the {self.num_classes} classes)")
        first = 1 if self.reduce_zero_label else 0
        clash = [v for v in self.ignore_values if first <= v < first + self.num_classes]
        if clash:
            raise ValueError(f"unlabelled value(s) {clash} are also class values ({self.class_values()})")

    @property
    def dtype(self) -> type:
        """uint8 when the classes and the ignore index fit in a byte, else uint16."""
        return np.uint8 if self.ignore_index <= 255 else np.uint16

    def class_values(self) -> str:
        """The stored values of the classes, in words."""
        first = 1 if self.reduce_zero_label else 0
        return f"{first}..{first + self.num_classes - 1}"

    def unlabelled_values(self) -> list[int]:
        return sorted({*self.ignore_values, *((0,) if self.reduce_zero_label else ())})


@lru_cache(maxsize=16)
def value_table(mapping: LabelMapping, size: int) -> np.ndarray:
    """int64 [size]: the class of each stored value, ``ignore_index`` for unlabelled values, -1 for invalid ones."""
    table = np.full(size, -1, np.int64)
    first = 1 if mapping.reduce_zero_label else 0
    stop = min(size, first + mapping.num_classes)
    table[first:stop] = np.arange(stop - first)
    table[[v for v in mapping.unlabelled_values() if v < size]] = mapping.ignore_index
    table.flags.writeable = False
    return table


def read_mask(path: str | Path) -> np.ndarray:
    """The values stored in a mask file: [H, W] uint8, uint16 or int32 (palette PNGs give their indices).

    Raises MaskError naming the file when it is missing, does not decode, or holds colours.
    """
    path = Path(path)
    if not path.is_file():
        raise MaskError(f"{path}: mask file not found")
    try:
        with Image.open(path) as im:
            mode, arr = im.mode, np.asarray(im)
    except Exception as e:  # Pillow raises many types for broken files
        raise MaskError(f"{path}: mask does not decode ({type(e).__name__}: {e})") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 3:
        if mode not in ("LA", "PA") and not (arr[..., 1:3] == arr[..., :1]).all():
            raise MaskError(f"{path}: colour ({mode}) mask, expected one channel of class indices (a grayscale "
                            f"or palette PNG); map its colours to class indices first")
        arr = arr[..., 0]
    if arr.dtype.kind not in "ui":
        raise MaskError(f"{path}: {arr.dtype} ({mode}) mask, expected integer class indices")
    return np.ascontiguousarray(arr)


def mask_counts(raw: np.ndarray, mapping: LabelMapping) -> tuple[np.ndarray, int, str | None]:
    """Pixels per class (int64 [K]) and unlabelled pixels of a stored mask [H, W], and what is wrong with
    its values (``None`` when nothing): the invalid values and their pixel counts."""
    k = mapping.num_classes
    lo, hi = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)
    if lo < 0 or hi > MAX_MASK_VALUE:
        return np.zeros(k, np.int64), 0, f"mask values {lo}..{hi} outside 0..{MAX_MASK_VALUE}"
    counts = np.bincount(raw.ravel(), minlength=1)
    table = value_table(mapping, len(counts))
    bad = np.flatnonzero((table < 0) & (counts > 0))
    problem = None
    if len(bad):
        listed = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        problem = (f"mask values that are neither a class ({mapping.class_values()}) nor unlabelled "
                   f"({', '.join(map(str, mapping.unlabelled_values()))}): {listed}")
    is_class = (table >= 0) & (table < k)
    per_class = np.bincount(table[is_class], weights=counts[is_class], minlength=k).astype(np.int64)
    ignored = int(counts[table == mapping.ignore_index].sum())
    return per_class, ignored, problem
