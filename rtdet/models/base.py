"""The model contract every family follows, as a base class with the common defaults.

A model is built from plain arguments (``build_args`` rebuilds the same
architecture, for checkpoints) and is used in four ways:

- training: ``model(images float [B, 3, H, W] in [0, 1], targets) -> {name: scalar}``;
  the trainer sums every value (weighted losses are named ``loss_*``; a family
  keeps log-only values out of this dict);
- evaluation: ``model.eval()(images) -> list of B dicts`` of named tensors in the
  input's pixel frame (the task's adapter maps them to original pixels);
  ``predict_with_loss`` gives both at once for validation;
- export and deployment: ``forward_raw(images) -> tuple of tensors`` named
  :attr:`output_names`, the ONNX graph's outputs (:meth:`export_module`), which the
  task's decoding turns into results in the same way for PyTorch and ONNX Runtime;
  :attr:`dynamic_export` says whether that graph takes any batch and size, and the
  parity check pairs (:meth:`parity_align`) and compares (:meth:`parity_allowed`) them;
  :meth:`dynamic_axes` says which of their axes vary in a dynamic-shape export;
- inference speed: :meth:`fuse` folds BatchNorm into convolutions in place.

The engine and the deploy code call these methods only; they never ask which
class a model is.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from rtdet.models.layers import fuse_conv_bn

_QUIET_IN_LOSS_MODE = (nn.modules.batchnorm._NormBase, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@contextlib.contextmanager
def loss_mode(model: nn.Module) -> Iterator[None]:
    """Let ``model`` return its losses without changing it: train mode for the forward
    path, but normalization layers keep their running statistics and dropout is off;
    the global RNG is left untouched (samplers inside the loss may draw from it)."""
    modes = {m: m.training for m in model.modules()}
    model.train()
    for m in model.modules():
        if isinstance(m, _QUIET_IN_LOSS_MODE):
            m.eval()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for m, mode in modes.items():
            m.training = mode


class RawOutputs(nn.Module):
    """``RawOutputs(model)(images) == model.forward_raw(images)``: a module to hand to ``torch.onnx.export``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # torch.onnx.export restores the wrapper's mode onto the model afterwards

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return self.model.forward_raw(images)


class RtdetModel(nn.Module):
    """Base of every rtdet model: the contract above, with defaults a family may override.

    Subclasses set ``num_classes``, ``build_args``, :attr:`output_names`, :attr:`task`
    and implement ``forward`` and ``forward_raw``.
    """

    task = "detect"
    output_names: tuple[str, ...] = ()
    # whether the ONNX graph can take any batch and image size (``export --dynamic``); False: batch 1 at the
    # export's size (Faster R-CNN: torchvision's proposal stage loops over images and fixes their size when traced)
    dynamic_export = True
    num_classes: int
    build_args: dict[str, Any]

    def forward_raw(self, images: Tensor) -> tuple[Tensor, ...]:
        """The export outputs for ``images float [B, 3, H, W]`` in [0, 1], named :attr:`output_names`."""
        raise NotImplementedError(f"{type(self).__name__} has no export path")

    def export_module(self) -> nn.Module:
        """The module ``torch.onnx.export`` traces: inputs ``images``, outputs :attr:`output_names`; in the
        model's mode (the exporter restores the wrapper's mode on everything inside it afterwards)."""
        return RawOutputs(self).train(self.training)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The dynamic axes of each export output in a ``dynamic`` export: the batch by default."""
        return {name: {0: "batch"} for name in self.output_names}

    def set_postprocess(self, **settings: Any) -> None:
        """Eval-mode decoding settings (detectors: conf, iou, method, max_det); none by default."""

    def check_input_size(self, height: int, width: int) -> None:
        """Raises :class:`rtdet.errors.ModelError` when the network cannot take ``height x width`` inputs
        (checked before training starts, so a bad ``--imgsz`` is one error line, not a failed first step);
        any size by default."""

    def use_class_counts(self, counts: list[int]) -> Tensor | None:
        """Take what the loss needs from the training data's class frequencies before the first step
        (``counts`` [K]: what the task counts per class, e.g. a segmenter's training pixels); returns the
        class weights it took, float [K], or None: nothing, the default."""
        return None

    def predict_with_loss(self, images: Tensor, targets: list[dict]) -> tuple[list[dict[str, Tensor]],
                                                                             dict[str, Tensor]]:
        """Eval-mode predictions and the losses against ``targets`` (validation). This default
        runs the network twice; families override it to share one pass."""
        preds = self(images)
        with loss_mode(self):
            losses = self(images, targets)
        return preds, losses

    def param_groups_hint(self) -> dict[str, Any]:
        """Per-parameter optimizer hints (see :func:`rtdet.engine.optim.param_groups`); none by default."""
        return {}

    def fuse(self) -> RtdetModel:
        """Fold BatchNorm into convolutions for inference (in place); returns ``self`` in eval mode."""
        fuse_conv_bn(self.eval())
        return self

    def parity_align(self, reference: tuple[np.ndarray, ...],
                     exported: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """The export outputs of PyTorch (``reference``) and ONNX Runtime paired element for element before
        :meth:`parity_allowed` compares them; unchanged by default. Raises ValueError when they cannot be paired."""
        return reference, exported

    def parity_allowed(self, name: str, reference: np.ndarray, imgsz: int, half: bool = False) -> np.ndarray | float:
        """Largest |ONNX Runtime - PyTorch| accepted for export output ``name`` given PyTorch's ``reference``:
        1e-4 + 1e-5 |x| (float32 rounding through a few dozen layers), 1e-3 + 1e-3 |x| with float16 weights."""
        atol, rtol = (1e-3, 1e-3) if half else (1e-4, 1e-5)
        return atol + rtol * np.abs(reference)


def build_family_model(cls: type, name: str, num_classes: int, settings: dict[str, Any], act: str | None, norm: str,
                       overrides: dict[str, Any]) -> Any:
    """``cls(num_classes, **kwargs)``: ``settings`` (the scale's), then ``overrides``, then ``norm`` and, when given,
    ``act``. ``model.build_args`` records ``name``, ``num_classes``, the ``act`` used, ``norm`` and ``overrides``: what
    the family's builder needs to rebuild the same architecture."""
    kwargs = {**settings, **overrides, "norm": norm}
    if act:
        kwargs["act"] = act
    model = cls(num_classes, **kwargs)
    model.build_args = {"name": name, "num_classes": num_classes, "act": kwargs["act"], "norm": norm, **overrides}
    return model
