"""Every command line in README.md's code blocks runs here and leaves the files it promises.

``RUNS`` maps each README command line (its exact text, comment stripped) to how
it is run: the same argv with tiny settings appended (``--epochs 1 --imgsz 64``,
a 16-image digits set, ...), in a scratch folder that holds the README's relative
paths (``datasets/digits``, ``coco128/``, ``VOCdevkit``, ``clip.mp4``), and what it
must write. ``NOT_RUN`` lists the README lines that are deliberately not run, each
with its reason. ``test_every_readme_command_has_a_run`` fails when a README line
has no entry or an entry has no README line, so the two cannot drift apart; the
command synopses in the README's prose and tables (inline code) must name real
commands and flags, and every command they name has a run here.

``rtdet`` lines run in this process through ``rtdet.cli.main`` (the entry point
of ``rtdet`` and ``python -m rtdet``), so torch is imported once; ``torchrun``
lines run as processes. Runs depend on each other (``val`` needs the weights that
``train`` wrote): each runs once per module, its prerequisites first.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from rtdet.cli import main
from rtdet.metrics.coco import COCO_KEYS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT / ".." / "shared" / "data"

# the first word(s) of a line in a code block that make it a command line
PROGRAMS = ("rtdet", "torchrun", "make", "python", "python3", ".venv/bin/python", ".venv/bin/rtdet")
NOT_SHELL = ("python", "py", "yaml", "yml", "json", "toml")  # code blocks whose lines are not commands
TINY_TRAIN = "--epochs 1 --imgsz 64 --batch 8 --workers 0"  # 16 images: 2 steps


@dataclass
class Outcome:
    """What one run did: exit code, output and when it started (files it wrote are newer)."""

    rc: int
    stdout: str
    stderr: str
    started: float

    def tail(self) -> str:
        return f"exit code {self.rc}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"


@dataclass(frozen=True)
class Run:
    """How the test runs one README command line and what it checks afterwards."""

    name: str  # test id
    extra: str = ""  # appended to the README's argv (later flags win): tiny settings
    needs: tuple[str, ...] = ()  # runs (by name) or inputs (INPUTS) needed first
    files: tuple[str, ...] = ()  # globs under the scratch folder: each matches a non-empty file this run wrote
    out: tuple[str, ...] = ()  # substrings of its standard output
    check: Callable[[Path, Outcome], None] | None = None  # further checks of what it wrote
    rc: int = 0
    slow: bool = False
    xfail: str = ""  # a known bug, fixed elsewhere: the run may fail (xfail, not strict)
    client: Callable[[str, Path], None] | None = None  # a server: talks to it at its printed URL, then SIGINT stops it


# ----------------------------------------------------------------------------- checks of output contents


def _json(path: Path):
    return json.loads(path.read_text())


def check_digits(ws: Path, _: Outcome) -> None:
    cfg = yaml.safe_load((ws / "datasets/digits/data.yaml").read_text())
    assert cfg["nc"] == 10 and len(cfg["names"]) == 10
    assert len(list((ws / "datasets/digits/images/train").glob("*.jpg"))) == 16
    assert len(list((ws / "datasets/digits/labels/val").glob("*.txt"))) == 8


def check_png(*names: str) -> Callable[[Path, Outcome], None]:
    def check(ws: Path, _: Outcome) -> None:
        for name in names:
            assert (ws / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"

    return check


def check_digits_coco(ws: Path, _: Outcome) -> None:
    for split, n in (("train", 16), ("val", 8)):
        gt = _json(ws / f"datasets/digits-coco/annotations/{split}.json")
        assert len(gt["images"]) == n and gt["annotations"] and len(gt["categories"]) == 10
        assert all((ws / "datasets/digits-coco/images" / split / im["file_name"]).is_file() for im in gt["images"])


def check_coco128_yolo(ws: Path, _: Outcome) -> None:
    cfg = yaml.safe_load((ws / "datasets/coco128/data.yaml").read_text())
    assert cfg["nc"] == 80 and cfg["names"][0] == "person"
    labels = list((ws / "datasets/coco128/labels").glob("*.txt"))
    assert len(labels) == 128
    assert sum(len(p.read_text().splitlines()) for p in labels) == 939 - 10  # crowd boxes left out by default


def check_voc_yolo(ws: Path, _: Outcome) -> None:
    cfg = yaml.safe_load((ws / "datasets/voc/data.yaml").read_text())
    assert cfg["nc"] == 20 and len(list((ws / "datasets/voc/labels").glob("*.txt"))) == 10


def check_config(ws: Path, _: Outcome) -> None:
    saved = yaml.safe_load((ws / "run.yaml").read_text())
    assert saved["optim"]["optimizer"] == "adamw" and saved["optim"]["lr"] == 0.002
    assert saved["train"]["epochs"] == 50


def check_detr_train(ws: Path, _: Outcome) -> None:
    saved = yaml.safe_load((ws / "runs/detr/config.yaml").read_text())
    assert saved["model"]["model"] == "rtdet-detr-n" and saved["optim"]["lr"] == 0.001  # a short run's lr
    assert saved["optim"]["clip_grad"] == 0.1 and saved["optim"]["schedule"] == "step"  # the family's recipe


def check_train(ws: Path, _: Outcome) -> None:
    run = ws / "runs/digits"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optim"]["optimizer"] == "adamw" and saved["optim"]["lr"] == 0.002  # from run.yaml
    assert saved["train"]["epochs"] == 1 and saved["data"]["imgsz"] == 64  # flags win over it
    rows = (run / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and rows[0].startswith("epoch,")  # header + one epoch
    assert list(_json(run / "metrics.json"))[:12] == list(COCO_KEYS)


def check_val(folder: str, detections: bool) -> Callable[[Path, Outcome], None]:
    def check(ws: Path, _: Outcome) -> None:
        assert list(_json(ws / folder / "metrics.json"))[:12] == list(COCO_KEYS)
        if detections:
            dets = _json(ws / folder / "detections.json")
            assert dets and set(dets[0]) == {"image_id", "category_id", "bbox", "score"}

    return check


def check_metrics(ws: Path, run: Outcome) -> None:
    expected = _json(SHARED / "cocoeval" / "expected_stats_pycocotools.json")["bbox"]
    got = _json(ws / "stats.json")
    assert list(got) == list(COCO_KEYS)
    assert max(abs(got[k] - e) for k, e in zip(COCO_KEYS, expected)) <= 1e-9
    assert re.search(r"^class\s+gt\s+dets\s+AP", run.stdout, re.M), "no per-class table"


def check_predict(folder: str, video: bool) -> Callable[[Path, Outcome], None]:
    def check(ws: Path, _: Outcome) -> None:
        dets = _json(ws / folder / "predictions.json")
        assert dets, "no detections at --conf 0.001"
        keys = {"image", "bbox", "score", "category", "name"} | ({"frame"} if video else set())
        assert all(set(d) == keys for d in dets)
        if not video:
            assert len(list((ws / folder).glob("*.jpg"))) == 8  # an annotated copy of every val image

    return check


def check_bench(ws: Path, _: Outcome) -> None:
    summary = _json(ws / "bench.json")
    assert summary["backend"] == "onnxruntime" and summary["imgsz"] == 64 and summary["runs"] == 3
    assert summary["fps"] > 0 and 0 < summary["median_ms"] <= summary["p90_ms"] and summary["stages"]


def check_tune(int8: bool) -> Callable[[Path, Outcome], None]:
    def check(ws: Path, run: Outcome) -> None:
        saved = _json(ws / WEIGHTS / "best.pt.tune.json")
        assert saved["choice"]["backend"] in ("onnxruntime", "openvino") and saved["choice"]["imgsz"] == 64
        assert saved["measured"] and saved["model"] == "best.pt" and len(saved["sha256"]) == 64
        if int8:  # scored on the val split for every backend measured, float32 and int8
            assert {m["precision"] for m in saved["measured"]} == {"float32", "int8"}
            assert all(m["metric"] is not None for m in saved["measured"]) and "AP float32 -> int8" in run.stdout
            if saved["choice"]["precision"] == "int8":
                assert (ws / WEIGHTS / "best.pt.int8.onnx").is_file()
        else:
            assert {m["precision"] for m in saved["measured"]} == {"float32"} and "int8: not a candidate" in run.stdout

    return check


def check_cls_train(ws: Path, _: Outcome) -> None:
    metrics = _json(ws / "runs/mnist/metrics.json")
    assert metrics["samples"] == 1600 and metrics["top1"] > 0.6  # two epochs of 6,400 digits (0.87 measured)
    saved = yaml.safe_load((ws / "runs/mnist/config.yaml").read_text())
    assert "detect" not in saved and saved["data"]["fliplr"] == 0.0


def check_transfer(ws: Path, run: Outcome) -> None:
    found = re.search(r"loaded (\d+) tensors", run.stdout + run.stderr)
    assert found and int(found.group(1)) > 50, "the backbone's tensors were not reported as copied"


def check_voc_train(ws: Path, _: Outcome) -> None:
    run = ws / "runs/voc-frcnn"
    assert "voc07" in (run / "results.csv").read_text().splitlines()[0].split(",")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["metric"] == "voc07" and saved["rcnn"]["backbone_bn"] == "trained"  # from scratch
    assert 0 <= _json(run / "metrics.json")["voc07"] <= 1


def check_voc_val(ws: Path, run: Outcome) -> None:
    metrics = _json(ws / "runs/voc-frcnn/val/metrics.json")
    assert list(metrics)[:12] == list(COCO_KEYS) and len(metrics["voc07_per_class"]) == 20
    assert re.search(r"^aeroplane\s+\d+\s+[\d.]+$", run.stdout, re.M), "no per-class VOC table"


def check_voc_predict(ws: Path, _: Outcome) -> None:
    dets = _json(ws / "runs/predict-voc/predictions.json")
    assert len(list((ws / "runs/predict-voc").glob("*.jpg"))) == 5
    assert dets and all(sum(d["image"] == i for d in dets) <= 5 for i in {d["image"] for d in dets})


def check_voc_recipe(ws: Path, run: Outcome) -> None:
    saved = yaml.safe_load((ws / "runs/voc0712/config.yaml").read_text())
    assert saved["model"]["model"] == "faster-rcnn-r50" and saved["optim"]["lr_drop"] == [9]
    assert saved["rcnn"] == {"trainable_layers": 3, "backbone_bn": "frozen"}  # --weights given: torchvision's rule
    log = run.stdout + run.stderr  # ResNet-50's 265 weights and BatchNorm statistics; fc and counters skipped
    assert "loaded 265 tensors, skipped 55" in log and "read as 'net.backbone.body.*'" in log


def _resnet50_file(ws: Path) -> None:
    """resnet50-0676ba61.pth: a state dict in the layout of torchvision's ImageNet ResNet-50 (random values)."""
    import torch
    import torchvision

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), ws / "resnet50-0676ba61.pth")


