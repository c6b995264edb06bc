"""IoU box loss: 1 - IoU-family value, every kind selectable."""

import math

import pytest
import torch

from rtdet.losses.iou import iou_loss


def test_identical_boxes_cost_nothing():
    b = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    for kind in ("iou", "giou", "diou", "ciou"):
        torch.testing.assert_close(iou_loss(b, b, kind), torch.zeros(1))


def test_direct_formulas():
    a = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
    b = torch.tensor([[2.0, 0.0, 6.0, 4.0]])
    inter, union = 2 * 2, 8 + 16 - 4
    iou = inter / union
    hull = 6 * 4
    torch.testing.assert_close(iou_loss(a, b, "iou"), torch.tensor([1 - iou]))
    torch.testing.assert_close(iou_loss(a, b, "giou"), torch.tensor([1 - (iou - (hull - union) / hull)]))
    rho2 = (2 - 4) ** 2 + (1 - 2) ** 2
    c2 = 6**2 + 4**2
    diou = iou - rho2 / c2
    torch.testing.assert_close(iou_loss(a, b, "diou"), torch.tensor([1 - diou]))
    v = 4 / math.pi**2 * (math.atan(4 / 4) - math.atan(4 / 2)) ** 2
    alpha = v / (1 - iou + v)
    torch.testing.assert_close(iou_loss(a, b, "ciou"), torch.tensor([1 - (diou - alpha * v)]))


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown box loss 'eiou'"):
        iou_loss(torch.zeros(1, 4), torch.zeros(1, 4), "eiou")
