"""ONNX export: parity with PyTorch on real coco128 images, metadata, dynamic axes, float16 weights, errors."""

import numpy as np
import pytest
import torch

from rtdet.deploy.images import sample_images, shared_data_dir, to_input
from rtdet.deploy.onnx import ExportError, check_parity, export_onnx, fused_copy, read_metadata
from rtdet.models import build_model
from tests.deploy.conftest import NAMES

ort = pytest.importorskip("onnxruntime")


def test_export_from_checkpoint_matches_pytorch_on_real_images(model, onnx_file):
    if not (shared_data_dir() / "coco128").is_dir():
        pytest.skip("shared coco128 absent (the check falls back to random images)")
    diffs = check_parity(fused_copy(model), onnx_file, 160, n=3)
    assert diffs["boxes"] <= 1e-4 and diffs["scores"] <= 1e-4
    # and against the unfused model: fusion changes nothing beyond rounding
    x = to_input(sample_images(1)[0], 160)[0]
    boxes, scores = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = model.forward_raw(x)
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-4)


def test_metadata_and_fused_graph(onnx_file, model):
    import onnx

    meta = read_metadata(onnx_file)
    assert meta["names"] == NAMES and meta["imgsz"] == 160 and not meta["dynamic"] and meta["model"] == "rtdet-n"
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(onnx_file)).graph.node}


def test_module_export_leaves_the_model_untouched_dynamic_axes(model, tmp_path):
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    path = export_onnx(model, tmp_path / "d.onnx", imgsz=160, dynamic=True, names=NAMES)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == n_bn > 0
    diffs = check_parity(fused_copy(model), path, 224, batch=2)  # other batch and size than exported
    assert diffs["boxes"] <= 1e-4 + 1e-6 * 224


def test_half_weights_shrink_the_file_within_documented_tolerance(model, onnx_file, tmp_path):
    half = export_onnx(model, tmp_path / "h.onnx", imgsz=160, half=True)
    assert half.stat().st_size < 0.6 * onnx_file.stat().st_size
    assert read_metadata(half)["half"]


def test_mismatch_and_bad_size_raise_clear_errors(onnx_file, model, tmp_path):
    other = build_model("rtdet-n", 3).eval()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        check_parity(other, onnx_file, 160)
    with pytest.raises(ValueError, match="multiple of 32"):
        export_onnx(model, tmp_path / "x.onnx", imgsz=100)


def test_cli_export(checkpoint, tmp_path, capsys):
    from rtdet.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", "--weights", str(checkpoint), "--imgsz", "160", "--out", str(out)]) == 0
    assert out.is_file() and "max |diff|" in capsys.readouterr().out
    assert read_metadata(out)["names"] == NAMES
    assert main(["export", "--weights", str(checkpoint), "--nms", "--dynamic", "--out", str(out)]) == 2
    assert "static float32" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "missing.pt")]) == 2


def test_graph_is_simplified_and_portable(onnx_file):
    import onnx

    proto = onnx.load(str(onnx_file))
    ops = [n.op_type for n in proto.graph.node]
    assert "Identity" not in ops and "Shape" not in ops  # static anchor grid folded into constants
    assert {op.domain for op in proto.opset_import} <= {"", "ai.onnx"}


def test_export_leaves_unfused_normalization_in_eval_mode(tmp_path):
    """A family whose BatchNorm layers are not folded (torchvision's segmenters, GroupNorm models) exports and
    passes the check: the traced wrapper keeps the model's eval mode instead of restoring its own train mode."""
    from torch import nn

    from rtdet.models.base import RtdetModel

    class Unfused(RtdetModel):
        task, output_names = "classify", ("probs",)

        def __init__(self):
            super().__init__()
            self.num_classes, self.build_args = 2, {"name": "toy", "num_classes": 2}
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(4, 2))

        def forward_raw(self, images):
            return (self.body(images).softmax(1),)

    model = Unfused()
    model.body[1].running_mean.fill_(3.0)  # batch statistics would differ from these
    export_onnx(model, tmp_path / "m.onnx", imgsz=32, names=["a", "b"])
    assert not model.training


class _CastModel(torch.nn.Module):
    """A float32 output passed through ``.float()`` (a no-op Cast in the trace), and a real cast to int64."""

    def forward(self, x):
        y = torch.nn.functional.relu(x * 2.0)
        return y.float(), (y > 1).long().float().sum((1, 2, 3))


def test_noop_casts_are_dropped_real_ones_kept(tmp_path):
    import onnx
    import onnxruntime as ort

    from rtdet.deploy.onnx import drop_noop_casts

    path = tmp_path / "cast.onnx"
    x = torch.rand(2, 3, 8, 8)
    torch.onnx.export(_CastModel(), (x,), str(path), input_names=["images"], output_names=["logits", "count"],
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    targets = [next(a.i for a in n.attribute) for n in proto.graph.node if n.op_type == "Cast"]
    assert targets == [1, 7, 1]  # float32 -> float32 (the no-op), bool -> int64, int64 -> float32
    assert drop_noop_casts(proto) == 1
    assert [next(a.i for a in n.attribute) for n in proto.graph.node if n.op_type == "Cast"] == [7, 1]
    onnx.checker.check_model(proto)
    assert [o.name for o in proto.graph.output] == ["logits", "count"]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})
    want = _CastModel()(x)
    np.testing.assert_array_equal(out[0], want[0].numpy())
    np.testing.assert_array_equal(out[1], want[1].numpy())


def test_exported_segmenter_ends_without_a_cast(tmp_path):
    import onnx

    model = build_model("rtdet-seg-n", num_classes=3).eval()
    path = export_onnx(model, tmp_path / "seg.onnx", imgsz=64, names=["a", "b", "c"])
    nodes = onnx.load(str(path)).graph.node
    assert "Cast" not in [n.op_type for n in nodes] and nodes[-1].output[0] == "logits"
