"""The runs behind the adaptive recipe (rtdet/engine/recipe.py): one lever at a time, on several data sets.

    python benchmarks/recipe.py --data ../shared/data/bccd --epochs 30
    python benchmarks/recipe.py --data ../shared/data/coco128/annotations/instances_val2017.json --epochs 60
    python benchmarks/recipe.py --data digits --epochs 5 --variants old-defaults auto
    python benchmarks/recipe.py --data ../shared/data/bccd --epochs 30 --table      # print stored results only

Each variant trains rtdet-n from scratch through ``benchmarks/vs_ultralytics.py``
(same data handling, scoring and result files; one row per variant in
``<out>/<data name>/results.json``). Every variant spells out every recipe
setting, so its row does not change when the defaults do; ``auto`` is the
defaults, whatever the recipe resolves for that run (its resolved optimizer, lr,
nbs and warm-up are stored with the row). The measured table is in
``benchmarks/recipe.md``. Runs of one data set may go in parallel processes
(``--threads 1`` each); their training images/s then measure nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSIC = {"warmup_epochs": 3, "ema_tau": 2000, "close_mosaic": 10}  # the pre-auto defaults of the other levers

VARIANTS: dict[str, dict] = {
    "old-defaults": {"optimizer": "sgd", "lr": 0.01, "nbs": 64, "weight_decay": 0.0005, **CLASSIC},
    "sgd-nbs16": {"optimizer": "sgd", "lr": 0.01, "nbs": 16, "weight_decay": 0.0005, **CLASSIC},
    "adamw-1e-3": {"optimizer": "adamw", "lr": 0.001, "nbs": 16, "weight_decay": 0.05, **CLASSIC},
    "adamw-2e-3": {"optimizer": "adamw", "lr": 0.002, "nbs": 16, "weight_decay": 0.05, **CLASSIC},
    "adamw-4e-3": {"optimizer": "adamw", "lr": 0.004, "nbs": 16, "weight_decay": 0.05, **CLASSIC},
    "auto": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=str(HERE.parent / "runs" / "recipe"))
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    base = [sys.executable, str(HERE / "vs_ultralytics.py"), "--data", args.data, "--epochs", str(args.epochs),
            "--models", "rtdet-n", "--threads", str(args.threads), "--out", args.out]
    for name in [] if args.table else args.variants:
        sets = [x for k, v in VARIANTS[name].items() for x in ("--set", f"{k}={v}")]
        subprocess.run([*base, "--tag", name, *sets], check=True)
    subprocess.run([*base, "--table"], check=True)


if __name__ == "__main__":
    main()
