"""Image classification metrics, computed by scikit-learn: accuracy, top-k, P/R/F1, confusion, ROC / AUC, PR / AP.

Inputs are tensors or arrays: ``y_true`` int [N] in ``0..K-1`` and ``probs``
float [N, K] (softmax probabilities; any scores work, since only their order
matters for top-k, ROC and PR). The prediction is ``probs.argmax(1)`` (the lowest
class index wins a tie), so top-1 accuracy equals ``accuracy_score(y_true, argmax)``.

Conventions (scikit-learn's, which the tests compare against):

- top-5 means top-``min(5, K)``.
- Precision / recall / F1 per class over ``labels=range(K)`` with
  ``zero_division=0``: a class never predicted has precision 0, one never true
  has recall 0 and support 0. Macro averages weigh every one of the K classes
  equally (absent ones included, as scikit-learn does); weighted averages weigh
  by support.
- ROC curves and AUC are one-vs-rest. A class absent from ``y_true`` (or
  present in every sample) has no ROC curve: its AUC is NaN (scikit-learn
  warns and returns NaN too). The macro AUC is the mean over the classes whose
  AUC is defined, whereas scikit-learn's ``roc_auc_score(multi_class="ovr",
  average="macro")`` returns NaN as soon as one class is absent. The micro AUC
  pools all N x K (one-hot, score) pairs: scikit-learn's ``average="micro"``, defined
  whenever N >= 1 and K >= 2.
- Average precision (AP) per class is ``average_precision_score``; NaN for a
  class absent from ``y_true`` (scikit-learn returns 0 with a warning: with no
  positives, precision-recall is undefined). mAP is the mean over defined classes.

scikit-learn is imported when first used, so importing :mod:`rtdet.metrics` stays cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

TOP_K = 5


def _np(x: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(y_true: np.ndarray, other: np.ndarray, what: str) -> None:
    if y_true.ndim != 1 or len(other) != len(y_true):
        raise ValueError(f"y_true must be [N] and {what} have N rows; got {y_true.shape} and {other.shape}")


def _check_labels(y: np.ndarray, num_classes: int, name: str) -> None:
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} has a class outside 0..{num_classes - 1} (min {y.min()}, max {y.max()})")


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of correct predictions; ``y_pred`` int [N] or scores [N, K] (argmax). NaN when N = 0."""
    t, p = _np(y_true, np.int64), _np(y_pred)
    p = p.argmax(1) if p.ndim == 2 else p.astype(np.int64)
    _check(t, p, "y_pred")
    return float((t == p).mean()) if len(t) else float("nan")


