"""Practical detection metrics: precision, recall and F1 per class, PR curves, confusion matrix.

These are the numbers people tune a confidence threshold with; the official
ranking number stays COCO AP (:mod:`rtdet.metrics.coco`).

Detections are matched at one IoU threshold (default 0.5) with VOC rules
(:mod:`rtdet.metrics.match`, IoU >= threshold); crowd and difficult boxes are
ignored. At a confidence ``t`` a class keeps its detections with score >= t:
precision = TP / kept (0 when nothing is kept), recall = TP / ground truth,
F1 = 2PR / (P + R) (0 when both are 0). "Mean" always means the mean over
classes that have ground truth. The best confidence is searched exactly over
every detection score, not on a grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rtdet.metrics.match import Matches, class_curve, image_arrays, iou_matrix, match_dataset
from rtdet.metrics.voc import voc_ap

RECALL_POINTS = np.linspace(0, 1, 101)  # COCO's recall grid, for PR curves


@dataclass
class ClassPRF:
    """Precision, recall, F1 per class (float64 [K]) at one confidence ``conf``."""

    conf: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    has_gt: np.ndarray  # bool [K]

    def mean(self) -> dict[str, float]:
        """Means over classes with ground truth (NaN when none has)."""
        sel = self.has_gt
        if not sel.any():
            return {"precision": float("nan"), "recall": float("nan"), "f1": float("nan")}
        return {k: float(getattr(self, k)[sel].mean()) for k in ("precision", "recall", "f1")}


@dataclass
class PRFResult:
    """Everything the PR / F1 pictures and the P/R/F1 tables need.

    best: P/R/F1 at the confidence that maximizes mean F1. conf_grid: float64 [C]
    confidences of the F1 curve, with precision/recall/f1 float64 [K, C] on it.
    pr_precision: float64 [K, 101] interpolated precision on ``RECALL_POINTS``
    (NaN for classes without ground truth). ap50: float64 [K] all-point AP.
    """

    names: list[str]
    n_gt: np.ndarray
    best: ClassPRF
    conf_grid: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    pr_precision: np.ndarray
    ap50: np.ndarray
    matches: Matches

    def at(self, conf: float) -> ClassPRF:
        """P/R/F1 per class at a user-chosen confidence (exact, not read off the grid)."""
        return prf_at(self.matches, np.array([conf]), column=0)

    def table(self, at: ClassPRF | None = None) -> str:
        """Per-class P/R/F1 (at the best confidence unless ``at`` is given) as text."""
        at = at or self.best
        width = max([5, *(len(n) for n in self.names)])
        lines = [f"P/R/F1 at conf {at.conf:.4f}",
                 f"{'class':<{width}} {'gt':>6} {'P':>6} {'R':>6} {'F1':>6} {'AP50':>6}"]
        for k, n in enumerate(self.names):
            if at.has_gt[k]:
                lines.append(f"{n:<{width}} {self.n_gt[k]:>6d} {at.precision[k]:6.3f} {at.recall[k]:6.3f} "
                             f"{at.f1[k]:6.3f} {self.ap50[k]:6.3f}")
        m = at.mean()
        ap = np.nanmean(self.ap50) if np.isfinite(self.ap50).any() else float("nan")
        lines.append(f"{'mean':<{width}} {int(self.n_gt.sum()):>6d} {m['precision']:6.3f} {m['recall']:6.3f} "
                     f"{m['f1']:6.3f} {ap:6.3f}")
        return "\n".join(lines)


def _class_at(m: Matches, k: int, confs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(kept count, TP count)`` of class ``k`` at each confidence in ``confs`` (float64 [C])."""
    scores, tp, _ = class_curve(m, k)
    n = np.searchsorted(-scores, -confs, side="right")  # detections with score >= conf
    tps = np.where(n > 0, tp[np.maximum(n - 1, 0)] if len(tp) else 0.0, 0.0)
    return n.astype(np.float64), tps


def prf_at(m: Matches, confs: np.ndarray, column: int | None = None):
    """P, R, F1 float64 [K, C] at each confidence; with ``column``, a :class:`ClassPRF` for that one."""
    k = len(m.n_gt)
    p, r = np.zeros((k, len(confs))), np.zeros((k, len(confs)))
    for c in range(k):
        n, tp = _class_at(m, c, confs)
        p[c] = np.divide(tp, n, out=np.zeros_like(tp), where=n > 0)
        if m.n_gt[c]:
            r[c] = tp / m.n_gt[c]
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    if column is None:
        return p, r, f1
    return ClassPRF(float(confs[column]), p[:, column], r[:, column], f1[:, column], m.n_gt > 0)


