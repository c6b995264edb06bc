"""rtdet-seg-n and rtdet-m2f against torchvision's LR-ASPP and DeepLabV3 (MobileNetV3-Large) on CamVid street scenes.

    python benchmarks/vs_torchvision_seg.py [--epochs 30] [--imgsz 480] [--batch 8] [--seed 0] [--threads 2]
    python benchmarks/vs_torchvision_seg.py --upsample      # rtdet-seg-n with each of its four upsamplers
    python benchmarks/vs_torchvision_seg.py --models rtdet-seg-n lraspp_mobilenet_v3_large   # some of them
    python benchmarks/vs_torchvision_seg.py --class-weight none   # plain cross-entropy (rows labelled so)
    python benchmarks/vs_torchvision_seg.py --time [--upsample]   # time the stored runs again, side by side
    python benchmarks/vs_torchvision_seg.py --models rtdet-seg-n --seg-n depths=0,1,2,2   # a variant of rtdet-seg-n
    python benchmarks/vs_torchvision_seg.py --set lr=0.004 scale=0.5   # any run setting, for every model
    python benchmarks/vs_torchvision_seg.py --dice-gain 1   # every pixel classifier's loss plus a soft Dice loss

Data: ``../shared/data/camvid`` (184 train / 101 val images at 480x360, 11 classes, value 11
unlabelled), read through a data.yaml written into the output folder; ``--train-images`` /
``--val-images`` take the first N of each split (smoke runs).

Same for every model: the split, rtdet's loader and augmentation (the segment task's
defaults: flips, scale jitter, HSV), image size, epochs, batch, seed, CPU threads, the
training loop (rtdet's Trainer with the recipe it resolves for this run: AdamW, warm-up,
EMA; the seg family's learning rate and weight decay, except rtdet-m2f, which trains with
its own family's: :data:`rtdet.engine.recipe.FAMILY_RECIPES` and :mod:`rtdet.models.m2f.recipe`), the loss (cross-entropy over
labelled pixels with the class weights ``--class-weight`` names, by default the seg family's
``sqrt_median_freq``, :mod:`rtdet.losses.seg_loss`, and every other setting of the seg section
``--set`` names, such as ``ohem_thresh``; rtdet-m2f: its own set loss) and the scoring:
rtdet's mIoU in original pixels (:mod:`rtdet.tasks.segment`) of the final EMA weights on the
val split. torchvision's models are built from scratch (``weights=None,
weights_backbone=None``) and fed ImageNet-normalised pixels, as torchvision's own
recipes do. Every model hands the task its logits on the grid its classifier predicts (rtdet-seg-n
and rtdet-m2f: stride 4; LR-ASPP: stride 8; DeepLabV3: stride 16); the loss reads them bilinearly upsampled
to the input (for torchvision's models exactly their ``forward``'s ``out``), the scoring and the
timed predictions resample them bilinearly to original pixels in one step
(:func:`rtdet.tasks.segment.to_original`), so no graph spends time writing full-resolution logits.

Reported per model: val mIoU / aAcc, training images per second (epochs x training images /
seconds of the whole training call, per-epoch validation included), the CPU seconds of that call
(this process, all its threads: what a busy machine does not inflate) and the end-to-end
latency in ONNX Runtime on the CPU (``--threads`` threads, batch 1, CamVid val images of
480x360 letterboxed to ``--bench-size`` (480: the full width) with the letterbox, the network,
the bilinear resampling of the logits to 480x360 and the arg-max timed together, as
``rtdet bench`` does). Results land in ``runs/vs_torchvision_seg/`` (``results.json`` and a
folder per model with its pictures).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor
from torchvision.models.segmentation.lraspp import LRASPP

from rtdet.config import SegConfig
from rtdet.losses.seg_loss import CLASS_WEIGHTS
from rtdet.models.base import RtdetModel
from rtdet.models.seg import apply_seg_settings, grid_predictions, sample_masks

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT / ".." / "shared" / "data" / "camvid"
CAMVID_NAMES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
                "bicyclist"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
UPSAMPLERS = ("nearest", "bilinear", "transposed", "pixelshuffle")
RUNS = {"rtdet-seg-n": ("rtdet-seg-n", "bilinear"), "rtdet-m2f": ("rtdet-m2f", ""),  # label: (model, upsampler)
          "lraspp_mobilenet_v3_large": ("lraspp", ""), "deeplabv3_mobilenet_v3_large": ("deeplabv3", "")}


class TorchvisionSegmenter(RtdetModel):
    """A torchvision segmentation model behind rtdet's model contract (task ``segment``, output ``logits``)."""

    task = "segment"
    output_names = ("logits",)

    def __init__(self, name: str, num_classes: int, seg: SegConfig | None = None) -> None:
        from torchvision.models import segmentation as tvs

        super().__init__()
        builder = {"lraspp": tvs.lraspp_mobilenet_v3_large, "deeplabv3": tvs.deeplabv3_mobilenet_v3_large}[name]
        self.net = builder(weights=None, weights_backbone=None, num_classes=num_classes)
        self.num_classes, self.build_args = num_classes, {"name": f"torchvision-{name}", "num_classes": num_classes}
        apply_seg_settings(self, seg or SegConfig())  # rtdet-seg-n's loss: self.criterion
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def use_class_counts(self, counts: list[int]) -> Tensor | None:
        return self.criterion.weigh_classes(counts)

    def head_output(self, images: Tensor) -> Tensor:
        """``[B, K, H/8, W/8]``: torchvision's ``forward`` up to its classifier (its final interpolation left out)."""
        feats = self.net.backbone((images - self.mean) / self.std)
        return self.net.classifier(feats if isinstance(self.net, LRASPP) else feats["out"])

    def logits(self, images: Tensor, stride: int = 1) -> Tensor:
        """``[B, K, H / stride, W / stride]``; at stride 1 torchvision's ``forward(...)["out"]`` (bilinear,
        align_corners=False, to the input)."""
        head = self.head_output(images).contiguous()  # NCHW, as rtdet-seg-n's Upsampler (faster when channels-last)
        size = (images.shape[-2] // stride, images.shape[-1] // stride)
        return F.interpolate(head, size=size, mode="bilinear", align_corners=False)

    def forward_raw(self, images: Tensor) -> tuple[Tensor]:
        return (self.head_output(images).float(),)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"logits": {0: "batch", 2: "height", 3: "width"}}

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        if self.training:  # the loss at seg.loss_stride, as rtdet-seg-n's
            return self.criterion(self.logits(images, self.loss_stride), sample_masks(targets, self.loss_stride))
        return grid_predictions(self.forward_raw(images)[0], images)


