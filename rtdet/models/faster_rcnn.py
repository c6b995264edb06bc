"""torchvision's Faster R-CNN behind rtdet's model contract: MobileNetV3-Large-FPN and ResNet-50-FPN.

The wrapper translates and splits: rtdet images are float [B,3,H,W] in [0,1] and labels
0..K-1; torchvision takes a list of [3,H,W] tensors and reserves label 0 for the
background, so labels are shifted by +1 going in and -1 coming out.

- **Image size.** rtdet letterboxes every image to ``imgsz`` (the one resize step of every
  command); torchvision's own resize to ``min_size``/``max_size`` is switched off
  (:class:`InputTransform`), so the network runs at the size it is given: ``--imgsz`` and
  multi-scale training reach it as they reach every detector. torchvision still normalizes
  (ImageNet mean and std) and pads to a multiple of 32.
- **Decoding.** :meth:`FasterRCNN.forward_raw` stops before the decoding: per proposal, one
  box per class and the class probabilities (``boxes [B, N, K, 4]``, ``scores [B, N, K]``).
  Eval mode decodes them with :func:`rtdet.models.postprocess.postprocess` like every rtdet
  detector (``conf``, ``iou``, ``method``, ``max_det``); with per-class boxes each (proposal,
  class) pair above ``conf`` is a candidate, as in torchvision's RoI heads. The ONNX graph
  is ``forward_raw``, so ONNX Runtime and PyTorch share the decoding.
- **Training targets.** crowd and ``difficult`` boxes are left out (torchvision has no
  "ignore" label; the classic VOC recipe trains without difficult objects), and counted.

No weights are downloaded: the network starts from random initialization; ``--weights``
copies a local state dict in torchvision's format (see :mod:`rtdet.engine.checkpoint`).
The ``rcnn`` config section (:class:`rtdet.config.RcnnConfig`) freezes backbone stages and
BatchNorm as torchvision's references do with a pretrained backbone.

Example:
    >>> model = build_faster_rcnn("faster-rcnn", num_classes=20)
    >>> losses = model.train()(torch.rand(2, 3, 320, 320), targets)   # doctest: +SKIP
    >>> detections = model.eval()(torch.rand(2, 3, 320, 320))          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from rtdet.boxes import valid_boxes
from rtdet.config import AUTO
from rtdet.errors import ModelError
from rtdet.models.base import RtdetModel
from rtdet.models.postprocess import postprocess

# Each name's backbone and torchvision keywords. faster-rcnn keeps the proposal budget of torchvision's
# fasterrcnn_mobilenet_v3_large_320_fpn (150 proposals at test time, RPN score threshold 0.05: its speed
# setting); faster-rcnn-r50 is torchvision's fasterrcnn_resnet50_fpn (1000 proposals).
VARIANTS: dict[str, dict[str, Any]] = {
    "faster-rcnn": {"backbone": "mobilenet_v3_large", "rpn_score_thresh": 0.05, "rpn_pre_nms_top_n_test": 150,
                    "rpn_post_nms_top_n_test": 150},
    "faster-rcnn-r50": {"backbone": "resnet50"},
}
STAGES = {"mobilenet_v3_large": 6, "resnet50": 5}  # backbone stages torchvision can leave trainable
# ONNX parity after the proposals are paired (see FasterRCNN.parity_align): a box may move by less than a
# tenth of a pixel and a score by less than 1e-3. RoIAlign samples the features at the proposal's
# coordinates, so float rounding in the proposals reaches the box head amplified. Measured on coco128 photos:
# random MobileNetV3 3e-5 px / 7e-9, random ResNet-50 (BatchNorm at its initial statistics) 0.036 px / 8e-5.
PARITY = {"boxes": 0.1, "scores": 1e-3}
PARITY_HALF = {"boxes": 1.0, "scores": 1e-2}
LEGACY_ARGS = ("score_thresh", "nms_iou", "max_det")
UNPAIRED = 0.02  # share of proposals that may differ: those at the RPN's cut-offs (top-n, NMS), where rounding decides


class InputTransform(GeneralizedRCNNTransform):
    """torchvision's normalization and padding without its resize: rtdet's letterbox has set the size."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        return image, target


