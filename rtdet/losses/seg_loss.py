"""The segmentation loss: pixel cross-entropy over labelled pixels, optionally plus a soft Dice loss.

Targets are dicts with ``"mask"`` int64 ``[H, W]`` class indices; every value outside
``0..K-1`` is unlabelled (the data hand out an ``ignore_index`` >= K, 255 by default:
see :mod:`rtdet.data.segment`), so the loss needs no ignore setting of its own and
cannot disagree with the data about it.

Cross-entropy is the loss of the reference recipes for CamVid, Cityscapes and ADE20K
(mmsegmentation's FCN/DeepLab/LR-ASPP configs). Rare classes (CamVid's poles, signs and
cyclists: 0.3-1% of the pixels each) can be weighted up by their pixel frequency in the
training masks (:func:`class_weights`, ``seg.class_weight``), as SegNet and ENet train on
CamVid. Dice (Milletari et al., 2016) weighs every class alike whatever its pixel count;
it is off by default (``seg.dice_gain``). Online hard example mining (``seg.ohem_thresh``,
:func:`hard_pixels`) averages the cross-entropy over the pixels the network still gets wrong,
as the real-time segmenters BiSeNet and STDC train on CamVid and Cityscapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

UNLABELLED = -1  # what unlabelled pixels become inside the loss (F.cross_entropy's ignore_index)
DICE_SMOOTH = 1.0  # keeps the Dice ratio finite for classes absent from a batch
CLASS_WEIGHTS = ("none", "median_freq", "sqrt_median_freq")  # the kinds class_weights knows
OHEM_MIN_SHARE = 1 / 16  # OHEM keeps at least this share of the labelled pixels (BiSeNet's n_min: H * W / 16)


def class_weights(pixels: Sequence[int], kind: str) -> Tensor | None:
    """Cross-entropy class weights from the pixels of each class in the training masks.

    ``median_freq`` is median-frequency balancing (Eigen & Fergus, 2015, the weighting SegNet
    trains CamVid with): ``w_c = median(f) / f_c``, ``f_c`` the class's share of the labelled
    pixels, the median taken over the classes present (Eigen & Fergus divide by the pixels of
    the images holding the class instead; on CamVid both put the same classes on top).
    ``sqrt_median_freq`` takes its square root, ``w_c = sqrt(median(f) / f_c)``: half the
    push on a log scale. On CamVid (11 classes, 50 epochs of rtdet-seg-n) the plain weights
    gave mIoU 0.521, the square roots 0.593 and none 0.524 (``benchmarks/vs_torchvision_seg.py
    --class-weight``). A class without training pixels gets weight 1 (it is never a target).

    Args:
        pixels: [K] pixels of each class (ints >= 0).
        kind: one of :data:`CLASS_WEIGHTS`.

    Returns:
        float32 [K], or None for ``none`` (and when no pixel is labelled).

    Raises:
        ValueError: an unknown ``kind`` or a negative count.
    """
    if kind not in CLASS_WEIGHTS:
        raise ValueError(f"class weight {kind!r}: expected one of {', '.join(CLASS_WEIGHTS)}")
    counts = np.asarray(pixels, np.float64)
    if (counts < 0).any():
        raise ValueError(f"pixel counts must be >= 0, got {counts.tolist()}")
    if kind == "none" or counts.sum() == 0:
        return None
    freq = counts / counts.sum()
    present = freq > 0
    ratio = np.ones_like(freq)
    ratio[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(np.sqrt(ratio) if kind == "sqrt_median_freq" else ratio, dtype=torch.float32)


def stack_labels(targets: list[dict], num_classes: int, device: torch.device) -> Tensor:
    """int64 [B, H, W]: the targets' masks with every value outside ``0..K-1`` set to :data:`UNLABELLED`."""
    masks = torch.stack([t["mask"] for t in targets]).to(device, torch.int64)
    return torch.where((masks >= 0) & (masks < num_classes), masks, torch.full_like(masks, UNLABELLED))


