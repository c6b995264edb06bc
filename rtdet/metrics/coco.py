"""The official COCO box metrics: the 12 numbers pycocotools prints, and AP per class.

Matching and accumulation are delegated to faster-coco-eval (Apache-2.0), a C++
port of pycocotools' ``evaluateImg``/``accumulate``; rtdet checks the input first
(:mod:`rtdet.metrics.validate`) and builds the two ``COCO`` objects itself, so
nothing the caller passed in is modified. Semantics are pycocotools' exactly:
crowd regions (a detection covering a crowd box is ignored, IoU = intersection
over the detection's area), area ranges small < 32² <= medium < 96² <= large on the
GT's ``area`` field, maxDets 1/10/100, 101-point interpolated precision, per
category averaging that skips categories without ground truth, and -1 where a
number is undefined. ``tests/metrics/test_coco.py`` proves equality with
pycocotools to 1e-9 on the COCO API's reference case and on random cases.

One deliberate difference: annotation ids are renumbered ``1..N``. pycocotools
treats a GT id of 0 as "unmatched" and aliases duplicate ids; with unique
positive ids (every real COCO file) the numbers are identical.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rtdet.metrics.match import as_array
from rtdet.metrics.validate import MetricsInputError, check_detections, check_ground_truth

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_DESCRIPTIONS = (
    ("Average Precision", "0.50:0.95", "all", 100),
    ("Average Precision", "0.50", "all", 100),
    ("Average Precision", "0.75", "all", 100),
    ("Average Precision", "0.50:0.95", "small", 100),
    ("Average Precision", "0.50:0.95", "medium", 100),
    ("Average Precision", "0.50:0.95", "large", 100),
    ("Average Recall", "0.50:0.95", "all", 1),
    ("Average Recall", "0.50:0.95", "all", 10),
    ("Average Recall", "0.50:0.95", "all", 100),
    ("Average Recall", "0.50:0.95", "small", 100),
    ("Average Recall", "0.50:0.95", "medium", 100),
    ("Average Recall", "0.50:0.95", "large", 100),
)

__all__ = ["COCO_KEYS", "ClassAP", "CocoResult", "MetricsInputError", "coco_to_rtdet", "evaluate", "evaluate_predictions",
           "format_per_class", "format_table"]


@dataclass
class ClassAP:
    """AP of one category; -1 where undefined (no ground truth of that size)."""

    category_id: int | str  # as the ground truth has it
    name: str
    num_gt: int  # non-crowd ground-truth boxes
    num_det: int
    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float


@dataclass
class CocoResult:
    """The 12 COCO numbers (``result["AP"]`` or ``result.stats``) and the per-class table.

    ``precision`` is pycocotools' ``eval["precision"]``: float64 [T=10 IoUs, R=101
    recall points, K categories, A=4 area ranges, M=3 maxDets], -1 where undefined.
    """

    stats: dict[str, float]
    per_class: list[ClassAP] = field(default_factory=list)
    precision: np.ndarray | None = None

    def __getitem__(self, key: str) -> float:
        return self.stats[key]

    def as_dict(self) -> dict[str, float]:
        """The 12 numbers as a plain dict (what ``--json`` writes)."""
        return dict(self.stats)


def _mean_defined(x: np.ndarray) -> float:
    """pycocotools' summary rule: mean of the entries > -1, or -1 when there are none."""
    x = x[x > -1]
    return float(np.mean(x)) if x.size else -1.0


