"""The segment task: a class per pixel, scored by mmsegmentation's mIoU, aAcc and mAcc in original pixels.

Frames: the loader letterboxes each image (and its mask) to the input size and records
``target["letterbox"] = (scale, pad_x, pad_y)``; models predict class logits on a grid that
covers that input frame (``{"logits": float [K, h, w], "input_size": (S_h, S_w)}``: the grid
may be coarser than the input, e.g. rtdet-seg-n's stride 4, ``h = S_h / 4``; without
``input_size`` the grid is the input's own pixels; an export with ``--argmax`` gives
``{"labels": int [S, S]}`` in input pixels). :func:`to_original` is the one place where a
prediction goes back to original pixels, for validation, ``val``, ``predict``, ``bench`` and
the Python API alike: logits are resampled bilinearly and then arg-maxed (mmsegmentation's
order: smooth class boundaries, and the score of every original pixel counts), a class map
from an in-graph argmax by nearest neighbour (class indices cannot be interpolated).

Coarse logits are resampled once, straight to original pixels, instead of bilinearly to the
input in the graph and again to the image: the same numbers where the letterbox scale is 1
(each original pixel is an input pixel centre), one interpolation fewer elsewhere, and the
network neither writes nor reorders ``K`` full-resolution planes (rtdet-seg-n at 480 px: 3 of
its 14 ms in ONNX Runtime), nor does the arg-max read them.

Scores are counted against the mask as stored (``target["orig_mask"]``), never against its
letterboxed copy. :func:`collect` keeps per image only the (true class, predicted class) pixel
counts, not the masks: ADE20K's 2,000 validation masks alone would take 1.4 GB, a confusion
table a few hundred bytes; :func:`metric_fn` sums them into :class:`SegmentationMetric`'s
numbers, and the report redraws the few images it shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtdet.tasks.base import RunResult, Task

REPORT_IMAGES = 4  # validation images drawn in val_predictions.png (evenly spaced over the split)
UNSUPPORTED = ("mixup", "cutmix", "erasing", "cache")  # data settings the segmentation loader does not apply


# ---------------------------------------------------------------------------------------- data
def open_split(cfg: Any, split: str) -> Any:
    """The ``split`` of ``cfg.data.data`` (a data.yaml with mask folders, ADE20K, VOC) as a SegmentationDataset;
    the data's own unlabelled values (CamVid's 11, VOC's 255, ADE20K's 0) become ``ignore_index`` 255.

    Raises ConfigError for explicit data settings the segmentation loader does not apply (mixup, ...),
    before any file is read.
    """
    from rtdet.config import ConfigError
    from rtdet.data.segment import open_segmentation
    from rtdet.data.yolo import DataFormatError

    given = [k for k in UNSUPPORTED if cfg.explicit(k) and getattr(cfg.data, k)]
    if given:
        raise ConfigError(f"setting(s) {', '.join(given)} do not apply to segmentation (its augmentation: fliplr, "
                          f"scale, translate, degrees, shear, hsv_h/s/v)")
    if not cfg.data.data:
        raise DataFormatError("setting 'data': a segment run needs --data: a data.yaml with <split>_masks folders, "
                              "an ADE20K folder or a VOC tree with SegmentationClass/ (see rtdet.data.segment)")
    return open_segmentation(cfg.data.data, split)


def build_loader(dataset: Any, cfg: Any, train: bool, *, epochs: int = 0, seed: int = 0, sampler: Any = None) -> Any:
    """Batches of ``(images uint8 [B, 3, S, S], targets {"mask" int64 [S, S], ...})``
    (:func:`rtdet.data.segment_aug.build_segmentation_loader`)."""
    from rtdet.data.segment_aug import build_segmentation_loader

    return build_segmentation_loader(dataset, cfg.data, train, seed=seed, sampler=sampler)


# ---------------------------------------------------------------------------------------- frames
def _source(letterbox: tuple[float, float, float], orig_size: tuple[int, int], size: tuple[int, int],
            grid: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(columns [W], rows [H])``: where the centre of each original pixel lies on the prediction's
    grid, in grid indices: ``x_in = x * scale + pad_x`` in continuous input pixels (:mod:`rtdet.data.transforms`)
    over the input frame ``size`` (height, width), as ``grid_sample`` (align_corners=False, border padding)
    computes it on a ``grid`` (height, width; default ``size``) that spans the same frame: normalised to
    [-1, 1] over the input, back to grid indices, clipped to the grid."""
    s, px, py = (float(v) for v in letterbox)
    grid = size if grid is None else grid
    out = []
    for n, pad, side, cells in ((orig_size[1], px, size[1], grid[1]), (orig_size[0], py, size[0], grid[0])):
        norm = (((np.arange(n, dtype=np.float32) + np.float32(0.5)) * np.float32(s) + np.float32(pad))
                * np.float32(2.0 / side) - np.float32(1))
        out.append(np.clip(((norm + np.float32(1)) * np.float32(cells) - np.float32(1)) / np.float32(2), 0, cells - 1))
    return out[0], out[1]


