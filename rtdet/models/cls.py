"""Image classifiers: the detector's CSP backbone with a pooled linear head, and LeNet-5.

Contract (:class:`rtdet.models.base.RtdetModel`, task ``classify``):
``model(images, targets)`` in training mode returns ``{"loss_cls": scalar}``;
in eval mode ``model(images)`` returns one dict ``{"probs": float32 [K]}`` per
image. ``images`` are float ``[B, 3, H, W]`` RGB in ``[0, 1]``.
:meth:`ClassifierBase.forward_raw` is the export output ``(probs,)``: softmax
probabilities float32 ``[B, K]``, the ONNX output named ``probs``. Targets are
dicts with ``"label"`` (int) and, from mixup / cutmix, ``"soft"`` (float [K]);
see :class:`rtdet.losses.cls_loss.ClassificationLoss`. The family's config
section ``cls`` (label smoothing, dropout) reaches a built model through
:func:`apply_cls_settings`.

``rtdet-cls-n`` / ``-s`` use the backbone of ``rtdet-n`` / ``-s`` (same widths,
depths, blocks, activation and normalization options) under the attribute name
``backbone``, so a classifier's backbone tensors load into the detector by
name with :func:`rtdet.engine.checkpoint.load_pretrained` (pretrain on
classification, then fine-tune detection).

Example:
    >>> model = build_classifier("rtdet-cls-n", num_classes=10).eval()
    >>> model.forward_raw(torch.rand(2, 3, 32, 32))[0].shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.errors import ModelError
from rtdet.losses.cls_loss import ClassificationLoss
from rtdet.models.backbones import CSPBackbone
from rtdet.models.base import RtdetModel, build_family_model
from rtdet.models.layers import make_act
from rtdet.models.yolo import backbone_settings

# classifier name -> the detector scale whose backbone it uses (rtdet.models.yolo.SCALES)
CLS_SCALES = {"rtdet-cls-n": "rtdet-n", "rtdet-cls-s": "rtdet-s"}
LENET_SIZE = 32  # LeNet-5's input side (MNIST's 28x28 digits padded to 32x32 in the original paper)


class ClassifierBase(RtdetModel):
    """Shared contract of the classifiers; subclasses define :meth:`logits` ``[B, 3, H, W] -> [B, K]``."""

    task = "classify"
    output_names = ("probs",)
    num_classes: int
    criterion: ClassificationLoss

    def logits(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def label_smoothing(self) -> float:
        """Label smoothing of the training loss (settable)."""
        return self.criterion.label_smoothing

    @label_smoothing.setter
    def label_smoothing(self, value: float) -> None:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {value}")
        self.criterion.label_smoothing = float(value)

    def forward_raw(self, images: Tensor) -> tuple[Tensor]:
        """Export path: ``(probs,)``, softmax probabilities float32 [B, K]."""
        return (self.logits(images).float().softmax(1),)

    def set_dropout(self, p: float) -> None:
        """Dropout probability of every dropout layer (the head's)."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = float(p)

    def forward(self, images: Tensor, targets: list[dict] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: ``{"loss_cls": scalar}`` (needs ``targets``). Eval: B dicts ``{"probs": float32 [K]}``."""
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__}.forward in training mode needs targets "
                                 "(call model.eval() to predict)")
            return self.criterion(self.logits(images), targets)
        return [{"probs": p} for p in self.forward_raw(images)[0]]

    def predict_with_loss(self, images: Tensor, targets: list[dict]
                          ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval-mode predictions and the loss against ``targets`` from one network pass (for validation)."""
        logits = self.logits(images)
        probs = logits.float().softmax(1)
        return [{"probs": p} for p in probs], self.criterion(logits, targets)


class Classifier(ClassifierBase):
    """CSP backbone -> global average pool of the stride-32 map -> dropout -> linear.

    Args:
        num_classes: ``K``.
        channels, depths, act, norm, dw_backbone: :class:`rtdet.models.backbones.CSPBackbone` settings.
        dropout: dropout probability before the linear layer.
        label_smoothing: of the training loss.
    """

    def __init__(self, num_classes: int, channels: tuple[int, ...], depths: tuple[int, ...], act: str = "silu",
                 norm: str = "bn", dw_backbone: bool = False, dropout: float = 0.0, label_smoothing: float = 0.0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.backbone = CSPBackbone(channels, depths, act, norm, dw_backbone)
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten(1))
        self.head.add_module("dropout", nn.Dropout(dropout))
        self.head.add_module("fc", nn.Linear(channels[-1], num_classes))
        self.criterion = ClassificationLoss(label_smoothing)

    def logits(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, K]`` (any H, W >= 32: the pool averages whatever the last map is)."""
        return self.head(self.backbone(images)[-1])


class LeNet5(ClassifierBase):
    """LeNet-5 (LeCun et al., 1998), modern variant: ReLU and max-pooling.

    conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2 -> fc 120 -> fc 84 -> fc K on
    a 32x32 input (the original used scaled tanh, trainable sub-sampling and RBF
    outputs). Inputs of another size are resized to 32x32 first (bilinear), so
    28x28 digits work too; grayscale comes as three equal channels.
    """

    def __init__(self, num_classes: int = 10, act: str = "relu", dropout: float = 0.0, label_smoothing: float = 0.0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5), make_act(act, 6), nn.MaxPool2d(2),  # 32 -> 28 -> 14
            nn.Conv2d(6, 16, 5), make_act(act, 16), nn.MaxPool2d(2),  # 14 -> 10 -> 5
        )
        self.head = nn.Sequential(
            nn.Flatten(1), nn.Linear(16 * 5 * 5, 120), make_act(act, 120), nn.Linear(120, 84), make_act(act, 84),
            nn.Dropout(dropout), nn.Linear(84, num_classes),
        )
        self.criterion = ClassificationLoss(label_smoothing)

    def logits(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, K]``."""
        if tuple(images.shape[-2:]) != (LENET_SIZE, LENET_SIZE):
            images = F.interpolate(images, size=(LENET_SIZE, LENET_SIZE), mode="bilinear", align_corners=False)
        return self.head(self.features(images))


def _build_cls(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> Classifier:
    return build_family_model(Classifier, name, num_classes, backbone_settings(CLS_SCALES[name]), act, norm, overrides)


def _build_lenet(num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> LeNet5:
    if norm != "bn":
        raise ValueError(f"lenet has no normalization layers; leave norm at its default ('bn'), got {norm!r}")
    model = LeNet5(num_classes, act=act or "relu", **overrides)
    model.build_args = {"name": "lenet", "num_classes": num_classes, "act": act or "relu", "norm": norm, **overrides}
    return model


CLASSIFIERS: dict[str, Callable[..., ClassifierBase]] = {name: partial(_build_cls, name) for name in CLS_SCALES}
CLASSIFIERS["lenet"] = _build_lenet


def build_classifier(name: str, num_classes: int, act: str | None = None, norm: str = "bn",
                     **overrides: Any) -> ClassifierBase:
    """Build classifier ``name`` (``rtdet-cls-n``, ``rtdet-cls-s``, ``lenet``) for ``num_classes`` classes.

    Args:
        act: activation override (``relu``, ``lrelu``, ``silu``, ``frelu``); None or "" keeps the default.
        norm: ``bn`` or ``gn`` (``lenet`` has no normalization and takes only ``bn``).
        overrides: any :class:`Classifier` / :class:`LeNet5` keyword (e.g. ``dropout=0.2``).

    ``model.build_args`` rebuilds the same architecture: ``build_classifier(**model.build_args)``.
    The registry (:data:`rtdet.registry.MODELS`) names this function as the builder of these models.
    """
    if name not in CLASSIFIERS:
        raise ModelError(f"unknown classifier {name!r}; expected one of {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[name](num_classes, act=act, norm=norm, **overrides)


def apply_cls_settings(model: ClassifierBase, settings: Any) -> None:
    """Apply the ``cls`` config section (:class:`rtdet.config.ClsConfig`: ``label_smoothing``, ``dropout``)."""
    model.label_smoothing = settings.label_smoothing
    model.set_dropout(settings.dropout)
