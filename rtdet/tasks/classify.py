"""The classify task: one label per image, softmax probabilities, accuracy and the curves around it.

Frames: an image is resized and centre-cropped to ``imgsz`` (the evaluation
transform of :mod:`rtdet.data.classify_aug`) and nothing maps back: a result is
per image. Models return ``{"probs": float32 [K]}`` per image in eval mode and
export ``probs [B, K]``; the metrics are scikit-learn's
(:mod:`rtdet.metrics.classification`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtdet.tasks.base import RunResult, Task

# ---------------------------------------------------------------------------------------- data
def open_split(cfg: Any, split: str) -> Any:
    """The ``split`` of ``cfg.data.data``: an image folder of class folders, MNIST IDX files, a CSV,
    or ``sklearn-digits`` (see :func:`rtdet.data.classify.open_classification`)."""
    from rtdet.data.classify import open_classification

    return open_classification(cfg.data.data, split)


def augment(cfg: Any) -> Any:
    """The :class:`rtdet.data.classify_aug.ClassifyAugment` of the run's settings."""
    from rtdet.data.classify_aug import ClassifyAugment
    from rtdet.data.transforms import auto_scale

    d = cfg.data
    return ClassifyAugment(crop_scale=(min(cfg.classify.crop_scale, 1.0), 1.0), fliplr=d.fliplr, degrees=d.degrees,
                           translate=d.translate, scale=auto_scale(d.scale), shear=d.shear, hsv_h=d.hsv_h,
                           hsv_s=d.hsv_s, hsv_v=d.hsv_v, erasing=d.erasing, mixup=d.mixup, cutmix=d.cutmix)


def build_loader(dataset: Any, cfg: Any, train: bool, *, epochs: int = 0, seed: int = 0, sampler: Any = None) -> Any:
    """Batches of ``(images uint8 [B, 3, S, S], targets {"label", "soft", "image_id", "file"})``."""
    from rtdet.data.classify_aug import build_classification_loader

    return build_classification_loader(dataset, cfg.data.imgsz, cfg.data.batch, train, workers=cfg.data.workers,
                                       seed=seed, epochs=epochs, sampler=sampler,
                                       augment=augment(cfg) if train else None)


# ---------------------------------------------------------------------------------------- metrics
def collect(pred: dict[str, Tensor], target: dict[str, Any]) -> tuple[dict, dict]:
    """``({"probs" float32 [K], "image_id"}, {"label" int, "image_id"})`` on the CPU."""
    label = target["label"]
    return ({"probs": pred["probs"].float().cpu(), "image_id": target["image_id"]},
            {"label": int(label), "image_id": target["image_id"]})


