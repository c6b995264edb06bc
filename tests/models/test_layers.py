"""Blocks of rtdet/models/layers.py: output shapes, every activation/norm, Conv+BN fusion."""

import pytest
import torch
from torch import nn

from rtdet.models.layers import (
    ACTIVATIONS, NORMS, SPPF, Bottleneck, C2f, ConvNormAct, DSConv, FReLU, InvertedResidual, conv, fuse_conv_bn,
    make_act, make_norm,
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
        (InvertedResidual(8, 16, 4, 3, 2, se=True), 8, 16, 2),
        (InvertedResidual(16, 16, 3, 5, 1), 16, 16, 1),
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


def test_inverted_residual_is_expand_depthwise_gate_project_plus_input():
    """The block's output equals its steps written out (a looped reference for the squeeze-excitation: the mean of
    each channel through the two 1x1 convolutions and a hard sigmoid, min(max(x / 6 + 1 / 2, 0), 1)); the input is
    added only at stride 1 with equal widths; Conv+BN fusion keeps the output."""
    torch.manual_seed(0)
    block = InvertedResidual(8, 8, 4, 5, 1, se=True)
    _randomize_bn(block)
    block.eval()
    assert block.dw.conv.groups == 32 and block.dw.conv.kernel_size == (5, 5) and block.se.fc1.out_channels == 8
    x = torch.randn(2, 8, 10, 12)
    with torch.no_grad():
        h = block.dw(block.expand(x))
        gate = torch.empty(2, 32, 1, 1)
        for b in range(2):
            for c in range(32):
                squeezed = torch.relu(block.se.fc1.weight[:, :, 0, 0] @ h[b].mean((1, 2)) + block.se.fc1.bias)
                g = block.se.fc2.weight[c, :, 0, 0] @ squeezed + block.se.fc2.bias[c]
                gate[b, c] = min(max(float(g) / 6 + 0.5, 0.0), 1.0)
        ref = x + block.project(h * gate)
        torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)
        fuse_conv_bn(block)
        torch.testing.assert_close(block(x), ref, atol=1e-4, rtol=1e-4)
    assert not InvertedResidual(8, 16).add and not InvertedResidual(8, 8, s=2).add and InvertedResidual(8, 8).add
    assert isinstance(InvertedResidual(8, 8).se, nn.Identity)


def test_fuse_leaves_groupnorm_alone():
    m = ConvNormAct(3, 8, 3, norm="gn").eval()
    fuse_conv_bn(m)
    assert isinstance(m.norm, nn.GroupNorm)