def top_k_accuracy(y_true: Any, scores: Any, k: int = TOP_K) -> float:
    """Share of samples whose true class is among the ``k`` highest of ``scores`` [N, K].

    ``k = 1`` is :func:`accuracy` of the argmax; ``k >= K`` is 1; else scikit-learn's
    ``top_k_accuracy_score``.
    """
    from sklearn.metrics import top_k_accuracy_score

    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    if not len(t):
        return float("nan")
    if k <= 1:
        return accuracy(t, s)
    if k >= s.shape[1]:
        return 1.0
    return float(top_k_accuracy_score(t, s, k=k, labels=np.arange(s.shape[1])))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """int64 [K, K]: rows true class, columns predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    t, p = _np(y_true, np.int64), _np(y_pred, np.int64)
    _check(t, p, "y_pred")
    _check_labels(t, num_classes, "y_true")
    _check_labels(p, num_classes, "y_pred")
    if not len(t):
        return np.zeros((num_classes, num_classes), np.int64)
    return sk_confusion(t, p, labels=np.arange(num_classes)).astype(np.int64)


def precision_recall_f1(y_true: Any, y_pred: Any, num_classes: int, average: str | None = None
                        ) -> dict[str, Any]:
    """``precision``, ``recall``, ``f1`` and ``support`` per class (float64 / int64 [K]), or averaged
    (``average="macro"`` or ``"weighted"``: floats, support = N)."""
    from sklearn.metrics import precision_recall_fscore_support

    t, p = _np(y_true, np.int64), _np(y_pred, np.int64)
    _check(t, p, "y_pred")
    _check_labels(t, num_classes, "y_true")
    _check_labels(p, num_classes, "y_pred")
    pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=np.arange(num_classes), average=average,
                                                      zero_division=0)
    if average is None:
        return {"precision": pr.astype(np.float64), "recall": rc.astype(np.float64), "f1": f1.astype(np.float64),
                "support": sup.astype(np.int64)}
    return {"precision": float(pr), "recall": float(rc), "f1": float(f1), "support": len(t)}


def _defined(is_positive: np.ndarray) -> bool:
    return bool(is_positive.any() and not is_positive.all())


def roc_ovr(y_true: Any, scores: Any) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], np.ndarray,
                                                  tuple[np.ndarray, np.ndarray], float, float]:
    """One-vs-rest ROC curves and AUCs (module docstring for the conventions).

    Returns:
        curves: per class ``(fpr, tpr)`` float64 [T] (scikit-learn's ``roc_curve``), None where undefined;
        auc: float64 [K], NaN where undefined; micro_curve: ``(fpr, tpr)`` of the pooled pairs;
        auc_macro: mean of the defined AUCs (NaN if none); auc_micro: AUC of the pooled pairs.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    k = s.shape[1]
    onehot = np.eye(k, dtype=bool)[t]
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    auc = np.full(k, np.nan)
    for c in range(k):
        if not _defined(onehot[:, c]):
            curves.append(None)
            continue
        fpr, tpr, _ = roc_curve(onehot[:, c], s[:, c])
        curves.append((fpr, tpr))
        auc[c] = roc_auc_score(onehot[:, c], s[:, c])
    if _defined(onehot.ravel()):
        fpr, tpr, _ = roc_curve(onehot.ravel(), s.ravel())
        micro, micro_auc = (fpr, tpr), float(roc_auc_score(onehot.ravel(), s.ravel()))
    else:
        micro, micro_auc = (np.zeros(0), np.zeros(0)), float("nan")
    macro = float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")
    return curves, auc, micro, macro, micro_auc


def pr_ovr(y_true: Any, scores: Any) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], np.ndarray, float]:
    """One-vs-rest precision-recall curves and average precision per class.

    Returns:
        curves: per class ``(precision, recall)`` float64 [T] (``precision_recall_curve``), None for a
        class absent from ``y_true``; ap: float64 [K] (``average_precision_score``), NaN for absent
        classes; mean_ap: mean of the defined APs (NaN if none).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    t, s = _np(y_true, np.int64), _np(scores, np.float64)
    _check(t, s, "scores")
    k = s.shape[1]
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    ap = np.full(k, np.nan)
    for c in range(k):
        pos = t == c
        if not pos.any():
            curves.append(None)
            continue
        precision, recall, _ = precision_recall_curve(pos, s[:, c])
        curves.append((precision, recall))
        ap[c] = average_precision_score(pos, s[:, c])
    return curves, ap, float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


@dataclass
class ClassificationResult:
    """Every metric of one evaluation; see :func:`classification_report` and the module docstring.

    Per-class arrays are [K] in the order of ``names``; curves are lists of K
    ``(x, y)`` pairs of float64 arrays (None where undefined).
    """

    names: list[str]
    samples: int
    top1: float
    top5: float  # top-min(5, K)
    top5_k: int
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    macro: dict[str, float]  # precision, recall, f1, auc (over defined classes), ap (mAP)
    weighted: dict[str, float]  # precision, recall, f1 (weights = support)
    confusion: np.ndarray  # int64 [K, K], rows true, columns predicted
    auc: np.ndarray
    auc_micro: float
    ap: np.ndarray
    roc_curves: list = field(repr=False, default_factory=list)  # (fpr, tpr) per class
    roc_micro: tuple = field(repr=False, default=())  # (fpr, tpr) of the pooled pairs
    pr_curves: list = field(repr=False, default_factory=list)  # (precision, recall) per class

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and lists for ``metrics.json`` (NaN becomes None, curves are left out)."""
        def f(x: float) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        def lst(a: np.ndarray) -> list:
            return [f(v) for v in np.asarray(a, np.float64)]

        return {
            "samples": self.samples, "names": list(self.names),
            "top1": f(self.top1), "top5": f(self.top5), "top5_k": self.top5_k,
            "macro": {k: f(v) for k, v in self.macro.items()},
            "weighted": {k: f(v) for k, v in self.weighted.items()},
            "micro": {"auc": f(self.auc_micro)},
            "per_class": {"precision": lst(self.precision), "recall": lst(self.recall), "f1": lst(self.f1),
                          "support": [int(v) for v in self.support], "auc": lst(self.auc), "ap": lst(self.ap)},
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }

    def text(self) -> str:
        """A readable summary: accuracies, averages, then one row per class."""
        width = max([9, *(len(n) for n in self.names)])
        head = (f"{self.samples} images, {len(self.names)} classes  top-1 {self.top1:.4f}  "
                f"top-{self.top5_k} {self.top5:.4f}  AUC macro {self.macro['auc']:.4f} micro {self.auc_micro:.4f}  "
                f"mAP {self.macro['ap']:.4f}")
        cols = f"{'class':<{width}} {'images':>7} {'P':>6} {'R':>6} {'F1':>6} {'AUC':>6} {'AP':>6}"
        lines = [head, cols]
        for k, n in enumerate(self.names):
            lines.append(f"{n:<{width}} {self.support[k]:>7d} {self.precision[k]:6.3f} {self.recall[k]:6.3f} "
                         f"{self.f1[k]:6.3f} {self.auc[k]:6.3f} {self.ap[k]:6.3f}")
        for avg, d in (("macro", self.macro), ("weighted", self.weighted)):
            lines.append(f"{avg:<{width}} {self.samples:>7d} {d['precision']:6.3f} {d['recall']:6.3f} {d['f1']:6.3f}"
                         + (f" {d['auc']:6.3f} {d['ap']:6.3f}" if avg == "macro" else ""))
        return "\n".join(lines)


