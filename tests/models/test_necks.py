"""PAN neck: keeps the three strides, outputs the configured widths."""

import pytest
import torch

from rtdet.models.necks import PAN


@pytest.mark.parametrize("dw", [False, True])
def test_pan_shapes(dw):
    neck = PAN((24, 32, 48), (16, 24, 40), depth=1, act="silu", dw=dw)
    feats = (torch.rand(2, 24, 8, 8), torch.rand(2, 32, 4, 4), torch.rand(2, 48, 2, 2))
    n3, n4, n5 = neck(feats)
    assert n3.shape == (2, 16, 8, 8) and n4.shape == (2, 24, 4, 4) and n5.shape == (2, 40, 2, 2)
