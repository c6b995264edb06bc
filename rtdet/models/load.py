"""Rebuild a trained model from an rtdet checkpoint (``best.pt`` / ``last.pt``).

A checkpoint written by :class:`rtdet.engine.Trainer` holds ``model_args`` (the
``build_args`` that rebuild the architecture), the weights (EMA copy when
present), the run's config and ``meta`` (class names, task, the data set's own
category ids). This is the one place that turns such a file into a model; train,
val, predict, export, bench and the Python API all call :func:`load_trained`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from rtdet.config import Config, config_from_checkpoint
from rtdet.errors import ModelError


@dataclass
class Trained:
    """A model rebuilt from a checkpoint, in eval mode, with what the run knew about its data."""

    model: nn.Module
    names: list[str]  # class names, index = label
    task: str  # detect, classify
    config: Config  # the run's settings as saved
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. "cat_ids": the data set's own category ids


def load_trained(weights: str | Path) -> Trained:
    """The model saved in ``weights`` (EMA weights when present), in eval mode.

    Raises:
        ModelError: the file is missing or is not an rtdet training checkpoint.
    """
    from rtdet.engine.checkpoint import load_checkpoint
    from rtdet.models import build_model, family_settings
    from rtdet.registry import model_spec

    if not Path(weights).is_file():
        raise ModelError(f"weights not found: {weights}")
    ckpt = load_checkpoint(weights)
    meta = dict(ckpt.get("meta") or {})
    args = dict(ckpt.get("model_args") or {})
    names = list(meta.get("names") or [])
    if not args or not names or "config" not in ckpt:
        raise ModelError(f"{weights}: not an rtdet training checkpoint (no model arguments, class names or config)")
    saved = config_from_checkpoint(ckpt["config"])
    spec = model_spec(args["name"])
    model = build_model(args.pop("name"), args.pop("num_classes"), **args)
    family_settings(model, saved)
    state = ckpt["ema"]["module"] if ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(state)
    return Trained(model.eval(), names, meta.get("task", spec.task), saved, meta)
