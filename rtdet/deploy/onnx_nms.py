"""NMS inside the ONNX graph (``rtdet export --nms``): class-aware NMS with ONNX's ``NonMaxSuppression``.

The graph takes ``images`` float32 ``[1, 3, S, S]`` and returns ``detections``
float32 ``[D, 6]`` = ``(x1, y1, x2, y2, score, class)`` in input pixels, best
first, ``D <= max_det``. It matches :func:`rtdet.models.postprocess.postprocess`
with ``method="nms", multi_label=True`` (ONNX NMS works per class, so a box may
be kept for several classes), which is what :func:`check_nms_parity` compares.
Batch 1 only: ``NonMaxSuppression``'s per-batch output would need a padded layout.

Known limit of the check: when candidate scores agree to ~1e-8 (a random model on
flat letterbox padding does this), float rounding in ONNX Runtime vs PyTorch decides
which of two boxes survives; the check then fails loudly rather than passing silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rtdet.deploy.images import sample_images, to_input
from rtdet.models.postprocess import postprocess


class _OnnxNms(torch.autograd.Function):
    """Traced as ONNX ``NonMaxSuppression`` (boxes ``[B, N, 4]``, scores ``[B, C, N]``); in PyTorch returns the
    same ``[M, 3]`` (batch, class, box) indices."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_out: int, iou: float, conf: float) -> Tensor:
        from torchvision.ops import nms

        sel = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c]
                idx = (s > conf).nonzero(as_tuple=True)[0]
                keep = idx[nms(boxes[b, idx], s[idx], iou)][:max_out]
                sel.append(torch.stack([torch.full_like(keep, b), torch.full_like(keep, c), keep], 1))
        return torch.cat(sel) if sel else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_out: int, iou: float, conf: float):
        def const(v, dtype):
            return g.op("Constant", value_t=torch.tensor([v], dtype=dtype))

        return g.op("NonMaxSuppression", boxes, scores, const(max_out, torch.int64), const(iou, torch.float32),
                    const(conf, torch.float32))


class NmsOutputs(nn.Module):
    """``model.forward_raw`` + clipping + class-aware NMS + top ``max_det``: ``[D, 6]`` detections (batch 1).

    Boxes ``[1, N, 4]`` (one per location) go to ONNX NMS as one batch with K classes; boxes
    ``[1, N, K, 4]`` (one per location and class: Faster R-CNN) as K batches of one class each.
    """

    def __init__(self, model: nn.Module, imgsz: int, conf: float = 0.25, iou: float = 0.7, max_det: int = 300) -> None:
        super().__init__()
        self.model, self.imgsz, self.conf, self.iou, self.max_det = model, imgsz, conf, iou, max_det

    def forward(self, images: Tensor) -> Tensor:
        boxes, scores = self.model.forward_raw(images)
        boxes = boxes.clamp(0, self.imgsz)
        if boxes.dim() == 4:
            sel = _OnnxNms.apply(boxes[0].transpose(0, 1), scores[0].t()[:, None], self.max_det, self.iou, self.conf)
            c, i = sel[:, 0], sel[:, 2]
            det_boxes, det_scores = boxes[0, i, c], scores[0, i, c]
        else:
            sel = _OnnxNms.apply(boxes, scores.transpose(1, 2), self.max_det, self.iou, self.conf)
            c, i = sel[:, 1], sel[:, 2]
            det_boxes, det_scores = boxes[0, i], scores[0, i, c]
        order = det_scores.argsort(descending=True)[: self.max_det]
        return torch.cat([det_boxes[order], det_scores[order, None], c[order, None].float()], 1)


def export_onnx_nms(fused: nn.Module, out: Path, imgsz: int, conf: float, iou: float, max_det: int) -> None:
    """Write the :class:`NmsOutputs` graph of an already fused model to ``out``."""
    x = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        torch.onnx.export(NmsOutputs(fused, imgsz, conf, iou, max_det).eval(), (x,), str(out), input_names=["images"],
                          output_names=["detections"], opset_version=17, dynamic_axes={"detections": {0: "dets"}},
                          dynamo=False)


def check_nms_parity(fused: nn.Module, path: str | Path, imgsz: int, conf: float, iou: float, max_det: int,
                     n: int = 2, atol: float = 1e-3) -> int:
    """ONNX Runtime's in-graph detections vs :func:`postprocess` on ``n`` real images; returns detections compared.

    Raises:
        rtdet.deploy.onnx.ExportError: when the detections differ (count, class, or boxes/scores beyond ``atol``).
    """
    import onnxruntime as ort

    from rtdet.deploy.onnx import ExportError

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    compared = 0
    for image in sample_images(n):
        x = to_input(image, imgsz)[0]
        (got,) = sess.run(["detections"], {"images": x.numpy()})
        with torch.no_grad():
            raw_boxes, raw_scores = fused.forward_raw(x)
            ref = postprocess(raw_boxes, raw_scores, conf=conf, iou=iou, max_det=max_det, multi_label=True,
                              max_candidates=10**9, image_size=(imgsz, imgsz))[0]
        want = torch.cat([ref["boxes"], ref["scores"][:, None], ref["labels"][:, None].float()], 1).numpy()
        if got.shape != want.shape or not _same_rows(got, want, atol, raw_scores[0].numpy()):
            raise ExportError(f"{path}: in-graph NMS gives {len(got)} detections, postprocess {len(want)} "
                              f"(or boxes/scores differ beyond {atol})")
        compared += len(want)
    return compared


def _same_rows(a: np.ndarray, b: np.ndarray, atol: float, scores: np.ndarray) -> bool:
    """Whether rows of ``a`` and ``b`` (``[D, 6]``) pair up one to one within ``atol``, in any order.

    Two rows with the same class and score but different boxes also pair when that
    score is tied among the candidates (``scores [N, K]``): identical anchors, e.g. on
    the flat letterbox padding, and each NMS implementation breaks ties its own way.
    """
    free = np.ones(len(b), bool)
    for row in a:
        close = free & np.all(np.abs(b - row) <= atol, axis=1)
        if not close.any():
            same = free & (b[:, 5] == row[5]) & (np.abs(b[:, 4] - row[4]) <= atol)
            tied = (np.abs(scores[:, int(row[5])] - row[4]) <= 1e-6).sum() > 1
            if not (same.any() and tied):
                return False
            close = same
        free[np.argmax(close)] = False
    return True
