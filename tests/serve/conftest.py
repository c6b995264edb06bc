"""Servers for the tests: tiny models of each task (random weights, as tests/deploy's), real uvicorn on a
loopback port in a thread, and the photos they are asked about (coco128's when present)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtdet.config import config_to_dict, load_config
from rtdet.deploy.images import image_files, shared_data_dir
from rtdet.models import build_model
from tests.deploy.conftest import NAMES, make_model
from tests.models.test_layers import _randomize_bn

pytest.importorskip("fastapi", reason="rtdet serve needs the serve extra (pip install 'rtdet[serve]')")
httpx = pytest.importorskip("httpx", reason="the server tests' HTTP client is httpx (the dev extra)")

from rtdet.serve.server import listen, url, uvicorn_server  # noqa: E402  (after the extra's check)


def save_checkpoint(model: torch.nn.Module, names: list[str], path: Path, imgsz: int) -> Path:
    """A checkpoint with the keys rtdet's trainer writes; ``imgsz`` is the size it says it was trained at."""
    cfg = load_config(None, {"model": model.build_args["name"], "imgsz": imgsz})
    torch.save({"model": model.state_dict(), "model_args": dict(model.build_args), "meta": {"names": names},
                "config": config_to_dict(cfg), "ema": None}, path)
    return path


def make_segmenter(num_classes: int = 3) -> torch.nn.Module:
    """rtdet-seg-n with random BatchNorm statistics and its classifier's bias centred on a sample photo's mean
    logits, so that each class wins somewhere (untrained, it labels nearly every pixel alike)."""
    from rtdet.deploy.images import sample_images, to_input

    torch.manual_seed(0)
    model = build_model("rtdet-seg-n", num_classes)
    _randomize_bn(model)
    model.eval()
    x, _ = to_input(sample_images(1)[0], 128)
    with torch.no_grad():
        model.head[-1].bias -= model(x)[0]["logits"].mean((1, 2))
    return model


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    """``detect`` (.pt, 160 px), ``detect-onnx`` (its static 160 px export), ``classify`` and ``segment`` (.pt)."""
    from rtdet.deploy.onnx import export_onnx

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    out = {"detect": save_checkpoint(make_model(), NAMES, folder / "det.pt", 160),
           "classify": save_checkpoint(build_model("rtdet-cls-n", 3).eval(), ["cat", "dog", "fox"],
                                       folder / "cls.pt", 64),
           "segment": save_checkpoint(make_segmenter(), ["sky", "road", "car"], folder / "seg.pt", 128)}
    out["detect-onnx"] = export_onnx(out["detect"], folder / "det.onnx", imgsz=160)
    return out


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> list[Path]:
    """Three photos: coco128's first three, or three generated JPEGs (shapes on noise) when it is absent."""
    files = image_files(shared_data_dir() / "coco128" / "images")[:3]
    if files:
        return files
    folder, rng = tmp_path_factory.mktemp("photos"), np.random.default_rng(0)
    out = []
    for i in range(3):
        img = rng.integers(0, 256, (240 + 40 * i, 320, 3), dtype=np.uint8)
        cv2.rectangle(img, (40, 40), (200, 180), (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"p{i}.jpg"), img)
        out.append(folder / f"p{i}.jpg")
    return out


def app_for(weights: Path, backend: str = "", **limits):
    """The app ``rtdet serve --weights weights`` builds (default settings), with ``limits`` (workers, queue,
    max_bytes) passed on."""
    from rtdet.config import Config
    from rtdet.deploy.runtime import load_backend
    from rtdet.serve.app import create_app
    from rtdet.tasks import get_task

    loaded = load_backend(weights, backend or ("onnxruntime" if weights.suffix == ".onnx" else "torch"))
    return create_app(loaded, get_task(loaded.task).settings(Config()), weights.name, **limits)


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = listen("127.0.0.1", 0)
    server = uvicorn_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@pytest.fixture(scope="session")
def servers(weights):
    """Base URLs of running servers: ``detect`` (the ONNX file), ``detect-torch`` (the checkpoint),
    ``classify`` and ``segment`` (checkpoints, torch)."""
    with running(app_for(weights["detect-onnx"])) as det, running(app_for(weights["detect"])) as det_pt, \
            running(app_for(weights["classify"])) as cls, running(app_for(weights["segment"])) as seg:
        yield {"detect": det, "detect-torch": det_pt, "classify": cls, "segment": seg}
