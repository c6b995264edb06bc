"""rtdet-n against Ultralytics YOLO11n on the digits set: same data, epochs, image size, batch, seed and CPU.

    python benchmarks/vs_ultralytics.py [--epochs E] [--imgsz 320] [--batch B] [--seed 0]

Defaults are the demo's (``rtdet/demo.py:DEMO_SETTINGS``): its epochs, image size and batch.

Both train from scratch (``yolo11n.yaml``: no pretrained weights) on the digits
set in YOLO format, one after the other in this run. Each uses its own default
recipe apart from the shared settings, and horizontal flips are off for both
(mirrored digits are other symbols). Both use every core: PyTorch threads = CPU
count (Ultralytics' default is one fewer on CPUs). Both sets of validation predictions
(confidence >= 0.001, NMS IoU 0.7, at most 300 per image) are scored by rtdet's
COCO evaluation against the same ground truth. Training throughput is training
images (epochs x train images) per second of the whole training call; latency
is the median PyTorch end-to-end time per val image (letterbox, inference,
decoding, NMS; batch 1).

Ultralytics runs in its own environment (see ``peer.py``); rtdet does not import it.
Results land in ``runs/vs_ultralytics/`` (``results.json`` plus both run folders).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from peer import ROOT, run_peer

PEER_TRAIN = """
import json, sys, time
from pathlib import Path
import os
import ultralytics.utils.torch_utils as tu
from ultralytics import YOLO
data, out, epochs, imgsz, batch, seed, workers = sys.argv[1:8]
tu.NUM_THREADS = os.cpu_count()  # its default leaves one core idle (cpu_count - 1 threads); rtdet uses them all
model = YOLO("yolo11n.yaml")
t0 = time.perf_counter()
model.train(data=data, epochs=int(epochs), imgsz=int(imgsz), batch=int(batch), seed=int(seed), workers=int(workers),
            device="cpu", project=str(Path(out).parent), name=Path(out).name, exist_ok=True, pretrained=False,
            fliplr=0.0, plots=False, amp=False, verbose=False)
seconds = time.perf_counter() - t0
best = YOLO(str(Path(out) / "weights" / "best.pt"))
val_dir = Path(json.loads(sys.argv[8])["val_images"])
preds, latency = [], []
for f in sorted(val_dir.iterdir()):
    r = best.predict(str(f), imgsz=int(imgsz), conf=0.001, iou=0.7, max_det=300, device="cpu", verbose=False)[0]
    latency.append(sum(r.speed.values()))
    for (x1, y1, x2, y2), s, c in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
        preds.append({"image": f.name, "xyxy": [x1, y1, x2, y2], "score": s, "label": int(c)})
