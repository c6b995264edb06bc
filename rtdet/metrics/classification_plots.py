"""Pictures of classification metrics: confusion matrix, ROC and PR curves, misclassified images.

Same house style as :mod:`rtdet.metrics.plots`: a bare matplotlib ``Figure`` on
the Agg canvas (nothing global is switched, no display needed), one PNG per call.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rtdet.metrics.classification import ClassificationResult
from rtdet.metrics.plots import MAX_LEGEND, _figure, _save, plot_confusion_matrix

def plot_confusion(res: ClassificationResult, path: str | Path) -> Path:
    """Confusion matrix, colour = share of each true class (row-normalised), text = share and count."""
    return plot_confusion_matrix(res.confusion, res.names, path, normalize=True, counts=True,
                                 title=f"Confusion matrix (share of true class, count); top-1 {res.top1:.4f}")


def _curves(ax: Any, curves: list, values: np.ndarray, names: Sequence[str], xy: tuple[int, int]) -> None:
    """Thin per-class lines (legend with their value when few) from ``(a, b)`` pairs; ``xy`` picks x and y."""
    defined = [k for k, c in enumerate(curves) if c is not None]
    few = len(defined) <= MAX_LEGEND
    for k in defined:
        c = curves[k]
        ax.plot(c[xy[0]], c[xy[1]], lw=1, alpha=0.8 if few else 0.4,
                label=f"{names[k]} {values[k]:.3f}" if few else None)


def plot_roc(res: ClassificationResult, path: str | Path) -> Path:
    """One-vs-rest ROC curve per class (thin, AUC in the legend) and the micro-average (thick)."""
    fig, ax = _figure()
    _curves(ax, res.roc_curves, res.auc, res.names, (0, 1))
    if len(res.roc_micro) and len(res.roc_micro[0]):
        ax.plot(*res.roc_micro, lw=3, color="tab:blue", label=f"micro-average {res.auc_micro:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="gray")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.02),
           title=f"ROC (one-vs-rest): AUC macro {res.macro['auc']:.4f}, micro {res.auc_micro:.4f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, Path(path))


def plot_pr(res: ClassificationResult, path: str | Path) -> Path:
    """One-vs-rest precision-recall curve per class, average precision in the legend."""
    fig, ax = _figure()
    _curves(ax, res.pr_curves, res.ap, res.names, (1, 0))
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-Recall (one-vs-rest): mAP {res.macro['ap']:.4f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    return _save(fig, Path(path))


def save_classification_plots(res: ClassificationResult, out_dir: str | Path) -> list[Path]:
    """Write ``confusion_matrix.png``, ``roc_curve.png`` and ``pr_curve.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [plot_confusion(res, out / "confusion_matrix.png"), plot_roc(res, out / "roc_curve.png"),
            plot_pr(res, out / "pr_curve.png")]


def _hwc(image: Any) -> np.ndarray:
    """One image as uint8 [H, W, 3] (or [H, W]) from [3, H, W] / [H, W, 3] / [H, W], tensor or array."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.dtype != np.uint8:  # float images in [0, 1]
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def misclassified_grid(images: Any, y_true: Any, y_pred: Any, probs: Any, names: Sequence[str],
                       out: str | Path, n: int = 32) -> Path:
    """A PNG grid of up to ``n`` misclassified images, the most confident mistakes first.

    Args:
        images: N images, uint8 (or float in [0, 1]) as a [N, 3, H, W] / [N, H, W, 3] tensor or array,
            or a list of such single images (sizes may differ).
        y_true, y_pred: int [N]. probs: float [N, K]; each title shows ``true -> predicted`` and the
            predicted class's probability.
    """
    t, p = np.asarray(y_true, np.int64).reshape(-1), np.asarray(y_pred, np.int64).reshape(-1)
    pr = probs.detach().cpu().numpy() if hasattr(probs, "detach") else np.asarray(probs)
    if not (len(images) == len(t) == len(p) == len(pr)):
        raise ValueError(f"misclassified_grid: {len(images)} images, {len(t)} labels, {len(p)} predictions, "
                         f"{len(pr)} probability rows; expected the same N")
    wrong = np.flatnonzero(t != p)
    conf = pr[wrong, p[wrong]] if len(wrong) else np.zeros(0)
    pick = wrong[np.argsort(-conf, kind="stable")][:n]
    cols = min(8, max(1, len(pick)))
    rows = max(1, math.ceil(len(pick) / cols))
    fig, _ = _figure((1.6 * cols + 0.4, 1.75 * rows + 0.6))
    fig.clear()
    fig.suptitle(f"misclassified: {len(wrong)} of {len(t)} (true -> predicted, probability)", fontsize=9)
    if not len(pick):
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for k, i in enumerate(pick):
        ax = fig.add_subplot(rows, cols, k + 1)
        img = _hwc(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{names[t[i]]} -> {names[p[i]]} {pr[i, p[i]]:.2f}", fontsize=7, color="tab:red")
        ax.set_axis_off()
    return _save(fig, Path(out))
