"""rtdet.nms against looped references and hand-computed Soft-NMS decays."""

import math

import pytest
import torch

from rtdet.nms import agnostic_nms, batched_nms, diou_nms, non_max_suppression, soft_nms
from tests.test_boxes import ref_iou


def ref_greedy(boxes, scores, classes, thresh, kind="iou", agnostic=False):
    """Textbook greedy NMS: sort by score (ties: lower index), keep, drop overlaps above thresh."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(
            (not agnostic and classes[i] != classes[k]) or ref_iou(boxes[i], boxes[k], kind) <= thresh
            for k in keep
        ):
            keep.append(i)
    return keep


def cluttered(n, seed, n_classes=3, tie_every=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(6, 2, generator=g) * 200  # few centres -> many overlaps
    xy = centres[torch.randint(0, 6, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 8
    wh = 20 + torch.rand(n, 2, generator=g) * 30
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    scores = torch.rand(n, generator=g)
    if tie_every:
        scores = (scores * 4).round() / 4  # many exact ties
    classes = torch.randint(0, n_classes, (n,), generator=g)
    return boxes, scores, classes


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("ties", [0, 1])
def test_batched_and_agnostic_match_loop(seed, thresh, ties):
    boxes, scores, classes = cluttered(120, seed, tie_every=ties)
    b, s, c = boxes.tolist(), scores.tolist(), classes.tolist()
    assert batched_nms(boxes, scores, classes, thresh).tolist() == ref_greedy(b, s, c, thresh)
    assert agnostic_nms(boxes, scores, classes, thresh).tolist() == ref_greedy(b, s, c, thresh, agnostic=True)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thresh", [0.3, 0.5])
def test_diou_nms_matches_loop(seed, thresh):
    boxes, scores, classes = cluttered(100, seed, tie_every=seed % 2)
    b, s, c = boxes.tolist(), scores.tolist(), classes.tolist()
    assert diou_nms(boxes, scores, classes, thresh).tolist() == ref_greedy(b, s, c, thresh, "diou")
    got = diou_nms(boxes, scores, classes, thresh, agnostic=True).tolist()
    assert got == ref_greedy(b, s, c, thresh, "diou", agnostic=True)


def test_diou_keeps_overlapping_boxes_with_distant_centres():
    # IoU 0.5 with centres apart: plain NMS at 0.45 drops the second box, DIoU-NMS keeps it
    boxes = torch.tensor([[0.0, 0, 30, 10], [10, 0, 40, 10]])
    scores, classes = torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    assert batched_nms(boxes, scores, classes, 0.45).tolist() == [0]
    assert diou_nms(boxes, scores, classes, 0.45).tolist() == [0, 1]


def test_soft_nms_hand_computed_decays():
    # box 1 overlaps box 0 with IoU 0.5 (same class); box 2 is far away; box 3 another class
    boxes = torch.tensor([[0.0, 0, 30, 10], [10, 0, 40, 10], [100, 100, 110, 110], [0, 0, 30, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([0, 0, 0, 1])
    keep, s = soft_nms(boxes, scores, classes, iou_thresh=0.3, decay="linear")
    assert keep.tolist() == [0, 2, 3, 1]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.6, 0.8 * (1 - 0.5)]))
    keep, s = soft_nms(boxes, scores, classes, sigma=0.5, decay="gaussian")
    assert keep.tolist() == [0, 2, 3, 1]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.6, 0.8 * math.exp(-0.25 / 0.5)]))
    # linear decay only applies above the threshold
    keep, s = soft_nms(boxes, scores, classes, iou_thresh=0.6, decay="linear")
    assert keep.tolist() == [0, 1, 2, 3] and s.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_soft_nms_score_threshold_drops_and_order_is_by_decayed_score():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 9]])
    scores = torch.tensor([0.9, 0.85, 0.5])
    keep, s = soft_nms(boxes, scores, torch.zeros(3, dtype=torch.int64), iou_thresh=0.3, decay="linear",
                       score_thresh=0.01)
    # box 1 is identical to box 0: decayed to 0 and dropped; box 2 (IoU 0.9) decays to 0.05
    assert keep.tolist() == [0, 2]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.5 * 0.1]))
    assert (s[:-1] >= s[1:]).all()


def ref_soft(boxes, scores, classes, thresh, sigma, decay, score_thresh):
    s = list(scores)
    alive = [x >= score_thresh for x in s]
    keep = []
    while any(alive):
        i = max((j for j in range(len(s)) if alive[j]), key=lambda j: (s[j], -j))
        keep.append((i, s[i]))
        alive[i] = False
        for j in range(len(s)):
            if alive[j] and classes[j] == classes[i]:
                o = ref_iou(boxes[i], boxes[j], "iou")
                s[j] *= (1 - o if o > thresh else 1.0) if decay == "linear" else math.exp(-o * o / sigma)
                alive[j] = s[j] >= score_thresh
    return keep


@pytest.mark.parametrize("decay", ["linear", "gaussian"])
@pytest.mark.parametrize("seed", range(3))
def test_soft_nms_matches_loop(decay, seed):
    boxes, scores, classes = cluttered(80, seed)
    keep, s = soft_nms(boxes.double(), scores.double(), classes, 0.3, 0.5, decay, 0.05)
    want = ref_soft(boxes.double().tolist(), scores.double().tolist(), classes.tolist(), 0.3, 0.5, decay, 0.05)
    assert keep.tolist() == [i for i, _ in want]
    assert s.tolist() == pytest.approx([v for _, v in want], abs=1e-12)


@pytest.mark.parametrize("method", ["nms", "agnostic", "soft", "diou"])
def test_empty_input_and_max_det(method):
    empty = torch.zeros(0, 4)
    keep, s = non_max_suppression(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), method)
    assert keep.numel() == 0 and s.numel() == 0 and keep.dtype == torch.int64
    boxes, scores, classes = cluttered(300, 9, n_classes=40)
    keep, s = non_max_suppression(boxes, scores, classes, method, 0.5, max_det=7)
    assert len(keep) == 7 and (s[:-1] >= s[1:]).all()
    if method != "soft":
        assert torch.equal(s, scores[keep])


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown NMS method"):
        non_max_suppression(torch.zeros(1, 4), torch.ones(1), torch.zeros(1, dtype=torch.int64), "fast")


@pytest.mark.parametrize("seed", range(40))
def test_numpy_nms_equals_torchvision_ties_offsets_and_empty_boxes(seed):
    import numpy as np

    from rtdet.nms import nms_numpy

    boxes, scores, classes = cluttered(int(torch.randint(0, 300, (1,), generator=torch.Generator().manual_seed(seed))),
                                       seed, n_classes=1 + seed % 80, tie_every=seed % 2)
    if seed % 3 == 0 and len(boxes):
        boxes[::7, 2:] = boxes[::7, :2]  # empty boxes: 0/0 overlaps are never above the threshold
        boxes[1::5] = boxes[0]  # exact duplicates
    thresh = (0.3, 0.45, 0.5, 0.7)[seed % 4]
    b, s, c = boxes.float().numpy(), scores.float().numpy(), classes.numpy()
    assert nms_numpy(b, s, c, thresh).tolist() == batched_nms(boxes.float(), scores.float(), classes, thresh).tolist()
    assert nms_numpy(b, s, None, thresh).tolist() == agnostic_nms(boxes.float(), scores.float(), None, thresh).tolist()
    assert nms_numpy(b, s, c, thresh).dtype == np.int64


def test_numpy_nms_refuses_more_boxes_than_it_is_for():
    import numpy as np

    from rtdet.nms import NUMPY_NMS_MAX, nms_numpy

    with pytest.raises(ValueError, match="at most"):
        nms_numpy(np.zeros((NUMPY_NMS_MAX + 1, 4), np.float32), np.zeros(NUMPY_NMS_MAX + 1, np.float32), None, 0.5)


@pytest.mark.parametrize("thresh", [0.3, 0.45, 0.5, 0.7])
def test_numpy_nms_equals_torchvision_at_the_threshold_itself(thresh):
    """Pairs whose overlap is the threshold up to float32 rounding: the decision rests on the exact arithmetic
    (float32 overlap compared in double, classes shifted apart in float32) being torchvision's."""
    import numpy as np

    from rtdet.nms import nms_numpy

    rng = np.random.default_rng(int(thresh * 100))
    n = 400
    x, y = rng.uniform(0, 250, n).astype(np.float32), rng.uniform(0, 250, n).astype(np.float32)
    w, h = rng.uniform(5, 60, n).astype(np.float32), rng.uniform(5, 60, n).astype(np.float32)
    outer = np.stack([x, y, x + w, y + h], 1)
    inner = np.stack([x, y, x + w * np.float32(thresh), y + h], 1)  # inside: overlap = width ratio ~ thresh
    boxes = np.concatenate([outer, inner]).astype(np.float32)
    scores = np.concatenate([np.full(n, 0.9), np.full(n, 0.5)]).astype(np.float32)
    classes = np.tile(rng.integers(40, 80, n), 2)
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    ref = batched_nms(tb, ts, torch.from_numpy(classes), thresh).tolist()
    assert n < len(ref) < 2 * n  # some inner boxes survive, some do not: the cases are really at the edge
    assert nms_numpy(boxes, scores, classes, thresh).tolist() == ref
    assert nms_numpy(boxes, scores, None, thresh).tolist() == agnostic_nms(tb, ts, None, thresh).tolist()
