"""Random and hand-made detection cases shared by the metrics tests (no tests here)."""

from __future__ import annotations

import numpy as np
import torch


def box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [float(x1), float(y1), float(x2), float(y2)]


def random_voc(seed: int, k: int = 4) -> tuple[list[dict], list[dict]]:
    """Random images: boxes near ground truth or anywhere, wrong classes, difficult flags, tied scores."""
    r = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(int(r.integers(1, 12))):
        n = int(r.integers(0, 8))
        xy = r.uniform(0, 200, (n, 2))
        wh = r.uniform(2, 80, (n, 2))
        gb = np.concatenate([xy, xy + wh], 1)
        gl = r.integers(0, k, n)
        targets.append({"boxes": torch.tensor(gb).reshape(-1, 4), "labels": torch.tensor(gl),
                        "difficult": torch.tensor(r.random(n) < 0.15)})
        m = int(r.integers(0, 15))
        src = r.integers(0, max(n, 1), m)
        near = (r.random(m) < 0.7) & (n > 0)
        jitter = r.normal(0, 4, (m, 4))
        rand_xy = r.uniform(0, 200, (m, 2))
        rand = np.concatenate([rand_xy, rand_xy + r.uniform(2, 80, (m, 2))], 1)
        pb = np.where(near[:, None], (gb[src] if n else rand) + jitter, rand)
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
        pl = np.where(near & (r.random(m) < 0.85), gl[src] if n else 0, r.integers(0, k, m))
        scores = np.round(r.random(m), 2)  # ties
        preds.append({"boxes": torch.tensor(pb).reshape(-1, 4), "scores": torch.tensor(scores),
                      "labels": torch.tensor(pl, dtype=torch.int64)})
    return preds, targets


def pycocotools_stats(gt_path, dets_path):
    """The 12 numbers pycocotools prints for a GT json and a results json (paths): the reference."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        e = COCOeval(gt, gt.loadRes(str(dets_path)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats
