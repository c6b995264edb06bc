"""ONNX export of any rtdet model, checked against PyTorch after every export.

The graph is the Conv+BN-fused model's :meth:`~rtdet.models.base.RtdetModel.export_module`:
input ``images`` float32 ``[B, 3, H, W]`` in ``[0, 1]``; outputs named by the model's
``output_names``: detectors ``boxes`` float32 ``[B, N, 4]`` (xyxy, input pixels) and
``scores`` float32 ``[B, N, K]`` (probabilities), classifiers ``probs`` float32
``[B, K]`` (softmax), segmenters ``logits`` float32 ``[B, K, h, w]`` on a grid spanning the
input (rtdet-seg-n and rtdet-m2f: stride 4; the task resamples it to original pixels) or, with
``argmax``, ``labels`` int64 ``[B, H, W]`` in input pixels. Decoding (for detectors NMS) stays outside, in the task
(:mod:`rtdet.tasks`), so ONNX Runtime and PyTorch share the same decoding code.

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
the file shrinks. Its parity check uses the model's float16 tolerance (``parity_allowed(..., half=True)``).
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
from rtdet.errors import ModelError, RtdetError

OPSET = 17
# The tolerances of the parity check belong to each family: RtdetModel.parity_allowed
# (YOLO: box sides in strides of their anchor, see rtdet.models.yolo.PARITY).


class ExportError(RtdetError, RuntimeError):
    """The exported graph does not reproduce the PyTorch model (or cannot be built)."""


def load_model(weights_or_model: str | Path | nn.Module, names: list[str] | None = None) -> tuple[nn.Module, list[str]]:
    """``(model in eval mode, class names)`` from a checkpoint path or a model (the model is not copied)."""
    if isinstance(weights_or_model, (str, Path)):
        from rtdet.models.load import load_trained

        trained = load_trained(weights_or_model)
        return trained.model, trained.names
    model = weights_or_model
    names = list(names or getattr(model, "names", None) or [str(i) for i in range(model.num_classes)])
    return model.eval(), names


def fused_copy(model: nn.Module) -> nn.Module:
    """A Conv+BN-fused copy of ``model`` in eval mode (the original is left untouched)."""
    return copy.deepcopy(model).cpu().float().fuse()


def export_onnx(
    weights_or_model: str | Path | nn.Module, out: str | Path, imgsz: int = 320, dynamic: bool = False,
    half: bool = False, names: list[str] | None = None, report: dict[str, float] | None = None,
    nms: dict[str, float] | None = None, category_ids: list | None = None, argmax: bool = False,
) -> Path:
    """Export to ``out`` (ONNX, opset 17) and check it against PyTorch; returns ``out``.

    Args:
        weights_or_model: a ``.pt`` training checkpoint or an rtdet model.
        imgsz: square input size (multiple of 32) of a static graph; the default size of a dynamic one.
        dynamic: batch, height and width become dynamic axes.
        half: float16 weights (see the module docstring).
        names: class names when a bare module is given.
        category_ids: the training data set's own id of each class (COCO category ids), kept in the
            metadata so that predictions can be written in the user's numbering; a checkpoint brings its own.
        report: if given, filled with the parity check's ``boxes``/``scores`` max differences and ``images``.
        nms: ``{"conf", "iou", "max_det"}`` to put NMS inside the graph (detectors only:
            :mod:`rtdet.deploy.onnx_nms`; batch 1, output ``detections [D, 6]``), checked against
            :func:`rtdet.models.postprocess.postprocess`.
        argmax: segmentation models: output ``labels`` int64 ``[B, H, W]`` (the class map in the input frame)
            instead of ``logits``, checked against PyTorch's arg-max (:mod:`rtdet.deploy.onnx_argmax`).

    Raises:
        ExportError: when the ONNX Runtime outputs differ from PyTorch beyond the tolerance.
        ModelError: ``imgsz`` not a multiple of 32, ``nms`` for a model that is not a detector, ``argmax``
            for one that does not segment.
    """
    if imgsz % 32:
        raise ModelError(f"imgsz must be a multiple of 32, got {imgsz}")
    if category_ids is None and isinstance(weights_or_model, (str, Path)):
        from rtdet.models.load import load_trained

        category_ids = load_trained(weights_or_model).meta.get("cat_ids")
    model, names = load_model(weights_or_model, names)
    if dynamic and not model.dynamic_export:
        raise ModelError(f"--dynamic: {getattr(model, 'build_args', {}).get('name', type(model).__name__)}'s graph "
                         "is traced for one image of one size (batch 1, static); export without --dynamic")
    fused = fused_copy(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"names": json.dumps(names), "imgsz": str(imgsz), "dynamic": str(dynamic).lower(),
            "half": str(half).lower(), "model": str(getattr(model, "build_args", {}).get("name", "")),
            "task": model.task, "stride": "32", "producer": "rtdet", "nms": "false", "argmax": str(argmax).lower()}
    if category_ids:
        meta["category_ids"] = json.dumps(list(category_ids))
    if nms is not None:
        if model.task != "detect":
            raise ModelError(f"--nms is for detectors; this model does the {model.task} task")
        return _export_with_nms(fused, out, imgsz, dynamic or half, meta, nms, report)
    if argmax:
        return _export_with_argmax(fused, out, imgsz, dynamic, half, meta, report)
    x = torch.zeros(1, 3, imgsz, imgsz)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, **fused.dynamic_axes()} if dynamic else None
    with torch.no_grad():
        torch.onnx.export(fused.export_module(), (x,), str(out), input_names=["images"],
                          output_names=list(fused.output_names), opset_version=OPSET, dynamic_axes=axes,
                          do_constant_folding=True, dynamo=False)
    _finish(out, meta, half)
    batch = 2 if dynamic else 1
    diffs = check_parity(fused, out, imgsz, half, batch=batch)
    if report is not None:
        report.update(diffs, images=float(max(2, batch)))
    return out


def _export_with_nms(fused: nn.Module, out: Path, imgsz: int, other_options: bool, meta: dict[str, str],
                     nms: dict[str, float], report: dict[str, float] | None) -> Path:
    from rtdet.deploy.onnx_nms import check_nms_parity, export_onnx_nms

    if other_options:
        raise ModelError("NMS inside the graph is available for static float32 exports only (no --dynamic/--half)")
    conf, iou, max_det = float(nms["conf"]), float(nms["iou"]), int(nms["max_det"])
    export_onnx_nms(fused, out, imgsz, conf, iou, max_det)
    _finish(out, {**meta, "nms": json.dumps({"conf": conf, "iou": iou, "max_det": max_det})}, False)
    compared = check_nms_parity(fused, out, imgsz, conf, iou, max_det)
    if report is not None:
        report.update(detections=float(compared))
    return out


def _export_with_argmax(fused: nn.Module, out: Path, imgsz: int, dynamic: bool, half: bool, meta: dict[str, str],
                        report: dict[str, float] | None) -> Path:
    from rtdet.deploy.onnx_argmax import check_argmax_parity, export_onnx_argmax

    if fused.task != "segment":
        raise ModelError(f"--argmax is for segmentation models; this model does the {fused.task} task")
    export_onnx_argmax(fused, out, imgsz, dynamic, OPSET)
    _finish(out, meta, half)
    batch = 2 if dynamic else 1
    diffs = check_argmax_parity(fused, out, imgsz, half, batch=batch)
    if report is not None:
        report.update(diffs, images=float(max(2, batch)))
    return out


def _finish(path: Path, meta: dict[str, str], half: bool) -> None:
    """Add metadata (and float16 weights), run the ONNX checker and save in place."""
    import onnx

    proto = _simplified(path)
    drop_noop_casts(proto)
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


def drop_noop_casts(proto: Any) -> int:
    """Remove every ``Cast`` whose input already has the target type; returns how many were removed.

    Tracing turns ``tensor.float()`` into a Cast even on a float32 tensor, and ONNX Runtime keeps it: at
    the end of a segmenter it copies the whole ``[B, K, H, W]`` logits (rtdet-seg-n at 480 px: 1 ms of
    14). Types come from ONNX shape inference; a Cast whose input type is unknown, or whose input is
    the graph's input, stays. When the Cast's output is a graph output, the producer of its input
    writes that output directly (the output names are the contract)."""
    import onnx

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    outputs = {o.name for o in graph.output}
    kept_sources = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    dropped = 0
    for node in list(graph.node):
        if node.op_type != "Cast" or len(node.input) != 1:
            continue
        src, dst = node.input[0], node.output[0]
        to = next(a.i for a in node.attribute if a.name == "to")
        if types.get(src) != to or src in kept_sources:
            continue
        if dst in outputs:
            if src in outputs:  # both names are outputs: keep the copy
                continue
            old, new = src, dst  # the producer writes the output name itself
        else:
            old, new = dst, src
        graph.node.remove(node)
        for other in graph.node:
            for field in (other.input, other.output):
                for i, name in enumerate(field):
                    if name == old:
                        field[i] = new
        for v in graph.value_info:
            if v.name == old:
                v.name = new
        dropped += 1
    return dropped


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
    """``{"names": [...], "imgsz": int, "task": str, "dynamic": bool, "half": bool, "model": str, ...}`` of an
    rtdet ONNX file."""
    from rtdet.deploy.runtime import ort_session

    props = ort_session(path).get_modelmeta().custom_metadata_map
    return parse_metadata(props, path)


def parse_metadata(props: dict[str, str], path: str | Path = "<onnx>") -> dict[str, Any]:
    """Typed view of the ``metadata_props`` written by :func:`export_onnx`."""
    if "names" not in props or "imgsz" not in props:
        raise ModelError(f"{path}: not an rtdet ONNX export (no 'names'/'imgsz' metadata); re-export with rtdet export")
    return {"names": json.loads(props["names"]), "imgsz": int(props["imgsz"]), "task": props.get("task", "detect"),
            "dynamic": props.get("dynamic") == "true", "half": props.get("half") == "true",
            "model": props.get("model", ""), "nms": props.get("nms", "false") != "false",
            "int8": props.get("int8") == "true", "argmax": props.get("argmax") == "true",
            "category_ids": json.loads(props["category_ids"]) if "category_ids" in props else None}


def check_parity(model: nn.Module, path: str | Path, imgsz: int, half: bool = False, batch: int = 1,
                 n: int = 2, runtime: Any = None) -> dict[str, float]:
    """Compare ONNX Runtime (or ``runtime``, a backend with ``run(x) -> outputs`` on the file at ``path``,
    e.g. OpenVINO's) with ``model.forward_raw`` on ``n`` real letterboxed images (the task's sample set:
    :func:`rtdet.deploy.images.sample_images`).

    The outputs are paired row for row by the model's ``parity_align`` first (a two-stage
    detector's proposal lists may differ by a proposal at a cut-off), then compared.
    Returns the max abs difference per output name (e.g. ``{"boxes": px, "scores": ...}``).

    Raises:
        ExportError: if a difference exceeds the model's ``parity_allowed``, or the outputs cannot be
            paired, naming the file and the numbers.
    """
    if runtime is None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    who = "ONNX Runtime" if runtime is None else runtime.name
    images = [to_input(im, imgsz)[0] for im in sample_images(max(n, batch), task=model.task)]
    chunks = [torch.cat(images[i:i + batch]) for i in range(0, len(images) - batch + 1, batch)]
    names = list(model.output_names)
    worst, failed = dict.fromkeys(names, 0.0), []
    with torch.no_grad():
        for x in chunks:
            ref = tuple(t.numpy() for t in model.forward_raw(x))
            got = tuple(sess.run(names, {"images": x.numpy()}) if runtime is None else runtime.run(x.numpy()))
            try:
                ref, got = model.parity_align(ref, got)
            except ValueError as e:
                raise ExportError(f"{path}: {who}'s outputs do not pair with PyTorch's: {e}") from None
            for key, r, g in zip(names, ref, got):
                if r.shape != g.shape:
                    raise ExportError(f"{path}: {who}'s output {key} has shape {g.shape}, PyTorch {r.shape}")
                diff = np.abs(r - g)
                worst[key] = max(worst[key], float(diff.max(initial=0.0)))
                if (diff > model.parity_allowed(key, r, imgsz, half)).any():
                    failed.append(key)
    if failed:
        diffs = ", ".join(f"{k} max |diff| {v:.3g}" for k, v in worst.items())
        raise ExportError(f"{path}: {who} differs from PyTorch beyond the allowed tolerance in "
                          f"{', '.join(sorted(set(failed)))} ({diffs}; see {type(model).__name__}.parity_allowed)")
    return worst
