"""Segmenters: contract, the four upsamplers (and how they start), fusion, rebuilding, backbone transfer, size."""

import pytest
import torch

from rtdet.config import load_config
from rtdet.engine.checkpoint import load_pretrained
from rtdet.errors import ModelError
from rtdet.models import build_from_config, build_model
from rtdet.models.info import model_info
from rtdet.models.seg import SEG_SCALES, UPSAMPLERS, Upsampler, build_segmenter
from rtdet.registry import MODELS
from tests.models.test_layers import _randomize_bn


def _targets(b, h, w, k=5):
    """Random masks with values 0..K (K: unlabelled) and an unlabelled top row (255)."""
    g = torch.Generator().manual_seed(0)
    return [{"mask": torch.randint(0, k + 1, (h, w), generator=g).index_fill_(0, torch.tensor([0]), 255)}
            for _ in range(b)]


def test_registry_entries_build_segmenters():
    assert set(SEG_SCALES) == {n for n, s in MODELS.items() if s.family == "seg"}
    for name in SEG_SCALES:
        model = build_model(name, 3)
        assert model.task == "segment" and model.output_names == ("logits",)
    with pytest.raises(ModelError, match="unknown segmenter"):
        build_segmenter("rtdet-seg-x", 3)
    with pytest.raises(ModelError, match="unknown upsample 'cubic'"):
        build_model("rtdet-seg-n", 3, upsample="cubic")
    with pytest.raises(ModelError, match="num_classes >= 2"):
        build_model("rtdet-seg-n", 1)


@pytest.mark.parametrize("upsample, head_stride", [(u, 4) for u in UPSAMPLERS] + [(u, 8) for u in UPSAMPLERS])
def test_contract_in_every_mode(upsample, head_stride):
    model = build_model("rtdet-seg-n", 5, upsample=upsample, head_stride=head_stride)
    x = torch.rand(2, 3, 64, 96)
    losses = model.train()(x, _targets(2, 64, 96))
    assert set(losses) == {"loss_ce"} and torch.isfinite(losses["loss_ce"])
    losses["loss_ce"].backward()
    model.eval()
    with torch.no_grad():
        preds = model(x)
        (raw,) = model.forward_raw(x)
        both, loss = model.predict_with_loss(x, _targets(2, 64, 96))
    grid = (64 // head_stride, 96 // head_stride) if upsample == "bilinear" else (64, 96)  # bilinear: the task's
    assert model.head_output(x).shape[-2:] == (64 // head_stride, 96 // head_stride)
    assert model.logit_stride == 64 // grid[0]
    assert len(preds) == 2 and preds[0]["logits"].shape == (5, *grid) and raw.shape == (2, 5, *grid)
    assert all(p["input_size"] == (64, 96) for p in [*preds, *both])
    torch.testing.assert_close(torch.stack([p["logits"] for p in both]), raw)
    torch.testing.assert_close(model.logits(x), model.upsample(model.head_output(x)))  # what the loss reads
    assert model.logits(x).shape == (2, 5, 64, 96)
    assert set(loss) == {"loss_ce"}
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))


def test_transposed_starts_as_bilinear_and_pixelshuffle_as_nearest():
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        diff = Upsampler("transposed", 3)(x) - Upsampler("bilinear", 3)(x)
    assert diff[..., 4:-4, 4:-4].abs().max() < 1e-6  # equal away from the border (zero padding there)
    model = build_model("rtdet-seg-n", 4, upsample="pixelshuffle").eval()
    with torch.no_grad():
        out = model.forward_raw(torch.rand(1, 3, 64, 64))[0]
    blocks = out.reshape(1, 4, 16, 4, 16, 4)  # each 4x4 block holds one value per class (ICNR)
    assert (blocks - blocks[:, :, :, :1, :, :1]).abs().max() == 0


