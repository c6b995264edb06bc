"""The pixel decoder: multi-scale maps for the transformer decoder and the per-pixel mask features.

Mask2Former's pixel decoder (Cheng et al., 2022) runs six multi-scale deformable-attention
encoder layers over strides 8-32 and an FPN step to stride 4. Here the stride 8-32 part is
RT-DETR's hybrid encoder (:class:`rtdet.models.detr.encoder.HybridEncoder`): self-attention on
the stride-32 map only, then convolutional top-down and bottom-up fusion. Why: it gives the same
thing the masked decoder needs (three ``D``-channel maps with global context) at a small part of
the cost on a CPU (attention over the 225 tokens of a 480 px image's stride-32 map instead of over
all 4,725 tokens of three maps, six times), it is already tested and exported by the DETR family,
and its convolutions take the detectors' ``act``/``norm``/``dw`` choices and fold their BatchNorm.
A plain FPN (the segmenter's :class:`rtdet.models.seg.SegFPN`) fuses top-down only and gives one
map, not the three a round-robin decoder reads.

The mask features then come from Mask2Former's FPN step: the stride-4 backbone map through a
1x1 lateral convolution, plus the stride-8 map upsampled (nearest), and a 3x3 convolution.
Mask2Former adds a 1x1 projection after it; a mask is the product of a query's embedding (the
output of a linear layer) with these features, so a linear projection of the features is the same
as one of the embedding, which that layer already learns: left out, it would cost as much as the
3x3 convolution (a third of the pixel decoder at stride 4).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.models.detr.encoder import HybridEncoder
from rtdet.models.layers import ConvNormAct, conv


class PixelDecoder(nn.Module):
    """``(P2, P3, P4, P5)`` (strides 4-32) -> ``(maps, features)``: ``maps`` the three ``[B, D, H/s, W/s]`` for
    ``s`` = 32, 16, 8 (coarsest first, the decoder's round-robin order), ``features`` ``[B, D, H/4, W/4]``.

    Args:
        in_channels: widths of ``P2..P5``.
        dims: ``D``; heads, ffn_dims: of the encoder's attention layer.
        act, norm, dw: see :mod:`rtdet.models.layers`.
    """

    def __init__(self, in_channels: tuple[int, ...], dims: int, heads: int = 8, ffn_dims: int = 1024,
                 act: str = "silu", norm: str = "bn", dw: bool = False) -> None:
        super().__init__()
        self.encoder = HybridEncoder(tuple(in_channels[1:]), dims, heads, ffn_dims, act=act, norm=norm, dw=dw)
        self.lateral = ConvNormAct(in_channels[0], dims, 1, act=None, norm=norm)
        self.output = conv(dims, dims, 3, act=act, norm=norm, dw=dw)

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[list[Tensor], Tensor]:
        maps = self.encoder(feats[1:])  # strides 8, 16, 32
        x = self.output(self.lateral(feats[0]) + F.interpolate(maps[0], scale_factor=2.0, mode="nearest"))
        return maps[::-1], x


__all__ = ["PixelDecoder"]