def check_seg_train(ws: Path, _: Outcome) -> None:
    metrics = _json(ws / "runs/camvid/metrics.json")
    assert len(metrics["names"]) == 11 and len(metrics["confusion_matrix"]) == 11 and metrics["pixels"] > 0
    saved = yaml.safe_load((ws / "runs/camvid/config.yaml").read_text())
    assert "detect" not in saved and saved["train"]["metric"] == "mIoU" and saved["seg"]["upsample"] == "bilinear"


def check_seg_predict(ws: Path, _: Outcome) -> None:
    import cv2

    recs = _json(ws / "runs/camvid-predict/predictions.json")
    assert len(recs) == 4 and all(set(r) == {"image", "mask", "pixels"} for r in recs)
    for r in recs:
        mask = cv2.imread(str(ws / "runs/camvid-predict" / r["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (360, 480) and mask.max() < 11 and sum(r["pixels"].values()) == 360 * 480


def talk_to_server(url: str, ws: Path) -> None:
    """What a person does with `rtdet serve`: the page, the model's description, a prediction on a photo."""
    import httpx

    assert httpx.get(f"{url}/", timeout=60).text.startswith("<!doctype html>")
    (model,) = httpx.get(f"{url}/v1/models", timeout=60).json()["models"]
    assert model["task"] == "detect" and len(model["classes"]) == 10 and model["name"] == "best.onnx"
    photo = sorted((ws / "datasets/digits/images/val").glob("*.jpg"))[0]
    answer = httpx.post(f"{url}/v1/predict", files={"file": (photo.name, photo.read_bytes())}, data={"conf": 0.001},
                        timeout=60).json()
    assert answer["detections"] and answer["image"]["width"] > 0


# ----------------------------------------------------------------------------- the table

WEIGHTS = "runs/digits/weights"
RUNS: dict[str, Run] = {
    "rtdet data digits --out datasets/digits": Run(
        "data-digits", "--train 16 --val 8 --imgsz 96",
        files=("datasets/digits/data.yaml", "datasets/digits/images/train/*.jpg", "datasets/digits/labels/val/*.txt"),
        out=("wrote 16 train + 8 val images",), check=check_digits),
    "rtdet data check datasets/digits/data.yaml": Run(
        "data-check", needs=("data-digits",), out=("OK: no problems found",)),
    "rtdet data preview datasets/digits/data.yaml --out preview.png": Run(
        "data-preview", "--n 4 --imgsz 96", needs=("data-digits",), files=("preview.png",),
        check=check_png("preview.png")),
    "rtdet data convert --from yolo --to coco --out datasets/digits-coco datasets/digits/data.yaml": Run(
        "convert-yolo-coco", needs=("data-digits",),
        files=("datasets/digits-coco/annotations/train.json", "datasets/digits-coco/annotations/val.json"),
        check=check_digits_coco),
    "rtdet data convert --from coco --to yolo --ann coco128/annotations/instances_val2017.json "
    "--images coco128/images --out datasets/coco128": Run(
        "convert-coco-yolo", needs=("coco128",), files=("datasets/coco128/data.yaml", "datasets/coco128/labels/*.txt"),
        check=check_coco128_yolo),
    "rtdet data convert --from voc --to yolo --out datasets/voc VOCdevkit": Run(
        "convert-voc-yolo", needs=("voc",), files=("datasets/voc/data.yaml", "datasets/voc/labels/*.txt"),
        check=check_voc_yolo),
    "rtdet info --model rtdet-n --imgsz 320": Run(
        "info", out=("rtdet-n: ", " M parameters, ", " GFLOPs at 320x320")),
    "rtdet config --optimizer adamw --lr 0.002 --epochs 50 --save run.yaml": Run(
        "config", files=("run.yaml",), out=("saved run.yaml",), check=check_config),
    "rtdet train --config run.yaml --data datasets/digits/data.yaml --epochs 10 --out runs/digits": Run(
        "train", TINY_TRAIN + " --device cpu", needs=("data-digits", "config"), slow=True,
        files=tuple(f"runs/digits/{f}" for f in (
            "weights/best.pt", "weights/last.pt", "config.yaml", "results.csv", "results.png", "metrics.json",
            "pr_curve.png", "f1_curve.png", "confusion_matrix.png", "val_predictions.png")),
        out=("mAP50-95 ",), check=check_train),
    "rtdet val --weights runs/digits/weights/best.pt --data datasets/digits/data.yaml --save-json": Run(
        "val", "--imgsz 64 --batch 8 --workers 0", needs=("train",), slow=True,
        files=("runs/digits/val/metrics.json", "runs/digits/val/detections.json", "runs/digits/val/pr_curve.png",
               "runs/digits/val/val_predictions.png"),
        out=("results in ",), check=check_val("runs/digits/val", detections=True)),
    "rtdet metrics coco instances_val2014_100.json instances_val2014_fakebbox100_results.json "
    "--per-class --json stats.json": Run(
        "metrics-coco", needs=("cocoeval",), files=("stats.json",), out=("saved stats.json",), check=check_metrics),
    "torchrun --nproc_per_node=2 -m rtdet train --data datasets/digits/data.yaml --epochs 2 --imgsz 160 "
    "--batch 8 --device cpu --out runs/ddp": Run(
        "torchrun", "--epochs 1 --imgsz 64 --workers 0", needs=("data-digits",), slow=True,
        files=("runs/ddp/weights/last.pt", "runs/ddp/results.csv", "runs/ddp/metrics.json")),
    "rtdet demo": Run(
        "demo", "--epochs 1", needs=("data-digits",), slow=True,
        files=("runs/demo/weights/best.pt", "runs/demo/results.csv", "runs/demo/metrics.json",
               "runs/demo/config.yaml", "runs/demo/val_predictions.png"),
        out=("mAP50-95 ",)),
    # Classification
    "rtdet train --model rtdet-cls-n --data mnist --imgsz 32 --batch 64 --nbs 64 --optimizer adamw --lr 0.003 "
    "--warmup-epochs 1 --epochs 12 --out runs/mnist": Run(
        "mnist-train", "--epochs 2 --warmup-epochs 0.2 --workers 0", needs=("mnist",), slow=True,
        files=tuple(f"runs/mnist/{f}" for f in ("weights/best.pt", "metrics.json", "confusion_matrix.png",
                                                 "roc_curve.png", "pr_curve.png", "misclassified.png")),
        out=("top-1 ",), check=check_cls_train),
    "rtdet val --weights runs/mnist/weights/best.pt --data mnist": Run(
        "mnist-val", "--workers 0", needs=("mnist-train",), slow=True, files=("runs/mnist/val/metrics.json",),
        out=("top-1 ",)),
    # The DETR-style detector
    "rtdet info --model rtdet-detr-n --imgsz 320": Run(
        "detr-info", out=("rtdet-detr-n: ", " M parameters, ", " GFLOPs at 320x320")),
    "rtdet train --model rtdet-detr-n --data datasets/digits/data.yaml --imgsz 128 --epochs 10 --out runs/detr": Run(
        "detr-train", TINY_TRAIN + " --num-queries 20 --num-denoising 10", needs=("data-digits",), slow=True,
        files=("runs/detr/weights/best.pt", "runs/detr/config.yaml", "runs/detr/metrics.json",
               "runs/detr/val_predictions.png"), out=("mAP50-95 ",), check=check_detr_train),
    "rtdet val --weights runs/detr/weights/best.pt --data datasets/digits/data.yaml": Run(
        "detr-val", "--imgsz 64 --batch 8 --workers 0", needs=("detr-train",), slow=True,
        files=("runs/detr/val/metrics.json",), out=("results in ",), check=check_val("runs/detr/val", False)),
    "rtdet export --weights runs/detr/weights/best.pt": Run(
        "detr-export", needs=("detr-train",), slow=True, files=("runs/detr/weights/best.onnx",),
        out=("ONNX Runtime vs PyTorch on ",)),
    "rtdet export --weights runs/mnist/weights/best.pt": Run(
        "mnist-export", needs=("mnist-train",), slow=True, files=("runs/mnist/weights/best.onnx",),
        out=("ONNX Runtime vs PyTorch on ", "probs ")),
    "rtdet train --model rtdet-n --data datasets/digits/data.yaml --weights runs/mnist/weights/best.pt "
    "--epochs 10 --out runs/digits-pretrained": Run(
        "transfer", TINY_TRAIN, needs=("data-digits", "mnist-train"), slow=True,
        files=("runs/digits-pretrained/weights/best.pt",), check=check_transfer),
    # Segmentation
    "rtdet data check camvid/data.yaml": Run("seg-data-check", needs=("camvid",), out=("OK: no problems found",)),
    "rtdet train --model rtdet-seg-n --data camvid/data.yaml --epochs 60 --batch 8 --out runs/camvid": Run(
        "seg-train", "--epochs 1 --imgsz 64 --batch 4 --workers 0", needs=("camvid",), slow=True,
        files=tuple(f"runs/camvid/{f}" for f in ("weights/best.pt", "config.yaml", "results.png", "metrics.json",
                                                  "iou_per_class.png", "confusion_matrix.png", "val_predictions.png")),
        out=("mIoU ",), check=check_seg_train),
    "rtdet val --weights runs/camvid/weights/best.pt --save-json": Run(
        "seg-val", "--workers 0", needs=("seg-train",), slow=True,
        files=tuple(f"runs/camvid/val/{f}" for f in ("metrics.json", "predictions.json", "val_predictions.png")),
        out=("mIoU ",)),
    "rtdet predict --weights runs/camvid/weights/best.pt --source camvid/images/val --out runs/camvid-predict": Run(
        "seg-predict", needs=("seg-train",), slow=True,
        files=("runs/camvid-predict/predictions.json", "runs/camvid-predict/masks/*.png", "runs/camvid-predict/*.png"),
        check=check_seg_predict),
    "rtdet export --weights runs/camvid/weights/best.pt --argmax --out runs/camvid/weights/best-labels.onnx": Run(
        "seg-export-argmax", needs=("seg-train",), slow=True, files=("runs/camvid/weights/best-labels.onnx",),
        out=("in-graph argmax equals PyTorch's",)),
    "rtdet bench --model rtdet-seg-n --imgsz 480 --classes 11": Run(
        "seg-bench-model", "--imgsz 64 --runs 3 --warmup 1", slow=True, out=("FPS",)),
    "rtdet demo --task classify": Run(
        "demo-classify", "--epochs 1", slow=True,
        files=("runs/demo-classify/weights/best.pt", "runs/demo-classify/metrics.json",
               "runs/demo-classify/misclassified.png"), out=("top-1 ",)),
    # Faster R-CNN and PASCAL VOC
    "rtdet info --model faster-rcnn-r50 --imgsz 800": Run(
        "info-rcnn", slow=True, out=("faster-rcnn-r50: ", " M parameters, ", " GFLOPs at 800x800")),
    "rtdet train --model faster-rcnn --data VOCdevkit --imgsz 320 --epochs 12 --metric voc07 --out runs/voc-frcnn": Run(
        "voc-train", TINY_TRAIN + " --device cpu", needs=("voc",), slow=True,
        files=("runs/voc-frcnn/weights/best.pt", "runs/voc-frcnn/results.csv", "runs/voc-frcnn/metrics.json"),
        out=("VOC07 mAP50 ",), check=check_voc_train),
    "rtdet val --weights runs/voc-frcnn/weights/best.pt --metric voc07 --split test": Run(
        "voc-val", "--workers 0", needs=("voc-train",), slow=True, files=("runs/voc-frcnn/val/metrics.json",),
        out=("PASCAL VOC AP@0.5 (VOC2007 11-point interpolation",), check=check_voc_val),
    "rtdet export --weights runs/voc-frcnn/weights/best.pt": Run(
        "voc-export", needs=("voc-train",), slow=True, files=("runs/voc-frcnn/weights/best.onnx",),
        out=("ONNX Runtime vs PyTorch on ",)),
    "rtdet predict --weights runs/voc-frcnn/weights/best.onnx --source VOCdevkit/VOC2007/JPEGImages "
    "--out runs/predict-voc": Run(
        "voc-predict", "--conf 0.001 --max-det 5", needs=("voc-export",), slow=True,
        files=("runs/predict-voc/predictions.json",), check=check_voc_predict),
    "rtdet bench --model faster-rcnn --imgsz 320": Run(
        "bench-rcnn", "--imgsz 64 --runs 3 --warmup 1", slow=True, out=("FPS",)),
    "rtdet train --config faster-rcnn-voc0712 --data VOCdevkit --weights resnet50-0676ba61.pth --out runs/voc0712": Run(
        "voc-recipe", TINY_TRAIN + " --device cpu", needs=("voc", "resnet50"), slow=True,
        files=("runs/voc0712/weights/last.pt", "runs/voc0712/config.yaml"), check=check_voc_recipe),
    # Deployment
    "rtdet export --weights runs/digits/weights/best.pt --imgsz 320": Run(
        "export", "--imgsz 64", needs=("train",), slow=True, files=(f"{WEIGHTS}/best.onnx",),
        out=("ONNX Runtime vs PyTorch on ",)),
    "rtdet export --weights runs/digits/weights/best.pt --int8 --calib datasets/digits/images/train": Run(
        "export-int8", "--imgsz 64 --calib-images 4", needs=("train",), slow=True,
        files=(f"{WEIGHTS}/best.onnx", f"{WEIGHTS}/best.int8.onnx"), out=("int8 convolutions calibrated",)),
    "rtdet predict --weights runs/digits/weights/best.onnx --source clip.mp4 --out runs/predict": Run(
        "predict-video", "--conf 0.001 --max-det 5", needs=("export", "clip"), slow=True,
        files=("runs/predict/clip.mp4", "runs/predict/predictions.json"), out=("video: 3 frames",),
        check=check_predict("runs/predict", video=True)),
    "rtdet predict --weights runs/digits/weights/best.pt --source datasets/digits/images/val "
    "--out runs/predict-val": Run(
        "predict-folder", "--imgsz 64 --conf 0.001 --max-det 5", needs=("train",), slow=True,
        files=("runs/predict-val/predictions.json", "runs/predict-val/*.jpg"),
        check=check_predict("runs/predict-val", video=False)),
    "rtdet val --weights runs/digits/weights/best.int8.onnx --data datasets/digits/data.yaml": Run(
        "val-int8", "--batch 8 --workers 0", needs=("export-int8",), slow=True,
        files=("runs/digits/val-best.int8/metrics.json",), check=check_val("runs/digits/val-best.int8", False)),
    "rtdet val --weights runs/digits/weights/best.pt --data datasets/digits/data.yaml --backend onnxruntime": Run(
        "val-onnxruntime", "--imgsz 64 --batch 8 --workers 0", needs=("train",), slow=True,
        files=("runs/digits/val/metrics.json",), check=check_val("runs/digits/val", False)),
    "rtdet bench --weights runs/digits/weights/best.onnx --json bench.json": Run(
        "bench-onnx", "--imgsz 64 --runs 3 --warmup 1", needs=("export",), slow=True, files=("bench.json",),
        out=("wrote bench.json",), check=check_bench),
    "rtdet bench --model rtdet-n --imgsz 320": Run(
        "bench-model", "--imgsz 64 --runs 3 --warmup 1", slow=True, out=("FPS",)),
    "rtdet serve --weights runs/digits/weights/best.onnx --port 8000": Run(
        "serve", "--port 0", needs=("export",), slow=True, client=talk_to_server,
        out=("rtdet serve: best.onnx (rtdet-n, detect, 10 classes, onnxruntime, 64 px) on http://127.0.0.1:",
             "rtdet serve: stopped (SIGINT): 1 predictions")),
    # The CPU runtime
    "rtdet bench --weights runs/digits/weights/best.pt --tune": Run(
        "bench-tune", "--imgsz 64 --runs 6", needs=("train",), slow=True, files=(f"{WEIGHTS}/best.pt.tune.json",),
        out=("e2e ms", "chosen:"), check=check_tune(int8=False)),
    "rtdet bench --weights runs/digits/weights/best.pt --tune --data datasets/digits/data.yaml": Run(
        "bench-tune-int8", "--imgsz 64 --runs 6 --calib-images 4 --batch 8 --workers 0", needs=("bench-tune",),
        slow=True, files=(f"{WEIGHTS}/best.pt.tune.json",), out=("chosen:",), check=check_tune(int8=True)),
    "rtdet predict --weights runs/digits/weights/best.pt --source datasets/digits/images/val --out runs/predict-tuned "
    "--tune": Run(
        "predict-tuned", "--imgsz 64 --conf 0.001 --max-det 5", needs=("bench-tune-int8",), slow=True,
        files=("runs/predict-tuned/predictions.json",), out=("chosen:", "tuned settings from best.pt.tune.json"),
        check=check_predict("runs/predict-tuned", video=False)),
    "rtdet val --weights runs/digits/weights/best.onnx --data datasets/digits/data.yaml --backend openvino": Run(
        "val-openvino", "--batch 8 --workers 0", needs=("export", "openvino"), slow=True,
        files=("runs/digits/val-best/metrics.json",), check=check_val("runs/digits/val-best", False)),
    "rtdet bench --weights runs/digits/weights/best.onnx --backend openvino --threads 1": Run(
        "bench-openvino", "--runs 3 --warmup 1", needs=("export", "openvino"), slow=True, out=("openvino @ 64px",)),
}

# the README's 50-epoch rtdet-seg-n runs of benchmarks/vs_torchvision_seg.py: their arguments after SEG_N_50, and
# why they are not run
SEG_N_50 = ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 50 --threads 1 --models rtdet-seg-n "
SEG_N = "a benchmark: trains rtdet-seg-n on CamVid for about half an hour"
SEG_VARIANT = "a benchmark: trains a variant of rtdet-seg-n on CamVid for about half an hour"
SEG_VARIANT_20 = "a benchmark: trains a variant of rtdet-seg-n on CamVid for about twenty minutes"
LRASPP_SEED = "a benchmark: trains LR-ASPP on CamVid for about an hour and a half"  # LR-ASPP's other seeds
SEG_N_50_RUNS: dict[str, str] = {
    "--seed 1 --out runs/seg-seed1": SEG_N,
    "--set lr=0.004": SEG_N,
    "--seg-n channels=16,24,48,128,256 depths=0,1,2,2": SEG_VARIANT,
    "--seg-n channels=16,24,48,96,256 depths=0,1,2,2": SEG_VARIANT,
    "--seg-n depths=0,1,2,1 output_stride=16": SEG_VARIANT,
    "--seg-n aux_gain=0.4": "a benchmark: trains rtdet-seg-n with deep supervision on CamVid for about half an hour",
    "--seg-n depths=0,1,2,1 output_stride=16 --set ema_decay=0.995 ema_tau=100": SEG_VARIANT,
    "--set scale=0.5": SEG_N,
    "--set ohem_thresh=0.7": SEG_N,
    "--set loss_stride=2": "a benchmark: trains rtdet-seg-n on CamVid for about twenty minutes",
    "--seg-n channels=16,32,64,128,256 --set loss_stride=2": SEG_VARIANT,
    "--seg-n channels=16,32,64,128,256 --set loss_stride=2 --seed 1": SEG_VARIANT,
    "--set warmup_bias_lr=0": SEG_N,
    "--set hsv_h=0 hsv_s=0 hsv_v=0": SEG_N,
    "--seg-n head_stride=8": SEG_VARIANT_20,
    "--seg-n head_stride=8 --seed 1 --out runs/seg-hs8-seed1": SEG_VARIANT_20,
    "--seg-n head_stride=8 channels=16,32,64,128,256": SEG_VARIANT_20,
    "--seg-n head_stride=8 channels=16,32,64,128,256 depths=0,1,2,2 --set loss_stride=2": SEG_VARIANT_20,
    "--seg-n head_stride=8 channels=16,32,64,128,256 --seed 1 --out runs/seg-hs8-c32-seed1": SEG_VARIANT_20,
    "--seg-n head_stride=8 channels=16,32,64,128,256 width=96": SEG_VARIANT_20,
    "--seg-n blocks=ir": SEG_VARIANT,
    "--seg-n blocks=ir --seed 1 --out runs/seg-ir-seed1": SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 depths=0,1,2,2": SEG_VARIANT,
    "--seg-n blocks=ir depths=0,1,3,1": SEG_VARIANT,
    "--seg-n blocks=ir --seed 2 --out runs/seg-ir-seed2": SEG_VARIANT,
    "--seg-n blocks=ir --set optimizer=sgd": SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 output_stride=16": SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 output_stride=16 --seed 1 --out runs/seg-ir-os16-seed1": SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 output_stride=16 depths=0,1,2,0": SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 output_stride=16 depths=0,1,2,0 --seed 1 --out runs/seg-ir-os16-d0-seed1":
        SEG_VARIANT,
    "--seg-n blocks=ir head_stride=8 output_stride=16 depths=0,1,2,0 --seed 2 --out runs/seg-ir-os16-d0-seed2":
        SEG_VARIANT,
}

NOT_RUN: dict[str, str] = {
    "make demo": "`rtdet demo` with its full budget (6 epochs, 2,500 images, ~5.5 min) after creating .venv; "
                 "the README's `rtdet demo` line runs with --epochs 1 on 16 images in "
                 "tests/test_readme.py::test_readme_command[demo]",
    "make test": "runs this test suite (it would run itself)",
    '.venv/bin/python -m pytest tests/metrics -q': "the test runner itself",
    '.venv/bin/python -m pytest -m "not slow" -q': "the test runner itself",
    ".venv/bin/python benchmarks/vs_ultralytics.py --data ../shared/data/bccd --epochs 30 --threads 1":
        "needs the peer's .venv-peer (Ultralytics); trains four models for about an hour",
    ".venv/bin/python benchmarks/vs_ultralytics.py --data ../shared/data/coco128/annotations/instances_val2017.json "
    "--epochs 60 --threads 1": "needs the peer's .venv-peer; trains four models",
    ".venv/bin/python benchmarks/vs_ultralytics.py --data digits --epochs 3 --threads 1":
        "needs the peer's .venv-peer; trains four models",
    ".venv/bin/python benchmarks/vs_ultralytics.py --data ../shared/data/bccd --epochs 2 --out runs/vs_speed":
        "needs the peer's .venv-peer; trains four models",
    ".venv/bin/python benchmarks/bccd.py --minutes 10": "needs the peer's .venv-peer; trains four models for 10 CPU "
                                                        "minutes each (its scoring: tests/test_benchmarks.py)",
    ".venv/bin/python benchmarks/recipe.py --data ../shared/data/bccd --epochs 30": "a benchmark: trains rtdet-n "
                                                                                   "six times on BCCD",
    ".venv/bin/python benchmarks/vs_ultralytics.py": "needs the peer's own .venv-peer (Ultralytics); "
                                                     "a benchmark that trains two models for minutes",
    ".venv/bin/python benchmarks/vs_ultralytics_speed.py --weights runs/demo/weights/best.pt":
        "needs the peer's .venv-peer (Ultralytics) and the demo's weights; a benchmark of minutes",
    ".venv/bin/python benchmarks/metrics.py [--quick]": "a benchmark: prints timings, writes nothing to check",
    ".venv/bin/python benchmarks/cli_startup.py": "a benchmark: times whole processes for minutes, writes nothing",
    ".venv/bin/python benchmarks/loader.py": "a benchmark: prints images/s, writes nothing to check",
    ".venv/bin/python benchmarks/train_memory.py": "a benchmark: trains 12 epochs to watch memory",
    ".venv/bin/python benchmarks/model_speed.py": "a benchmark: prints latencies, writes nothing to check",
    ".venv/bin/python benchmarks/vs_ultralytics_cls.py": "needs the peer's .venv-peer (Ultralytics); trains both for "
    "minutes",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py": "a benchmark: trains four segmenters on CamVid for hours",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --upsample": "a benchmark: trains rtdet-seg-n four times on "
                                                                    "CamVid",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 50 --threads 1 --models rtdet-seg-n "
    "lraspp_mobilenet_v3_large": "a benchmark: trains two segmenters on CamVid for about an hour",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 50 --threads 1 --models rtdet-seg-n "
    "lraspp_mobilenet_v3_large --class-weight none": "a benchmark: trains two segmenters on CamVid for about an hour",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 10 --threads 1 --models rtdet-seg-n rtdet-m2f "
    "--class-weight none": "a benchmark: trains two segmenters on CamVid (rtdet-m2f for about an hour)",
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --upsample --epochs 10 --threads 1 --class-weight none":
        "a benchmark: trains rtdet-seg-n four times on CamVid",
    **{SEG_N_50 + args: why for args, why in SEG_N_50_RUNS.items()},
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 50 --threads 1 --models lraspp_mobilenet_v3_large "
    "--seed 1 --out runs/lraspp-seed1": LRASPP_SEED,
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --epochs 50 --threads 1 --models lraspp_mobilenet_v3_large "
    "--seed 2 --out runs/lraspp-seed2": LRASPP_SEED,
    ".venv/bin/python benchmarks/vs_torchvision_seg.py --time --threads 1 --rounds 5 --runs 40":
        "a benchmark: times the models the runs above stored (needs them)",
    ".venv/bin/python benchmarks/detr.py --digits 300 100 --imgsz 128 --epochs 30 --batch 8 --threads 1 --tag e30":
        "a benchmark: trains rtdet-detr-n and rtdet-n on digits for about half an hour",
    ".venv/bin/python benchmarks/detr.py --digits 300 100 --imgsz 128 --epochs 10 --batch 8 --threads 1":
        "a benchmark: trains rtdet-detr-n and rtdet-n on digits for about ten minutes",
    ".venv/bin/python benchmarks/detr.py --digits 300 100 --imgsz 128 --epochs 10 --batch 8 --threads 1 --models "
    "rtdet-detr-n --set o2m_k=4 --tag o2m4": "a benchmark: trains rtdet-detr-n on digits for about ten minutes",
    '.venv/bin/python benchmarks/detr.py --digits 300 100 --imgsz 128 --bench "rtdet-detr-n e30" "rtdet-n e30" '
    '--bench-imgsz 320': "a benchmark: times the models the 30-epoch run above stored (needs them)",
    'rtdet bench --weights "runs/detr/digits_300_100_128/rtdet-detr-n e30/weights/best.pt" --imgsz 320 '
    '--backend openvino': "needs the weights of the 30-epoch benchmark run above; `rtdet bench --backend openvino` "
                          "runs in tests/test_readme.py::test_readme_command[bench-openvino]",
    ".venv/bin/python benchmarks/serve_load.py":
        "a benchmark: minutes of load on rtdet serve (3 x 400 requests and 2,000 of the bad-input mix) beside "
        "rtdet bench; tests/serve start the same server and exercise every answer and refusal",
}

# ----------------------------------------------------------------------------- reading the README


def _fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """``(language, lines)`` of every fenced code block."""
    blocks, lang, lines = [], None, []
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            if lang is None:
                lang, lines = fence[3:].strip().lower(), []
            else:
                blocks.append((lang, lines))
                lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def readme_command_lines(text: str) -> list[str]:
    """Command lines of the README's shell code blocks: comments stripped, ``\\`` continuations joined,
    whitespace collapsed."""
    commands = []
    for lang, lines in _fenced_blocks(text):
        if lang in NOT_SHELL:
            continue
        pending = ""
        for line in lines:
            line = re.sub(r"(^|\s)#.*$", "", pending + " " + line.strip()).strip()
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            pending = ""
            words = line.split()
            if words and words[0] in PROGRAMS:
                commands.append(" ".join(words))
    return commands


def readme_synopses(text: str) -> list[str]:
    """Inline code outside code blocks that shows an ``rtdet`` or ``torchrun`` command (tables, prose)."""
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [s.replace("\\|", "|") for s in re.findall(r"`((?:rtdet|torchrun) [^`]*)`", outside)]


def _help(path: list[str]) -> str | None:
    """``rtdet PATH --help`` output, or None when PATH is not a command."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([*path, "--help"])
        except SystemExit as e:
            if e.code:
                return None
    text = out.getvalue()
    return text if re.match(re.escape(" ".join(["usage:", "rtdet", *path])) + r"(\s|$)", text) else None


def command_path(words: list[str]) -> tuple[list[str], list[str]]:
    """``(subcommands, the rest)`` of the words after ``rtdet``: ``data convert --from ...`` ->
    ``(["data", "convert"], ["--from", ...])``."""
    path: list[str] = []
    for i, w in enumerate(words):
        if w.startswith(("-", "[", "<", ".")) or _help([*path, w]) is None:
            return path, words[i:]
        path.append(w)
    return path, []


def _rtdet_words(line: str) -> list[str] | None:
    """The words after ``rtdet`` (or ``torchrun ... -m rtdet``); None for other programs."""
    words = line.split()
    if words[0] == "rtdet":
        return words[1:]
    if words[0] == "torchrun" and "-m" in words and words[words.index("-m") + 1] == "rtdet":
        return words[words.index("-m") + 2:]
    return None


# ----------------------------------------------------------------------------- running


def _make_clip(ws: Path) -> None:
    """clip.mp4: three digits val images as video frames."""
    import cv2

    frames = [cv2.imread(str(p)) for p in sorted((ws / "datasets/digits/images/val").glob("*.jpg"))[:3]]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(ws / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    assert (ws / "clip.mp4").stat().st_size > 0, "OpenCV could not write clip.mp4"


def _link(ws: Path, name: str, target: Path) -> None:
    if not target.exists():
        pytest.skip(f"{target} absent (../shared/data)")
    (ws / name).symlink_to(target.resolve())


def _camvid(ws: Path) -> None:
    """camvid/: links to the first 8 train and 4 val CamVid scenes and their masks, and the README's data.yaml."""
    from tests.tasks.test_segment import CAMVID, camvid_subset

    if not (CAMVID / "masks" / "val").is_dir():  # before the folder: a later line would trip over it, not skip
        pytest.skip(f"shared CamVid data absent: {CAMVID}")
    (ws / "camvid").mkdir()
    camvid_subset(ws / "camvid")


INPUTS: dict[str, tuple[tuple[str, ...], Callable[[Path], None]]] = {  # name: (runs needed first, set-up)
    "coco128": ((), lambda ws: _link(ws, "coco128", SHARED / "coco128")),
    "voc": ((), lambda ws: _link(ws, "VOCdevkit", SHARED / "voc_mini" / "VOCdevkit")),
    "cocoeval": ((), lambda ws: [_link(ws, n, SHARED / "cocoeval" / n) for n in (
        "instances_val2014_100.json", "instances_val2014_fakebbox100_results.json")]),
    "clip": (("data-digits",), _make_clip),
    "mnist": ((), lambda ws: _link(ws, "mnist", SHARED / "mnist")),
    "resnet50": ((), _resnet50_file),
    "openvino": ((), lambda ws: pytest.importorskip("openvino", reason="openvino not installed "
                                                    "(pip install 'rtdet[openvino]')") and None),
    "camvid": ((), lambda ws: _camvid(ws)),
}
BY_NAME = {run.name: line for line, run in RUNS.items()}


class Workspace:
    """The scratch folder; runs each README line at most once, its prerequisites first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, Outcome | str] = {}  # name -> outcome, or the error that stopped it

    def need(self, name: str) -> Outcome | None:
        if name not in self.done:
            self.done[name] = "(running)"
            try:
                self.done[name] = self._do(name)
            except pytest.skip.Exception:
                del self.done[name]
                raise
            except BaseException:
                self.done[name] = traceback.format_exc()
                raise
        result = self.done[name]
        if isinstance(result, str):
            pytest.fail(f"prerequisite {name!r} failed:\n{result[-3000:]}", pytrace=False)
        return result

    def _do(self, name: str) -> Outcome | None:
        needs, setup = INPUTS[name] if name in INPUTS else (RUNS[BY_NAME[name]].needs, None)
        for n in needs:
            self.need(n)
        if setup:
            setup(self.root)
            return None
        line = BY_NAME[name]
        argv = shlex.split(line) + shlex.split(RUNS[line].extra)
        return self._serve(argv, RUNS[line].client) if RUNS[line].client else self._execute(argv)

    def _serve(self, argv: list[str], client: Callable[[str, Path], None]) -> Outcome:
        """A server line: its own process; ``client`` talks to it once it prints its address; SIGINT stops it."""
        import signal

        started = time.time()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "rtdet", *argv[1:]], cwd=self.root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            if " on http://" in first:
                client(first.split(" on ")[-1].strip(), self.root)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return Outcome(proc.returncode, first + out, err, started)

    def _execute(self, argv: list[str]) -> Outcome:
        started = time.time()
        if argv[0] == "torchrun":  # the same program, on a free port (other test runs may share the machine)
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", *argv[1:]]
            r = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
            return Outcome(r.returncode, r.stdout, r.stderr, started)
        assert argv[0] == "rtdet", f"no runner for {argv[0]!r}"
        out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
        os.chdir(self.root)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(argv[1:])
                except SystemExit as e:  # argparse: unknown flag, bad value
                    rc = e.code if isinstance(e.code, int) else 1
        finally:
            os.chdir(cwd)
        return Outcome(rc, out.getvalue(), err.getvalue(), started)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"))


# ----------------------------------------------------------------------------- the tests


def test_every_readme_command_has_a_run():
    lines = set(readme_command_lines(README.read_text()))  # `make test` is shown twice
    assert not set(RUNS) & set(NOT_RUN)
    missing = sorted(lines - set(RUNS) - set(NOT_RUN))
    stale = sorted((set(RUNS) | set(NOT_RUN)) - lines)
    assert not missing, "README command lines without an entry in RUNS or NOT_RUN:\n" + "\n".join(missing)
    assert not stale, "entries whose command line is no longer in the README:\n" + "\n".join(stale)


def test_readme_synopses_name_real_commands_and_flags():
    """Inline ``rtdet ...`` in tables and prose: the command exists, its flags exist, and a run covers it."""
    run_paths = {tuple(command_path(w)[0]) for w in map(_rtdet_words, RUNS) if w is not None}
    programs = {line.split()[0] for line in RUNS}
    problems = []
    for synopsis in readme_synopses(README.read_text()):
        words = _rtdet_words(synopsis)
        if words is None:  # torchrun running something other than rtdet
            problems.append(f"{synopsis}: not an rtdet command")
            continue
        path, rest = command_path(words)
        text = _help(path) or ""
        flags = {f.split("=")[0] for f in re.findall(r"--[\w-]+(?:=\S*)?", " ".join(rest))}
        unknown = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text))
        if unknown:
            problems.append(f"{synopsis}: `rtdet {' '.join(path)}` has no {', '.join(unknown)}")
        if path and tuple(path) not in run_paths:
            problems.append(f"{synopsis}: no README code block runs `rtdet {' '.join(path)}`")
        if synopsis.startswith("torchrun") and "torchrun" not in programs:
            problems.append(f"{synopsis}: no README code block runs torchrun")
    assert not problems, "\n".join(problems)


def _params() -> list:
    params = []
    for line, run in RUNS.items():
        marks = [pytest.mark.slow] if run.slow else []
        if run.xfail:
            marks.append(pytest.mark.xfail(reason=run.xfail, strict=False))
        params.append(pytest.param(line, id=run.name, marks=marks))
    return params


@pytest.mark.parametrize("line", _params())
def test_readme_command(line, workspace):
    run = RUNS[line]
    outcome = workspace.need(run.name)
    assert outcome.rc == run.rc, f"`{line}` + `{run.extra}`:\n{outcome.tail()}"
    for pattern in run.files:
        written = [p for p in workspace.root.glob(pattern)
                   if p.is_file() and p.stat().st_size > 0 and p.stat().st_mtime >= outcome.started - 0.5]
        assert written, f"`{line}` wrote no {pattern}:\n{outcome.tail()}"
    for text in run.out:
        assert text in outcome.stdout, f"`{line}`: {text!r} not in its output:\n{outcome.tail()}"
    if run.check:
        run.check(workspace.root, outcome)
