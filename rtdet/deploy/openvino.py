"""OpenVINO backend: an rtdet ``.onnx`` export run by OpenVINO's CPU plugin (optional: ``pip install rtdet[openvino]``).

The same file, inputs, outputs and metadata as ONNX Runtime (:class:`rtdet.deploy.runtime.OrtBackend`);
OpenVINO reads ONNX directly, so there is no second export format. Settings:

- ``PERFORMANCE_HINT=LATENCY``: one stream, one frame at a time (what a camera loop does);
- ``INFERENCE_NUM_THREADS``: the intra-op threads (0: OpenVINO's choice, a thread per core);
- ``INFERENCE_PRECISION_HINT=f32``: on CPUs with bfloat16 units (AVX512-BF16, AMX) OpenVINO would
  otherwise compute float32 models in bfloat16 (about 3 significant digits: a box edge at x=300 moves
  by up to 1 px), a change of accuracy nobody asked for. int8 models keep their int8 convolutions.

A ``.pt`` checkpoint asked to run here is exported first and the OpenVINO outputs are checked against
PyTorch like ONNX Runtime's (:func:`rtdet.deploy.runtime.backend_for_model`).

Every call into OpenVINO leaves the calling thread's alternate signal stack as it found it
(:func:`keep_signal_stack`). OpenVINO's CPU plugin (2025.x) installs a stack of its own in the thread
that compiles a model and, when the model is freed, puts back the stack it found and unmaps its own.
Two models freed in the order they were made (first made, first freed) leave the thread pointing at
the first one's unmapped stack; the next signal with a Python handler (all run on the alternate
stack: ``SA_ONSTACK``), such as the ``SIGCHLD`` PyTorch's DataLoader handles, then kills the process
with a segmentation fault. ``tests/deploy/test_openvino.py`` shows the crash and its absence.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rtdet.deploy.runtime import OnnxFileBackend
from rtdet.errors import ModelError


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class _StackT(ctypes.Structure):
    """Linux's ``stack_t`` (``<signal.h>``)."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (``sigaltstack`` is read around every inference)."""
    return ctypes.CDLL(None)


def signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack as (address, flags, size) from ``sigaltstack(2)``;
    None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    current = _StackT()
    if _libc().sigaltstack(None, ctypes.byref(current)) != 0:
        return None
    return current.ss_sp or 0, current.ss_flags, current.ss_size


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Restore the calling thread's alternate signal stack after the block (Linux; elsewhere nothing):
    OpenVINO's own is never left installed (see the module docstring)."""
    before = signal_stack()
    try:
        yield
    finally:
        if before is not None and signal_stack() != before:
            address, flags, size = before
            stack = _StackT(address or None, flags & 2, size)  # SS_DISABLE kept; SS_ONSTACK is not settable
            _libc().sigaltstack(ctypes.byref(stack), None)


class OvBackend(OnnxFileBackend):
    """An rtdet ``.onnx`` compiled by OpenVINO for the CPU (see the module docstring).

    ``run`` is safe to call from several threads: each thread gets its own infer request.
    """

    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            import onnx
            import openvino as ov
        except ImportError as e:
            raise ModelError(f"--backend openvino needs the openvino package (pip install 'rtdet[openvino]'): {e}") \
                from None
        try:
            with keep_signal_stack():
                model = ov.Core().read_model(str(path))
        except Exception as e:  # not ONNX, torn, or an op OpenVINO lacks: one line naming the file
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: OpenVINO cannot read this model ({first})") from e
        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        outputs = tuple(o.name for o in proto.graph.output)
        self._load_metadata(path, props, outputs)
        self.threads = threads
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                  "INFERENCE_NUM_THREADS": int(threads or 0)}
        with keep_signal_stack():
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        self._ports = [self._port(name) for name in outputs]
        self._local = threading.local()

    def _port(self, name: str) -> Any:
        for port in self.compiled.outputs:
            if name in port.get_names():
                return port
        raise ModelError(f"{self.path}: OpenVINO's compiled model has no output named {name!r}")

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        with keep_signal_stack():
            if request is None:
                request = self._local.request = self.compiled.create_infer_request()
            result = request.infer({0: np.ascontiguousarray(x, np.float32)})  # copies outputs (share_outputs=False)
        return [result[port] for port in self._ports]
