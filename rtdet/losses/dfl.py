"""Distribution focal loss (Li et al., Generalized Focal Loss, 2020).

A box side's distance ``d`` (in stride units, ``0 <= d < R - 1``) is learnt as a
distribution over integer bins: cross-entropy towards its two neighbouring bins
``floor(d)`` and ``floor(d) + 1``, weighted by closeness, so the expected bin
converges to ``d``.

The box encoding lives here too, so the losses never import the model package:
distances ``(left, top, right, bottom)`` from an anchor centre <-> xyxy boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dfl_loss(logits: Tensor, target: Tensor) -> Tensor:
    """DFL per box.

    Args:
        logits (Tensor[P, 4, R]): bin logits of each side.
        target (Tensor[P, 4]): distances in stride units; clamped to ``[0, R - 1.01]``.

    Returns:
        Tensor[P]: loss averaged over the four sides.
    """
    r = logits.shape[-1]
    target = target.clamp(0, r - 1 - 0.01)
    left = target.long()
    w_left = (left + 1) - target
    logp = F.log_softmax(logits.float(), -1)
    ce_left = -logp.gather(-1, left[..., None]).squeeze(-1)
    ce_right = -logp.gather(-1, (left + 1)[..., None]).squeeze(-1)
    return (ce_left * w_left + ce_right * (1 - w_left)).mean(-1)


def dfl_expectation(reg: Tensor) -> Tensor:
    """Expected bin of each side: ``reg (Tensor[..., 4, R]) logits -> Tensor[..., 4]`` in stride units."""
    bins = torch.arange(reg.shape[-1], dtype=reg.dtype, device=reg.device)
    return (reg.softmax(-1) * bins).sum(-1)


def distance_to_box(dist: Tensor, anchors: Tensor) -> Tensor:
    """``(left, top, right, bottom)`` distances ``[..., N, 4]`` from ``anchors [N, 2]`` -> xyxy ``[..., N, 4]``."""
    lt, rb = dist.split(2, -1)
    return torch.cat([anchors - lt, anchors + rb], -1)


def box_to_distance(boxes: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of :func:`distance_to_box`: xyxy ``[..., N, 4]`` -> ``(l, t, r, b)`` ``[..., N, 4]``."""
    return torch.cat([anchors - boxes[..., :2], boxes[..., 2:] - anchors], -1)
