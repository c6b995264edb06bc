"""rtdet-detr-n against rtdet-n on one data set: the same training run, then accuracy, cost and end-to-end speed.

    python benchmarks/detr.py --digits 600 150 --epochs 10                     # rtdet-detr-n and rtdet-n
    python benchmarks/detr.py --digits 600 150 --epochs 10 --models rtdet-detr-n --set num_denoising=0 --tag no-dn
    python benchmarks/detr.py --data ../shared/data/bccd --epochs 30
    python benchmarks/detr.py --digits 600 150 --bench rtdet-detr-n rtdet-n    # time two stored rows, alternating
    python benchmarks/detr.py --digits 600 150 --table                         # print the stored results only

Each model trains from scratch through ``rtdet.workflows.train`` with its family's own recipe
(rtdet-n: the adaptive YOLO recipe; rtdet-detr-*: the DETR family's, :mod:`rtdet.models.detr.recipe`)
and the shared settings given here (data, epochs, image size, batch, seed, threads); ``--set`` adds
any rtdet setting to the runs of this call and ``--tag`` names them. A row records the validation
COCO numbers of best.pt (rtdet's evaluation, == pycocotools), the parameters and GFLOPs at
``--imgsz``, the training images per second (epochs x training images / the whole training call,
per-epoch validation included), and the end-to-end ONNX Runtime speed at ``--bench-imgsz`` (``rtdet
bench``'s letterbox, network and decoding, batch 1, ``--bench-threads`` threads): the models of one
call are exported and timed in alternating rounds, so their ratio holds on a shared machine;
``--bench TAG ...`` times stored rows again, together, without training.
Results accumulate in ``<out>/<data name>/results.json`` (one entry per model and tag).

``--digits TRAIN VAL`` generates the digits set of that many images, drawn at ``--imgsz`` (once, under
``--out``), and trains on it.
Not a timed test: a run takes minutes to hours on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def data_settings(args: argparse.Namespace, out: Path) -> dict:
    """The data settings of every run: ``--data``, or a generated digits set of ``--digits`` images."""
    if not args.digits:
        return {"data": args.data}
    from rtdet.data.digits import generate_digits

    n_train, n_val = args.digits
    root = out / "digits"
    if not (root / "data.yaml").is_file():  # drawn at the training size: digits keep their size in pixels
        generate_digits(root, n_train=n_train, n_val=n_val, imgsz=args.imgsz, seed=args.seed)
    return {"data": "digits", "root": str(root)}


def train_row(model: str, args: argparse.Namespace, out: Path, data: dict) -> dict:
    """Train ``model`` and measure it; returns its row (without the speed, see :func:`bench_rows`)."""
    import torch
    import yaml

    from rtdet.config import load_config
    from rtdet.deploy.onnx import export_onnx
    from rtdet.models.info import model_info
    from rtdet.models.load import load_trained
    from rtdet.workflows import train

    tag = f"{model} {args.tag}".strip()
    settings = {"model": model, "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "seed": args.seed,
                "out": str(out / tag), **data}
    settings |= {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = train(load_config(None, settings), progress=False)
    train_s = time.perf_counter() - start
    images = len(list((Path(data["root"]) / "images" / "train").glob("*.jpg"))) if "root" in data else None
    trained = load_trained(result.weights).model.float().fuse()
    info = model_info(trained, args.imgsz)
    onnx = export_onnx(result.weights, out / tag / "best.onnx", imgsz=args.bench_imgsz)
    return {"tag": tag, "model": model, "set": args.set, "epochs": args.epochs, "imgsz": args.imgsz,
            "batch": args.batch, "AP": result.metrics.get("AP"), "AP50": result.metrics.get("AP50"),
            "params_m": info["params"] / 1e6, "gflops": info["gflops"], "train_s": train_s,
            "train_img_s": args.epochs * images / train_s if images else None, "onnx": str(onnx)}


def bench_rows(rows: list[dict], args: argparse.Namespace) -> None:
    """Time every row's ONNX model end to end in ``--rounds`` alternating rounds; sets ``ms`` and ``fps``
    (the median of the rounds' medians)."""
    from rtdet.deploy.bench import run_bench
    from rtdet.deploy.runtime import load_backend

    size = args.bench_imgsz
    backends = {r["tag"]: load_backend(r["onnx"], "onnxruntime", args.bench_threads, size) for r in rows}
    medians: dict[str, list[float]] = {tag: [] for tag in backends}
    for _ in range(args.rounds):
        for tag, backend in backends.items():
            medians[tag].append(run_bench(backend, size, runs=args.runs, warmup=10,
                                          settings={"conf": 0.25, "max_det": 300}).median_ms)
    for r in rows:
        r["ms"] = statistics.median(medians[r["tag"]])
        r["fps"] = 1000.0 / r["ms"]


def table(rows: list[dict]) -> str:
    """The results, with each row's mAP50-95 as a multiple of rtdet-n's (when there is an rtdet-n row)."""
    base = next((r["AP"] for r in rows if r["tag"] == "rtdet-n"), None)
    lines = [f"{'model':28s} {'mAP50-95':>8s} {'x rtdet-n':>9s} {'mAP50':>6s} {'params M':>8s} {'GFLOPs':>6s} "
             f"{'train img/s':>11s} {'ONNX ms':>7s} {'FPS':>6s}"]
    for r in rows:
        ratio = f"{r['AP'] / base:9.2f}" if base else f"{'':9s}"
        speed = f"{r['ms']:7.2f} {r['fps']:6.1f}" if r.get("ms") else f"{'':7s} {'':6s}"
        img_s = f"{r['train_img_s']:11.1f}" if r.get("train_img_s") else f"{'':11s}"
        lines.append(f"{r['tag']:28s} {r['AP']:8.3f} {ratio} {r['AP50']:6.3f} {r['params_m']:8.2f} "
                     f"{r['gflops']:6.2f} {img_s} {speed}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits", help="digits, a YOLO data.yaml, a COCO json or a VOC tree")
    parser.add_argument("--digits", nargs=2, type=int, metavar=("TRAIN", "VAL"), help="generate a digits set")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads of the training runs")
    parser.add_argument("--models", nargs="+", default=["rtdet-detr-n", "rtdet-n"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an rtdet setting, repeatable")
    parser.add_argument("--tag", default="", help="a name for this variant, after the model's in the results")
    parser.add_argument("--bench", nargs="+", metavar="TAG", help="time the stored rows of these tags (no training)")
    parser.add_argument("--bench-imgsz", type=int, default=320, help="input size of the speed rounds")
    parser.add_argument("--bench-threads", type=int, default=2, help="ONNX Runtime threads of the speed rounds")
    parser.add_argument("--rounds", type=int, default=5, help="alternating speed rounds")
    parser.add_argument("--runs", type=int, default=100, help="timed frames per model and round")
    parser.add_argument("--out", default=str(HERE.parent / "runs" / "detr"))
    parser.add_argument("--table", action="store_true", help="print the table of the stored results only")
    args = parser.parse_args()
    name = f"digits_{args.digits[0]}_{args.digits[1]}_{args.imgsz}" if args.digits else Path(args.data).stem
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.json"
    if args.bench:
        rows = stored(store)
        missing = [t for t in args.bench if t not in rows]
        if missing:
            parser.error(f"no stored row tagged {', '.join(missing)} in {store}")
        bench_rows([rows[t] for t in args.bench], args)
        save(store, [rows[t] for t in args.bench])
    elif not args.table:
        data = data_settings(args, out)
        new = []
        for model in args.models:
            new.append(train_row(model, args, out, data))
            save(store, new[-1:])
        bench_rows(new, args)
        save(store, new)
    print(table(list(stored(store).values())))


def stored(store: Path) -> dict[str, dict]:
    """The stored rows by tag."""
    return {r["tag"]: r for r in (json.loads(store.read_text()) if store.is_file() else [])}


def save(store: Path, rows: list[dict]) -> None:
    """Add or replace ``rows`` in the store, read again just before (runs of other calls may have ended since)."""
    merged = stored(store) | {r["tag"]: r for r in rows}
    store.write_text(json.dumps(list(merged.values()), indent=2))


if __name__ == "__main__":
    main()
