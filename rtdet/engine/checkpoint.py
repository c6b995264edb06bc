"""Checkpoints: atomic writes, loading, and pretrained weights by name and shape.

A checkpoint written by the trainer is a dict:
``{"version", "epoch" (epochs completed), "iter" (batches seen), "model", "model_args"
(the model's ``build_args`` or None), "ema"
({"module", "updates"} or None), "optimizer", "scaler", "schedule", "rng", "data",
"hooks", "metrics", "config"}``. It holds only tensors and plain Python values,
so it loads with ``torch.load(weights_only=True)`` (no pickled code runs).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtdet.errors import ModelError


CHECKPOINT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` it into place.

    ``os.replace`` is atomic on POSIX and Windows, so at any moment ``path`` holds
    either the previous complete file or the new complete one, never a torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (tensors and plain values only).

    Raises:
        FileNotFoundError: no such file.
        ModelError: a torn, foreign or non-checkpoint file (an image, an ``.onnx``, a pickle
            with code in it), named in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a torn, foreign or non-checkpoint file: say which one, in one line
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        if why.startswith("Weights only load failed"):  # torch's advice (weights_only=False) would run code
            why = "not a file of tensors saved by torch.save: another kind of file, or cut short"
        raise ModelError(f"{path}: not a readable rtdet checkpoint ({why})") from e


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: copied names, and skipped ones with the reason."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    missing: list[str] = field(default_factory=list)  # model tensors the file did not provide

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, left {len(self.missing)} unset"
        details = [f"  skipped {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join([text, *details])


def _state_dict_from(source: str | Path | dict[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict from a file or dict: the EMA weights if present, else the model's."""
    obj = load_checkpoint(source) if isinstance(source, (str, Path)) else source
    if isinstance(obj.get("ema"), dict) and "module" in obj["ema"]:
        return obj["ema"]["module"]
    if isinstance(obj.get("model"), dict):
        return obj["model"]
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(f"{source if isinstance(source, (str, Path)) else 'dict'}: no 'model'/'ema' state dict found")


def load_pretrained(model: nn.Module, source: str | Path | dict[str, Any]) -> LoadReport:
    """Copy into ``model`` every tensor of ``source`` whose name and shape match; report the rest.

    ``source`` is a trainer checkpoint (its EMA weights are preferred), a dict with
    a ``"model"`` state dict, or a plain state dict. A ``module.`` prefix left by
    DistributedDataParallel is removed first.
    """
    state = {k.removeprefix("module."): v for k, v in _state_dict_from(source).items()}
    own = model.state_dict()
    report = LoadReport()
    take = {}
    for name, value in state.items():
        if name not in own:
            report.skipped[name] = "not in the model"
        elif tuple(value.shape) != tuple(own[name].shape):
            report.skipped[name] = f"shape {tuple(value.shape)} in file, {tuple(own[name].shape)} in model"
        else:
            take[name] = value
            report.loaded.append(name)
    report.missing = [k for k in own if k not in take]
    model.load_state_dict(take, strict=False)
    return report
