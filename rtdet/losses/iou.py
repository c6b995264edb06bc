"""Box regression loss ``1 - IoU`` with the IoU family from :mod:`rtdet.boxes` (CIoU, GIoU, DIoU, IoU)."""

from __future__ import annotations

from torch import Tensor

from rtdet.boxes import IOU_KINDS, aligned_iou


def iou_loss(pred: Tensor, target: Tensor, kind: str = "ciou") -> Tensor:
    """Per-pair loss ``1 - IoU_kind(pred[i], target[i])``.

    Args:
        pred, target (Tensor[P, 4]): matched xyxy boxes.
        kind: one of ``iou``, ``giou``, ``diou``, ``ciou``.

    Returns:
        Tensor[P] in ``[0, 2]`` (``[0, 1]`` for plain IoU).
    """
    if kind not in IOU_KINDS:
        raise ValueError(f"unknown box loss {kind!r}; expected one of {IOU_KINDS}")
    return 1.0 - aligned_iou(pred.float(), target.float(), kind)
