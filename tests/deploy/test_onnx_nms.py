"""NMS inside the ONNX graph equals rtdet's postprocess (multi-label, class-aware) on real images."""

import numpy as np
import pytest
import torch

from rtdet.cli import main
from rtdet.deploy.images import sample_images, to_input
from rtdet.deploy.onnx import ExportError, fused_copy, read_metadata
from rtdet.deploy.onnx_nms import NmsOutputs, check_nms_parity, export_onnx_nms
from rtdet.deploy.runtime import load_backend

ort = pytest.importorskip("onnxruntime")


def test_cli_export_nms_checked_and_refused_by_raw_backends(checkpoint, tmp_path, capsys):
    out = tmp_path / "nms.onnx"
    argv = ["export", "--weights", str(checkpoint), "--imgsz", "160", "--nms", "--conf", "0.05", "--max-det", "20",
            "--out", str(out)]
    assert main(argv) == 0
    assert "in-graph NMS equals" in capsys.readouterr().out
    assert read_metadata(out)["nms"]
    x = to_input(sample_images(1)[0], 160)[0]
    (dets,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    assert dets.shape[1] == 6 and 0 < len(dets) <= 20 and (np.diff(dets[:, 4]) <= 0).all() and (dets[:, 4] > 0.05).all()
    with pytest.raises(ValueError, match="re-export without --nms"):
        load_backend(out)


def test_pytorch_module_and_many_detections(model, tmp_path):
    fused = fused_copy(model)
    x = to_input(sample_images(1)[0], 160)[0]
    with torch.no_grad():
        dets = NmsOutputs(fused, 160, conf=0.001, max_det=300)(x)
    assert dets.shape[1] == 6 and len(dets) <= 300
    # conf 0.04: below it the random model's scores on the flat letterbox padding are tied to 1e-8,
    # and which of two near-equal boxes survives NMS then depends on rounding (see check_nms_parity)
    # IoU 0.9: the random model's boxes overlap a lot, so a loose threshold keeps many of them
    export_onnx_nms(fused, tmp_path / "n.onnx", 160, 0.04, 0.9, 300)
    assert check_nms_parity(fused, tmp_path / "n.onnx", 160, 0.04, 0.9, 300) > 50
    with pytest.raises(ExportError, match="in-graph NMS"):
        check_nms_parity(fused, tmp_path / "n.onnx", 160, 0.04, 0.3, 300)  # other threshold than exported


def test_in_graph_nms_of_a_box_per_class(tmp_path):
    """Faster R-CNN's per-class boxes go to ONNX NMS as one batch per class."""
    from rtdet.models import build_model

    torch.manual_seed(0)
    fused = fused_copy(build_model("faster-rcnn", 3))
    export_onnx_nms(fused, tmp_path / "r.onnx", 96, 0.2, 0.5, 50)  # an untrained head scores every class ~1/4
    assert check_nms_parity(fused, tmp_path / "r.onnx", 96, 0.2, 0.5, 50) > 10
