"""Hungarian matching: batched == per image, empty targets, hand-checked 2x2 cases, one-to-many (k > 1)."""

import itertools
import math

import pytest
import torch

from rtdet.models.detr.matcher import HungarianMatcher, assign


def _targets(sizes, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        cxcy, wh = torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.3 + 0.05
        out.append({"boxes": torch.cat([cxcy, wh], 1), "labels": torch.randint(0, k, (n,), generator=g)})
    return out


def _predictions(b, q, k=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(b, q, 2, generator=g), torch.rand(b, q, 2, generator=g) * 0.5 + 0.01], -1)
    return torch.randn(b, q, k, generator=g) * 2, boxes


def test_batched_matching_equals_per_image_matching():
    matcher = HungarianMatcher()
    logits, boxes = _predictions(3, 12)
    targets = _targets([4, 0, 7])
    batched = matcher(logits, boxes, targets)
    for i, t in enumerate(targets):
        rows, cols = matcher(logits[i:i + 1], boxes[i:i + 1], [t])[0]
        assert torch.equal(batched[i][0], rows) and torch.equal(batched[i][1], cols)
        assert len(rows) == min(12, len(t["boxes"])) and rows.dtype == torch.int64
        assert len(set(cols.tolist())) == len(cols)  # one query per target


def test_more_targets_than_queries_matches_every_query():
    rows, cols = HungarianMatcher()(*_predictions(1, 3), _targets([6]))[0]
    assert sorted(rows.tolist()) == [0, 1, 2] and len(set(cols.tolist())) == 3


def test_empty_targets_match_nothing():
    logits, boxes = _predictions(2, 6)
    matcher = HungarianMatcher()
    for out in (matcher(logits, boxes, _targets([0, 0])), matcher(logits, boxes, _targets([0, 2]))[:1]):
        for rows, cols in out:
            assert rows.shape == (0,) and cols.shape == (0,) and rows.dtype == torch.int64


def test_hand_checked_l1_case():
    # L1 costs: q0-t0 1.1, q0-t1 0.05, q1-t0 0.1, q1-t1 1.15 -> q0 takes t1, q1 takes t0
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]]])
    targets = [{"boxes": torch.tensor([[0.7, 0.6, 0.2, 0.2], [0.25, 0.2, 0.1, 0.1]]), "labels": torch.tensor([0, 0])}]
    matcher = HungarianMatcher(cost_class=0.0, cost_l1=1.0, cost_giou=0.0)
    cost = matcher.cost_matrix(torch.zeros(2, 1), boxes[0], targets[0]["labels"], targets[0]["boxes"])
    torch.testing.assert_close(cost, torch.tensor([[1.1, 0.05], [0.1, 1.15]]))
    rows, cols = matcher(torch.zeros(1, 2, 1), boxes, targets)[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_hand_checked_class_case():
    # identical boxes: the class cost decides; query 0 is sure of class 1, query 1 of class 0
    boxes = torch.full((1, 2, 4), 0.3)
    logits = torch.tensor([[[-4.0, 4.0], [4.0, -4.0]]])
    targets = [{"boxes": torch.full((2, 4), 0.3), "labels": torch.tensor([0, 1])}]
    matcher = HungarianMatcher(cost_class=1.0, cost_l1=0.0, cost_giou=0.0)
    p = 1 / (1 + math.exp(-4.0))  # a sure query's probability of its class
    sure = 0.25 * (1 - p) ** 2 * -math.log(p) - 0.75 * p**2 * -math.log(1 - p)
    unsure = 0.25 * p**2 * -math.log(1 - p) - 0.75 * (1 - p) ** 2 * -math.log(p)
    cost = matcher.cost_matrix(logits[0], boxes[0], targets[0]["labels"], targets[0]["boxes"])
    torch.testing.assert_close(cost, torch.tensor([[unsure, sure], [sure, unsure]]), rtol=1e-5, atol=1e-6)
    rows, cols = matcher(logits, boxes, targets)[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_giou_cost_of_identical_boxes_is_minus_one():
    box = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    cost = HungarianMatcher(cost_class=0.0, cost_l1=0.0, cost_giou=1.0).cost_matrix(
        torch.zeros(1, 1), box, torch.tensor([0]), box)
    torch.testing.assert_close(cost, torch.tensor([[-1.0]]))


def test_one_to_many_pairs_each_target_with_k_distinct_queries():
    matcher = HungarianMatcher()
    logits, boxes = _predictions(3, 12)
    targets = _targets([2, 0, 3])
    for (rows, cols), t in zip(matcher(logits, boxes, targets, k=3), targets):
        assert len(set(rows.tolist())) == len(rows) and rows.dtype == torch.int64  # no query twice
        assert torch.equal(rows, rows.sort().values)
        assert sorted(cols.tolist()) == sorted(list(range(len(t["boxes"]))) * 3)  # k = 3 each: 12 >= 3 x 3
    # fewer queries than k x targets: every query is paired once, no target more than k times
    rows, cols = matcher(*_predictions(1, 5), _targets([3]), k=3)[0]
    assert sorted(rows.tolist()) == [0, 1, 2, 3, 4] and torch.bincount(cols).max() <= 3


def test_one_to_many_batched_equals_per_image():
    matcher = HungarianMatcher()
    logits, boxes = _predictions(3, 10)
    targets = _targets([4, 0, 2], seed=3)
    batched = matcher(logits, boxes, targets, k=2)
    for i, t in enumerate(targets):
        rows, cols = matcher(logits[i:i + 1], boxes[i:i + 1], [t], k=2)[0]
        assert torch.equal(batched[i][0], rows) and torch.equal(batched[i][1], cols)


def test_one_to_many_is_the_cheapest_pairing():
    # looped reference: every way of giving each of 2 targets 2 distinct queries out of 5
    matcher = HungarianMatcher()
    logits, boxes = _predictions(1, 5, seed=4)
    targets = _targets([2], seed=5)
    cost = matcher.cost_matrix(logits[0], boxes[0], targets[0]["labels"], targets[0]["boxes"])
    best = min(cost[list(a), 0].sum() + cost[list(b), 1].sum()
               for a in itertools.combinations(range(5), 2)
               for b in itertools.combinations(sorted(set(range(5)) - set(a)), 2))
    rows, cols = matcher(logits, boxes, targets, k=2)[0]
    torch.testing.assert_close(cost[rows, cols].sum(), best)


def test_k_of_one_is_one_to_one_and_k_below_one_is_refused():
    matcher = HungarianMatcher()
    logits, boxes = _predictions(2, 9)
    targets = _targets([3, 5])
    costs = [matcher.cost_matrix(logits[i], boxes[i], t["labels"], t["boxes"]) for i, t in enumerate(targets)]
    for (rows, cols), (ref_rows, ref_cols) in zip(matcher(logits, boxes, targets, k=1), assign(costs)):
        assert torch.equal(rows, ref_rows) and torch.equal(cols, ref_cols)
    with pytest.raises(ValueError, match="k >= 1"):
        matcher(logits, boxes, targets, k=0)
