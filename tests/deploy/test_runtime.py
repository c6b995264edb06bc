"""Backends: torch and ONNX Runtime give the same raw outputs and detections; loading rules; the model adapter."""

import copy

import pytest
import torch

from rtdet.deploy.images import sample_images, to_input
from rtdet.deploy.runtime import BackendModel, OrtBackend, TorchBackend, infer, load_backend, stack_padded
from tests.deploy.conftest import DECODE, NAMES

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def images():
    return sample_images(3)


def test_backends_agree_on_raw_outputs_and_detections(checkpoint, onnx_file, images):
    tb = load_backend(checkpoint, "torch", imgsz=160)
    ob = load_backend(onnx_file, "onnxruntime", threads=1)
    assert isinstance(tb, TorchBackend) and isinstance(ob, OrtBackend)
    assert tb.names == ob.names == NAMES and ob.imgsz == 160
    x = torch.cat([to_input(im, 160)[0] for im in images[:2]])  # batch 2 through a static batch-1 graph
    for a, b in zip(tb(x), ob(x)):
        assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)
    dt = infer(tb, images, settings=dict(DECODE, conf=0.05))
    do = infer(ob, images, settings=dict(DECODE, conf=0.05))
    for a, b, im in zip(dt, do, images):
        assert len(a["labels"]) > 0 and a["labels"].tolist() == b["labels"].tolist() and a["names"] == b["names"]
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-3, rtol=0)
        h, w = im.shape[:2]  # original pixels, clipped
        assert (a["boxes"][:, 2] <= w).all() and (a["boxes"][:, 3] <= h).all() and (a["boxes"] >= 0).all()


def test_loading_rules(checkpoint, onnx_file, tmp_path):
    with pytest.raises(ValueError, match="torch backend needs a .pt"):
        load_backend(onnx_file, "torch")
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend(checkpoint, "tensorrt")
    with pytest.raises(ValueError, match="weights not found: .*nope.pt"):  # a ModelError, also a ValueError
        load_backend(tmp_path / "nope.pt")
    ob = load_backend(onnx_file, threads=1)
    with pytest.raises(ValueError, match="static graph for 160x160"):
        ob(torch.zeros(1, 3, 192, 192))


def test_checkpoint_on_onnxruntime_is_exported_on_the_fly(checkpoint, images):
    ob = load_backend(checkpoint, "onnxruntime", threads=1, imgsz=160)
    assert ob.path.suffix == ".onnx" and ob.names == NAMES


def test_backend_model_follows_the_eval_contract(model, onnx_file, images):
    adapter = BackendModel(OrtBackend(onnx_file, threads=1), dict(DECODE, conf=0.05, iou=0.7))
    x = to_input(images[0], 160)[0]
    got = adapter(x)[0]
    model = copy.deepcopy(model)  # the fixture is shared
    model.set_postprocess(**dict(DECODE, conf=0.05))
    with torch.no_grad():
        ref = model(x)[0]
    assert len(ref["labels"]) > 0 and got["labels"].tolist() == ref["labels"].tolist()
    torch.testing.assert_close(got["boxes"], ref["boxes"], atol=1e-3, rtol=0)


def test_threads_and_spinning_reach_the_session(onnx_file, checkpoint):
    def spinning(backend):
        return backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(load_backend(onnx_file)) == "0"  # default: idle threads sleep
    assert spinning(load_backend(onnx_file, spin=True)) == "1"
    assert spinning(load_backend(checkpoint, "onnxruntime", imgsz=160, spin=True)) == "1"
    assert load_backend(onnx_file, threads=1).session.get_session_options().intra_op_num_threads == 1


def test_per_image_outputs_of_a_batch_one_graph_stack_with_zero_rows():
    import numpy as np

    a, b = np.ones((1, 3, 2, 4), np.float32), np.full((1, 5, 2, 4), 2, np.float32)  # Faster R-CNN: proposals vary
    out = stack_padded([a, b])
    assert out.shape == (2, 5, 2, 4) and out[0, 3:].max() == 0 and out[0, :3].min() == 1 and out[1].min() == 2
    same = [np.ones((1, 7, 3), np.float32)] * 2  # YOLO: a fixed number of anchors
    assert stack_padded(same).shape == (2, 7, 3)
