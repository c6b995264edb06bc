"""The segments of a semantic mask, and their Hungarian matching to the queries (Mask2Former's matcher).

Semantic segmentation as mask classification (MaskFormer, Cheng et al., 2021): an image's
ground truth is one *segment* per class present, the binary mask of its pixels
(:func:`segments`); unlabelled pixels belong to no segment. Each query predicts a class
(``K`` classes and "no object") and a mask; queries and segments are paired one to one
at the lowest summed cost (:func:`rtdet.models.detr.matcher.assign`, scipy's
``linear_sum_assignment``), a pair's cost being, with Mask2Former's weights as defaults:

- class: minus the query's softmax probability of the segment's class (weight 2);
- mask: the binary cross-entropy of the query's mask logits against the segment (weight 5);
- Dice: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` of its mask probabilities (weight 5);

the mask terms averaged over ``P`` random points shared by every query and segment of the image
(:mod:`rtdet.models.m2f.points`), as Mask2Former computes them, not over every pixel.

Masks are predicted as ``embed @ features``: a query's embedding ``[D]`` times the per-pixel
features ``[D, h, w]``. Bilinear sampling is linear in the map, so the mask logits at a point
equal the embedding times the features sampled there (:func:`mask_logits_at`): the matcher never
builds the ``Q`` full masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rtdet.models.detr.matcher import assign
from rtdet.models.m2f.points import point_sample


def segments(mask: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """One segment per class present in ``mask`` int [H, W]: ``(labels int64 [N] ascending, masks bool [N, H, W])``
    with ``masks[i] = (mask == labels[i])``; values outside ``0..K-1`` (unlabelled) are in no segment."""
    flat = mask.flatten().long()
    counts = torch.bincount(flat[(flat >= 0) & (flat < num_classes)], minlength=num_classes)  # 10x unique()'s speed
    labels = counts.nonzero()[:, 0]
    return labels, mask[None] == labels[:, None, None].to(mask.dtype)


def mask_logits_at(embed: Tensor, features: Tensor, points: Tensor) -> Tensor:
    """float [B, Q, P]: the logits of the masks ``embed [B, Q, D] @ features [B, D, h, w]`` at ``points``
    [B, P, 2] (normalized ``x, y``), equal to :func:`rtdet.models.m2f.points.point_sample` of the full masks."""
    return embed.float() @ point_sample(features.float(), points)


def pairwise_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """float [Q, N]: mean over the ``P`` points of the binary cross-entropy of ``logits`` [Q, P] against
    ``targets`` [N, P] in [0, 1].

    ``-t log p - (1 - t) log(1 - p) = softplus(x) - t x`` (``-log(1 - p) = softplus(x)``, ``-log p =
    softplus(x) - x``): one matrix product instead of Mask2Former's two, and stable for large logits.
    """
    return (F.softplus(logits).sum(1, keepdim=True) - logits @ targets.T) / logits.shape[1]


def pairwise_dice(logits: Tensor, targets: Tensor) -> Tensor:
    """float [Q, N]: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` over the points, ``p = sigmoid(logits)``."""
    p = logits.sigmoid()
    return 1 - (2 * p @ targets.T + 1) / (p.sum(1)[:, None] + targets.sum(1)[None] + 1)


class MaskMatcher:
    """``(logits [B, Q, K+1], embed [B, Q, D], features [B, D, h, w], targets) -> B pairs (query index [M_i],
    segment index [M_i])``.

    Args:
        cost_class, cost_mask, cost_dice: weights of the three costs (Mask2Former: 2, 5, 5).
        num_points: ``P``, random points per image at which the mask costs are computed (Mask2Former:
            112 * 112 = 12544).
    """

    def __init__(self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0,
                 num_points: int = 3136) -> None:
        self.cost_class, self.cost_mask, self.cost_dice, self.num_points = cost_class, cost_mask, cost_dice, num_points

    def cost_matrix(self, logits: Tensor, mask_logits: Tensor, labels: Tensor, target_points: Tensor) -> Tensor:
        """float [Q, N] of pair costs for class ``logits`` [Q, K+1], ``mask_logits`` [Q, P], segment ``labels``
        int64 [N] and the segments' values ``target_points`` [N, P] in [0, 1] at the same points."""
        prob = logits.float().softmax(-1)[:, labels]
        return (self.cost_class * -prob + self.cost_mask * pairwise_bce(mask_logits, target_points)
                + self.cost_dice * pairwise_dice(mask_logits, target_points))

    @torch.no_grad()
    def __call__(self, logits: Tensor, embed: Tensor, features: Tensor,
                 targets: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        """Match every image of the batch.

        Args:
            logits: float [B, Q, K+1]; embed: float [B, Q, D]; features: float [B, D, h, w] (masks are
                ``embed @ features``).
            targets: B dicts ``labels`` int64 [N_i], ``masks`` float [N_i, H, W] in {0, 1} (any H, W: points are
                normalized).

        Returns:
            B pairs of int64 CPU tensors ``(query index [M_i], segment index [M_i])``, ``M_i = min(Q, N_i)``,
            sorted by query index.
        """
        points = torch.rand(len(targets), self.num_points, 2, device=features.device)  # per image
        predicted = mask_logits_at(embed, features, points)  # [B, Q, P]
        costs = []
        for b, t in enumerate(targets):
            n = len(t["labels"])
            if n == 0:
                costs.append(logits.new_zeros((logits.shape[1], 0)))
                continue
            wanted = point_sample(t["masks"].float()[:, None], points[b, None].expand(n, -1, -1))[:, 0]
            costs.append(self.cost_matrix(logits[b], predicted[b], t["labels"], wanted))
        return assign(costs)


__all__ = ["MaskMatcher", "mask_logits_at", "pairwise_bce", "pairwise_dice", "segments"]