def _per_class(precision: np.ndarray, gt: dict, dets: list[dict]) -> list[ClassAP]:
    """Per-category AP from ``precision`` [T, R, K, A, M] (K in sorted category-id order)."""
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    n_gt = dict.fromkeys(ids, 0)
    for a in gt["annotations"]:
        n_gt[a["category_id"]] += not a["iscrowd"]
    n_det = Counter(d["category_id"] for d in dets)
    rows = []
    for k, c in enumerate(cats):
        p = precision[:, :, k, :, -1]  # [T, R, A] at maxDets=100
        rows.append(ClassAP(
            category_id=c.get("source_id", c["id"]), name=c["name"], num_gt=n_gt[c["id"]], num_det=int(n_det.get(c["id"], 0)),
            AP=_mean_defined(p[:, :, 0]), AP50=_mean_defined(p[0, :, 0]), AP75=_mean_defined(p[5, :, 0]),
            APs=_mean_defined(p[:, :, 1]), APm=_mean_defined(p[:, :, 2]), APl=_mean_defined(p[:, :, 3]),
        ))
    return rows


def _trimmed_evaluator():
    """faster-coco-eval's ``COCOeval_faster`` with its Python bookkeeping trimmed.

    The stock ``evaluate()`` builds a dict and a list over every (image,
    category) pair, 400k on COCO, before handing the few pairs that have both
    boxes and detections to C++; that bookkeeping took ~1 s of its ~4 s. This
    subclass computes the same IoU matrices with the library's own
    ``computeIoU`` and makes the same C++ call, filling the pair grid directly.
    If the private C++ entry point ever disappears it falls back to the stock method.
    """
    import faster_coco_eval.faster_eval_api_cpp as _C
    from faster_coco_eval import COCOeval_faster

    class TrimmedCOCOeval(COCOeval_faster):
        def evaluate(self) -> None:
            if not hasattr(_C, "COCOevalEvaluateAccumulate") or self.separate_eval or not self.params.useCats:
                return super().evaluate()
            p = self.params
            p.imgIds, p.catIds, p.maxDets = list(np.unique(p.imgIds)), list(np.unique(p.catIds)), sorted(p.maxDets)
            self._prepare()
            img_index = {int(i): n for n, i in enumerate(p.imgIds)}
            cat_index = {int(c): n for n, c in enumerate(p.catIds)}
            none: list = []  # shared, read-only: "no IoU matrix for this pair"
            ious = [[none] * len(p.catIds) for _ in p.imgIds]
            pairs = getattr(self, "_nonempty_iou_pairs", None)  # pairs with boxes and detections
            for img, cat in itertools.product(p.imgIds, p.catIds) if pairs is None else pairs:
                ious[img_index[img]][cat_index[cat]] = self.computeIoU(img, cat)
            self._paramsEval = copy.deepcopy(p)
            self.eval = _C.COCOevalEvaluateAccumulate(
                self._paramsEval, ious, self.gt_dataset, self.dt_dataset, p.imgIds, p.catIds, True
            )

    return TrimmedCOCOeval


def _run_cocoeval(gt: dict, dets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """``(stats[12], precision[T,R,K,A,M])`` from faster-coco-eval on checked inputs."""
    from faster_coco_eval import COCO

    quiet = lambda *args, **kwargs: None  # noqa: E731  (both libraries print progress)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt, print_function=quiet)
        coco_dt = COCO(print_function=quiet)
        # what COCO.loadRes builds, without the polygon it adds for segm evaluation
        coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": dets}
        coco_dt.createIndex()
        ev = _trimmed_evaluator()(coco_gt, coco_dt, "bbox", print_function=quiet)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64), np.asarray(ev.eval["precision"])


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector, restoring its previous state.

    A COCO-sized evaluation allocates ~1M small dicts and lists, none of them
    cyclic garbage; with the collector on, its repeated full scans of them made
    the evaluation about 1.5x slower. Reference counting still frees memory.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def evaluate(gt: Any, detections: Any, per_class: bool = True) -> CocoResult:
    """The official COCO box metrics.

    Args:
        gt: COCO instances ground truth: a json path or a dict with ``images``,
            ``annotations`` (``bbox`` = [x, y, w, h] in pixels) and ``categories``.
        detections: COCO results: a json path or a list of ``{image_id,
            category_id, bbox: [x, y, w, h], score}``.
        per_class: also fill ``per_class``.

    Returns:
        :class:`CocoResult` with the 12 numbers keyed :data:`COCO_KEYS`.

    Raises:
        MetricsInputError: malformed input, naming the offending entry.
    """
    with _gc_paused():
        gt = check_ground_truth(gt)
        dets = check_detections(detections, gt)
        stats, precision = _run_cocoeval(gt, dets)
        rows = _per_class(precision, gt, dets) if per_class else []
    return CocoResult(dict(zip(COCO_KEYS, stats.tolist())), rows, precision)