def assert_rebuilds_and_fuses(model):
    """``build_model(**model.build_args)`` with ``model``'s weights, and ``model.fuse()``, give its export output
    (BatchNorm statistics randomized first, so that folding them is not a no-op)."""
    model.eval()
    _randomize_bn(model)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model.forward_raw(x)[0]
        again = build_model(**model.build_args)
        again.load_state_dict(model.state_dict())
        torch.testing.assert_close(again.eval().forward_raw(x)[0], ref)
        torch.testing.assert_close(model.fuse().forward_raw(x)[0], ref, atol=1e-4, rtol=1e-4)


def test_fused_equals_unfused_and_rebuilds_from_build_args():
    model = build_model("rtdet-seg-n", 4, upsample="transposed")
    assert_rebuilds_and_fuses(model)
    assert model.build_args["upsample"] == "transposed"


def test_config_reaches_the_network_and_the_loss():
    cfg = load_config(None, {"model": "rtdet-seg-n", "upsample": "pixelshuffle", "dice_gain": 0.5, "act": "silu"})
    model = build_from_config(cfg, 3)
    assert model.build_args["upsample"] == "pixelshuffle" and model.build_args["act"] == "silu"
    assert set(model.train()(torch.rand(2, 3, 64, 64), _targets(2, 64, 64, 3))) == {"loss_ce", "loss_dice"}


def test_backbone_transfers_from_the_detector_and_the_classifier():
    seg = build_model("rtdet-seg-n", 4)
    for name in ("rtdet-n", "rtdet-cls-n"):
        report = load_pretrained(seg, build_model(name, 10).state_dict())
        backbone = [k for k in seg.state_dict() if k.startswith("backbone.")]
        assert sorted(k for k in report.loaded if k.startswith("backbone.")) == sorted(backbone)


def test_size_at_camvid_resolution():
    n = model_info(build_model("rtdet-seg-n", 11), 480)
    s = model_info(build_model("rtdet-seg-s", 11), 480)
    assert 0.3e6 < n["params"] < 1e6 and n["gflops"] < 1.5  # 0.56 M, 1.12 GFLOPs measured
    assert s["params"] > 5 * n["params"] and s["gflops"] > 10 * n["gflops"]
    assert build_model("rtdet-seg-n", 11, norm="gn").dynamic_axes() == {"logits": {0: "batch", 2: "height",
                                                                                    3: "width"}}


def test_output_stride_16_segmenter_exports_and_rebuilds(tmp_path):
    pytest.importorskip("onnxruntime")
    from rtdet.deploy.onnx import export_onnx
    from rtdet.models.seg import build_segmenter

    model = build_model("rtdet-seg-n", 4, output_stride=16).eval()
    assert model.backbone.strides[-1] == 16 and model.neck.factors == (2, 2, 1)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert model.forward_raw(x)[0].shape == (1, 4, 16, 24)
    again = build_segmenter(**model.build_args)
    assert again.backbone.strides[-1] == 16
    report: dict = {}
    export_onnx(model, tmp_path / "os16.onnx", imgsz=64, names=list("abcd"), report=report)
    assert report["logits"] < 1e-4


def test_head_stride_8_fuses_the_stages_at_strides_8_to_32(tmp_path):
    """seg.head_stride 8: the FPN reads P3..P5 only (no stride-4 lateral, smoothing or head), the logits are at
    stride 8, a quarter fewer multiply-adds at 480 px; it rebuilds from build_args, exports equal to PyTorch,
    takes loss_stride 2, 4 and 8's divisors, and deep supervision has one head (stride 16)."""
    pytest.importorskip("onnxruntime")
    from rtdet.deploy.onnx import export_onnx

    model = build_from_config(load_config(None, {"model": "rtdet-seg-n", "head_stride": 8, "loss_stride": 4}), 4)
    assert model.build_args["head_stride"] == 8 and model.loss_stride == 4
    assert [m.conv.in_channels for m in model.neck.lateral] == list(model.backbone.channels[2:])
    assert model.neck.factors == (2, 2) and model.logit_stride == 8
    x = torch.rand(2, 3, 64, 96)
    model.train()(x, _targets(2, 64, 96))["loss_ce"].backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("backbone.stem"))
    model.eval()
    with torch.no_grad():
        features = model.backbone.features(x)
        torch.testing.assert_close(model.head_output(x), model.head(model.neck(features[1:])))
        assert model.forward_raw(x)[0].shape == (2, 4, 8, 12)
    n4, n8 = (model_info(build_model("rtdet-seg-n", 11, head_stride=s), 480) for s in (4, 8))
    assert 0.7 < n8["gflops"] / n4["gflops"] < 0.8  # 411 of 558 M multiply-adds measured
    again = build_segmenter(**model.build_args)
    assert again.state_dict().keys() == model.state_dict().keys() and again.upsample.factor == 8
    report: dict = {}
    export_onnx(model, tmp_path / "hs8.onnx", imgsz=64, names=list("abcd"), report=report)
    assert report["logits"] < 1e-4
    aux = build_model("rtdet-seg-n", 4, head_stride=8, aux_gain=0.4)
    assert aux.aux_levels == (1,) and len(aux.aux_heads) == 1
    assert set(aux.train()(x, _targets(2, 64, 96))) == {"loss_ce", "loss_aux"}
    with pytest.raises(ModelError, match="head_stride must be one of"):
        build_model("rtdet-seg-n", 4, head_stride=16)
    with pytest.raises(ModelError, match="stride 3"):
        model.upsample.check_stride(3)


def test_inverted_residual_backbone_segmenter(tmp_path):
    """seg.blocks ir: the CLI setting reaches the backbone, the stride-16 and -32 stages are inverted residuals
    (1.37 M parameters for CamVid against the C2f backbone's 0.56 M), the model trains, rebuilds from build_args,
    exports equal to PyTorch; the stages at strides 4 and 8 still take a detector's weights."""
    pytest.importorskip("onnxruntime")
    from rtdet.deploy.onnx import export_onnx
    from rtdet.models.layers import InvertedResidual

    model = build_from_config(load_config(None, {"model": "rtdet-seg-n", "blocks": "ir"}), 4)
    assert model.build_args["blocks"] == "ir" and isinstance(model.backbone.stages[2][0], InvertedResidual)
    x = torch.rand(2, 3, 64, 96)
    model.train()(x, _targets(2, 64, 96, k=4))["loss_ce"].backward()
    assert all(p.grad is not None for p in model.parameters())
    params = model_info(build_model("rtdet-seg-n", 11, blocks="ir"), 480)["params"]
    assert 1.3e6 < params < 1.45e6  # 1,370,419
    again = build_segmenter(**model.build_args)
    assert again.state_dict().keys() == model.state_dict().keys()
    report: dict = {}
    _randomize_bn(model)
    export_onnx(model.eval(), tmp_path / "ir.onnx", imgsz=64, names=list("abcd"), report=report)
    assert report["logits"] < 1e-4
    loaded = load_pretrained(build_model("rtdet-seg-n", 4, blocks="ir"), build_model("rtdet-n", 10).state_dict()).loaded
    assert {k.split(".")[2] for k in loaded if k.startswith("backbone.stages.")} == {"0", "1"}
    with pytest.raises(ModelError, match="blocks must be one of"):
        build_model("rtdet-seg-n", 4, blocks="mbconv")


