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
    moved: tuple[str, str] = ("", "")  # the file's names were read with this prefix replaced (see _reroot)

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, left {len(self.missing)} unset"
        if any(self.moved):
            text += f" (the file's names '{self.moved[0]}*' read as '{self.moved[1]}*')"
        details = [f"  skipped {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join([text, *details])


TORCHVISION = "torchvision:"  # --weights torchvision:ResNet50_Weights.IMAGENET1K_V1: torchvision's published file


def torchvision_weights(name: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's published weights ``name`` (``ResNet50_Weights.IMAGENET1K_V1``,
    ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``, ...), downloaded into torch's cache on first use: only
    when a user names them (``--weights torchvision:NAME``); nothing else in rtdet downloads.

    Raises:
        ModelError: torchvision knows no weights of that name.
    """
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError) as e:
        raise ModelError(f"--weights {TORCHVISION}{name}: torchvision has no weights of that name ({e}); "
                         f"e.g. {TORCHVISION}ResNet50_Weights.IMAGENET1K_V1") from None
    return weights.get_state_dict(progress=True, check_hash=True)


def _state_dict_from(source: str | Path | dict[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict from a file or dict: the EMA weights if present, else the model's."""
    if isinstance(source, str) and source.startswith(TORCHVISION):
        return torchvision_weights(source[len(TORCHVISION):])
    obj = load_checkpoint(source) if isinstance(source, (str, Path)) else source
    if isinstance(obj.get("ema"), dict) and "module" in obj["ema"]:
        return obj["ema"]["module"]
    if isinstance(obj.get("model"), dict):
        return obj["model"]
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(f"{source if isinstance(source, (str, Path)) else 'dict'}: no 'model'/'ema' state dict found")


def _reroot(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> tuple[str, str]:
    """``(file prefix, model prefix)`` that places the most tensors of ``state`` in ``own`` by name and shape,
    when that is more than the names place as they are; ``("", "")`` otherwise.

    A file may hold a part of the model under other names: torchvision's ImageNet ResNet-50
    (``layer1.0.conv1.weight``) is rtdet Faster R-CNN's ``net.backbone.body.layer1.0.conv1.weight``,
    MobileNetV3's ``features.0.0.weight`` its ``net.backbone.body.0.0.weight``, a torchvision
    detector's ``backbone.*`` its ``net.backbone.*``. Candidates: drop the file names' first
    component (or nothing), add what a model name ending in the rest begins with.
    """
    def placed(old: str, new: str) -> int:
        return sum(1 for k, v in state.items() if k.startswith(old) and (new + k.removeprefix(old)) in own
                   and own[new + k.removeprefix(old)].shape == v.shape)

    by_suffix: dict[str, list[str]] = {}
    for name in own:
        parts = name.split(".")
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(".".join(parts[:i]) + "." if i else "")
    votes: dict[tuple[str, str], int] = {}
    for key, value in state.items():
        first = key.split(".")[0] + "."
        for old in ("", first):
            rest = key.removeprefix(old)
            for new in by_suffix.get(rest, ()):
                if own[new + rest].shape == value.shape:
                    votes[(old, new)] = votes.get((old, new), 0) + 1
    best = max(votes, key=lambda c: (votes[c], c == ("", "")), default=("", ""))
    return best if best != ("", "") and placed(*best) > placed("", "") else ("", "")


def load_pretrained(model: nn.Module, source: str | Path | dict[str, Any]) -> LoadReport:
    """Copy into ``model`` every tensor of ``source`` whose name and shape match; report the rest.

    ``source`` is a trainer checkpoint (its EMA weights are preferred), a dict with
    a ``"model"`` state dict, a plain state dict (e.g. torchvision's published files),
    or ``torchvision:NAME`` (:func:`torchvision_weights`). A ``module.`` prefix left by
    DistributedDataParallel is removed first; a file that holds a part of the model
    under a prefix of its own is read under the model's (:func:`_reroot`).
    """
    state = {k.removeprefix("module."): v for k, v in _state_dict_from(source).items()}
    own = model.state_dict()
    old, new = moved = _reroot(state, own)
    report = LoadReport(moved=moved)
    take = {}
    for key, value in state.items():  # the report names the file's own names
        name = new + key.removeprefix(old)
        if not key.startswith(old):
            report.skipped[key] = f"outside '{old}', the part of the file that fits the model"
        elif name not in own:
            report.skipped[key] = "not in the model"
        elif tuple(value.shape) != tuple(own[name].shape):
            report.skipped[key] = f"shape {tuple(value.shape)} in file, {tuple(own[name].shape)} in model"
        else:
            take[name] = value
            report.loaded.append(name)
    report.missing = [k for k in own if k not in take]
    model.load_state_dict(take, strict=False)
    return report
