"""The DETR set loss (Carion et al., 2020, with RT-DETR's choices).

Every set of predictions the network makes is scored against the targets: the last decoder
layer's, each earlier layer's (auxiliary losses), the encoder's top-k proposals, and, while
training with denoising, each layer's reconstruction of the denoising queries. A set is first
paired one to one with the targets (:class:`rtdet.models.detr.matcher.HungarianMatcher`;
denoising queries are paired with the target they were made from), then:

- **classification** over every query and class: varifocal loss (VarifocalNet; RT-DETR's) whose
  target for a matched query's class is the IoU of its box with its target's, 0 elsewhere, or the
  focal loss with hard 0/1 targets (Deformable DETR's);
- **L1** between matched boxes in normalized ``cxcywh``, and **GIoU** loss ``1 - GIoU``.

With ``o2m_k`` > 1 the auxiliary sets (every decoder layer but the last, and the encoder's
proposals) are matched one to many instead: each target with up to ``o2m_k`` queries (targets
repeated ``o2m_k`` times, :class:`~rtdet.models.detr.matcher.HungarianMatcher`'s ``k``). This is the
hybrid layer scheme of H-DETR (Jia et al., "DETRs with Hybrid Matching", CVPR 2023): more
positive queries give the early layers denser supervision, a known cure for DETR's slow convergence,
while the last layer, whose queries are decoded, stays one to one, so decoding needs no NMS.
Inference is unchanged; it is a training-time change only.

Each term is summed and divided by the number of target boxes in the batch (times the number of
denoising groups for the denoising sets), so its scale does not depend on the batch or on how
crowded the images are. A one-to-many set is divided by the number of pairs its matching made:
``o2m_k`` times the boxes when every image has enough queries (H-DETR's normalizer, the count of its
repeated targets), fewer when an image has not. So the set's box terms are means over its pairs,
as in a one-to-one set, not ``o2m_k`` times larger; its "no object" terms, spread over ``o2m_k`` times
the pairs, weigh ``1 / o2m_k`` as much, as in H-DETR.

The returned dict has the three weighted terms summed over all sets: ``{"cls", "l1", "giou"}``, scalars.

Boxes: normalized ``cxcywh`` (predictions and targets), the decoder's frame.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rtdet.boxes import aligned_iou, box_convert
from rtdet.losses.focal import focal_loss, varifocal_loss
from rtdet.models.detr.matcher import HungarianMatcher

CLASS_LOSSES = ("varifocal", "focal")


class DETRCriterion:
    """``(outputs, targets) -> {"cls", "l1", "giou"}``: the weighted set losses.

    Args:
        num_classes: ``K``.
        matcher: pairs queries with targets.
        class_loss: ``varifocal`` or ``focal``.
        class_gain, l1_gain, giou_gain: weights of the three terms (RT-DETR: 1, 5, 2).
        alpha, gamma: of the classification loss (None: 0.75 for varifocal, 0.25 for focal; gamma 2).
        o2m_k: queries per target in the auxiliary sets' matching (0 or 1: one to one, as the last layer).
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None, class_loss: str = "varifocal",
                 class_gain: float = 1.0, l1_gain: float = 5.0, giou_gain: float = 2.0,
                 alpha: float | None = None, gamma: float = 2.0, o2m_k: int = 0) -> None:
        if class_loss not in CLASS_LOSSES:
            raise ValueError(f"unknown DETR class loss {class_loss!r}; expected one of {CLASS_LOSSES}")
        if o2m_k < 0:
            raise ValueError(f"DETR o2m_k must be >= 0 (0: one-to-one matching everywhere), got {o2m_k}")
        self.o2m_k = max(o2m_k, 1)
        self.num_classes, self.matcher = num_classes, matcher or HungarianMatcher()
        self.class_loss, self.gamma = class_loss, gamma
        self.alpha = alpha if alpha is not None else (0.75 if class_loss == "varifocal" else 0.25)
        self.gains = {"cls": class_gain, "l1": l1_gain, "giou": giou_gain}

    def set_losses(self, logits: Tensor, boxes: Tensor, targets: list[dict[str, Tensor]],
                   indices: list[tuple[Tensor, Tensor]], num_boxes: float) -> dict[str, Tensor]:
        """Unweighted ``{"cls", "l1", "giou"}`` of one set.

        Args:
            logits (Tensor[B, Q, K]); boxes (Tensor[B, Q, 4]): normalized cxcywh.
            targets: B dicts ``labels`` int64 [N_i], ``boxes`` [N_i, 4] normalized cxcywh.
            indices: per image ``(query index [M_i], target index [M_i])``.
            num_boxes: the normalizer (at least 1).
        """
        device = logits.device
        batch = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)]).to(device)
        query = torch.cat([q for q, _ in indices]).to(device)
        matched = boxes[batch, query].float()
        wanted = torch.cat([t["boxes"][j.to(device)] for t, (_, j) in zip(targets, indices)]).float()
        labels = torch.cat([t["labels"][j.to(device)] for t, (_, j) in zip(targets, indices)]).long()
        a, b = box_convert(matched, "cxcywh", "xyxy"), box_convert(wanted, "cxcywh", "xyxy")
        giou = aligned_iou(a, b, kind="giou")
        score = torch.zeros_like(logits, dtype=torch.float32)
        if self.class_loss == "varifocal":
            score[batch, query, labels] = aligned_iou(a.detach(), b, kind="iou").clamp(min=0).to(score.dtype)
            cls = varifocal_loss(logits.float(), score, self.gamma, self.alpha)
        else:
            score[batch, query, labels] = 1.0
            cls = focal_loss(logits.float(), score, self.gamma, self.alpha)
        return {"cls": cls.sum() / num_boxes, "l1": F.l1_loss(matched, wanted, reduction="sum") / num_boxes,
                "giou": (1 - giou).sum() / num_boxes}

    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The weighted losses summed over every set of ``outputs``.

        Args:
            outputs: ``logits [B, Q, K]`` and ``boxes [B, Q, 4]`` of the last decoder layer; ``aux``: the
                same for the earlier layers and ``enc`` for the encoder's proposals (lists / dict of
                ``{"logits", "boxes"}``); ``dn``: per decoder layer, the denoising queries' outputs (or None),
                with ``dn_positives`` (pairs per image) and ``dn_groups``.
            targets: B dicts ``labels`` int64 [N_i], ``boxes`` [N_i, 4] normalized cxcywh.
        """
        num_boxes = max(float(sum(len(t["boxes"]) for t in targets)), 1.0)
        aux = [*outputs.get("aux", []), *([outputs["enc"]] if outputs.get("enc") else [])]
        sets = [(outputs, 1), *((s, self.o2m_k) for s in aux)]  # the decoded (last) layer: always one to one
        total = dict.fromkeys(self.gains, outputs["logits"].new_zeros((), dtype=torch.float32))
        for s, k in sets:
            indices = self.matcher(s["logits"], s["boxes"], targets, k=k)
            norm = num_boxes if k == 1 else max(float(sum(len(q) for q, _ in indices)), 1.0)
            for name, v in self.set_losses(s["logits"], s["boxes"], targets, indices, norm).items():
                total[name] = total[name] + v
        for s in outputs.get("dn") or []:
            dn_boxes = num_boxes * outputs["dn_groups"]
            for name, v in self.set_losses(s["logits"], s["boxes"], targets, outputs["dn_positives"],
                                           dn_boxes).items():
                total[name] = total[name] + v
        return {k: v * self.gains[k] for k, v in total.items()}


__all__ = ["CLASS_LOSSES", "DETRCriterion"]
