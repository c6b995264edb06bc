"""Building blocks of the YOLO-style detector.

Every block takes ``act`` (``relu``, ``lrelu``, ``silu``, ``frelu``) and ``norm``
(``bn``, ``gn``) by name so a whole network can switch activation or
normalization from one argument. Feature maps are float ``[B, C, H, W]``.

``dw=True`` variants replace a dense ``k x k`` convolution by a depthwise
``k x k`` followed by a pointwise ``1 x 1`` (MobileNet): about ``k*k`` times
fewer multiply-adds, which is what lets the small models run at 100+ FPS on a CPU.

:func:`fuse_conv_bn` folds every BatchNorm into the convolution before it for
inference; GroupNorm depends on the batch's statistics per sample and cannot be
folded, so it is left in place.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import SqueezeExcitation

ACTIVATIONS = ("relu", "lrelu", "silu", "frelu")
NORMS = ("bn", "gn")


def make_norm(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d or GroupNorm over ``channels`` (groups: the largest of 32, 16, 8, 4, 2, 1 dividing it)."""
    if norm == "bn":
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.03)
    if norm == "gn":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


class FReLU(nn.Module):
    """Funnel activation (Ma et al., 2020): ``max(x, T(x))`` with ``T`` a depthwise 3x3 conv + norm."""

    def __init__(self, channels: int, norm: str = "bn") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.norm = make_norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.max(x, self.norm(self.conv(x)))


def make_act(act: str, channels: int, norm: str = "bn") -> nn.Module:
    """The activation named ``act``; ``channels``/``norm`` are used by FReLU only."""
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    if act == "silu":
        return nn.SiLU(inplace=True)
    if act == "frelu":
        return FReLU(channels, norm)
    raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")


class ConvNormAct(nn.Module):
    """Conv2d (no bias) -> norm -> activation; ``same`` padding for odd ``k``.

    ``[B, c1, H, W] -> [B, c2, H/s, W/s]``. ``act=None`` gives a linear output.
    """

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1,
        act: str | None = "silu", norm: str = "bn",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=groups, bias=False)
        self.norm = make_norm(norm, c2)
        self.act = make_act(act, c2, norm) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class DSConv(nn.Module):
    """Depthwise-separable conv: depthwise ``k x k`` (stride ``s``) then pointwise ``1 x 1``.

    ``[B, c1, H, W] -> [B, c2, H/s, W/s]``. The depthwise part has no activation:
    a linear bottleneck between the two convolutions keeps accuracy (MobileNetV2)
    and costs nothing at inference.
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, act: str | None = "silu", norm: str = "bn") -> None:
        super().__init__()
        self.dw = ConvNormAct(c1, c1, k, s, groups=c1, act=None, norm=norm)
        self.pw = ConvNormAct(c1, c2, 1, 1, act=act, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.dw(x))


def conv(c1: int, c2: int, k: int = 3, s: int = 1, act: str | None = "silu", norm: str = "bn", dw: bool = False) -> nn.Module:
    """A ``k x k`` conv block: :class:`DSConv` when ``dw`` (and ``k > 1``), else :class:`ConvNormAct`."""
    if dw and k > 1:
        return DSConv(c1, c2, k, s, act, norm)
    return ConvNormAct(c1, c2, k, s, act=act, norm=norm)


class Bottleneck(nn.Module):
    """Two 3x3 conv blocks with an optional residual: ``[B, c, H, W] -> [B, c, H, W]``."""

    def __init__(self, c: int, shortcut: bool = True, act: str = "silu", norm: str = "bn", dw: bool = False) -> None:
        super().__init__()
        self.cv1 = conv(c, c, 3, act=act, norm=norm, dw=dw)
        self.cv2 = conv(c, c, 3, act=act, norm=norm, dw=dw)
        self.add = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with ``n`` bottlenecks whose every intermediate output is kept.

    A 1x1 conv splits the input into two halves; bottlenecks run on one half
    and each output is concatenated, so gradients reach early layers through
    short paths (CSPNet) at the cost of one final 1x1 conv.
    ``[B, c1, H, W] -> [B, c2, H, W]``.
    """

    def __init__(
        self, c1: int, c2: int, n: int = 1, shortcut: bool = True,
        act: str = "silu", norm: str = "bn", dw: bool = False,
    ) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = ConvNormAct(c1, 2 * self.c, 1, act=act, norm=norm)
        self.cv2 = ConvNormAct((2 + n) * self.c, c2, 1, act=act, norm=norm)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut, act, norm, dw) for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual (Sandler et al., 2018) with MobileNetV3's squeeze-excitation (Howard et al.,
    2019): 1x1 expansion to ``c1 * expand`` channels -> depthwise ``k x k`` (stride ``s``) -> squeeze-excitation
    (``se``) -> linear 1x1 projection to ``c2``; the input is added when ``s == 1`` and ``c1 == c2``.

    ``[B, c1, H, W] -> [B, c2, H/s, W/s]``. The squeeze-excitation is torchvision's
    (:class:`torchvision.ops.SqueezeExcitation`): global average, a 1x1 squeeze to a quarter of the expanded width
    (at least 8), ReLU, a 1x1 excitation and a hard-sigmoid gate, as MobileNetV3's. Wide, cheap blocks: the
    expanded width costs only the two 1x1 convolutions, and the gate gives every pixel the whole image's context.
    """

    def __init__(self, c1: int, c2: int, expand: float = 4, k: int = 3, s: int = 1, se: bool = False,
                 act: str = "relu", norm: str = "bn") -> None:
        super().__init__()
        hidden = round(c1 * expand)
        self.expand = ConvNormAct(c1, hidden, 1, act=act, norm=norm) if hidden != c1 else nn.Identity()
        self.dw = ConvNormAct(hidden, hidden, k, s, groups=hidden, act=act, norm=norm)
        self.se = (SqueezeExcitation(hidden, max(8, hidden // 4), scale_activation=nn.Hardsigmoid) if se
                   else nn.Identity())
        self.project = ConvNormAct(hidden, c2, 1, act=None, norm=norm)
        self.add = s == 1 and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.add else y


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k x k`` max-pools (receptive fields k, 2k-1, 3k-2).

    ``[B, c1, H, W] -> [B, c2, H, W]``.
    """

    def __init__(self, c1: int, c2: int, k: int = 5, act: str = "silu", norm: str = "bn") -> None:
        super().__init__()
        c = c1 // 2
        self.cv1 = ConvNormAct(c1, c, 1, act=act, norm=norm)
        self.cv2 = ConvNormAct(4 * c, c2, 1, act=act, norm=norm)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


def _fused(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias equal to ``bn(conv(x))`` for BN in eval mode (running statistics)."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every ``conv``/``norm`` BatchNorm pair (ConvNormAct, FReLU) in place; returns ``model``.

    Only valid for inference: the folded conv uses BN's running statistics.
    GroupNorm pairs are left unfused.
    """
    for m in model.modules():
        if isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "norm", None), nn.BatchNorm2d):
            m.conv = _fused(m.conv, m.norm)
            m.norm = nn.Identity()
    return model
