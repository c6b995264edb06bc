"""CSP backbone: a strided stem, four stride-2 stages of C2f blocks, SPPF at the end.

Returns three feature maps at strides 8, 16 and 32 (``P3``, ``P4``, ``P5``) for
the neck (:meth:`CSPBackbone.features` adds ``P2`` at stride 4, for dense
prediction). Widths and depths come from the scale (see :mod:`rtdet.models`).
``blocks="ir"`` builds the stages at strides 16 and 32 from MobileNetV3's inverted
residuals instead (:func:`ir_stage`).
"""

from __future__ import annotations

from torch import Tensor, nn

from rtdet.models.layers import SPPF, C2f, InvertedResidual, conv

BLOCKS = ("c2f", "ir")  # what the stages at strides 16 and 32 are built from (CSPBackbone's ``blocks``)


def dilated(module: nn.Module, dilation: int) -> nn.Module:
    """``module`` with every stride-1 3x3 or 5x5 convolution in it dilated by ``dilation`` (padding to match, so
    sizes are kept); returns it. How a stage built for stride 32 runs at stride 16 with the same weights."""
    for m in module.modules():
        k = m.kernel_size[0] if isinstance(m, nn.Conv2d) else 0
        if k in (3, 5) and m.kernel_size == (k, k) and m.stride == (1, 1):
            m.dilation, m.padding = (dilation, dilation), (dilation * (k // 2),) * 2
    return module


def ir_stage(c1: int, c2: int, depth: int, stride: int, act: str = "relu", norm: str = "bn") -> list[nn.Module]:
    """The inverted residuals (:class:`rtdet.models.layers.InvertedResidual`) of a backbone stage at ``stride``
    16 or 32, ``[B, c1, H, W] -> [B, c2, H/2, W/2]``: one stride-2 block of expansion 4 to ``c2``, then
    ``2 * depth`` blocks at ``c2``. As in MobileNetV3-Large's stages at those strides (Howard et al., 2019):
    3x3 depthwise kernels and expansion 3 with squeeze-excitation on the last block at stride 16; 5x5 kernels,
    expansion 4 and squeeze-excitation on every block at stride 32.

    Raises:
        ValueError: ``stride`` not 16 or 32.
    """
    if stride not in (16, 32):
        raise ValueError(f"inverted-residual stages are built for strides 16 and 32, got {stride}")
    k, expand, se_last = (3, 3, True) if stride == 16 else (5, 4, False)
    layers = [InvertedResidual(c1, c2, 4, k, 2, se=stride == 32, act=act, norm=norm)]
    for i in range(2 * depth):
        se = stride == 32 or (se_last and i == 2 * depth - 1)
        layers.append(InvertedResidual(c2, c2, expand, k, 1, se, act, norm))
    return layers


class CSPBackbone(nn.Module):
    """``[B, 3, H, W] -> (P3 [B, c[2], H/8, W/8], P4 [B, c[3], H/16, W/16], P5 [B, c[4], H/32, W/32])``.

    Args:
        channels: five widths: stem, then stages at strides 4, 8, 16, 32.
        depths: bottlenecks in the C2f block of each of the four stages (0: no C2f block).
        act, norm: see :mod:`rtdet.models.layers`.
        dw: depthwise-separable 3x3 convolutions inside the bottlenecks and for
            the stride-2 convolutions of the stages at strides 16 and 32 (where
            channel counts are high enough for the saving to matter).
        output_stride: 32, or 16: the last stage keeps stride 16 (its first convolution
            has stride 1) and dilates the 3x3 (and 5x5) convolutions of its blocks by 2, so
            their receptive field in input pixels stays that of stride 32 (DeepLab's
            output stride 16, Chen et al., 2017); ``P5`` then has ``P4``'s size.
        blocks: ``c2f``, or ``ir``: the stages at strides 16 and 32 are :func:`ir_stage` inverted
            residuals (``depths[2:]`` scale their length; ``dw`` does not apply to them).

    Raises:
        ValueError: not 5 channels and 4 depths, an output stride other than 16 or 32, or blocks not in
            :data:`BLOCKS`.
    """

    def __init__(
        self, channels: tuple[int, ...], depths: tuple[int, ...],
        act: str = "silu", norm: str = "bn", dw: bool = False, output_stride: int = 32, blocks: str = "c2f",
    ) -> None:
        super().__init__()
        if len(channels) != 5 or len(depths) != 4:
            raise ValueError(f"CSPBackbone needs 5 channels and 4 depths, got {channels} and {depths}")
        if output_stride not in (16, 32):
            raise ValueError(f"CSPBackbone output_stride must be 16 or 32, got {output_stride}")
        if blocks not in BLOCKS:
            raise ValueError(f"CSPBackbone blocks must be one of {BLOCKS}, got {blocks!r}")
        self.channels = tuple(channels)
        self.strides = (4, 8, 16, output_stride)  # of P2..P5
        self.stem = conv(3, channels[0], 3, 2, act, norm)
        stages = []
        for i, n in enumerate(depths):
            c1, c2 = channels[i], channels[i + 1]
            last = i == len(depths) - 1
            dilate = last and output_stride == 16
            if blocks == "ir" and i >= 2:
                layers = ir_stage(c1, c2, n, 2 ** (i + 2), act, norm)
                if dilate:  # the stride-2 block keeps stride 16, the others see stride 32's receptive field
                    layers[0].dw.conv.stride = (1, 1)
                    layers[1:] = [dilated(m, 2) for m in layers[1:]]
            else:
                layers = [conv(c1, c2, 3, 1 if dilate else 2, act, norm, dw=dw and i >= 2)]
                if n:  # depth 0: a plain stride-2 convolution (cheap early stages for CPU models)
                    block = C2f(c2, c2, n, True, act, norm, dw)
                    layers.append(dilated(block, 2) if dilate else block)
            if last:
                layers.append(SPPF(c2, c2, 5, act, norm))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    @property
    def out_channels(self) -> tuple[int, int, int]:
        return self.channels[2], self.channels[3], self.channels[4]

    def features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``[B, 3, H, W] -> (P2 [B, c[1], H/4, W/4], P3, P4, P5)``: every stage's output."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[0], outs[1], outs[2], outs[3]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.features(x)[1:]
