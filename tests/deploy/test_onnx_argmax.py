"""export --argmax: the class map inside the graph equals PyTorch's arg-max; refused for other tasks; a graph
that disagrees fails the check."""

import numpy as np
import pytest
import torch

from rtdet.deploy.images import sample_images, to_input
from rtdet.deploy.onnx import ExportError, export_onnx, fused_copy, read_metadata
from rtdet.deploy.onnx_argmax import check_argmax_parity, input_frame_logits
from rtdet.errors import ModelError
from rtdet.models import build_model

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("dynamic", [False, True])
def test_labels_equal_pytorch_argmax(tmp_path, dynamic):
    torch.manual_seed(0)
    model = build_model("rtdet-seg-n", 5).eval()
    report: dict = {}
    path = export_onnx(model, tmp_path / "m.onnx", imgsz=64, dynamic=dynamic, argmax=True, names=list("abcde"),
                       report=report)
    assert read_metadata(path)["argmax"] and report["labels"] < 1e-3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = 96 if dynamic else 64
    x = torch.cat([to_input(im, size)[0] for im in sample_images(2, task="segment")])[: 2 if dynamic else 1]
    (labels,) = sess.run(["labels"], {"images": x.numpy()})
    with torch.no_grad():
        want = input_frame_logits(model, x).argmax(1).numpy()  # stride-4 logits resampled to the input
    assert model.forward_raw(x)[0].shape[-1] == size // 4 and want.shape[-1] == size
    assert labels.dtype == np.int64 and labels.shape == want.shape and (labels != want).mean() < 1e-3


def test_refused_for_other_tasks_and_a_disagreeing_graph_fails(tmp_path):
    with pytest.raises(ModelError, match="--argmax is for segmentation"):
        export_onnx(build_model("rtdet-cls-n", 3), tmp_path / "c.onnx", imgsz=32, argmax=True)
    torch.manual_seed(0)
    path = export_onnx(build_model("rtdet-seg-n", 5), tmp_path / "a.onnx", imgsz=64, argmax=True)
    torch.manual_seed(1)
    other = fused_copy(build_model("rtdet-seg-n", 5))
    with pytest.raises(ExportError, match="in-graph argmax differs"):
        check_argmax_parity(other, path, 64)
