"""One call for a validation loop: official COCO numbers, P/R/F1, confusion matrix, pictures.

    report = detection_report(preds, targets, names, out_dir="runs/train/exp")
    print(report.text())
    report.coco["AP"]                       # the official number
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rtdet.metrics.coco import CocoResult, evaluate_predictions, format_table
from rtdet.metrics.match import as_array
from rtdet.metrics.prf import PRFResult, confusion_matrix, precision_recall_f1


@dataclass
class DetectionReport:
    """``coco``: the 12 official numbers + AP per class; ``prf``: P/R/F1 curves and best
    point; ``confusion``: int64 [K+1, K+1] (last = background); ``plots``: written PNGs."""

    coco: CocoResult
    prf: PRFResult
    confusion: np.ndarray
    plots: list[Path]

    def text(self) -> str:
        return format_table(self.coco) + "\n\n" + self.prf.table()


def to_original_frame(preds: Sequence[dict], targets: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Copies of predictions and targets with boxes mapped back through ``target["letterbox"]``."""
    from rtdet.boxes import unletterbox  # imports torch, which `rtdet metrics` does not need

    out_p, out_t = [], []
    for p, t in zip(preds, targets):
        lb = t.get("letterbox", (1.0, 0.0, 0.0))
        out_p.append({**p, "boxes": unletterbox(as_array(p["boxes"], np.float64, (4,)), lb)})
        out_t.append({**t, "boxes": unletterbox(as_array(t["boxes"], np.float64, (4,)), lb),
                      "letterbox": (1.0, 0.0, 0.0)})
    return out_p, out_t


def detection_report(preds: Sequence[dict], targets: Sequence[dict], names: Sequence[str],
                     out_dir: str | Path | None = None, frame: str = "original",
                     conf: float = 0.25, iou_thresh: float = 0.45) -> DetectionReport:
    """Score a data set's predictions every way rtdet knows.

    Args:
        preds, targets: per image, as in :func:`rtdet.metrics.coco.predictions_to_coco`.
        names: class names (K).
        out_dir: when given, the four pictures of :func:`rtdet.metrics.plots.save_detection_plots` go there.
        frame: ``"original"`` or ``"input"`` (boxes letterboxed; mapped back first).
        conf, iou_thresh: operating point of the confusion matrix.
    """
    if frame == "input":
        preds, targets = to_original_frame(preds, targets)
    elif frame != "original":
        raise ValueError(f"frame must be 'original' or 'input', got {frame!r}")
    coco = evaluate_predictions(preds, targets, names)
    prf = precision_recall_f1(preds, targets, names)
    cm = confusion_matrix(preds, targets, len(names), conf=conf, iou_thresh=iou_thresh)
    plots: list[Path] = []
    if out_dir is not None:
        from rtdet.metrics.plots import save_detection_plots

        plots = save_detection_plots(prf, cm, out_dir)
    return DetectionReport(coco, prf, cm, plots)
