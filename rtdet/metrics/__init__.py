"""Detection and classification metrics.

- :mod:`rtdet.metrics.coco`: the official COCO numbers (pycocotools semantics).
- :mod:`rtdet.metrics.voc`: PASCAL VOC AP (VOC2007 11-point, VOC2010+ all-point).
- :mod:`rtdet.metrics.prf`: precision / recall / F1 per class, PR curves, confusion matrix.
- :mod:`rtdet.metrics.plots`: PR, F1-confidence and confusion-matrix pictures.
- :mod:`rtdet.metrics.classification`: accuracy, top-k, per-class P/R, ROC / AUC.

Importing this package imports NumPy only; matplotlib and faster-coco-eval are
loaded when first used.
"""

from rtdet.metrics.coco import COCO_KEYS, CocoResult, evaluate, evaluate_predictions, format_table
from rtdet.metrics.validate import MetricsInputError

__all__ = ["COCO_KEYS", "CocoResult", "MetricsInputError", "evaluate", "evaluate_predictions", "format_table"]
