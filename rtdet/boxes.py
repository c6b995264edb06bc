"""Box formats and the IoU family.

Inside rtdet every box is an absolute ``xyxy`` float tensor: ``(x1, y1, x2, y2)``
with ``x1 <= x2`` and ``y1 <= y2`` in pixels. Other formats exist only at the
edges (file formats, export) and go through :func:`box_convert`.

Formats: ``xyxy``, ``xywh`` (top-left corner, width, height), ``cxcywh`` (centre,
width, height), and their normalized variants ``xyxyn``, ``xywhn``, ``cxcywhn``
whose coordinates are fractions of the image width and height.

The IoU family (IoU, GIoU, DIoU, CIoU) comes in two shapes: ``box_iou(a, b)`` for
all ``N x M`` pairs and ``aligned_iou(a, b)`` for ``N`` matched pairs (losses).
torchvision has the pairwise versions, but they return NaN whenever a pair has
zero union (two zero-area boxes), which poisons NMS and losses alike; here every
zero denominator has a defined value (documented per function) and the
functions stay differentiable. Tests compare them with torchvision on ordinary
boxes and with a looped reference on degenerate ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision import ops

FORMATS = ("xyxy", "xywh", "cxcywh", "xyxyn", "xywhn", "cxcywhn")
IOU_KINDS = ("iou", "giou", "diou", "ciou")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str, image_size: tuple[int, int] | None = None) -> Tensor:
    """Convert boxes between formats.

    Args:
        boxes (Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt, out_fmt: one of ``FORMATS``.
        image_size: ``(height, width)`` in pixels (ints, or 0-dim tensors: the sizes of a traced graph's
            input); required when either format is normalized.

    Returns:
        Tensor[..., 4] in ``out_fmt``, same dtype as ``boxes`` (floating).
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}")
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    scale = None
    if in_fmt.endswith("n") or out_fmt.endswith("n"):
        if image_size is None:
            raise ValueError(f"box_convert({in_fmt!r} -> {out_fmt!r}) needs image_size=(height, width)")
        h, w = image_size
        # sizes read from a tensor's shape while tracing an export are tensors: keep them symbolic
        scale = torch.stack([w, h, w, h]).to(boxes) if torch.is_tensor(h) else boxes.new_tensor([w, h, w, h])
    if in_fmt.endswith("n"):
        boxes = boxes * scale
    src, dst = in_fmt.rstrip("n"), out_fmt.rstrip("n")
    if src != dst:
        shape = boxes.shape
        boxes = ops.box_convert(boxes.reshape(-1, 4), src, dst).reshape(shape)
    if out_fmt.endswith("n"):
        boxes = boxes / scale
    return boxes


def unletterbox(boxes, letterbox: tuple[float, float, float], orig_size: tuple[int, int] | None = None):
    """Map xyxy boxes (Tensor or ndarray ``[..., 4]``) from a letterboxed frame back to original pixels.

    ``letterbox = (scale, pad_x, pad_y)`` as in a target dict: ``x_orig = (x - pad_x) / scale``.
    With ``orig_size = (height, width)`` the result is clipped to the image. NumPy input
    gives float64 NumPy output; tensors keep their dtype and device.
    """
    s, px, py = (float(v) for v in letterbox)
    pad = [px, py, px, py]
    if isinstance(boxes, Tensor):
        out = (boxes - boxes.new_tensor(pad)) / s
        return clip_boxes(out, orig_size) if orig_size is not None else out
    import numpy as np

    out = (np.asarray(boxes, np.float64) - pad) / s
    if orig_size is not None:
        h, w = orig_size
        out[..., 0::2] = out[..., 0::2].clip(0, w)
        out[..., 1::2] = out[..., 1::2].clip(0, h)
    return out


def box_area(boxes: Tensor) -> Tensor:
    """Areas of xyxy boxes: Tensor[N, 4] -> Tensor[N]."""
    return ops.box_area(boxes)


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip xyxy boxes (Tensor[..., 4]) to ``image_size = (height, width)``."""
    return ops.clip_boxes_to_image(boxes, image_size)


def valid_boxes(boxes: Tensor, min_size: float = 1e-3) -> Tensor:
    """Mask (bool Tensor[N]) of xyxy boxes whose width and height both exceed ``min_size``."""
    return ((boxes[..., 2] - boxes[..., 0]) > min_size) & ((boxes[..., 3] - boxes[..., 1]) > min_size)


def _safe_div(num: Tensor, den: Tensor, zero_value: float = 0.0) -> Tensor:
    """``num / den`` where ``den > 0``, else ``zero_value``; gradients stay finite."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), zero_value)


def _iou_family(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """IoU of broadcastable xyxy boxes ``a[..., 4]`` and ``b[..., 4]``; returns Tensor[...]."""
    if kind not in IOU_KINDS:
        raise ValueError(f"unknown IoU kind {kind!r}; expected one of {IOU_KINDS}")
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    wa, ha, wb, hb = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    inter = (torch.min(ax2, bx2) - torch.max(ax1, bx1)).clamp(min=0) * (
        torch.min(ay2, by2) - torch.max(ay1, by1)
    ).clamp(min=0)
    union = wa * ha + wb * hb - inter
    iou = _safe_div(inter, union)  # zero union (two zero-area boxes): IoU 0
    if kind == "iou":
        return iou
    cw = torch.max(ax2, bx2) - torch.min(ax1, bx1)  # enclosing box
    ch = torch.max(ay2, by2) - torch.min(ay1, by1)
    if kind == "giou":
        hull = cw * ch
        return iou - _safe_div(hull - union, hull)  # zero hull area: no penalty
    diag = cw**2 + ch**2
    centre = ((ax1 + ax2 - bx1 - bx2) ** 2 + (ay1 + ay2 - by1 - by2) ** 2) / 4
    diou = iou - _safe_div(centre, diag)  # coincident points: no penalty
    if kind == "diou":
        return diou
    tiny = torch.finfo(a.dtype).tiny
    v = (4 / math.pi**2) * (torch.atan(wb / hb.clamp(min=tiny)) - torch.atan(wa / ha.clamp(min=tiny))) ** 2
    with torch.no_grad():  # the trade-off weight is a constant in CIoU's gradient
        alpha = _safe_div(v, 1 - iou + v)
    return diou - alpha * v


def box_iou(a: Tensor, b: Tensor, kind: str = "iou") -> Tensor:
    """Pairwise IoU-family values of two sets of xyxy boxes.

    Args:
        a (Tensor[N, 4]), b (Tensor[M, 4]): xyxy boxes, ``x1 <= x2``, ``y1 <= y2``.
        kind: ``iou``, ``giou``, ``diou`` or ``ciou``.

    Returns:
        Tensor[N, M]. Zero union gives IoU 0; a zero-area enclosing box gives no
        GIoU penalty; coincident centres of zero-size boxes give no DIoU penalty.
    """
    return _iou_family(a[:, None, :], b[None, :, :], kind)


def aligned_iou(a: Tensor, b: Tensor, kind: str = "iou") -> Tensor:
    """IoU-family values of matched pairs: ``a[i]`` with ``b[i]``.

    Args:
        a, b (Tensor[N, 4]): xyxy boxes.
        kind: ``iou``, ``giou``, ``diou`` or ``ciou``.

    Returns:
        Tensor[N]; differentiable, with the same zero-denominator rules as :func:`box_iou`.
    """
    if a.shape != b.shape:
        raise ValueError(f"aligned_iou needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return _iou_family(a, b, kind)
