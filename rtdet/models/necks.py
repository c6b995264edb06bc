"""PAN neck: a top-down path (upsample + concat) then a bottom-up path (stride-2 conv + concat).

Fuses the backbone's ``P3, P4, P5`` so every output level sees both fine detail
and deep semantics; outputs stay at strides 8, 16 and 32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rtdet.models.layers import C2f, conv


class PAN(nn.Module):
    """``(P3, P4, P5) -> (N3, N4, N5)`` with widths ``out_channels`` and the same strides.

    Args:
        in_channels: widths of ``P3, P4, P5``.
        out_channels: widths of ``N3, N4, N5``.
        depth: bottlenecks per C2f block.
        dw: depthwise-separable stride-2 convolutions and bottlenecks.
    """

    def __init__(
        self, in_channels: tuple[int, int, int], out_channels: tuple[int, int, int], depth: int = 1,
        act: str = "silu", norm: str = "bn", dw: bool = False,
    ) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        o3, o4, o5 = out_channels
        self.out_channels = tuple(out_channels)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.td4 = C2f(c5 + c4, o4, depth, False, act, norm, dw)  # top-down at stride 16
        self.td3 = C2f(o4 + c3, o3, depth, False, act, norm, dw)  # top-down at stride 8 -> N3
        self.down3 = conv(o3, o3, 3, 2, act, norm, dw)
        self.bu4 = C2f(o3 + o4, o4, depth, False, act, norm, dw)  # bottom-up at stride 16 -> N4
        self.down4 = conv(o4, o4, 3, 2, act, norm, dw)
        self.bu5 = C2f(o4 + c5, o5, depth, False, act, norm, dw)  # bottom-up at stride 32 -> N5

    def forward(self, feats: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        p3, p4, p5 = feats
        t4 = self.td4(torch.cat([self.up(p5), p4], 1))
        n3 = self.td3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bu4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), p5], 1))
        return n3, n4, n5