def _best_conf(m: Matches) -> float:
    """The detection score that maximizes mean F1 over classes with GT (lowest such score on ties)."""
    candidates = np.unique(m.scores)
    if not candidates.size or not (m.n_gt > 0).any():
        return 0.0
    total = np.zeros(len(candidates))
    for c in np.flatnonzero(m.n_gt > 0):  # one class at a time: K x C at COCO scale would be large
        n, tp = _class_at(m, c, candidates)
        p = np.divide(tp, n, out=np.zeros_like(tp), where=n > 0)
        r = tp / m.n_gt[c]
        total += np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return float(candidates[np.argmax(total)])  # candidates ascend: argmax takes the lowest best score


def _pr_curve(m: Matches, k: int) -> tuple[np.ndarray, float]:
    """Interpolated precision on ``RECALL_POINTS`` and all-point AP of class ``k``."""
    if not m.n_gt[k]:
        return np.full(len(RECALL_POINTS), np.nan), float("nan")
    _, tp, fp = class_curve(m, k)
    rec = tp / m.n_gt[k]
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    env = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec  # precision envelope
    idx = np.searchsorted(rec, RECALL_POINTS, side="left")  # first detection reaching each recall
    curve = np.zeros(len(RECALL_POINTS))
    reached = idx < len(env)
    curve[reached] = env[idx[reached]]
    return curve, voc_ap(rec, prec)


def precision_recall_f1(preds: Sequence[dict], targets: Sequence[dict], names: Sequence[str],
                        iou_thresh: float = 0.5, grid: int = 1001) -> PRFResult:
    """P/R/F1 curves per class and their best operating point.

    Args:
        preds: per image ``{"boxes": [D, 4] xyxy, "scores": [D], "labels": [D] int}``.
        targets: per image ``{"boxes": [N, 4] xyxy, "labels": [N], "iscrowd"?, "difficult"?}``,
            same pixel frame as ``preds``.
        names: class names (K).
        iou_thresh: IoU for a detection to count as a true positive.
        grid: points of the confidence axis of the F1 curve (0..1).
    """
    m = match_dataset(preds, targets, len(names), iou_thresh)
    conf_grid = np.linspace(0, 1, grid)
    p, r, f1 = prf_at(m, conf_grid)
    best = prf_at(m, np.array([_best_conf(m)]), column=0)
    curves = [_pr_curve(m, k) for k in range(len(names))]
    return PRFResult(list(names), m.n_gt, best, conf_grid, p, r, f1,
                     np.array([c for c, _ in curves]).reshape(len(names), -1), np.array([a for _, a in curves]), m)


def confusion_matrix(preds: Sequence[dict], targets: Sequence[dict], num_classes: int, conf: float = 0.25,
                     iou_thresh: float = 0.45) -> np.ndarray:
    """Detection confusion matrix with a background row and column: int64 [K + 1, K + 1].

    Rows are the true class, columns the predicted class; index K is background:
    ``[g, K]`` counts missed boxes of class g, ``[K, p]`` detections of class p on
    nothing. Detections with score >= ``conf`` are paired with boxes of any class
    greedily by descending IoU (>= ``iou_thresh``), each used once; a detection
    left over that overlaps an ignored (crowd / difficult) box is not counted.
    """
    k = num_classes
    cm = np.zeros((k + 1, k + 1), np.int64)
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    for i, (p, t) in enumerate(zip(preds, targets)):
        gb, gl, ignore, pb, ps, pl = image_arrays(p, t, k, i)
        keep = ps >= conf
        pb, pl = pb[keep], pl[keep]
        iou = iou_matrix(gb, pb)  # [G, D]
        g_used, d_used = ignore.copy(), np.zeros(len(pb), bool)
        if iou.size:
            gi, di = np.nonzero(iou >= iou_thresh)
            order = np.argsort(-iou[gi, di], kind="stable")
            for g, d in zip(gi[order], di[order]):
                if not g_used[g] and not d_used[d]:
                    g_used[g] = d_used[d] = True
                    cm[gl[g], pl[d]] += 1
            if ignore.any():  # leftovers on ignored boxes are neither hits nor false alarms
                d_used |= (iou[ignore] >= iou_thresh).any(0)
        np.add.at(cm, (gl[~g_used], k), 1)
        np.add.at(cm, (k, pl[~d_used]), 1)
    return cm


def normalize_confusion(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true class's boxes per prediction); empty rows stay 0."""
    sums = cm.sum(1, keepdims=True).astype(np.float64)
    return np.divide(cm, sums, out=np.zeros(cm.shape), where=sums > 0)
