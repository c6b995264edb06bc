"""Speed of rtdet's COCO evaluation next to pycocotools and faster-coco-eval.

    PYTHONPATH=$PWD python benchmarks/metrics.py            # COCO-sized: 5,000 images, ~36k GT, ~100k dets
    PYTHONPATH=$PWD python benchmarks/metrics.py --quick    # 500 images, seconds

A seeded synthetic case shaped like COCO val2017 (80 categories with a long-tail
frequency, object sizes from 4 to 400 px, 1% crowd boxes, detections that are
jittered copies of ground truth or random boxes) is scored by the three
evaluators in the same process. Each tool gets a fresh deep copy of the inputs
(both libraries write into them) made outside the timer, and the timer covers
everything from the in-memory GT dict and results list to the 12 numbers.
The 12 numbers must agree to 1e-9, so speed is never bought with accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time

import numpy as np


def synthetic_coco(n_images: int = 5000, n_cats: int = 80, gt_per_image: float = 7.2,
                   det_per_image: float = 20.0, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO GT dict and a results list; deterministic for a given ``seed``."""
    r = np.random.default_rng(seed)
    n_gt = r.poisson(gt_per_image, n_images)
    gimg = np.repeat(np.arange(1, n_images + 1), n_gt)
    g = len(gimg)
    gcat = r.zipf(1.3, g) % n_cats + 1  # long tail: a few frequent classes, like COCO's person
    size = np.exp(r.uniform(np.log(4), np.log(400), g))
    w, h = size * r.uniform(0.5, 1.5, g), size * r.uniform(0.5, 1.5, g)
    x, y = r.uniform(0, 640 - np.minimum(w, 600), g), r.uniform(0, 480 - np.minimum(h, 450), g)
    crowd = r.random(g) < 0.01
    anns = [{"id": i + 1, "image_id": int(gimg[i]), "category_id": int(gcat[i]),
             "bbox": [float(x[i]), float(y[i]), float(w[i]), float(h[i])], "area": float(w[i] * h[i]),
             "iscrowd": int(crowd[i])} for i in range(g)]

    n_det = r.poisson(det_per_image, n_images)
    dimg = np.repeat(np.arange(1, n_images + 1), n_det)
    d = len(dimg)
    first = np.concatenate([[0], np.cumsum(n_gt)])[dimg - 1]
    count = n_gt[dimg - 1]
    pick = np.minimum(first + (r.random(d) * np.maximum(count, 1)).astype(int), g - 1)
    near = (count > 0) & (r.random(d) < 0.7)  # 70% near a GT box of the same image
    rand_size = np.exp(r.uniform(np.log(4), np.log(400), (2, d)))
    bw = np.where(near, w[pick] * np.exp(r.normal(0, 0.15, d)), rand_size[0])
    bh = np.where(near, h[pick] * np.exp(r.normal(0, 0.15, d)), rand_size[1])
    bx = np.where(near, x[pick] + r.normal(0, 0.1, d) * w[pick], r.uniform(0, 600, d))
    by = np.where(near, y[pick] + r.normal(0, 0.1, d) * h[pick], r.uniform(0, 450, d))
    dcat = np.where(near & (r.random(d) < 0.9), gcat[pick], r.integers(1, n_cats + 1, d))
    score = np.where(near, r.beta(4, 2, d), r.beta(1.5, 4, d)).round(4)  # rounded: ties, as in real output
    dets = [{"image_id": int(dimg[i]), "category_id": int(dcat[i]),
             "bbox": [float(bx[i]), float(by[i]), float(bw[i]), float(bh[i])], "score": float(score[i])}
            for i in range(d)]
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i + 1:012d}.jpg"} for i in range(n_images)]
    cats = [{"id": c + 1, "name": f"class{c}"} for c in range(n_cats)]
    return {"images": images, "categories": cats, "annotations": anns}, dets


def run_rtdet(gt: dict, dets: list[dict]) -> np.ndarray:
    from rtdet.metrics.coco import COCO_KEYS, evaluate

    result = evaluate(gt, dets)
    return np.array([result[k] for k in COCO_KEYS])


def run_pycocotools(gt: dict, dets: list[dict]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def run_faster_coco_eval(gt: dict, dets: list[dict]) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *a, **k: None  # noqa: E731
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt, print_function=quiet)
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox", print_function=quiet)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12])


def time_tool(fn, gt: dict, dets: list[dict], repeats: int) -> tuple[float, np.ndarray]:
    """Best wall time of ``repeats`` runs (the machine is shared) and the 12 numbers."""
    best, stats = float("inf"), None
    for _ in range(repeats):
        g, d = copy.deepcopy(gt), copy.deepcopy(dets)
        t = time.perf_counter()
        stats = fn(g, d)
        best = min(best, time.perf_counter() - t)
    return best, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 images instead of 5,000")
    ap.add_argument("--repeats", type=int, default=3, help="runs of rtdet and faster-coco-eval (best is kept)")
    ap.add_argument("--no-pycocotools", action="store_true", help="skip pycocotools (~45 s on the full case)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    gt, dets = synthetic_coco(n_images=500 if args.quick else 5000, seed=args.seed)
    print(f"case: {len(gt['images'])} images, {len(gt['categories'])} categories, "
          f"{len(gt['annotations'])} GT boxes, {len(dets)} detections (seed {args.seed})")
    tools = [("rtdet", run_rtdet), ("faster-coco-eval", run_faster_coco_eval)]
    if not args.no_pycocotools:
        tools.append(("pycocotools", run_pycocotools))
    small_gt, small_dets = synthetic_coco(n_images=5, seed=1)
    for _, fn in tools:  # warm up: imports (torch for rtdet) stay out of the timings
        fn(copy.deepcopy(small_gt), copy.deepcopy(small_dets))
    times, stats = {}, {}
    for round_ in range(args.repeats):  # interleaved, so load changes hit every tool alike
        for name, fn in tools:
            if name == "pycocotools" and round_ > 0:
                continue
            t, s = time_tool(fn, gt, dets, 1)
            times[name] = min(times.get(name, float("inf")), t)
            stats[name] = s
    ref = times["faster-coco-eval"]
    print(f"\n{'tool':<18} {'seconds':>8} {'x faster-coco-eval':>19} {'x rtdet':>8} {'max |diff| vs rtdet':>20}")
    for name, _ in tools:
        diff = np.abs(stats[name] - stats["rtdet"]).max()
        print(f"{name:<18} {times[name]:8.2f} {times[name] / ref:19.2f} {times[name] / times['rtdet']:8.2f} "
              f"{diff:20.1e}")
    print("\nAP = %.4f  AP50 = %.4f  AR100 = %.4f" % (stats["rtdet"][0], stats["rtdet"][1], stats["rtdet"][8]))
    agree = all(np.abs(stats[n] - stats["rtdet"]).max() <= 1e-9 for n, _ in tools)
    print("all 12 numbers agree to 1e-9" if agree else "MISMATCH between tools")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
