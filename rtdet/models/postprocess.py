"""Decoding: raw head outputs -> boxes and scores -> confidence filter -> NMS -> ``max_det``.

Set-prediction detectors (the DETR family) need no suppression: ``method="none"`` keeps the
``max_det`` best (box, class) pairs above ``conf`` (:func:`topk_postprocess`).

:func:`decode` turns the head's logits into xyxy boxes in input pixels and
per-class probabilities; it is pure tensor code and is what an exported ONNX
graph computes (see :meth:`rtdet.models.yolo.YOLO.forward_raw`).
:func:`postprocess` filters and suppresses, per image, using
:func:`rtdet.nms.non_max_suppression`; it runs the same on the outputs of the
PyTorch model or of ONNX Runtime. :func:`postprocess_one` is the same for one
image with the confidence filter in NumPy first, so that only the candidates above
``conf`` go on (deployment's per-frame path; equal to :func:`postprocess`, tested).
Mapping back to the original image is the detect task's :func:`rtdet.tasks.detect.to_original`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rtdet.boxes import clip_boxes
from rtdet.losses.dfl import dfl_expectation, distance_to_box
from rtdet.nms import NUMPY_NMS_MAX, nms_numpy, non_max_suppression


def decode(raw: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Boxes and class probabilities from the head's raw outputs.

    Args:
        raw: :meth:`rtdet.models.heads.DetectHead.forward` output (``cls [B, N, K]``,
            ``reg [B, N, 4, R]``, ``anchors [N, 2]``, ``strides [N, 1]``).

    Returns:
        boxes (Tensor[B, N, 4]): xyxy in input pixels.
        scores (Tensor[B, N, K]): sigmoid class probabilities. Both float32.
    """
    # float32 even under bf16/fp16: bf16 cannot place a box edge at x=300 closer than 2 px
    dist = dfl_expectation(raw["reg"].float()) * raw["strides"].float()
    return distance_to_box(dist, raw["anchors"].float()), raw["cls"].float().sigmoid()


def _candidates(scores: Tensor, conf: float, multi_label: bool, max_candidates: int) -> tuple[Tensor, Tensor, Tensor]:
    """(box index, class, score) of the pairs above ``conf``; at most ``max_candidates``, best first."""
    if multi_label:
        idx, cls = (scores > conf).nonzero(as_tuple=True)
        sc = scores[idx, cls]
    else:
        sc, cls = scores.max(1)
        idx = (sc > conf).nonzero(as_tuple=True)[0]
        sc, cls = sc[idx], cls[idx]
    if sc.numel() > max_candidates:
        top = sc.topk(max_candidates).indices
        idx, cls, sc = idx[top], cls[top], sc[top]
    return idx, cls, sc


def postprocess(
    boxes: Tensor, scores: Tensor, conf: float = 0.001, iou: float = 0.7, method: str = "nms",
    max_det: int = 300, multi_label: bool = False, max_candidates: int = 3000,
    image_size: tuple[int, int] | None = None,
) -> list[dict[str, Tensor]]:
    """Per-image detections from decoded outputs.

    Args:
        boxes (Tensor[B, N, 4] or Tensor[B, N, K, 4]): xyxy in input pixels, one box per location, or one per
            location and class (two-stage detectors: every (location, class) pair above ``conf`` is then a
            candidate, whatever ``multi_label`` says, as in torchvision's RoI heads).
        scores (Tensor[B, N, K]): probabilities.
        conf: keep (box, class) pairs with score above this.
        iou, method: NMS threshold and method (``nms``, ``agnostic``, ``soft``, ``diou``; ``none``: no NMS, see
            :func:`topk_postprocess`, which takes ``boxes [B, N, 4]`` only).
        max_det: detections kept per image after NMS.
        multi_label: a box may be reported for every class above ``conf`` (helps mAP a
            little); otherwise only for its best class (faster, what deployment wants).
        max_candidates: pairs entering NMS per image, highest scores first (bounds NMS time).
        image_size: ``(height, width)`` to clip boxes to, if given.

    Returns:
        B dicts: ``boxes`` float [D, 4] xyxy input pixels, ``scores`` float [D],
        ``labels`` int64 [D]; sorted by score, ``D <= max_det``.
    """
    if method == "none":
        return topk_postprocess(boxes, scores, conf, max_det, image_size)
    out = []
    per_class = boxes.dim() == 4
    for b, s in zip(boxes, scores):
        idx, cls, sc = _candidates(s.float(), conf, multi_label or per_class, max_candidates)
        bx = (b[idx, cls] if per_class else b[idx]).float()
        if image_size is not None:
            bx = clip_boxes(bx, image_size)
        keep, kept_scores = non_max_suppression(bx, sc, cls, method, iou, max_det)
        out.append({"boxes": bx[keep], "scores": kept_scores, "labels": cls[keep].long()})
    return out


