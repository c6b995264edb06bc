"""Classification losses against their formulas."""

import pytest
import torch

from rtdet.losses.focal import bce_loss, cls_loss, focal_loss, varifocal_loss

LOGITS = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
TARGETS = torch.tensor([0.0, 1.0, 0.3, 0.0, 0.9])


def _bce(p, t):
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p))


def test_bce():
    torch.testing.assert_close(bce_loss(LOGITS, TARGETS), _bce(LOGITS.sigmoid(), TARGETS))


def test_focal():
    p = LOGITS.sigmoid()
    p_t = p * TARGETS + (1 - p) * (1 - TARGETS)
    a_t = 0.25 * TARGETS + 0.75 * (1 - TARGETS)
    expect = a_t * (1 - p_t) ** 2 * _bce(p, TARGETS)
    torch.testing.assert_close(focal_loss(LOGITS, TARGETS, 2.0, 0.25), expect)
    torch.testing.assert_close(focal_loss(LOGITS, TARGETS, 0.0, 0.0), bce_loss(LOGITS, TARGETS))


def test_varifocal():
    p = LOGITS.sigmoid()
    w = torch.where(TARGETS > 0, TARGETS, 0.75 * p**2)
    torch.testing.assert_close(varifocal_loss(LOGITS, TARGETS), w * _bce(p, TARGETS))


def test_varifocal_weight_carries_no_gradient():
    x = LOGITS.clone().requires_grad_()
    varifocal_loss(x, TARGETS).sum().backward()
    p = LOGITS.sigmoid()
    w = torch.where(TARGETS > 0, TARGETS, 0.75 * p**2)
    torch.testing.assert_close(x.grad, w * (p - TARGETS))


def test_dispatch():
    torch.testing.assert_close(cls_loss("focal", LOGITS, TARGETS), focal_loss(LOGITS, TARGETS))
    with pytest.raises(ValueError, match="unknown classification loss 'hinge'"):
        cls_loss("hinge", LOGITS, TARGETS)
