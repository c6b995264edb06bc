"""Label assignment and losses of the YOLO-style detector."""

from rtdet.losses.dfl import dfl_loss
from rtdet.losses.focal import CLS_LOSSES, bce_loss, cls_loss, focal_loss, varifocal_loss
from rtdet.losses.iou import iou_loss
from rtdet.losses.tal import TaskAlignedAssigner
from rtdet.losses.yolo_loss import YoloLoss, pad_targets

__all__ = [
    "CLS_LOSSES", "TaskAlignedAssigner", "YoloLoss", "bce_loss", "cls_loss", "dfl_loss",
    "focal_loss", "iou_loss", "pad_targets", "varifocal_loss",
]
