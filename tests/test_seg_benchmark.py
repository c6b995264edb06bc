"""benchmarks/vs_torchvision_seg.py end to end on a sliver of CamVid: every model of a row gets the same loss
settings, rows say which class weights they trained with, and the scores are rtdet's mIoU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rtdet.config import SegConfig
from rtdet.deploy.images import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
CAMVID = shared_data_dir() / "camvid"


@pytest.mark.skipif(not (CAMVID / "masks" / "val").is_dir(), reason="needs ../shared/data/camvid")
def test_rows_name_their_class_weights_and_share_them(tmp_path):
    """4 training / 2 validation images, 64 px, 1 epoch: rtdet-seg-n and LR-ASPP with plain cross-entropy, then
    rtdet-seg-n with the default weights added to the same results file."""
    base = [sys.executable, str(ROOT / "benchmarks" / "vs_torchvision_seg.py"), "--epochs", "1", "--imgsz", "64",
            "--bench-size", "64", "--batch", "2", "--threads", "1", "--runs", "2", "--warmup", "1",
            "--train-images", "4", "--val-images", "2", "--out", str(tmp_path)]
    plain = subprocess.run([*base, "--models", "rtdet-seg-n", "lraspp_mobilenet_v3_large", "--class-weight", "none"],
                           capture_output=True, text=True, timeout=900)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "class weights" not in plain.stdout
    weighted = subprocess.run([*base, "--models", "rtdet-seg-n"], capture_output=True, text=True, timeout=900)
    assert weighted.returncode == 0, weighted.stderr[-2000:]
    assert "rtdet-seg-n: class weights of the loss, from " in weighted.stdout
    rows = json.loads((tmp_path / "results.json").read_text())
    assert set(rows) == {"rtdet-seg-n class_weight=none", "lraspp_mobilenet_v3_large class_weight=none",
                         "rtdet-seg-n"}
    for row in rows.values():
        assert 0 <= row["mIoU"] <= 1 and row["train_img_s"] > 0 and row["ms"]["end_to_end"] > 0
    assert (tmp_path / "rtdet-seg-n_class_weight-none" / "model.onnx").is_file()


def _benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vs_torchvision_seg", ROOT / "benchmarks" / "vs_torchvision_seg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seg_n_variants_reach_the_network():
    """--seg-n KEY=VALUE builds rtdet-seg-n with those keywords (tuples, ints, strings); a malformed pair is refused."""
    bench = _benchmark_module()
    overrides = bench.parse_overrides(["channels=16,24,48,96,256", "depths=0,1,2,2", "width=96", "act=silu",
                                       "aux_gain=0.4"])
    assert overrides == {"channels": (16, 24, 48, 96, 256), "depths": (0, 1, 2, 2), "width": 96, "act": "silu",
                         "aux_gain": 0.4}
    model = bench.build("rtdet-seg-n", seg_n=overrides)
    assert model.backbone.channels == (16, 24, 48, 96, 256) and model.build_args["depths"] == (0, 1, 2, 2)
    assert model.build_args["act"] == "silu" and model.neck.lateral[0].conv.out_channels == 96
    assert model.criterion.weighting == "sqrt_median_freq" and model.aux_gain == 0.4
    for bad in ("width", "=3", "width="):
        with pytest.raises(SystemExit, match="KEY=VALUE"):
            bench.parse_overrides([bad])


@pytest.mark.skipif(not (CAMVID / "masks" / "val").is_dir(), reason="needs ../shared/data/camvid")
def test_set_replaces_the_family_settings_it_names_and_nothing_else(tmp_path):
    """--set lr=0.004 changes the resolved run's learning rate and no other setting; ema settings likewise."""
    import argparse
    from dataclasses import replace

    bench = _benchmark_module()
    data = bench.write_data(tmp_path, 2, 2)
    args = argparse.Namespace(epochs=50, imgsz=480, batch=8, seed=0, class_weight="sqrt_median_freq", dice_gain=0.0,
                              set=[])
    family, _ = bench.run_config(args, data, tmp_path)
    args.set = ["lr=0.004"]
    own, _ = bench.run_config(args, data, tmp_path)
    assert family.optim.lr == 0.002 and own == replace(family, optim=replace(family.optim, lr=0.004))
    args.set = ["ema_decay=0.995", "ema_tau=100"]
    own, _ = bench.run_config(args, data, tmp_path)
    assert own == replace(family, train=replace(family.train, ema_decay=0.995, ema_tau=100.0))


@pytest.mark.skipif(not (CAMVID / "masks" / "val").is_dir(), reason="needs ../shared/data/camvid")
def test_set_loss_settings_reach_every_pixel_classifier(tmp_path):
    """--set of seg-section settings is not only recorded in the run's config: the loss of rtdet-seg-n and of
    torchvision's models is built from it (OHEM, Dice, class weights), and aux_gain builds rtdet-seg-n's
    auxiliary heads; --dice-gain and --class-weight are the same settings."""
    import argparse

    bench = _benchmark_module()
    data = bench.write_data(tmp_path, 2, 2)
    args = argparse.Namespace(epochs=50, imgsz=480, batch=8, seed=0, class_weight="none", dice_gain=0.25,
                              set=["ohem_thresh=0.7", "aux_gain=0.4", "loss_stride=2"])
    x, targets = torch.rand(1, 3, 64, 64), [{"mask": torch.randint(0, 11, (64, 64))}]
    for name in ("rtdet-seg-n", bench.RUNS["lraspp_mobilenet_v3_large"][0]):
        cfg, _ = bench.run_config(args, data, tmp_path, name)
        model = bench.build(name, "bilinear", cfg.seg)
        loss = model.criterion
        assert (loss.ohem_thresh, loss.dice_gain, loss.weighting, model.loss_stride) == (0.7, 0.25, "none", 2), name
        assert torch.isfinite(sum(model.train()(x, targets).values()))
        if name == "rtdet-seg-n":
            assert len(model.aux_heads) == 2
            assert len(bench.build(name, "bilinear", cfg.seg, {"aux_gain": 0.0}).aux_heads) == 0  # --seg-n wins
    tv = model.eval()
    with torch.no_grad():
        assert tv.logits(x, 2).shape == (1, 11, 32, 32)
        torch.testing.assert_close(tv.logits(x), tv.net((x - tv.mean) / tv.std)["out"])  # torchvision's forward


def test_dice_gain_reaches_every_pixel_classifier():
    """--dice-gain: rtdet-seg-n's and torchvision's losses both gain the Dice term (rtdet-m2f keeps its own loss);
    output stride 16 is one more --seg-n keyword."""
    bench = _benchmark_module()
    seg = bench.build("rtdet-seg-n", seg=SegConfig(dice_gain=0.5), seg_n=bench.parse_overrides(["output_stride=16"]))
    tv = bench.build(bench.RUNS["lraspp_mobilenet_v3_large"][0], seg=SegConfig(dice_gain=0.5))
    assert seg.criterion.dice_gain == tv.criterion.dice_gain == 0.5 and seg.backbone.strides[-1] == 16
    assert bench.build("rtdet-seg-n").criterion.dice_gain == 0.0
    torch.manual_seed(0)
    x, targets = torch.rand(1, 3, 64, 64), [{"mask": torch.randint(0, 11, (64, 64))}]
    assert set(tv.train()(x, targets)) == {"loss_ce", "loss_dice"}
    tv.eval()
    with torch.no_grad():
        (pred,) = tv(x)
    assert pred["logits"].shape == (11, 8, 8) and pred["input_size"] == (64, 64)  # LR-ASPP's stride-8 grid