def write_data(out: Path, n_train: int | None, n_val: int | None) -> Path:
    """A data.yaml over CamVid (links to the first N images of a split when N is given)."""
    if not (CAMVID / "masks" / "val").is_dir():
        raise SystemExit(f"{CAMVID} absent: this benchmark needs ../shared/data/camvid")
    root = out / "camvid"
    for split, n in (("train", n_train), ("val", n_val)):
        for kind in ("images", "masks"):
            folder = root / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            for f in sorted((CAMVID / kind / split).glob("*.png"))[:n]:
                if not (folder / f.name).exists():
                    (folder / f.name).symlink_to(f.resolve())
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", "train_masks": "masks/train",
                                    "val_masks": "masks/val", "names": CAMVID_NAMES, "ignore_index": 11}))
    return path


def run_config(args: argparse.Namespace, data: Path, out: Path, model: str = "rtdet-seg-n"):
    """The shared settings, with the segment task's defaults and the recipe resolved for this run (the family of
    ``model``, an rtdet segmenter; the seg family's for torchvision's)."""
    from rtdet.config import load_config, resolve_task_defaults
    from rtdet.engine.recipe import RunFacts, resolve_recipe
    from rtdet.models import family_recipe
    from rtdet.registry import MODELS
    from rtdet.tasks.segment import TASK

    name = model if model in MODELS else "rtdet-seg-n"
    loss = {"class_weight": args.class_weight, "dice_gain": args.dice_gain} if MODELS[name].section == "seg" else {}
    settings = parse_overrides(getattr(args, "set", []), "--set")
    cfg = resolve_task_defaults(load_config(None, {
        "model": name, "data": str(data), "imgsz": args.imgsz, "epochs": args.epochs, "batch": args.batch,
        "seed": args.seed, "workers": 0, "out": str(out), "metric": "mIoU", "patience": 0, **loss, **settings}))
    n_train = len(TASK.open_split(cfg, "train"))
    facts = RunFacts(train_images=n_train, batch=args.batch, world_size=1, epochs=args.epochs,
                     num_classes=len(CAMVID_NAMES), imgsz=args.imgsz, family=MODELS[name].family)
    return resolve_recipe(cfg, facts, TASK.recipe, family_recipe(name))[0], n_train