def postprocess_one(
    boxes: Tensor, scores: Tensor, conf: float = 0.001, iou: float = 0.7, method: str = "nms",
    max_det: int = 300, multi_label: bool = False, max_candidates: int = 3000,
    image_size: tuple[int, int] | None = None,
) -> dict[str, Tensor]:
    """One image's detections: ``postprocess(boxes[None], scores[None], ...)[0]``, faster.

    Args:
        boxes (Tensor[N, 4]): xyxy in input pixels. scores (Tensor[N, K]): probabilities (CPU, float32).
        The rest: as :func:`postprocess`.

    The scores are thresholded once as a flat NumPy array and only the boxes with a class above
    ``conf`` are looked at further (their best class, clipping, NMS in NumPy: :func:`rtdet.nms.nms_numpy`);
    at 320 px that is a few dozen of 2,100 boxes, and the per-call overhead of torch would cost more
    than the work. The cases this does not cover (per-class boxes, ``multi_label``, Soft-/DIoU-NMS,
    set-prediction decoding, more candidates than ``max_candidates`` or
    :data:`rtdet.nms.NUMPY_NMS_MAX`) go to :func:`postprocess` itself.
    """
    fast = (boxes.dim() == 2 and not multi_label and method in ("nms", "agnostic") and not boxes.is_cuda
            and scores.dtype == boxes.dtype == torch.float32)
    if fast:
        s = np.ascontiguousarray(scores.numpy())
        hits = np.flatnonzero(s.reshape(-1) > np.float32(conf))  # (box, class) pairs above conf, flat
        if not len(hits):  # the common frame with nothing in it: no further array work
            return {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        hits //= s.shape[1]  # their boxes, ascending
        rows = hits[np.flatnonzero(np.diff(hits, prepend=-1))]  # each box once
        fast = len(rows) <= min(max_candidates, NUMPY_NMS_MAX)
    if not fast:
        return postprocess(boxes[None], scores[None], conf, iou, method, max_det, multi_label, max_candidates,
                           image_size)[0]
    best = s[rows]
    cls = best.argmax(1)  # the first of equal maxima, as torch's max
    sc = best[np.arange(len(rows)), cls]
    bx = boxes.numpy()[rows]
    if image_size is not None:  # == clip_boxes: torchvision's clamp(0, side) in float32
        limits = np.array([image_size[1], image_size[0]] * 2, np.float32)
        np.minimum(np.maximum(bx, np.float32(0), out=bx), limits, out=bx)
    keep = nms_numpy(bx, sc, cls if method == "nms" else None, iou)[:max_det]
    return {"boxes": torch.from_numpy(bx[keep]), "scores": torch.from_numpy(sc[keep]),
            "labels": torch.from_numpy(cls[keep].astype(np.int64))}


def topk_postprocess(boxes: Tensor, scores: Tensor, conf: float = 0.001, max_det: int = 300,
                     image_size: tuple[int, int] | None = None) -> list[dict[str, Tensor]]:
    """Per-image detections without suppression: the ``max_det`` best (box, class) pairs, those above ``conf``.

    The decoding of set-prediction detectors (DETR, RT-DETR): each query predicts one object, so
    no two queries need suppressing; a query may be reported for several classes.

    Args:
        boxes (Tensor[B, N, 4]): xyxy in input pixels. scores (Tensor[B, N, K]): probabilities.
        image_size: ``(height, width)`` to clip boxes to, if given.

    Returns:
        B dicts: ``boxes`` float [D, 4], ``scores`` float [D], ``labels`` int64 [D]; sorted by score,
        ``D <= max_det``.
    """
    k = scores.shape[-1]
    top, index = scores.float().flatten(1).topk(min(max_det, scores.shape[1] * k), dim=1)
    out = []
    for b, s, i in zip(boxes, top, index):
        keep = s > conf
        bx = b[torch.div(i[keep], k, rounding_mode="floor")].float()
        if image_size is not None:
            bx = clip_boxes(bx, image_size)
        out.append({"boxes": bx, "scores": s[keep], "labels": (i[keep] % k).long()})
    return out
