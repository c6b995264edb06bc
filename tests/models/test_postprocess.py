"""Decoding end to end on hand-built raw outputs; confidence filter, NMS, max_det, letterbox."""

import pytest
import torch

from rtdet.models.heads import make_anchors
from rtdet.models.postprocess import decode, postprocess
from rtdet.tasks.detect import to_original

R = 16


def _raw(num_classes=3):
    """Raw outputs for a 64x64 input: all scores ~0, every distribution peaked at bin 1."""
    anchors, strides = make_anchors([(8, 8), (4, 4), (2, 2)], (8, 16, 32))
    n = len(anchors)
    reg = torch.full((1, n, 4, R), -1e4)
    reg[..., 1] = 0
    return {"cls": torch.full((1, n, num_classes), -20.0), "reg": reg, "anchors": anchors, "strides": strides}


def _put_box(raw, anchor, ltrb, cls, logit=3.0):
    """Make ``anchor`` predict distances ``ltrb`` (integer bins) and class ``cls``."""
    raw["reg"][0, anchor] = -1e4
    for side, d in enumerate(ltrb):
        raw["reg"][0, anchor, side, d] = 0
    raw["cls"][0, anchor, cls] = logit


def test_known_box_decodes_to_pixels_then_to_original_image():
    raw = _raw()
    # level 1 (stride 16) starts at anchor 64; its cell (row 1, col 2) has centre (40, 24)
    a = 64 + 1 * 4 + 2
    assert raw["anchors"][a].tolist() == [40.0, 24.0]
    _put_box(raw, a, (2, 1, 1, 3), cls=2)  # stride units -> (40-32, 24-16, 40+16, 24+48)
    boxes, scores = decode(raw)
    torch.testing.assert_close(boxes[0, a], torch.tensor([8.0, 8.0, 56.0, 72.0]))
    (det,) = postprocess(boxes, scores, conf=0.5)
    assert det["labels"].tolist() == [2]
    torch.testing.assert_close(det["scores"], torch.sigmoid(torch.tensor([3.0])))
    torch.testing.assert_close(det["boxes"], torch.tensor([[8.0, 8.0, 56.0, 72.0]]))
    # the 64x64 input was a 128x96 image scaled by 0.5 and padded 8 px at the top
    mapped = to_original(det, (0.5, 0.0, 8.0), (96, 128))  # (x - pad) / scale, then clipped to the image
    torch.testing.assert_close(mapped["boxes"], torch.tensor([[16.0, 0.0, 112.0, 96.0]]))


def test_duplicates_are_suppressed_and_methods_selectable():
    raw = _raw()
    _put_box(raw, 9, (1, 1, 1, 1), cls=0, logit=4.0)   # centre (12, 12) stride 8: box 4..20
    _put_box(raw, 10, (1, 1, 1, 1), cls=0, logit=3.0)  # centre (20, 12): box 12..28 x 4..20, IoU 1/3
    _put_box(raw, 63, (1, 1, 1, 1), cls=1, logit=2.0)  # far away, another class
    boxes, scores = decode(raw)
    (hard,) = postprocess(boxes, scores, conf=0.5, iou=0.3)
    assert hard["labels"].tolist() == [0, 1]
    (loose,) = postprocess(boxes, scores, conf=0.5, iou=0.5)
    assert loose["labels"].tolist() == [0, 0, 1]
    for method in ("nms", "agnostic", "soft", "diou"):
        (det,) = postprocess(boxes, scores, conf=0.5, iou=0.3, method=method)
        assert det["labels"][0] == 0 and len(det["boxes"]) >= 2
    (capped,) = postprocess(boxes, scores, conf=0.5, iou=0.5, max_det=1)
    assert len(capped["boxes"]) == 1 and capped["scores"][0] == torch.sigmoid(torch.tensor(4.0))


def test_confidence_filter_multi_label_and_empty():
    raw = _raw()
    _put_box(raw, 5, (1, 1, 1, 1), cls=0, logit=2.0)
    raw["cls"][0, 5, 1] = 1.0
    boxes, scores = decode(raw)
    (single,) = postprocess(boxes, scores, conf=0.5)
    assert single["labels"].tolist() == [0]
    (multi,) = postprocess(boxes, scores, conf=0.5, multi_label=True)
    assert multi["labels"].tolist() == [0, 1]
    (none,) = postprocess(boxes, scores, conf=0.99)
    assert none["boxes"].shape == (0, 4) and none["labels"].dtype == torch.int64


