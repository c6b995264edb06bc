"""Contrastive denoising groups: query counts, the attention mask, positives, noise bounds."""

import torch
from torch import nn

from rtdet.boxes import box_convert, box_iou
from rtdet.models.detr.denoising import denoising_groups, group_mask, inverse_sigmoid


def _targets():
    return [{"boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.4, 0.4]]),
             "labels": torch.tensor([1, 0, 2])},
            {"boxes": torch.tensor([[0.2, 0.2, 0.1, 0.2]]), "labels": torch.tensor([3])}]


def test_query_count_and_attention_mask_shape():
    torch.manual_seed(0)
    embed = nn.Embedding(5, 8, padding_idx=4)
    dn = denoising_groups(_targets(), embed, num_classes=4, num_queries=10, num_denoising=20)
    groups = 20 // 3  # the most crowded image has 3 boxes
    assert dn.groups == groups and dn.size == 2 * 3 * groups
    assert dn.queries.shape == (2, dn.size, 8) and dn.boxes.shape == (2, dn.size, 4)
    assert dn.attn_mask.shape == (dn.size + 10, dn.size + 10) and dn.attn_mask.dtype == torch.bool
    assert dn.attn_mask[dn.size:, :dn.size].all()  # matching queries see no denoising query
    assert not dn.attn_mask[dn.size:, dn.size:].any()  # ... but each other
    assert not dn.attn_mask[:, dn.size:].any()  # everyone sees the matching queries
    assert [len(q) for q, _ in dn.positives] == [3 * groups, 1 * groups]
    q, t = dn.positives[1]
    assert q.tolist() == [g * 6 for g in range(groups)] and t.tolist() == [0] * groups
    assert torch.equal(dn.queries[1, 1], torch.zeros(8))  # a padding slot embeds to zeros


def test_groups_see_only_themselves():
    mask = group_mask(6, 2, num_queries=1, device=torch.device("cpu"))
    expected = torch.ones(7, 7, dtype=torch.bool)
    for g in range(3):
        expected[2 * g:2 * g + 2, 2 * g:2 * g + 2] = False
    expected[:, 6] = False
    assert torch.equal(mask, expected)


def test_without_noise_the_queries_are_the_targets():
    embed = nn.Embedding(5, 8, padding_idx=4)
    targets = _targets()
    dn = denoising_groups(targets, embed, 4, 10, num_denoising=6, label_noise=0.0, box_noise=0.0)
    for i, t in enumerate(targets):
        q, j = dn.positives[i]
        torch.testing.assert_close(dn.boxes[i, q].sigmoid(), t["boxes"][j], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(dn.queries[i, q], embed(t["labels"][j]))


def test_positives_stay_close_and_negatives_move_further():
    torch.manual_seed(0)
    targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "labels": torch.tensor([0])}]
    dn = denoising_groups(targets, nn.Embedding(2, 4, padding_idx=1), 1, 5, num_denoising=200, box_noise=0.5)
    corners = box_convert(dn.boxes[0].sigmoid(), "cxcywh", "xyxy")
    moved = (corners - torch.tensor([0.4, 0.4, 0.6, 0.6])).abs() / 0.05  # in units of box_noise half-sizes
    positive = torch.arange(dn.size) % 2 == 0
    assert (moved[positive] <= 1 + 1e-4).all() and (moved[~positive] >= 1 - 1e-4).all()
    iou = box_iou(corners, torch.tensor([[0.4, 0.4, 0.6, 0.6]]))[:, 0]
    assert iou[positive].mean() > iou[~positive].mean()


def test_no_boxes_no_denoising_and_inverse_sigmoid_is_finite():
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert denoising_groups(empty, nn.Embedding(3, 4), 2, 5) is None
    assert denoising_groups(_targets(), nn.Embedding(5, 4), 4, 5, num_denoising=0) is None
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 0.5, 1.0]))).all()
