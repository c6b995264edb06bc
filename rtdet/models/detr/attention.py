"""Attention for the DETR family: textbook multi-head attention and multi-scale deformable attention.

- :class:`MultiheadAttention` is scaled dot-product attention over ``h`` heads (Vaswani et
  al., 2017): project, split into heads, ``softmax(q k^T / sqrt(d_h)) v``, merge, project. It
  computes what ``torch.nn.MultiheadAttention(batch_first=True)`` computes (the tests load the
  same weights into both, and compare with the formula written out), with a boolean mask where
  ``True`` blocks a pair, as in torch.
- :class:`MSDeformableAttention` (Zhu et al., Deformable DETR, 2021) lets each query look at
  ``P`` sampled points per head and feature level around its reference box instead of at every
  token: offsets and weights are predicted from the query, the values are read by bilinear
  interpolation. :func:`deformable_sample` does the reading with ``grid_sample`` (plain PyTorch,
  exported to ONNX as ``GridSample``, opset 16+) instead of Deformable DETR's CUDA kernel;
  the tests compare it with a looped reference.

Coordinates: reference points and boxes are normalized to ``[0, 1]`` of the feature map
(``cx, cy`` or ``cx, cy, w, h``), the frame of the DETR decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiheadAttention(nn.Module):
    """``(query [B, Lq, D], key [B, Lk, D], value [B, Lk, D]) -> [B, Lq, D]`` over ``heads`` heads.

    Project, split into heads, attend, merge, project. The attention itself,
    ``softmax(q k^T / sqrt(D / h)) v``, runs as ``F.scaled_dot_product_attention``: the same formula
    fused, which on a CPU never stores the ``[Lq, Lk]`` weights (7-10x faster than the written-out
    steps for the decoder's ~500 queries in training; the tests compare both).

    Args:
        dims: ``D``, divisible by ``heads``.
        heads: number of heads ``h``; each attends in ``D / h`` dimensions.
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, dims: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dims % heads:
            raise ValueError(f"MultiheadAttention: dims {dims} must be divisible by heads {heads}")
        self.dims, self.heads, self.head_dims, self.dropout = dims, heads, dims // heads, dropout
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dims, dims), nn.Linear(dims, dims), nn.Linear(dims, dims)
        self.out_proj = nn.Linear(dims, dims)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _split(self, x: Tensor) -> Tensor:
        """``[B, L, D] -> [B, h, L, D/h]``."""
        return x.unflatten(-1, (self.heads, self.head_dims)).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``attn_mask`` bool ``[Lq, Lk]`` (or ``[B * h, Lq, Lk]``, or ``[B, h or 1, Lq, Lk]``): True where a
        query may not look, as in ``torch.nn.MultiheadAttention``. A query must be allowed at least one key."""
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), self._split(self.v_proj(value))
        bias = None
        if attn_mask is not None:  # -inf added to the blocked scores: a boolean mask exports to two Where nodes
            blocked = attn_mask.unflatten(0, (-1, self.heads)) if attn_mask.dim() == 3 else attn_mask
            bias = torch.zeros_like(blocked, dtype=q.dtype).masked_fill(blocked, float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))  # [B, Lq, D]


def deformable_sample(values: list[Tensor], locations: Tensor, weights: Tensor) -> Tensor:
    """The weighted sum of bilinearly sampled values: the core of multi-scale deformable attention.

    Args:
        values: per level ``l`` the value map Tensor[B * h, d, H_l, W_l] (``h`` heads of ``d`` channels,
            image-major: row ``b * h + k`` is head ``k`` of image ``b``).
        locations (Tensor[B, Q, h, n_l, P, 2]): sampling points ``(x, y)`` normalized to ``[0, 1]``
            of each level (0 and 1 are the outer edges of the border pixels, ``align_corners=False``);
            points outside read zeros.
        weights (Tensor[B, Q, h, n_l, P]): attention weight of each point.

    Returns:
        Tensor[B, Q, h * d].

    Every reshape keeps the batch and the map sizes symbolic (no size is computed in Python), so a
    traced ONNX graph takes any batch and input size.
    """
    heads = locations.shape[2]
    grids = (2 * locations - 1).transpose(1, 2).flatten(0, 1)  # grid_sample's frame -1 .. 1: [B * h, Q, n_l, P, 2]
    w = weights.transpose(1, 2).flatten(0, 1)[:, None]  # [B * h, 1, Q, n_l, P]
    out = None  # summed level by level: no stacked copy of the samples (ONNX Runtime, one thread: -4% at 320 px)
    for lvl, v in enumerate(values):
        sampled = F.grid_sample(v, grids[:, :, lvl], mode="bilinear", padding_mode="zeros", align_corners=False)
        part = (sampled * w[:, :, :, lvl]).sum(-1)  # [B * h, d, Q]
        out = part if out is None else out + part
    return out.unflatten(0, (-1, heads)).flatten(1, 2).transpose(1, 2)


class MSDeformableAttention(nn.Module):
    """Multi-scale deformable attention:
    ``(query [B, Q, D], reference [B, Q, 4 or 2], maps [B, D, H_l, W_l] per level) -> [B, Q, D]``.

    A query with a reference box ``(cx, cy, w, h)`` samples at ``ref + offset / P * (w, h) / 2``
    (offsets in half box sizes, RT-DETR's decoder); one at a reference point ``(cx, cy)`` at
    ``ref + offset / (W_l, H_l)`` (offsets in pixels of each level, Deformable DETR's encoder).

    Args:
        dims: ``D``; heads: ``h`` (divides ``D``); levels: ``n_l``; points: ``P`` per head and level.
        reference: ``box`` or ``point``.
    """

    def __init__(self, dims: int = 256, heads: int = 8, levels: int = 3, points: int = 4,
                 reference: str = "box") -> None:
        super().__init__()
        if dims % heads:
            raise ValueError(f"MSDeformableAttention: dims {dims} must be divisible by heads {heads}")
        if reference not in ("box", "point"):
            raise ValueError(f"MSDeformableAttention: reference must be 'box' or 'point', got {reference!r}")
        self.dims, self.heads, self.levels, self.points, self.reference = dims, heads, levels, points, reference
        self.sampling_offsets = nn.Linear(dims, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dims, heads * levels * points)
        self.value_proj = nn.Linear(dims, dims)
        self.output_proj = nn.Linear(dims, dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's start: head ``k`` samples along direction ``2 pi k / h``, point ``p`` at
        distance ``p + 1``; uniform attention weights; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.heads, dtype=torch.float32) * (2 * math.pi / self.heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values  # onto the unit square's border
        grid = grid[:, None, None, :].repeat(1, self.levels, self.points, 1)
        grid = grid * torch.arange(1, self.points + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def values(self, maps: list[Tensor]) -> list[Tensor]:
        """The projected value maps, per level ``[B, D, H, W] -> [B * h, D / h, H, W]``."""
        head_dims = self.dims // self.heads
        return [self.value_proj(m.permute(0, 2, 3, 1)).unflatten(-1, (self.heads, head_dims))
                .permute(0, 3, 4, 1, 2).flatten(0, 1) for m in maps]

    def forward(self, query: Tensor, reference: Tensor, maps: list[Tensor]) -> Tensor:
        """``reference`` [B, Q, 4] boxes (cxcywh) or [B, Q, 2] points, normalized; ``maps`` the ``n_l`` feature
        maps [B, D, H_l, W_l] to attend to. With points, the offsets are in pixels of each map: a traced
        graph then keeps the map sizes of the trace (boxes keep them symbolic)."""
        size = 4 if self.reference == "box" else 2
        if not torch.jit.is_tracing() and reference.shape[-1] != size:
            raise ValueError(f"reference {self.reference}es must be [B, Q, {size}], got {tuple(reference.shape)}")
        offsets = self.sampling_offsets(query).unflatten(-1, (self.heads, self.levels, self.points, 2))
        weights = self.attention_weights(query).unflatten(-1, (self.heads, self.levels * self.points))
        weights = weights.softmax(-1).unflatten(-1, (self.levels, self.points))
        ref = reference[:, :, None, None, None, :]
        if self.reference == "box":
            locations = ref[..., :2] + offsets / self.points * ref[..., 2:] * 0.5
        else:
            wh = torch.tensor([[m.shape[-1], m.shape[-2]] for m in maps], dtype=query.dtype, device=query.device)
            locations = ref + offsets / wh[None, None, None, :, None, :]
        return self.output_proj(deformable_sample(self.values(maps), locations, weights))


__all__ = ["MSDeformableAttention", "MultiheadAttention", "deformable_sample"]
