"""Segments of a semantic mask; pairwise costs against looped references; the matching against brute force."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from rtdet.models.m2f.matcher import MaskMatcher, mask_logits_at, pairwise_bce, pairwise_dice, segments
from rtdet.models.m2f.points import point_sample


def test_segments_one_per_class_present_unlabelled_in_none():
    mask = torch.tensor([[0, 0, 3, 255], [3, 3, 11, 5]])  # 11 classes: 11 and 255 unlabelled
    labels, masks = segments(mask, 11)
    assert labels.tolist() == [0, 3, 5] and masks.dtype == torch.bool
    for lab, m in zip(labels, masks):
        assert torch.equal(m, mask == lab)
    assert masks.sum(0)[mask >= 11].eq(0).all()
    labels, masks = segments(torch.full((3, 4), 255), 11)
    assert labels.shape == (0,) and masks.shape == (0, 3, 4)


def test_pairwise_costs_equal_looped_references():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 50, generator=g) * 3, (torch.rand(4, 50, generator=g) > 0.5).float()
    targets[0] = torch.rand(50, generator=g)  # soft targets (bilinear samples of a binary mask) too
    bce, dice = pairwise_bce(logits, targets), pairwise_dice(logits, targets)
    for q in range(6):
        for n in range(4):
            want = F.binary_cross_entropy_with_logits(logits[q], targets[n])
            assert float(bce[q, n]) == pytest.approx(float(want), rel=1e-5)
            p = logits[q].sigmoid()
            want = 1 - (2 * (p * targets[n]).sum() + 1) / (p.sum() + targets[n].sum() + 1)
            assert float(dice[q, n]) == pytest.approx(float(want), rel=1e-5)
    big = pairwise_bce(torch.tensor([[80.0, -80.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.isfinite(big).all() and float(big[0, 0]) < 1e-6 and float(big[0, 1]) == pytest.approx(80.0)


def test_mask_logits_at_points_equal_the_full_masks_sampled():
    g = torch.Generator().manual_seed(0)
    embed, features, points = torch.randn(2, 5, 8, generator=g), torch.randn(2, 8, 6, 9, generator=g), \
        torch.rand(2, 30, 2, generator=g)
    full = torch.einsum("bqd,bdhw->bqhw", embed, features)
    torch.testing.assert_close(mask_logits_at(embed, features, points), point_sample(full, points))


def _case(q, sizes, seed):
    g = torch.Generator().manual_seed(seed)
    logits, embed = torch.randn(len(sizes), q, 4, generator=g), torch.randn(len(sizes), q, 6, generator=g)
    features = torch.randn(len(sizes), 6, 8, 8, generator=g)
    targets = [{"labels": torch.randint(0, 3, (n,), generator=g), "masks": (torch.rand(n, 32, 32, generator=g) > 0.6)
                .float()} for n in sizes]
    return logits, embed, features, targets


@pytest.mark.parametrize("seed", range(4))
def test_matching_equals_brute_force(seed):
    """The assignment's total cost is the least over every one-to-one pairing (all of them enumerated)."""
    matcher = MaskMatcher(num_points=64)
    logits, embed, features, targets = _case(5, [3, 0, 5, 1], seed)
    torch.manual_seed(seed)
    pairs = matcher(logits, embed, features, targets)
    torch.manual_seed(seed)  # the same random points, to rebuild the costs
    points = torch.rand(len(targets), 64, 2)
    predicted = mask_logits_at(embed, features, points)
    for b, (t, (rows, cols)) in enumerate(zip(targets, pairs)):
        n = len(t["labels"])
        assert len(rows) == len(cols) == min(5, n) and rows.tolist() == sorted(rows.tolist())
        if n == 0:
            continue
        wanted = point_sample(t["masks"][:, None], points[b, None].expand(n, -1, -1))[:, 0]
        cost = matcher.cost_matrix(logits[b], predicted[b], t["labels"], wanted)
        best = min(sum(float(cost[q, j]) for j, q in enumerate(perm)) for perm in itertools.permutations(range(5), n))
        assert float(cost[rows, cols].sum()) == pytest.approx(best, abs=1e-5)
        assert sorted(cols.tolist()) == list(range(n))  # every segment gets a query


def test_costs_weigh_class_mask_and_dice():
    logits, embed, features, targets = _case(4, [2], 0)
    mask_logits = torch.randn(4, 16)
    wanted = torch.rand(2, 16)
    labels = targets[0]["labels"]
    parts = [MaskMatcher(*w).cost_matrix(logits[0], mask_logits, labels, wanted) for w in ((1, 0, 0), (0, 1, 0),
                                                                                           (0, 0, 1))]
    torch.testing.assert_close(parts[0], -logits[0].softmax(-1)[:, labels])
    torch.testing.assert_close(MaskMatcher(2, 5, 5).cost_matrix(logits[0], mask_logits, labels, wanted),
                               2 * parts[0] + 5 * parts[1] + 5 * parts[2])
