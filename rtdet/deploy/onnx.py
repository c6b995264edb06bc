"""ONNX export of a YOLO detector, checked against PyTorch after every export.

The graph is :class:`rtdet.models.yolo.RawOutputs` of the Conv+BN-fused model:
input ``images`` float32 ``[B, 3, H, W]`` in ``[0, 1]``; outputs ``boxes``
float32 ``[B, N, 4]`` (xyxy, input pixels) and ``scores`` float32 ``[B, N, K]``
(probabilities). NMS stays outside (:func:`rtdet.models.postprocess.postprocess`)
so ONNX Runtime and PyTorch share the same decoding code.

Simplification without onnxsim: the exporter folds constants, then ONNX Runtime's
*basic* optimizations (provider-independent: constant folding of the anchor grid,
Identity and redundant-node elimination) are applied offline and the result is
saved as plain ONNX (rtdet-n at 320 px: 330 -> 208 nodes). Provider-specific
fusions (Conv+ReLU, NCHWc) are left to ``ORT_ENABLE_ALL`` at load time.

Class names, the input size and the model name go into ``metadata_props`` so an
``.onnx`` file alone is enough for ``rtdet predict`` and ``rtdet bench``.

``half=True`` stores convolution weights as float16 (half the file) with a Cast
back to float32 in front of each use: ONNX Runtime's CPU provider has no float16
convolution kernels on x86, so compute stays float32 and speed is unchanged; only
the file shrinks. Its parity check uses :data:`HALF_TOLERANCE`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rtdet.deploy.images import sample_images, to_input
from rtdet.models.yolo import YOLO, RawOutputs

OPSET = 17
# (boxes, scores) max abs differences allowed between ONNX Runtime and PyTorch. Box sides are
# compared in units of their anchor's stride, the unit the head predicts them in: the decoding
# multiplies each DFL expectation by the stride (8-32 px), so float32 rounding in the network
# reaches the pixel coordinates scaled up by it (a trained rtdet-n at 320 px: 3.7e-4 px at
# stride 32, i.e. 1.1e-5 strides; scores 6e-7). Boxes also get BOX_RTOL * |x|: a float32
# coordinate near 640 px has a spacing of 6e-5 px.
TOLERANCE = (1e-4, 1e-4)
BOX_RTOL = 1e-6
# float16 weights: measured 3e-3 px and 2e-7 on coco128 at 320 px (random rtdet-n)
HALF_TOLERANCE = (0.0125, 1e-3)  # boxes: 0.1 px at stride 8


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model (or cannot be built)."""


def load_model(weights_or_model: str | Path | nn.Module, names: list[str] | None = None) -> tuple[YOLO, list[str]]:
    """``(model in eval mode, class names)`` from a checkpoint path or a model (the model is not copied)."""
    if isinstance(weights_or_model, nn.Module):
        model = weights_or_model
        names = list(names or getattr(model, "names", None) or [str(i) for i in range(model.num_classes)])
    else:
        from rtdet.workflows import load_detector

        model, names, _ = load_detector(weights_or_model)
    if not isinstance(model, YOLO):
        raise ExportError(f"ONNX export supports the YOLO-style models (rtdet-n/s/m), got {type(model).__name__}")
    return model.eval(), names


def fused_copy(model: YOLO) -> YOLO:
    """A Conv+BN-fused copy of ``model`` in eval mode (the original is left untouched)."""
    return copy.deepcopy(model).cpu().float().fuse()