def classification_report(y_true: Any, probs: Any, names: Sequence[str]) -> ClassificationResult:
    """All classification metrics from true labels int [N] and class probabilities float [N, K = len(names)]."""
    t, s = _np(y_true, np.int64), _np(probs, np.float64)
    _check(t, s, "probs")
    if s.ndim != 2 or s.shape[1] != len(names) or len(names) < 2:
        raise ValueError(f"probs must be [N, {len(names)}] for {len(names)} names (at least 2), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("probs hold NaN or infinite values")
    if not len(t):
        raise ValueError("no samples to score (y_true is empty)")
    k = len(names)
    _check_labels(t, k, "y_true")
    pred = s.argmax(1)
    per = precision_recall_f1(t, pred, k)
    with warnings.catch_warnings():  # scikit-learn warns about undefined curves; they are NaN by design here
        warnings.simplefilter("ignore")
        roc, auc, micro, auc_macro, auc_micro = roc_ovr(t, s)
        pr, ap, mean_ap = pr_ovr(t, s)
    macro = {**{m: v for m, v in precision_recall_f1(t, pred, k, "macro").items() if m != "support"},
             "auc": auc_macro, "ap": mean_ap}
    weighted = {m: v for m, v in precision_recall_f1(t, pred, k, "weighted").items() if m != "support"}
    top5_k = min(TOP_K, k)
    return ClassificationResult(
        names=list(names), samples=len(t), top1=accuracy(t, pred), top5=top_k_accuracy(t, s, top5_k), top5_k=top5_k,
        precision=per["precision"], recall=per["recall"], f1=per["f1"], support=per["support"],
        macro=macro, weighted=weighted, confusion=confusion_matrix(t, pred, k), auc=auc, auc_micro=auc_micro,
        ap=ap, roc_curves=roc, roc_micro=micro, pr_curves=pr,
    )
