"""DETR attention: textbook multi-head attention against torch's, deformable sampling against a loop."""

import math

import pytest
import torch
from torch import nn

from rtdet.models.detr.attention import MSDeformableAttention, MultiheadAttention, deformable_sample


def _same_weights(ours: MultiheadAttention, dims: int, heads: int) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(dims, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref


@pytest.mark.parametrize("dims,heads", [(16, 1), (32, 4), (24, 8)])
def test_multihead_attention_equals_torch(dims, heads):
    torch.manual_seed(0)
    ours = MultiheadAttention(dims, heads)
    for p in ours.parameters():  # non-zero biases too
        nn.init.normal_(p, std=0.3)
    ref = _same_weights(ours, dims, heads)
    q, k, v = torch.randn(2, 5, dims), torch.randn(2, 7, dims), torch.randn(2, 7, dims)
    mask = torch.rand(5, 7) < 0.4
    mask[:, 0] = False  # every query keeps one key
    for m in (None, mask, mask.repeat(2 * heads, 1, 1)):
        want = ref(q, k, v, attn_mask=m, need_weights=False)[0]
        torch.testing.assert_close(ours(q, k, v, attn_mask=m), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours(q, k, v, attn_mask=m), _textbook(ours, q, k, v, m), rtol=1e-5, atol=1e-5)


def _textbook(mha: MultiheadAttention, query, key, value, mask):
    """softmax(q k^T / sqrt(d_h)) v per head, written out."""
    b, h, d = query.shape[0], mha.heads, mha.head_dims
    q, k, v = (proj(x).view(b, -1, h, d).transpose(1, 2) for proj, x in
               ((mha.q_proj, query), (mha.k_proj, key), (mha.v_proj, value)))
    logits = q @ k.transpose(-2, -1) / math.sqrt(d)
    if mask is not None:
        logits = logits.masked_fill(mask.view(-1, *logits.shape[1:]) if mask.dim() == 3 else mask, float("-inf"))
    return mha.out_proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, h * d))


def test_multihead_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 3)


def _bilinear(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """img [d, H, W] at normalized (x, y), align_corners=False, zeros outside: the textbook formula."""
    d, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(d, dtype=img.dtype)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        if 0 <= xi < w and 0 <= yi < h:
            out += (1 - abs(px - xi)) * (1 - abs(py - yi)) * img[:, yi, xi]
    return out


def _looped(values, locations, weights):
    """values: per level [B, h, d, H, W]."""
    b, q, heads, levels, points, _ = locations.shape
    d = values[0].shape[2]
    out = torch.zeros(b, q, heads, d, dtype=values[0].dtype)
    for bi in range(b):
        for qi in range(q):
            for hi in range(heads):
                for li in range(levels):
                    for pi in range(points):
                        x, y = locations[bi, qi, hi, li, pi].tolist()
                        out[bi, qi, hi] += weights[bi, qi, hi, li, pi] * _bilinear(values[li][bi, hi], x, y)
    return out.flatten(2)


def test_deformable_sample_equals_a_looped_reference():
    torch.manual_seed(0)
    values = [torch.randn(2, 2, 3, h, w, dtype=torch.float64) for h, w in [(6, 5), (3, 4), (2, 2)]]
    locations = torch.rand(2, 4, 2, 3, 3, 2, dtype=torch.float64) * 1.2 - 0.1  # some points outside
    weights = torch.rand(2, 4, 2, 3, 3, dtype=torch.float64)
    got = deformable_sample([v.flatten(0, 1) for v in values], locations, weights)
    torch.testing.assert_close(got, _looped(values, locations, weights))


def test_deformable_attention_shapes_and_reference_kinds():
    torch.manual_seed(0)
    maps = [torch.randn(2, 32, 4, 6), torch.randn(2, 32, 2, 3)]
    query = torch.randn(2, 5, 32)
    for kind, ref in (("point", torch.rand(2, 5, 2)), ("box", torch.rand(2, 5, 4))):
        attn = MSDeformableAttention(dims=32, heads=4, levels=2, points=3, reference=kind)
        out = attn(query, ref, maps)
        assert out.shape == (2, 5, 32) and torch.isfinite(out).all()
        out.sum().backward()
        assert attn.sampling_offsets.weight.grad.abs().sum() > 0  # the offsets learn through grid_sample
    with pytest.raises(ValueError, match=r"reference boxes must be \[B, Q, 4\]"):
        attn(query, torch.rand(2, 5, 2), maps)


def test_deformable_attention_starts_looking_around_the_reference():
    attn = MSDeformableAttention(dims=16, heads=4, levels=1, points=2)
    offsets = attn.sampling_offsets.bias.view(4, 1, 2, 2)
    assert torch.allclose(offsets[:, 0, 1], 2 * offsets[:, 0, 0])  # point p at distance p + 1
    assert torch.allclose(offsets[0, 0, 0], torch.tensor([1.0, 0.0]))  # head 0 looks right
