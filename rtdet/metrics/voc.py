"""PASCAL VOC average precision at IoU 0.5, ``difficult`` boxes ignored.

Two integrations of the precision-recall curve:

- VOC2007 (``use_07_metric=True``): the 11-point mean of the best precision at
  recall >= 0, 0.1, ..., 1.
- VOC2010+ (default): the area under the monotone precision envelope at every
  recall change ("all points").

Matching follows the devkit (:mod:`rtdet.metrics.match` with ``strict=True``: IoU
must exceed 0.5). Boxes are continuous xyxy pixels; pass ``pixel_offset=1`` to
reproduce the devkit's inclusive-pixel areas (w = x2 - x1 + 1) on raw VOC
coordinates. A class without ground truth has AP NaN and is left out of the mean
(the devkit would divide by zero).

The devkit's rules, in rtdet's frames: VOC XML boxes are inclusive 1-based pixels, which the
reader turns into continuous boxes once (:mod:`rtdet.data.voc`: ``[xmin - 1, ymin - 1, xmax,
ymax]``), so the devkit's ``+ 1`` in widths is already in the boxes and ``pixel_offset`` stays 0
for rtdet's data; a detection whose best overlap is a ``difficult`` box is neither a true nor a
false positive, and difficult boxes are not counted among the positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rtdet.metrics.match import class_curve, match_dataset


# The 11 recall points as the devkit's Python port computes them (np.arange, so the 4th is 0.30000000000000004
# and a recall of exactly 3/10 does not reach it): the published VOC07 numbers of py-faster-rcnn, Detectron2 and
# MMDetection come from these.
VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a PR curve: recall, precision float [D] in detection (score-descending) order."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if use_07_metric:
        ap = 0.0
        for t in VOC07_RECALLS:
            above = precision[recall >= t]
            ap += (above.max() if above.size else 0.0) / 11
        return float(ap)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope, from the right
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


VOC_METRICS = {"voc07": True, "voc": False}  # metric name -> 11-point interpolation (VOC2007) or all points (2010+)


@dataclass
class VocResult:
    """AP per class (float64 [K], NaN without ground truth) and their mean over defined classes."""

    names: list[str]
    ap: np.ndarray
    n_gt: np.ndarray
    mAP: float
    use_07_metric: bool = False

    def per_class(self) -> dict[str, float | None]:
        """``{class name: AP}``; None for a class without ground truth (JSON-ready)."""
        return {n: float(a) if np.isfinite(a) else None for n, a in zip(self.names, self.ap)}

    def table(self) -> str:
        """AP per class as text, under a title naming the interpolation."""
        width = max([5, *(len(n) for n in self.names)])
        kind = "VOC2007 11-point" if self.use_07_metric else "VOC all-point"
        lines = [f"PASCAL VOC AP@0.5 ({kind} interpolation, difficult objects ignored; '-': no ground truth)",
                 f"{'class':<{width}} {'gt':>6} {'AP50':>7}"]
        for n, g, a in zip(self.names, self.n_gt, self.ap):
            lines.append(f"{n:<{width}} {g:>6d} {a:7.4f}" if np.isfinite(a) else f"{n:<{width}} {g:>6d} {'-':>7}")
        lines.append(f"{'mean':<{width}} {int(self.n_gt.sum()):>6d} {self.mAP:7.4f}")
        return "\n".join(lines)


def evaluate_voc(preds: Sequence[dict], targets: Sequence[dict], names: Sequence[str], iou_thresh: float = 0.5,
                 use_07_metric: bool = False, pixel_offset: float = 0.0) -> VocResult:
    """VOC AP per class and mAP.

    Args:
        preds: per image ``{"boxes": [D, 4] xyxy, "scores": [D], "labels": [D] int}``.
        targets: per image ``{"boxes": [N, 4] xyxy, "labels": [N], "difficult": [N] bool}``
            (``iscrowd`` is ignored the same way), same pixel frame as ``preds``.
        names: class names (K).
    """
    k = len(names)
    m = match_dataset(preds, targets, k, iou_thresh, strict=True, pixel_offset=pixel_offset)
    ap = np.full(k, np.nan)
    for c in range(k):
        if m.n_gt[c] == 0:
            continue
        _, tp, fp = class_curve(m, c)
        rec = tp / m.n_gt[c]
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[c] = voc_ap(rec, prec, use_07_metric)
    defined = ap[np.isfinite(ap)]
    return VocResult(list(names), ap, m.n_gt, float(defined.mean()) if defined.size else float("nan"), use_07_metric)
