"""Non-maximum suppression: class-aware, class-agnostic, Soft-NMS and DIoU-NMS.

Every function takes ``boxes (Tensor[N, 4], xyxy)``, ``scores (Tensor[N])`` and
``classes (Tensor[N], int)`` and returns the indices it keeps, sorted by score
(highest first). Equal scores are ordered by index (lower first), so results do
not depend on the sort's stability. :func:`non_max_suppression` picks a method
by name and applies the ``max_det`` cap.

Hard NMS is torchvision's kernel. DIoU-NMS and Soft-NMS are not in torchvision;
they run a greedy loop over a precomputed pairwise matrix in NumPy, which is
fast for the few thousand candidates left after the confidence filter.

:func:`nms_numpy` is hard NMS for the few dozen candidates of one video frame, in
NumPy: there, torch's per-call overhead (a stable sort, the rank tensor,
torchvision's offsets and kernel: ~80 us for 8 boxes) costs more than the
suppression itself. It repeats torchvision's float32 arithmetic in the same order
(including ``batched_nms``'s per-class coordinate offsets) and is tested equal to
:func:`batched_nms` / :func:`agnostic_nms`, ties included.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision import ops

from rtdet.boxes import box_iou

METHODS = ("nms", "agnostic", "soft", "diou")


def _score_order(scores: Tensor) -> Tensor:
    """Indices sorting ``scores`` descending, ties by lower index first."""
    return torch.sort(scores, descending=True, stable=True).indices


def _distinct_scores(order: Tensor) -> Tensor:
    """Strictly decreasing stand-in scores for ``order`` so torchvision's sort cannot reorder ties."""
    ranks = torch.empty(order.numel(), dtype=torch.float32, device=order.device)
    ranks[order] = torch.arange(order.numel(), 0, -1, dtype=torch.float32, device=order.device)
    return ranks


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_thresh: float = 0.5) -> Tensor:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Returns:
        Tensor[K] int64 indices into the inputs, sorted by score.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    ranks = _distinct_scores(_score_order(scores))
    return ops.batched_nms(boxes.float(), ranks, classes, iou_thresh)


