"""Model size and cost: parameter count and GFLOPs (``rtdet info``)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """2 x the multiply-accumulates of ``q k^T`` and ``weights v``: q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]."""
    *batch, lq, d = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    return 2 * math.prod(batch) * lq * lk * (d + dv)


# PyTorch counts scaled_dot_product_attention's CUDA kernels but not its CPU flash kernel
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops}


def count_flops(model: nn.Module, imgsz: int | tuple[int, int] = 320) -> int:
    """FLOPs of one ``forward_raw`` at batch 1 (the eval forward for a model without an export path),
    counted by PyTorch's FlopCounterMode.

    The count is 2 x multiply-accumulates of convolutions and matrix products, attention's included
    (the convention of published GFLOPs figures); element-wise ops are not counted.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    param = next(model.parameters())
    x = torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
            try:
                getattr(model, "forward_raw", model)(x)  # a plain module has no export path: its forward
            except NotImplementedError:  # an rtdet model without an export path: its eval forward
                model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def model_info(model: nn.Module, imgsz: int | tuple[int, int] = 320) -> dict[str, float]:
    """``{"params": int, "trainable": int, "gflops": float, "imgsz": imgsz}``."""
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "gflops": count_flops(model, imgsz) / 1e9,
        "imgsz": imgsz,
    }
