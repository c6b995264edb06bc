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


def test_flops_count_fused_attention_on_the_cpu():
    class Attend(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # count_flops reads the device from a parameter

        def forward(self, x):  # x [1, 3, H, W] -> q = k = v [1, 2, 12, 8]
            q = x.new_ones(1, 2, 12, 8)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    assert count_flops(Attend(), 32) == 2 * (2 * 2 * 12 * 12 * 8)  # q k^T and weights v
