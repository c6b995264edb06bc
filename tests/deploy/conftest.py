"""Shared fixtures: a small randomly initialised rtdet-n, saved as a training-style checkpoint and as ONNX."""

import pytest
import torch

from rtdet.config import Config, config_to_dict
from rtdet.models import build_model
from tests.models.test_layers import _randomize_bn

NAMES = ["person", "bicycle", "car"]
DECODE = {"conf": 0.25, "iou": 0.7, "method": "nms", "max_det": 300}  # detect.conf etc. as rtdet.config defines them


def make_model(seed: int = 0, num_classes: int = len(NAMES)):
    torch.manual_seed(seed)
    m = build_model("rtdet-n", num_classes)
    _randomize_bn(m)  # non-trivial BN statistics so that Conv+BN fusion is really exercised
    with torch.no_grad():  # scores around 0.1-0.5 instead of the 0.01 prior, so that there is something to detect
        for name, p in m.head.named_parameters():
            if name.startswith("cls.") and name.endswith(".2.bias"):
                p.add_(3.0)
    return m.eval()


@pytest.fixture(scope="session")
def model():
    return make_model()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, model):
    """A checkpoint with the keys rtdet's trainer writes and ``load_detector`` reads."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"model": model.state_dict(), "model_args": dict(model.build_args), "meta": {"names": NAMES},
                "config": config_to_dict(Config()), "ema": None}, path)
    return path


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory, checkpoint):
    from rtdet.deploy.onnx import export_onnx

    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "m.onnx", imgsz=160)
