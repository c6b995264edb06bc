"""Greedy detection-to-ground-truth matching at one IoU threshold (PASCAL VOC rules).

Shared by :mod:`rtdet.metrics.voc` (VOC AP) and :mod:`rtdet.metrics.prf`
(precision / recall / F1, PR curves). Per image and class, detections are taken
by descending score (ties: earlier first); each takes the ground-truth box of its
class it overlaps most. If that overlap passes the threshold the detection is a
true positive, unless the box is ignored (``difficult`` / ``iscrowd``), then the
detection is left out entirely, or the box was already taken, then it is a
false positive (a duplicate). Below the threshold it is a false positive.

Inputs are rtdet's per-image dicts (tensors or arrays, xyxy boxes in one pixel frame):
predictions ``{"boxes", "scores", "labels"}`` and targets ``{"boxes", "labels",
"iscrowd"?, "difficult"?}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rtdet.metrics.validate import MetricsInputError


@dataclass
class Matches:
    """Every kept detection of a data set, flattened, and ground-truth counts.

    scores: float64 [D]; labels: int64 [D]; tp: bool [D] (False = false positive);
    image: int64 [D] index of the image; n_gt: int64 [K] ground-truth boxes per
    class that are not ignored. Detections matched to ignored boxes are absent.
    """

    scores: np.ndarray
    labels: np.ndarray
    tp: np.ndarray
    image: np.ndarray
    n_gt: np.ndarray


def as_array(x: Any, dtype: Any, tail: tuple[int, ...] = ()) -> np.ndarray:
    """A tensor / array / list as a NumPy array of ``dtype`` and shape ``[-1, *tail]``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape((-1, *tail))


def iou_matrix(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """IoU of xyxy boxes a [N, 4] and b [M, 4] -> float64 [N, M]; 0 where the union is 0.

    ``pixel_offset=1`` reproduces the VOC devkit's inclusive pixel convention
    (width = x2 - x1 + 1).
    """
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt + pixel_offset, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0] + pixel_offset) * (a[:, 3] - a[:, 1] + pixel_offset)
    area_b = (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def image_arrays(pred: dict, target: dict, num_classes: int, index: int) -> tuple[np.ndarray, ...]:
    """``(gt_boxes, gt_labels, gt_ignore, boxes, scores, labels)`` of one image, checked."""
    gb, gl = as_array(target["boxes"], np.float64, (4,)), as_array(target["labels"], np.int64)
    ignore = np.zeros(len(gb), bool)
    for key in ("iscrowd", "difficult"):
        if key in target:
            ignore |= as_array(target[key], bool)
    pb, ps, pl = (as_array(pred["boxes"], np.float64, (4,)), as_array(pred["scores"], np.float64),
                  as_array(pred["labels"], np.int64))
    if len(gl) != len(gb) or len(ignore) != len(gb) or not len(pb) == len(ps) == len(pl):
        raise MetricsInputError(f"image {index}: boxes, labels and flags/scores differ in length")
    for what, lab in (("targets", gl), ("predictions", pl)):
        if ((lab < 0) | (lab >= num_classes)).any():
            raise MetricsInputError(f"image {index}: {what} have a label outside 0..{num_classes - 1}")
    if not (np.isfinite(gb).all() and np.isfinite(pb).all() and np.isfinite(ps).all()):
        raise MetricsInputError(f"image {index}: non-finite box or score")
    return gb, gl, ignore, pb, ps, pl


def match_image(gb: np.ndarray, gl: np.ndarray, ignore: np.ndarray, pb: np.ndarray, ps: np.ndarray,
                pl: np.ndarray, iou_thresh: float, strict: bool = False,
                pixel_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's detections: ``(tp bool [D], kept bool [D])``.

    ``kept`` is False for detections matched to an ignored box. ``strict``
    requires IoU > threshold (the VOC devkit) instead of >= (COCO).
    """
    tp, kept = np.zeros(len(pb), bool), np.ones(len(pb), bool)
    for c in np.unique(pl):
        d_idx = np.flatnonzero(pl == c)
        g_idx = np.flatnonzero(gl == c)
        if not len(g_idx):
            continue
        d_idx = d_idx[np.argsort(-ps[d_idx], kind="stable")]
        iou = iou_matrix(pb[d_idx], gb[g_idx], pixel_offset)
        best = iou.argmax(1)
        best_iou = iou[np.arange(len(d_idx)), best]
        hit = best_iou > iou_thresh if strict else best_iou >= iou_thresh
        taken = np.zeros(len(g_idx), bool)
        for j, d in enumerate(d_idx):  # sequential: a box taken by a higher score is gone
            if not hit[j]:
                continue
            g = best[j]
            if ignore[g_idx[g]]:
                kept[d] = False
            elif not taken[g]:
                tp[d] = taken[g] = True
    return tp, kept


def match_dataset(preds: Sequence[dict], targets: Sequence[dict], num_classes: int, iou_thresh: float = 0.5,
                  strict: bool = False, pixel_offset: float = 0.0) -> Matches:
    """Match every image (see module doc) and flatten the kept detections."""
    if len(preds) != len(targets):
        raise MetricsInputError(f"{len(preds)} predictions for {len(targets)} targets: one per image expected")
    parts: list[tuple[np.ndarray, ...]] = []
    n_gt = np.zeros(num_classes, np.int64)
    for i, (p, t) in enumerate(zip(preds, targets)):
        gb, gl, ignore, pb, ps, pl = image_arrays(p, t, num_classes, i)
        n_gt += np.bincount(gl[~ignore], minlength=num_classes)
        tp, kept = match_image(gb, gl, ignore, pb, ps, pl, iou_thresh, strict, pixel_offset)
        parts.append((ps[kept], pl[kept], tp[kept], np.full(int(kept.sum()), i, np.int64)))
    if not parts:
        return Matches(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64), n_gt)
    scores, labels, tp, image = (np.concatenate(x) for x in zip(*parts))
    return Matches(scores, labels, tp, image, n_gt)


def class_curve(m: Matches, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores desc, cumulative TP, cumulative FP)`` of class ``k``, each float64 [D_k].

    Ties keep dataset order (image, then score order within the image).
    """
    sel = np.flatnonzero(m.labels == k)
    order = sel[np.argsort(-m.scores[sel], kind="stable")]
    tp = m.tp[order].astype(np.float64)
    return m.scores[order], np.cumsum(tp), np.cumsum(1.0 - tp)
