"""The OpenVINO backend: the same outputs as PyTorch and ONNX Runtime, behind the same call, in val and bench."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rtdet.cli import main
from rtdet.deploy.images import sample_images, to_input
from rtdet.deploy.runtime import OrtBackend, TorchBackend, infer, load_backend
from rtdet.errors import ModelError
from tests.deploy.conftest import DECODE, NAMES

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino", reason="openvino not installed (pip install 'rtdet[openvino]')")


def test_openvino_equals_torch_and_onnxruntime(checkpoint, onnx_file, model):
    from rtdet.deploy.openvino import OvBackend

    ov = load_backend(onnx_file, "openvino", threads=1)
    assert isinstance(ov, OvBackend) and ov.names == NAMES and ov.imgsz == 160 and ov.task == "detect"
    assert ov.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert str(ov.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    images = sample_images(3)
    x = torch.cat([to_input(im, 160)[0] for im in images[:2]])  # batch 2 through a static batch-1 graph
    ort, ref = OrtBackend(onnx_file, threads=1), TorchBackend(model, NAMES, 160)
    for a, b, r in zip(ov(x), ort(x), ref(x)):
        assert a.shape == b.shape == r.shape and a.dtype == torch.float32
        torch.testing.assert_close(a, r, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
    settings = dict(DECODE, conf=0.05)
    for a, b in zip(infer(ov, images, settings=settings), infer(ort, images, settings=settings)):
        assert len(a["labels"]) > 0 and a["labels"].tolist() == b["labels"].tolist()
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-2, rtol=0)


def test_a_checkpoint_on_openvino_is_exported_and_checked_against_pytorch(checkpoint, monkeypatch):
    from rtdet.deploy import onnx as onnx_module
    from rtdet.deploy.openvino import OvBackend

    checked = []
    real = onnx_module.check_parity
    monkeypatch.setattr(onnx_module, "check_parity", lambda *a, **k: checked.append(k.get("runtime")) or real(*a, **k))
    ov = load_backend(checkpoint, "openvino", threads=1, imgsz=160)
    assert isinstance(ov, OvBackend) and ov.path.suffix == ".onnx"
    assert any(isinstance(r, OvBackend) for r in checked)  # OpenVINO's own outputs were compared with PyTorch's
    ov(torch.zeros(1, 3, 160, 160))  # the temporary file is gone; the compiled model is not


def test_openvino_errors_name_the_file(tmp_path, onnx_file):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.onnx"):
        load_backend(bad, "openvino")
    with pytest.raises(ValueError, match="static graph for 160x160"):
        load_backend(onnx_file, "openvino", threads=1)(torch.zeros(1, 3, 192, 192))


def test_val_and_bench_run_on_openvino(onnx_file, checkpoint, tmp_path, capsys):
    import cv2

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for i, image in enumerate(sample_images(3)):
        cv2.imwrite(str(data / "images" / f"{i}.jpg"), image[..., ::-1])
        (data / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (data / "data.yaml").write_text(f"path: {data}\ntrain: images\nval: images\nnames: {json.dumps(NAMES)}\n")
    scores = {}
    for backend in ("onnxruntime", "openvino"):
        out = tmp_path / backend
        assert main(["val", "--weights", str(onnx_file), "--data", str(data / "data.yaml"), "--backend", backend,
                     "--workers", "0", "--out", str(out)]) == 0
        scores[backend] = json.loads((out / "metrics.json").read_text())
    for key in ("AP", "AP50", "AR100"):
        assert abs(scores["onnxruntime"][key] - scores["openvino"][key]) <= 1e-3, key
    assert main(["bench", "--weights", str(checkpoint), "--backend", "openvino", "--imgsz", "160", "--runs", "3",
                 "--warmup", "1", "--threads", "1", "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["backend"] == "openvino"


# Two OpenVINO models freed first-made-first-freed, then child processes under a Python SIGCHLD handler (as
# PyTorch's DataLoader installs): without keep_signal_stack the thread's alternate signal stack is left pointing
# at unmapped memory and the first SIGCHLD kills the process (SIGSEGV), as it did the whole test suite once.
FREED_IN_ORDER = """\
import gc, signal, subprocess, sys
import torch
from rtdet.deploy.openvino import signal_stack
from rtdet.deploy.runtime import load_backend
signal.signal(signal.SIGCHLD, lambda *a: None)
before = signal_stack()
first = load_backend(sys.argv[1], "openvino", threads=1)
second = load_backend(sys.argv[1], "openvino", threads=1)
first(torch.zeros(1, 3, 160, 160)); second(torch.zeros(1, 3, 160, 160))
assert signal_stack() == before, (signal_stack(), before)
del first; gc.collect()
del second; gc.collect()
assert signal_stack() == before, (signal_stack(), before)
for _ in range(5):
    subprocess.run([sys.executable, "-c", "pass"], check=True)
print("survived")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read through Linux's stack_t")
def test_models_freed_in_any_order_leave_the_signal_stack_as_found(onnx_file):
    for faulthandler in ([], ["-X", "faulthandler"]):  # no alternate stack at first; faulthandler's
        r = subprocess.run([sys.executable, *faulthandler, "-c", FREED_IN_ORDER, str(onnx_file)], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stderr[-2000:])
