"""Blocks of rtdet/models/layers.py: output shapes, every activation/norm, Conv+BN fusion."""

import pytest
import torch
from torch import nn

from rtdet.models.layers import (
    ACTIVATIONS, NORMS, SPPF, Bottleneck, C2f, ConvNormAct, DSConv, FReLU, conv, fuse_conv_bn, make_act, make_norm,
)


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial running statistics so fusion is really exercised."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_conv_norm_act_shapes_every_variant(act, norm):
    m = ConvNormAct(8, 16, 3, 2, act=act, norm=norm)
    assert m(torch.rand(2, 8, 20, 20)).shape == (2, 16, 10, 10)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        make_act("gelu", 8)
    with pytest.raises(ValueError, match="unknown norm 'ln'"):
        make_norm("ln", 8)


def test_groupnorm_groups_divide_channels():
    assert make_norm("gn", 48).num_groups == 16
    assert make_norm("gn", 3).num_groups == 1


def test_frelu_is_max_of_input_and_funnel():
    f = FReLU(4).eval()
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(f(x), torch.max(x, f.norm(f.conv(x))))


@pytest.mark.parametrize(
    "block, c_in, c_out, stride",
    [
        (DSConv(8, 16, 3, 2), 8, 16, 2),
        (conv(8, 16, 3, 1, dw=True), 8, 16, 1),
        (Bottleneck(8), 8, 8, 1),
        (Bottleneck(8, dw=True), 8, 8, 1),
        (C2f(8, 16, n=2), 8, 16, 1),
        (C2f(8, 16, n=1, dw=True), 8, 16, 1),
        (SPPF(16, 8), 16, 8, 1),
    ],
)
def test_block_shapes(block, c_in, c_out, stride):
    out = block(torch.rand(2, c_in, 16, 16))
    assert out.shape == (2, c_out, 16 // stride, 16 // stride)


def test_conv_helper_picks_depthwise_separable_only_for_k_gt_1():
    assert isinstance(conv(8, 8, 3, dw=True), DSConv)
    assert isinstance(conv(8, 8, 1, dw=True), ConvNormAct)
    assert isinstance(conv(8, 8, 3), ConvNormAct)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_fused_equals_unfused(act):
    torch.manual_seed(0)
    m = nn.Sequential(ConvNormAct(3, 8, 3, 2, act=act), C2f(8, 8, 1, act=act), DSConv(8, 16, act=act), SPPF(16, 16, act=act))
    _randomize_bn(m)
    m.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        fuse_conv_bn(m)
        out = m(x)
    assert not any(isinstance(k, nn.BatchNorm2d) for k in m.modules())
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_fuse_leaves_groupnorm_alone():
    m = ConvNormAct(3, 8, 3, norm="gn").eval()
    fuse_conv_bn(m)
    assert isinstance(m.norm, nn.GroupNorm)