def _arrays(preds: list[dict], targets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    probs = torch.stack([p["probs"] for p in preds]).numpy() if preds else np.zeros((0, 0), np.float32)
    return np.array([t["label"] for t in targets], np.int64), probs


def metric_fn(names: list[str], metric: str = ""):
    """``top1``, ``top5`` (top-min(5, K)), macro precision/recall/F1 and AUC, through scikit-learn (whatever
    ``metric`` names: one report)."""

    def scores(preds: list[dict], targets: list[dict]) -> dict[str, float]:
        from rtdet.metrics.classification import classification_report

        res = classification_report(*_arrays(preds, targets), names)
        return {"top1": res.top1, "top5": res.top5, "precision": res.macro["precision"],
                "recall": res.macro["recall"], "f1": res.macro["f1"], "auc": res.macro["auc"]}

    return scores


@torch.no_grad()
def final_report(model: Any, loader: Any, names: list[str], out: Path, device: torch.device,
                 save_json: bool = False, predictions: tuple[list, list] | None = None,
                 metric: str = "") -> RunResult:
    """Accuracy table, ``metrics.json``, confusion matrix / ROC / PR pictures and a grid of mistakes.

    ``save_json`` also writes ``predictions.json``: per image its file, true label and probabilities.
    """
    from rtdet.engine.evaluate import predict_all
    from rtdet.metrics.classification import classification_report
    from rtdet.metrics.classification_plots import misclassified_grid, save_classification_plots

    if predictions is None:
        preds, targets, _ = predict_all(model.to(device).eval(), loader, device, collect)
    else:
        preds, targets = predictions
    y_true, probs = _arrays(preds, targets)
    res = classification_report(y_true, probs, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(res.as_dict(), indent=2))
    files = [*save_classification_plots(res, out), out / "metrics.json"]
    ds = loader.dataset.dataset  # the ClassificationPipeline's data set
    pred_labels = probs.argmax(1)
    wrong = np.flatnonzero(pred_labels != y_true)[:256]
    ids = [int(targets[i]["image_id"]) for i in wrong]
    files.append(misclassified_grid([ds.load_image(i) for i in ids], y_true[wrong], pred_labels[wrong],
                                    probs[wrong], names, out / "misclassified.png"))
    if save_json:
        recs = [{"image": ds.file(int(t["image_id"])), "label": int(t["label"]), "probs": p["probs"].tolist()}
                for p, t in zip(preds, targets)]
        (out / "predictions.json").write_text(json.dumps(recs))
        files.append(out / "predictions.json")
    print(res.text())
    metrics = {"top1": res.top1, "top5": res.top5, **{f"{k}_macro": v for k, v in res.macro.items()},
               "auc_micro": res.auc_micro}
    return RunResult(out, metrics, None, files, task="classify")


def chance(dataset: Any) -> float:
    """Top-1 accuracy of always guessing the most frequent class of ``dataset`` (a run at or below it
    learned nothing)."""
    counts = dataset.report.per_class
    return max(counts.values()) / max(sum(counts.values()), 1) if counts else 0.0


def summary(result: RunResult) -> str:
    m = result.metrics
    return (f"top-1 {m.get('top1', float('nan')):.4f}  top-5 {m.get('top5', float('nan')):.4f}  "
            f"weights {result.weights}  results in {result.out}")


# ---------------------------------------------------------------------------------------- deployment
def settings(cfg: Any, scoring: bool = False) -> dict[str, Any]:
    """``{"topk": classify.topk}``: the classes reported per image."""
    return {"topk": cfg.classify.topk}


def preprocess(image: np.ndarray, imgsz: int) -> tuple[Tensor, None]:
    """uint8 HxWx3 RGB (or HxW grey) -> float32 [1, 3, imgsz, imgsz] in [0, 1]: the evaluation transform
    (:func:`rtdet.data.classify_aug.center_crop_resize`, then ``/ 255``)."""
    return preprocessor(imgsz)(image)


def preprocessor(imgsz: int) -> Any:
    """:func:`preprocess` for a stream of frames: the resize writes into a reused buffer and the float
    input is one reused array (:class:`rtdet.deploy.images.FrameInput`), overwritten by the next frame."""
    from rtdet.data.classify_aug import center_crop_resize
    from rtdet.deploy.images import FrameInput

    frame, square = FrameInput(imgsz), np.empty((imgsz, imgsz, 3), np.uint8)

    def preprocess(image: np.ndarray) -> tuple[Tensor, None]:
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return torch.from_numpy(frame.fill(center_crop_resize(image, imgsz, square))), None

    return preprocess


def predictions(outputs: tuple[Tensor, ...], input_size: tuple[int, int], settings: dict[str, Any]) -> list[dict]:
    """Export output ``(probs [B, K],)`` -> B dicts ``{"probs": [K]}`` (the models' eval-mode output)."""
    return [{"probs": p} for p in outputs[0]]


def decode(outputs: tuple[Tensor, ...], geometry: None, shape: tuple[int, ...], names: list[str],
           settings: dict[str, Any]) -> dict[str, Any]:
    """One image's result: ``probs`` float32 [K], and its ``topk`` classes as ``labels`` int64 [k],
    ``scores`` float32 [k] (probabilities, descending) and ``names``."""
    probs = outputs[0][0].float().cpu()
    k = max(1, min(int(settings.get("topk", 5)), len(probs)))
    scores, labels = probs.topk(k)
    return {"probs": probs, "labels": labels, "scores": scores,
            "names": [names[int(c)] if 0 <= c < len(names) else str(int(c)) for c in labels]}


def annotate(image: np.ndarray, result: dict[str, Any]) -> np.ndarray:
    """A copy of ``image`` with its top classes and probabilities written in the top-left corner; images
    smaller than 256 px are enlarged first (nearest neighbour, whole factors) so the text stays readable."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    factor = max(1, 256 // max(out.shape[:2]))
    if factor > 1:
        out = cv2.resize(out, (out.shape[1] * factor, out.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    font = max(0.5, max(out.shape[:2]) / 500)  # OpenCV font scale: ~11 px high at 0.5
    for row, (name, p) in enumerate(zip(result["names"], result["scores"].tolist())):
        y = int((row + 1) * 24 * font)
        text = f"{name} {p:.2f}"
        cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def records(result: dict[str, Any], image_name: str, frame: int | None = None) -> list[dict[str, Any]]:
    """One ``predictions.json`` entry: ``{"image", "top": [{"category", "name", "probability"}]}`` (+ ``"frame"``)."""
    rec: dict[str, Any] = {"image": image_name, "top": [
        {"category": int(c), "name": n, "probability": round(float(p), 6)}
        for c, n, p in zip(result["labels"].tolist(), result["names"], result["scores"].tolist())]}
    if frame is not None:
        rec["frame"] = frame
    return [rec]



def response(result: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API's answer for one image (``rtdet serve``): ``{"top": [{"class_id", "class_name",
    "probability"}]}``, the top-k classes, most probable first, rounded as :func:`records` rounds them."""
    return {"top": [{"class_id": int(c), "class_name": n, "probability": round(float(p), 6)}
                    for c, n, p in zip(result["labels"].tolist(), result["names"], result["scores"].tolist())]}

TASK = Task(name="classify", metric="top1", open_split=open_split, build_loader=build_loader, collect=collect,
            metric_fn=metric_fn, final_report=final_report, summary=summary, preprocess=preprocess,
            preprocessor=preprocessor, predictions=predictions, decode=decode, response=response,
            annotate=annotate, records=records, settings=settings, chance=chance)
