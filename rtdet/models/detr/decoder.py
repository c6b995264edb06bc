"""Query selection and the transformer decoder with iterative box refinement (RT-DETR's).

- :class:`QuerySelection` scores every encoder token as a detection of its own (a class head
  and a box head on the tokens, the box relative to a fixed anchor at the token) and keeps the
  ``Q`` tokens whose best class scores highest: their features start the decoder's queries and
  their boxes the queries' reference boxes, instead of DETR's learned, image-independent queries.
- :class:`Decoder`: each layer lets the queries attend to each other (self-attention), then
  to the encoder maps around their reference box (multi-scale deformable cross-attention), then
  through a feed-forward network; after each layer a box head refines the reference box
  (Deformable DETR's iterative refinement), and the next layer starts from the refined box
  without gradient through it. A class head scores each layer's queries (the earlier layers
  feed the auxiliary losses; inference reads the last).

Boxes are normalized ``cxcywh`` (sigmoid outputs) or their inverse sigmoid ("logits"), the
decoder's own frame; pixels come in at the model's boundary only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rtdet.models.detr.attention import MSDeformableAttention, MultiheadAttention
from rtdet.models.detr.denoising import inverse_sigmoid

PRIOR_PROB = 0.01  # class heads start at this probability (focal loss's initialization, RetinaNet)


class MLP(nn.Module):
    """``layers`` linear layers with ReLU between them: ``[..., c_in] -> [..., c_out]``."""

    def __init__(self, c_in: int, hidden: int, c_out: int, layers: int) -> None:
        super().__init__()
        dims = [c_in] + [hidden] * (layers - 1) + [c_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else layer(x).relu()
        return x


def class_head(dims: int, num_classes: int) -> nn.Linear:
    """A linear class head whose sigmoid starts at :data:`PRIOR_PROB` for every class."""
    head = nn.Linear(dims, num_classes)
    nn.init.constant_(head.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))
    return head


def box_head(dims: int) -> MLP:
    """A 3-layer box head that starts at zero: a refinement begins as "keep the reference box"."""
    head = MLP(dims, dims, 4, 3)
    nn.init.zeros_(head.layers[-1].weight)
    nn.init.zeros_(head.layers[-1].bias)
    return head


def anchors(shapes: list[tuple[int, int]], device: torch.device, size: float = 0.05) -> Tensor:
    """Inverse-sigmoid anchor boxes [1, L, 4] (cxcywh), one per token: centred on its cell, ``size * 2^l``
    wide and high on level ``l`` (finest first), as RT-DETR places them. RT-DETR also takes the tokens
    whose anchor centre lies within 1% of the border out of the selection; here every token competes
    (the clamp in :func:`inverse_sigmoid` keeps those anchors finite)."""
    out = []
    for lvl, (h, w) in enumerate(shapes):
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                              torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
        cxcy = torch.stack([(x.flatten() + 0.5) / w, (y.flatten() + 0.5) / h], -1)
        out.append(torch.cat([cxcy, torch.full_like(cxcy, size * 2.0**lvl)], -1))
    return inverse_sigmoid(torch.cat(out))[None]


def top_tokens(scores: Tensor, k: int) -> Tensor:
    """int64 [B, k]: the indices of the ``k`` highest of ``scores`` [B, L], highest first, ties in index order.

    The letterbox's uniform padding makes many tokens tie exactly; ONNX's TopK puts tied elements in
    index order while ``torch.topk`` orders them freely, so PyTorch would select other tokens than an
    exported graph. A stable sort has ONNX's order (and a traced graph gets TopK itself: the exporter
    has no stable Sort).
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return scores.topk(k, dim=1).indices
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :k]


