"""``rtdet demo``: the offline end-to-end run: digits set -> train rtdet-n -> official evaluation.

The settings below are the demo's whole recipe; they are a normal
:class:`rtdet.config.Config`, saved as ``config.yaml`` in the run folder.
"""

from __future__ import annotations

from pathlib import Path

from rtdet.config import load_config
from rtdet.workflows import RunResult, print_summary, train

DEMO_SETTINGS = {
    "model": "rtdet-n", "data": "digits", "imgsz": 320, "batch": 8, "workers": -1,
    "epochs": 5, "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05, "warmup_epochs": 0.5, "nbs": 8,
    "ema_tau": 200.0, "mosaic": 0.5, "close_mosaic": 2, "scale": 0.3, "fliplr": 0.0, "patience": 0, "seed": 0,
}


def run_demo(out: str | Path = "runs/demo", data_dir: str | Path = "datasets/digits",
             epochs: int | None = None) -> RunResult:
    """Generate the digits set in ``data_dir`` if absent, train, evaluate; everything lands in ``out``."""
    overrides = {**DEMO_SETTINGS, "out": str(out), "root": str(data_dir)}
    if epochs is not None:
        overrides["epochs"] = epochs
    result = train(load_config(None, overrides))
    print_summary(result)
    return result
