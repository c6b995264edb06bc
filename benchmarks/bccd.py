"""Real blood-smear photos (BCCD): rtdet-n, rtdet-s, Faster R-CNN and YOLO11n for the same training budget.

    python benchmarks/bccd.py --minutes 10                    # every model, 10 CPU-minutes of training each
    python benchmarks/bccd.py --models rtdet-n --minutes 2
    python benchmarks/bccd.py --table                         # print the stored results only

Every model trains from scratch on BCCD's ``trainval`` list (292 photos; VOC layout, three classes:
RBC, WBC, Platelets) with its own default recipe, at the same image size, batch and seed, and is
scored once, at the end, on the ``test`` list (72 photos): PASCAL VOC2007 mAP@0.5 (11-point,
:mod:`rtdet.metrics.voc`), COCO mAP50-95 (rtdet's evaluation == pycocotools) and AP per class, from
the predictions of the last weights (confidence >= 0.001, at most 300 per image; no model selection
on the test photos).

The budget is training time on one core: every model runs with one PyTorch thread and its data
loading in the same process, and its budget is CPU seconds of that process (on an idle machine,
wall-clock seconds), so that runs stay comparable while other work shares the machine. A one-epoch
probe run measures each model's epoch cost (with its end-of-run validation), and the real run gets
``floor(budget / epoch cost)`` epochs, so that every model's schedule (warm-up, decay, the last
epochs without mosaic) completes inside the budget. The table reports the CPU seconds actually
used and the epochs reached. Latency: median end-to-end milliseconds per test image (letterbox,
network, decoding), PyTorch, one thread, batch 1.

Faster R-CNN is torchvision's MobileNetV3-Large-FPN built with random weights (``faster-rcnn``).
Ultralytics YOLO11n runs in its own environment (``peer.py``; rtdet never imports it) on the same
images and boxes written by rtdet's reader. BCCD as published has two RBC boxes one pixel in size
(``xmin == xmax``, ``ymin == ymax``): rtdet's reader keeps them and warns; the run prints them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from peer import ROOT, run_peer
from vs_ultralytics import BenchData

RTDET_MODELS = ("rtdet-n", "rtdet-s", "faster-rcnn")
PEER_MODELS = ("yolo11n",)
CONF, IOU, MAX_DET = 0.001, 0.7, 300

PEER_TRAIN = """
import json, resource, sys, time
from pathlib import Path
import ultralytics.utils.torch_utils as tu
from ultralytics import YOLO
name, data, out, epochs, imgsz, batch, seed, extra = sys.argv[1:9]
extra = json.loads(extra)
tu.NUM_THREADS = 1
model = YOLO(name + ".yaml")
c0 = time.process_time()
model.train(data=data, epochs=int(epochs), imgsz=int(imgsz), batch=int(batch), seed=int(seed), workers=0,
            device="cpu", project=str(Path(out).parent), name=Path(out).name, exist_ok=True, pretrained=False,
            plots=False, amp=False, verbose=False, val=False)
cpu = time.process_time() - c0
last = YOLO(str(Path(out) / "weights" / "last.pt"))
preds, latency = [], []
for f in extra["images"]:
    r = last.predict(f, imgsz=int(imgsz), conf=extra["conf"], iou=extra["iou"], max_det=extra["max_det"],
                     device="cpu", verbose=False)[0]
    latency.append(sum(r.speed.values()))
    for (x1, y1, x2, y2), s, c in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
        preds.append({"image": f, "xyxy": [x1, y1, x2, y2], "score": s, "label": int(c)})
