"""Inference backends: one call signature for PyTorch, ONNX Runtime and OpenVINO, for every task.

``backend(images float32 [B, 3, H, W] in [0, 1]) -> tuple of CPU float32 tensors``:
the model's export outputs (:meth:`rtdet.models.base.RtdetModel.forward_raw`, named
``backend.output_names``; detect: ``boxes [B, N, 4]`` xyxy input pixels and
``scores [B, N, K]``; classify: ``probs [B, K]``). Everything around the network
(preprocessing, decoding, mapping back to original pixels) is the task's
(:mod:`rtdet.tasks`) and shared by every backend: :class:`Pipeline` for a stream of
frames (its buffers reused), :func:`infer` for a list of images.

:func:`load_backend` applies the settings ``rtdet bench --tune`` measured and wrote next to
the weights (:mod:`rtdet.deploy.tune`) for whatever the caller leaves unset; without that
file the defaults are the safe ones (ONNX Runtime, a thread per core, no spinning).

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

BACKENDS = ("torch", "onnxruntime", "openvino")


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
    threads: int | None = None  # intra-op threads asked for (None: the runtime's default)
    tuned = ""  # what load_backend took from a tuning file, or why it did not (printed by the commands)

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


class OnnxFileBackend(Backend):
    """A runtime of an rtdet ``.onnx`` export: names, size and task from its metadata; a static graph
    takes a batch one image at a time. Subclasses give ``run(x float32 [B, 3, H, W]) -> list of arrays``."""

    def _load_metadata(self, path: str | Path, props: dict[str, str], outputs: tuple[str, ...]) -> None:
        from rtdet.deploy.onnx import parse_metadata

        meta = parse_metadata(props, path)
        if meta["nms"]:
            raise ModelError(f"{path} was exported with --nms (output 'detections'); rtdet's backends take the "
                             "raw-output export: re-export without --nms")
        Backend.__init__(self, meta["names"], meta["imgsz"], meta["task"], outputs, meta["model"])
        self.path, self.dynamic, self.category_ids = Path(path), meta["dynamic"], meta["category_ids"]
        self.fixed_imgsz = None if self.dynamic else self.imgsz
        self.int8 = meta["int8"]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        x = images.float().cpu().numpy()
        if not self.dynamic and (x.shape[0] != 1 or x.shape[2:] != (self.imgsz, self.imgsz)):
            if x.shape[2:] != (self.imgsz, self.imgsz):
                raise ModelError(f"{self.path} is a static graph for {self.imgsz}x{self.imgsz} input, "
                                 f"got {x.shape[2]}x{x.shape[3]} (re-export with --dynamic or that --imgsz)")
            parts = [self.run(x[i:i + 1]) for i in range(len(x))]
            return tuple(torch.from_numpy(stack_padded([p[k] for p in parts])) for k in range(len(self.output_names)))
        return tuple(torch.from_numpy(o) for o in self.run(x))


class OrtBackend(OnnxFileBackend):
    """An ``onnxruntime.InferenceSession`` on the CPU with all graph optimizations.

    Args:
        path: ``.onnx`` written by :func:`rtdet.deploy.onnx.export_onnx` (names and size come from its metadata).
        threads: intra-op threads (``None``: ONNX Runtime's default, one per core).
        spin: let idle worker threads busy-wait for the next run. Off by default: on a
            2-core CPU shared with other jobs, spinning threads steal the cores (measured
            under load, 2 threads: 26.7 ms spinning vs 14.6 ms not). On a CPU the detector
            has to itself it is faster (idle machine, trained rtdet-n end to end at 320 px:
            7.84 ms spinning vs 9.23 ms not); ``rtdet bench --tune`` measures which it is.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool = False) -> None:
        self.session = ort_session(path, threads, spin)
        self.threads, self.spin = threads, spin
        outputs = tuple(o.name for o in self.session.get_outputs())
        self._load_metadata(path, self.session.get_modelmeta().custom_metadata_map, outputs)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(self.output_names), {"images": x})


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
    """While the network runs in ONNX Runtime or OpenVINO, torch (what decoding still does in torch) uses
    one thread.

    The tensors of decoding are small; on a 2-core CPU torch's thread pool then costs
    more than it saves (measured 3.6 ms vs 0.6 ms per frame under load) and competes
    with ONNX Runtime's own threads. The previous count is restored afterwards.
    """
    if isinstance(backend, TorchBackend):
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load_backend(weights: str | Path, backend: str | None = None, threads: int | None = None,
                 imgsz: int | None = None, spin: bool | None = None, tuned: bool = True,
                 default: str = "onnxruntime") -> Backend:
    """A backend for ``weights`` (``.pt`` checkpoint or ``.onnx``).

    A ``.pt`` on ONNX Runtime or OpenVINO is exported (and parity-checked against PyTorch) into a
    temporary file at ``imgsz`` (None: the size it was trained at); an ``.onnx`` cannot run on the
    torch backend. ``threads`` also sets PyTorch's thread count for the torch backend; ``spin``: see
    :class:`OrtBackend` (ONNX Runtime only).

    What the caller leaves at None comes from the tuning file next to ``weights``
    (``rtdet bench --tune``, :func:`rtdet.deploy.tune.read_tuning`) when ``tuned`` and the file is
    current (same weights, same input size), else from the defaults: ``default`` (ONNX Runtime), a
    thread per core, no spinning. Tuned threads and spinning apply only to the tuned backend; a tuned
    int8 model replaces the weights only then too. ``backend.tuned`` says what was applied.

    Raises:
        ModelError: unknown backend, missing file, or an ``.onnx`` asked to run on torch.
    """
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"weights not found: {weights}")
    note = ""
    if tuned:
        from rtdet.deploy.tune import read_tuning

        choice, note = read_tuning(weights, imgsz)
        if choice is not None and backend in (None, choice.backend):
            backend, weights = choice.backend, choice.weights_path(weights)
            threads = choice.threads if threads is None else threads
            spin = choice.spin if spin is None else spin
        elif choice is not None:
            note = f"{note}; not applied: --backend {backend} was asked for"
    if (backend or default) not in BACKENDS:
        raise ModelError(f"unknown backend {backend or default!r}; expected one of {', '.join(BACKENDS)}")
    out = _load(weights, backend or default, threads, imgsz, bool(spin))
    out.tuned = note
    return out


