"""Distribution focal loss (Li et al., Generalized Focal Loss, 2020).

A box side's distance ``d`` (in stride units, ``0 <= d < R - 1``) is learnt as a
distribution over integer bins: cross-entropy towards its two neighbouring bins
``floor(d)`` and ``floor(d) + 1``, weighted by closeness, so the expected bin
converges to ``d``.
"""

from __future__ import annotations

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
