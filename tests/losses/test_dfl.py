"""DFL loss and the distance <-> box encoding against direct formulas."""

import math

import torch

from rtdet.losses.dfl import box_to_distance, dfl_expectation, dfl_loss, distance_to_box


def test_dfl_matches_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 8)
    target = torch.tensor([[0.0, 2.5, 6.2, 3.0], [1.25, 0.5, 4.75, 5.9], [6.98, 0.1, 2.0, 3.3]])
    expect = torch.zeros(3)
    for p in range(3):
        for s in range(4):
            d = float(target[p, s])
            lo = math.floor(d)
            logp = torch.log_softmax(logits[p, s], -1)
            expect[p] += -((lo + 1 - d) * logp[lo] + (d - lo) * logp[lo + 1]) / 4
    torch.testing.assert_close(dfl_loss(logits, target), expect)


def test_dfl_clamps_distances_beyond_the_last_bin():
    logits = torch.zeros(1, 4, 4)
    far = dfl_loss(logits, torch.full((1, 4), 100.0))
    edge = dfl_loss(logits, torch.full((1, 4), 2.99))
    torch.testing.assert_close(far, edge)


def test_expectation_of_a_one_hot_distribution_is_its_bin():
    reg = torch.full((2, 4, 16), -1e4)
    reg[0, :, 3] = 0
    reg[1, :, 7] = 0
    torch.testing.assert_close(dfl_expectation(reg), torch.tensor([[3.0] * 4, [7.0] * 4]))


def test_distance_box_round_trip():
    anchors = torch.tensor([[10.0, 20.0], [5.0, 5.0]])
    boxes = torch.tensor([[[2.0, 4.0, 30.0, 22.0], [0.0, 1.0, 9.0, 7.0]]])
    dist = box_to_distance(boxes, anchors)
    torch.testing.assert_close(dist[0, 0], torch.tensor([8.0, 16.0, 20.0, 2.0]))
    torch.testing.assert_close(distance_to_box(dist, anchors), boxes)
