"""CSPBackbone: three feature maps at strides 8, 16, 32 with the configured widths."""

import pytest
import torch

from rtdet.models.backbones import CSPBackbone


@pytest.mark.parametrize("dw", [False, True])
def test_output_strides_and_widths(dw):
    bb = CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 1), act="relu", dw=dw)
    p3, p4, p5 = bb(torch.rand(2, 3, 64, 96))
    assert p3.shape == (2, 24, 8, 12) and p4.shape == (2, 32, 4, 6) and p5.shape == (2, 48, 2, 3)
    assert bb.out_channels == (24, 32, 48)


def test_bad_widths_are_rejected():
    with pytest.raises(ValueError, match="5 channels and 4 depths"):
        CSPBackbone((8, 16, 32), (1, 1, 1, 1))
