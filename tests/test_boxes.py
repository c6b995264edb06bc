"""rtdet.boxes against plain looped references and torchvision."""

import math

import pytest
import torch
from torchvision import ops

from rtdet.boxes import aligned_iou, box_area, box_convert, box_iou, clip_boxes, valid_boxes

KINDS = ("iou", "giou", "diou", "ciou")


def ref_iou(a, b, kind):
    """One pair, plain Python floats, the definitions written out."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    wa, ha, wb, hb = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = wa * ha + wb * hb - inter
    iou = inter / union if union > 0 else 0.0
    if kind == "iou":
        return iou
    cw = max(ax2, bx2) - min(ax1, bx1)
    ch = max(ay2, by2) - min(ay1, by1)
    if kind == "giou":
        hull = cw * ch
        return iou - ((hull - union) / hull if hull > 0 else 0.0)
    diag = cw * cw + ch * ch
    rho2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    diou = iou - (rho2 / diag if diag > 0 else 0.0)
    if kind == "diou":
        return diou
    atan_b = math.atan(wb / hb) if hb > 0 else (math.pi / 2 if wb > 0 else 0.0)
    atan_a = math.atan(wa / ha) if ha > 0 else (math.pi / 2 if wa > 0 else 0.0)
    v = 4 / math.pi**2 * (atan_b - atan_a) ** 2
    alpha = v / (1 - iou + v) if (1 - iou + v) > 0 else 0.0
    return diou - alpha * v


def random_boxes(n, seed, dtype, degenerate=True):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
    if degenerate:  # zero width, zero height, points, and exact duplicates
        wh[: n // 8, 0] = 0
        wh[n // 8 : n // 4, 1] = 0
        wh[n // 4 : n // 4 + 3] = 0
        xy[-2:], wh[-2:] = xy[:2], wh[:2]
    return torch.cat([xy, xy + wh], 1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_pairwise_matches_loop(kind, dtype):
    a, b = random_boxes(40, 0, dtype), random_boxes(30, 1, dtype)
    b[:5] = b[:5] + 1000  # far away: no overlap at all
    got = box_iou(a, b, kind)
    assert got.shape == (40, 30) and got.dtype == dtype
    want = torch.tensor([[ref_iou(x.tolist(), y.tolist(), kind) for y in b.double()] for x in a.double()], dtype=torch.float64)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_aligned_matches_loop(kind, dtype):
    a, b = random_boxes(64, 2, dtype), random_boxes(64, 3, dtype)
    b[30:34] = a[30:34]  # identical non-degenerate pairs
    got = aligned_iou(a, b, kind)
    want = torch.tensor([ref_iou(x.tolist(), y.tolist(), kind) for x, y in zip(a.double(), b.double())], dtype=torch.float64)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=0)
    assert torch.allclose(got[30:34], torch.ones(4, dtype=dtype))


@pytest.mark.parametrize(
    "kind,tv",
    [
        ("iou", ops.box_iou),
        ("giou", ops.generalized_box_iou),
        ("diou", ops.distance_box_iou),
        ("ciou", ops.complete_box_iou),
    ],
)
def test_pairwise_agrees_with_torchvision_on_ordinary_boxes(kind, tv):
    a, b = random_boxes(50, 4, torch.float64, False), random_boxes(20, 5, torch.float64, False)
    # torchvision adds eps=1e-7 in DIoU/CIoU denominators, hence the tolerance
    torch.testing.assert_close(box_iou(a, b, kind), tv(a, b), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_aligned_is_differentiable_everywhere(kind):
    a = random_boxes(32, 6, torch.float64).requires_grad_()
    b = random_boxes(32, 7, torch.float64)
    b[:4] = a[:4].detach()
    aligned_iou(a, b, kind).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_gradient_matches_finite_differences():
    a = random_boxes(6, 8, torch.float64, False).requires_grad_()
    b = random_boxes(6, 9, torch.float64, False)
    assert torch.autograd.gradcheck(lambda x: aligned_iou(x, b, "giou"), (a,))


FMTS = ("xyxy", "xywh", "cxcywh", "xyxyn", "xywhn", "cxcywhn")


def ref_convert(box, fin, fout, h, w):
    x1, y1, x2, y2 = box
    if fin.endswith("n"):
        x1, y1, x2, y2 = x1 * w, y1 * h, x2 * w, y2 * h
    base = fin.rstrip("n")
    if base == "xywh":
        x1, y1, x2, y2 = x1, y1, x1 + x2, y1 + y2
    elif base == "cxcywh":
        x1, y1, x2, y2 = x1 - x2 / 2, y1 - y2 / 2, x1 + x2 / 2, y1 + y2 / 2
    out = {"xyxy": [x1, y1, x2, y2], "xywh": [x1, y1, x2 - x1, y2 - y1],
           "cxcywh": [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]}[fout.rstrip("n")]
    if fout.endswith("n"):
        out = [out[0] / w, out[1] / h, out[2] / w, out[3] / h]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fin", FMTS)
@pytest.mark.parametrize("fout", FMTS)
def test_box_convert_matches_loop_and_round_trips(fin, fout, dtype):
    size = (240, 320)
    boxes = random_boxes(20, 10, torch.float64)
    src = torch.tensor([ref_convert(b.tolist(), "xyxy", fin, *size) for b in boxes], dtype=dtype)
    got = box_convert(src, fin, fout, size)
    want = torch.tensor([ref_convert(b.tolist(), fin, fout, *size) for b in src.double()], dtype=torch.float64)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=1e-6)
    torch.testing.assert_close(box_convert(got, fout, fin, size), src, atol=tol, rtol=1e-6)


def test_box_convert_errors():
    with pytest.raises(ValueError, match="image_size"):
        box_convert(torch.zeros(1, 4), "xyxy", "xywhn")
    with pytest.raises(ValueError, match="unknown box format"):
        box_convert(torch.zeros(1, 4), "xyxy", "yxyx")


def test_area_clip_valid():
    boxes = torch.tensor([[-5.0, 2, 30, 50], [10, 10, 10, 20], [0, 0, 4, 4]])
    assert box_area(boxes).tolist() == [35 * 48, 0, 16]
    assert clip_boxes(boxes, (40, 20)).tolist() == [[0, 2, 20, 40], [10, 10, 10, 20], [0, 0, 4, 4]]
    assert valid_boxes(boxes).tolist() == [True, False, True]
