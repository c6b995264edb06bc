"""YoloLoss: padding, normalization and the three terms against a direct computation."""

import pytest
import torch

from rtdet.boxes import aligned_iou
from rtdet.losses.dfl import box_to_distance, dfl_expectation, dfl_loss, distance_to_box
from rtdet.losses.yolo_loss import YoloLoss, pad_targets
from rtdet.models.heads import make_anchors


def _raw(b=1, k=2, r=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    anchors, strides = make_anchors([(4, 4), (2, 2)], (8, 16))
    n = len(anchors)
    return {
        "cls": torch.randn(b, n, k, generator=g),
        "reg": torch.randn(b, n, 4, r, generator=g),
        "anchors": anchors,
        "strides": strides,
    }


def test_pad_targets_masks_crowd_and_pads():
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 3, 3]]), "labels": torch.tensor([1, 0]),
         "iscrowd": torch.tensor([False, True])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    boxes, labels, mask = pad_targets(targets)
    assert boxes.shape == (2, 2, 4) and labels.tolist() == [[1, -1], [-1, -1]]
    assert mask.tolist() == [[True, False], [False, False]]
    empty = pad_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    assert empty[0].shape == (1, 0, 4)


def test_terms_match_a_direct_computation():
    raw = _raw()
    targets = [{"boxes": torch.tensor([[2.0, 3.0, 20.0, 26.0]]), "labels": torch.tensor([1])}]
    crit = YoloLoss(2, box_loss="giou", scale_by_batch=False, box_gain=1.0, cls_gain=1.0, dfl_gain=1.0)
    losses = crit(raw, targets)
    # recompute from the assignment the criterion used
    pd = distance_to_box(dfl_expectation(raw["reg"]) * raw["strides"], raw["anchors"])
    gt = targets[0]["boxes"].reshape(1, 1, 4)
    t = crit.assigner(raw["cls"].sigmoid(), pd, raw["anchors"], torch.tensor([[1]]), gt, torch.tensor([[True]]))
    fg, ts = t["fg"][0], t["scores"][0]
    norm = ts.sum().clamp(min=1)
    p = raw["cls"][0].sigmoid()
    bce = -(ts * p.log() + (1 - ts) * (1 - p).log())
    torch.testing.assert_close(losses["cls"], bce.sum() / norm)
    w = ts.sum(-1)[fg]
    giou = aligned_iou(pd[0, fg], gt[0].expand(int(fg.sum()), 4), "giou")
    torch.testing.assert_close(losses["box"], ((1 - giou) * w).sum() / norm)
    dist = box_to_distance(gt[0].expand(len(fg), 4), raw["anchors"]) / raw["strides"]
    torch.testing.assert_close(losses["dfl"], (dfl_loss(raw["reg"][0, fg], dist[fg]) * w).sum() / norm)


def test_gains_and_batch_scaling():
    raw = _raw(b=2)
    targets = [{"boxes": torch.tensor([[2.0, 3.0, 20.0, 26.0]]), "labels": torch.tensor([0])}] * 2
    plain = YoloLoss(2, scale_by_batch=False, box_gain=1, cls_gain=1, dfl_gain=1)(raw, targets)
    scaled = YoloLoss(2)(raw, targets)
    for k, gain in {"box": 7.5, "cls": 0.5, "dfl": 1.5}.items():
        torch.testing.assert_close(scaled[k], plain[k] * gain * 2)


def test_empty_images_give_only_a_classification_loss():
    raw = _raw()
    raw["cls"].requires_grad_()
    losses = YoloLoss(2)(raw, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    assert losses["box"] == 0 and losses["dfl"] == 0 and losses["cls"] > 0
    sum(losses.values()).backward()
    assert (raw["cls"].grad > 0).all()  # every score is pushed down


@pytest.mark.parametrize("cls", ["bce", "focal", "varifocal"])
@pytest.mark.parametrize("box", ["ciou", "giou", "diou", "iou"])
def test_every_loss_option_runs(cls, box):
    raw = _raw()
    targets = [{"boxes": torch.tensor([[2.0, 3.0, 20.0, 26.0]]), "labels": torch.tensor([1])}]
    losses = YoloLoss(2, box_loss=box, cls_loss=cls)(raw, targets)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_label_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="target label 5 out of range for 2 classes"):
        YoloLoss(2)(_raw(), [{"boxes": torch.tensor([[0.0, 0, 9, 9]]), "labels": torch.tensor([5])}])
