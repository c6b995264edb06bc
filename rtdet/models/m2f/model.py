"""``rtdet-m2f``: Mask2Former-style mask classification for semantic segmentation, on rtdet's CNN backbone.

Network: the CSP backbone of ``rtdet-n`` (same widths, depths and blocks, attribute ``backbone``,
so a classifier's or a detector's backbone tensors load by name with ``--weights``) ->
:class:`~rtdet.models.m2f.pixel_decoder.PixelDecoder` (maps at strides 32, 16, 8 and the stride-4
mask features) -> :class:`~rtdet.models.m2f.decoder.MaskDecoder` (``Q`` queries, masked attention,
one prediction before and after each layer). The loss is
:class:`~rtdet.models.m2f.criterion.M2FCriterion` (Hungarian matching, cross-entropy, mask BCE and
Dice at sampled points, every prediction supervised), the decoding :func:`semantic_scores`:
three separate objects, as Mask2Former builds them.

Contract (:class:`rtdet.models.base.RtdetModel`, task ``segment``, as the segmenters of
:mod:`rtdet.models.seg`): ``images`` float ``[B, 3, H, W]`` RGB in ``[0, 1]``, H and W multiples of 32.
Training: ``model(images, targets)`` -> ``{"loss_ce", "loss_mask", "loss_dice"}``, targets holding
``"mask"`` int64 ``[H, W]`` (values outside ``0..K-1`` unlabelled). Eval: one dict ``{"logits": float32
[K, H/4, W/4], "input_size": (H, W)}`` per image, the per-class scores of :func:`semantic_scores` on the
mask features' stride-4 grid (their arg-max is the class map; the segment task resamples them bilinearly to
original pixels and arg-maxes them like any segmenter's logits). Export: :meth:`Mask2Former.forward_raw` ->
``(logits float32 [B, K, H/4, W/4],)``, the ONNX output ``logits``.

Example:
    >>> model = build_m2f("rtdet-m2f", num_classes=11).eval()
    >>> model.forward_raw(torch.rand(1, 3, 64, 96))[0].shape
    torch.Size([1, 11, 16, 24])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rtdet.errors import ModelError
from rtdet.models.backbones import CSPBackbone
from rtdet.models.base import RtdetModel, build_family_model
from rtdet.models.m2f.criterion import M2FCriterion
from rtdet.models.m2f.decoder import MaskDecoder
from rtdet.models.m2f.matcher import MaskMatcher, segments
from rtdet.models.m2f.pixel_decoder import PixelDecoder
from rtdet.models.seg import grid_predictions
from rtdet.models.yolo import backbone_settings

# name -> the detector scale whose backbone it uses, the transformer's feed-forward width, depthwise fusion
# convolutions (rtdet-detr-n's choices: D-FINE-N's widths)
M2F_SCALES: dict[str, dict[str, Any]] = {
    "rtdet-m2f": dict(scale="rtdet-n", ffn_dims=512, dw=True),
}
# config setting (rtdet.config.M2fConfig) -> Mask2Former keyword
CONFIG_ARGS = {"m2f_queries": "num_queries", "m2f_dims": "embed_dims", "m2f_layers": "num_decoder_layers",
               "m2f_heads": "num_heads"}


def semantic_scores(logits: Tensor, embed: Tensor, features: Tensor) -> Tensor:
    """Mask2Former's semantic inference: float [B, K, h, w], ``sum_q softmax(logits_q)[k] * sigmoid(mask_q)``,
    the class probabilities without "no object" weighting each query's mask probabilities.

    Args:
        logits: float [B, Q, K+1]; embed: float [B, Q, D]; features: float [B, D, h, w] (masks ``embed @ features``).

    Mask2Former upsamples the ``Q`` mask logits to the image before this sum; here the ``K`` scores are
    resampled after it (by the segment task, :meth:`Mask2Former.semantic`): ``Q / K`` times fewer maps (100 / 11 on
    CamVid). Upsampling the scores is a convex combination of the nearest stride-4 pixels' scores, so where
    those agree on the class the result keeps it; the two orders differ only in where a class boundary falls
    between stride-4 pixels.
    """
    masks = torch.einsum("bqd,bdhw->bqhw", embed, features).sigmoid()
    return torch.einsum("bqk,bqhw->bkhw", logits.softmax(-1)[..., :-1], masks)


class Mask2Former(RtdetModel):
    """Mask2Former-style semantic segmenter.

    Args:
        num_classes: ``K``.
        channels, depths, act, norm, dw_backbone: the CSP backbone (:class:`rtdet.models.backbones.CSPBackbone`).
        embed_dims: ``D``, the transformer's and the mask features' width; ffn_dims: feed-forward width.
        dw: depthwise-separable convolutions in the pixel decoder.
        num_queries: ``Q``; num_decoder_layers: ``L``; num_heads: of every attention layer.
        dropout: in the transformer layers (Mask2Former: 0).
    """

    task = "segment"
    output_names = ("logits",)

    def __init__(self, num_classes: int, channels: tuple[int, ...], depths: tuple[int, ...], act: str = "silu",
                 norm: str = "bn", dw_backbone: bool = False, embed_dims: int = 128, ffn_dims: int = 512,
                 dw: bool = False, num_queries: int = 100, num_decoder_layers: int = 6, num_heads: int = 8,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ModelError(f"a segmenter needs num_classes >= 2, got {num_classes}")
        if embed_dims % num_heads or embed_dims % 4:
            raise ModelError(f"m2f_dims {embed_dims} must be divisible by 4 and by m2f_heads {num_heads}")
        self.num_classes = num_classes
        self.backbone = CSPBackbone(channels, depths, act, norm, dw_backbone)
        self.pixel_decoder = PixelDecoder(tuple(channels[1:]), embed_dims, num_heads, ffn_dims, act, norm, dw)
        self.decoder = MaskDecoder(embed_dims, num_classes, num_queries, num_decoder_layers, num_heads, ffn_dims,
                                   dropout=dropout)
        self.criterion: Any = M2FCriterion(num_classes)
        self.backbone_lr_scale = 0.1

    def network(self, images: Tensor) -> dict[str, Any]:
        """``{"sets": L + 1 dicts {"logits" [B, Q, K+1], "embed" [B, Q, D]}, "features" [B, D, H/4, W/4]}``."""
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):  # shapes are symbolic then
            if images.shape[-1] % 32 or images.shape[-2] % 32:
                raise ValueError(f"Mask2Former input height and width must be multiples of 32, got "
                                 f"{tuple(images.shape[-2:])}")
        maps, features = self.pixel_decoder(self.backbone.features(images))
        return {"sets": self.decoder(maps, features), "features": features}

    def semantic(self, out: dict[str, Any]) -> Tensor:
        """float32 [B, K, H/4, W/4]: :func:`semantic_scores` of the last prediction on the mask features' stride-4
        grid; the segment task resamples them bilinearly to the original pixels (as Mask2Former upsamples to the
        image, in one step: :func:`rtdet.tasks.segment.to_original`)."""
        last = out["sets"][-1]
        return semantic_scores(last["logits"].float(), last["embed"].float(), out["features"].float())

    def segment_targets(self, targets: list[dict], device: torch.device) -> list[dict[str, Tensor]]:
        """The criterion's targets: per image ``labels`` int64 [N] and ``masks`` float [N, H, W] (:func:`segments`)."""
        out = []
        for t in targets:
            labels, masks = segments(t["mask"].to(device), self.num_classes)
            out.append({"labels": labels, "masks": masks.float()})
        return out

    def forward_raw(self, images: Tensor) -> tuple[Tensor]:
        """Export path: ``(logits float32 [B, K, H/4, W/4],)``, the semantic scores."""
        return (self.semantic(self.network(images)),)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The export's dynamic axes when ``dynamic``: batch, height and width of ``logits``."""
        return {"logits": {0: "batch", 2: "height", 3: "width"}}

    def forward(self, images: Tensor, targets: list[dict] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the losses (needs ``targets``). Eval: B dicts ``{"logits": float32 [K, H/4, W/4],
        "input_size": (H, W)}``."""
        if self.training:
            if targets is None:
                raise ValueError("Mask2Former.forward in training mode needs targets (call model.eval() to predict)")
            return self.criterion(self.network(images), self.segment_targets(targets, images.device))
        return grid_predictions(self.forward_raw(images)[0], images)

    def predict_with_loss(self, images: Tensor, targets: list[dict]
                          ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval-mode predictions and the losses against ``targets`` from one network pass (for validation)."""
        out = self.network(images)
        losses = self.criterion(out, self.segment_targets(targets, images.device))
        return grid_predictions(self.semantic(out), images), losses

    def param_groups_hint(self) -> dict[str, Any]:
        """The backbone trains at ``backbone_lr_scale`` times the learning rate (Mask2Former: 0.1)."""
        scale = {"lr_scale": self.backbone_lr_scale}
        return {f"backbone.{name}": scale for name, _ in self.backbone.named_parameters()}


def build_m2f(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> Mask2Former:
    """Mask2Former ``name`` (``rtdet-m2f``) for ``num_classes`` classes.

    Args:
        act: activation override (``relu``, ``lrelu``, ``silu``, ``frelu``); None or "" keeps the scale's.
        norm: ``bn`` or ``gn``.
        overrides: any :class:`Mask2Former` keyword (e.g. ``num_queries=50``), or its config name
            (``m2f_queries=50``, :data:`CONFIG_ARGS`).

    ``model.build_args`` rebuilds the same architecture: ``build_m2f(**model.build_args)``.
    """
    if name not in M2F_SCALES:
        raise ModelError(f"unknown Mask2Former model {name!r}; expected one of {', '.join(M2F_SCALES)}")
    overrides = {CONFIG_ARGS.get(k, k): v for k, v in overrides.items()}
    own = {k: v for k, v in M2F_SCALES[name].items() if k != "scale"}
    return build_family_model(Mask2Former, name, num_classes, {**backbone_settings(M2F_SCALES[name]["scale"]), **own},
                              act, norm, overrides)


def apply_m2f_settings(model: Mask2Former, settings: Any) -> None:
    """The loss, matching and backbone learning rate of a :class:`rtdet.config.M2fConfig` (the settings that
    shape the network are build arguments: :func:`rtdet.models.build_from_config` passes them, see
    ``section_args`` in :mod:`rtdet.registry`)."""
    s = settings
    matcher = MaskMatcher(s.m2f_class_gain, s.m2f_mask_gain, s.m2f_dice_gain, s.m2f_points)
    model.criterion = M2FCriterion(model.num_classes, matcher, s.m2f_class_gain, s.m2f_mask_gain, s.m2f_dice_gain,
                                   s.m2f_no_object, s.m2f_points, s.m2f_oversample, s.m2f_importance)
    model.backbone_lr_scale = s.m2f_backbone_lr_scale


__all__ = ["M2F_SCALES", "Mask2Former", "apply_m2f_settings", "build_m2f", "semantic_scores"]
