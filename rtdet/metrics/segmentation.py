"""Semantic segmentation metrics, defined as mmsegmentation's ``IoUMetric``: IoU, mIoU, aAcc, Acc, mAcc.

Per class ``c``, over every labelled pixel of the whole data set (summed, not averaged per image):

- ``intersect[c]``: pixels labelled ``c`` and predicted ``c``;
- ``pred_area[c]`` / ``label_area[c]``: pixels predicted ``c`` / labelled ``c``;
- ``union[c] = pred_area[c] + label_area[c] - intersect[c]``;
- ``IoU[c] = intersect / union`` and ``Acc[c] = intersect / label_area``: NaN when the
  denominator is 0 (a class never labelled and never predicted has no IoU; a class only
  predicted has IoU 0 and no Acc);
- ``mIoU`` and ``mAcc``: the mean over the classes whose value is not NaN (``np.nanmean``);
- ``aAcc = sum(intersect) / sum(label_area)``: the share of labelled pixels predicted right.

Pixels whose label is ``ignore_index`` are left out of everything (their prediction too). Every
number comes from one confusion matrix (rows true class, columns predicted class), accumulated
with one ``bincount`` of ``num_classes * label + pred`` per batch, on the tensors' own device.
Values are fractions in [0, 1] (mmsegmentation prints percentages).

Example:
    >>> metric = SegmentationMetric(num_classes=11, ignore_index=255, names=CAMVID_NAMES)  # doctest: +SKIP
    >>> for logits, masks in batches:                                                     # doctest: +SKIP
    ...     metric.update(logits.argmax(1), masks)       # int [B, H, W] each
    >>> result = metric.compute()                                                         # doctest: +SKIP
    >>> print(result.text()); result.miou, result.as_dict()["iou"]                        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rtdet.metrics.validate import MetricsInputError


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64, NaN where ``den`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


@dataclass
class SegmentationResult:
    """The numbers of one evaluation (module docstring); per-class arrays are [K] in the order of ``names``."""

    names: list[str]
    confusion: np.ndarray  # int64 [K, K]: rows true class, columns predicted class (labelled pixels only)
    intersect: np.ndarray  # int64 [K]
    union: np.ndarray  # int64 [K]
    pred_area: np.ndarray  # int64 [K]
    label_area: np.ndarray  # int64 [K]
    iou: np.ndarray  # float64 [K], NaN where union is 0
    acc: np.ndarray  # float64 [K], NaN where label_area is 0
    miou: float
    macc: float
    aacc: float  # NaN when no pixel is labelled

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, names: Sequence[str]) -> "SegmentationResult":
        """Every number from a confusion matrix int [K, K] (rows true, columns predicted)."""
        cm = np.asarray(confusion, np.int64)
        intersect, label_area, pred_area = np.diag(cm).copy(), cm.sum(1), cm.sum(0)
        union = pred_area + label_area - intersect
        iou, acc = _ratio(intersect, union), _ratio(intersect, label_area)
        aacc = float(_ratio(intersect.sum(), label_area.sum()))
        return cls(list(names), cm, intersect, union, pred_area, label_area, iou, acc, _nanmean(iou), _nanmean(acc),
                   aacc)

    @property
    def pixels(self) -> int:
        """Labelled pixels scored."""
        return int(self.label_area.sum())

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and lists for ``metrics.json`` (NaN becomes None)."""
        def f(x: float) -> float | None:
            return None if not math.isfinite(x) else float(x)

        return {
            "names": list(self.names), "pixels": self.pixels, "aAcc": f(self.aacc), "mIoU": f(self.miou),
            "mAcc": f(self.macc), "iou": [f(v) for v in self.iou], "acc": [f(v) for v in self.acc],
            "intersect": self.intersect.tolist(), "union": self.union.tolist(),
            "pred_area": self.pred_area.tolist(), "label_area": self.label_area.tolist(),
            "confusion_matrix": self.confusion.tolist(),
        }

    def text(self) -> str:
        """A readable table: the summary line, then IoU, Acc and pixels per class (``nan``: undefined)."""
        width = max([5, *(len(n) for n in self.names)])
        lines = [f"{self.pixels} labelled pixels, {len(self.names)} classes  aAcc {self.aacc:.4f}  "
                 f"mIoU {self.miou:.4f}  mAcc {self.macc:.4f}",
                 f"{'class':<{width}} {'IoU':>7} {'Acc':>7} {'labelled':>12} {'predicted':>12}"]
        for k, n in enumerate(self.names):
            lines.append(f"{n:<{width}} {self.iou[k]:7.4f} {self.acc[k]:7.4f} {self.label_area[k]:>12d} "
                         f"{self.pred_area[k]:>12d}")
        return "\n".join(lines)


