"""The Mask2Former set loss (Cheng et al., 2022), for semantic segmentation.

Every set of predictions the decoder makes (one before its first layer and one after each
layer: deep supervision) is paired one to one with the image's segments
(:class:`rtdet.models.m2f.matcher.MaskMatcher`), then scored, each set alike:

- **classification**: cross-entropy over ``K + 1`` classes for every query, the last class "no
  object" for the unpaired queries, with class weight ``no_object`` (0.1) on it so that the many
  unpaired queries do not drown the few paired ones (DETR's ``eos_coef``); PyTorch's weighted mean;
- **mask**: the binary cross-entropy of each paired query's mask logits against its segment, and
- **Dice**: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)``,

both at ``P`` importance-sampled points per mask (:func:`rtdet.models.m2f.points.uncertain_points`:
mostly where the prediction is least certain), summed over masks and divided by the number of
segments in the batch. Mask2Former's weights: 2 (class), 5 (mask), 5 (Dice). The returned dict
holds the three weighted terms summed over the sets: ``{"loss_ce", "loss_mask", "loss_dice"}``.

Pixels that are unlabelled belong to no segment, so every mask learns 0 there (as in Mask2Former,
whose segments are built the same way).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rtdet.models.m2f.matcher import MaskMatcher
from rtdet.models.m2f.points import point_sample, uncertain_points


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """float [M]: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` over the last axis of ``logits`` and
    ``targets`` [M, P], ``p = sigmoid(logits)``."""
    p = logits.sigmoid()
    return 1 - (2 * (p * targets).sum(-1) + 1) / (p.sum(-1) + targets.sum(-1) + 1)


class M2FCriterion:
    """``(outputs, targets) -> {"loss_ce", "loss_mask", "loss_dice"}``: the weighted set losses.

    Args:
        num_classes: ``K`` (the class logits have ``K + 1``: the last is "no object").
        matcher: pairs queries with segments.
        class_gain, mask_gain, dice_gain: weights of the three terms.
        no_object: class weight of "no object" in the cross-entropy.
        num_points: ``P`` per mask; oversample, importance: of :func:`uncertain_points`.
    """

    def __init__(self, num_classes: int, matcher: MaskMatcher | None = None, class_gain: float = 2.0,
                 mask_gain: float = 5.0, dice_gain: float = 5.0, no_object: float = 0.1, num_points: int = 3136,
                 oversample: float = 3.0, importance: float = 0.75) -> None:
        self.num_classes, self.matcher = num_classes, matcher or MaskMatcher(num_points=num_points)
        self.gains = {"loss_ce": class_gain, "loss_mask": mask_gain, "loss_dice": dice_gain}
        self.no_object, self.num_points = no_object, num_points
        self.oversample, self.importance = oversample, importance

    def class_loss(self, logits: Tensor, targets: list[dict[str, Tensor]],
                   pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Weighted cross-entropy of ``logits`` [B, Q, K+1]; unpaired queries' class is ``K`` ("no object")."""
        wanted = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        for b, (q, n) in enumerate(pairs):
            wanted[b, q.to(logits.device)] = targets[b]["labels"][n.to(logits.device)]
        weight = torch.ones(self.num_classes + 1, device=logits.device)
        weight[-1] = self.no_object
        return F.cross_entropy(logits.float().transpose(1, 2), wanted, weight)

    def mask_losses(self, embed: Tensor, features: Tensor, targets: list[dict[str, Tensor]],
                    pairs: list[tuple[Tensor, Tensor]], num_masks: float) -> tuple[Tensor, Tensor]:
        """Summed BCE and Dice of the paired masks at importance-sampled points, divided by ``num_masks``."""
        device, sizes = features.device, [len(q) for q, _ in pairs]
        if sum(sizes) == 0:
            zero = features.sum() * 0  # keeps the graph connected
            return zero, zero
        # only the paired queries' full masks, in one batched product: image b's embeddings in rows 0..M_b - 1
        rows = torch.cat([torch.arange(m) for m in sizes]).to(device)
        images = torch.cat([torch.full((m,), b) for b, m in enumerate(sizes)]).to(device)
        queries = torch.cat([q for q, _ in pairs]).to(device)
        chosen = embed.new_zeros((len(pairs), max(sizes), embed.shape[-1]), dtype=torch.float32)
        chosen = chosen.index_put((images, rows), embed[images, queries].float())
        masks = torch.bmm(chosen, features.float().flatten(2))[images, rows].unflatten(-1, features.shape[-2:])[:, None]
        wanted = torch.cat([t["masks"][n.to(device)] for t, (_, n) in zip(targets, pairs)]).float()[:, None]
        points = uncertain_points(masks.detach(), self.num_points, self.oversample, self.importance)
        logits, labels = point_sample(masks, points)[:, 0], point_sample(wanted, points)[:, 0]
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)
        return bce.sum() / num_masks, dice_loss(logits, labels).sum() / num_masks

    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The weighted losses summed over every set of ``outputs``.

        Args:
            outputs: ``sets``: one dict per decoder prediction with ``logits`` [B, Q, K+1] and ``embed``
                [B, Q, D]; ``features`` [B, D, h, w], the mask features (a mask is ``embed @ features``).
            targets: B dicts ``labels`` int64 [N_i], ``masks`` float [N_i, H, W] in {0, 1}
                (:func:`rtdet.models.m2f.matcher.segments`).
        """
        features = outputs["features"]
        num_masks = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
        total = dict.fromkeys(self.gains, features.new_zeros((), dtype=torch.float32))
        for s in outputs["sets"]:
            pairs = self.matcher(s["logits"], s["embed"], features, targets)
            bce, dice = self.mask_losses(s["embed"], features, targets, pairs, num_masks)
            for k, v in (("loss_ce", self.class_loss(s["logits"], targets, pairs)), ("loss_mask", bce),
                         ("loss_dice", dice)):
                total[k] = total[k] + v
        return {k: v * self.gains[k] for k, v in total.items()}


__all__ = ["M2FCriterion", "dice_loss"]
