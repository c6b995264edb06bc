"""TaskAlignedAssigner on hand-built cases."""

import torch

from rtdet.losses.tal import TaskAlignedAssigner
from rtdet.models.heads import make_anchors


def _grid(h=4, w=4, stride=8):
    anchors, _ = make_anchors([(h, w)], (stride,))
    return anchors  # [h*w, 2], centres at 4, 12, 20, 28 px


def _assign(pd_boxes, pd_scores, gt_boxes, gt_labels, anchors, topk=10, mask=None):
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(1, -1, 4)
    gt_labels = torch.as_tensor(gt_labels, dtype=torch.int64).reshape(1, -1)
    mask = torch.ones_like(gt_labels, dtype=torch.bool) if mask is None else torch.as_tensor(mask).reshape(1, -1)
    return TaskAlignedAssigner(topk=topk)(pd_scores, pd_boxes, anchors, gt_labels, gt_boxes, mask)


def _perfect_preds(anchors, boxes_per_anchor, k=2, score=0.5):
    pd_boxes = torch.as_tensor(boxes_per_anchor, dtype=torch.float32)[None]
    return pd_boxes, torch.full((1, len(anchors), k), score)


def test_only_anchors_inside_the_box_and_topk_best_aligned():
    anchors = _grid()
    gt = [0.0, 0.0, 16.0, 16.0]  # contains centres (4,4), (12,4), (4,12), (12,12): anchors 0, 1, 4, 5
    pd = torch.tensor([gt] * 16)
    pd[1] = torch.tensor([0.0, 0.0, 16.0, 8.0])  # anchor 1 predicts a worse box
    pd_boxes, scores = pd[None], torch.full((1, 16, 2), 0.5)
    t = _assign(pd_boxes, scores, [gt], [1], anchors, topk=3)
    assert t["fg"][0].nonzero().flatten().tolist() == [0, 4, 5]  # top 3 of the 4 inside; anchor 1 loses
    assert (t["labels"][0, [0, 4, 5]] == 1).all() and (t["labels"][0, 1] == -1)
    torch.testing.assert_close(t["boxes"][0, 0], torch.tensor(gt))
    # soft targets: the best anchors have IoU 1, so their class target is 1 and other classes 0
    torch.testing.assert_close(t["scores"][0, 0], torch.tensor([0.0, 1.0]))
    assert t["scores"][0, ~t["fg"][0]].abs().sum() == 0


def test_soft_target_scaled_to_best_iou():
    anchors = _grid()
    gt = [0.0, 0.0, 16.0, 16.0]
    pd = torch.tensor([[0.0, 0.0, 16.0, 8.0]] * 16)  # every prediction has IoU 0.5
    t = _assign(pd[None], torch.full((1, 16, 1), 0.5), [gt], [0], anchors)
    fg = t["fg"][0]
    assert fg.sum() == 4
    torch.testing.assert_close(t["scores"][0, fg, 0], torch.full((4,), 0.5))


def test_anchor_in_two_boxes_goes_to_the_higher_iou():
    anchors = _grid()
    a = [0.0, 0.0, 16.0, 16.0]
    b = [8.0, 0.0, 24.0, 16.0]  # shares anchors 1 (12,4) and 5 (12,12) with a
    pd = torch.tensor([a] * 16)
    pd[5] = torch.tensor(b)  # anchor 5 predicts b exactly
    t = _assign(pd[None], torch.full((1, 16, 2), 0.5), [a, b], [0, 1], anchors)
    assert t["gt_index"][0, 5] == 1 and t["labels"][0, 5] == 1
    assert t["gt_index"][0, 1] == 0  # predicts a: IoU 1 with a, 1/3 with b


def test_tie_between_boxes_goes_to_the_lower_index():
    anchors = _grid()
    box = [0.0, 0.0, 16.0, 16.0]
    pd = torch.tensor([box] * 16)
    t = _assign(pd[None], torch.full((1, 16, 2), 0.5), [box, box], [0, 1], anchors)
    fg = t["fg"][0]
    assert fg.sum() == 4 and (t["gt_index"][0, fg] == 0).all()


def test_empty_image_and_padding():
    anchors = _grid()
    pd_boxes, scores = torch.zeros(1, 16, 4), torch.rand(1, 16, 3)
    empty = TaskAlignedAssigner()(scores, pd_boxes, anchors, torch.zeros(1, 0, dtype=torch.int64),
                                  torch.zeros(1, 0, 4), torch.zeros(1, 0, dtype=torch.bool))
    assert not empty["fg"].any() and empty["scores"].abs().sum() == 0 and (empty["labels"] == -1).all()
    padded = _assign(pd_boxes, scores, [[0.0, 0.0, 32.0, 32.0]], [-1], anchors, mask=[False])
    assert not padded["fg"].any()


def test_batch_equals_per_image():
    torch.manual_seed(0)
    anchors = _grid()
    pd = torch.rand(2, 16, 4) * 16
    pd = torch.cat([pd[..., :2], pd[..., :2] + 4 + pd[..., 2:]], -1)
    scores = torch.rand(2, 16, 3)
    gts = torch.tensor([[[0.0, 0.0, 20.0, 20.0], [10.0, 10.0, 30.0, 30.0]], [[2.0, 2.0, 30.0, 14.0], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, 2], [1, -1]])
    mask = torch.tensor([[True, True], [True, False]])
    both = TaskAlignedAssigner(topk=3)(scores, pd, anchors, labels, gts, mask)
    for i in range(2):
        m = mask[i]
        one = TaskAlignedAssigner(topk=3)(scores[i:i + 1], pd[i:i + 1], anchors, labels[i:i + 1, m], gts[i:i + 1, m], mask[i:i + 1, m])
        for k in ("fg", "labels", "scores"):
            torch.testing.assert_close(both[k][i], one[k][0])


def test_box_smaller_than_a_stride_gets_the_nearest_anchor():
    anchors = _grid()
    tiny = [13.0, 13.0, 15.0, 15.0]  # between anchor centres; nearest is (12, 12) = anchor 5
    pd = torch.tensor([[8.0, 8.0, 16.0, 16.0]] * 16)
    t = _assign(pd[None], torch.full((1, 16, 1), 0.5), [tiny], [0], anchors)
    assert t["fg"][0].nonzero().flatten().tolist() == [5]
    assert t["scores"][0, 5, 0] > 0
