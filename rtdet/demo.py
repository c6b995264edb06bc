"""``rtdet demo``: the offline end-to-end runs, one per task.

- detect: the generated digits photo set -> train rtdet-n -> official COCO evaluation;
- classify: scikit-learn's handwritten digits (bundled with it, offline) -> train
  rtdet-cls-n -> accuracy, confusion matrix, ROC curves.

The settings below are each demo's whole recipe; they are a normal
:class:`rtdet.config.Config`, saved as ``config.yaml`` in the run folder.
"""

from __future__ import annotations

from pathlib import Path

from rtdet.config import load_config
from rtdet.workflows import RunResult, print_summary, train

DEMO_SETTINGS = {
    "model": "rtdet-n", "data": "digits", "imgsz": 320, "batch": 8, "workers": -1,
    "epochs": 6, "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05, "warmup_epochs": 0.5, "nbs": 8,
    "ema_tau": 200.0, "mosaic": 0.5, "close_mosaic": 2, "scale": 0.3, "fliplr": 0.0, "patience": 0, "seed": 0,
}
CLASSIFY_DEMO_SETTINGS = {
    "model": "rtdet-cls-n", "data": "sklearn-digits", "imgsz": 32, "batch": 32, "workers": 0, "epochs": 20,
    "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05, "warmup_epochs": 0.5, "nbs": 32, "ema_tau": 100.0,
    "fliplr": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "degrees": 8.0, "translate": 0.08, "scale": 0.1, "crop_scale": 1.0,
    "patience": 0, "seed": 0,
}


def run_demo(out: str | Path | None = None, data_dir: str | Path = "datasets/digits", epochs: int | None = None,
             task: str = "detect") -> RunResult:
    """Run the ``task`` demo; everything lands in ``out``. The detect demo generates the digits
    set in ``data_dir`` when absent; the classify demo reads scikit-learn's bundled digits."""
    if task == "classify":
        overrides = {**CLASSIFY_DEMO_SETTINGS, "out": str(out or "runs/demo-classify")}
    else:
        overrides = {**DEMO_SETTINGS, "out": str(out or "runs/demo"), "root": str(data_dir)}
    if epochs is not None:
        overrides["epochs"] = epochs
    result = train(load_config(None, overrides))
    print_summary(result)
    return result
