"""Start-up and `rtdet metrics coco` as whole processes, next to faster-coco-eval's own script.

    python benchmarks/cli_startup.py                 # COCO-sized case, 5 rounds
    python benchmarks/cli_startup.py --quick         # 500 images, 3 rounds: a smoke run

A seeded COCO-sized case (5,000 images, ~36k GT boxes, COCO's 80 non-contiguous
category ids 1..90, ~100 detections per image; the generator of
``benchmarks/metrics.py``) is written as two json files into a temporary folder.
Then each command below runs as its own process, back to back, the commands
alternating within each round (the order rotates every round) so that load on
the shared machine hits all of them alike:

- ``python -m rtdet --help``
- ``python -m rtdet metrics coco --help``
- ``python -m rtdet metrics coco gt.json dets.json``
- ``python fce.py gt.json dets.json``: the few lines a faster-coco-eval user writes
  (``COCO`` load, ``loadRes``, ``COCOeval_faster`` evaluate / accumulate / summarize)

Wall time covers everything: interpreter start, imports, json reading, evaluation
and printing. The 12 numbers the two evaluators print must agree (to the 3
decimals both print). The table shows the median and the fastest round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import synthetic_coco  # noqa: E402  (benchmarks/metrics.py)

# COCO's 80 category ids: 1..90 without the 10 that val2017 never uses
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]

FCE_SCRIPT = """\
import sys
from faster_coco_eval import COCO, COCOeval_faster

gt = COCO(sys.argv[1])
ev = COCOeval_faster(gt, gt.loadRes(sys.argv[2]), "bbox", print_function=print)
ev.evaluate()
ev.accumulate()
ev.summarize()
"""


def write_case(folder: Path, n_images: int, dets_per_image: float, seed: int) -> tuple[Path, Path, str]:
    """gt.json and dets.json in ``folder``; boxes rounded to 0.01 px and scores to 1e-4, as detectors write them."""
    gt, dets = synthetic_coco(n_images, det_per_image=dets_per_image, seed=seed)
    remap = dict(zip(range(1, 81), COCO_IDS))
    for c in gt["categories"]:
        c["id"] = remap[c["id"]]
    for rows in (gt["annotations"], dets):
        for r in rows:
            r["category_id"] = remap[r["category_id"]]
            r["bbox"] = [round(v, 2) for v in r["bbox"]]
    gt_path, dets_path = folder / "gt.json", folder / "dets.json"
    gt_path.write_text(json.dumps(gt))
    dets_path.write_text(json.dumps(dets))
    summary = (f"{len(gt['images'])} images, {len(gt['annotations'])} GT boxes, {len(dets)} detections, "
               f"{len(gt['categories'])} categories (ids {COCO_IDS[0]}..{COCO_IDS[-1]}, non-contiguous), seed {seed}")
    return gt_path, dets_path, summary


def run(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of one process and its stdout; a failing command stops the benchmark."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's rtdet, whatever is installed
    t = time.perf_counter()
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return seconds, r.stdout


def coco_numbers(stdout: str) -> np.ndarray:
    """The first 12 ``... ] = 0.123`` values of a pycocotools-style summary."""
    values = [float(v) for v in re.findall(r"\] = (-?[0-9.]+)", stdout)][:12]
    if len(values) != 12:
        raise SystemExit(f"expected 12 COCO numbers, found {len(values)} in:\n{stdout[-1500:]}")
    return np.array(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 images and 3 rounds (a smoke run)")
    ap.add_argument("--images", type=int, default=5000, help="images in the case (default: 5000)")
    ap.add_argument("--dets-per-image", type=float, default=100.0, help="mean detections per image (default: 100)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of all four commands (default: 5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.rounds = 500, 3

    with tempfile.TemporaryDirectory(prefix="rtdet-cli-startup-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        gt, dets, summary = write_case(folder, args.images, args.dets_per_image, args.seed)
        print(f"case: {summary}; written in {time.perf_counter() - t:.1f} s "
              f"({(gt.stat().st_size + dets.stat().st_size) / 1e6:.0f} MB)")
        (folder / "fce.py").write_text(FCE_SCRIPT)
        py = sys.executable
        commands = {
            "rtdet --help": [py, "-m", "rtdet", "--help"],
            "rtdet metrics coco --help": [py, "-m", "rtdet", "metrics", "coco", "--help"],
            "rtdet metrics coco GT DETS": [py, "-m", "rtdet", "metrics", "coco", str(gt), str(dets)],
            "faster-coco-eval script": [py, str(folder / "fce.py"), str(gt), str(dets)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, str] = {}
        names = list(commands)
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                seconds, outputs[name] = run(commands[name])
                times[name].append(seconds)
            print(f"round {round_ + 1}/{args.rounds}: "
                  + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names), flush=True)

    ours, theirs = coco_numbers(outputs["rtdet metrics coco GT DETS"]), coco_numbers(outputs["faster-coco-eval script"])
    ref = statistics.median(times["faster-coco-eval script"])
    print(f"\n{'command (whole process)':<28} {'median s':>9} {'min s':>7} {'x faster-coco-eval':>19}")
    for name in names:
        med = statistics.median(times[name])
        print(f"{name:<28} {med:9.3f} {min(times[name]):7.3f} {med / ref:19.2f}")
    print(f"\n{args.rounds} rounds; AP {ours[0]:.3f}, AP50 {ours[1]:.3f}, AR100 {ours[8]:.3f}")
    agree = bool(np.all(ours == theirs))
    print("rtdet and faster-coco-eval print the same 12 numbers" if agree
          else f"MISMATCH: rtdet {ours.tolist()} vs faster-coco-eval {theirs.tolist()}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
