"""The detect task: boxes in, boxes out, the official COCO numbers (and PASCAL VOC's on request).

Frames: the loader letterboxes each image to the input size and records
``target["letterbox"] = (scale, pad_x, pad_y)`` and ``target["orig_size"]``;
models predict in that input frame. :func:`to_original` is the one place where
detections go back to original pixels (clipped to the image), for validation,
``val``, ``predict``, ``bench`` and the Python API alike, so that what is scored
is what is delivered.

Box format everywhere: absolute ``xyxy`` float32 pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtdet.boxes import unletterbox
from rtdet.tasks.base import RunResult, Task

# ---------------------------------------------------------------------------------------- data
def open_split(cfg: Any, split: str) -> Any:
    """The ``split`` of ``cfg.data.data`` (YOLO data.yaml, COCO json, VOC tree, ``digits``) as a DetectionDataset."""
    from rtdet.data import open_dataset

    return open_dataset(cfg.data.data, split, root=cfg.data.root or None)


def build_loader(dataset: Any, cfg: Any, train: bool, *, epochs: int = 0, seed: int = 0, sampler: Any = None) -> Any:
    """:func:`rtdet.data.build_loader` with the run's data and detect settings."""
    from rtdet.data import build_loader as data_loader

    return data_loader(dataset, cfg.data, train, detect=cfg.detect, epochs=epochs, seed=seed, sampler=sampler)


# ---------------------------------------------------------------------------------------- frames
def to_original(det: dict[str, Tensor], letterbox: tuple[float, float, float],
                orig_size: tuple[int, int]) -> dict[str, Tensor]:
    """One image's detections from the letterboxed input frame to original pixels, clipped to the image.

    Args:
        det: ``boxes`` [D, 4] xyxy input pixels, ``scores`` [D], ``labels`` [D] (any device, dtype).
        letterbox: ``(scale, pad_x, pad_y)``: ``x_orig = (x - pad_x) / scale``.
        orig_size: ``(height, width)`` of the original image.

    Returns:
        CPU tensors: ``boxes`` float32 [D, 4], ``scores`` float32 [D], ``labels`` int64 [D].
    """
    # NumPy (float64 inside, float32 out): a frame has a few boxes, and a torch op costs ~10 us of overhead each
    boxes = det["boxes"].detach().float().cpu()
    if len(boxes):
        boxes = torch.from_numpy(unletterbox(boxes.numpy(), letterbox, tuple(orig_size)).astype(np.float32))
    return {"boxes": boxes, "scores": det["scores"].float().cpu(), "labels": det["labels"].long().cpu()}


def collect(pred: dict[str, Tensor], target: dict[str, Any]) -> tuple[dict, dict]:
    """A prediction and its target in original pixels (CPU), tagged with the target's ``image_id``."""
    lb = target.get("letterbox", (1.0, 0.0, 0.0))
    p = {**to_original(pred, lb, target["orig_size"]), "image_id": target["image_id"]}
    t = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in target.items()}
    t["boxes"] = unletterbox(t["boxes"].float(), lb)  # ground truth lies inside the image already
    return p, t


# ---------------------------------------------------------------------------------------- metrics
REPORTS = ("coco", "voc07", "voc")  # what `val --metric` names: a protocol, whose headline number is that key


def metric_fn(names: list[str], metric: str = ""):
    """The 12 official COCO numbers ("AP", "AP50", ... "ARl") of gathered predictions and targets, plus
    the headline number of the protocol ``metric`` names: "voc07" / "voc" (PASCAL VOC mAP@0.5, 11-point /
    all-point, :mod:`rtdet.metrics.voc`) or "coco" (= "AP"), so that ``train --metric voc07`` picks best.pt."""

    def score(preds: list[dict[str, Any]], targets: list[dict[str, Any]]) -> dict[str, float]:
        from rtdet.metrics.coco import evaluate_predictions

        out = dict(evaluate_predictions(preds, targets, names, frame="original").stats)
        if metric == "coco":
            out["coco"] = out["AP"]
        voc = voc_result(preds, targets, names, metric)
        if voc is not None:
            out[metric] = voc.mAP
        return out

    return score


def voc_result(preds: list[dict], targets: list[dict], names: list[str], metric: str) -> Any:
    """:class:`rtdet.metrics.voc.VocResult` when ``metric`` is a VOC metric (``voc07``, ``voc``), else None."""
    from rtdet.metrics.voc import VOC_METRICS, evaluate_voc

    if metric not in VOC_METRICS:
        return None
    return evaluate_voc(preds, targets, names, use_07_metric=VOC_METRICS[metric])


