"""DetectHead and anchor points."""

import torch

from rtdet.models.heads import DetectHead, make_anchors


def test_make_anchors_centres_and_order():
    anchors, strides = make_anchors([(2, 3), (1, 2)], (8, 16))
    assert anchors.shape == (8, 2) and strides.shape == (8, 1)
    # row-major within a level: x varies fastest
    assert anchors[:4].tolist() == [[4, 4], [12, 4], [20, 4], [4, 12]]
    assert anchors[6:].tolist() == [[8, 8], [24, 8]]
    assert strides.flatten().tolist() == [8] * 6 + [16] * 2


def test_head_output_shapes():
    head = DetectHead((16, 24, 32), num_classes=5, reg_max=8, box_channels=16, cls_channels=16, dw=True)
    feats = (torch.rand(2, 16, 8, 8), torch.rand(2, 24, 4, 4), torch.rand(2, 32, 2, 2))
    raw = head(feats)
    n = 64 + 16 + 4
    assert raw["cls"].shape == (2, n, 5)
    assert raw["reg"].shape == (2, n, 4, 8)
    assert raw["anchors"].shape == (n, 2) and raw["strides"].shape == (n, 1)


def test_head_flattening_matches_per_level_maps():
    head = DetectHead((4, 4, 4), num_classes=3, reg_max=4, box_channels=8, cls_channels=8).eval()
    feats = (torch.rand(1, 4, 2, 2), torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1))
    raw = head(feats)
    cls0 = head.cls[0](feats[0])  # [1, 3, 2, 2]
    torch.testing.assert_close(raw["cls"][0, 1], cls0[0, :, 0, 1])  # anchor 1 = row 0, column 1
    reg2 = head.box[2](feats[2])  # last level, single cell -> last anchor
    torch.testing.assert_close(raw["reg"][0, -1], reg2[0, :, 0, 0].reshape(4, 4))


def test_class_bias_prior_is_small():
    head = DetectHead((4, 4, 4), num_classes=80)
    for branch in head.cls:
        assert torch.sigmoid(branch[-1].bias).max() < 0.01
