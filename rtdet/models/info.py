"""Model size and cost: parameter count and GFLOPs (``rtdet info``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, imgsz: int | tuple[int, int] = 320) -> int:
    """FLOPs of one ``forward_raw`` at batch 1 (the eval forward for a model without an export path),
    counted by PyTorch's FlopCounterMode.

    The count is 2 x multiply-accumulates of convolutions and matrix products
    (the convention of published GFLOPs figures); element-wise ops are not counted.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    param = next(model.parameters())
    x = torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
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
