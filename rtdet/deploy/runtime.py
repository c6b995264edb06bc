"""Inference backends: one call signature for PyTorch and ONNX Runtime.

``backend(images float32 [B, 3, H, W] in [0, 1]) -> (boxes [B, N, 4] xyxy input
pixels, scores [B, N, K])``, the raw outputs of :class:`rtdet.models.yolo.RawOutputs`,
as CPU float32 tensors. Decoding to detections (confidence filter, NMS,
``max_det``) and the mapping back to original pixels are shared by every backend:
:func:`detect` uses :func:`rtdet.models.postprocess.postprocess` and
:func:`rtdet.boxes.unletterbox`.

Example:
    >>> backend = load_backend("runs/x/weights/best.pt", "onnxruntime", threads=2)  # doctest: +SKIP
    >>> dets = detect(backend, [image_rgb])  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rtdet.boxes import unletterbox
from rtdet.deploy.images import to_input
from rtdet.models.postprocess import postprocess

BACKENDS = ("torch", "onnxruntime")


class Backend:
    """Raw-output inference. Attributes: ``names`` (class names), ``imgsz`` (default input size), ``name``."""

    name = "backend"

    def __init__(self, names: list[str], imgsz: int) -> None:
        self.names, self.imgsz = list(names), int(imgsz)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class TorchBackend(Backend):
    """A Conv+BN-fused copy of a YOLO model, run under ``torch.inference_mode`` on the model's device."""

    name = "torch"

    def __init__(self, model: nn.Module, names: list[str], imgsz: int = 320) -> None:
        import copy

        super().__init__(names, imgsz)
        self.model = copy.deepcopy(model).float().fuse()
        self.device = next(self.model.parameters()).device

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        with torch.inference_mode():
            boxes, scores = self.model.forward_raw(images.to(self.device).float())
        return boxes.cpu(), scores.cpu()


class OrtBackend(Backend):
    """An ``onnxruntime.InferenceSession`` on the CPU with all graph optimizations.

    Args:
        path: ``.onnx`` written by :func:`rtdet.deploy.onnx.export_onnx` (names and size come from its metadata).
        threads: intra-op threads (``None``: ONNX Runtime's default, one per core).
        spin: let idle worker threads busy-wait for the next run. Off by default: on a
            2-core CPU shared with other jobs, spinning threads steal the cores (measured
            under load, 2 threads: 26.7 ms spinning vs 14.6 ms not). On a CPU the detector
            has to itself it is faster (idle machine, trained rtdet-n end to end at 320 px:
            7.84 ms spinning vs 9.23 ms not).
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool = False) -> None:
        from rtdet.deploy.onnx import parse_metadata

        self.session = ort_session(path, threads, spin)
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        if meta["nms"]:
            raise ValueError(f"{path} was exported with --nms (output 'detections'); rtdet's backends take the "
                             "raw-output export: re-export without --nms")
        super().__init__(meta["names"], meta["imgsz"])
        self.path, self.dynamic = Path(path), meta["dynamic"]

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = images.float().cpu().numpy()
        if not self.dynamic and (x.shape[0] != 1 or x.shape[2:] != (self.imgsz, self.imgsz)):
            if x.shape[2:] != (self.imgsz, self.imgsz):
                raise ValueError(f"{self.path} is a static graph for {self.imgsz}x{self.imgsz} input, "
                                 f"got {x.shape[2]}x{x.shape[3]} (re-export with --dynamic or that --imgsz)")
            parts = [self.session.run(["boxes", "scores"], {"images": x[i:i + 1]}) for i in range(len(x))]
            return torch.from_numpy(np.concatenate([p[0] for p in parts])), torch.from_numpy(
                np.concatenate([p[1] for p in parts]))
        boxes, scores = self.session.run(["boxes", "scores"], {"images": x})
        return torch.from_numpy(boxes), torch.from_numpy(scores)


def ort_session(path: str | Path, threads: int | None = None, spin: bool = False) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU: all graph optimizations, ``threads`` intra-op
    threads (None: one per core), one inter-op thread, spinning per ``spin`` (see :class:`OrtBackend`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1  # one graph, run sequentially: inter-op threads only add contention
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@contextmanager
def host_threads(backend: Backend) -> Iterator[None]:
    """While the network runs in ONNX Runtime, torch (NMS, filtering) uses one thread.

    The tensors of decoding are small; on a 2-core CPU torch's thread pool then costs
    more than it saves (measured 3.6 ms vs 0.6 ms per frame under load) and competes
    with ONNX Runtime's own threads. The previous count is restored afterwards.
    """
    if not isinstance(backend, OrtBackend):
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load_backend(weights: str | Path, backend: str = "onnxruntime", threads: int | None = None,
                 imgsz: int = 320, spin: bool = False) -> Backend:
    """A backend for ``weights`` (``.pt`` checkpoint or ``.onnx``).

    A ``.pt`` with ``backend="onnxruntime"`` is exported (and parity-checked) into a
    temporary file at ``imgsz``; an ``.onnx`` cannot run on the torch backend.
    ``threads`` also sets PyTorch's thread count for the torch backend; ``spin``: see
    :class:`OrtBackend` (ONNX Runtime only).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    if weights.suffix == ".onnx":
        if backend == "torch":
            raise ValueError(f"{weights}: the torch backend needs a .pt checkpoint (use --backend onnxruntime)")
        return OrtBackend(weights, threads, spin)
    from rtdet.deploy.onnx import load_model

    model, names = load_model(weights)
    return backend_for_model(model, names, backend, threads, imgsz, spin=spin)