class QuerySelection(nn.Module):
    """``(memory [B, L, D], shapes, Q) -> dict``: the top-``Q`` encoder tokens as the decoder's start.

    Returns ``content`` [B, Q, D] (token features, no gradient), ``reference`` [B, Q, 4] (their boxes,
    inverse sigmoid, no gradient), and the proposals' own ``logits`` [B, Q, K] and ``boxes`` [B, Q, 4]
    (normalized cxcywh) for the encoder's loss.
    """

    def __init__(self, dims: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dims, dims), nn.LayerNorm(dims))
        self.score_head = class_head(dims, num_classes)
        self.box_head = box_head(dims)
        nn.init.xavier_uniform_(self.proj[0].weight)

    def forward(self, memory: Tensor, shapes: list[tuple[int, int]], num_queries: int) -> dict[str, Tensor]:
        tokens = self.proj(memory)
        logits = self.score_head(tokens)
        index = top_tokens(logits.max(-1).values, num_queries)[..., None]  # [B, Q, 1]
        content = tokens.gather(1, index.expand(-1, -1, tokens.shape[-1]))
        # the box head runs on the selected tokens only (the selection reads the class scores alone)
        anchor = anchors(shapes, memory.device).to(tokens.dtype).expand(tokens.shape[0], -1, -1).gather(
            1, index.expand(-1, -1, 4))
        reference = self.box_head(content) + anchor
        return {"content": content.detach(), "reference": reference.detach(),
                "logits": logits.gather(1, index.expand(-1, -1, logits.shape[-1])), "boxes": reference.sigmoid()}


class DecoderLayer(nn.Module):
    """``(queries [B, N, D], reference boxes [B, N, 4], pos [B, N, D], maps [B, D, H_l, W_l] per level)
    -> [B, N, D]``."""

    def __init__(self, dims: int, heads: int, ffn_dims: int, levels: int, points: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dims, heads, dropout)
        self.cross_attn = MSDeformableAttention(dims, heads, levels, points)
        self.ffn = nn.Sequential(nn.Linear(dims, ffn_dims), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dims, dims))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dims), nn.LayerNorm(dims), nn.LayerNorm(dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, reference: Tensor, pos: Tensor, maps: list[Tensor],
                attn_mask: Tensor | None = None) -> Tensor:
        q = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, q, x, attn_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x + pos, reference, maps)))
        return self.norm3(x + self.dropout(self.ffn(x)))


class Decoder(nn.Module):
    """``layers`` decoder layers, each with its own class and box heads.

    Args:
        dims: ``D``; num_classes: ``K``; heads, ffn_dims, levels, points: of each layer.
    """

    def __init__(self, dims: int, num_classes: int, layers: int = 3, heads: int = 8, ffn_dims: int = 1024,
                 levels: int = 3, points: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dims, heads, ffn_dims, levels, points, dropout) for _ in range(layers))
        self.score_heads = nn.ModuleList(class_head(dims, num_classes) for _ in range(layers))
        self.box_heads = nn.ModuleList(box_head(dims) for _ in range(layers))
        self.query_pos = MLP(4, 2 * dims, dims, 2)  # the query's position: an embedding of its reference box

    def forward(self, x: Tensor, reference: Tensor, maps: list[Tensor], attn_mask: Tensor | None = None,
                all_layers: bool = False) -> tuple[list[Tensor], list[Tensor]]:
        """Queries ``x`` [B, N, D] with reference boxes [B, N, 4] (inverse sigmoid, no gradient) attending to
        the encoder's ``maps`` [B, D, H_l, W_l].

        Returns class logits [B, N, K] and boxes [B, N, 4] (normalized cxcywh) of the last layer, or of
        every layer with ``all_layers`` (the losses). A layer's box is its refinement of the previous
        layer's box *with* gradient (RT-DETR's "look forward twice"), while the next layer starts
        from it without.
        """
        ref = reference.sigmoid()
        previous = ref
        logits, boxes = [], []
        for i, layer in enumerate(self.layers):
            x = layer(x, ref, self.query_pos(ref), maps, attn_mask)
            delta = self.box_heads[i](x)
            refined = (delta + inverse_sigmoid(ref)).sigmoid()
            last = i == len(self.layers) - 1
            if all_layers or last:
                logits.append(self.score_heads[i](x))
                boxes.append(refined if i == 0 else (delta + inverse_sigmoid(previous)).sigmoid())
            previous, ref = refined, refined.detach()
        return logits, boxes


__all__ = ["MLP", "Decoder", "DecoderLayer", "QuerySelection", "anchors", "box_head", "class_head", "top_tokens"]
