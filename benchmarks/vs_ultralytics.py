"""rtdet against Ultralytics nano models on any data set, each with its own default recipe.

    python benchmarks/vs_ultralytics.py --data ../shared/data/bccd --epochs 30
    python benchmarks/vs_ultralytics.py --data ../shared/data/coco128/annotations/instances_val2017.json
    python benchmarks/vs_ultralytics.py                          # the generated digits set
    python benchmarks/vs_ultralytics.py --models rtdet-n --tag old-defaults \\
        --set optimizer=sgd --set lr=0.01 --set nbs=64           # one rtdet variant (a row of the recipe runs)

``--data`` is anything rtdet reads (``digits``, a YOLO data.yaml, a COCO json, a VOC
tree); its ``train`` and ``val`` splits are used (VOC: trainval and test; a COCO json
with one file serves both: the same images, so that run is an over-fit check, not a
generalization measure). The peers get the same images and boxes, written once by
rtdet's reader into Ultralytics' YOLO layout (``<out>/yolo_data``).

Every model trains from scratch with **its own defaults** apart from the shared
settings (epochs, image size, batch, seed, loader workers, CPU threads, by default every core;
horizontal flips are off for both on digits, where mirrored digits are other symbols).
rtdet variants add settings with ``--set``. All validation predictions
(confidence >= 0.001, NMS IoU 0.7, at most 300 per image, PyTorch, batch 1) are
scored by rtdet's COCO evaluation (== pycocotools) against the same ground truth.
Training throughput is epochs x train images per second of the whole training call
(per-epoch validation included for every model); latency is the median end-to-end
time per val image (read excluded: letterbox, inference, decoding, NMS).

Ultralytics runs in its own environment (see ``peer.py``); rtdet does not import it.
Results accumulate in ``<out>/<data name>/results.json`` (one entry per model or
tag; a rerun of a model replaces its entry), and the table printed at the end
covers every entry there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from peer import ROOT, run_peer

RTDET_MODELS = ("rtdet-n", "rtdet-s")
PEER_MODELS = ("yolo11n", "yolov8n")

PEER_TRAIN = """
import json, sys, time
from pathlib import Path
import os
import ultralytics.utils.torch_utils as tu
from ultralytics import YOLO
name, data, out, epochs, imgsz, batch, seed, workers, extra = sys.argv[1:10]
extra = json.loads(extra)
tu.NUM_THREADS = extra["threads"]  # its default leaves one core idle (cpu_count - 1 threads); rtdet uses them all
model = YOLO(name + ".yaml")
t0 = time.perf_counter()
model.train(data=data, epochs=int(epochs), imgsz=int(imgsz), batch=int(batch), seed=int(seed), workers=int(workers),
            device="cpu", project=str(Path(out).parent), name=Path(out).name, exist_ok=True, pretrained=False,
            plots=False, amp=False, verbose=False, **extra["train"])
seconds = time.perf_counter() - t0
best = YOLO(str(Path(out) / "weights" / "best.pt"))
preds, latency = [], []
for f in extra["val_images"]:
    r = best.predict(f, imgsz=int(imgsz), conf=0.001, iou=0.7, max_det=300, device="cpu", verbose=False)[0]
    latency.append(sum(r.speed.values()))
    for (x1, y1, x2, y2), s, c in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
        preds.append({"image": f, "xyxy": [x1, y1, x2, y2], "score": s, "label": int(c)})
