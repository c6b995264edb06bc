"""Image classification metrics: accuracy, top-k, per-class P/R/F1, confusion matrix, ROC / AUC.

Inputs are tensors or arrays: ``y_true`` int [N] in 0..K-1, ``y_pred`` int [N],
``scores`` float [N, K] (logits or probabilities; only their order matters).
Conventions follow scikit-learn, which the tests compare against: a class never
predicted has precision 0, one never present has recall 0; top-k ties rank the
higher class index first; ROC curves are one-vs-rest, start at (0, 0) with
threshold +inf and keep every distinct score (``drop_intermediate=False``); AUC
is NaN for a class that is always or never the true one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


def _np(x: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(y_true: np.ndarray, other: np.ndarray, what: str) -> None:
    if y_true.ndim != 1 or len(other) != len(y_true):
        raise ValueError(f"y_true must be [N] and {what} have N rows; got {y_true.shape} and {other.shape}")


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct predictions; ``y_pred`` int [N] or scores [N, K] (argmax)."""
    t, p = _np(y_true, np.int64), _np(y_pred)
    p = p.argmax(1) if p.ndim == 2 else p.astype(np.int64)
    _check(t, p, "y_pred")
    return float((t == p).mean()) if len(t) else float("nan")


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Share of samples whose true class is among the ``k`` highest scores [N, K]."""
    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    true_score = s[np.arange(len(t)), t]
    above = (s > true_score[:, None]).sum(1)
    tied_before = ((s == true_score[:, None]) & (np.arange(s.shape[1]) > t[:, None])).sum(1)
    return float(((above + tied_before) < k).mean()) if len(t) else float("nan")


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """int64 [K, K]: rows true class, columns predicted class."""
    t, p = _np(y_true, np.int64), _np(y_pred, np.int64)
    _check(t, p, "y_pred")
    for name, v in (("y_true", t), ("y_pred", p)):
        if len(v) and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} has a class outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def precision_recall_f1(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float64 [K]) and ``support`` (int64 [K])."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(0), cm.sum(1)
    p = np.divide(tp, predicted, out=np.zeros(num_classes), where=predicted > 0)
    r = np.divide(tp, support, out=np.zeros(num_classes), where=support > 0)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros(num_classes), where=(p + r) > 0)
    return {"precision": p, "recall": r, "f1": f1, "support": support}


def roc_curve(is_positive: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary ROC: ``(fpr, tpr, thresholds)``, each float64 [T + 1], thresholds descending from +inf."""
    y, s = _np(is_positive, bool), _np(score, np.float64)
    order = np.argsort(s, kind="mergesort")[::-1]  # scikit-learn's order, so ties group identically
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, np.int64)
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = 1 + last - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full(len(fps), np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full(len(tps), np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc_ovr(y_true: Any, scores: Any) -> tuple[np.ndarray, float]:
    """One-vs-rest AUC per class (float64 [K], NaN where undefined) and their mean over defined classes."""
    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    aucs = np.full(s.shape[1], np.nan)
    for k in range(s.shape[1]):
        pos = t == k
        if pos.any() and not pos.all():
            fpr, tpr, _ = roc_curve(pos, s[:, k])
            aucs[k] = np.trapezoid(tpr, fpr)
    defined = aucs[np.isfinite(aucs)]
    return aucs, float(defined.mean()) if defined.size else float("nan")


@dataclass
class ClassificationResult:
    """Everything at once, for a validation loop: see :func:`classification_metrics`."""

    names: list[str]
    accuracy: float
    top_k: dict[int, float]
    per_class: dict[str, np.ndarray]
    confusion: np.ndarray
    auc: np.ndarray
    mean_auc: float

    def table(self) -> str:
        width = max([5, *(len(n) for n in self.names)])
        tops = "  ".join(f"top-{k} {v:.4f}" for k, v in self.top_k.items())
        lines = [f"accuracy {self.accuracy:.4f}  {tops}  mean AUC {self.mean_auc:.4f}",
                 f"{'class':<{width}} {'n':>6} {'P':>6} {'R':>6} {'F1':>6} {'AUC':>6}"]
        pc = self.per_class
        for k, n in enumerate(self.names):
            lines.append(f"{n:<{width}} {pc['support'][k]:>6d} {pc['precision'][k]:6.3f} {pc['recall'][k]:6.3f} "
                         f"{pc['f1'][k]:6.3f} {self.auc[k]:6.3f}")
        return "\n".join(lines)


def classification_metrics(y_true: Any, scores: Any, names: Sequence[str],
                           top_k: Sequence[int] = (1, 5)) -> ClassificationResult:
    """All classification metrics from true labels [N] and class scores [N, K]."""
    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    if s.ndim != 2 or s.shape[1] != len(names):
        raise ValueError(f"scores must be [N, {len(names)}] for {len(names)} names, got {s.shape}")
    pred = s.argmax(1)
    aucs, mean_auc = roc_auc_ovr(t, s)
    return ClassificationResult(
        names=list(names), accuracy=accuracy(t, pred),
        top_k={k: top_k_accuracy(t, s, k) for k in top_k if k <= s.shape[1]},
        per_class=precision_recall_f1(t, pred, len(names)), confusion=confusion_matrix(t, pred, len(names)),
        auc=aucs, mean_auc=mean_auc,
    )