def backend_for_model(model: nn.Module, names: list[str], backend: str = "torch", threads: int | None = None,
                      imgsz: int = 320, dynamic: bool = False, spin: bool = False) -> Backend:
    """A backend running ``model`` (a YOLO module); ``onnxruntime`` exports it (checked) to a temporary file first."""
    if backend == "torch":
        if threads:
            torch.set_num_threads(int(threads))
        return TorchBackend(model, names, imgsz)
    from rtdet.deploy.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="rtdet-onnx-") as tmp:  # the session holds the model once created
        path = Path(tmp) / "model.onnx"
        return OrtBackend(export_onnx(model, path, imgsz=imgsz, dynamic=dynamic, names=names), threads, spin)


def eval_model(model: nn.Module, names: list[str], backend: str, imgsz: int, threads: int | None = None) -> nn.Module:
    """``model`` itself for ``torch``; for ``onnxruntime`` a :class:`BackendModel` over its dynamic-shape
    export (evaluation batches can be rectangular), decoding with the model's own settings."""
    if backend == "torch":
        return model
    ort_backend = backend_for_model(model, names, backend, threads, imgsz, dynamic=True)
    return BackendModel(ort_backend, **getattr(model, "postprocess_args", {}))


def detect(backend: Backend, images: list[np.ndarray], imgsz: int | None = None, conf: float = 0.25,
           iou: float = 0.7, method: str = "nms", max_det: int = 300) -> list[dict[str, Any]]:
    """Detections in original pixels for uint8 HxWx3 RGB ``images`` (one inference per image).

    Returns one dict per image: ``boxes`` float32 [D, 4] xyxy original pixels (clipped),
    ``scores`` float32 [D], ``labels`` int64 [D], ``names`` list[str]; sorted by score.
    """
    size = imgsz or backend.imgsz
    out = []
    with host_threads(backend):
        for image in images:
            x, lb = to_input(image, size)
            boxes, scores = backend(x)
            det = postprocess(boxes, scores, conf=conf, iou=iou, method=method, max_det=max_det,
                              image_size=(size, size))[0]
            out.append(finish(det, lb, image.shape[:2], backend.names))
    return out


def finish(det: dict[str, Tensor], lb: tuple[float, float, float], orig_size: tuple[int, int],
           names: list[str]) -> dict[str, Any]:
    """One image's detections mapped from letterboxed to original pixels, with class names."""
    labels = det["labels"].cpu()
    return {"boxes": unletterbox(det["boxes"].float().cpu(), lb, orig_size), "scores": det["scores"].float().cpu(),
            "labels": labels, "names": [names[int(c)] if 0 <= c < len(names) else str(int(c)) for c in labels]}


class BackendModel(nn.Module):
    """A backend behind rtdet's eval-mode model contract (for ``predict_all`` / ``rtdet val``).

    ``forward(images float [B, 3, H, W])`` returns B dicts ``boxes``/``scores``/``labels``
    in the input's pixel frame, decoded with ``postprocess_args`` like :class:`YOLO`.
    """

    def __init__(self, backend: Backend, **postprocess_args: Any) -> None:
        super().__init__()
        self.backend, self.num_classes = backend, len(backend.names)
        self.postprocess_args = {"conf": 0.001, "iou": 0.7, "method": "nms", "max_det": 300, **postprocess_args}
        self._dummy = nn.Parameter(torch.zeros(0), requires_grad=False)  # gives next(parameters()) a device

    def forward(self, images: Tensor, targets: Any = None) -> list[dict[str, Tensor]]:
        boxes, scores = self.backend(images.cpu())
        return postprocess(boxes, scores, image_size=tuple(images.shape[-2:]), **self.postprocess_args)