CENTRE_TOLERANCE = 1e-4  # input pixels: a source this close to a pixel centre is that centre (float32 noise)


def _corners(coord: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear neighbours and weight along one axis: ``(lower index, upper index, upper weight)``.

    A coordinate within :data:`CENTRE_TOLERANCE` of a pixel centre is taken as that centre: float32
    arithmetic on normalised coordinates (grid_sample's own) leaves ~3e-5 px of noise at 480 px, so at
    scale 1 every exact centre would otherwise look like a mix of two pixels, and a weight that small
    changes a class only at a near-tie. There the upper index is the lower one (its weight is 0)."""
    near = np.rint(coord)
    coord = np.where(np.abs(coord - near) < CENTRE_TOLERANCE, near, coord)
    lo = np.floor(coord).astype(np.intp)
    w = (coord - lo).astype(np.float32)
    return lo, np.where(w > 0, np.minimum(lo + 1, side - 1), lo), w


def first_argmax(values: np.ndarray) -> np.ndarray:
    """The index of the first maximum over axis 0 of ``values`` float [K, ...] (argmax), uint8 [...] (int32
    above 256 classes).

    Hand-written because torch's ``max(0)`` (with indices) and NumPy's ``argmax(0)`` walk the K values of
    each pixel one pixel at a time (measured 18 ms for 12 x 360 x 480 on a loaded CPU); here every step
    is a whole-plane vectorised operation: the maximum plane, then from the last class to the first,
    ``index -= (index - k) * (plane k == maximum)`` (0.7 ms). Equal to ``argmax(0)`` (tested).
    """
    top = values.max(0)
    dtype = np.uint8 if len(values) <= 256 else np.int32
    index = np.full(top.shape, len(values) - 1, dtype)
    hit, step = np.empty(top.shape, bool), np.empty(top.shape, dtype)
    for k in range(len(values) - 2, -1, -1):
        np.equal(values[k], top, out=hit)
        np.subtract(index, k, out=step)  # > 0: index is still above k here
        np.multiply(step, hit, out=step)
        np.subtract(index, step, out=index)
    return index


def _gather(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``grid[rows][:, cols]`` for 1-D integer ``rows`` and ``cols``, as two ``take`` calls (~4x faster than
    ``grid[np.ix_(rows, cols)]`` for a 480 x 360 frame from a 120 x 90 grid)."""
    return grid.take(rows, 0).take(cols, 1)


def _disagreement(best: np.ndarray) -> np.ndarray:
    """uint8 [h, w] bit flags of a class map: 1 where a cell's class differs from its right neighbour's, 2 from
    the one below, 4 from the one diagonally below right (0 at the last row and column)."""
    code = np.zeros(best.shape, np.uint8)
    code[:, :-1] |= best[:, :-1] != best[:, 1:]
    code[:-1] |= (best[:-1] != best[1:]) << np.uint8(1)
    code[:-1, :-1] |= (best[:-1, :-1] != best[1:, 1:]) << np.uint8(2)
    return code


def _neighbours(right: np.ndarray, below: np.ndarray) -> np.ndarray:
    """uint8 [H, W] bit flags (as :func:`_disagreement`'s) of the neighbours that weigh in on each output
    pixel: ``right`` bool [W] (its upper column neighbour has weight), ``below`` bool [H] (its lower row does)."""
    dx, dy = right.astype(np.uint8), below.astype(np.uint8)
    flags = dx[None, :] | (dy[:, None] << np.uint8(1))
    flags |= (flags == 3).astype(np.uint8) << np.uint8(2)
    return flags


def to_original(pred: dict[str, Tensor], letterbox: tuple[float, float, float],
                orig_size: tuple[int, int]) -> Tensor:
    """One image's class map in original pixels.

    Args:
        pred: ``{"logits": float [K, h, w]}`` (resampled bilinearly, then arg-maxed) or ``{"labels": int
            [S, S]}`` (resampled by nearest neighbour) over the letterboxed input frame, on any device;
            ``"input_size"`` (height, width) is that frame's size when the grid is coarser (default: the
            grid's own size).
        letterbox: ``(scale, pad_x, pad_y)``: ``x_in = x_orig * scale + pad_x``.
        orig_size: ``(height, width)`` of the original image.

    Returns:
        int64 [H, W] class indices, on the CPU.

    The result is ``grid_sample`` (bilinear or nearest, border padding) then the first maximum over
    classes, computed without resampling all K maps: a bilinear value is a weighted mean of its four
    neighbours, so where the four (those of non-zero weight) share their arg-max, that class is also
    the arg-max of the mean; only the other pixels (along class boundaries) are interpolated, all K
    values each (about 15% of CamVid's pixels with stride-4 logits). Equal to resampling everything
    (tested): equal classes except at near-ties, where float rounding decides either way. Measured on 8
    CamVid val frames (480x360, stride-4 logits of 11 classes from a trained rtdet-seg-n, one thread, a
    loaded machine, best of 10 rounds): ``grid_sample`` and arg-max 26 ms per frame, this 2.1 ms (3.4 ms
    with ``np.ix_`` gathers and the four neighbours compared at full size, before :func:`_disagreement`).
    """
    if "labels" in pred:
        labels = pred["labels"].cpu().numpy()
        cols, rows = _source(letterbox, orig_size, pred.get("input_size", labels.shape[-2:]), labels.shape[-2:])
        # nearbyint: grid_sample's nearest rounding
        return torch.from_numpy(_gather(labels, np.rint(rows).astype(np.intp), np.rint(cols).astype(np.intp))
                                .astype(np.int64))
    values = np.ascontiguousarray(pred["logits"].detach().float().cpu().numpy())
    k, height, width = values.shape
    cols, rows = _source(letterbox, orig_size, pred.get("input_size", (height, width)), (height, width))
    x0, x1, wx = _corners(cols, width)
    y0, y1, wy = _corners(rows, height)
    top, left = y0.min(initial=0), x0.min(initial=0)  # the arg-max only where the image lies in the input
    best = first_argmax(values[:, top:y1.max(initial=0) + 1, left:x1.max(initial=0) + 1])
    out = _gather(best, y0 - top, x0 - left)
    differ = np.flatnonzero(_gather(_disagreement(best), y0 - top, x0 - left) & _neighbours(x1 > x0, y1 > y0))
    if len(differ):  # all K values of these pixels, as grid_sample weighs them
        r, c = np.divmod(differ, int(orig_size[1]))
        ax, ay = wx[c][:, None], wy[r][:, None]
        flat = values.reshape(k, -1).T.copy()  # [h * w, K]: a pixel's K values side by side, gathered as one row
        mixed = np.zeros((len(differ), k), np.float32)
        for rows_at, cols_at, weight in ((y0, x0, (1 - ax) * (1 - ay)), (y0, x1, ax * (1 - ay)),
                                         (y1, x0, (1 - ax) * ay), (y1, x1, ax * ay)):
            term = flat.take(rows_at[r] * width + cols_at[c], 0)
            term *= weight
            mixed += term
        out.reshape(-1)[differ] = first_argmax(np.ascontiguousarray(mixed.T))
    return torch.from_numpy(out.astype(np.int64))


def collect(pred: dict[str, Tensor], target: dict[str, Any]) -> tuple[dict, dict]:
    """``({"pairs" int64 [n, 2] (true, predicted class), "counts" int64 [n], "image_id"}, {"image_id", "file"})``:
    the labelled pixels of one image in original pixels, counted per (true, predicted) pair."""
    classes = to_original(pred, target["letterbox"], target["orig_size"])
    labels = torch.as_tensor(target["orig_mask"]).cpu().long()
    keep = labels != int(target["ignore_index"])
    t, p = labels[keep], classes[keep]
    side = int(max(t.max(), p.max())) + 1 if t.numel() else 1
    counts = torch.bincount(t * side + p, minlength=side * side)
    cells = counts.nonzero()[:, 0]
    pairs = torch.stack((cells // side, cells % side), 1)
    return ({"pairs": pairs, "counts": counts[cells], "image_id": target["image_id"]},
            {"image_id": target["image_id"], "file": target.get("file", "")})


# ---------------------------------------------------------------------------------------- metrics
def confusion(preds: list[dict], num_classes: int) -> np.ndarray:
    """int64 [K, K] (rows true class, columns predicted) summed over the records of :func:`collect`."""
    from rtdet.metrics.validate import MetricsInputError

    cm = np.zeros((num_classes, num_classes), np.int64)
    for rec in preds:
        pairs = rec["pairs"].numpy()
        if len(pairs) and pairs.max() >= num_classes:
            raise MetricsInputError(f"image {rec['image_id']}: class {int(pairs.max())} outside "
                                    f"0..{num_classes - 1}")
        np.add.at(cm, (pairs[:, 0], pairs[:, 1]), rec["counts"].numpy())
    return cm


def _result(preds: list[dict], names: list[str]) -> Any:
    from rtdet.metrics.segmentation import SegmentationResult

    return SegmentationResult.from_confusion(confusion(preds, len(names)), names)


def metric_fn(names: list[str], metric: str = ""):
    """``mIoU``, ``mAcc`` and ``aAcc`` (:mod:`rtdet.metrics.segmentation`) of gathered records (whatever
    ``metric`` names: one report)."""

    def scores(preds: list[dict], targets: list[dict]) -> dict[str, float]:
        res = _result(preds, names)
        return {"mIoU": res.miou, "mAcc": res.macc, "aAcc": res.aacc}

    return scores


def chance(dataset: Any) -> float:
    """mIoU of predicting the most frequent class everywhere: its pixel share over the classes present
    (every other class present scores IoU 0)."""
    px = dataset.report.pixels_per_class
    total = sum(px.values())
    present = sum(1 for v in px.values() if v > 0)
    return max(px.values()) / total / present if total else 0.0


def prepare_model(model: Any, dataset: Any, cfg: Any) -> list[str]:
    """Hand the model the training split's pixels per class (counted as the split was opened, so no
    mask is read again): rtdet-seg-n/-s weight their loss's classes by them (``seg.class_weight``),
    rtdet-m2f takes nothing (its loss weighs segments, not pixels). Returns the log line of the weights."""
    px = dataset.report.pixels_per_class
    counts = [px.get(c, 0) for c in range(len(dataset.names))]
    weight = model.use_class_counts(counts)
    if weight is None:
        return []
    names = [*dataset.names, *map(str, range(len(dataset.names), len(weight)))]
    listed = ", ".join(f"{names[c]} {w:.2f}" for c, w in enumerate(weight.tolist()))
    return [f"class weights of the loss, from {sum(counts)} training pixels: {listed}"]


def summary(result: RunResult) -> str:
    m = result.metrics
    return (f"mIoU {m.get('mIoU', float('nan')):.4f}  aAcc {m.get('aAcc', float('nan')):.4f}  "
            f"mAcc {m.get('mAcc', float('nan')):.4f}  weights {result.weights}  results in {result.out}")


# ---------------------------------------------------------------------------------------- report
@torch.no_grad()
def final_report(model: Any, loader: Any, names: list[str], out: Path, device: torch.device,
                 save_json: bool = False, predictions: tuple[list, list] | None = None,
                 metric: str = "") -> RunResult:
    """The per-class table, ``metrics.json``, ``iou_per_class.png``, ``confusion_matrix.png`` and
    ``val_predictions.png`` (a few validation images: the image, its ground truth and the prediction).

    ``save_json`` also writes ``predictions.json``: per image its file, labelled pixels, pixel accuracy
    and the IoU of each class present in its ground truth or prediction.
    """
    from rtdet.engine.evaluate import predict_all
    from rtdet.metrics.segmentation_plots import save_segmentation_plots

    model = model.to(device).eval()
    if predictions is None:
        preds, targets, _ = predict_all(model, loader, device, collect)
    else:
        preds, targets = predictions
    res = _result(preds, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(res.as_dict(), indent=2))
    files = [*save_segmentation_plots(res, out), out / "metrics.json", _draw_examples(model, loader, names, out,
                                                                                      device)]
    if save_json:
        recs = [per_image(p, t, names) for p, t in zip(preds, targets)]
        (out / "predictions.json").write_text(json.dumps(recs))
        files.append(out / "predictions.json")
    print(res.text())
    metrics = {"mIoU": res.miou, "mAcc": res.macc, "aAcc": res.aacc,
               **{f"IoU/{n}": float(v) for n, v in zip(names, res.iou)}}
    return RunResult(out, metrics, None, files, task="segment")


def per_image(pred: dict, target: dict, names: list[str]) -> dict[str, Any]:
    """One ``predictions.json`` entry of ``val --save-json``: ``{"image", "pixels", "aAcc", "iou": {name: IoU}}``."""
    res = _result([pred], names)
    return {"image": target["file"], "pixels": res.pixels, "aAcc": None if not np.isfinite(res.aacc) else res.aacc,
            "iou": {n: round(float(v), 6) for n, v in zip(names, res.iou) if np.isfinite(v)}}


def _draw_examples(model: Any, loader: Any, names: list[str], out: Path, device: torch.device) -> Path:
    """``val_predictions.png``: :data:`REPORT_IMAGES` validation images, evenly spaced, through ``model``."""
    from rtdet.config import SegmentConfig
    from rtdet.data.overlay import comparison_grid

    pipe = loader.dataset  # the SegmentationPipeline (letterboxed evaluation samples)
    ids = np.unique(np.linspace(0, len(pipe) - 1, min(REPORT_IMAGES, len(pipe))).round().astype(int))
    rows = []
    for i in ids.tolist():
        image, target = pipe[i]
        pred = model(image[None].to(device).float() / 255)[0]
        j = target["image_id"]
        rows.append((pipe.dataset.load_image(j), target["orig_mask"].numpy(),
                     to_original(pred, target["letterbox"], target["orig_size"]).numpy()))
    return comparison_grid(rows, names, out / "val_predictions.png", SegmentConfig.overlay_alpha)


# ---------------------------------------------------------------------------------------- deployment
def settings(cfg: Any, scoring: bool = False) -> dict[str, Any]:
    """``{"overlay_alpha": segment.overlay_alpha}``: the drawing of delivered results."""
    return {"overlay_alpha": cfg.segment.overlay_alpha}


def preprocess(image: np.ndarray, imgsz: int) -> tuple[Tensor, tuple[tuple[float, float, float], int]]:
    """uint8 HxWx3 RGB -> (float32 [1, 3, imgsz, imgsz] in [0, 1], (letterbox, imgsz)): detection's letterbox
    (:func:`rtdet.deploy.images.to_input`), the evaluation transform of :mod:`rtdet.data.segment_aug`."""
    return preprocessor(imgsz)(image)


def preprocessor(imgsz: int) -> Any:
    """:func:`preprocess` for a stream of frames, its buffers reused
    (:func:`rtdet.deploy.images.letterbox_preprocessor`)."""
    from rtdet.deploy.images import letterbox_preprocessor

    return letterbox_preprocessor(imgsz)


def predictions(outputs: tuple[Tensor, ...], input_size: tuple[int, int], settings: dict[str, Any]) -> list[dict]:
    """Export output ``(logits [B, K, h, w],)`` -> B dicts ``{"logits": [K, h, w], "input_size": input_size}`` (the
    models' eval-mode output); from an ``--argmax`` export ``(labels int [B, S, S],)`` -> B dicts ``{"labels": [S, S],
    "input_size": input_size}``."""
    out = outputs[0]
    key = "labels" if out.ndim == 3 else "logits"
    return [{key: x, "input_size": tuple(input_size)} for x in out]


def mask_dtype(num_classes: int) -> torch.dtype:
    """uint8 for up to 256 classes (an 8-bit PNG), else int32 (written as a 16-bit PNG)."""
    return torch.uint8 if num_classes <= 256 else torch.int32


def decode(outputs: tuple[Tensor, ...], geometry: tuple[tuple[float, float, float], int],
           shape: tuple[int, ...], names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """One image's result: ``mask`` [H, W] class indices in original pixels (uint8, int32 above 256 classes),
    ``pixels`` int64 [K] pixels per class, ``names`` (the K class names) and ``alpha`` (the overlay opacity)."""
    from rtdet.config import SegmentConfig

    lb, size = geometry
    mask = to_original(predictions(outputs, (size, size), settings)[0], lb, shape[:2])
    return {"mask": mask.to(mask_dtype(len(names))), "pixels": torch.bincount(mask.ravel(), minlength=len(names)),
            "names": list(names), "alpha": float(settings.get("overlay_alpha", SegmentConfig.overlay_alpha))}


def annotate(image: np.ndarray, result: dict[str, Any]) -> np.ndarray:
    """A copy of ``image`` (uint8 HxWx3 RGB) with each class's colour laid over its pixels at ``result["alpha"]``
    and a legend of the classes present (:mod:`rtdet.data.overlay`)."""
    from rtdet.data.overlay import draw_legend, overlay

    k = len(result["names"])
    return draw_legend(overlay(image, result["mask"].numpy(), k, result["alpha"]), result["pixels"].numpy(),
                       result["names"])


def mask_file(image_name: str, frame: int | None = None) -> str:
    """Where ``predict`` writes an image's class-index PNG, relative to its output folder:
    ``masks/<stem>.png`` (``masks/<stem>_<frame>.png`` for a video frame)."""
    stem = Path(image_name).stem
    return f"masks/{stem}.png" if frame is None else f"masks/{stem}_{frame:06d}.png"


def mask_png(result: dict[str, Any]) -> bytes:
    """The result's class-index mask as a grey PNG file's bytes: the class of every original pixel, 8-bit
    (16-bit above 256 classes)."""
    import cv2

    mask = result["mask"].numpy()
    ok, data = cv2.imencode(".png", mask if mask.dtype == np.uint8 else mask.astype(np.uint16))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {mask.shape[1]}x{mask.shape[0]} mask as PNG")
    return data.tobytes()


def save(result: dict[str, Any], out_dir: Path, image_name: str, frame: int | None = None) -> list[Path]:
    """Write the class-index mask PNG (:func:`mask_png`) to :func:`mask_file`; returns its path."""
    path = Path(out_dir) / mask_file(image_name, frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mask_png(result))
    return [path]


def records(result: dict[str, Any], image_name: str, frame: int | None = None) -> list[dict[str, Any]]:
    """One ``predictions.json`` entry: ``{"image", "mask": the PNG's path relative to the output folder,
    "pixels": {class name: pixels} of the classes present}`` (+ ``"frame"``)."""
    counts = result["pixels"].tolist()
    rec: dict[str, Any] = {"image": image_name, "mask": mask_file(image_name, frame),
                           "pixels": {n: c for n, c in zip(result["names"], counts) if c}}
    if frame is not None:
        rec["frame"] = frame
    return [rec]



def response(result: dict[str, Any]) -> dict[str, Any]:
    """The HTTP API's answer for one image (``rtdet serve``): ``{"mask": {"png": base64 of :func:`mask_png`,
    "width", "height"}, "classes": the K class names (a mask value is an index into them), "pixels": {class
    name: pixels} of the classes present}``, as ``predict`` writes the mask file and its record."""
    import base64

    h, w = result["mask"].shape
    counts = result["pixels"].tolist()
    return {"mask": {"png": base64.b64encode(mask_png(result)).decode("ascii"), "width": int(w), "height": int(h)},
            "classes": list(result["names"]), "pixels": {n: c for n, c in zip(result["names"], counts) if c}}

TASK = Task(name="segment", metric="mIoU", open_split=open_split, build_loader=build_loader, collect=collect,
            metric_fn=metric_fn, final_report=final_report, summary=summary, preprocess=preprocess,
            preprocessor=preprocessor, predictions=predictions, decode=decode, response=response,
            annotate=annotate, records=records, settings=settings, chance=chance, save=save,
            prepare_model=prepare_model)
