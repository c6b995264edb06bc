"""rtdet-cls-n against Ultralytics YOLO11n-cls on real handwritten digits (MNIST): same data, epochs,
image size, batch, seed and CPU threads.

    python benchmarks/vs_ultralytics_cls.py [--epochs 10] [--imgsz 32] [--batch 64] [--seed 0]

Data: ``../shared/data/mnist`` (the first 8,000 digits of the official MNIST test
set): the first 6,400 train, the last 1,600 validate, as rtdet's IDX reader splits
them; the same split is written once as an image folder (``datasets/mnist-folder``,
``{train,val}/<digit>/*.png``) for Ultralytics. Both train from scratch
(``yolo11n-cls.yaml``, no pretrained weights). rtdet-cls-n uses the recipe of the
README's MNIST line (AdamW 0.003, one warm-up epoch); Ultralytics its own defaults
apart from the shared settings, with flips off for both (a mirrored digit is
another symbol) and every core for both (Ultralytics' default is one fewer).
Both sets of validation probabilities are scored by rtdet's metrics (scikit-learn):
top-1 accuracy. Training throughput is training images (epochs x 6,400) per second
of the whole training call (validation included, as each tool does it); latency
is the median PyTorch time per val image (preprocessing, inference, softmax;
batch 1).

Ultralytics runs in its own environment (see ``peer.py``); rtdet does not import it.
Results land in ``runs/vs_ultralytics_cls/`` (``results.json`` plus both run folders).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from peer import ROOT, run_peer

MNIST = ROOT / ".." / "shared" / "data" / "mnist"
RTDET_RECIPE = {"model": "rtdet-cls-n", "optimizer": "adamw", "lr": 0.003, "warmup_epochs": 1.0, "workers": 0}

PEER_TRAIN = """
import json, os, sys, time
from pathlib import Path
import ultralytics.utils.torch_utils as tu
from ultralytics import YOLO
data, out, epochs, imgsz, batch, seed = sys.argv[1:7]
tu.NUM_THREADS = os.cpu_count()
model = YOLO("yolo11n-cls.yaml")
t0 = time.perf_counter()
model.train(data=data, epochs=int(epochs), imgsz=int(imgsz), batch=int(batch), seed=int(seed), workers=0,
            device="cpu", project=str(Path(out).parent), name=Path(out).name, exist_ok=True, pretrained=False,
            fliplr=0.0, plots=False, amp=False, verbose=False)
seconds = time.perf_counter() - t0
best = YOLO(str(Path(out) / "weights" / "best.pt"))
rows, latency = [], []
for f in sorted(Path(data, "val").glob("*/*.png")):
    r = best.predict(str(f), imgsz=int(imgsz), device="cpu", verbose=False)[0]
    latency.append(sum(r.speed.values()))
    rows.append({"file": f.name, "probs": r.probs.data.tolist()})
(Path(out) / "val_probs.json").write_text(json.dumps(rows))
print(json.dumps({"train_seconds": seconds, "latency_ms": sorted(latency)[len(latency) // 2],
                  "names": best.names}))
"""


def export_folder(out: Path) -> tuple[list[str], dict[str, int]]:
    """The IDX split as an image folder; returns class names and the true label of each val file name."""
    from rtdet.data.classify import open_classification, write_image_folder

    truth = {}
    for split in ("train", "val"):
        ds = open_classification(MNIST, split)
        if not (out / split).is_dir():
            write_image_folder(ds, out, split)
        for path in sorted((out / split).glob("*/*.png")):
            truth[path.name] = int(ds.names.index(path.parent.name))
    return ds.names, truth


def run_rtdet(args: argparse.Namespace, out: Path, folder: Path) -> tuple[dict, list[dict]]:
    from rtdet.config import load_config
    from rtdet.data.dataset import read_image
    from rtdet.deploy.runtime import infer, load_backend
    from rtdet.workflows import train

    cfg = load_config(None, {**RTDET_RECIPE, "data": str(MNIST), "epochs": args.epochs, "imgsz": args.imgsz,
                             "batch": args.batch, "nbs": args.batch, "seed": args.seed, "out": str(out)})
    t0 = time.perf_counter()
    train(cfg, progress=False)
    seconds = time.perf_counter() - t0
    backend = load_backend(out / "weights" / "best.pt", "torch")
    rows, latency = [], []
    for f in sorted((folder / "val").glob("*/*.png")):
        image = read_image(f)
        t0 = time.perf_counter()
        res = infer(backend, [image], args.imgsz, settings={"topk": 1})[0]
        latency.append(1000 * (time.perf_counter() - t0))
        rows.append({"file": f.name, "probs": res["probs"].tolist()})
    return {"train_seconds": seconds, "latency_ms": float(np.median(latency))}, rows


def top1(rows: list[dict], truth: dict[str, int], names: list[str], order: list[str] | None = None) -> float:
    """rtdet's top-1 (scikit-learn) of per-file probabilities; ``order``: the peer's class names by index."""
    from rtdet.metrics.classification import classification_report

    probs = np.array([r["probs"] for r in rows], np.float64)
    if order is not None:  # re-index the peer's columns to rtdet's class order
        probs = probs[:, [order.index(n) for n in names]]
    y = np.array([truth[r["file"]] for r in rows])
    return classification_report(y, probs, names).top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "runs" / "vs_ultralytics_cls"))
    parser.add_argument("--only", choices=["rtdet", "ultralytics"], help="run one side (the other is read back)")
    args = parser.parse_args()
    if not MNIST.is_dir():
        raise SystemExit(f"{MNIST} absent: this benchmark needs ../shared/data/mnist")
    folder = ROOT / "datasets" / "mnist-folder"
    names, truth = export_folder(folder)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    torch.manual_seed(args.seed)
    if args.only in (None, "rtdet"):
        timing, rows = run_rtdet(args, out / "rtdet-cls-n", folder)
        results["rtdet-cls-n"] = {**timing, "top1": top1(rows, truth, names)}
        results_path.write_text(json.dumps(results, indent=1))
    if args.only in (None, "ultralytics"):
        run = out / "yolo11n-cls"
        timing = run_peer(PEER_TRAIN, str(folder), str(run), str(args.epochs), str(args.imgsz), str(args.batch),
                          str(args.seed))
        rows = json.loads((run / "val_probs.json").read_text())
        peer_names = timing.pop("names")
        order = [peer_names[str(i)] for i in range(len(names))]
        results["yolo11n-cls"] = {**timing, "top1": top1(rows, truth, names, order)}
        results_path.write_text(json.dumps(results, indent=1))
    n_train = 6400
    print(f"\nMNIST (first 8,000 test digits): 6,400 train / 1,600 val, {args.epochs} epochs, {args.imgsz} px, "
          f"batch {args.batch}, seed {args.seed}, CPU threads {torch.get_num_threads()}")
    print(f"{'model':12s} {'top-1':>7s} {'train img/s':>12s} {'train s':>8s} {'latency ms':>11s}")
    for name, r in results.items():
        print(f"{name:12s} {r['top1']:7.4f} {args.epochs * n_train / r['train_seconds']:12.1f} "
              f"{r['train_seconds']:8.1f} {r['latency_ms']:11.2f}")
    if len(results) == 2:
        a, b = results["rtdet-cls-n"], results["yolo11n-cls"]
        print(f"rtdet-cls-n / yolo11n-cls: top-1 {a['top1'] - b['top1']:+.4f}, training throughput "
              f"{b['train_seconds'] / a['train_seconds']:.2f}x, latency {b['latency_ms'] / a['latency_ms']:.2f}x")


if __name__ == "__main__":
    main()