(Path(out) / "val_predictions.json").write_text(json.dumps(preds))
print(json.dumps({"train_seconds": seconds, "latency_ms": sorted(latency)[len(latency) // 2]}))
"""


class BenchData:
    """The train and val splits of ``spec`` as rtdet reads them, and their COCO ground truth."""

    def __init__(self, spec: str, root: str) -> None:
        from rtdet.data import open_dataset
        from rtdet.data.coco import to_coco_gt

        self.spec = spec
        self.root = root
        self.train = open_dataset(spec, "train", root=root)
        self.val = open_dataset(spec, "val", root=root)
        self.files = [str(Path(self.val.file(i)).resolve()) for i in range(len(self.val))]
        self.gt = to_coco_gt(self.val)
        self.ids = {f: i for i, f in enumerate(self.files)}  # rtdet's image ids are positions
        self.same_images = set(self.files) == {str(Path(self.train.file(i)).resolve()) for i in range(len(self.train))}

    @property
    def name(self) -> str:
        p = Path(self.spec)
        if self.spec == "digits":
            return "digits"
        return p.parent.parent.name if p.suffix == ".json" else (p.parent.name if p.suffix in (".yaml", ".yml")
                                                                 else p.name)

    def peer_yaml(self, out: Path) -> Path:
        """The same splits in Ultralytics' YOLO layout (images linked, labels from rtdet's reader)."""
        from rtdet.data.yolo import write_yolo

        path = out / "yolo_data" / "data.yaml"
        if not path.is_file():
            write_yolo({"train": self.train, "val": self.val}, out / "yolo_data")
        return path


def score(data: BenchData, preds: list[dict]) -> dict[str, float]:
    from rtdet.metrics.coco import evaluate

    dets = [{"image_id": data.ids[str(Path(p["image"]).resolve())], "category_id": p["label"], "score": p["score"],
             "bbox": [p["xyxy"][0], p["xyxy"][1], p["xyxy"][2] - p["xyxy"][0], p["xyxy"][3] - p["xyxy"][1]]}
            for p in preds]
    return evaluate(data.gt, dets, per_class=False).stats


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "optimizer=sgd"]`` -> ``{"lr": 0.01, "optimizer": "sgd"}`` (values read as YAML)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_rtdet(model: str, args: argparse.Namespace, data: BenchData, out: Path,
              extra: dict[str, Any]) -> tuple[dict, list[dict]]:
    from rtdet.config import load_config
    from rtdet.deploy.images import read_image
    from rtdet.deploy.runtime import infer, load_backend
    from rtdet.workflows import train

    settings = {"model": model, "data": data.spec, "root": data.root, "epochs": args.epochs, "imgsz": args.imgsz,
                "batch": args.batch, "seed": args.seed, "workers": args.workers, "out": str(out), **extra}
    if data.name == "digits":
        settings.setdefault("fliplr", 0.0)
    t0 = time.perf_counter()
    train(load_config(None, settings), progress=False)
    seconds = time.perf_counter() - t0
    backend = load_backend(out / "weights" / "best.pt", "torch")
    preds, latency = [], []
    for f in data.files:
        image = read_image(f)
        t0 = time.perf_counter()
        det = infer(backend, [image], args.imgsz, settings={"conf": 0.001, "iou": 0.7, "method": "nms", "max_det": 300})[0]
        latency.append(1000 * (time.perf_counter() - t0))
        preds += [{"image": f, "xyxy": b, "score": s, "label": c}
                  for b, s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())]
    saved = yaml.safe_load((out / "config.yaml").read_text())  # the recipe as resolved for this run
    recipe = {k: saved[s][k] for s, k in (("optim", "optimizer"), ("optim", "lr"), ("optim", "nbs"),
                                           ("optim", "warmup_epochs"), ("train", "ema_tau"),
                                           ("detect", "close_mosaic"))}
    return {"train_seconds": seconds, "latency_ms": float(np.median(latency)), "settings": extra,
            "optim": recipe}, preds


def run_ultralytics(model: str, args: argparse.Namespace, data: BenchData, out: Path) -> tuple[dict, list[dict]]:
    train_extra = {"fliplr": 0.0} if data.name == "digits" else {}
    timing = run_peer(PEER_TRAIN, model, str(data.peer_yaml(out.parent)), str(out), str(args.epochs),
                      str(args.imgsz), str(args.batch), str(args.seed), str(args.workers),
                      json.dumps({"val_images": data.files, "train": train_extra, "threads": args.threads}))
    return timing, json.loads((out / "val_predictions.json").read_text())


def print_table(data: BenchData, args: argparse.Namespace, results: dict[str, dict]) -> None:
    n_train = len(data.train)
    note = " (train = val: an over-fit check)" if data.same_images else ""
    print(f"\n{data.name}: {n_train} train / {len(data.val)} val images{note}, {args.epochs} epochs, {args.imgsz} px, "
          f"batch {args.batch}, seed {args.seed}, CPU threads {args.threads}")
    print(f"| model | mAP50-95 | mAP50 | training images/s | latency ms | recipe |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        recipe = ", ".join(f"{k} {v}" for k, v in r.get("optim", {}).items()) or "its defaults"
        print(f"| {name} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['epochs'] * n_train / r['train_seconds']:.1f} | "
              f"{r['latency_ms']:.1f} | {recipe} |")
    peers = [r for n, r in results.items() if n in PEER_MODELS]
    if peers:
        best = max(peers, key=lambda r: r["AP"])
        for name in RTDET_MODELS:
            if name in results:
                r = results[name]
                print(f"{name} / best peer: mAP50-95 {r['AP'] / max(best['AP'], 1e-9):.2f}x, training throughput "
                      f"{(r['epochs'] / r['train_seconds']) / (best['epochs'] / best['train_seconds']):.2f}x")


def main() -> None:
    from rtdet.data.loader import auto_workers

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits", help="digits, a YOLO data.yaml, a COCO json or a VOC tree")
    parser.add_argument("--root", default=str(ROOT / "datasets" / "digits"), help="where the digits set lives")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=auto_workers(-1), help="loader processes, every tool")
    parser.add_argument("--models", nargs="+", default=[*RTDET_MODELS, *PEER_MODELS],
                        choices=[*RTDET_MODELS, *PEER_MODELS])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an rtdet setting for the rtdet models (repeatable); pair it with --tag")
    parser.add_argument("--tag", default="", help="name of this rtdet variant in the results (default: the model)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "vs_ultralytics"))
    parser.add_argument("--table", action="store_true", help="print the table of the stored results only")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch threads of every model (default: every core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = BenchData(args.data, args.root)
    out = Path(args.out).resolve() / data.name
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    extra = parse_sets(args.set)
    torch.manual_seed(args.seed)
    for model in [] if args.table else args.models:
        key = f"{model} {args.tag}".strip() if model in RTDET_MODELS else model
        run_dir = out / key.replace(" ", "_")
        if model in RTDET_MODELS:
            timing, preds = run_rtdet(model, args, data, run_dir, extra)
        else:
            timing, preds = run_ultralytics(model, args, data, run_dir)
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}  # others' new rows
        results[key] = {**timing, "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch,
                        "threads": args.threads, **score(data, preds)}
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{key}: mAP50-95 {results[key]['AP']:.3f} mAP50 {results[key]['AP50']:.3f} "
              f"in {timing['train_seconds']:.0f} s", flush=True)
    print_table(data, args, results)


if __name__ == "__main__":
    main()