def train_and_score(model: RtdetModel, cfg: Any, n_train: int, args: argparse.Namespace, out: Path) -> dict:
    """Train ``model`` with rtdet's Trainer on ``cfg`` (:func:`run_config`'s); score its final EMA weights."""
    from rtdet.engine import Trainer, make_evaluator, seed_everything
    from rtdet.tasks.segment import TASK

    seed_everything(args.seed)
    train_ds, val_ds = TASK.open_split(cfg, "train"), TASK.open_split(cfg, "val")
    for note in TASK.prepare_model(model, train_ds, cfg):  # the loss's class weights (none for rtdet-m2f)
        print(f"{model.build_args['name']}: {note}", flush=True)
    train_loader = TASK.build_loader(train_ds, cfg, True, epochs=args.epochs, seed=args.seed)
    val_loader = TASK.build_loader(val_ds, cfg, False)
    evaluate = make_evaluator(val_loader, TASK.metric_fn(train_ds.names), TASK.collect)
    trainer = Trainer(model, train_loader, cfg, evaluate, meta={"names": train_ds.names, "task": "segment"},
                      progress=False)
    t0, cpu0 = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    final = TASK.final_report(trainer.eval_model, val_loader, train_ds.names, out, trainer.device)
    return {"mIoU": final.metrics["mIoU"], "aAcc": final.metrics["aAcc"], "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "train_img_s": args.epochs * n_train / seconds, "ms": latency(trainer.eval_model, args, out)}


def latency(model: RtdetModel, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """End-to-end and per-stage median milliseconds in ONNX Runtime (see the module docstring)."""
    from rtdet.deploy.bench import run_bench
    from rtdet.deploy.onnx import export_onnx
    from rtdet.deploy.runtime import OrtBackend

    path = export_onnx(model, out / "model.onnx", imgsz=args.bench_size, names=CAMVID_NAMES)
    result = run_bench(OrtBackend(path, threads=args.threads), args.bench_size, args.runs, args.warmup,
                       threads=args.threads)
    return {"end_to_end": result.median_ms, **{k: v["median_ms"] for k, v in result.stages.items()}}


def time_stored(results: dict, args: argparse.Namespace, out: Path) -> None:
    """Time the stored runs' ONNX models again, in ``--rounds`` alternating rounds (so their ratio holds on a
    shared machine); sets each run's ``ms`` to the median of its rounds' medians, and ``cpu_ms`` (process CPU time
    per frame, all threads)."""
    import statistics

    from rtdet.deploy.bench import run_bench
    from rtdet.deploy.runtime import OrtBackend

    paths = {label: out / label.replace(" ", "_").replace("=", "-") / "model.onnx" for label in results}
    backends = {label: OrtBackend(p, threads=args.threads) for label, p in paths.items() if p.is_file()}
    rounds: dict[str, list] = {label: [] for label in backends}
    for _ in range(args.rounds):
        for label, backend in backends.items():
            rounds[label].append(run_bench(backend, args.bench_size, args.runs, args.warmup, threads=args.threads))
    for label, measured in rounds.items():
        stages = measured[0].stages
        results[label]["ms"] = {"end_to_end": statistics.median(m.median_ms for m in measured),
                                **{k: statistics.median(m.stages[k]["median_ms"] for m in measured) for k in stages}}
        results[label]["cpu_ms"] = statistics.median(m.cpu_ms for m in measured)


def number(text: str) -> int | float | str:
    """``"3"`` -> 3, ``"0.4"`` -> 0.4, anything else unchanged."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_overrides(pairs: list[str], flag: str = "--seg-n") -> dict[str, object]:
    """``["depths=0,1,2,2", "width=96", "aux_gain=0.4", "act=silu"]`` -> keywords: rtdet-seg-n's build keywords
    (``--seg-n``) or run settings (``--set``); a value with a comma: a tuple of ints; a number: an int or a float;
    else the string. Raises SystemExit naming ``flag`` for a pair not of the form KEY=VALUE."""
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"{flag}: expected KEY=VALUE, got {pair!r}")
        if "," in value:
            overrides[key] = tuple(int(v) for v in value.split(","))
        else:
            overrides[key] = number(value)
    return overrides


def build(name: str, upsample: str = "bilinear", seg: SegConfig | None = None,
          seg_n: dict[str, object] | None = None) -> RtdetModel:
    """The model of run ``name``; ``seg``: the seg section of the run's settings (:func:`run_config`'s ``cfg.seg``):
    the pixel loss of every model but rtdet-m2f (``loss_stride`` included), and rtdet-seg-n's ``aux_gain``;
    ``seg_n``: build keywords of rtdet-seg-n (its ``act`` among them; they win over ``seg``)."""
    from rtdet.models import build_model
    from rtdet.registry import MODELS

    seg = replace(seg or SegConfig(), upsample=upsample)
    if name == "rtdet-seg-n":
        shape = {k: getattr(seg, k) for k in MODELS[name].section_args}  # upsample, aux_gain
        model = build_model(name, len(CAMVID_NAMES), **{**shape, **(seg_n or {})})
        apply_seg_settings(model, seg)
        return model
    if name == "rtdet-m2f":
        return build_model(name, len(CAMVID_NAMES))
    return TorchvisionSegmenter(name, len(CAMVID_NAMES), seg)


def print_table(results: dict, args: argparse.Namespace) -> None:
    run = ("stored runs, each with its own settings" if getattr(args, "time", False) else
           f"{args.epochs} epochs at {args.imgsz} px, batch {args.batch}, seed {args.seed}")
    print(f"\nCamVid, {run}, {args.threads} threads; latency: ONNX Runtime, {args.bench_size} px letterbox of 480x360")
    print(f"{'model':34s} {'mIoU':>7s} {'aAcc':>7s} {'train img/s':>12s} {'train CPU min':>13s} {'inference ms':>13s} "
          f"{'end-to-end ms':>14s} {'CPU ms':>7s}")
    for name, r in results.items():
        cpu = f"{r['train_cpu_seconds'] / 60:13.1f}" if "train_cpu_seconds" in r else f"{'':13s}"
        print(f"{name:34s} {r['mIoU']:7.4f} {r['aAcc']:7.4f} {r['train_img_s']:12.2f} {cpu} {r['ms']['inference']:13.2f} "
              f"{r['ms']['end_to_end']:14.2f} {r.get('cpu_ms', float('nan')):7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=480, help="training and validation size")
    parser.add_argument("--bench-size", type=int, default=480, help="input size of the latency measurement")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime threads")
    parser.add_argument("--runs", type=int, default=100, help="timed frames per model")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--train-images", type=int, help="first N training images (default: all 184)")
    parser.add_argument("--val-images", type=int, help="first N validation images (default: all 101)")
    parser.add_argument("--upsample", action="store_true", help="compare rtdet-seg-n's four upsamplers instead")
    parser.add_argument("--upsamplers", nargs="+", choices=UPSAMPLERS, default=list(UPSAMPLERS),
                        help="with --upsample: which of them (default: all four)")
    parser.add_argument("--models", nargs="+", choices=list(RUNS), default=list(RUNS),
                        help="which models to run (default: all four); rows already in the results file are kept")
    parser.add_argument("--time", action="store_true", help="only time the stored runs again, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=5, help="with --time: alternating rounds")
    parser.add_argument("--class-weight", choices=CLASS_WEIGHTS, default=SegConfig.class_weight,
                        help="the pixel cross-entropy's class weights (every model but rtdet-m2f); rows with "
                             "another than the default are labelled with it (default: %(default)s)")
    parser.add_argument("--seg-n", nargs="+", default=[], metavar="KEY=VALUE",
                        help="build rtdet-seg-n with these keywords of rtdet.models.seg.Segmenter (e.g. "
                             "depths=0,1,2,2 channels=16,24,48,96,256 act=silu); its rows are labelled with them")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="every model's run settings instead of its family's, by config name (e.g. lr=0.004 "
                             "ema_decay=0.995 ema_tau=100; the seg section's loss settings, such as "
                             "ohem_thresh=0.7, reach torchvision's models too); its rows are labelled with them")
    parser.add_argument("--dice-gain", type=float, default=SegConfig.dice_gain,
                        help="weight of a soft Dice loss added to every pixel classifier's cross-entropy (not "
                             "rtdet-m2f's); rows with another than the default are labelled (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "vs_torchvision_seg"))
    args = parser.parse_args()
    seg_n = parse_overrides(args.seg_n)
    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("upsample.json" if args.upsample else "results.json")
    if args.time:
        results = json.loads(path.read_text())
        time_stored(results, args, out)
        path.write_text(json.dumps(results, indent=1))
        print_table(results, args)
        return
    data = write_data(out, args.train_images, args.val_images)
    if args.upsample:
        runs = {f"rtdet-seg-n upsample={k}": ("rtdet-seg-n", k) for k in args.upsamplers}
    else:
        runs = {k: RUNS[k] for k in args.models}
    results = json.loads(path.read_text()) if path.is_file() else {}
    if seg_n:
        runs = {(f"{k} {' '.join(args.seg_n)}" if v[0] == "rtdet-seg-n" else k): v for k, v in runs.items()}
    if args.class_weight != SegConfig.class_weight:
        runs = {(k if v[0] == "rtdet-m2f" else f"{k} class_weight={args.class_weight}"): v for k, v in runs.items()}
    if args.dice_gain != SegConfig.dice_gain:
        runs = {(k if v[0] == "rtdet-m2f" else f"{k} dice_gain={args.dice_gain:g}"): v for k, v in runs.items()}
    if args.set:
        runs = {f"{k} {' '.join(args.set)}": v for k, v in runs.items()}
    for label, (name, upsample) in runs.items():
        torch.manual_seed(args.seed)
        folder = out / label.replace(" ", "_").replace("=", "-")
        cfg, n_train = run_config(args, data, folder, name)
        model = build(name, upsample or "bilinear", cfg.seg, seg_n)
        results[label] = train_and_score(model, cfg, n_train, args, folder)
        fresh = json.loads(path.read_text()) if path.is_file() else {}  # rows a parallel run wrote meanwhile
        results = {**fresh, label: results[label]}
        path.write_text(json.dumps(results, indent=1))
        print(f"{label}: {json.dumps(results[label])}", flush=True)
    print_table(results, args)


if __name__ == "__main__":
    main()