def _check_image(i: int, gb: np.ndarray, glab: np.ndarray, pb: np.ndarray, scores: np.ndarray,
                 labels: np.ndarray, k: int) -> None:
    """Name image ``i`` and the problem when its targets or predictions are unusable."""
    problems = [
        (len(glab) != len(gb), f"targets: {len(gb)} boxes but {len(glab)} labels"),
        (not (len(pb) == len(scores) == len(labels)),
         f"predictions: {len(pb)} boxes, {len(scores)} scores, {len(labels)} labels"),
        (((glab < 0) | (glab >= k)).any(), f"targets: label outside 0..{k - 1}: {glab.tolist()}"),
        (((labels < 0) | (labels >= k)).any(), f"predictions: label outside 0..{k - 1}"),
        (not np.isfinite(gb).all(), "targets: non-finite box"),
        (not (np.isfinite(pb).all() and np.isfinite(scores).all()), "predictions: non-finite box or score"),
        (bool((gb[:, 2:] < gb[:, :2]).any()), "targets: box with x2 < x1 or y2 < y1"),
        (bool((pb[:, 2:] < pb[:, :2]).any()), "predictions: box with x2 < x1 or y2 < y1"),
    ]
    for bad, what in problems:
        if bad:
            raise MetricsInputError(f"image {i}: {what}")