(Path(out) / "test_predictions.json").write_text(json.dumps(preds))
print(json.dumps({"cpu_seconds": cpu, "latency_ms": sorted(latency)[len(latency) // 2]}))
"""


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the peer's training process)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def train_rtdet(model: str, args: argparse.Namespace, data: BenchData, out: Path, epochs: int) -> dict:
    """Train ``model`` for ``epochs`` (validating once, at the end) and predict the test photos."""
    from rtdet.config import load_config
    from rtdet.deploy.images import read_image
    from rtdet.deploy.runtime import infer, load_backend
    from rtdet.workflows import train

    settings = {"model": model, "data": data.spec, "epochs": epochs, "imgsz": args.imgsz, "batch": args.batch,
                "seed": args.seed, "workers": 0, "val_interval": epochs, "out": str(out)}
    c0, t0 = cpu_seconds(), time.perf_counter()
    train(load_config(None, settings), progress=False)
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    backend = load_backend(out / "weights" / "last.pt", "torch", threads=1)
    preds, latency = [], []
    for f in data.files:
        image = read_image(f)
        t0 = time.perf_counter()
        det = infer(backend, [image], args.imgsz, settings={"conf": CONF, "iou": IOU, "method": "nms",
                                                             "max_det": MAX_DET})[0]
        latency.append(1000 * (time.perf_counter() - t0))
        preds += [{"image": f, "xyxy": b, "score": s, "label": c}
                  for b, s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())]
    return {"cpu_seconds": cpu, "wall_seconds": wall, "latency_ms": float(np.median(latency)), "preds": preds}


def train_peer(model: str, args: argparse.Namespace, data: BenchData, out: Path, epochs: int) -> dict:
    """Train Ultralytics ``model`` in its own environment for ``epochs`` and predict the test photos."""
    t0 = time.perf_counter()
    timing = run_peer(PEER_TRAIN, model, str(data.peer_yaml(out.parent)), str(out), str(epochs), str(args.imgsz),
                      str(args.batch), str(args.seed),
                      json.dumps({"images": data.files, "conf": CONF, "iou": IOU, "max_det": MAX_DET}), threads=1)
    return {**timing, "wall_seconds": time.perf_counter() - t0,
            "preds": json.loads((out / "test_predictions.json").read_text())}


def run_model(model: str, args: argparse.Namespace, data: BenchData, out: Path) -> dict:
    """Probe one epoch, then train for the epochs that fit the budget; returns the scored row."""
    fit = train_peer if model in PEER_MODELS else train_rtdet
    probe = fit(model, args, data, out / f"{model}_probe", 1)
    epochs = max(1, math.floor(args.minutes * 60 / probe["cpu_seconds"]))
    print(f"{model}: one epoch costs {probe['cpu_seconds']:.0f} CPU s -> {epochs} epochs in "
          f"{args.minutes:g} CPU min", flush=True)
    run = fit(model, args, data, out / model, epochs)
    return {"epochs": epochs, "probe_cpu_seconds": probe["cpu_seconds"], "budget_minutes": args.minutes,
            "imgsz": args.imgsz, "batch": args.batch, **{k: v for k, v in run.items() if k != "preds"},
            **score(data, run["preds"])}


def score(data: BenchData, preds: list[dict]) -> dict:
    """VOC07 mAP@0.5 and COCO numbers, overall and per class, of ``preds`` on the test photos."""
    from rtdet.metrics.coco import evaluate
    from rtdet.metrics.voc import evaluate_voc

    by_image: dict[int, list[dict]] = {}
    for p in preds:
        by_image.setdefault(data.ids[str(Path(p["image"]).resolve())], []).append(p)
    voc_preds, targets = [], []
    for i in range(len(data.val)):
        rows = by_image.get(i, [])
        voc_preds.append({"boxes": np.array([p["xyxy"] for p in rows], np.float64).reshape(-1, 4),
                          "scores": np.array([p["score"] for p in rows], np.float64),
                          "labels": np.array([p["label"] for p in rows], np.int64)})
        targets.append(data.val.annotations(i))
    voc = evaluate_voc(voc_preds, targets, data.val.names, use_07_metric=True)
    dets = [{"image_id": data.ids[str(Path(p["image"]).resolve())], "category_id": p["label"], "score": p["score"],
             "bbox": [p["xyxy"][0], p["xyxy"][1], p["xyxy"][2] - p["xyxy"][0], p["xyxy"][3] - p["xyxy"][1]]}
            for p in preds]
    coco = evaluate(data.gt, dets, per_class=True)
    return {"voc07_mAP50": voc.mAP, "voc07_per_class": voc.per_class(), **coco.stats,
            "coco_per_class": {c.name: c.AP for c in coco.per_class}}


def print_table(data: BenchData, results: dict[str, dict]) -> None:
    names = data.val.names
    print(f"\nBCCD: {len(data.train)} trainval / {len(data.val)} test photos; budget per model in CPU minutes "
          f"(one thread); scored on test")
    print("| model | budget min | epochs | CPU s used | VOC07 mAP50 | mAP50-95 | mAP50 | "
          + " | ".join(f"{n} VOC07 AP50 / AP50-95" for n in names) + " | latency ms |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(names) + "---|")
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["AP"]):
        per = " | ".join(f"{r['voc07_per_class'].get(n) or 0.0:.3f} / {r['coco_per_class'].get(n, float('nan')):.3f}"
                         for n in names)
        print(f"| {name} | {r['budget_minutes']:g} | {r['epochs']} | {r['cpu_seconds']:.0f} | {r['voc07_mAP50']:.3f} | "
              f"{r['AP']:.3f} | {r['AP50']:.3f} | {per} | {r['latency_ms']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bccd"), help="the BCCD VOC tree")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per model, CPU minutes")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=[*RTDET_MODELS, *PEER_MODELS],
                        choices=[*RTDET_MODELS, *PEER_MODELS])
    parser.add_argument("--out", default=str(ROOT / "runs" / "bccd"))
    parser.add_argument("--table", action="store_true", help="print the table of the stored results only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

    data = BenchData(args.data, "")
    for w in data.train.report.warnings + data.val.report.warnings:
        print(f"data warning: {w}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    for model in [] if args.table else args.models:
        row = run_model(model, args, data, out)
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}  # others' new rows
        results[model] = row
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{model}: VOC07 mAP50 {row['voc07_mAP50']:.3f}, mAP50-95 {row['AP']:.3f} after {row['epochs']} epochs "
              f"({row['cpu_seconds']:.0f} CPU s)", flush=True)
    print_table(data, json.loads(results_path.read_text()) if results_path.is_file() else {})


if __name__ == "__main__":
    main()