def export_onnx(
    weights_or_model: str | Path | nn.Module, out: str | Path, imgsz: int = 320, dynamic: bool = False,
    half: bool = False, names: list[str] | None = None, report: dict[str, float] | None = None,
    nms: dict[str, float] | None = None,
) -> Path:
    """Export to ``out`` (ONNX, opset 17) and check it against PyTorch; returns ``out``.

    Args:
        weights_or_model: a ``.pt`` training checkpoint or a YOLO module.
        imgsz: square input size (multiple of 32) of a static graph; the default size of a dynamic one.
        dynamic: batch, height and width become dynamic axes.
        half: float16 weights (see the module docstring).
        names: class names when a bare module is given.
        report: if given, filled with the parity check's ``boxes``/``scores`` max differences and ``images``.
        nms: ``{"conf", "iou", "max_det"}`` to put NMS inside the graph (:mod:`rtdet.deploy.onnx_nms`;
            batch 1, output ``detections [D, 6]``), checked against :func:`rtdet.models.postprocess.postprocess`.

    Raises:
        ExportError: when the ONNX Runtime outputs differ from PyTorch beyond the tolerance.
    """
    if imgsz % 32:
        raise ValueError(f"imgsz must be a multiple of 32, got {imgsz}")
    model, names = load_model(weights_or_model, names)
    fused = fused_copy(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"names": json.dumps(names), "imgsz": str(imgsz), "dynamic": str(dynamic).lower(),
            "half": str(half).lower(), "model": str(getattr(model, "build_args", {}).get("name", "")),
            "stride": "32", "producer": "rtdet", "nms": "false"}
    if nms is not None:
        return _export_with_nms(fused, out, imgsz, dynamic or half, meta, nms, report)
    axes = None
    if dynamic:
        axes = {"images": {0: "batch", 2: "height", 3: "width"}, "boxes": {0: "batch", 1: "anchors"},
                "scores": {0: "batch", 1: "anchors"}}
    x = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        torch.onnx.export(RawOutputs(fused), (x,), str(out), input_names=["images"], output_names=["boxes", "scores"],
                          opset_version=OPSET, dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    _finish(out, meta, half)
    batch = 2 if dynamic else 1
    diffs = check_parity(fused, out, imgsz, HALF_TOLERANCE if half else TOLERANCE, batch=batch)
    if report is not None:
        report.update(diffs, images=float(max(2, batch)))
    return out


def _export_with_nms(fused: YOLO, out: Path, imgsz: int, other_options: bool, meta: dict[str, str],
                     nms: dict[str, float], report: dict[str, float] | None) -> Path:
    from rtdet.deploy.onnx_nms import check_nms_parity, export_onnx_nms

    if other_options:
        raise ValueError("NMS inside the graph is available for static float32 exports only (no --dynamic/--half)")
    conf, iou, max_det = float(nms["conf"]), float(nms["iou"]), int(nms["max_det"])
    export_onnx_nms(fused, out, imgsz, conf, iou, max_det)
    _finish(out, {**meta, "nms": json.dumps({"conf": conf, "iou": iou, "max_det": max_det})}, False)
    compared = check_nms_parity(fused, out, imgsz, conf, iou, max_det)
    if report is not None:
        report.update(detections=float(compared))
    return out


def _finish(path: Path, meta: dict[str, str], half: bool) -> None:
    """Add metadata (and float16 weights), run the ONNX checker and save in place."""
    import onnx

    proto = _simplified(path)
    if half:
        _weights_to_half(proto)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _simplified(path: Path) -> Any:
    """The model at ``path`` after ONNX Runtime's basic (portable) graph optimizations, as an ONNX proto."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        proto = onnx.load(opts.optimized_model_filepath)
    used = {n.domain for n in proto.graph.node}
    keep = [op for op in proto.opset_import if op.domain in used or op.domain == ""]
    if any(d not in ("", "ai.onnx") for d in used):  # a runtime-specific op slipped in: keep the exporter's graph
        return onnx.load(str(path))
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return proto


def _weights_to_half(proto: Any) -> None:
    """Store convolution weights as float16, each followed by a Cast to float32 under its old name.

    Only Conv weights: folded constants such as the anchor grid stay float32 (exact pixel centres).
    """
    import onnx
    from onnx import helper, numpy_helper

    graph, casts = proto.graph, []
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or init.name not in conv_weights:
            continue
        arr = numpy_helper.to_array(init)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), name + "_fp16"))
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"cast_{name}"))
    # the casts must come first: ONNX requires nodes in topological order
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """``{"names": [...], "imgsz": int, "dynamic": bool, "half": bool, "model": str}`` of an rtdet ONNX file."""
    import onnxruntime as ort

    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    return parse_metadata(props, path)


def parse_metadata(props: dict[str, str], path: str | Path = "<onnx>") -> dict[str, Any]:
    """Typed view of the ``metadata_props`` written by :func:`export_onnx`."""
    if "names" not in props or "imgsz" not in props:
        raise ValueError(f"{path}: not an rtdet ONNX export (no 'names'/'imgsz' metadata); re-export with rtdet export")
    return {"names": json.loads(props["names"]), "imgsz": int(props["imgsz"]),
            "dynamic": props.get("dynamic") == "true", "half": props.get("half") == "true",
            "model": props.get("model", ""), "nms": props.get("nms", "false") != "false",
            "int8": props.get("int8") == "true"}


def check_parity(model: nn.Module, path: str | Path, imgsz: int, tol: tuple[float, float] = TOLERANCE,
                 batch: int = 1, n: int = 2) -> dict[str, float]:
    """Compare ONNX Runtime with ``model.forward_raw`` on ``n`` real letterboxed images.

    Returns ``{"boxes": max abs diff (px), "scores": max abs diff}``.

    Raises:
        ExportError: if a difference exceeds ``tol = (boxes in strides, scores)`` (see
            :data:`TOLERANCE`), naming the file and the numbers.
    """
    import onnxruntime as ort

    from rtdet.models.heads import make_anchors

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = [to_input(im, imgsz)[0] for im in sample_images(max(n, batch))]
    chunks = [torch.cat(images[i:i + batch]) for i in range(0, len(images) - batch + 1, batch)]
    worst, failed = {"boxes": 0.0, "scores": 0.0}, False
    strides = model.head.strides
    anchor_stride = make_anchors([(imgsz // s, imgsz // s) for s in strides], strides)[1].numpy()  # [N, 1]
    with torch.no_grad():
        for x in chunks:
            ref = [t.numpy() for t in model.forward_raw(x)]
            got = sess.run(["boxes", "scores"], {"images": x.numpy()})
            for key, r, g in zip(("boxes", "scores"), ref, got):
                if r.shape != g.shape:
                    raise ExportError(f"{path}: ONNX output {key} has shape {g.shape}, PyTorch {r.shape}")
                diff = np.abs(r - g)
                worst[key] = max(worst[key], float(diff.max(initial=0.0)))
                allowed = tol[0] * anchor_stride + BOX_RTOL * np.abs(r) if key == "boxes" else tol[1]
                failed |= bool((diff > allowed).any())
    if failed:
        raise ExportError(
            f"{path}: ONNX Runtime differs from PyTorch: boxes max |diff| {worst['boxes']:.3g} px "
            f"(allowed {tol[0]} x stride + {BOX_RTOL}|x|), "
            f"scores {worst['scores']:.3g} (allowed {tol[1]})")
    return worst
