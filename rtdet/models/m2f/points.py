"""Point sampling for mask losses (PointRend, Kirillov et al., 2020; Mask2Former's losses and matching).

A mask loss on every pixel of every mask costs memory in proportion to the image; Mask2Former
scores each mask at ``P`` points instead: random points for matching, and for the loss points
chosen by *importance sampling*: ``k P`` random candidates, of which the ``beta P`` most uncertain
(mask logit closest to 0) are kept, plus ``(1 - beta) P`` fresh random points (``k = 3``,
``beta = 0.75``, ``P = 112 * 112``: Mask2Former's ``oversample_ratio``, ``importance_sample_ratio``
and ``num_points``).

Points are ``(x, y)`` normalized to ``[0, 1]`` of the map, 0 and 1 being the outer edges of the
border pixels (``grid_sample``'s ``align_corners=False``), so one point addresses the same place
of a stride-4 prediction and of a full-resolution target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def point_sample(maps: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of ``maps`` float [N, C, H, W] at ``points`` [N, P, 2] (normalized ``x, y``):
    float [N, C, P]; points outside the map read zeros (``torch.nn.functional.grid_sample``)."""
    return F.grid_sample(maps, 2 * points[:, :, None] - 1, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[..., 0]


def uncertainty(logits: Tensor) -> Tensor:
    """``-|logits|``: highest where a mask logit is closest to its decision boundary 0 (Mask2Former's
    ``calculate_uncertainty``)."""
    return -logits.abs()


@torch.no_grad()
def uncertain_points(logits: Tensor, num_points: int, oversample: float = 3.0, importance: float = 0.75,
                     generator: torch.Generator | None = None) -> Tensor:
    """Importance-sampled points for the loss of each mask (PointRend's
    ``get_uncertain_point_coords_with_randomness``).

    Args:
        logits: float [R, 1, H, W] mask logits (gradient not needed: the choice is not differentiated).
        num_points: ``P`` per mask; oversample: ``k`` (``k P`` candidates, ``k >= 1``); importance: ``beta``
            in [0, 1], the share of the ``P`` taken from the most uncertain candidates.
        generator: for the random draws (the global generator when None).

    Returns:
        float [R, P, 2] normalized ``(x, y)``: first the ``int(beta P)`` most uncertain of the candidates (most
        uncertain first), then uniformly random points.
    """
    if oversample < 1 or not 0 <= importance <= 1:
        raise ValueError(f"point sampling needs oversample >= 1 and 0 <= importance <= 1, got {oversample}, "
                         f"{importance}")
    r = logits.shape[0]
    candidates = torch.rand(r, int(num_points * oversample), 2, device=logits.device, generator=generator)
    score = uncertainty(point_sample(logits.float(), candidates))[:, 0]  # [R, kP]
    chosen = score.topk(int(importance * num_points), dim=1).indices
    uncertain = candidates.gather(1, chosen[..., None].expand(-1, -1, 2))
    fresh = torch.rand(r, num_points - uncertain.shape[1], 2, device=logits.device, generator=generator)
    return torch.cat([uncertain, fresh], 1)


__all__ = ["point_sample", "uncertain_points", "uncertainty"]
