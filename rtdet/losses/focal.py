"""Classification losses on sigmoid logits with soft targets in ``[0, 1]``.

All functions are element-wise: ``logits``, ``targets`` and the result share one
shape (e.g. ``[B, N, K]``); the caller sums and normalizes.

- ``bce``: binary cross-entropy.
- ``focal`` (Lin et al., 2017): BCE times ``alpha_t * (1 - p_t) ** gamma``, which
  down-weights easy examples; ``p_t = p*t + (1-p)*(1-t)`` extends it to soft targets.
- ``varifocal`` (Zhang et al., VarifocalNet, 2021): positives (``t > 0``) weighted
  by their IoU-aware target ``t``, negatives by ``alpha * p ** gamma``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CLS_LOSSES = ("bce", "focal", "varifocal")


def bce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Element-wise binary cross-entropy with logits."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float = 0.25) -> Tensor:
    """Element-wise focal loss (torchvision's ``sigmoid_focal_loss``); ``alpha <= 0`` disables the
    class-balance factor."""
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, targets, alpha=alpha if alpha > 0 else -1.0, gamma=gamma, reduction="none")


def varifocal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float = 0.75) -> Tensor:
    """Element-wise varifocal loss; the weight is a constant (no gradient through it)."""
    with torch.no_grad():
        weight = torch.where(targets > 0, targets, alpha * logits.sigmoid() ** gamma)
    return bce_loss(logits, targets) * weight


def cls_loss(kind: str, logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float | None = None) -> Tensor:
    """Dispatch on ``kind`` in :data:`CLS_LOSSES`; ``alpha=None`` takes each loss's usual default."""
    if kind == "bce":
        return bce_loss(logits, targets)
    if kind == "focal":
        return focal_loss(logits, targets, gamma, 0.25 if alpha is None else alpha)
    if kind == "varifocal":
        return varifocal_loss(logits, targets, gamma, 0.75 if alpha is None else alpha)
    raise ValueError(f"unknown classification loss {kind!r}; expected one of {CLS_LOSSES}")
