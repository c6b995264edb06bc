"""Detectors by name: ``MODELS["rtdet-n"](num_classes, act=..., norm=...)`` or :func:`build_model`.

Scales (widths, depths, head widths, depthwise options, default activation) are
plain keyword dicts in :data:`SCALES`; ``MODELS`` maps each name to a builder.
``rtdet-n`` is tuned for CPU speed: dense convolutions in a narrow backbone
(they train faster on a CPU than depthwise ones) with no C2f block at stride 4
(a plain stride-2 convolution there: the high-resolution stages dominated both
training and inference time), depthwise-separable neck and head, narrow head
branches, ReLU (fused into the convolution by ONNX Runtime, where SiLU costs an
extra pass). About 0.45 GFLOPs at 320 px (80 classes), against ~1.6 for YOLO11n. ``-s`` and
``-m`` use dense convolutions everywhere and SiLU.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from rtdet.models.faster_rcnn import FasterRCNN
from rtdet.models.yolo import YOLO, RawOutputs

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


def _build(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> YOLO:
    kwargs = {**SCALES[name], **overrides, "norm": norm}
    if act:
        kwargs["act"] = act
    model = YOLO(num_classes, **kwargs)
    model.build_args = {"name": name, "num_classes": num_classes, "act": kwargs["act"], "norm": norm, **overrides}
    return model


def _build_faster_rcnn(num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> FasterRCNN:
    if act or norm != "bn":  # torchvision's architecture is fixed
        raise ValueError("faster-rcnn takes no act/norm overrides")
    return FasterRCNN(num_classes, **overrides)  # sets its own build_args


MODELS: dict[str, Callable[..., Any]] = {name: partial(_build, name) for name in SCALES}
MODELS["faster-rcnn"] = _build_faster_rcnn  # torchvision's fasterrcnn_mobilenet_v3_large_320_fpn, from scratch


def build_model(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> Any:
    """Build model ``name`` for ``num_classes`` classes.

    Args:
        act: activation override (``relu``, ``lrelu``, ``silu``, ``frelu``); None or "" keeps the scale's default.
        norm: ``bn`` or ``gn``.
        overrides: any :class:`YOLO` keyword (e.g. ``reg_max=8``, ``dw_head=False``).

    ``model.build_args`` holds the arguments that rebuild the same architecture
    (``build_model(**model.build_args)``), for checkpoints.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](num_classes, act=act, norm=norm, **overrides)


def build_from_config(model_cfg: Any, num_classes: int) -> Any:
    """Model and criterion from a :class:`rtdet.config.ModelConfig` (``model``, ``act``, ``norm``, loss settings).

    ``num_classes`` is passed explicitly because ``model_cfg.num_classes == 0`` means
    "take it from the data set", which only the caller knows.
    """
    from rtdet.losses import YoloLoss

    model = build_model(model_cfg.model, num_classes, act=model_cfg.act or None, norm=model_cfg.norm)
    if not isinstance(model, YOLO):  # other families carry their own losses
        return model
    model.criterion = YoloLoss(
        num_classes, box_loss=model_cfg.box_loss, cls_loss=model_cfg.cls_loss,
        box_gain=model_cfg.box_gain, cls_gain=model_cfg.cls_gain, dfl_gain=model_cfg.dfl_gain,
    )
    return model


__all__ = ["MODELS", "SCALES", "FasterRCNN", "RawOutputs", "YOLO", "build_from_config", "build_model"]
