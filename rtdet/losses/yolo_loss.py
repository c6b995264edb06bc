"""The YOLO detector's criterion: TAL assignment, then classification, IoU and DFL losses.

Kept apart from the network (DETR's split): the model calls
``criterion(raw, targets)`` in training mode and returns its dict.

Normalization: every term is summed over anchors and divided by the sum of the
soft classification targets (about the number of positives), then multiplied
by its gain. With ``scale_by_batch`` (the default) the result is multiplied by
the batch size, the convention under which the YOLO recipe's optimizer settings
(SGD lr 0.01, gradient accumulation to a nominal batch of 64, gradient clipping
at 10) were tuned; Adam-type optimizers are insensitive to the scale.

Distributed training: DistributedDataParallel averages the ranks' gradients, so
when gradients are computed in a process group each rank divides by the mean
normalizer over ranks and scales by the global batch (W x its own). The averaged
gradient of W ranks with batch b is then that of one process with batch W*b on the
same images. Without gradients (validation) every rank's loss is its own batch's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rtdet.data.loader import pad_targets  # the one dense-target helper (crowd boxes masked)
from rtdet.engine.dist import get_world_size, sum_over_ranks
from rtdet.losses.dfl import box_to_distance, dfl_expectation, dfl_loss, distance_to_box
from rtdet.losses.focal import cls_loss
from rtdet.losses.iou import iou_loss
from rtdet.losses.tal import TaskAlignedAssigner




class YoloLoss:
    """``criterion(raw, targets) -> {"box": .., "cls": .., "dfl": ..}`` scalar tensors.

    Args:
        num_classes: ``K``.
        box_loss: IoU kind for the box term (``ciou``, ``giou``, ``diou``, ``iou``).
        cls_loss: ``bce``, ``focal`` or ``varifocal``.
        box_gain, cls_gain, dfl_gain: weights of the three terms.
        topk, alpha, beta: TAL settings (:class:`TaskAlignedAssigner`).
        scale_by_batch: multiply every term by the batch size (see module docstring).
    """

    def __init__(
        self, num_classes: int, box_loss: str = "ciou", cls_loss: str = "bce",
        box_gain: float = 7.5, cls_gain: float = 0.5, dfl_gain: float = 1.5,
        topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
        focal_gamma: float = 2.0, focal_alpha: float | None = None, scale_by_batch: bool = True,
    ) -> None:
        self.num_classes = num_classes
        self.box_kind, self.cls_kind = box_loss, cls_loss
        self.gains = {"box": box_gain, "cls": cls_gain, "dfl": dfl_gain}
        self.focal_gamma, self.focal_alpha = focal_gamma, focal_alpha
        self.scale_by_batch = scale_by_batch
        self.assigner = TaskAlignedAssigner(topk, alpha, beta)

    def __call__(self, raw: dict[str, Tensor], targets: list[dict]) -> dict[str, Tensor]:
        """Losses of a batch.

        Args:
            raw: the head's outputs (``cls [B, N, K]``, ``reg [B, N, 4, R]``,
                ``anchors [N, 2]``, ``strides [N, 1]``).
            targets: B target dicts with ``boxes`` (xyxy, input pixels), ``labels``.
        """
        cls_logits, reg, anchors, strides = raw["cls"], raw["reg"], raw["anchors"], raw["strides"]
        b = cls_logits.shape[0]
        gt_boxes, gt_labels, gt_mask = pad_targets(targets, cls_logits.device)
        if gt_labels.numel() and int(gt_labels.max()) >= self.num_classes:
            raise ValueError(f"target label {int(gt_labels.max())} out of range for {self.num_classes} classes")
        pd_boxes = distance_to_box(dfl_expectation(reg.float()) * strides, anchors)  # [B, N, 4] pixels
        t = self.assigner(cls_logits.detach().sigmoid().float(), pd_boxes.detach(), anchors, gt_labels, gt_boxes, gt_mask)
        ranks = get_world_size() if torch.is_grad_enabled() else 1  # see "Distributed training" above
        norm = t["scores"].sum() if ranks == 1 else sum_over_ranks(t["scores"].sum())
        norm = norm.clamp(min=1.0) / ranks
        loss_cls = cls_loss(self.cls_kind, cls_logits.float(), t["scores"], self.focal_gamma, self.focal_alpha).sum() / norm
        fg = t["fg"]
        weight = t["scores"].sum(-1)[fg]  # [P]
        loss_box = (iou_loss(pd_boxes[fg], t["boxes"][fg], self.box_kind) * weight).sum() / norm
        target_dist = box_to_distance(t["boxes"], anchors) / strides  # [B, N, 4] stride units
        loss_dfl = (dfl_loss(reg[fg], target_dist[fg]) * weight).sum() / norm
        scale = b * ranks if self.scale_by_batch else 1
        losses = {"box": loss_box, "cls": loss_cls, "dfl": loss_dfl}
        return {k: v * self.gains[k] * scale for k, v in losses.items()}
