"""Semantic segmenters: the detector's CSP backbone, a light FPN to stride 4 or 8, a class head, an upsampler.

Contract (:class:`rtdet.models.base.RtdetModel`, task ``segment``): ``images`` are float
``[B, 3, H, W]`` RGB in ``[0, 1]`` with H and W multiples of 32. In training mode
``model(images, targets)`` returns ``{"loss_ce": scalar}`` (plus ``"loss_dice"`` with
``seg.dice_gain > 0``; :class:`rtdet.losses.seg_loss.SegmentationLoss`), targets holding
``"mask"`` int64 ``[H, W]``. In eval mode ``model(images)`` returns one dict
``{"logits": float32 [K, h, w], "input_size": (H, W)}`` per image, on a grid spanning the
input frame (the task resamples them to original pixels, :func:`rtdet.tasks.segment.to_original`).
:meth:`Segmenter.forward_raw` is the export output ``(logits float32 [B, K, h, w],)``, the ONNX
output named ``logits``. With ``upsample="bilinear"`` (the default) the grid is the head's
stride ``s`` (``seg.head_stride``, 4 or 8: ``h = H / s``): bilinear upsampling belongs to that
resampling, which goes straight to the original pixels, so the graph leaves it out; the other
upsamplers (nearest and the learned ones) run in the graph and the grid is the input's
(``h = H``). The training loss is
computed on logits at the input resolution (:meth:`Segmenter.logits`), or with ``seg.loss_stride``
> 1 on logits upsampled to that stride against the masks at its cells' centres (:func:`sample_masks`).

Network: ``rtdet-seg-n`` / ``-s`` use the backbone of ``rtdet-n`` / ``-s`` (same widths,
depths, blocks; attribute ``backbone``, so a classifier's or a detector's backbone
tensors load by name with ``--weights``). :class:`SegFPN` fuses the backbone's stages
top-down (1x1 lateral convolutions to one width, nearest x2 upsampling, a 3x3 convolution
after each sum) into one map at the head's stride: all four stages into a stride-4 map
(``seg.head_stride`` 4, the default), or the stages at strides 8-32 into a stride-8 map
(``head_stride`` 8, as LR-ASPP predicts: the stride-4 fusion and head are about a quarter
of rtdet-seg-n's multiply-adds at 480 px, 147 of 558 M). The head is a 3x3 convolution and
a 1x1 classifier. The ``upsample`` setting (config ``seg.upsample``) says how the head's
logits reach the input resolution (:class:`Upsampler`).

Example:
    >>> model = build_segmenter("rtdet-seg-n", num_classes=11).eval()
    >>> model.logits(torch.rand(1, 3, 64, 96)).shape
    torch.Size([1, 11, 64, 96])
    >>> model.forward_raw(torch.rand(1, 3, 64, 96))[0].shape
    torch.Size([1, 11, 16, 24])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.config import SegConfig
from rtdet.errors import ModelError
from rtdet.losses.seg_loss import SegmentationLoss
from rtdet.models.backbones import BLOCKS, CSPBackbone
from rtdet.models.base import RtdetModel, build_family_model
from rtdet.models.layers import ConvNormAct, conv
from rtdet.models.yolo import backbone_settings

UPSAMPLERS = ("nearest", "bilinear", "transposed", "pixelshuffle")
HEAD_STRIDES = (4, 8)  # where the head may predict (seg.head_stride); the upsampler multiplies by it
# segmenter name -> the detector scale whose backbone it uses, the FPN width, depthwise FPN/head convolutions
SEG_SCALES: dict[str, dict[str, Any]] = {
    "rtdet-seg-n": dict(scale="rtdet-n", width=64, dw=True),
    "rtdet-seg-s": dict(scale="rtdet-s", width=128, dw=False),
}


def sample_masks(targets: list[dict], stride: int) -> list[dict]:
    """The targets' masks (int64 [H, W]) at the centres of ``stride x stride`` cells: pixel ``stride // 2`` of each
    cell, ``[H / stride, W / stride]`` (the targets themselves at stride 1). What a loss on logits at that stride
    scores against: cheaper than logits at the input resolution, half a pixel off the cell's centre for even
    strides."""
    if stride == 1:
        return targets
    return [{"mask": t["mask"][..., stride // 2::stride, stride // 2::stride]} for t in targets]


def grid_predictions(logits: Tensor, images: Tensor) -> list[dict[str, Tensor]]:
    """The eval-mode output of every segmenter: ``logits`` float [B, K, h, w] on a grid spanning ``images``
    [B, 3, H, W] -> B dicts ``{"logits": [K, h, w], "input_size": (H, W)}`` (the segment task's prediction)."""
    size = tuple(images.shape[-2:])
    return [{"logits": x, "input_size": size} for x in logits]


def bilinear_kernel(factor: int) -> Tensor:
    """float32 [2f, 2f]: the kernel with which a stride-``f`` transposed convolution (padding f/2) equals
    bilinear upsampling away from the border (FCN's initialisation, Long et al., 2015)."""
    size = 2 * factor
    centre = factor - 0.5
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float32) - centre) / factor
    return ramp[:, None] * ramp[None, :]


