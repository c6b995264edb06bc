"""Pictures of a :class:`rtdet.metrics.segmentation.SegmentationResult`: IoU per class, confusion matrix.

Same house style as :mod:`rtdet.metrics.plots`: a bare matplotlib ``Figure`` on the Agg canvas
(no pyplot, no global state), imported only when a picture is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtdet.metrics.plots import _figure, _save, plot_confusion_matrix
from rtdet.metrics.segmentation import SegmentationResult

def plot_iou(res: SegmentationResult, path: str | Path) -> Path:
    """Horizontal bars of IoU per class (undefined classes marked ``n/a``), mIoU as a dashed line."""
    n = len(res.names)
    fig, ax = _figure((6.4, min(max(3.0, 0.22 * n + 1.2), 40.0)))
    y = np.arange(n)
    ax.barh(y, np.nan_to_num(res.iou), color="tab:blue")
    for k in np.flatnonzero(~np.isfinite(res.iou)):
        ax.text(0.01, k, "n/a", va="center", fontsize=7, color="gray")
    if np.isfinite(res.miou):
        ax.axvline(res.miou, color="tab:red", ls="--", lw=1, label=f"mIoU {res.miou:.4f}")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_yticks(y, res.names, fontsize=max(4, min(9, int(400 / max(n, 1)))))
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="IoU", title=f"IoU per class; aAcc {res.aacc:.4f}, mAcc {res.macc:.4f}")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))


def plot_confusion(res: SegmentationResult, path: str | Path) -> Path:
    """Confusion matrix of labelled pixels, colour and text = share of each true class (row-normalised)."""
    return plot_confusion_matrix(res.confusion, res.names, path, normalize=True,
                                 title=f"Confusion matrix (share of true-class pixels); mIoU {res.miou:.4f}")


def save_segmentation_plots(res: SegmentationResult, out_dir: str | Path) -> list[Path]:
    """Write ``iou_per_class.png`` and ``confusion_matrix.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [plot_iou(res, out / "iou_per_class.png"), plot_confusion(res, out / "confusion_matrix.png")]