def hard_pixels(pixel_loss: Tensor, labels: Tensor, thresh: float, min_share: float = OHEM_MIN_SHARE) -> Tensor:
    """bool [B, H, W]: the labelled pixels online hard example mining keeps.

    A pixel is kept when the predicted probability of its class, ``exp(-pixel_loss)``, is
    below ``thresh``; when fewer than ``n = ceil(min_share * labelled)`` are, the ``n`` pixels with
    the largest losses are kept instead (ties at the cut all kept). This is BiSeNet's
    ``OhemCELoss`` (Yu et al., 2018; its CamVid and Cityscapes setting: ``thresh`` 0.7, a
    sixteenth of the pixels) and mmsegmentation's ``OHEMPixelSampler`` with ``min_kept`` a share.

    Args:
        pixel_loss: float [B, H, W], the unweighted cross-entropy of each pixel (0 where unlabelled).
        labels: int64 [B, H, W], :data:`UNLABELLED` where unlabelled (never kept).
        thresh: in (0, 1].
        min_share: in [0, 1].

    Raises:
        ValueError: ``thresh`` or ``min_share`` out of range.
    """
    if not 0 < thresh <= 1 or not 0 <= min_share <= 1:
        raise ValueError(f"OHEM needs 0 < thresh <= 1 and 0 <= min_share <= 1, got {thresh} and {min_share}")
    labelled = labels != UNLABELLED
    loss = torch.where(labelled, pixel_loss.detach(), torch.full_like(pixel_loss, -1.0))  # unlabelled sort last
    keep = labelled & (loss > -math.log(thresh))  # probability below thresh
    n_min = math.ceil(min_share * int(labelled.sum()))
    if int(keep.sum()) < n_min:
        keep = labelled & (loss >= loss.flatten().topk(n_min).values[-1])
    return keep


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

    The cross-entropy is the mean over the batch's labelled pixels (0 when none is labelled);
    with ``class_weight`` the weighted mean, ``sum_i w[y_i] l_i / sum_i w[y_i]`` (PyTorch's
    ``F.cross_entropy(weight=...)``).

    Args:
        num_classes: ``K``.
        dice_gain: weight of :func:`dice_loss`; 0 leaves it out (and out of the returned dict).
        weighting: one of :data:`CLASS_WEIGHTS`: how :meth:`weigh_classes` turns the training
            data's pixels per class into ``class_weight`` (None until then: plain cross-entropy).
        ohem_thresh: 0, or online hard example mining: the (weighted) mean runs over the pixels
            :func:`hard_pixels` keeps at this threshold only.

    Raises:
        ValueError: a negative ``dice_gain``, an unknown ``weighting``, ``ohem_thresh`` outside [0, 1].
    """

    def __init__(self, num_classes: int, dice_gain: float = 0.0, weighting: str = "none",
                 ohem_thresh: float = 0.0) -> None:
        super().__init__()
        if dice_gain < 0:
            raise ValueError(f"dice_gain must be >= 0, got {dice_gain}")
        if weighting not in CLASS_WEIGHTS:
            raise ValueError(f"class weight {weighting!r}: expected one of {', '.join(CLASS_WEIGHTS)}")
        if not 0 <= ohem_thresh <= 1:
            raise ValueError(f"ohem_thresh must be in [0, 1], got {ohem_thresh}")
        self.num_classes, self.dice_gain, self.weighting = num_classes, float(dice_gain), weighting
        self.ohem_thresh = float(ohem_thresh)
        self.class_weight = None

    def weigh_classes(self, pixels: Sequence[int]) -> Tensor | None:
        """Set ``class_weight`` from the pixels of each class in the training masks (``pixels`` [<= K]; missing
        classes count 0) as ``weighting`` says (:func:`class_weights`); returns it.

        Raises:
            ValueError: more than ``K`` counts.
        """
        if len(pixels) > self.num_classes:
            raise ValueError(f"{len(pixels)} pixel counts for a loss over {self.num_classes} classes")
        self.class_weight = class_weights([*pixels, *[0] * (self.num_classes - len(pixels))], self.weighting)
        return self.class_weight

    @property
    def class_weight(self) -> Tensor | None:
        """float32 [K] or None; not a buffer: it comes from the training data, not from the checkpoint.

        Raises:
            ValueError: (when set) not ``K`` positive numbers.
        """
        return self._class_weight

    @class_weight.setter
    def class_weight(self, weight: Tensor | None) -> None:
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32)
            if weight.shape != (self.num_classes,) or not bool((weight > 0).all()):
                raise ValueError(f"class_weight must be {self.num_classes} positive numbers, got {weight.tolist()}")
        self._class_weight = weight

    def forward(self, logits: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        labels = stack_labels(targets, self.num_classes, logits.device)
        if labels.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f"logits {tuple(logits.shape[-2:])} and masks {tuple(labels.shape[-2:])} differ in size")
        if self.ohem_thresh > 0:
            ce = self.hard_cross_entropy(logits, labels)
        elif self._class_weight is None:
            labelled = (labels != UNLABELLED).sum().clamp(min=1)
            ce = F.cross_entropy(logits.float(), labels, ignore_index=UNLABELLED, reduction="sum") / labelled
        elif bool((labels != UNLABELLED).any()):
            ce = F.cross_entropy(logits.float(), labels, weight=self._class_weight.to(logits.device),
                                 ignore_index=UNLABELLED)
        else:  # the weighted mean of nothing is 0/0
            ce = logits.float().sum() * 0.0
        out = {"loss_ce": ce}
        if self.dice_gain > 0:
            out["loss_dice"] = self.dice_gain * dice_loss(logits, labels)
        return out

    def hard_cross_entropy(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The cross-entropy's (class-weighted) mean over the pixels :func:`hard_pixels` keeps,
        ``sum_i k_i w[y_i] l_i / sum_i k_i w[y_i]`` (0 when it keeps none)."""
        pixel = F.cross_entropy(logits.float(), labels, ignore_index=UNLABELLED, reduction="none")
        weight = hard_pixels(pixel, labels, self.ohem_thresh).float()
        if self._class_weight is not None:
            weight = weight * self._class_weight.to(logits.device)[labels.clamp(min=0)]
        return (pixel * weight).sum() / weight.sum().clamp(min=torch.finfo(torch.float32).tiny)