@torch.no_grad()
def final_report(model: Any, loader: Any, names: list[str], out: Path, device: torch.device,
                 save_json: bool = False, predictions: tuple[list, list] | None = None,
                 metric: str = "") -> RunResult:
    """Official COCO table, P/R/F1, pictures and ``metrics.json`` for ``model`` on ``loader``; with
    ``metric`` ``voc07`` or ``voc`` also the PASCAL VOC table (AP per class, mAP@0.5) from the same pass.

    With ``save_json`` the same predictions are also written as ``detections.json``
    in COCO results format (bbox xywh in original pixels) with the data set's own
    image and category ids. ``predictions``: ``(predictions, targets)`` this model
    already produced on ``loader`` (its last validation during training), used
    instead of running it again.
    """
    from rtdet.data.preview import prediction_grid
    from rtdet.engine.evaluate import predict_all
    from rtdet.data.coco import detections_to_coco_results
    from rtdet.metrics.coco import COCO_KEYS
    from rtdet.metrics.report import detection_report

    if predictions is None:
        preds, targets, _ = predict_all(model.to(device).eval(), loader, device, collect)
    else:
        preds, targets = predictions
    report = detection_report(preds, targets, names, out_dir=out)
    metrics = {k: report.coco.stats[k] for k in COCO_KEYS}
    voc = voc_result(preds, targets, names, metric)
    saved = dict(metrics)
    if voc is not None:
        metrics[metric] = voc.mAP
        saved |= {metric: voc.mAP, f"{metric}_per_class": voc.per_class()}
        print(voc.table() + "\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(saved, indent=2))
    files = [*report.plots, out / "metrics.json"]
    files.append(prediction_grid(loader.dataset.base, preds, names, out / "val_predictions.png"))
    if save_json:
        dets = detections_to_coco_results(preds, loader.dataset.base)
        (out / "detections.json").write_text(json.dumps(dets))
        files.append(out / "detections.json")
    print(report.text())
    best = report.prf.best
    extra = {**best.mean(), "best_conf": best.conf}
    return RunResult(out, {**metrics, **extra}, None, files, task="detect")


def summary(result: RunResult) -> str:
    ap, ap50 = result.metrics.get("AP", float("nan")), result.metrics.get("AP50", float("nan"))
    voc = "".join(f"  {k.upper()} mAP50 {result.metrics[k]:.4f}" for k in ("voc07", "voc") if k in result.metrics)
    return f"mAP50-95 {ap:.4f}  mAP50 {ap50:.4f}{voc}  weights {result.weights}  results in {result.out}"


# ---------------------------------------------------------------------------------------- deployment
def settings(cfg: Any, scoring: bool = False) -> dict[str, Any]:
    """Decoding settings of :func:`rtdet.models.postprocess.postprocess`: ``detect.conf`` for delivered
    detections, ``detect.val_conf`` when ``scoring``."""
    d = cfg.detect
    return {"conf": d.val_conf if scoring else d.conf, "iou": d.iou, "method": d.nms, "max_det": d.max_det}


def preprocess(image: np.ndarray, imgsz: int) -> tuple[Tensor, tuple[tuple[float, float, float], int]]:
    """uint8 HxWx3 RGB -> (float32 [1, 3, imgsz, imgsz] in [0, 1], (letterbox, imgsz)): the evaluation
    letterbox (:func:`rtdet.deploy.images.to_input`)."""
    return preprocessor(imgsz)(image)


def preprocessor(imgsz: int) -> Any:
    """:func:`preprocess` for a stream of frames, its buffers reused
    (:func:`rtdet.deploy.images.letterbox_preprocessor`)."""
    from rtdet.deploy.images import letterbox_preprocessor

    return letterbox_preprocessor(imgsz)


def predictions(outputs: tuple[Tensor, ...], input_size: tuple[int, int], settings: dict[str, Any]) -> list[dict]:
    """Export outputs ``(boxes [B, N, 4] (or [B, N, K, 4]: a box per class) xyxy input pixels, scores [B, N, K])``
    -> B dicts ``boxes``/``scores``/``labels`` in the input frame: confidence filter, NMS and ``max_det``
    per ``settings`` (:func:`rtdet.models.postprocess.postprocess`)."""
    from rtdet.models.postprocess import postprocess

    boxes, scores = outputs
    return postprocess(boxes, scores, image_size=tuple(input_size), **settings)


def decode(outputs: tuple[Tensor, ...], geometry: tuple[tuple[float, float, float], int],
           shape: tuple[int, ...], names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Raw ``(boxes [1, N, 4] xyxy input pixels, scores [1, N, K])`` of one image -> its detections:
    ``boxes`` float32 [D, 4] xyxy original pixels (clipped), ``scores`` [D], ``labels`` int64 [D],
    ``names`` list[str]; sorted by score. :func:`predictions` for one image
    (:func:`rtdet.models.postprocess.postprocess_one`), then :func:`to_original`."""
    from rtdet.models.postprocess import postprocess_one

    lb, size = geometry
    boxes, scores = outputs
    det = to_original(postprocess_one(boxes[0], scores[0], image_size=(size, size), **settings), lb, shape[:2])
    det["names"] = [names[int(c)] if 0 <= c < len(names) else str(int(c)) for c in det["labels"].tolist()]
    return det


def annotate(image: np.ndarray, result: dict[str, Any]) -> np.ndarray:
    """A copy of ``image`` (uint8 HxWx3 RGB) with each box, its class name and score drawn
    (:func:`rtdet.data.preview.draw_boxes`, one colour per class)."""
    from rtdet.data.preview import draw_boxes

    texts = [f"{n} {s:.2f}" for n, s in zip(result["names"], result["scores"].tolist())]
    return draw_boxes(image, result["boxes"].numpy(), result["labels"].numpy(), texts)


def records(result: dict[str, Any], image_name: str, frame: int | None = None) -> list[dict[str, Any]]:
    """``predictions.json`` entries of one image: ``{"image", "bbox": [x, y, w, h] original pixels
    (0.01 px), "score", "category": class index, "name"}``, plus ``"category_id"`` (the training data
    set's own id, e.g. COCO's) when the model knows it and ``"frame"`` for videos."""
    recs = []
    ids = result.get("category_ids")
    for k, ((x1, y1, x2, y2), score, label, name) in enumerate(zip(
            result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist(), result["names"])):
        rec = {"image": image_name, "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
               "score": round(score, 5), "category": int(label), "name": name}
        if ids:
            rec["category_id"] = ids[k]
        if frame is not None:
            rec["frame"] = frame
        recs.append(rec)
    return recs



def response(result: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API's answer for one image (``rtdet serve``): ``{"detections": [{"class_id", "class_name", "score",
    "box": {"x1", "y1", "x2", "y2"}}]}``, boxes xyxy in original pixels, sorted by score, rounded as
    :func:`records` rounds them (0.01 px, scores to 1e-5); each adds ``category_id`` when the model knows it."""
    ids = result.get("category_ids")
    dets = []
    for k, (box, score, label, name) in enumerate(zip(
            result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist(), result["names"])):
        det = {"class_id": int(label), "class_name": name, "score": round(score, 5),
               "box": dict(zip(("x1", "y1", "x2", "y2"), (round(v, 2) for v in box)))}
        if ids:
            det["category_id"] = ids[k]
        dets.append(det)
    return {"detections": dets}

TINY = 4.0  # pixels: a box whose shorter side is below this at the training size is hard to learn (stride 8)


def diagnose(dataset: Any, cfg: Any) -> list[str]:
    """What in the training split can keep a detector from learning (see :meth:`Report.notes`), plus boxes
    that the training size makes tiny (shorter side < :data:`TINY` px after letterboxing to ``imgsz``)."""
    notes = dataset.report.notes(dataset.names)
    if len(dataset.boxes):
        counts = np.diff(dataset.offsets)  # boxes per image
        scale = cfg.data.imgsz / np.repeat(dataset.sizes.max(1), counts)  # letterbox scale of each box's image
        sides = np.minimum(dataset.boxes[:, 2] - dataset.boxes[:, 0], dataset.boxes[:, 3] - dataset.boxes[:, 1])
        tiny = sides * scale < TINY
        if tiny.mean() > 0.1:
            per = np.bincount(dataset.labels[tiny], minlength=len(dataset.names))
            worst = ", ".join(f"{dataset.names[c]} {per[c]}" for c in np.argsort(-per)[:3] if per[c])
            notes.append(f"{tiny.mean():.0%} of the training boxes are under {TINY:g} px at imgsz {cfg.data.imgsz} "
                         f"({worst}): a larger --imgsz keeps them visible")
    empty = dataset.report.empty_images
    if empty and empty >= 0.5 * max(len(dataset), 1):
        notes.append(f"{empty} of {len(dataset)} training images have no boxes")
    return notes


def recipe(cfg: Any, facts: Any) -> list:
    """The detect task's ``auto`` settings: ``close_mosaic`` (:func:`rtdet.data.pipeline.auto_close_mosaic`)."""
    from rtdet.config import AUTO
    from rtdet.data.pipeline import auto_close_mosaic
    from rtdet.engine.recipe import Choice

    if cfg.detect.close_mosaic != AUTO:
        return []
    n = auto_close_mosaic(facts.epochs)
    return [Choice("detect.close_mosaic", n, f"the last {n} of {facts.epochs} epochs on whole images")]


TASK = Task(name="detect", metric="AP", reports=REPORTS, open_split=open_split, build_loader=build_loader,
            collect=collect,
            metric_fn=metric_fn, final_report=final_report, summary=summary, preprocess=preprocess,
            preprocessor=preprocessor, predictions=predictions, decode=decode, response=response,
            annotate=annotate, records=records, settings=settings, recipe=recipe,
            diagnose=diagnose)
