"""The class map inside the ONNX graph (``rtdet export --argmax``, segmentation models).

The graph takes ``images`` float32 ``[B, 3, S, S]`` and returns ``labels`` int64
``[B, S, S]``: the arg-max over classes of the model's ``logits`` in the input frame
(:func:`input_frame_logits`: logits on a coarser grid are first resampled bilinearly to the
input, as the segment task resamples them), so a deployment outside rtdet receives a class
map instead of ``K`` floats per pixel.
rtdet's backends run it too: the segment task maps ``labels`` to original pixels by
nearest neighbour (:func:`rtdet.tasks.segment.to_original`).

Checked like every export (:func:`check_argmax_parity`): ONNX Runtime's labels must equal
PyTorch's ``logits.argmax(1)`` at every pixel except near-ties, where PyTorch's two best
logits are closer than the logits' own export tolerance
(:meth:`rtdet.models.base.RtdetModel.parity_allowed`), so float rounding may pick either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtdet.deploy.images import sample_images, to_input


def input_frame_logits(model: nn.Module, images: Tensor) -> Tensor:
    """float [B, K, H, W]: ``model.forward_raw(images)[0]`` (logits on a grid spanning the input, ``[B, K, h, w]``)
    resampled bilinearly (align_corners=False) to the input's ``H x W`` when coarser."""
    logits = model.forward_raw(images)[0]
    if tuple(logits.shape[-2:]) != tuple(images.shape[-2:]):
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return logits


class ArgmaxOutputs(nn.Module):
    """``input_frame_logits(model, images).argmax(1)``: ``labels`` int64 [B, H, W]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # torch.onnx.export restores the wrapper's mode onto the model afterwards

    def forward(self, images: Tensor) -> Tensor:
        return input_frame_logits(self.model, images).argmax(1)


def export_onnx_argmax(fused: nn.Module, out: Path, imgsz: int, dynamic: bool, opset: int) -> None:
    """Trace :class:`ArgmaxOutputs` of the fused model into ``out`` (output ``labels``)."""
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "labels": {0: "batch", 1: "height", 2: "width"}}
    with torch.no_grad():
        torch.onnx.export(ArgmaxOutputs(fused), (torch.zeros(1, 3, imgsz, imgsz),), str(out), input_names=["images"],
                          output_names=["labels"], opset_version=opset, dynamic_axes=axes if dynamic else None,
                          do_constant_folding=True, dynamo=False)


def check_argmax_parity(fused: nn.Module, path: str | Path, imgsz: int, half: bool = False, batch: int = 1,
                        n: int = 2) -> dict[str, float]:
    """Compare ONNX Runtime's ``labels`` with PyTorch's arg-max on ``n`` real letterboxed images.

    Returns ``{"labels": share of pixels that differ}`` (all of them near-ties).

    Raises:
        rtdet.deploy.onnx.ExportError: a pixel differs where PyTorch's top-2 logits are further apart than
            the logits' tolerance.
    """
    import onnxruntime as ort

    from rtdet.deploy.onnx import ExportError

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = [to_input(im, imgsz)[0] for im in sample_images(max(n, batch), task=fused.task)]
    differ = total = 0
    for i in range(0, len(images) - batch + 1, batch):
        x = torch.cat(images[i:i + batch])
        with torch.no_grad():
            logits = input_frame_logits(fused, x).numpy()
        (got,) = sess.run(["labels"], {"images": x.numpy()})
        want = logits.argmax(1)
        top2 = np.sort(logits, axis=1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) <= 2 * fused.parity_allowed("logits", top2[:, 1], imgsz, half)
        wrong = (got != want) & ~tie
        if got.shape != want.shape or wrong.any():
            raise ExportError(f"{path}: in-graph argmax differs from PyTorch's at {int(wrong.sum())} pixels that are "
                              f"not near-ties (labels shape {got.shape}, expected {want.shape})")
        differ, total = differ + int((got != want).sum()), total + want.size
    return {"labels": differ / max(total, 1)}
