"""Greedy matching and its IoU: against torchvision, by hand at the edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from rtdet.metrics.match import iou_matrix, match_dataset, match_image


def test_iou_matches_torchvision_and_handles_zero_union():
    r = np.random.default_rng(0)
    xy = r.uniform(0, 100, (30, 2))
    boxes = np.concatenate([xy, xy + r.uniform(0.5, 50, (30, 2))], 1)
    np.testing.assert_allclose(iou_matrix(boxes[:10], boxes[10:]),
                               box_iou(torch.tensor(boxes[:10]), torch.tensor(boxes[10:])).numpy(), atol=1e-12)
    point = np.array([[5.0, 5, 5, 5]])
    assert iou_matrix(point, point).tolist() == [[0.0]]
    # the VOC devkit's inclusive pixels: a 1-pixel box is a 1x1 square
    assert iou_matrix(point, point, pixel_offset=1.0).tolist() == [[1.0]]


def test_match_image_rules():
    gb = np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    gl = np.array([0, 0])
    ignore = np.array([False, True])
    pb = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5], [40, 40, 50, 50]])
    ps = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    pl = np.array([0, 0, 0, 0, 0])
    tp, kept = match_image(gb, gl, ignore, pb, ps, pl, 0.5)
    # hit, duplicate, on an ignored box, IoU exactly 0.5 with a taken box, nothing
    assert tp.tolist() == [True, False, False, False, False]
    assert kept.tolist() == [True, True, False, True, True]
    # IoU exactly 0.5 counts with >= (COCO) but not with > (VOC devkit)
    half = np.array([[0.0, 0, 10, 5]])
    assert match_image(gb[:1], gl[:1], ignore[:1], half, ps[:1], pl[:1], 0.5)[0].tolist() == [True]
    assert match_image(gb[:1], gl[:1], ignore[:1], half, ps[:1], pl[:1], 0.5, strict=True)[0].tolist() == [False]


def test_wrong_class_never_matches_and_counts_exclude_ignored():
    targets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]]), "labels": torch.tensor([0, 1]),
                "iscrowd": torch.tensor([False, True])}]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([2])}]
    m = match_dataset(preds, targets, 3)
    assert m.n_gt.tolist() == [1, 0, 0] and m.tp.tolist() == [False] and m.labels.tolist() == [2]


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="one per image"):
        match_dataset([], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}], 1)
