"""RT-DETR's efficient hybrid encoder (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection", 2024).

Full self-attention over every token of every level is what makes the original DETR encoders
slow; RT-DETR splits the work:

- **intra-scale interaction** (AIFI): transformer encoder layers on the coarsest map only (stride
  32: few tokens, the most semantic features), with 2D sine-cosine positional encodings;
- **cross-scale fusion** (CCFM): a convolutional top-down then bottom-up path over the levels,
  like a PAN neck. RT-DETR fuses with CSP blocks of RepVGG convolutions; here rtdet's own CSP
  block (:class:`rtdet.models.layers.C2f`), so the ``act``/``norm``/``dw`` choices and BatchNorm
  folding of the CNN detectors apply unchanged.

Every output map has ``D`` channels, ready for the decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.models.detr.attention import MultiheadAttention
from rtdet.models.layers import C2f, ConvNormAct, conv


def sincos_2d(height: int, width: int, dims: int, temperature: float = 10000.0,
              device: torch.device | None = None) -> Tensor:
    """Fixed 2D positional encodings: float32 [1, H * W, D] (row-major tokens), ``D`` divisible by 4.

    A quarter of the channels are ``sin`` of the x coordinate at geometric frequencies
    ``temperature^(-i / (D/4))``, a quarter ``cos`` of it, then the same for y (Vaswani et al.'s
    encoding per axis, as RT-DETR builds it).
    """
    if dims % 4:
        raise ValueError(f"sincos_2d needs dims divisible by 4, got {dims}")
    quarter = dims // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                          torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    x, y = x.flatten()[:, None] * omega[None], y.flatten()[:, None] * omega[None]
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], 1)[None]


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer encoder layer: ``(tokens [B, L, D], pos [1 or B, L, D]) -> [B, L, D]``.

    Self-attention (positions added to queries and keys, not to values) then a GELU feed-forward
    network of ``ffn_dims``, each followed by a residual sum and LayerNorm.
    """

    def __init__(self, dims: int, heads: int, ffn_dims: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dims, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dims), nn.LayerNorm(dims)
        self.ffn = nn.Sequential(nn.Linear(dims, ffn_dims), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dims, dims))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        q = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, q, x)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class HybridEncoder(nn.Module):
    """``n`` backbone maps (strides ``8 * 2^i``, finest first) -> ``n`` maps ``[B, D, H_l, W_l]``, same strides.

    Args:
        in_channels: widths of the input maps, finest first.
        dims: ``D``; heads, ffn_dims, layers: of the AIFI transformer layers on the coarsest map.
        depth: bottlenecks per fusion block; act, norm, dw: see :mod:`rtdet.models.layers`.
    """

    def __init__(self, in_channels: tuple[int, ...], dims: int, heads: int = 8, ffn_dims: int = 1024,
                 layers: int = 1, depth: int = 1, act: str = "silu", norm: str = "bn", dw: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n = len(in_channels)
        self.dims = dims
        self.proj = nn.ModuleList(ConvNormAct(c, dims, 1, act=None, norm=norm) for c in in_channels)
        self.aifi = nn.ModuleList(TransformerEncoderLayer(dims, heads, ffn_dims, dropout) for _ in range(layers))
        self.lateral = nn.ModuleList(ConvNormAct(dims, dims, 1, act=act, norm=norm) for _ in range(n - 1))
        self.top_down = nn.ModuleList(C2f(2 * dims, dims, depth, False, act, norm, dw) for _ in range(n - 1))
        self.down = nn.ModuleList(conv(dims, dims, 3, 2, act, norm, dw) for _ in range(n - 1))
        self.bottom_up = nn.ModuleList(C2f(2 * dims, dims, depth, False, act, norm, dw) for _ in range(n - 1))

    def intra_scale(self, x: Tensor) -> Tensor:
        """AIFI on one map ``[B, D, H, W]`` -> the same shape."""
        tokens, pos = x.flatten(2).transpose(1, 2), sincos_2d(x.shape[2], x.shape[3], self.dims, device=x.device)
        for layer in self.aifi:
            tokens = layer(tokens, pos.to(x.dtype))
        return tokens.transpose(1, 2).reshape_as(x)

    def forward(self, feats: tuple[Tensor, ...]) -> list[Tensor]:
        x = [p(f) for p, f in zip(self.proj, feats)]
        x[-1] = self.intra_scale(x[-1])
        # top-down: each coarser map, through a 1x1 lateral conv, is upsampled into the next finer one
        inner = [x[-1]]
        for i, low in enumerate(reversed(x[:-1])):
            high = self.lateral[i](inner[0])
            inner[0] = high
            up = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.top_down[i](torch.cat([up, low], 1)))
        # bottom-up: each finer result, downsampled by a stride-2 conv, is fused into the next coarser one
        outs = [inner[0]]
        for i, high in enumerate(inner[1:]):
            outs.append(self.bottom_up[i](torch.cat([self.down[i](outs[-1]), high], 1)))
        return outs


__all__ = ["HybridEncoder", "TransformerEncoderLayer", "sincos_2d"]
