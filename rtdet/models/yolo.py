"""The YOLO-style detector: CSP backbone -> PAN neck -> decoupled DFL head.

Follows rtdet's model contract: ``model(images, targets)`` returns a dict of
named losses in training mode and a list of per-image detections in eval mode.
The network, the criterion (:class:`rtdet.losses.YoloLoss`) and the decoding
(:mod:`rtdet.models.postprocess`) are separate objects; the model only holds a
reference to the criterion and its post-processing settings.

For export, :meth:`YOLO.forward_raw` (or the :class:`RawOutputs` wrapper) gives
``(boxes [B, N, 4] xyxy input pixels, scores [B, N, K] probabilities)``: plain
tensors, no NMS, the same for ONNX Runtime and PyTorch; feed them to
:func:`rtdet.models.postprocess.postprocess`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtdet.losses.yolo_loss import YoloLoss
from rtdet.models.backbones import CSPBackbone
from rtdet.models.base import RawOutputs, RtdetModel, build_family_model
from rtdet.models.heads import DetectHead, make_anchors
from rtdet.models.necks import PAN
from rtdet.models.postprocess import decode, postprocess

# Scales: plain keyword dicts. ``rtdet-n`` is tuned for CPU speed: dense convolutions in a
# narrow backbone (they train faster on a CPU than depthwise ones) with no C2f block at
# stride 4 (a plain stride-2 convolution there: the high-resolution stages dominated both
# training and inference time), depthwise-separable neck and head, narrow head branches,
# ReLU (fused into the convolution by ONNX Runtime, where SiLU costs an extra pass). About
# 0.45 GFLOPs at 320 px (80 classes), against ~1.6 for YOLO11n. ``-s`` and ``-m`` use dense
# convolutions everywhere and SiLU.
SCALES: dict[str, dict[str, Any]] = {
    "rtdet-n": dict(
        channels=(16, 24, 48, 96, 160), depths=(0, 1, 1, 1), neck_channels=(48, 64, 96), neck_depth=1,
        head_channels=(32, 48), act="relu", dw_backbone=False, dw_neck=True, dw_head=True,
    ),
    "rtdet-s": dict(
        channels=(32, 64, 128, 256, 512), depths=(1, 2, 2, 1), neck_channels=(128, 256, 512), neck_depth=1,
        head_channels=(64, 128), act="silu",
    ),
    "rtdet-m": dict(
        channels=(48, 96, 192, 384, 576), depths=(2, 4, 4, 2), neck_channels=(192, 384, 576), neck_depth=2,
        head_channels=(64, 192), act="silu",
    ),
}
BACKBONE_KEYS = ("channels", "depths", "act", "dw_backbone")  # the scale entries that shape the backbone
# ONNX parity: box sides are compared in units of their anchor's stride, the unit the head
# predicts them in: the decoding multiplies each DFL expectation by the stride (8-32 px), so
# float32 rounding in the network reaches the pixel coordinates scaled up by it (a trained
# rtdet-n at 320 px: 3.7e-4 px at stride 32, i.e. 1.1e-5 strides; scores 6e-7). Boxes also get
# BOX_RTOL * |x|: a float32 coordinate near 640 px has a spacing of 6e-5 px.
PARITY = {"boxes": 1e-4, "scores": 1e-4}  # boxes in strides
PARITY_HALF = {"boxes": 0.0125, "scores": 1e-3}  # float16 weights: measured 3e-3 px and 2e-7 (boxes: 0.1 px at stride 8)
BOX_RTOL = 1e-6


class YOLO(RtdetModel):
    """Anchor-free single-stage detector.

    Args:
        num_classes: ``K``.
        channels: five backbone widths (stem, strides 4, 8, 16, 32).
        depths: four backbone C2f depths.
        neck_channels: widths of the neck outputs at strides 8, 16, 32.
        neck_depth: bottlenecks per neck C2f block.
        head_channels: ``(box branch, class branch)`` widths.
        act, norm: activation and normalization names (:mod:`rtdet.models.layers`).
        dw_backbone, dw_neck, dw_head: depthwise-separable convolutions per part.
        reg_max: DFL bins per box side.
    """

    strides = (8, 16, 32)
    task = "detect"
    output_names = ("boxes", "scores")

    def __init__(
        self, num_classes: int, channels: tuple[int, ...], depths: tuple[int, ...],
        neck_channels: tuple[int, int, int], neck_depth: int = 1, head_channels: tuple[int, int] = (64, 64),
        act: str = "silu", norm: str = "bn", dw_backbone: bool = False, dw_neck: bool = False,
        dw_head: bool = False, reg_max: int = 16,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"YOLO needs num_classes >= 1, got {num_classes}")
        self.num_classes, self.reg_max = num_classes, reg_max
        self.backbone = CSPBackbone(channels, depths, act, norm, dw_backbone)
        self.neck = PAN(self.backbone.out_channels, neck_channels, neck_depth, act, norm, dw_neck)
        self.head = DetectHead(
            self.neck.out_channels, num_classes, self.strides, reg_max, *head_channels, act=act, norm=norm, dw=dw_head
        )
        self.criterion: Any = YoloLoss(num_classes)
        self.postprocess_args: dict[str, Any] = {"conf": 0.001, "iou": 0.7, "method": "nms", "max_det": 300}

    def set_postprocess(self, **kwargs: Any) -> None:
        """Update the eval-mode decoding settings: ``conf``, ``iou``, ``method``, ``max_det``, ``multi_label``."""
        self.postprocess_args.update(kwargs)

    def raw_outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Head outputs for ``images [B, 3, H, W]`` (H, W multiples of 32); see :meth:`DetectHead.forward`."""
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()  # shapes are symbolic then
        if not tracing and (images.shape[-1] % 32 or images.shape[-2] % 32):
            raise ValueError(f"YOLO input height and width must be multiples of 32, got {tuple(images.shape[-2:])}")
        return self.head(self.neck(self.backbone(images)))

    def forward_raw(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Export path: ``(boxes [B, N, 4] xyxy input pixels, scores [B, N, K] in [0, 1])``, no NMS."""
        return decode(self.raw_outputs(images))

    def forward(self, images: Tensor, targets: list[dict] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: dict of losses (needs ``targets``). Eval: list of B dicts ``boxes``/``scores``/``labels``."""
        raw = self.raw_outputs(images)
        if self.training:
            if targets is None:
                raise ValueError("YOLO.forward in training mode needs targets (call model.eval() to predict)")
            return self.criterion(raw, targets)
        boxes, scores = decode(raw)
        return postprocess(boxes, scores, image_size=tuple(images.shape[-2:]), **self.postprocess_args)

    def predict_with_loss(self, images: Tensor, targets: list[dict]) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval-mode detections and the losses against ``targets`` from one network pass (for validation)."""
        raw = self.raw_outputs(images)
        boxes, scores = decode(raw)
        dets = postprocess(boxes, scores, image_size=tuple(images.shape[-2:]), **self.postprocess_args)
        return dets, self.criterion(raw, targets)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Batch and anchors (their number follows the input size) of ``boxes`` and ``scores``."""
        return {name: {0: "batch", 1: "anchors"} for name in self.output_names}

    def parity_allowed(self, name: str, reference: np.ndarray, imgsz: int, half: bool = False) -> np.ndarray | float:
        """Scores: an absolute tolerance; boxes: in strides of each anchor plus BOX_RTOL |x| (see :data:`PARITY`)."""
        tol = (PARITY_HALF if half else PARITY)[name]
        if name != "boxes":
            return tol
        anchor_stride = make_anchors([(imgsz // s, imgsz // s) for s in self.strides], self.strides)[1].numpy()
        return tol * anchor_stride + BOX_RTOL * np.abs(reference)  # anchor_stride [N, 1] broadcasts over [B, N, 4]


def backbone_settings(scale: str) -> dict[str, Any]:
    """The entries of detector scale ``scale`` that shape its CSP backbone: what a family built on that backbone
    (classifiers, segmenters, DETR, Mask2Former) takes from it, so that its backbone tensors load by name."""
    return {k: v for k, v in SCALES[scale].items() if k in BACKBONE_KEYS}


def build_yolo(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> YOLO:
    """Scale ``name`` of :data:`SCALES` for ``num_classes``; ``overrides``: any :class:`YOLO` keyword."""
    return build_family_model(YOLO, name, num_classes, SCALES[name], act, norm, overrides)


def apply_yolo_settings(model: YOLO, settings: Any) -> None:
    """The loss of a :class:`rtdet.config.YoloConfig` (``box_loss``, ``cls_loss``, the three gains)."""
    model.criterion = YoloLoss(model.num_classes, box_loss=settings.box_loss, cls_loss=settings.cls_loss,
                               box_gain=settings.box_gain, cls_gain=settings.cls_gain, dfl_gain=settings.dfl_gain)


__all__ = ["SCALES", "YOLO", "RawOutputs", "apply_yolo_settings", "build_yolo"]