def test_candidates_are_capped_before_nms():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(1, 50, 1) + torch.arange(50.0)[None, :, None] * 20
    scores = torch.linspace(0.1, 0.9, 50).reshape(1, 50, 1)
    (det,) = postprocess(boxes, scores, conf=0.0, max_candidates=5)
    assert len(det["scores"]) == 5 and det["scores"][0] == pytest.approx(0.9)


def test_a_box_per_class_makes_every_pair_above_conf_a_candidate():
    """Two-stage detectors (Faster R-CNN) give one box per proposal and class: boxes [B, N, K, 4]."""
    boxes = torch.zeros(1, 2, 3, 4)
    boxes[0, 0, 0] = torch.tensor([0.0, 0.0, 10.0, 10.0])
    boxes[0, 0, 2] = torch.tensor([30.0, 30.0, 50.0, 70.0])  # proposal 0's box for class 2 lies elsewhere
    boxes[0, 1, 0] = torch.tensor([1.0, 0.0, 11.0, 10.0])  # proposal 1's class-0 box duplicates proposal 0's
    boxes[0, 1, 1] = torch.tensor([60.0, 0.0, 90.0, 40.0])  # and runs past the 80-px wide input
    scores = torch.tensor([[[0.6, 0.0, 0.3], [0.5, 0.4, 0.0]]])
    (det,) = postprocess(boxes, scores, conf=0.2, iou=0.5, image_size=(80, 80))
    assert det["labels"].tolist() == [0, 1, 2]  # multi-label: proposal 0 is kept for classes 0 and 2
    torch.testing.assert_close(det["scores"], torch.tensor([0.6, 0.4, 0.3]))
    torch.testing.assert_close(det["boxes"], torch.tensor([[0.0, 0.0, 10.0, 10.0], [60.0, 0.0, 80.0, 40.0],
                                                           [30.0, 30.0, 50.0, 70.0]]))


def test_topk_decoding_keeps_overlaps_and_reports_a_box_per_class():
    """method "none" (set-prediction detectors): the best (box, class) pairs, nothing suppressed."""
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.5], [50.0, 50.0, 90.0, 70.0]]])
    scores = torch.tensor([[[0.9, 0.6], [0.8, 0.01], [0.002, 0.3]]])
    out = postprocess(boxes, scores, conf=0.05, max_det=3, method="none", image_size=(64, 80))[0]
    assert out["scores"].tolist() == pytest.approx([0.9, 0.8, 0.6])  # overlapping twins both kept
    assert out["labels"].tolist() == [0, 0, 1]  # query 0 reported under both of its classes
    assert torch.equal(out["boxes"][2], boxes[0, 0])
    out = postprocess(boxes, scores, conf=0.05, max_det=10, method="none", image_size=(64, 80))[0]
    assert len(out["scores"]) == 4 and torch.equal(out["boxes"][3], torch.tensor([50.0, 50.0, 80.0, 64.0]))  # clipped


@pytest.mark.parametrize("seed", range(30))
def test_one_image_fast_path_equals_postprocess(seed):
    """postprocess_one (NumPy confidence filter and NMS) == postprocess on the same image, exactly."""
    import numpy as np

    from rtdet.models.postprocess import postprocess_one

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 2500)), int(rng.integers(1, 90))
    xy = rng.uniform(-20, 330, (n, 2))
    boxes = torch.from_numpy(np.concatenate([xy, xy + rng.uniform(0, 80, (n, 2))], 1).astype(np.float32))
    scores = torch.from_numpy(rng.beta(0.3, 5, (n, k)).astype(np.float32))
    if seed % 3 == 0:
        scores[: n // 2, 0] = scores[: n // 2, -1]  # equal best classes: the first wins in both
    settings = {"conf": (0.001, 0.1, 0.25, 0.5)[seed % 4], "iou": (0.5, 0.7)[seed % 2],
                "method": ("nms", "agnostic", "soft")[seed % 3], "max_det": (5, 300)[seed % 2],
                "max_candidates": (50, 3000)[seed % 2], "multi_label": seed % 7 == 0, "image_size": (320, 320)}
    ref = postprocess(boxes[None], scores[None], **settings)[0]
    got = postprocess_one(boxes, scores, **settings)
    assert set(got) == set(ref)
    for key in ref:
        assert got[key].dtype == ref[key].dtype and torch.equal(got[key], ref[key]), key
