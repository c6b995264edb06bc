"""The masked-attention decoder: the attention mask and its fallback, masked attention against the formula, the
round-robin over levels, and the pixel decoder's maps."""

import math

import torch
import torch.nn.functional as F

from rtdet.models.m2f.decoder import MaskDecoder, MaskedDecoderLayer, attention_mask
from rtdet.models.m2f.pixel_decoder import PixelDecoder


def test_attention_mask_is_the_resampled_mask_below_one_half_with_the_fallback():
    g = torch.Generator().manual_seed(0)
    embed, features = torch.randn(2, 5, 8, generator=g), torch.randn(2, 8, 16, 24, generator=g)
    embed[0, 2] = 0.0
    embed[0, 2, 0] = 1.0
    features[0, 0] = -1.0  # query 2 of image 0: background everywhere
    small = F.interpolate(features, size=(4, 6), mode="bilinear", align_corners=False)
    got = attention_mask(embed, small)
    assert got.shape == (2, 1, 5, 24) and got.dtype == torch.bool
    # Mask2Former's way: resample the full masks, then sigmoid < 0.5
    full = torch.einsum("bqd,bdhw->bqhw", embed, features)
    want = F.interpolate(full, size=(4, 6), mode="bilinear", align_corners=False).sigmoid().flatten(2) < 0.5
    want[want.all(-1)] = False  # the fallback: a row that would block every key blocks none
    assert not got[0, 0, 2].any()
    assert torch.equal(got[:, 0], want)


def _layer():
    torch.manual_seed(0)
    return MaskedDecoderLayer(16, 4, 32).eval()


def test_an_empty_mask_falls_back_to_full_attention():
    layer = _layer()
    x, pos = torch.randn(2, 5, 16), torch.randn(5, 16)
    memory, memory_pos = torch.randn(2, 12, 16), torch.randn(1, 12, 16)
    embed, features = torch.randn(2, 5, 16), -torch.ones(2, 16, 3, 4)
    features[:, 1:] = 0  # every mask logit is -embed[..., 0]: make them all negative
    embed[..., 0] = embed[..., 0].abs() + 0.1
    blocked = attention_mask(embed, features)
    assert not blocked.any()
    with torch.no_grad():
        torch.testing.assert_close(layer(x, pos, memory, memory_pos, blocked), layer(x, pos, memory, memory_pos))


def test_masked_cross_attention_equals_the_formula():
    """Each query's softmax runs over its allowed keys only (written out per query and head)."""
    layer = _layer()
    attn = layer.cross_attn
    g = torch.Generator().manual_seed(1)
    query, keys = torch.randn(1, 5, 16, generator=g), torch.randn(1, 12, 16, generator=g)
    blocked = torch.rand(1, 1, 5, 12, generator=g) > 0.5
    blocked[0, 0, 3] = False
    with torch.no_grad():
        got = attn(query, keys, keys, blocked)
        q, k, v = attn.q_proj(query)[0], attn.k_proj(keys)[0], attn.v_proj(keys)[0]
        d = 16 // 4
        rows = []
        for i in range(5):
            heads = []
            for h in range(4):
                sl = slice(h * d, (h + 1) * d)
                scores = (k[:, sl] @ q[i, sl]) / math.sqrt(d)
                scores[blocked[0, 0, i]] = float("-inf")
                heads.append(scores.softmax(0) @ v[:, sl])
            rows.append(torch.cat(heads))
        want = attn.out_proj(torch.stack(rows))[None]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_layers_read_the_levels_in_turn_and_every_prediction_is_returned():
    torch.manual_seed(0)
    decoder = MaskDecoder(16, num_classes=3, num_queries=7, layers=5, heads=4, ffn_dims=32).eval()
    maps = [torch.randn(2, 16, h, w) for h, w in ((2, 3), (4, 6), (8, 12))]  # strides 32, 16, 8
    read = []
    for layer in decoder.layers:
        layer.cross_attn.register_forward_hook(lambda m, args, out: read.append(args[1].shape[1]))
    with torch.no_grad():
        out = decoder(maps, torch.randn(2, 16, 16, 24))
    assert read == [6, 24, 96, 6, 24]
    assert len(out) == 6 and out[0]["logits"].shape == (2, 7, 4) and out[-1]["embed"].shape == (2, 7, 16)


def test_pixel_decoder_gives_three_levels_coarsest_first_and_stride_four_features():
    torch.manual_seed(0)
    net = PixelDecoder((8, 16, 24, 32), 16, heads=4, ffn_dims=32, act="relu").eval()
    feats = [torch.randn(1, c, 64 // s, 96 // s) for c, s in ((8, 4), (16, 8), (24, 16), (32, 32))]
    with torch.no_grad():
        maps, features = net(feats)
    assert [tuple(m.shape) for m in maps] == [(1, 16, 2, 3), (1, 16, 4, 6), (1, 16, 8, 12)]
    assert features.shape == (1, 16, 16, 24)
