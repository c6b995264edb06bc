"""Decoupled anchor-free detection head with distribution focal (DFL) box regression.

Each level has two branches: one predicts ``K`` class logits per cell, the other
predicts, for each of the four box sides (left, top, right, bottom distances
from the cell centre, in units of the level's stride), logits over ``reg_max``
bins 0..reg_max-1. The expected bin under their softmax is the distance
(:func:`rtdet.models.postprocess.decode`). Cells are "anchor points": the
centres ``((x + 0.5) * stride, (y + 0.5) * stride)`` in input pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rtdet.models.layers import conv


def make_anchors(shapes: list[tuple[int, int]], strides: tuple[int, ...], device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """Cell centres of every level, flattened row-major level after level.

    Args:
        shapes: ``(H_i, W_i)`` of each level's feature map.
        strides: stride of each level in input pixels.

    Returns:
        anchors (Tensor[N, 2]): ``(x, y)`` centres in input pixels, ``N = sum(H_i * W_i)``.
        stride_per_anchor (Tensor[N, 1]).
    """
    points, stride_list = [], []
    for (h, w), s in zip(shapes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx, yy], -1).reshape(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(stride_list)


class Branch(nn.Sequential):
    """Two 3x3 conv blocks then a linear 1x1 prediction: ``[B, c1, H, W] -> [B, out, H, W]``."""

    def __init__(self, c1: int, c: int, out: int, act: str, norm: str, dw: bool) -> None:
        super().__init__(
            conv(c1, c, 3, 1, act, norm, dw), conv(c, c, 3, 1, act, norm, dw), nn.Conv2d(c, out, 1)
        )


class DetectHead(nn.Module):
    """Per-level class and box-distribution logits, flattened over all levels.

    Args:
        in_channels: widths of the neck outputs, one per stride.
        num_classes: ``K``.
        strides: pixels per cell of each level (8, 16, 32).
        reg_max: DFL bins per box side; the largest distance a level can predict is
            ``(reg_max - 1) * stride``.
        box_channels, cls_channels: widths of the two branches.
        dw: depthwise-separable 3x3 convolutions in the branches.
    """

    def __init__(
        self, in_channels: tuple[int, ...], num_classes: int, strides: tuple[int, ...] = (8, 16, 32),
        reg_max: int = 16, box_channels: int = 64, cls_channels: int = 64,
        act: str = "silu", norm: str = "bn", dw: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError(f"DetectHead: {len(in_channels)} input widths for {len(strides)} strides")
        self.num_classes, self.reg_max, self.strides = num_classes, reg_max, tuple(strides)
        self.box = nn.ModuleList(Branch(c, box_channels, 4 * reg_max, act, norm, dw) for c in in_channels)
        self.cls = nn.ModuleList(Branch(c, cls_channels, num_classes, act, norm, dw) for c in in_channels)
        self.reset_bias()

    def reset_bias(self, imgsz: int = 320) -> None:
        """Start class probabilities near ``5 objects / (K * cells)`` so early training is not swamped by negatives."""
        for box, cls, s in zip(self.box, self.cls, self.strides):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.num_classes / (imgsz / s) ** 2))

    def forward(self, feats: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Raw head outputs.

        Args:
            feats: ``[B, C_i, H_i, W_i]`` per level.

        Returns:
            dict with ``cls`` (Tensor[B, N, K] logits), ``reg`` (Tensor[B, N, 4, reg_max]
            logits, sides ordered left, top, right, bottom), ``anchors`` (Tensor[N, 2]
            cell centres, pixels) and ``strides`` (Tensor[N, 1]).
        """
        b = feats[0].shape[0]
        cls = [head(f).flatten(2) for head, f in zip(self.cls, feats)]
        reg = [head(f).flatten(2) for head, f in zip(self.box, feats)]
        anchors, strides = make_anchors(
            [tuple(f.shape[2:]) for f in feats], self.strides, feats[0].device, feats[0].dtype
        )
        return {
            "cls": torch.cat(cls, 2).transpose(1, 2),
            "reg": torch.cat(reg, 2).transpose(1, 2).reshape(b, -1, 4, self.reg_max),
            "anchors": anchors,
            "strides": strides,
        }
