"""Contrastive denoising queries (DN-DETR, Li et al., 2022; DINO, Zhang et al., 2022; as RT-DETR builds them).

During training the decoder also gets noised copies of the ground truth as extra queries and
learns to reconstruct them: a shortcut to the one-to-one assignment that Hungarian matching
alone learns slowly. Each *group* holds every target of an image twice:

- a **positive** copy: the box corners moved by less than ``box_noise`` half-sizes; it must be
  reconstructed as its target (its loss is computed against that target directly, no matching);
- a **negative** copy: moved by between one and two times that; it must be called "no object".

Labels are flipped to a random class with probability ``label_noise / 2`` in both copies. The
groups do not see each other, and the ordinary (matching) queries see none of them (the
attention mask), so the noised answers cannot leak into the predictions.

Boxes are normalized ``cxcywh``; denoising queries go into the decoder as a label embedding
and a box in logit space (inverse sigmoid), like the ordinary queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rtdet.boxes import box_convert


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to ``[eps, 1 - eps]`` (finite for boxes on the border), in float32:
    ``1 - eps`` rounds to 1 in float16 and bfloat16 (mixed precision), which would make it infinite."""
    x = x.float().clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


@dataclass
class DenoisingGroups:
    """The denoising queries of one batch.

    Attributes:
        queries (Tensor[B, N, D]): label embeddings of the ``N = 2 * max_targets * groups`` queries.
        boxes (Tensor[B, N, 4]): their noised boxes, inverse sigmoid of normalized cxcywh.
        attn_mask (Tensor[N + Q, N + Q] bool): the decoder's self-attention mask, True where a query
            may not look (the denoising queries come first, then the ``Q`` matching queries).
        positives: per image ``(query index [M], target index [M])`` of the positive copies (int64, CPU).
        groups: number of groups (the loss normalizes by ``groups`` times the number of boxes).
    """

    queries: Tensor
    boxes: Tensor
    attn_mask: Tensor
    positives: list[tuple[Tensor, Tensor]]
    groups: int

    @property
    def size(self) -> int:
        return self.queries.shape[1]


def _padded_targets(targets: list[dict[str, Tensor]], num_classes: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """``labels`` int64 [B, n] (``num_classes`` where padded), ``boxes`` [B, n, 4], ``valid`` bool [B, n]."""
    b, device = len(targets), targets[0]["boxes"].device
    labels = torch.full((b, n), num_classes, dtype=torch.int64, device=device)
    boxes = torch.zeros(b, n, 4, device=device)
    valid = torch.zeros(b, n, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        k = len(t["boxes"])
        labels[i, :k], boxes[i, :k], valid[i, :k] = t["labels"].long(), t["boxes"].float(), True
    return labels, boxes, valid


def _noised_boxes(boxes: Tensor, negative: Tensor, box_noise: float) -> Tensor:
    """Each corner of ``boxes`` [B, N, 4] (cxcywh) moved by up to ``box_noise`` half-sizes (positives) or by
    one to two times that (``negative`` [B, N] bool); the result is clipped to the image, in cxcywh."""
    corners = box_convert(boxes, "cxcywh", "xyxy")
    half = boxes[..., 2:].repeat(1, 1, 2) * 0.5 * box_noise
    size = torch.rand_like(corners) + negative[..., None].to(corners.dtype)
    sign = torch.randint_like(corners, 0, 2) * 2 - 1
    return box_convert((corners + sign * size * half).clamp(0.0, 1.0), "xyxy", "cxcywh")


def group_mask(size: int, group: int, num_queries: int, device: torch.device) -> Tensor:
    """bool [size + Q, size + Q]: denoising groups of ``group`` queries see only themselves, matching queries
    see no denoising query (True = blocked)."""
    total = size + num_queries
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    mask[size:, :size] = True
    group_id = torch.arange(size, device=device) // group
    mask[:size, :size] = group_id[:, None] != group_id[None, :]
    return mask


def denoising_groups(targets: list[dict[str, Tensor]], label_embed: nn.Embedding, num_classes: int,
                     num_queries: int, num_denoising: int = 100, label_noise: float = 0.5,
                     box_noise: float = 1.0) -> DenoisingGroups | None:
    """Denoising queries for a batch, or None when it has no box (or ``num_denoising`` is 0).

    Args:
        targets: B dicts ``labels`` int64 [N_i], ``boxes`` [N_i, 4] normalized cxcywh.
        label_embed: embedding of ``num_classes + 1`` rows, the last one for padding.
        num_queries: ``Q``, the matching queries that follow the denoising ones.
        num_denoising: about how many denoising queries: ``groups = num_denoising // max N_i`` (at least 1).
        label_noise: twice the probability of a flipped label; box_noise: the corner noise in half box sizes.
    """
    n = max((len(t["boxes"]) for t in targets), default=0)
    if n == 0 or num_denoising <= 0:
        return None
    groups = max(num_denoising // n, 1)
    labels, boxes, valid = _padded_targets(targets, num_classes, n)
    # per group: n positive slots then n negative ones
    labels, boxes, valid = labels.repeat(1, 2 * groups), boxes.repeat(1, 2 * groups, 1), valid.repeat(1, 2 * groups)
    negative = (torch.arange(2 * n * groups, device=boxes.device) % (2 * n) >= n)[None].expand_as(valid)
    if label_noise > 0:
        flip = (torch.rand(labels.shape, device=labels.device) < label_noise * 0.5) & valid
        labels = torch.where(flip, torch.randint_like(labels, 0, num_classes), labels)
    if box_noise > 0:
        boxes = _noised_boxes(boxes, negative, box_noise)
    positives = []
    for t in targets:
        k = len(t["boxes"])
        slot = torch.arange(k).repeat(groups)
        positives.append((slot + torch.arange(groups).repeat_interleave(k) * 2 * n, slot))
    return DenoisingGroups(label_embed(labels), inverse_sigmoid(boxes),
                           group_mask(2 * n * groups, 2 * n, num_queries, boxes.device), positives, groups)


__all__ = ["DenoisingGroups", "denoising_groups", "group_mask", "inverse_sigmoid"]
