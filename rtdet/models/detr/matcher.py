"""Hungarian matching of DETR queries to ground-truth boxes (Carion et al., 2020).

Each image's queries and targets are paired one to one so that the summed cost is lowest
(``scipy.optimize.linear_sum_assignment``); unpaired queries learn "no object". The cost of
a (query, target) pair, with RT-DETR's weights as defaults:

- class: the focal loss of calling the query the target's class minus that of not calling it
  (Deformable DETR's focal cost, ``alpha`` 0.25, ``gamma`` 2);
- L1: the distance between the boxes in normalized ``cxcywh``;
- GIoU: minus the generalized IoU of the boxes.

Boxes here are normalized ``cxcywh`` in ``[0, 1]``, the DETR decoder's frame (the model
converts the targets once at its boundary).

One-to-many matching (``k > 1``): the targets are repeated ``k`` times and matched one to one
with the same solver, so each target gets up to ``k`` distinct queries and no query gets two
targets: the hybrid matching of H-DETR (Jia et al., "DETRs with Hybrid Matching", CVPR 2023,
whose one-to-many branch matches against the ground truth repeated ``K`` times).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from rtdet.boxes import box_convert, box_iou


class HungarianMatcher:
    """``(logits [B, Q, K], boxes [B, Q, 4], targets) -> B pairs (query index [M_i], target index [M_i])``.

    Args:
        cost_class, cost_l1, cost_giou: weights of the three costs.
        alpha, gamma: focal parameters of the class cost.
    """

    def __init__(self, cost_class: float = 2.0, cost_l1: float = 5.0, cost_giou: float = 2.0,
                 alpha: float = 0.25, gamma: float = 2.0) -> None:
        self.cost_class, self.cost_l1, self.cost_giou = cost_class, cost_l1, cost_giou
        self.alpha, self.gamma = alpha, gamma

    def cost_matrix(self, logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor) -> Tensor:
        """Tensor[Q, N] of pair costs for ``logits [Q, K]``, ``boxes [Q, 4]``, ``labels`` int64 ``[N]``,
        ``target_boxes [N, 4]`` (boxes normalized cxcywh)."""
        logits = logits.float()[:, labels]
        p = logits.sigmoid()
        # -log(p) = softplus(-x), -log(1 - p) = softplus(x): stable for large logits
        pos = self.alpha * (1 - p) ** self.gamma * F.softplus(-logits)
        neg = (1 - self.alpha) * p**self.gamma * F.softplus(logits)
        l1 = torch.cdist(boxes.float(), target_boxes.float(), p=1)
        giou = box_iou(box_convert(boxes.float(), "cxcywh", "xyxy"),
                       box_convert(target_boxes.float(), "cxcywh", "xyxy"), kind="giou")
        return self.cost_class * (pos - neg) + self.cost_l1 * l1 - self.cost_giou * giou

    @torch.no_grad()
    def __call__(self, logits: Tensor, boxes: Tensor, targets: list[dict[str, Tensor]],
                 k: int = 1) -> list[tuple[Tensor, Tensor]]:
        """Match every image of the batch.

        Args:
            logits (Tensor[B, Q, K]): class logits; boxes (Tensor[B, Q, 4]): normalized cxcywh.
            targets: B dicts with ``labels`` int64 ``[N_i]`` and ``boxes`` ``[N_i, 4]`` normalized cxcywh.
            k: queries per target: 1 is DETR's one-to-one matching, more is one-to-many (targets repeated ``k``
                times, H-DETR); a query is never paired twice.

        Returns:
            B pairs of int64 CPU tensors ``(query index [M_i], target index [M_i])``,
            ``M_i = min(Q, k * N_i)``, sorted by query index.

        Raises:
            ValueError: ``k < 1``.
        """
        if k < 1:
            raise ValueError(f"Hungarian matching needs k >= 1 queries per target, got {k}")
        b, q = logits.shape[:2]
        sizes = [len(t["boxes"]) for t in targets]
        empty = torch.zeros(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in range(b)]
        labels = torch.cat([t["labels"] for t in targets]).long()
        target_boxes = torch.cat([t["boxes"] for t in targets])
        cost = self.cost_matrix(logits.flatten(0, 1), boxes.flatten(0, 1), labels, target_boxes)
        costs = [c[i] for i, c in enumerate(cost.view(b, q, -1).split(sizes, -1))]
        if k == 1:
            return assign(costs)
        return [(rows, cols % max(n, 1)) for (rows, cols), n in zip(assign([c.repeat(1, k) for c in costs]), sizes)]


def assign(costs: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """The lowest-cost one-to-one pairing of each image's cost matrix ``[Q, N_i]``
    (``scipy.optimize.linear_sum_assignment``): B pairs of int64 CPU tensors ``(query index [M_i],
    target index [M_i])``, ``M_i = min(Q, N_i)``, sorted by query index.

    Raises:
        FloatingPointError: a cost is NaN or infinite (the predictions are).
    """
    out = []
    for c in costs:
        c = c.detach().float().cpu()
        if not torch.isfinite(c).all():
            raise FloatingPointError("Hungarian matching: non-finite matching cost (NaN or inf in the predictions)")
        rows, cols = linear_sum_assignment(c.numpy())
        out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return out


__all__ = ["HungarianMatcher", "assign"]
