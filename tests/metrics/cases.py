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


def read_voc_xml(path) -> list[dict]:
    """A VOC annotation file as the devkit reads it: ``{"name", "difficult", "bbox"}`` with the XML's own
    1-based inclusive pixel numbers (no conversion: the reference works in the devkit's coordinates)."""
    import xml.etree.ElementTree as ET

    objects = []
    for obj in ET.parse(path).findall("object"):
        bb = obj.find("bndbox")
        objects.append({"name": obj.find("name").text.strip(),
                        "difficult": int(obj.findtext("difficult", "0")) == 1,
                        "bbox": [float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]})
    return objects


def devkit_voc_eval(dets: list[tuple[str, float, list[float]]], annotations: dict[str, list[dict]], classname: str,
                    use_07: bool, ovthresh: float = 0.5) -> float:
    """The PASCAL devkit's ``voc_eval`` (its Python port) for one class, written plainly: detections
    ``(image, score, [xmin, ymin, xmax, ymax])`` in the devkit's 1-based inclusive pixels, sorted by score
    over the whole set, each matched to the ground-truth box it overlaps most (areas with the devkit's
    ``+ 1``); a difficult best match is skipped, a second hit on a box is a false positive. NaN when the
    class has no (non-difficult) ground truth."""
    recs, npos = {}, 0
    for image, objects in annotations.items():
        mine = [o for o in objects if o["name"] == classname]
        difficult = np.array([o["difficult"] for o in mine], bool)
        recs[image] = {"bbox": np.array([o["bbox"] for o in mine], float).reshape(-1, 4), "difficult": difficult,
                       "det": [False] * len(mine)}
        npos += int((~difficult).sum())
    scores = np.array([s for _, s, _ in dets], float)
    order = np.argsort(-scores, kind="stable")
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for d, k in enumerate(order):
        image, _, bb = dets[k]
        r, ovmax, jmax = recs[image], -np.inf, -1
        gt = r["bbox"]
        if gt.size:
            iw = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax, jmax = overlaps.max(), int(overlaps.argmax())
        if ovmax > ovthresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d], r["det"][jmax] = 1.0, True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    if npos == 0:
        return float("nan")
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def detections_near(targets: list[dict], k: int, seed: int = 0) -> list[dict]:
    """Plausible detections for real ground truth (rtdet frames): jittered hits, duplicates, wrong classes,
    random boxes and exact hits on the difficult boxes, with scores rounded to 0.01 (ties)."""
    r = np.random.default_rng(seed)
    preds = []
    for t in targets:
        gb, gl = np.asarray(t["boxes"], float).reshape(-1, 4), np.asarray(t["labels"], int)
        boxes, labels = [gb + r.normal(0, 6, gb.shape)], [gl]
        dup = r.random(len(gb)) < 0.3
        boxes.append(gb[dup] + r.normal(0, 2, (int(dup.sum()), 4)))
        labels.append(gl[dup])
        wrong = r.random(len(gb)) < 0.2
        boxes.append(gb[wrong])
        labels.append(r.integers(0, k, int(wrong.sum())))
        xy = r.uniform(0, 300, (3, 2))
        boxes.append(np.concatenate([xy, xy + r.uniform(10, 150, (3, 2))], 1))
        labels.append(r.integers(0, k, 3))
        b = np.concatenate(boxes)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        lab = np.concatenate(labels)
        preds.append({"boxes": torch.tensor(b), "scores": torch.tensor(np.round(r.random(len(b)), 2)),
                      "labels": torch.tensor(lab, dtype=torch.int64)})
    return preds
