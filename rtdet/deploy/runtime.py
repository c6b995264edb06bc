"""Inference backends: one call signature for PyTorch and ONNX Runtime, for every task.

``backend(images float32 [B, 3, H, W] in [0, 1]) -> tuple of CPU float32 tensors``:
the model's export outputs (:meth:`rtdet.models.base.RtdetModel.forward_raw`, named
``backend.output_names``; detect: ``boxes [B, N, 4]`` xyxy input pixels and
``scores [B, N, K]``; classify: ``probs [B, K]``). Everything around the network
(preprocessing, decoding, mapping back to original pixels) is the task's
(:mod:`rtdet.tasks`) and shared by every backend: :func:`infer`.

Example:
    >>> backend = load_backend("runs/x/weights/best.pt", "onnxruntime", threads=2)  # doctest: +SKIP
    >>> results = infer(backend, [image_rgb], settings={"conf": 0.25, "iou": 0.7, "method": "nms", "max_det": 300})  # doctest: +SKIP
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

from rtdet.errors import ModelError
from rtdet.tasks import get_task

BACKENDS = ("torch", "onnxruntime")


class Backend:
    """Raw-output inference. Attributes: ``names`` (class names), ``imgsz`` (default input size), ``name``
    (the runtime), ``task`` (detect, classify), ``output_names``, ``category_ids`` (the training data set's
    own id of each class, e.g. COCO's non-contiguous ids, or None), ``decoding`` (the decoding settings
    the model's family fixes, :func:`rtdet.registry.fixed_decoding`: DETR's outputs are decoded without NMS),
    ``model_name`` (e.g. ``rtdet-n``; empty when unknown), ``fixed_imgsz`` (the only input size
    the backend takes, or None when any size works)."""

    name = "backend"
    category_ids: list | None = None
    fixed_imgsz: int | None = None

    def __init__(self, names: list[str], imgsz: int, task: str, output_names: tuple[str, ...],
                 model: str = "") -> None:
        from rtdet.registry import fixed_decoding

        self.names, self.imgsz, self.task, self.output_names = list(names), int(imgsz), task, tuple(output_names)
        self.model_name, self.decoding = model, fixed_decoding(model)

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError


class TorchBackend(Backend):
    """A Conv+BN-fused copy of a model, run under ``torch.inference_mode`` on the model's device."""

    name = "torch"

    def __init__(self, model: nn.Module, names: list[str], imgsz: int = 320) -> None:
        import copy

        super().__init__(names, imgsz, model.task, model.output_names, getattr(model, "build_args", {}).get("name", ""))
        self.model = copy.deepcopy(model).float().fuse()
        self.device = next(self.model.parameters()).device

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        with torch.inference_mode():
            outputs = self.model.forward_raw(images.to(self.device).float())
        return tuple(o.cpu() for o in outputs)


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
            raise ModelError(f"{path} was exported with --nms (output 'detections'); rtdet's backends take the "
                             "raw-output export: re-export without --nms")
        outputs = tuple(o.name for o in self.session.get_outputs())
        super().__init__(meta["names"], meta["imgsz"], meta["task"], outputs, meta["model"])
        self.path, self.dynamic, self.category_ids = Path(path), meta["dynamic"], meta["category_ids"]
        self.fixed_imgsz = None if self.dynamic else self.imgsz

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        x = images.float().cpu().numpy()
        if not self.dynamic and (x.shape[0] != 1 or x.shape[2:] != (self.imgsz, self.imgsz)):
            if x.shape[2:] != (self.imgsz, self.imgsz):
                raise ModelError(f"{self.path} is a static graph for {self.imgsz}x{self.imgsz} input, "
                                 f"got {x.shape[2]}x{x.shape[3]} (re-export with --dynamic or that --imgsz)")
            parts = [self.session.run(list(self.output_names), {"images": x[i:i + 1]}) for i in range(len(x))]
            return tuple(torch.from_numpy(stack_padded([p[k] for p in parts])) for k in range(len(self.output_names)))
        return tuple(torch.from_numpy(o) for o in self.session.run(list(self.output_names), {"images": x}))


