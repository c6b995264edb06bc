"""torchvision's Faster R-CNN (MobileNetV3-Large 320 FPN) behind rtdet's model contract.

The wrapper only translates: rtdet images are float [B,3,H,W] in [0,1] and labels
0..K-1; torchvision takes a list of [3,H,W] tensors and reserves label 0 for the
background, so labels are shifted by +1 going in and -1 coming out. torchvision
normalizes and resizes inside the model and maps boxes back to the input frame.
No weights are downloaded: the network starts from random initialization.

Example:
    >>> model = FasterRCNN(num_classes=20)
    >>> losses = model.train()(torch.rand(2, 3, 320, 320), targets)   # doctest: +SKIP
    >>> detections = model.eval()(torch.rand(2, 3, 320, 320))          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

from rtdet.boxes import valid_boxes
from rtdet.models.base import RtdetModel


class FasterRCNN(RtdetModel):
    """Faster R-CNN with a MobileNetV3-Large FPN backbone, randomly initialized.

    Args:
        num_classes: K object classes (labels 0..K-1; torchvision's background is extra).
        min_size, max_size: torchvision's internal resize of the shorter / longer side.
        score_thresh, nms_iou, max_det: post-processing of the detections in eval mode.
        **torchvision_kwargs: passed to torchvision's FasterRCNN (e.g. ``rpn_post_nms_top_n_train``).
    """

    def __init__(self, num_classes: int, min_size: int = 320, max_size: int = 320, score_thresh: float = 0.001,
                 nms_iou: float = 0.5, max_det: int = 100, **torchvision_kwargs: Any) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"FasterRCNN needs num_classes >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.net = fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=num_classes + 1, min_size=min_size, max_size=max_size,
            box_score_thresh=score_thresh, box_nms_thresh=nms_iou, box_detections_per_img=max_det,
            **torchvision_kwargs)
        self.build_args = {"name": "faster-rcnn", "num_classes": num_classes, "min_size": min_size,
                           "max_size": max_size, "score_thresh": score_thresh, "nms_iou": nms_iou, "max_det": max_det,
                           **torchvision_kwargs}
        self.dropped_boxes = 0  # crowd or degenerate training boxes torchvision cannot take

    def forward(self, images: Tensor, targets: list[dict[str, Any]] | None = None):
        """images float [B,3,H,W] in [0,1]; targets with "boxes" [N,4] xyxy pixels and "labels" [N] in 0..K-1.

        Returns the losses dict (train mode: loss_classifier, loss_box_reg, loss_objectness,
        loss_rpn_box_reg) or, in eval mode, B dicts {"boxes" [K,4] xyxy in the input frame,
        "scores" [K], "labels" [K] int64 in 0..K-1}.
        """
        if self.training:
            if targets is None:
                raise ValueError("FasterRCNN in train mode needs targets")
            return self.net(list(images), [self._to_torchvision(t) for t in targets])
        out = self.net(list(images))
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1} for o in out]

    def _to_torchvision(self, target: dict[str, Any]) -> dict[str, Tensor]:
        # torchvision has no "ignore" label, so crowd regions are left out of training
        keep = valid_boxes(target["boxes"])
        if "iscrowd" in target:
            keep &= ~target["iscrowd"].to(torch.bool)
        self.dropped_boxes += int((~keep).sum())
        return {"boxes": target["boxes"][keep].float(), "labels": target["labels"][keep].to(torch.int64) + 1}


def build_faster_rcnn(name: str, num_classes: int, act: str | None = None, norm: str = "bn",
                      **overrides: Any) -> FasterRCNN:
    """torchvision's architecture is fixed: no act/norm overrides."""
    if act or norm != "bn":
        raise ValueError("faster-rcnn takes no act/norm overrides")
    return FasterRCNN(num_classes, **overrides)  # sets its own build_args
