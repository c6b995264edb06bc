"""Pictures of the practical metrics: PR curves, F1-confidence curve, confusion matrices.

matplotlib is imported inside the functions and used through a bare ``Figure``
with the Agg canvas: nothing happens on import, no global backend is switched
(so a caller's interactive session is left alone), and no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rtdet.metrics.prf import RECALL_POINTS, PRFResult, normalize_confusion

MAX_LEGEND = 20  # per-class legends beyond this are unreadable
MAX_CELL_TEXT = 30  # numbers in confusion-matrix cells stay legible only for a few classes


def _figure(size: tuple[float, float] = (6.4, 4.8)):
    """A new Agg-backed figure and its axes (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="tight")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_pr_curves(res: PRFResult, path: str | Path) -> Path:
    """Precision-recall curve per class (thin) and their mean (thick), AP50 in the legend."""
    fig, ax = _figure()
    has = np.isfinite(res.ap50)
    few = int(has.sum()) <= MAX_LEGEND
    for k in np.flatnonzero(has):
        ax.plot(RECALL_POINTS, res.pr_precision[k], lw=1, alpha=0.8 if few else 0.4,
                label=f"{res.names[k]} {res.ap50[k]:.3f}" if few else None)
    if has.any():
        mean = res.pr_precision[has].mean(0)
        ax.plot(RECALL_POINTS, mean, lw=3, color="tab:blue", label=f"all classes {res.ap50[has].mean():.3f} AP50")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-Recall")
    ax.grid(alpha=0.3)
    if has.any():  # no ground truth at all: an empty plot without a legend
        ax.legend(loc="lower left", fontsize=7)
    return _save(fig, Path(path))


def plot_f1_curve(res: PRFResult, path: str | Path) -> Path:
    """F1 against confidence per class and their mean, the best point marked."""
    fig, ax = _figure()
    has = res.n_gt > 0
    few = int(has.sum()) <= MAX_LEGEND
    for k in np.flatnonzero(has):
        ax.plot(res.conf_grid, res.f1[k], lw=1, alpha=0.8 if few else 0.4, label=res.names[k] if few else None)
    if has.any():
        best = res.best.mean()
        ax.plot(res.conf_grid, res.f1[has].mean(0), lw=3, color="tab:blue",
                label=f"all classes {best['f1']:.2f} at {res.best.conf:.3f}")
        ax.axvline(res.best.conf, color="gray", ls="--", lw=1)
    ax.set(xlabel="Confidence", ylabel="F1", xlim=(0, 1), ylim=(0, 1.02), title="F1-Confidence")
    ax.grid(alpha=0.3)
    if has.any():  # no ground truth at all: an empty plot without a legend
        ax.legend(loc="lower left", fontsize=7)
    return _save(fig, Path(path))


def plot_confusion_matrix(cm: np.ndarray, names: Sequence[str], path: str | Path, normalize: bool = False,
                          title: str = "Confusion matrix", counts: bool = False) -> Path:
    """Confusion matrix ``cm`` [N, N] (rows true, columns predicted) as a heat map, for every task.

    Colour and cell text are the counts, or with ``normalize`` each true class's share
    (rows divided by their sums, :func:`rtdet.metrics.prf.normalize_confusion`); ``counts``
    adds the count under the share. Cell text only up to :data:`MAX_CELL_TEXT` classes.
    """
    values = normalize_confusion(cm) if normalize else cm.astype(np.float64)
    n = len(names)
    side = min(max(4.8, 0.45 * n + 2.5), 24.0)
    fig, ax = _figure((side * 1.15, side))
    top = 1.0 if normalize else max(values.max(), 1.0)
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=top)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n)
    fs = max(4, min(9, int(200 / n)))
    ax.set_xticks(ticks, names, rotation=90, fontsize=fs)
    ax.set_yticks(ticks, names, fontsize=fs)
    if n <= MAX_CELL_TEXT:
        shown = values >= 0.005 if normalize else values > 0
        for i, j in zip(*np.nonzero(shown)):
            text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
            if counts and normalize:
                text += f"\n{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=max(4, fs - counts),
                    color="white" if values[i, j] > 0.5 * top else "black")
    ax.set(xlabel="Predicted", ylabel="True", title=title)
    return _save(fig, Path(path))


def save_detection_plots(res: PRFResult, cm: np.ndarray, out_dir: str | Path) -> list[Path]:
    """Write ``pr_curve.png``, ``f1_curve.png``, ``confusion_matrix.png`` and
    ``confusion_matrix_normalized.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [
        plot_pr_curves(res, out / "pr_curve.png"),
        plot_f1_curve(res, out / "f1_curve.png"),
        plot_confusion_matrix(cm, [*res.names, "background"], out / "confusion_matrix.png"),
        plot_confusion_matrix(cm, [*res.names, "background"], out / "confusion_matrix_normalized.png", normalize=True,
                              title="Confusion matrix (normalized per true class)"),
    ]
