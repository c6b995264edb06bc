"""Detection, classification and segmentation metrics.

- :mod:`rtdet.metrics.coco`: the official COCO numbers (pycocotools semantics, checked to 1e-9).
- :mod:`rtdet.metrics.voc`: PASCAL VOC AP (VOC2007 11-point, VOC2010+ all-point).
- :mod:`rtdet.metrics.prf`: precision / recall / F1 per class, PR curves, confusion matrix.
- :mod:`rtdet.metrics.plots`: PR, F1-confidence and confusion-matrix pictures.
- :mod:`rtdet.metrics.report`: all of the above in one call for a validation loop.
- :mod:`rtdet.metrics.classification`: accuracy, top-k, per-class P/R/F1, confusion, ROC / AUC, PR / AP
  (scikit-learn); :mod:`rtdet.metrics.classification_plots`: their pictures.
- :mod:`rtdet.metrics.segmentation`: IoU / mIoU / aAcc / Acc / mAcc and the pixel confusion matrix
  (mmsegmentation's ``IoUMetric``); :mod:`rtdet.metrics.segmentation_plots`: their pictures.

Importing this package imports NumPy only; faster-coco-eval, scikit-learn and matplotlib
are loaded when first used.
"""

from rtdet.metrics.classification import ClassificationResult, classification_report
from rtdet.metrics.coco import COCO_KEYS, CocoResult, evaluate, evaluate_predictions, format_table
from rtdet.metrics.prf import confusion_matrix, precision_recall_f1
from rtdet.metrics.report import DetectionReport, detection_report
from rtdet.metrics.segmentation import SegmentationMetric, SegmentationResult
from rtdet.metrics.validate import MetricsInputError
from rtdet.metrics.voc import evaluate_voc, voc_ap

__all__ = [
    "COCO_KEYS",
    "ClassificationResult",
    "CocoResult",
    "DetectionReport",
    "MetricsInputError",
    "SegmentationMetric",
    "SegmentationResult",
    "classification_report",
    "confusion_matrix",
    "detection_report",
    "evaluate",
    "evaluate_predictions",
    "evaluate_voc",
    "format_table",
    "precision_recall_f1",
    "voc_ap",
]
