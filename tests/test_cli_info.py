"""`rtdet info`: parameters and GFLOPs of a named model."""

import re

import torch

from rtdet.cli import main
from rtdet.models import build_model
from rtdet.models.info import count_flops, model_info


def test_info_prints_params_and_gflops(capsys):
    assert main(["info", "--model", "rtdet-n", "--imgsz", "320"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"rtdet-n: ([\d.]+) M parameters, ([\d.]+) GFLOPs at 320x320", out)
    assert m, out
    assert 0.3 < float(m.group(2)) < 1.0  # rtdet-n is built to stay under ~1 GFLOP at 320


def test_info_rejects_unknown_model_and_bad_size(capsys):
    assert main(["info", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["info", "--imgsz", "300"]) == 2


def test_flops_scale_with_area_and_match_a_hand_count():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, 32) == 2 * 3 * 8 * 9 * 32 * 32  # 2 x multiply-accumulates
    model = build_model("rtdet-n", 3)
    assert count_flops(model, 128) * 4 == count_flops(model, 256)
    assert model_info(model, 64)["params"] == sum(p.numel() for p in model.parameters())