(Path(out) / "val_predictions.json").write_text(json.dumps(preds))
print(json.dumps({"train_seconds": seconds, "latency_ms": sorted(latency)[len(latency) // 2]}))
"""


def ground_truth(data_root: Path) -> tuple[dict, dict[str, int], list[Path]]:
    """COCO ground truth of the val split, image ids by file name, and the val image paths."""
    from rtdet.data import open_dataset
    from rtdet.data.coco import to_coco_gt

    ds = open_dataset(str(data_root / "data.yaml"), "val")
    gt = to_coco_gt(ds)
    ids = {Path(im["file_name"]).name: im["id"] for im in gt["images"]}
    return gt, ids, [Path(ds.file(i)) for i in range(len(ds))]


def score(gt: dict, ids: dict[str, int], preds: list[dict]) -> dict[str, float]:
    from rtdet.metrics.coco import evaluate

    dets = [{"image_id": ids[p["image"]], "category_id": p["label"], "score": p["score"],
             "bbox": [p["xyxy"][0], p["xyxy"][1], p["xyxy"][2] - p["xyxy"][0], p["xyxy"][3] - p["xyxy"][1]]}
            for p in preds]
    return evaluate(gt, dets, per_class=False).stats


def run_rtdet(args: argparse.Namespace, data_root: Path, out: Path, files: list[Path]) -> tuple[dict, list[dict]]:
    from rtdet.config import load_config
    from rtdet.demo import DEMO_SETTINGS
    from rtdet.deploy.images import read_image
    from rtdet.deploy.runtime import infer, load_backend
    from rtdet.workflows import train

    cfg = load_config(None, {**DEMO_SETTINGS, "root": str(data_root), "epochs": args.epochs, "imgsz": args.imgsz,
                             "batch": args.batch, "seed": args.seed, "workers": args.workers, "out": str(out)})
    t0 = time.perf_counter()
    train(cfg, progress=False)
    seconds = time.perf_counter() - t0
    backend = load_backend(out / "weights" / "best.pt", "torch")
    preds, latency = [], []
    for f in files:
        image = read_image(f)
        t0 = time.perf_counter()
        det = infer(backend, [image], args.imgsz, settings={"conf": 0.001, "iou": 0.7, "method": "nms", "max_det": 300})[0]
        latency.append(1000 * (time.perf_counter() - t0))
        preds += [{"image": f.name, "xyxy": b, "score": s, "label": c}
                  for b, s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())]
    return {"train_seconds": seconds, "latency_ms": float(np.median(latency))}, preds


def main() -> None:
    from rtdet.data.loader import auto_workers
    from rtdet.demo import DEMO_SETTINGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=DEMO_SETTINGS["epochs"])
    parser.add_argument("--imgsz", type=int, default=DEMO_SETTINGS["imgsz"])
    parser.add_argument("--batch", type=int, default=DEMO_SETTINGS["batch"])
    parser.add_argument("--seed", type=int, default=DEMO_SETTINGS["seed"])
    parser.add_argument("--workers", type=int, default=auto_workers(-1), help="loader processes, both tools")
    parser.add_argument("--data", default=str(ROOT / "datasets" / "digits"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "vs_ultralytics"))
    parser.add_argument("--only", choices=["rtdet", "ultralytics"], help="run one side (the other is read back)")
    args = parser.parse_args()

    from rtdet.data.digits import ensure_digits

    data_root = ensure_digits(args.data).parent
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    gt, ids, files = ground_truth(data_root)
    n_train = len(list((data_root / "images" / "train").iterdir()))
    peer_yaml = out / "digits_ultralytics.yaml"  # the same YOLO-format files, in Ultralytics' yaml dialect
    names = yaml.safe_load((data_root / "data.yaml").read_text())["names"]
    peer_yaml.write_text(yaml.safe_dump({"path": str(data_root), "train": "images/train", "val": "images/val",
                                         "names": dict(enumerate(names))}))
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    torch.manual_seed(args.seed)
    if args.only in (None, "rtdet"):
        timing, preds = run_rtdet(args, data_root, out / "rtdet-n", files)
        results["rtdet-n"] = {**timing, **score(gt, ids, preds)}
        results_path.write_text(json.dumps(results, indent=1))
    if args.only in (None, "ultralytics"):
        run = out / "yolo11n"
        timing = run_peer(PEER_TRAIN, str(peer_yaml), str(run), str(args.epochs), str(args.imgsz), str(args.batch),
                          str(args.seed), str(args.workers), json.dumps({"val_images": str(files[0].parent)}))
        preds = json.loads((run / "val_predictions.json").read_text())
        results["yolo11n"] = {**timing, **score(gt, ids, preds)}
        results_path.write_text(json.dumps(results, indent=1))

    print(f"\ndigits: {n_train} train / {len(files)} val images, {args.epochs} epochs, {args.imgsz} px, "
          f"batch {args.batch}, seed {args.seed}, CPU threads {torch.get_num_threads()}")
    print(f"{'model':10s} {'mAP50-95':>9s} {'mAP50':>7s} {'train img/s':>12s} {'latency ms':>11s}")
    for name, r in results.items():
        print(f"{name:10s} {r['AP']:9.3f} {r['AP50']:7.3f} {args.epochs * n_train / r['train_seconds']:12.1f} "
              f"{r['latency_ms']:11.1f}")
    if len(results) == 2:
        a, b = results["rtdet-n"], results["yolo11n"]
        print(f"rtdet-n / yolo11n: mAP50-95 {a['AP'] / max(b['AP'], 1e-9):.2f}x, "
              f"training throughput {b['train_seconds'] / a['train_seconds']:.2f}x, "
              f"latency {b['latency_ms'] / a['latency_ms']:.2f}x")


if __name__ == "__main__":
    main()
