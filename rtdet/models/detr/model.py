"""``rtdet-detr-n`` / ``-s``: a real-time detection transformer in the manner of RT-DETR, on rtdet's CNN backbone.

Network: the CSP backbone of ``rtdet-n`` / ``-s`` (same widths, depths and blocks, attribute
``backbone``, so a classifier's or a detector's backbone tensors load by name with
``--weights``) -> :class:`~rtdet.models.detr.encoder.HybridEncoder` over its last ``num_levels``
maps -> :class:`~rtdet.models.detr.decoder.QuerySelection` -> :class:`~rtdet.models.detr.decoder.Decoder`.
The loss is :class:`~rtdet.models.detr.criterion.DETRCriterion`, the decoding
:func:`rtdet.models.postprocess.topk_postprocess` (top-k over queries x classes, no NMS): three
separate objects, as DETR builds them.

Contract (:class:`rtdet.models.base.RtdetModel`, task ``detect``): ``images`` float ``[B, 3, H, W]``
in ``[0, 1]``, H and W multiples of 32, giving at least ``num_queries`` encoder tokens. Training:
``model(images, targets)`` -> ``{"cls", "l1", "giou"}`` (targets: ``boxes`` [N, 4] xyxy input pixels,
``labels`` int64 [N]). Eval: B dicts ``boxes`` [D, 4] xyxy input pixels, ``scores`` [D], ``labels``
int64 [D]. Export: :meth:`DETR.forward_raw` -> ``(boxes [B, Q, 4] xyxy input pixels, scores [B, Q, K])``.

Frames: inside the decoder boxes are normalized ``cxcywh``; the model converts the targets in and
the predictions out, once each, with :func:`rtdet.boxes.box_convert`.

Example:
    >>> model = build_detr("rtdet-detr-n", num_classes=80).eval()
    >>> boxes, scores = model.forward_raw(torch.rand(1, 3, 320, 320))
    >>> boxes.shape, scores.shape
    (torch.Size([1, 300, 4]), torch.Size([1, 300, 80]))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rtdet.boxes import box_convert
from rtdet.config import AUTO
from rtdet.errors import ModelError
from rtdet.models.backbones import CSPBackbone
from rtdet.models.base import RtdetModel, build_family_model
from rtdet.models.detr.criterion import DETRCriterion
from rtdet.models.detr.decoder import Decoder, QuerySelection
from rtdet.models.detr.denoising import denoising_groups
from rtdet.models.detr.encoder import HybridEncoder
from rtdet.models.detr.matcher import HungarianMatcher
from rtdet.models.postprocess import topk_postprocess
from rtdet.models.yolo import backbone_settings

# name -> the detector scale whose backbone it uses, and the transformer's width. -n: D-FINE-N's widths
# (128, feed-forward 512) and depthwise fusion convolutions as rtdet-n's neck; -s: RT-DETR-R18's (256, 1024).
DETR_SCALES: dict[str, dict[str, Any]] = {
    "rtdet-detr-n": dict(scale="rtdet-n", embed_dims=128, ffn_dims=512, dw=True),
    "rtdet-detr-s": dict(scale="rtdet-s", embed_dims=256, ffn_dims=1024, dw=False),
}
BACKBONE_LR_SCALE = 0.1  # RT-DETR trains its (ImageNet-trained) backbone at a tenth of the learning rate
# ONNX parity after the queries are paired (DETR.parity_align): boxes are sigmoid outputs times the image size,
# so float32 rounding through the transformer reaches them scaled by hundreds of pixels; scores are
# probabilities. Measured at 320 px on the sample photos: random rtdet-detr-n 5.3e-5 px / 1e-7; rtdet-detr-s
# with BatchNorm statistics of real images 5.3e-5 px / 5e-7. An untrained -s (BatchNorm at its initial
# statistics) fails: its eval-mode features are nearly constant, so which tokens the top-k selects is
# decided by rounding.
PARITY = {"boxes": 1e-3, "scores": 1e-4}  # boxes in pixels
PARITY_HALF = {"boxes": 0.5, "scores": 1e-2}
UNPAIRED = 0.02  # share of queries that may differ: those at the top-k cut-off, where rounding decides


class DETR(RtdetModel):
    """RT-DETR-style detector.

    Args:
        num_classes: ``K``.
        channels, depths, act, norm, dw_backbone: the CSP backbone (:class:`rtdet.models.backbones.CSPBackbone`).
        embed_dims: ``D``, the transformer's width; ffn_dims: its feed-forward width.
        dw: depthwise-separable convolutions in the encoder's fusion blocks.
        num_queries: ``Q``; num_decoder_layers, num_heads, num_levels (1-3: the backbone's coarsest maps),
            num_points (per head and level): the decoder's.
        num_denoising, label_noise, box_noise: the denoising queries (:mod:`rtdet.models.detr.denoising`).
        dropout: in the transformer layers.
    """

    task = "detect"
    output_names = ("boxes", "scores")

    def __init__(self, num_classes: int, channels: tuple[int, ...], depths: tuple[int, ...], act: str = "silu",
                 norm: str = "bn", dw_backbone: bool = False, embed_dims: int = 256, ffn_dims: int = 1024,
                 dw: bool = False, num_queries: int = 300, num_decoder_layers: int = 3, num_heads: int = 8,
                 num_levels: int = 3, num_points: int = 4, num_denoising: int = 100, label_noise: float = 0.5,
                 box_noise: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"DETR needs num_classes >= 1, got {num_classes}")
        if not 1 <= num_levels <= 3:
            raise ModelError(f"DETR num_levels must be 1, 2 or 3 (backbone maps at strides 8-32), got {num_levels}")
        self.num_classes, self.num_queries, self.num_levels = num_classes, num_queries, num_levels
        self.denoising = {"num_denoising": num_denoising, "label_noise": label_noise, "box_noise": box_noise}
        self.backbone = CSPBackbone(channels, depths, act, norm, dw_backbone)
        self.encoder = HybridEncoder(self.backbone.out_channels[3 - num_levels:], embed_dims, num_heads, ffn_dims,
                                     act=act, norm=norm, dw=dw, dropout=dropout)
        self.selection = QuerySelection(embed_dims, num_classes)
        self.decoder = Decoder(embed_dims, num_classes, num_decoder_layers, num_heads, ffn_dims, num_levels,
                               num_points, dropout)
        self.label_embed = nn.Embedding(num_classes + 1, embed_dims, padding_idx=num_classes)  # denoising labels
        self.criterion: Any = DETRCriterion(num_classes)
        self.backbone_lr_scale = BACKBONE_LR_SCALE
        self.postprocess_args: dict[str, Any] = {"conf": 0.001, "max_det": 300}

    def set_postprocess(self, **settings: Any) -> None:
        """Eval-mode decoding: ``conf`` and ``max_det``. The NMS settings (``iou``, ``method``, ...) are
        accepted and ignored: a set-prediction detector has nothing to suppress."""
        self.postprocess_args.update({k: v for k, v in settings.items() if k in ("conf", "max_det")})

    def network(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                all_layers: bool = False) -> dict[str, Any]:
        """The decoder's outputs for ``images``: ``logits`` [B, Q, K] and ``boxes`` [B, Q, 4] (normalized cxcywh)
        of the last layer; with ``all_layers`` also ``aux`` (the earlier layers) and ``enc`` (the proposals);
        with ``targets`` (normalized, see :meth:`normalized`) also the denoising outputs ``dn``,
        ``dn_positives``, ``dn_groups`` (:class:`rtdet.models.detr.criterion.DETRCriterion` reads them all)."""
        self._check_size(images)
        maps = self.encoder(self.backbone(images)[3 - self.num_levels:])
        shapes = [(m.shape[2], m.shape[3]) for m in maps]
        memory = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)  # [B, L, D]
        start = self.selection(memory, shapes, self.num_queries)
        x, reference, mask = start["content"], start["reference"], None
        dn = denoising_groups(targets, self.label_embed, self.num_classes, self.num_queries,
                              **self.denoising) if targets is not None else None
        if dn is not None:
            x, reference, mask = torch.cat([dn.queries, x], 1), torch.cat([dn.boxes, reference], 1), dn.attn_mask
        logits, boxes = self.decoder(x, reference, maps, mask, all_layers=all_layers)
        n = dn.size if dn is not None else 0
        sets = [{"logits": lg[:, n:], "boxes": bx[:, n:]} for lg, bx in zip(logits, boxes)]
        out: dict[str, Any] = {**sets[-1], "aux": sets[:-1]}
        if all_layers:
            out["enc"] = {"logits": start["logits"], "boxes": start["boxes"]}
        if dn is not None:
            out |= {"dn": [{"logits": lg[:, :n], "boxes": bx[:, :n]} for lg, bx in zip(logits, boxes)],
                    "dn_positives": dn.positives, "dn_groups": dn.groups}
        return out

    def _check_size(self, images: Tensor) -> None:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # shapes are symbolic then
            return
        self.check_input_size(*images.shape[-2:])

    def check_input_size(self, height: int, width: int) -> None:
        """ModelError unless both sides are multiples of 32 and the encoder has at least ``num_queries`` tokens
        (query selection keeps that many)."""
        h, w = int(height), int(width)
        if h % 32 or w % 32:
            raise ModelError(f"DETR input height and width must be multiples of 32, got {(h, w)}")
        strides = (8, 16, 32)[3 - self.num_levels:]
        tokens = sum((h // s) * (w // s) for s in strides)
        if tokens < self.num_queries:
            smallest = next(k for k in range(32, 4097, 32) if sum((k // s) ** 2 for s in strides) >= self.num_queries)
            raise ModelError(f"DETR input {h}x{w} gives {tokens} encoder tokens, fewer than num_queries "
                             f"{self.num_queries}: use --imgsz {smallest} or more, or fewer --num-queries")

    def normalized(self, targets: list[dict[str, Any]], image_size: tuple[int, int],
                   device: torch.device) -> list[dict[str, Tensor]]:
        """Targets (``boxes`` [N, 4] xyxy input pixels) as the decoder's frame: ``boxes`` normalized cxcywh."""
        return [{"labels": t["labels"].to(device).long(),
                 "boxes": box_convert(t["boxes"].to(device).float(), "xyxy", "cxcywhn", image_size)} for t in targets]

    def to_pixels(self, out: dict[str, Any], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(boxes [B, Q, 4] xyxy input pixels, scores [B, Q, K] probabilities)``, float32, from :meth:`network`."""
        return box_convert(out["boxes"].float(), "cxcywhn", "xyxy", image_size), out["logits"].float().sigmoid()

    def forward_raw(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Export path: ``(boxes [B, Q, 4] xyxy input pixels, scores [B, Q, K] in [0, 1])``, no decoding."""
        return self.to_pixels(self.network(images), (images.shape[-2], images.shape[-1]))

    def detections(self, boxes: Tensor, scores: Tensor, image_size: tuple[int, int]) -> list[dict[str, Tensor]]:
        return topk_postprocess(boxes, scores, image_size=image_size, **self.postprocess_args)

    def forward(self, images: Tensor, targets: list[dict] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: dict of losses (needs ``targets``). Eval: list of B dicts ``boxes``/``scores``/``labels``."""
        size = (images.shape[-2], images.shape[-1])
        if self.training:
            if targets is None:
                raise ValueError("DETR.forward in training mode needs targets (call model.eval() to predict)")
            normalized = self.normalized(targets, size, images.device)
            return self.criterion(self.network(images, normalized, all_layers=True), normalized)
        return self.detections(*self.forward_raw(images), size)

    def predict_with_loss(self, images: Tensor, targets: list[dict]
                          ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval-mode detections and the losses from one network pass: every layer's and the proposals' set
        losses, without the denoising ones (denoising is a training device)."""
        size = (images.shape[-2], images.shape[-1])
        normalized = self.normalized(targets, size, images.device)
        out = self.network(images, all_layers=True)
        return self.detections(*self.to_pixels(out, size), size), self.criterion(out, normalized)

    def param_groups_hint(self) -> dict[str, Any]:
        """The backbone trains at ``backbone_lr_scale`` times the learning rate (RT-DETR: 0.1)."""
        scale = {"lr_scale": self.backbone_lr_scale}
        return {f"backbone.{name}": scale for name, _ in self.backbone.named_parameters()}

    def parity_align(self, reference: tuple[np.ndarray, ...],
                     exported: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Pair the queries of PyTorch's and ONNX Runtime's outputs, image by image, before they are compared.

        The queries are the encoder's top-``Q`` tokens in score order: tokens whose scores differ by
        float rounding may swap places in the list (the same rows, elsewhere) or, at the ``Q``-th place,
        swap in and out of it. Rows pair one to one (:func:`pair_queries`) when their boxes agree within
        1 px and their scores within 0.01; at most :data:`UNPAIRED` of them (and 2) per image may stay
        unpaired. Every image keeps as many pairs as the image with the fewest.

        Raises:
            ValueError: more queries differ than that (the message says how many).
        """
        pairs = []
        for b, (rb, rs, eb, es) in enumerate(zip(*reference, *exported)):
            found = pair_queries(rb, rs, eb, es)
            if len(rb) - len(found) > max(2, UNPAIRED * len(rb)):
                raise ValueError(f"image {b}: {len(rb) - len(found)} of {len(rb)} queries differ between PyTorch "
                                 "and ONNX Runtime")
            pairs.append(found)
        n = min(len(p) for p in pairs)
        return (tuple(np.stack([o[b, p[:n, 0]] for b, p in enumerate(pairs)]) for o in reference),
                tuple(np.stack([o[b, p[:n, 1]] for b, p in enumerate(pairs)]) for o in exported))

    def parity_allowed(self, name: str, reference: np.ndarray, imgsz: int, half: bool = False) -> np.ndarray | float:
        """Absolute tolerances of :data:`PARITY` (boxes in pixels), looser with float16 weights."""
        return (PARITY_HALF if half else PARITY)[name]


def pair_queries(boxes_a: np.ndarray, scores_a: np.ndarray, boxes_b: np.ndarray, scores_b: np.ndarray) -> np.ndarray:
    """Pairs ``[P, 2]`` (sorted by the first index) of the rows of one image's outputs ``a`` and ``b`` (boxes
    [Q, 4] pixels, scores [Q, K]) that agree within 1 px and 0.01: a one-to-one assignment minimizing the
    largest difference of each pair in those units (``scipy.optimize.linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment

    box = np.abs(boxes_a[:, None] - boxes_b[None]).max(-1)
    score = np.abs(scores_a[:, None] - scores_b[None]).max(-1, initial=0.0) / 0.01
    cost = np.maximum(box, score)
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] <= 1.0
    return np.stack([rows[keep], cols[keep]], 1).astype(np.int64)


def build_detr(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> DETR:
    """DETR ``name`` (``rtdet-detr-n``, ``rtdet-detr-s``) for ``num_classes`` classes; ``overrides``: any
    :class:`DETR` keyword (e.g. ``num_queries=100``). ``model.build_args`` rebuilds the same architecture."""
    if name not in DETR_SCALES:
        raise ModelError(f"unknown DETR model {name!r}; expected one of {', '.join(DETR_SCALES)}")
    own = {k: v for k, v in DETR_SCALES[name].items() if k != "scale"}
    if overrides.get("embed_dims") == 0:  # the config's "the scale's own"
        overrides.pop("embed_dims")
    return build_family_model(DETR, name, num_classes, {**backbone_settings(DETR_SCALES[name]["scale"]), **own}, act,
                              norm, overrides)


def apply_detr_settings(model: DETR, settings: Any) -> None:
    """The denoising, loss, matcher and backbone learning rate of a :class:`rtdet.config.DetrConfig` (the
    settings that shape the network are build arguments: :func:`rtdet.models.build_from_config` passes them,
    see ``section_args`` in :mod:`rtdet.registry`)."""
    matcher = HungarianMatcher(settings.cost_class, settings.cost_l1, settings.cost_giou)
    model.criterion = DETRCriterion(model.num_classes, matcher, settings.class_loss, settings.class_gain,
                                    settings.l1_gain, settings.giou_gain, o2m_k=settings.o2m_k)
    if settings.backbone_lr_scale != AUTO:  # auto: the family's recipe resolves it when training starts
        model.backbone_lr_scale = settings.backbone_lr_scale
    model.denoising = {"num_denoising": settings.num_denoising, "label_noise": settings.label_noise,
                       "box_noise": settings.box_noise}


__all__ = ["DETR", "DETR_SCALES", "apply_detr_settings", "build_detr", "pair_queries"]
