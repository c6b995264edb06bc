"""Mask2Former's transformer decoder: learned queries, masked attention, round-robin over the feature levels.

Each of ``L`` layers updates ``Q`` learned queries in Mask2Former's order (Cheng et al., 2022,
section 3.2): **masked cross-attention** to one feature level, then self-attention among the
queries, then a feed-forward network, each followed by a residual sum and LayerNorm. The layers
read the levels in turn, coarsest first (strides 32, 16, 8, 32, ...). Before the first layer and
after every layer, shared heads predict each query's class (``K`` + "no object") and mask
embedding; a mask is ``embed @ features`` over the stride-4 mask features.

Masked attention: a query attends only to the pixels where the previous prediction of its mask
is foreground (``sigmoid > 0.5``, i.e. logit > 0), read at the level's resolution; a query whose
mask is empty there attends everywhere instead (Mask2Former's fallback: its attention row would
otherwise have no key). The mask at the level's resolution is the bilinear resampling of the
stride-4 mask, computed as ``embed @`` the resampled features (resampling is linear), so the decoder
never builds the ``Q`` stride-4 masks of the intermediate layers.

Positions: fixed 2D sine-cosine encodings of each level's pixels (:func:`rtdet.models.detr.encoder.sincos_2d`)
plus a learned embedding per level, added to the keys; a learned positional embedding per query,
added to the queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.models.detr.attention import MultiheadAttention
from rtdet.models.detr.decoder import MLP
from rtdet.models.detr.encoder import sincos_2d


def attention_mask(embed: Tensor, features: Tensor) -> Tensor:
    """bool [B, 1, Q, h * w], True where a query may not look: its mask ``embed [B, Q, D] @ features
    [B, D, h, w]`` is background (logit < 0), except in rows where that leaves no key (then none is blocked)."""
    blocked = torch.einsum("bqd,bdhw->bqhw", embed, features).flatten(2) < 0
    return (blocked & ~blocked.all(-1, keepdim=True))[:, None]


class MaskedDecoderLayer(nn.Module):
    """``(queries [B, Q, D], query_pos [Q, D], memory [B, L, D], memory_pos [1, L, D], blocked bool
    [B, 1, Q, L] or None) -> [B, Q, D]``: masked cross-attention, self-attention, feed-forward network."""

    def __init__(self, dims: int, heads: int, ffn_dims: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = MultiheadAttention(dims, heads, dropout)
        self.self_attn = MultiheadAttention(dims, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dims, ffn_dims), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dims, dims))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dims), nn.LayerNorm(dims), nn.LayerNorm(dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor, memory: Tensor, memory_pos: Tensor,
                blocked: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.dropout(self.cross_attn(x + pos, memory + memory_pos, memory, blocked)))
        q = x + pos
        x = self.norm2(x + self.dropout(self.self_attn(q, q, x)))
        return self.norm3(x + self.dropout(self.ffn(x)))


class MaskDecoder(nn.Module):
    """``(maps, features) -> L + 1 predictions {"logits" [B, Q, K+1], "embed" [B, Q, D]}``.

    Args:
        dims: ``D``; num_classes: ``K``; num_queries: ``Q``; layers: ``L``; heads, ffn_dims: of each layer;
        levels: feature levels read in turn; dropout: in the layers (Mask2Former: 0).
    """

    def __init__(self, dims: int, num_classes: int, num_queries: int = 100, layers: int = 6, heads: int = 8,
                 ffn_dims: int = 1024, levels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.query_feat, self.query_pos = nn.Embedding(num_queries, dims), nn.Embedding(num_queries, dims)
        self.level_embed = nn.Embedding(levels, dims)
        self.layers = nn.ModuleList(MaskedDecoderLayer(dims, heads, ffn_dims, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dims)  # before the heads, shared by every prediction as in Mask2Former
        self.class_head = nn.Linear(dims, num_classes + 1)
        self.mask_head = MLP(dims, dims, dims, 3)

    def predict(self, x: Tensor) -> dict[str, Tensor]:
        """``{"logits" [B, Q, K+1], "embed" [B, Q, D]}`` of queries ``x`` [B, Q, D]."""
        x = self.norm(x)
        return {"logits": self.class_head(x), "embed": self.mask_head(x)}

    def forward(self, maps: list[Tensor], features: Tensor) -> list[dict[str, Tensor]]:
        """Queries attending to ``maps`` (per level [B, D, H_l, W_l], in reading order) with masks over
        ``features`` [B, D, h, w]; the first prediction is the learned queries' own, before any layer."""
        dims = self.query_feat.embedding_dim
        memory = [m.flatten(2).transpose(1, 2) + self.level_embed.weight[i] for i, m in enumerate(maps)]
        memory_pos = [sincos_2d(m.shape[2], m.shape[3], dims, device=m.device).to(m.dtype) for m in maps]
        # the mask features at each level's size: a mask there is embed @ these (see the module docstring)
        level_features = [F.interpolate(features, size=(m.shape[2], m.shape[3]), mode="bilinear", align_corners=False)
                          for m in maps]
        # a copy per image, not a view: a view of a parameter made under no_grad has no gradient function, which
        # module hooks (rtdet info's FLOP counter) cannot handle
        x = self.query_feat.weight.repeat(features.shape[0], 1, 1)
        pos = self.query_pos.weight  # [Q, D], broadcast over the batch
        out = [self.predict(x)]
        for i, layer in enumerate(self.layers):
            level = i % len(maps)
            blocked = attention_mask(out[-1]["embed"], level_features[level])
            x = layer(x, pos, memory[level], memory_pos[level], blocked)
            out.append(self.predict(x))
        return out


__all__ = ["MaskDecoder", "MaskedDecoderLayer", "attention_mask"]
