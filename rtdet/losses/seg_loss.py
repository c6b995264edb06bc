"""The segmentation loss: pixel cross-entropy over labelled pixels, optionally plus a soft Dice loss.

Targets are dicts with ``"mask"`` int64 ``[H, W]`` class indices; every value outside
``0..K-1`` is unlabelled (the data hand out an ``ignore_index`` >= K, 255 by default:
see :mod:`rtdet.data.segment`), so the loss needs no ignore setting of its own and
cannot disagree with the data about it.

Cross-entropy is the loss of the reference recipes for CamVid, Cityscapes and ADE20K
(mmsegmentation's FCN/DeepLab/LR-ASPP configs); Dice (Milletari et al., 2016) weighs
every class alike whatever its pixel count, which can help rare thin classes (poles,
signs) but was not measured here, so it is off by default (``seg.dice_gain``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UNLABELLED = -1  # what unlabelled pixels become inside the loss (F.cross_entropy's ignore_index)
DICE_SMOOTH = 1.0  # keeps the Dice ratio finite for classes absent from a batch


def stack_labels(targets: list[dict], num_classes: int, device: torch.device) -> Tensor:
    """int64 [B, H, W]: the targets' masks with every value outside ``0..K-1`` set to :data:`UNLABELLED`."""
    masks = torch.stack([t["mask"] for t in targets]).to(device, torch.int64)
    return torch.where((masks >= 0) & (masks < num_classes), masks, torch.full_like(masks, UNLABELLED))


def dice_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Soft Dice over the batch, averaged over classes: ``1 - (2 sum(p g) + 1) / (sum(p) + sum(g) + 1)``.

    Args:
        logits: float [B, K, H, W].
        labels: int64 [B, H, W], :data:`UNLABELLED` where unlabelled (those pixels are left out).
    """
    k = logits.shape[1]
    keep = (labels != UNLABELLED).unsqueeze(1)
    probs = logits.float().softmax(1) * keep
    onehot = F.one_hot(labels.clamp(min=0), k).permute(0, 3, 1, 2) * keep
    inter, total = (probs * onehot).sum((0, 2, 3)), probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return (1 - (2 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)).mean()


class SegmentationLoss(nn.Module):
    """``loss(logits float [B, K, H, W], targets) -> {"loss_ce": scalar[, "loss_dice": scalar]}``.

    The cross-entropy is the mean over the batch's labelled pixels (0 when none is labelled).

    Args:
        num_classes: ``K``.
        dice_gain: weight of :func:`dice_loss`; 0 leaves it out (and out of the returned dict).
    """

    def __init__(self, num_classes: int, dice_gain: float = 0.0) -> None:
        super().__init__()
        if dice_gain < 0:
            raise ValueError(f"dice_gain must be >= 0, got {dice_gain}")
        self.num_classes, self.dice_gain = num_classes, float(dice_gain)

    def forward(self, logits: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        labels = stack_labels(targets, self.num_classes, logits.device)
        if labels.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f"logits {tuple(logits.shape[-2:])} and masks {tuple(labels.shape[-2:])} differ in size")
        labelled = (labels != UNLABELLED).sum().clamp(min=1)
        ce = F.cross_entropy(logits.float(), labels, ignore_index=UNLABELLED, reduction="sum") / labelled
        out = {"loss_ce": ce}
        if self.dice_gain > 0:
            out["loss_dice"] = self.dice_gain * dice_loss(logits, labels)
        return out