def stack_padded(parts: list[np.ndarray]) -> np.ndarray:
    """One image's outputs ``[1, N_i, ...]`` each -> ``[B, max N_i, ...]``: a two-stage detector's proposal
    count varies per image; the rows added are zeros (score 0: never above a confidence threshold)."""
    if parts[0].ndim < 2 or len({p.shape[1] for p in parts}) == 1:
        return np.concatenate(parts)
    n = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, [(0, 0), (0, n - p.shape[1])] + [(0, 0)] * (p.ndim - 2)) for p in parts])


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
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # not ONNX, torn, or an opset this runtime lacks: one line naming the file
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: not a readable ONNX model ({first})") from e


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
                 imgsz: int | None = None, spin: bool = False) -> Backend:
    """A backend for ``weights`` (``.pt`` checkpoint or ``.onnx``).

    A ``.pt`` with ``backend="onnxruntime"`` is exported (and parity-checked) into a
    temporary file at ``imgsz`` (None: the size it was trained at); an ``.onnx`` cannot
    run on the torch backend. ``threads`` also sets PyTorch's thread count for the
    torch backend; ``spin``: see :class:`OrtBackend` (ONNX Runtime only).

    Raises:
        ModelError: unknown backend, missing file, or an ``.onnx`` asked to run on torch.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"weights not found: {weights}")
    if weights.suffix == ".onnx":
        if backend == "torch":
            raise ModelError(f"{weights}: the torch backend needs a .pt checkpoint (use --backend onnxruntime)")
        return OrtBackend(weights, threads, spin)
    from rtdet.models.load import load_trained

    trained = load_trained(weights)
    out = backend_for_model(trained.model, trained.names, backend, threads, imgsz or trained.config.data.imgsz,
                            spin=spin)
    out.category_ids = trained.meta.get("cat_ids")
    return out


def backend_for_model(model: nn.Module, names: list[str], backend: str = "torch", threads: int | None = None,
                      imgsz: int = 320, dynamic: bool = False, spin: bool = False) -> Backend:
    """A backend running ``model``; ``onnxruntime`` exports it (checked) to a temporary file first."""
    if backend == "torch":
        if threads:
            torch.set_num_threads(int(threads))
        return TorchBackend(model, names, imgsz)
    from rtdet.deploy.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="rtdet-onnx-") as tmp:  # the session holds the model once created
        path = Path(tmp) / "model.onnx"
        return OrtBackend(export_onnx(model, path, imgsz=imgsz, dynamic=dynamic, names=names), threads, spin)


def eval_model(model: nn.Module, names: list[str], backend: str, imgsz: int, settings: dict[str, Any],
               threads: int | None = None) -> nn.Module:
    """``model`` itself for ``torch``; for ``onnxruntime`` a :class:`BackendModel` over its dynamic-shape
    export (evaluation batches can be rectangular), or its static one at ``imgsz`` for a model whose graph
    takes one image of one size (:attr:`rtdet.models.base.RtdetModel.dynamic_export`), decoding with ``settings``."""
    if backend == "torch":
        return model
    return BackendModel(backend_for_model(model, names, backend, threads, imgsz, dynamic=model.dynamic_export),
                        settings)


def infer(backend: Backend, images: list[np.ndarray], imgsz: int | None = None,
          settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Results in original pixels for uint8 HxWx3 RGB ``images`` (one inference per image).

    The task's ``preprocess`` -> ``backend`` -> the task's ``decode`` (see :mod:`rtdet.tasks`);
    ``settings``: the task's decoding settings (detect: conf, iou, method, max_det; classify: topk).
    Detect results: ``boxes`` float32 [D, 4] xyxy original pixels (clipped), ``scores`` [D],
    ``labels`` int64 [D], ``names``; classify: ``probs`` [K], its top ``labels``, ``scores``, ``names``.
    Both add ``category_ids`` (the data set's own id of each label) when the backend knows them.
    """
    task = get_task(backend.task)
    size = imgsz or backend.imgsz
    settings = {**(settings or {}), **backend.decoding}
    out = []
    with host_threads(backend):
        for image in images:
            x, geometry = task.preprocess(image, size)
            result = task.decode(backend(x), geometry, image.shape, backend.names, settings)
            if backend.category_ids:
                result["category_ids"] = [backend.category_ids[int(c)] for c in result["labels"]]
            out.append(result)
    return out


class BackendModel(nn.Module):
    """A backend behind rtdet's eval-mode model contract (for ``predict_all`` / ``rtdet val``).

    ``forward(images float [B, 3, H, W])`` returns the B eval-mode predictions of the
    backend's task (:attr:`rtdet.tasks.base.Task.predictions`), decoded with ``settings``.
    """

    def __init__(self, backend: Backend, settings: dict[str, Any]) -> None:
        super().__init__()
        self.backend, self.num_classes, self.settings = backend, len(backend.names), {**settings, **backend.decoding}
        self.task = get_task(backend.task)
        self._dummy = nn.Parameter(torch.zeros(0), requires_grad=False)  # gives next(parameters()) a device

    def set_postprocess(self, **settings: Any) -> None:
        self.settings.update(settings, **self.backend.decoding)

    def forward(self, images: Tensor, targets: Any = None) -> list[dict[str, Tensor]]:
        return self.task.predictions(self.backend(images.cpu()), tuple(images.shape[-2:]), self.settings)