def test_auxiliary_heads_supervise_the_fpn_and_leave_predictions_alone():
    """aux_gain > 0: two class heads on the FPN's stride-16 and stride-8 sums add ``loss_aux`` = gain x their
    cross-entropy against the mask pixel at each cell's centre (a looped reference); eval is unchanged."""
    import torch.nn.functional as F

    cfg = load_config(None, {"model": "rtdet-seg-n", "aux_gain": 0.4})
    model = build_from_config(cfg, 5)
    assert model.build_args["aux_gain"] == 0.4 and len(model.aux_heads) == 2
    _randomize_bn(model)
    x, targets = torch.rand(2, 3, 64, 96), _targets(2, 64, 96)
    losses = model.train()(x, targets)
    assert set(losses) == {"loss_ce", "loss_aux"}
    losses["loss_aux"].backward()
    assert all(p.grad is not None for p in model.aux_heads.parameters())
    model.eval()
    with torch.no_grad():
        levels = model.neck.levels(model.backbone.features(x))
        expected = 0.0
        for head, level in zip(model.aux_heads, (levels[1], levels[2])):
            s = 64 // level.shape[-2]
            logits = head(level)
            labels = torch.full((2, *logits.shape[-2:]), -1)
            for b in range(2):
                for i in range(logits.shape[-2]):
                    for j in range(logits.shape[-1]):
                        value = int(targets[b]["mask"][i * s + s // 2, j * s + s // 2])
                        labels[b, i, j] = value if value < 5 else -1
            expected += F.cross_entropy(logits, labels, ignore_index=-1)
        torch.testing.assert_close(model.training_losses(x, targets)["loss_aux"], 0.4 * expected)  # eval-mode BN
        plain = build_model("rtdet-seg-n", 5)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("aux_heads.")}
        plain.load_state_dict(state)
        torch.testing.assert_close(plain.eval().forward_raw(x)[0], model.forward_raw(x)[0])
        assert set(model.predict_with_loss(x, targets)[1]) == {"loss_ce"}
    assert build_segmenter(**model.build_args).aux_heads[0][-1].out_channels == 5
    with pytest.raises(ModelError, match="aux_gain must be >= 0"):
        build_model("rtdet-seg-n", 5, aux_gain=-1.0)


def test_loss_stride_scores_coarser_logits_against_the_cell_centres():
    """seg.loss_stride 2: the loss reads the stride-4 logits upsampled 2x (not 4x) against the mask pixel at each
    2x2 cell's centre (a looped reference); predictions do not change; learned upsamplers refuse it."""
    import torch.nn.functional as F

    from rtdet.models.seg import apply_seg_settings, sample_masks

    model = build_from_config(load_config(None, {"model": "rtdet-seg-n", "loss_stride": 2}), 5)
    assert model.loss_stride == 2 and "loss_stride" not in model.build_args  # a loss setting, not the network's
    _randomize_bn(model)
    x, targets = torch.rand(2, 3, 64, 96), _targets(2, 64, 96)
    model.eval()
    with torch.no_grad():
        head = model.head_output(x)
        logits = F.interpolate(head, scale_factor=2.0, mode="bilinear", align_corners=False)
        assert logits.shape[-2:] == (32, 48)
        labels = torch.full((2, 32, 48), -1)
        for b in range(2):
            for i in range(32):
                for j in range(48):
                    value = int(targets[b]["mask"][2 * i + 1, 2 * j + 1])
                    labels[b, i, j] = value if value < 5 else -1
        expected = F.cross_entropy(logits, labels, ignore_index=-1)
        torch.testing.assert_close(model.training_losses(x, targets)["loss_ce"], expected)  # eval-mode BN
        torch.testing.assert_close(model.predict_with_loss(x, targets)[1]["loss_ce"], expected)
        assert model.forward_raw(x)[0].shape == (2, 5, 16, 24)
    assert sample_masks(targets, 1) is targets
    assert torch.equal(sample_masks(targets, 4)[0]["mask"], targets[0]["mask"][2::4, 2::4])
    up = Upsampler("nearest", 3)
    h = torch.rand(1, 3, 5, 7)
    assert torch.equal(up.to_stride(h, 1), up(h)) and up.to_stride(h, 4).shape == h.shape
    with pytest.raises(ModelError, match="logits at stride 3"):
        up.to_stride(h, 3)
    seg = load_config(None, {"model": "rtdet-seg-n", "loss_stride": 2}).seg
    for kind in ("transposed", "pixelshuffle"):
        with pytest.raises(ModelError, match=f"logits at stride 2 need an interpolating upsampler .* not '{kind}'"):
            apply_seg_settings(build_model("rtdet-seg-n", 5, upsample=kind), seg)
