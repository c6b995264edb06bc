"""int8 static quantization of an exported rtdet ONNX model, calibrated on real images.

ONNX Runtime's quantizer does the work (:func:`onnxruntime.quantization.quantize_static`);
this module chooses what to quantize and feeds it calibration images:

- convolutions only, weights int8 per output channel, activations uint8 with
  ranges observed on ``images`` letterboxed exactly as at inference;
- QDQ format: ONNX Runtime fuses ``DequantizeLinear -> Conv -> QuantizeLinear`` into
  integer convolutions when it loads the model;
- the last convolution of every head branch (class logits, box-side
  distributions) and everything after it (DFL expectation, anchor arithmetic)
  stay float32: those values are read directly as scores and pixel distances.

The result is an ordinary rtdet ONNX file (same inputs, outputs and metadata, plus
``"int8": "true"``): ``rtdet predict``, ``val --weights x.onnx`` and ``bench`` run it.
Its accuracy cost is measured with ``rtdet val`` on the float32 and int8 files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rtdet.errors import ModelError
from rtdet.deploy.images import to_input

METHODS = ("minmax", "percentile", "entropy")


def last_convs(proto: Any) -> list[str]:
    """Names of the Conv nodes with no Conv downstream of them (the head's prediction layers)."""
    consumers: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    memo: dict[str, bool] = {}

    def conv_below(node: Any) -> bool:  # does any Conv consume this node's outputs, directly or not?
        if node.name not in memo:
            memo[node.name] = False  # graphs are acyclic; guards the recursion anyway
            memo[node.name] = any(c.op_type == "Conv" or conv_below(c)
                                  for out in node.output for c in consumers.get(out, []))
        return memo[node.name]

    return [n.name for n in proto.graph.node if n.op_type == "Conv" and not conv_below(n)]


class _Calibration:
    """``onnxruntime.quantization.CalibrationDataReader`` over letterboxed images (duck-typed)."""

    def __init__(self, images: Iterable[np.ndarray], imgsz: int, input_name: str = "images") -> None:
        self._inputs = ({input_name: to_input(image, imgsz)[0].numpy()} for image in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._inputs, None)


def quantize_int8(onnx_path: str | Path, out: str | Path, images: Iterable[np.ndarray],
                  method: str = "minmax") -> Path:
    """Write an int8 copy of the float32 rtdet export ``onnx_path`` to ``out``; returns ``out``.

    Args:
        images: calibration images (uint8 HxWx3 RGB), e.g. a few hundred from the training split.
        method: how activation ranges are chosen from the calibration outputs: ``minmax``,
            ``percentile`` (99.999th) or ``entropy``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from rtdet.deploy.onnx import parse_metadata

    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = parse_metadata(props, onnx_path)
    if meta["nms"] or meta["half"] or meta["dynamic"]:
        raise ModelError(f"{onnx_path}: int8 quantization takes a static float32 export without --nms/--half/--dynamic")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix="rtdet-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_optimization=False)
        quantize_static(
            str(prepared), str(out), _Calibration(images, meta["imgsz"]), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=last_convs(onnx.load(str(prepared))),
            calibrate_method=calibration,
        )
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    for k, v in {**props, "int8": "true", "int8_calibration": method}.items():
        quantized.metadata_props.add(key=k, value=v)
    onnx.save(quantized, str(out))
    return out