def _load(weights: Path, backend: str, threads: int | None, imgsz: int | None, spin: bool) -> Backend:
    if weights.suffix == ".onnx":
        if backend == "torch":
            raise ModelError(f"{weights}: the torch backend needs a .pt checkpoint (use --backend onnxruntime)")
        return onnx_backend(weights, backend, threads, spin)
    from rtdet.models.load import load_trained

    trained = load_trained(weights)
    out = backend_for_model(trained.model, trained.names, backend, threads, imgsz or trained.config.data.imgsz,
                            spin=spin)
    out.category_ids = trained.meta.get("cat_ids")
    return out


def onnx_backend(path: str | Path, backend: str = "onnxruntime", threads: int | None = None,
                 spin: bool = False) -> OnnxFileBackend:
    """An rtdet ``.onnx`` file on ONNX Runtime or OpenVINO (``spin``: ONNX Runtime only)."""
    if backend == "openvino":
        from rtdet.deploy.openvino import OvBackend

        return OvBackend(path, threads)
    return OrtBackend(path, threads, spin)


def backend_for_model(model: nn.Module, names: list[str], backend: str = "torch", threads: int | None = None,
                      imgsz: int = 320, dynamic: bool = False, spin: bool = False) -> Backend:
    """A backend running ``model``; ``onnxruntime`` and ``openvino`` export it to a temporary file first,
    and check that runtime's outputs against PyTorch's (:func:`rtdet.deploy.onnx.check_parity`)."""
    if backend == "torch":
        if threads:
            torch.set_num_threads(int(threads))
        out = TorchBackend(model, names, imgsz)
        out.threads = threads
        return out
    from rtdet.deploy.onnx import check_parity, export_onnx, fused_copy

    with tempfile.TemporaryDirectory(prefix="rtdet-onnx-") as tmp:  # the runtime holds the model once loaded
        path = export_onnx(model, Path(tmp) / "model.onnx", imgsz=imgsz, dynamic=dynamic, names=names)
        out = onnx_backend(path, backend, threads, spin)
        if backend != "onnxruntime":  # export_onnx checked ONNX Runtime
            check_parity(fused_copy(model), path, imgsz, batch=2 if dynamic else 1, runtime=out)
    return out


def eval_model(model: nn.Module, names: list[str], backend: str, imgsz: int, settings: dict[str, Any],
               threads: int | None = None) -> nn.Module:
    """``model`` itself for ``torch``; else a :class:`BackendModel` over its dynamic-shape export on that
    runtime (evaluation batches can be rectangular), or its static one at ``imgsz`` for a model whose graph
    takes one image of one size (:attr:`rtdet.models.base.RtdetModel.dynamic_export`), decoding with ``settings``."""
    if backend == "torch":
        return model
    return BackendModel(backend_for_model(model, names, backend, threads, imgsz, dynamic=model.dynamic_export),
                        settings)


class Pipeline:
    """One backend's frames end to end: the task's preprocess (its buffers reused across frames) ->
    the network -> the task's decoding to original pixels.

    ``pipeline(image uint8 HxWx3 RGB) -> result`` (see :func:`infer` for the result's keys); the three
    steps are also callable one by one (``preprocess``, ``backend``, ``decode``), as ``rtdet bench``
    times them. One pipeline per thread: its input buffer is overwritten by every frame.

    Args:
        imgsz: input size (None: the backend's). settings: the task's decoding settings (detect: conf,
            iou, method, max_det; classify: topk), the model family's fixed decoding over them.
    """

    def __init__(self, backend: Backend, imgsz: int | None = None, settings: dict[str, Any] | None = None) -> None:
        self.backend, self.size = backend, imgsz or backend.imgsz
        self.task = get_task(backend.task)
        self.settings = {**(settings or {}), **backend.decoding}
        self.preprocess = self.task.preprocessor(self.size)

    def decode(self, outputs: tuple[Tensor, ...], geometry: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        result = self.task.decode(outputs, geometry, shape, self.backend.names, self.settings)
        if self.backend.category_ids:
            result["category_ids"] = [self.backend.category_ids[int(c)] for c in result["labels"]]
        return result

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        x, geometry = self.preprocess(image)
        return self.decode(self.backend(x), geometry, image.shape)


def infer(backend: Backend, images: list[np.ndarray], imgsz: int | None = None,
          settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Results in original pixels for uint8 HxWx3 RGB ``images`` (one inference per image, one
    :class:`Pipeline`).

    ``settings``: the task's decoding settings (detect: conf, iou, method, max_det; classify: topk).
    Detect results: ``boxes`` float32 [D, 4] xyxy original pixels (clipped), ``scores`` [D],
    ``labels`` int64 [D], ``names``; classify: ``probs`` [K], its top ``labels``, ``scores``, ``names``.
    Both add ``category_ids`` (the data set's own id of each label) when the backend knows them.
    """
    pipeline = Pipeline(backend, imgsz, settings)
    with host_threads(backend):
        return [pipeline(image) for image in images]


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
