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

import torch
from torch import Tensor, nn

from rtdet.losses.yolo_loss import YoloLoss
from rtdet.models.backbones import CSPBackbone
from rtdet.models.heads import DetectHead
from rtdet.models.layers import fuse_conv_bn
from rtdet.models.necks import PAN
from rtdet.models.postprocess import decode, postprocess


class YOLO(nn.Module):
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

    def fuse(self) -> YOLO:
        """Fold BatchNorm into convolutions for inference (in place); returns ``self`` in eval mode."""
        fuse_conv_bn(self.eval())
        return self


class RawOutputs(nn.Module):
    """``RawOutputs(model)(images) == model.forward_raw(images)``: a module to hand to ``torch.onnx.export``."""

    def __init__(self, model: YOLO) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.forward_raw(images)