def agnostic_nms(boxes: Tensor, scores: Tensor, classes: Tensor | None = None, iou_thresh: float = 0.5) -> Tensor:
    """NMS across all classes at once (``classes`` is ignored). Returns Tensor[K] int64, sorted by score."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    ranks = _distinct_scores(_score_order(scores))
    return ops.nms(boxes.float(), ranks, iou_thresh)


NUMPY_NMS_MAX = 1000  # candidates up to which nms_numpy applies (torchvision's own switch to per-class NMS)


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None, iou_thresh: float) -> np.ndarray:
    """:func:`batched_nms` (``classes`` given) or :func:`agnostic_nms` (None) on NumPy arrays, equal to them.

    Args:
        boxes: float32 [N, 4] xyxy, ``N <= NUMPY_NMS_MAX``. scores: float32 [N]. classes: int [N] or None.

    Returns:
        int64 [K] indices into the inputs, sorted by score (ties: lower index first).
    """
    if len(boxes) > NUMPY_NMS_MAX:
        raise ValueError(f"nms_numpy takes at most {NUMPY_NMS_MAX} boxes, got {len(boxes)}")
    order = np.argsort(-scores, kind="stable")  # == _score_order: descending, ties by index
    if len(order) < 2:
        return order.astype(np.int64)
    b = boxes[order].astype(np.float32, copy=False)
    if classes is not None and len(b):  # torchvision's coordinate trick: classes pushed apart, in float32
        offsets = classes[order].astype(np.float32) * (b.max() + np.float32(1))
        b = b + offsets[:, None]
    x1, y1, x2, y2 = (np.ascontiguousarray(c) for c in b.T)
    areas = (x2 - x1) * (y2 - y1)
    w = np.maximum(np.float32(0), np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1))
    h = np.maximum(np.float32(0), np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1))
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: 0/0, never above the threshold
        over = (inter / (areas[:, None] + areas - inter)).astype(np.float64) > iou_thresh  # float vs double, as in C++
    suppressed = np.zeros(len(b), bool)
    keep = []
    for i in range(len(b)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[np.asarray(keep, np.int64)]


def _same_class(classes: Tensor, agnostic: bool) -> np.ndarray:
    c = classes.cpu().numpy()
    return np.ones((len(c), len(c)), dtype=bool) if agnostic else c[:, None] == c[None, :]


def diou_nms(
    boxes: Tensor, scores: Tensor, classes: Tensor, iou_thresh: float = 0.5, agnostic: bool = False
) -> Tensor:
    """Greedy NMS that suppresses by DIoU (IoU minus normalized centre distance) instead of IoU.

    Boxes that overlap but whose centres lie apart survive more often than with
    plain IoU, which helps with crowded objects.

    Returns:
        Tensor[K] int64 indices, sorted by score.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = _score_order(scores)
    b = boxes[order].double()
    over = (box_iou(b, b, "diou") > iou_thresh).cpu().numpy() & _same_class(classes[order], agnostic)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    iou_thresh: float = 0.3,
    sigma: float = 0.5,
    decay: str = "gaussian",
    score_thresh: float = 0.001,
    agnostic: bool = False,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017): overlapping boxes get lower scores instead of being removed.

    At each step the highest-scoring remaining box is kept and every other box
    of the same class is decayed by its IoU ``o`` with it:
    ``linear``: ``s *= 1 - o`` when ``o > iou_thresh``; ``gaussian``: ``s *= exp(-o**2 / sigma)``.
    Boxes whose score falls below ``score_thresh`` are dropped.

    Returns:
        keep (Tensor[K] int64): indices, in order of their decayed score (highest first).
        new_scores (Tensor[K]): the decayed scores of the kept boxes.
    """
    if decay not in ("linear", "gaussian"):
        raise ValueError(f"soft_nms decay must be 'linear' or 'gaussian', got {decay!r}")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device), scores[:0]
    iou = box_iou(boxes.double(), boxes.double()).cpu().numpy()
    iou[~_same_class(classes, agnostic)] = 0.0
    s = scores.detach().double().cpu().numpy().copy()
    alive = s >= score_thresh
    keep, kept_scores = [], []
    while alive.any():
        # argmax over alive boxes; ties go to the lowest index
        i = int(np.flatnonzero(alive)[np.argmax(s[alive])])
        keep.append(i)
        kept_scores.append(s[i])
        alive[i] = False
        o = iou[i]
        if decay == "linear":
            factor = np.where(o > iou_thresh, 1.0 - o, 1.0)
        else:
            factor = np.exp(-(o**2) / sigma)
        s = np.where(alive, s * factor, s)
        alive &= s >= score_thresh
    keep_t = torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)
    return keep_t, torch.as_tensor(kept_scores, dtype=scores.dtype, device=scores.device)


def non_max_suppression(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    method: str = "nms",
    iou_thresh: float = 0.5,
    max_det: int = 300,
    **soft_kwargs,
) -> tuple[Tensor, Tensor]:
    """Suppress duplicates with ``method`` in ``METHODS`` and keep at most ``max_det`` boxes.

    Args:
        boxes (Tensor[N, 4]): xyxy. scores (Tensor[N]). classes (Tensor[N] int).
        soft_kwargs: ``sigma``, ``decay``, ``score_thresh`` for Soft-NMS.

    Returns:
        keep (Tensor[K] int64, K <= max_det), sorted by score; scores (Tensor[K]) of
        the kept boxes (decayed for Soft-NMS, unchanged otherwise).
    """
    if method == "nms":
        keep = batched_nms(boxes, scores, classes, iou_thresh)
    elif method == "agnostic":
        keep = agnostic_nms(boxes, scores, classes, iou_thresh)
    elif method == "diou":
        keep = diou_nms(boxes, scores, classes, iou_thresh)
    elif method == "soft":
        keep, new_scores = soft_nms(boxes, scores, classes, iou_thresh, **soft_kwargs)
        return keep[:max_det], new_scores[:max_det]
    else:
        raise ValueError(f"unknown NMS method {method!r}; expected one of {METHODS}")
    keep = keep[:max_det]
    return keep, scores[keep]