def build_network(backbone: str, num_classes: int, **torchvision_kwargs: Any) -> TorchvisionFasterRCNN:
    """torchvision's Faster R-CNN (``num_classes`` + background) on ``backbone`` with ordinary BatchNorm,
    every stage trainable, random weights; the same layer names as torchvision's own builders."""
    if backbone == "resnet50":
        body = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=STAGES[backbone])
        net = TorchvisionFasterRCNN(body, num_classes + 1, **torchvision_kwargs)
    elif backbone == "mobilenet_v3_large":
        body = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                  norm_layer=nn.BatchNorm2d, trainable_layers=STAGES[backbone])
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)  # torchvision's
        net = TorchvisionFasterRCNN(body, num_classes + 1, rpn_anchor_generator=anchors, **torchvision_kwargs)
    else:
        raise ModelError(f"unknown Faster R-CNN backbone {backbone!r}; expected one of {', '.join(STAGES)}")
    t = net.transform
    net.transform = InputTransform(t.min_size, t.max_size, t.image_mean, t.image_std, t.size_divisible)
    return net


class FasterRCNN(RtdetModel):
    """Faster R-CNN with an FPN on ``backbone`` (``mobilenet_v3_large`` or ``resnet50``), randomly initialized.

    Args:
        num_classes: K object classes (labels 0..K-1; torchvision's background is extra).
        backbone: see :data:`STAGES`.
        **torchvision_kwargs: passed to torchvision's FasterRCNN (e.g. ``rpn_post_nms_top_n_train``,
            ``box_batch_size_per_image``).
    """

    output_names = ("boxes", "scores")
    dynamic_export = False  # torchvision's RPN loops over the batch and bakes the image size into a trace

    def __init__(self, num_classes: int, backbone: str = "mobilenet_v3_large", **torchvision_kwargs: Any) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"FasterRCNN needs num_classes >= 1, got {num_classes}")
        self.num_classes, self.backbone = num_classes, backbone
        self.net = build_network(backbone, num_classes, **torchvision_kwargs)
        self.postprocess_args: dict[str, Any] = {}
        self.set_postprocess(conf=0.001, iou=0.7, method="nms", max_det=300)  # as YOLO; runs set the config's
        self.dropped_boxes = 0  # crowd, difficult or degenerate training boxes left out

    def set_postprocess(self, **settings: Any) -> None:
        """Eval-mode decoding: ``conf``, ``iou``, ``method``, ``max_det`` (also set on torchvision's RoI heads as
        ``score_thresh``, ``nms_thresh``, ``detections_per_img``, for a caller of ``model.net`` itself)."""
        self.postprocess_args.update(settings)
        heads, p = self.net.roi_heads, self.postprocess_args
        heads.score_thresh, heads.nms_thresh, heads.detections_per_img = p["conf"], p["iou"], p["max_det"]

    def forward(self, images: Tensor, targets: list[dict[str, Any]] | None = None):
        """images float [B,3,H,W] in [0,1]; targets with "boxes" [N,4] xyxy pixels and "labels" [N] in 0..K-1.

        Returns the losses dict (train mode: loss_classifier, loss_box_reg, loss_objectness,
        loss_rpn_box_reg) or, in eval mode, B dicts {"boxes" [D,4] xyxy in the input frame,
        "scores" [D], "labels" [D] int64 in 0..K-1}.
        """
        if self.training:
            if targets is None:
                raise ValueError("FasterRCNN in train mode needs targets")
            return self.net(list(images), [self._to_torchvision(t) for t in targets])
        boxes, scores = self.forward_raw(images)
        return postprocess(boxes, scores, image_size=tuple(images.shape[-2:]), **self.postprocess_args)

    def forward_raw(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Export path: ``(boxes [B, N, K, 4] xyxy input pixels clipped to the image, scores [B, N, K])``.

        N proposals per image (rows past an image's own count are zero), for each a box per class
        and the softmax probability of each class (the background's left out, as torchvision does).
        """
        image_list, _ = self.net.transform(list(images))
        features = self.net.backbone(image_list.tensors)
        proposals, _ = self.net.rpn(image_list, features)
        heads = self.net.roi_heads
        x = heads.box_head(heads.box_roi_pool(features, proposals, image_list.image_sizes))
        logits, deltas = heads.box_predictor(x)
        boxes = heads.box_coder.decode(deltas, proposals)[:, 1:]  # [sum N, K, 4]
        scores = F.softmax(logits, -1)[:, 1:]
        size = images.shape[-1], images.shape[-2]
        boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([*size, *size], dtype=boxes.dtype, device=boxes.device))
        if len(proposals) == 1:
            return boxes[None], scores[None]
        return _padded(boxes.split([len(p) for p in proposals])), _padded(scores.split([len(p) for p in proposals]))

    def _to_torchvision(self, target: dict[str, Any]) -> dict[str, Tensor]:
        keep = valid_boxes(target["boxes"])
        for flag in ("iscrowd", "difficult"):
            if flag in target:
                keep &= ~target[flag].to(torch.bool)
        self.dropped_boxes += int((~keep).sum())
        return {"boxes": target["boxes"][keep].float(), "labels": target["labels"][keep].to(torch.int64) + 1}

    def fuse(self) -> FasterRCNN:
        """Fold the backbone's BatchNorm (ordinary or frozen) into its convolutions; ``self`` in eval mode."""
        fuse_torchvision_conv_bn(self.eval())
        return self

    def parity_allowed(self, name: str, reference: np.ndarray, imgsz: int, half: bool = False) -> np.ndarray | float:
        """Absolute tolerances of :data:`PARITY` (pixels for boxes), looser with float16 weights."""
        return (PARITY_HALF if half else PARITY)[name]

    def parity_align(self, reference: tuple[np.ndarray, ...],
                     exported: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Pair the proposals of PyTorch's and ONNX Runtime's outputs (batch 1) before they are compared.

        Both list proposals best first; where rounding puts one on the other side of the RPN's
        top-n or NMS cut-off, the lists differ by a row. Rows pair when their boxes and scores
        agree within 1 px and 0.01; at most :data:`UNPAIRED` of them (and 2) may stay unpaired.

        Raises:
            ValueError: more proposals differ than that (the message says how many).
        """
        rows = [np.concatenate([b[0].reshape(len(b[0]), -1), s[0]], 1) for b, s in (reference, exported)]
        pairs = pair_rows(*rows, box_cols=rows[0].shape[1] - reference[1].shape[-1])
        unpaired = max(len(rows[0]), len(rows[1])) - len(pairs)
        if unpaired > max(2, UNPAIRED * len(rows[0])):
            raise ValueError(f"{unpaired} of {len(rows[0])} proposals differ between PyTorch and ONNX Runtime "
                             f"({len(rows[1])} from ONNX Runtime)")
        i, j = pairs.T if len(pairs) else (np.zeros(0, int), np.zeros(0, int))
        return tuple(o[:, i] for o in reference), tuple(o[:, j] for o in exported)


def _padded(parts: tuple[Tensor, ...]) -> Tensor:
    """Per-image tensors [N_i, ...] stacked as [B, max N_i, ...], zero rows after each image's own."""
    n = max(len(p) for p in parts)
    return torch.stack([F.pad(p, (0, 0) * (p.dim() - 1) + (0, n - len(p))) for p in parts])


def pair_rows(a: np.ndarray, b: np.ndarray, box_cols: int, window: int = 8) -> np.ndarray:
    """Pairs ``[P, 2]`` of rows of ``a`` [N, C] and ``b`` [M, C] (two lists in nearly the same order) whose
    first ``box_cols`` columns differ by at most 1 and the others by at most 0.01; each row of ``b`` is
    looked for within ``window`` places of where the pairs so far put it."""
    pairs, used, shift = [], np.zeros(len(b), bool), 0
    for i, row in enumerate(a):
        lo, hi = max(i + shift - window, 0), min(i + shift + window + 1, len(b))
        if lo >= hi:
            continue
        diff = np.abs(b[lo:hi] - row)
        ok = (diff[:, :box_cols].max(1, initial=0) <= 1.0) & (diff[:, box_cols:].max(1, initial=0) <= 0.01)
        ok &= ~used[lo:hi]
        if ok.any():
            j = lo + int(np.argmin(np.where(ok, diff.max(1), np.inf)))
            pairs.append((i, j))
            used[j], shift = True, j - i
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


_NORMS = (nn.BatchNorm2d, FrozenBatchNorm2d)


def _fold(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """A copy of ``conv`` that applies ``norm`` (BatchNorm2d or FrozenBatchNorm2d, eval statistics) as well."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var,
                                getattr(norm, "eps", 1e-5), norm.weight, norm.bias)
    fused.weight, fused.bias = w, b
    return fused.requires_grad_(False).train(conv.training)


def fuse_torchvision_conv_bn(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into the preceding convolution, in place, in torchvision's layouts: ``Sequential``
    neighbours (MobileNet's Conv2dNormActivation, ResNet's downsample) and ``convN``/``bnN`` pairs (ResNet)."""
    for m in list(model.modules()):
        if isinstance(m, nn.Sequential):
            for k in range(len(m) - 1):
                if isinstance(m[k], nn.Conv2d) and isinstance(m[k + 1], _NORMS):
                    m[k], m[k + 1] = _fold(m[k], m[k + 1]), nn.Identity()
        for k in range(1, 4):
            conv, norm = getattr(m, f"conv{k}", None), getattr(m, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, _NORMS):
                setattr(m, f"conv{k}", _fold(conv, norm))
                setattr(m, f"bn{k}", nn.Identity())
    return model


def build_faster_rcnn(name: str, num_classes: int, act: str | None = None, norm: str = "bn",
                      **overrides: Any) -> FasterRCNN:
    """Variant ``name`` of :data:`VARIANTS`; ``overrides``: torchvision FasterRCNN keywords. torchvision's
    architecture is fixed: no act/norm overrides (backbone BatchNorm: the ``rcnn`` section's ``backbone_bn``)."""
    if act or norm != "bn":
        raise ModelError(f"{name} takes no --act/--norm overrides (its backbone BatchNorm is set by --backbone-bn)")
    for old in LEGACY_ARGS:  # decoding settings that checkpoints of the first wrapper saved as build arguments
        overrides.pop(old, None)
    model = FasterRCNN(num_classes, **{**VARIANTS[name], **overrides})
    model.build_args = {"name": name, "num_classes": num_classes, **overrides}
    return model


def apply_rcnn_settings(model: FasterRCNN, settings: Any) -> None:
    """The ``rcnn`` section (:class:`rtdet.config.RcnnConfig`) on a freshly built model: backbone BatchNorm
    frozen (FrozenBatchNorm2d) or trained, and the backbone stages left trainable, counted from the top as
    torchvision's ``trainable_backbone_layers``. ``auto`` (not resolved by a training run) means from scratch:
    every stage trains, BatchNorm too."""
    if settings.backbone_bn == "frozen":
        _freeze_batchnorm(model.net.backbone.body)
    stages = STAGES[model.backbone]
    n = stages if settings.trainable_layers == AUTO else int(settings.trainable_layers)
    if not 0 <= n <= stages:
        raise ModelError(f"setting 'rcnn.trainable_layers': {model.backbone} has stages 0..{stages}, got {n}")
    _freeze_stages(model, n)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d under ``module`` by a FrozenBatchNorm2d with the same statistics and affine."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)


def _freeze_stages(model: FasterRCNN, trainable: int) -> None:
    """Leave the top ``trainable`` backbone stages trainable and freeze the rest (torchvision's rule)."""
    body = model.net.backbone.body
    if model.backbone == "resnet50":
        train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable] + (["bn1"] if trainable == 5 else [])
        for name, p in body.named_parameters():
            p.requires_grad_(any(name.startswith(layer) for layer in train))
        return
    blocks = list(body.children())  # MobileNetV3 features up to the last returned stage
    cn = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    start = len(blocks) if trainable == 0 else cn[len(cn) - trainable]
    for k, block in enumerate(blocks):
        block.requires_grad_(k >= start)


def rcnn_recipe(cfg: Any, facts: Any) -> list:
    """The rcnn family's ``auto`` settings (see :mod:`rtdet.engine.recipe`): torchvision's builders freeze
    BatchNorm and all but the top 3 backbone stages when the backbone is pretrained, and train every
    stage with ordinary BatchNorm from scratch."""
    from rtdet.engine.recipe import Choice

    pretrained, r = bool(cfg.model.weights), cfg.rcnn
    out = []
    if r.backbone_bn == AUTO:
        out.append(Choice("rcnn.backbone_bn", "frozen" if pretrained else "trained",
                          "pretrained --weights: torchvision's FrozenBatchNorm2d" if pretrained
                          else "from scratch: ordinary BatchNorm"))
    if r.trainable_layers == AUTO:
        n = 3 if pretrained else STAGES[VARIANTS[cfg.model.model]["backbone"]]
        out.append(Choice("rcnn.trainable_layers", n, "pretrained --weights: the top 3 stages, torchvision's default"
                          if pretrained else "from scratch: every backbone stage"))
    return out