class Upsampler(nn.Module):
    """``[B, C, h, w] -> [B, K, h*f, w*f]``: the class logits at the input resolution.

    Kinds (``C`` is ``K``, except ``pixelshuffle`` where it is ``K * f * f``):

    - ``nearest`` / ``bilinear``: interpolation, no weights;
    - ``transposed``: a depthwise ``ConvTranspose2d`` (kernel 2f, stride f) per class, started
      at the bilinear kernel so it begins as ``bilinear`` and learns from there;
    - ``pixelshuffle``: the classifier predicts ``f * f`` sub-pixel logits per class which
      ``PixelShuffle`` lays out (ESPCN, Shi et al., 2016); see :meth:`Segmenter.init_pixelshuffle`.
    """

    def __init__(self, kind: str, num_classes: int, factor: int = HEAD_STRIDES[0]) -> None:
        super().__init__()
        if kind not in UPSAMPLERS:
            raise ModelError(f"unknown upsample {kind!r}; expected one of {', '.join(UPSAMPLERS)}")
        self.kind, self.factor = kind, factor
        if kind == "transposed":
            self.op: nn.Module = nn.ConvTranspose2d(num_classes, num_classes, 2 * factor, factor, factor // 2,
                                                    groups=num_classes, bias=False)
            with torch.no_grad():
                self.op.weight.copy_(bilinear_kernel(factor).expand_as(self.op.weight))
        elif kind == "pixelshuffle":
            self.op = nn.PixelShuffle(factor)
        else:
            self.op = nn.Identity()

    @property
    def channels_per_class(self) -> int:
        """Input channels per class: ``f * f`` for ``pixelshuffle``, else 1."""
        return self.factor ** 2 if self.kind == "pixelshuffle" else 1

    def forward(self, x: Tensor) -> Tensor:
        return self.to_stride(x, 1)

    def check_stride(self, stride: int) -> None:
        """Raises ModelError: :meth:`to_stride` cannot make logits at ``stride``: > 1 with a learned upsampler
        (it makes the input resolution only), or not a divisor of the factor."""
        if stride != 1 and (self.kind not in ("nearest", "bilinear") or self.factor % stride):
            raise ModelError(f"logits at stride {stride} need an interpolating upsampler (nearest, bilinear) whose "
                             f"factor {self.factor} it divides, not {self.kind!r}")

    def to_stride(self, x: Tensor, stride: int) -> Tensor:
        """``[B, C, h, w] -> [B, K, h*f/stride, w*f/stride]``: the logits at ``stride`` (1: :meth:`forward`).

        Raises:
            ModelError: see :meth:`check_stride`.
        """
        self.check_stride(stride)
        if self.kind in ("nearest", "bilinear"):
            align = False if self.kind == "bilinear" else None
            # NCHW first: on a channels-last [8, 11, 120, 120] (training's layout) interpolation and the loss after
            # it took 0.365 CPU-s per step forward and backward, 0.302 from NCHW (one thread, CamVid's 480 px)
            return F.interpolate(x.contiguous(), scale_factor=float(self.factor // stride), mode=self.kind,
                                 align_corners=align)
        return self.op(x)


class SegFPN(nn.Module):
    """``(P2, P3, P4, P5) -> [B, width, H/4, W/4]``: top-down fusion of the backbone's four stages.

    Args:
        in_channels: widths of ``P2..P5``.
        width: the common width of the laterals and the output.
        act, norm: see :mod:`rtdet.models.layers`; ``dw``: depthwise-separable 3x3 convolutions.
        strides: of ``P2..P5`` (4, 8, 16, 32; P5 at 16 with a dilated last stage): each step up the
            pyramid upsamples by the ratio of neighbouring strides (nearest; none at ratio 1).
    """

    def __init__(self, in_channels: tuple[int, ...], width: int, act: str = "relu", norm: str = "bn",
                 dw: bool = False, strides: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvNormAct(c, width, 1, act=act, norm=norm) for c in in_channels)
        self.smooth = nn.ModuleList(conv(width, width, 3, act=act, norm=norm, dw=dw) for _ in in_channels[:-1])
        self.factors = tuple(b // a for a, b in zip(strides[:-1], strides[1:]))

    def levels(self, feats: tuple[Tensor, ...]) -> list[Tensor]:
        """The fused maps from the top down, one per input: ``[P5 lateral, stride-16 sum, stride-8 sum, stride-4
        output]`` from ``P2..P5`` (``[P5 lateral, stride-16 sum, stride-8 output]`` from ``P3..P5``), each
        ``[B, width, h, w]`` (the last is :meth:`forward`'s)."""
        x = self.lateral[-1](feats[-1])
        out = [x]
        for i in range(len(feats) - 2, -1, -1):  # stride 16, 8, 4
            if self.factors[i] > 1:
                x = F.interpolate(x, scale_factor=float(self.factors[i]), mode="nearest")
            x = self.smooth[i](x + self.lateral[i](feats[i]))
            out.append(x)
        return out

    def forward(self, feats: tuple[Tensor, ...]) -> Tensor:
        return self.levels(feats)[-1]


class Segmenter(RtdetModel):
    """CSP backbone -> :class:`SegFPN` to ``head_stride`` -> 3x3 conv -> 1x1 classifier -> :class:`Upsampler`.

    Args:
        num_classes: ``K``.
        channels, depths, act, norm, dw_backbone, output_stride, blocks: :class:`rtdet.models.backbones.CSPBackbone`
            settings (``output_stride=16``: a dilated last stage; ``blocks="ir"``: MobileNetV3's inverted residuals
            at strides 16 and 32, ``seg.blocks``).
        width: FPN and head width; ``dw``: depthwise-separable FPN and head convolutions.
        upsample: one of :data:`UPSAMPLERS`.
        head_stride: one of :data:`HEAD_STRIDES`: the FPN fuses ``P2..P5`` into a stride-4 map, or ``P3..P5``
            into a stride-8 map (``seg.head_stride``).
        aux_gain: deep supervision (``seg.aux_gain``): a class head on each FPN sum between the top and the
            output (strides 16 and 8 for ``head_stride`` 4, 16 for 8), in the training loss only.
        dice_gain, class_weight: of the training loss (:class:`rtdet.losses.seg_loss.SegmentationLoss`'s
            ``dice_gain`` and ``weighting``).
    """

    task = "segment"
    output_names = ("logits",)

    def __init__(self, num_classes: int, channels: tuple[int, ...], depths: tuple[int, ...], width: int = 64,
                 act: str = "relu", norm: str = "bn", dw_backbone: bool = False, dw: bool = False,
                 upsample: str = SegConfig.upsample, dice_gain: float = SegConfig.dice_gain,
                 class_weight: str = SegConfig.class_weight, output_stride: int = 32,
                 aux_gain: float = SegConfig.aux_gain, head_stride: int = SegConfig.head_stride,
                 blocks: str = SegConfig.blocks) -> None:
        super().__init__()
        if num_classes < 2:
            raise ModelError(f"a segmenter needs num_classes >= 2, got {num_classes}")
        if head_stride not in HEAD_STRIDES:
            raise ModelError(f"head_stride must be one of {HEAD_STRIDES}, got {head_stride}")
        self.num_classes = num_classes
        if blocks not in BLOCKS:
            raise ModelError(f"blocks must be one of {', '.join(BLOCKS)}, got {blocks!r}")
        self.backbone = CSPBackbone(channels, depths, act, norm, dw_backbone, output_stride, blocks)
        self.first_level = self.backbone.strides.index(head_stride)  # the FPN reads P2..P5 from the head's stride on
        self.neck = SegFPN(tuple(channels[1 + self.first_level:]), width, act, norm, dw,
                           self.backbone.strides[self.first_level:])
        self.upsample = Upsampler(upsample, num_classes, head_stride)
        self.head = nn.Sequential(conv(width, width, 3, act=act, norm=norm, dw=dw),
                                  nn.Conv2d(width, num_classes * self.upsample.channels_per_class, 1))
        if upsample == "pixelshuffle":
            self.init_pixelshuffle()
        if aux_gain < 0:
            raise ModelError(f"aux_gain must be >= 0, got {aux_gain}")
        self.aux_gain = float(aux_gain)
        # deep supervision: class heads on the FPN's sums between its top and its output, for the training loss only
        self.aux_levels = tuple(range(1, len(self.neck.lateral) - 1)) if aux_gain > 0 else ()
        self.aux_heads = nn.ModuleList(
            nn.Sequential(conv(width, width, 3, act=act, norm=norm, dw=dw), nn.Conv2d(width, num_classes, 1))
            for _ in self.aux_levels)
        self.criterion = SegmentationLoss(num_classes, dice_gain, class_weight)
        self.loss_stride = 1  # the training loss's logits: at the input resolution (seg.loss_stride)

    def init_pixelshuffle(self) -> None:
        """ICNR initialisation (Aitken et al., 2017): the ``f * f`` sub-pixel filters of each class start
        equal, so ``pixelshuffle`` begins as nearest upsampling of one classifier, without checkerboards."""
        cls, r = self.head[-1], self.upsample.channels_per_class
        with torch.no_grad():  # PixelShuffle reads channel c * r + j as sub-pixel j of class c
            cls.weight.copy_(cls.weight[::r].repeat_interleave(r, 0))
            cls.bias.copy_(cls.bias[::r].repeat_interleave(r, 0))

    def use_class_counts(self, counts: list[int]) -> Tensor | None:
        """``counts``: pixels of each class in the training masks -> the loss's class weights (see
        :meth:`rtdet.losses.seg_loss.SegmentationLoss.weigh_classes`)."""
        return self.criterion.weigh_classes(counts)

    @property
    def logit_stride(self) -> int:
        """The stride of the eval and export logits' grid: the head's (4 or 8) with ``bilinear`` upsampling
        (left to the task's resampling), else 1 (the upsampler runs in the network)."""
        return self.upsample.factor if self.upsample.kind == "bilinear" else 1

    def head_output(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, C, H/s, W/s]``: the head's output (stride ``s``: ``head_stride``) before the
        upsampler (``C`` is ``K`` but for ``pixelshuffle``, see :class:`Upsampler`).

        Raises:
            ValueError: H or W not a multiple of 32.
        """
        self._check_size(images)
        return self.head(self.neck(self.pyramid(images)))

    def pyramid(self, images: Tensor) -> tuple[Tensor, ...]:
        """The backbone stages the FPN reads: ``(P2, P3, P4, P5)``, or ``(P3, P4, P5)`` for ``head_stride`` 8."""
        return self.backbone.features(images)[self.first_level:]

    @staticmethod
    def _check_size(images: Tensor) -> None:
        """Raises ValueError: H or W of ``images`` not a multiple of 32 (not checked while tracing)."""
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()  # shapes are symbolic then
        if not tracing and (images.shape[-1] % 32 or images.shape[-2] % 32):
            raise ValueError(f"segmenter input height and width must be multiples of 32, got "
                             f"{tuple(images.shape[-2:])}")

    def logits(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, K, H, W]`` at the input resolution (H, W multiples of 32): what the loss reads."""
        return self.upsample(self.head_output(images))

    def _grid_logits(self, head: Tensor) -> Tensor:
        """The eval logits of a :meth:`head_output`: itself on the head's grid, or upsampled in the network."""
        return head if self.logit_stride > 1 else self.upsample(head)

    def forward_raw(self, images: Tensor) -> tuple[Tensor]:
        """Export path: ``(logits float32 [B, K, H / s, W / s],)``, ``s`` = :attr:`logit_stride`."""
        return (self._grid_logits(self.head_output(images)).float(),)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The export's dynamic axes when ``dynamic``: batch, height and width of ``logits``."""
        return {"logits": {0: "batch", 2: "height", 3: "width"}}

    def forward(self, images: Tensor, targets: list[dict] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the losses (needs ``targets``). Eval: B dicts ``{"logits": float32 [K, H / s, W / s],
        "input_size": (H, W)}`` (``s`` = :attr:`logit_stride`)."""
        if self.training:
            if targets is None:
                raise ValueError("Segmenter.forward in training mode needs targets (call model.eval() to predict)")
            return self.training_losses(images, targets)
        return grid_predictions(self.forward_raw(images)[0], images)

    def training_losses(self, images: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        """The criterion on :meth:`logits`, plus ``"loss_aux"`` with ``aux_gain > 0``: ``aux_gain`` times the
        sum of the same criterion on each auxiliary head's logits, scored against the masks sampled at the
        centres of that head's grid cells (stride ``s``: pixel ``s // 2`` of each ``s x s`` cell; cheaper than
        upsampling the logits, and the auxiliary heads only shape the features)."""
        self._check_size(images)
        levels = self.neck.levels(self.pyramid(images))
        losses = self._loss(self.head(levels[-1]), targets)
        if self.aux_heads:
            aux = []
            for head, level in zip(self.aux_heads, self.aux_levels):
                feat = levels[level]
                cells = sample_masks(targets, images.shape[-1] // feat.shape[-1])
                aux.append(sum(self.criterion(head(feat), cells).values()))
            losses["loss_aux"] = self.aux_gain * sum(aux)
        return losses

    def predict_with_loss(self, images: Tensor, targets: list[dict]
                          ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Eval-mode predictions and the losses against ``targets`` from one network pass (for validation)."""
        head = self.head_output(images)
        return grid_predictions(self._grid_logits(head).float(), images), self._loss(head, targets)

    def _loss(self, head: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        """The criterion on the logits of a :meth:`head_output` at :attr:`loss_stride`, against the masks there."""
        return self.criterion(self.upsample.to_stride(head, self.loss_stride), sample_masks(targets, self.loss_stride))


def build_segmenter(name: str, num_classes: int, act: str | None = None, norm: str = "bn",
                    **overrides: Any) -> Segmenter:
    """Segmenter ``name`` (``rtdet-seg-n``, ``rtdet-seg-s``) for ``num_classes`` classes.

    Args:
        act: activation override (``relu``, ``lrelu``, ``silu``, ``frelu``); None or "" keeps the scale's.
        norm: ``bn`` or ``gn``.
        overrides: any :class:`Segmenter` keyword (e.g. ``upsample="pixelshuffle"``, ``width=96``).

    ``model.build_args`` rebuilds the same architecture: ``build_segmenter(**model.build_args)``.
    """
    if name not in SEG_SCALES:
        raise ModelError(f"unknown segmenter {name!r}; expected one of {', '.join(SEG_SCALES)}")
    own = {k: v for k, v in SEG_SCALES[name].items() if k != "scale"}
    overrides = {"upsample": SegConfig.upsample, **overrides}  # recorded in build_args whether given or not
    return build_family_model(Segmenter, name, num_classes, {**backbone_settings(SEG_SCALES[name]["scale"]), **own},
                              act, norm, overrides)


def apply_seg_settings(model: Segmenter, settings: Any) -> None:
    """The loss of a :class:`rtdet.config.SegConfig` (``dice_gain``, ``class_weight``, ``ohem_thresh``,
    ``loss_stride``); ``upsample`` and ``aux_gain`` are build arguments (:func:`rtdet.models.build_from_config` passes
    them, see ``section_args`` in :mod:`rtdet.registry`).

    Raises:
        ModelError: a ``loss_stride`` the model's upsampler cannot make (:meth:`Upsampler.to_stride`).
    """
    model.criterion = SegmentationLoss(model.num_classes, settings.dice_gain, settings.class_weight,
                                       settings.ohem_thresh)
    if isinstance(getattr(model, "upsample", None), Upsampler):
        model.upsample.check_stride(settings.loss_stride)  # refused now, not at the first step
    model.loss_stride = int(settings.loss_stride)


__all__ = ["HEAD_STRIDES", "SEG_SCALES", "UPSAMPLERS", "Segmenter", "Upsampler", "apply_seg_settings",
           "build_segmenter", "grid_predictions", "sample_masks"]
