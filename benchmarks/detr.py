"""rtdet-detr-n against rtdet-n on one data set: the same training run, then accuracy, size, cost and CPU latency.

    python benchmarks/detr.py                                    # the generated digits set, 30 epochs
    python benchmarks/detr.py --data ../shared/data/bccd --epochs 60
    python benchmarks/detr.py --models rtdet-detr-n --set num_queries=100 --tag q100
    python benchmarks/detr.py --table                            # print the stored results only

Each model trains from scratch through ``rtdet.workflows.train`` with its family's own recipe
(rtdet-n: the adaptive YOLO recipe; rtdet-detr-*: AdamW at 1e-4, backbone at a tenth, no NMS)
and the shared settings given here (data, epochs, image size, batch, seed). The row records the
validation COCO numbers of best.pt (rtdet's evaluation, == pycocotools), the parameters and
GFLOPs at ``--imgsz``, the training time, and the median single-threaded PyTorch latency of
``forward_raw`` (the network without decoding) at batch 1. Results accumulate in
``<out>/<data name>/results.json`` (one entry per model or tag).

Not a timed test: a 30-epoch digits run takes tens of minutes per model on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run(model: str, args: argparse.Namespace, out: Path) -> dict:
    """Train ``model`` and measure it; returns its row."""
    import yaml

    from model_speed import torch_cpu_ms
    from rtdet.config import load_config
    from rtdet.models.info import model_info
    from rtdet.models.load import load_trained
    from rtdet.workflows import train

    tag = f"{model} {args.tag}".strip()
    settings = {"model": model, "data": args.data, "epochs": args.epochs, "imgsz": args.imgsz,
                "batch": args.batch, "seed": args.seed, "out": str(out / tag)}
    settings |= {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    start = time.perf_counter()
    result = train(load_config(None, settings))
    train_s = time.perf_counter() - start
    trained = load_trained(result.weights).model.float().fuse()
    info = model_info(trained, args.imgsz)
    return {"tag": tag, "model": model, "set": args.set, "AP": result.metrics.get("AP"),
            "AP50": result.metrics.get("AP50"), "params_m": info["params"] / 1e6, "gflops": info["gflops"],
            "train_s": train_s, "torch_ms": torch_cpu_ms(trained, args.imgsz, runs=30, warmup=5)}


def table(rows: list[dict]) -> str:
    lines = [f"{'model':24s} {'AP':>6s} {'AP50':>6s} {'params M':>9s} {'GFLOPs':>7s} {'train min':>9s} {'ms':>7s}"]
    for r in rows:
        lines.append(f"{r['tag']:24s} {r['AP']:6.3f} {r['AP50']:6.3f} {r['params_m']:9.2f} {r['gflops']:7.2f} "
                     f"{r['train_s'] / 60:9.1f} {r['torch_ms']:7.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits", help="digits, a YOLO data.yaml, a COCO json or a VOC tree")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["rtdet-detr-n", "rtdet-n"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an rtdet setting, repeatable")
    parser.add_argument("--tag", default="", help="a name for this variant, after the model's in the results")
    parser.add_argument("--out", default=str(HERE.parent / "runs" / "detr"))
    parser.add_argument("--table", action="store_true", help="print the table of the stored results only")
    args = parser.parse_args()
    out = Path(args.out) / Path(args.data).stem
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.json"
    rows = {r["tag"]: r for r in (json.loads(store.read_text()) if store.is_file() else [])}
    for model in [] if args.table else args.models:
        row = run(model, args, out)
        rows[row["tag"]] = row
        store.write_text(json.dumps(list(rows.values()), indent=2))
    print(table(list(rows.values())))


if __name__ == "__main__":
    main()
