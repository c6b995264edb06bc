"""Task-aligned assignment (TAL, Feng et al., TOOD 2021).

Which anchor points learn which ground-truth box is decided from the model's
own predictions: for a box ``g`` of class ``c`` and an anchor ``a`` whose centre
lies inside ``g``, the alignment is ``t = s(a, c)**alpha * IoU(pred(a), g)**beta``
with ``s`` the predicted probability. Each box takes its ``topk`` anchors by ``t``;
an anchor claimed by several boxes goes to the one its prediction overlaps
most (ties: lower box index). Classification targets are soft: ``t``
rescaled so that each box's best anchor gets that anchor's IoU.

Departure from the paper, on purpose: a box so small that no anchor centre lies
inside it (smaller than a stride) would never be learnt; such a box takes the
anchor nearest its centre as its only candidate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rtdet.boxes import aligned_iou


def _inside(anchors: Tensor, gt_boxes: Tensor, eps: float) -> Tensor:
    """bool [B, M, N]: anchor centre ``anchors [N, 2]`` strictly inside ``gt_boxes [B, M, 4]``."""
    lt = anchors[None, None] - gt_boxes[..., None, :2]
    rb = gt_boxes[..., None, 2:] - anchors[None, None]
    return torch.cat([lt, rb], -1).amin(-1) > eps


def _nearest_fallback(inside: Tensor, anchors: Tensor, gt_boxes: Tensor, gt_mask: Tensor) -> Tensor:
    """Give each valid box with no anchor inside it the anchor nearest its centre."""
    empty = gt_mask & ~inside.any(-1)  # [B, M]
    if not empty.any():
        return inside
    centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [B, M, 2]
    nearest = torch.cdist(centres, anchors[None].expand(centres.shape[0], -1, -1)).argmin(-1)  # [B, M]
    extra = torch.zeros_like(inside)
    extra.scatter_(-1, nearest[..., None], True)
    return inside | (extra & empty[..., None])


class TaskAlignedAssigner:
    """Assign ground-truth boxes to anchor points.

    Args:
        topk: candidate anchors per box.
        alpha, beta: exponents of score and IoU in the alignment.
    """

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> None:
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(
        self, pd_scores: Tensor, pd_boxes: Tensor, anchors: Tensor,
        gt_labels: Tensor, gt_boxes: Tensor, gt_mask: Tensor,
    ) -> dict[str, Tensor]:
        """Assign.

        Args:
            pd_scores (Tensor[B, N, K]): predicted probabilities (after sigmoid).
            pd_boxes (Tensor[B, N, 4]): predicted xyxy boxes, pixels.
            anchors (Tensor[N, 2]): anchor centres, pixels.
            gt_labels (Tensor[B, M] int64), gt_boxes (Tensor[B, M, 4] xyxy pixels),
            gt_mask (Tensor[B, M] bool): padded ground truth; padding has ``gt_mask`` False.

        Returns:
            dict: ``fg`` bool [B, N] (positive anchors), ``gt_index`` int64 [B, N]
            (assigned box, 0 for background), ``boxes`` [B, N, 4], ``labels`` int64 [B, N]
            (-1 for background), ``scores`` [B, N, K] soft one-hot class targets.
        """
        b, n, k = pd_scores.shape
        m = gt_boxes.shape[1]
        if m == 0 or not gt_mask.any():
            return _background(pd_scores, pd_boxes)
        inside = _inside(anchors, gt_boxes, self.eps) & gt_mask[..., None]
        inside = _nearest_fallback(inside, anchors, gt_boxes, gt_mask)
        iou = aligned_iou(gt_boxes[:, :, None].expand(b, m, n, 4), pd_boxes[:, None].expand(b, m, n, 4))
        iou = iou.clamp(min=0) * inside
        labels = gt_labels.clamp(min=0)
        score = pd_scores.transpose(1, 2).gather(1, labels[..., None].expand(b, m, n))  # [B, M, N]
        align = score.pow(self.alpha) * iou.pow(self.beta) * inside
        # anchors inside a box always outrank outside ones, even at zero alignment
        top = torch.where(inside, align, -1.0).topk(min(self.topk, n), dim=-1).indices
        cand = torch.zeros_like(inside).scatter_(-1, top, True) & inside  # [B, M, N]
        # an anchor claimed by several boxes keeps the one it overlaps most
        multi = cand.sum(1, keepdim=True) > 1
        best = torch.zeros_like(cand).scatter_(1, iou.argmax(1, keepdim=True), True)
        cand = torch.where(multi, best & cand, cand)
        fg = cand.any(1)
        gt_index = cand.to(torch.uint8).argmax(1)  # [B, N]
        # soft targets: alignment rescaled so each box's best anchor gets its IoU
        align = align * cand
        norm = align * (iou * cand).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + self.eps)
        norm = norm.amax(1)  # [B, N]
        t_labels = labels.gather(1, gt_index)
        t_boxes = gt_boxes.gather(1, gt_index[..., None].expand(b, n, 4))
        scores = torch.zeros_like(pd_scores).scatter_(-1, t_labels[..., None], 1.0) * (norm * fg)[..., None]
        return {
            "fg": fg, "gt_index": gt_index, "boxes": t_boxes,
            "labels": torch.where(fg, t_labels, -1), "scores": scores,
        }


def _background(pd_scores: Tensor, pd_boxes: Tensor) -> dict[str, Tensor]:
    b, n, _ = pd_scores.shape
    dev = pd_scores.device
    return {
        "fg": torch.zeros(b, n, dtype=torch.bool, device=dev),
        "gt_index": torch.zeros(b, n, dtype=torch.int64, device=dev),
        "boxes": torch.zeros_like(pd_boxes),
        "labels": torch.full((b, n), -1, dtype=torch.int64, device=dev),
        "scores": torch.zeros_like(pd_scores),
    }