class SegmentationMetric:
    """Accumulates a confusion matrix over batches; :meth:`compute` gives a :class:`SegmentationResult`.

    Args:
        num_classes: ``K``; labels and predictions are class indices ``0..K-1``.
        ignore_index: label value of pixels left out (unlabelled, padding).
        names: class names (default ``"0" .. "K-1"``).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, names: Sequence[str] | None = None):
        if num_classes < 1:
            raise MetricsInputError(f"num_classes must be at least 1, got {num_classes}")
        if names is not None and len(names) != num_classes:
            raise MetricsInputError(f"{len(names)} names for {num_classes} classes")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.names = list(names) if names is not None else [str(c) for c in range(num_classes)]
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add a prediction and its labels: int tensors or arrays of the same shape, [H, W] or [B, H, W].

        ``pred`` holds class indices (``logits.argmax(1)``), ``target`` class indices or ``ignore_index``.
        Raises MetricsInputError on other shapes, float inputs or values outside the classes.
        """
        import torch

        if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor) and pred.device == target.device:
            t, p = self._checked(pred, target)
            keep = t != self.ignore_index
            idx = t[keep].long() * self.num_classes + p[keep].long()
            counts = torch.bincount(idx, minlength=self.num_classes ** 2).cpu().numpy()
        else:
            t, p = self._checked(_np(pred), _np(target))
            keep = t != self.ignore_index
            idx = t[keep].astype(np.int64) * self.num_classes + p[keep].astype(np.int64)
            counts = np.bincount(idx, minlength=self.num_classes ** 2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes)

    def _checked(self, pred: Any, target: Any) -> tuple[Any, Any]:
        """``(target, pred)`` (tensors or arrays) after checking shapes, dtypes and values."""
        if tuple(pred.shape) != tuple(target.shape) or len(pred.shape) not in (2, 3):
            hint = " (pass logits.argmax(1), not the logits)" if len(pred.shape) == len(target.shape) + 1 else ""
            raise MetricsInputError(f"pred and target must both be [H, W] or [B, H, W], got {tuple(pred.shape)} and "
                                    f"{tuple(target.shape)}{hint}")
        for name, x in (("pred", pred), ("target", target)):
            if not _is_integer(x):
                raise MetricsInputError(f"{name} must hold integer class indices, got {x.dtype}")
        labelled = target != self.ignore_index
        for name, x in (("target", target[labelled]), ("pred", pred[labelled])):
            if x.shape[0] and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
                bad = int(x.min()) if int(x.min()) < 0 else int(x.max())
                extra = f" (or {self.ignore_index}: ignored)" if name == "target" else " at labelled pixels"
                raise MetricsInputError(f"{name} holds class {bad}, outside 0..{self.num_classes - 1}{extra}")
        return target, pred

    def compute(self) -> SegmentationResult:
        """The numbers over everything added since the last :meth:`reset`."""
        return SegmentationResult.from_confusion(self.confusion, self.names)


def _is_integer(x: Any) -> bool:
    """Whether a tensor or array holds integers (or booleans)."""
    dtype = x.dtype
    if hasattr(dtype, "is_floating_point"):  # torch
        return not (dtype.is_floating_point or dtype.is_complex)
    return dtype.kind in "uib"


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