def predictions_to_coco(
    preds: Sequence[dict], targets: Sequence[dict], names: Sequence[str], frame: str = "original"
) -> tuple[dict, list[dict]]:
    """rtdet predictions and targets as a COCO GT dict and a COCO results list.

    Args:
        preds: per image ``{"boxes": [K, 4] xyxy, "scores": [K], "labels": [K] int}``
            (tensors or arrays).
        targets: per image, as in the data contract: ``boxes`` [N, 4] xyxy, ``labels`` [N],
            ``image_id``, optional ``iscrowd`` / ``difficult`` [N] bool, ``orig_size`` (h, w),
            ``letterbox`` (scale, pad_x, pad_y).
        names: class names; label ``i`` becomes COCO category id ``i + 1``.
        frame: ``"original"`` when boxes (GT and predictions) are already in
            original-image pixels; ``"input"`` when both are in the letterboxed
            frame and must be mapped back with ``target["letterbox"]`` first
            (areas, hence APs/APm/APl, are measured in original pixels).

    ``difficult`` boxes are passed as crowd regions, COCO's only notion of "ignore".
    """
    if frame not in ("original", "input"):
        raise ValueError(f"frame must be 'original' or 'input', got {frame!r}")
    if len(preds) != len(targets):
        raise MetricsInputError(f"{len(preds)} predictions for {len(targets)} targets: one per image expected")
    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        image_id = int(t.get("image_id", i))
        h, w = (int(v) for v in t.get("orig_size", (0, 0)))
        images.append({"id": image_id, "height": h, "width": w})
        gb, pb = as_array(t["boxes"], np.float64, (4,)), as_array(p["boxes"], np.float64, (4,))
        if frame == "input":
            from rtdet.boxes import unletterbox  # imports torch: only for boxes a model produced

            lb = t.get("letterbox", (1.0, 0.0, 0.0))
            gb, pb = unletterbox(gb, lb), unletterbox(pb, lb)
        glab = as_array(t["labels"], np.int64)
        scores, labels = as_array(p["scores"], np.float64), as_array(p["labels"], np.int64)
        _check_image(i, gb, glab, pb, scores, labels, len(names))
        ignore = np.zeros(len(gb), bool)
        for key in ("iscrowd", "difficult"):
            if key in t:
                ignore |= as_array(t[key], bool)
        for b, c, crowd in zip(gb.tolist(), glab.tolist(), ignore.tolist()):
            wh = [b[2] - b[0], b[3] - b[1]]
            anns.append({"image_id": image_id, "category_id": c + 1, "bbox": [b[0], b[1], *wh],
                         "area": wh[0] * wh[1], "iscrowd": int(crowd)})
        for b, s, c in zip(pb.tolist(), scores.tolist(), labels.tolist()):
            dets.append({"image_id": image_id, "category_id": c + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    cats = [{"id": k + 1, "name": str(n)} for k, n in enumerate(names)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def coco_to_rtdet(gt: Any, detections: Any) -> tuple[list[dict], list[dict], list[str]]:
    """A COCO GT (path / dict) and results (path / list) as rtdet ``(preds, targets, names)``.

    The inverse of :func:`predictions_to_coco`: per GT image (sorted by id), xyxy
    float64 arrays; category ids in sorted order become labels 0..K-1; crowd
    boxes keep ``iscrowd``. For the practical metrics (:mod:`rtdet.metrics.prf`).
    """
    gt = check_ground_truth(gt)
    dets = check_detections(detections, gt)
    label = {c: k for k, c in enumerate(sorted(c["id"] for c in gt["categories"]))}
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    image_ids = sorted(im["id"] for im in gt["images"])
    gts: dict[int, list[dict]] = {i: [] for i in image_ids}
    found: dict[int, list[dict]] = {i: [] for i in image_ids}
    for a in gt["annotations"]:
        gts[a["image_id"]].append(a)
    for d in dets:
        found[d["image_id"]].append(d)

    def xyxy(rows: list[dict]) -> np.ndarray:
        b = np.array([r["bbox"] for r in rows], np.float64).reshape(-1, 4)
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)

    targets = [{"boxes": xyxy(gts[i]), "labels": np.array([label[a["category_id"]] for a in gts[i]], np.int64),
                "iscrowd": np.array([bool(a["iscrowd"]) for a in gts[i]], bool), "image_id": i} for i in image_ids]
    preds = [{"boxes": xyxy(found[i]), "scores": np.array([d["score"] for d in found[i]], np.float64),
              "labels": np.array([label[d["category_id"]] for d in found[i]], np.int64)} for i in image_ids]
    return preds, targets, names


def evaluate_predictions(
    preds: Sequence[dict], targets: Sequence[dict], names: Sequence[str], frame: str = "original"
) -> CocoResult:
    """Official COCO numbers for rtdet predictions and targets (see :func:`predictions_to_coco`).

    Used by ``rtdet val`` and the trainer, so the number printed after training
    is the one pycocotools would print.
    """
    gt, dets = predictions_to_coco(preds, targets, names, frame)
    return evaluate(gt, dets)


def format_table(result: CocoResult | dict[str, float]) -> str:
    """The 12 numbers in pycocotools' layout, one per line, with their keys."""
    stats = result.stats if isinstance(result, CocoResult) else result
    lines = []
    for key, (title, iou, area, max_dets) in zip(COCO_KEYS, _DESCRIPTIONS):
        kind = "(AP)" if title.endswith("Precision") else "(AR)"
        lines.append(
            f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = "
            f"{stats[key]:0.3f}   {key}"
        )
    return "\n".join(lines)


def format_per_class(result: CocoResult) -> str:
    """A table of AP per category (``-`` where undefined)."""
    cols = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    width = max([len("class"), *(len(r.name) for r in result.per_class)])
    head = f"{'class':<{width}} {'gt':>7} {'dets':>8} " + " ".join(f"{c:>6}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in result.per_class:
        vals = " ".join(f"{getattr(r, c):6.3f}" if getattr(r, c) > -1 else f"{'-':>6}" for c in cols)
        lines.append(f"{r.name:<{width}} {r.num_gt:>7d} {r.num_det:>8d} {vals}")
    return "\n".join(lines)
