"""Loader throughput: images/second for the digits set and coco128, with and without augmentation.

    PYTHONPATH=. python benchmarks/loader.py [--workers 2] [--batches 30] [--epochs 1] [--cache]

Prints one table row per (data set, augmentation) and, with ``--epochs N``, the
resident memory of the main process and its workers after each epoch (it
should stay flat).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtdet.config import DataConfig  # noqa: E402
from rtdet.data import build_loader, open_dataset  # noqa: E402

COCO128 = ROOT / ".." / "shared" / "data" / "coco128"
OFF = dict(mosaic=0.0, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0)


def pss_mb(pid: int) -> float:
    """Proportional set size of a process in MB (Linux): shared pages are split between their users,
    so forked workers are not counted several times the way RSS counts them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def family_rss(pid: int) -> float:
    """PSS of the main process plus its direct children (DataLoader workers), MB."""
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().split()[3]) == pid:
                    kids.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return pss_mb(pid) + sum(pss_mb(k) for k in kids)


def measure(ds, cfg: DataConfig, train: bool, batches: int, epochs: int, workers: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process; meaningful with workers=0)."""
    loader = build_loader(ds, cfg, train, workers=workers, epochs=max(epochs, 1))
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t, c, n = time.perf_counter(), time.process_time(), 0
    for k, (images, _) in enumerate(it):
        n += len(images)
        if k + 1 >= batches:
            break
    rate, cpu_rate = n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)
    for epoch in range(1, epochs):
        for _ in loader:
            pass
        print(f"    epoch {epoch}: memory PSS (main + workers) {family_rss(os.getpid()):.0f} MB")
    return rate, cpu_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1, help="extra full epochs to watch memory")
    ap.add_argument("--digits", default="datasets/digits", help="digits folder (generated if absent)")
    ap.add_argument("--cache", action="store_true", help="decode every image into RAM first (cfg.cache)")
    args = ap.parse_args()
    sets = [("digits 320", lambda: open_dataset("digits", "train", root=args.digits), 320)]
    if (COCO128 / "images").is_dir():
        ann = COCO128 / "annotations" / "instances_val2017.json"
        sets.append(("coco128 640", lambda: open_dataset(ann, "val", images=COCO128 / "images"), 640))
    print(f"workers={args.workers} batch={args.batch} cache={args.cache} cpus={os.cpu_count()} "
          f"load average={os.getloadavg()[0]:.1f}")
    print(f"{'data set':<14} {'augmentation':<28} {'images/s':>9} {'per CPU-s':>10}")
    for name, make, size in sets:
        ds = make()
        for label, train, extra in (("none (letterbox)", False, {}), ("off (train path)", True, OFF),
                                    ("default (mosaic, hsv, flip)", True, {}),
                                    ("+ mixup 0.5, degrees 10", True, dict(mixup=0.5, degrees=10.0))):
            cfg = DataConfig(imgsz=size, batch=args.batch, cache=args.cache, **extra)
            rate, cpu_rate = measure(ds, cfg, train, args.batches, args.epochs, args.workers)
            per_cpu = f"{cpu_rate:10.1f}" if args.workers == 0 else f"{'-':>10}"
            print(f"{name:<14} {label:<28} {rate:9.1f} {per_cpu}", flush=True)


if __name__ == "__main__":
    main()
