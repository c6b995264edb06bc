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


def test_output_stride_16_keeps_p5_at_p4s_size_with_dilated_bottlenecks():
    torch.manual_seed(0)
    bb = CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 2), act="relu", output_stride=16).eval()
    p2, p3, p4, p5 = bb.features(torch.rand(2, 3, 64, 96))
    assert p4.shape == (2, 32, 4, 6) and p5.shape == (2, 48, 4, 6) and bb.strides == (4, 8, 16, 16)
    convs = [m for m in bb.stages[3].modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs[0].stride == (1, 1) and convs[0].dilation == (1, 1)  # the stage's first convolution
    assert len(convs) == 5 and all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs[1:])
    plain = CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 2), act="relu")
    assert all(m.dilation == (1, 1) for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="output_stride must be 16 or 32"):
        CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 1), output_stride=8)


def test_a_dilated_convolution_sees_what_the_strided_stage_saw():
    """Dilation 2 at stride 16 samples the input pixels a 3x3 convolution at stride 32 samples: the response to
    one impulse spreads over 5 stride-16 cells (2 cells each side), where the stride-32 one spreads over 3."""
    from rtdet.models.backbones import dilated

    conv = dilated(torch.nn.Conv2d(1, 1, 3, padding=1, bias=False), 2)
    torch.nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1
    with torch.no_grad():
        y = conv(x)[0, 0]
    assert y.shape == (9, 9) and torch.equal(y.nonzero().unique(), torch.tensor([2, 4, 6]))


def test_inverted_residual_stages_at_strides_16_and_32():
    """blocks="ir": the stages at strides 16 and 32 are a stride-2 inverted residual and 2 x depth more (3x3,
    expansion 3, the last gated, at 16; 5x5, expansion 4, all gated, at 32); strides 4 and 8 stay C2f; same
    widths and strides; output stride 16 keeps the first block's stride 1 and dilates the rest's 5x5 by 2."""
    from rtdet.models.backbones import ir_stage
    from rtdet.models.layers import C2f, InvertedResidual

    bb = CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 2), act="relu", blocks="ir")
    assert isinstance(bb.stages[1][1], C2f)
    s16 = [m for m in bb.stages[2] if isinstance(m, InvertedResidual)]
    s32 = [m for m in bb.stages[3] if isinstance(m, InvertedResidual)]
    assert len(s16) == 3 and len(s32) == 5
    assert [m.dw.conv.stride[0] for m in s16] == [2, 1, 1] and [m.dw.conv.kernel_size[0] for m in s32] == [5] * 5
    assert [not isinstance(m.se, torch.nn.Identity) for m in s16] == [False, False, True]
    assert all(not isinstance(m.se, torch.nn.Identity) for m in s32)
    assert [m.dw.conv.in_channels for m in s16] == [24 * 4, 32 * 3, 32 * 3]
    p3, p4, p5 = bb(torch.rand(2, 3, 64, 96))
    assert p3.shape == (2, 24, 8, 12) and p4.shape == (2, 32, 4, 6) and p5.shape == (2, 48, 2, 3)
    os16 = CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 1), act="relu", blocks="ir", output_stride=16)
    dws = [m.dw.conv for m in os16.stages[3] if isinstance(m, InvertedResidual)]
    assert [(c.stride, c.dilation, c.padding) for c in dws] == [((1, 1), (1, 1), (2, 2))] + [((1, 1), (2, 2), (4, 4))] * 2
    assert os16.features(torch.rand(1, 3, 64, 96))[3].shape == (1, 48, 4, 6)
    with pytest.raises(ValueError, match="blocks must be one of"):
        CSPBackbone((8, 16, 24, 32, 48), (1, 1, 1, 1), blocks="mbconv")
    with pytest.raises(ValueError, match="strides 16 and 32"):
        ir_stage(8, 16, 1, 8)
