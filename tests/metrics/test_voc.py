"""VOC AP: hand-computed cases and a straightforward devkit-style reference on random cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtdet.metrics.voc import evaluate_voc, voc_ap
from tests.metrics.cases import box, random_voc


def reference_voc(preds, targets, k, use_07, offset=0.0, thresh=0.5):
    """The PASCAL devkit's voc_eval, written plainly: global score order, one loop per detection."""
    aps = []
    for c in range(k):
        gts = {}
        npos = 0
        for i, t in enumerate(targets):
            sel = [j for j, lab in enumerate(t["labels"].tolist()) if lab == c]
            diff = [bool(t["difficult"][j]) for j in sel]
            gts[i] = {"boxes": [t["boxes"][j].tolist() for j in sel], "difficult": diff, "det": [False] * len(sel)}
            npos += sum(not d for d in diff)
        dets = [(float(s), i, b.tolist()) for i, p in enumerate(preds)
                for b, s, lab in zip(p["boxes"], p["scores"], p["labels"].tolist()) if lab == c]
        order = sorted(range(len(dets)), key=lambda j: -dets[j][0])  # stable: ties keep image order
        tp, fp = [], []
        for j in order:
            _, i, b = dets[j]
            g = gts[i]
            ovmax, jmax = -np.inf, -1
            for gi, gbox in enumerate(g["boxes"]):
                iw = max(min(b[2], gbox[2]) - max(b[0], gbox[0]) + offset, 0.0)
                ih = max(min(b[3], gbox[3]) - max(b[1], gbox[1]) + offset, 0.0)
                inter = iw * ih
                uni = ((b[2] - b[0] + offset) * (b[3] - b[1] + offset)
                       + (gbox[2] - gbox[0] + offset) * (gbox[3] - gbox[1] + offset) - inter)
                ov = inter / uni if uni > 0 else 0.0
                if ov > ovmax:
                    ovmax, jmax = ov, gi
            if ovmax > thresh:
                if g["difficult"][jmax]:
                    continue
                if not g["det"][jmax]:
                    g["det"][jmax] = True
                    tp.append(1.0)
                    fp.append(0.0)
                else:
                    tp.append(0.0)
                    fp.append(1.0)
            else:
                tp.append(0.0)
                fp.append(1.0)
        if npos == 0:
            aps.append(np.nan)
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07:
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0) / 11.0
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for i in range(mpre.size - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
        aps.append(ap)
    return np.array(aps)


def test_voc_ap_hand_computed():
    # TP, FP, TP, FP with 3 ground-truth boxes
    rec = np.array([1, 1, 2, 2]) / 3
    prec = np.array([1, 1 / 2, 2 / 3, 1 / 2])
    assert voc_ap(rec, prec) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)
    assert voc_ap(np.array([1.0]), np.array([1.0])) == 1.0
    assert voc_ap(np.array([1.0]), np.array([1.0]), True) == pytest.approx(1.0)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_evaluate_voc_hand_computed_with_difficult_and_duplicates():
    targets = [
        {"boxes": torch.tensor([box(0, 0, 10, 10), box(20, 20, 30, 30), box(50, 50, 60, 60)]),
         "labels": torch.tensor([0, 0, 0]), "difficult": torch.tensor([False, False, True])},
        {"boxes": torch.tensor([box(0, 0, 10, 10)]), "labels": torch.tensor([1]), "difficult": torch.tensor([False])},
    ]
    preds = [
        {"boxes": torch.tensor([box(0, 0, 10, 10), box(0, 0, 10, 10), box(50, 50, 60, 60), box(20, 20, 30, 31),
                                box(80, 80, 90, 90)]),
         "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), "labels": torch.tensor([0, 0, 0, 0, 0])},
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    # class 0: TP (0.9), FP duplicate (0.8), difficult hit ignored (0.7), TP (0.6), FP (0.5); 2 positives
    r = evaluate_voc(preds, targets, ["a", "b"])
    assert r.n_gt.tolist() == [2, 1]
    assert r.ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert r.ap[1] == 0.0
    assert r.mAP == pytest.approx((0.5 + 1 / 3) / 2)
    r07 = evaluate_voc(preds, targets, ["a", "b"], use_07_metric=True)
    assert r07.ap[0] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert "mean" in r.table()


def test_class_without_ground_truth_is_nan_and_left_out():
    targets = [{"boxes": torch.tensor([box(0, 0, 10, 10)]), "labels": torch.tensor([0]), "difficult": torch.tensor([False])}]
    preds = [{"boxes": torch.tensor([box(0, 0, 10, 10), box(0, 0, 5, 5)]), "scores": torch.tensor([0.9, 0.3]),
              "labels": torch.tensor([0, 1])}]
    r = evaluate_voc(preds, targets, ["a", "b"])
    assert r.ap[0] == 1.0 and np.isnan(r.ap[1]) and r.mAP == 1.0


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("use_07", [False, True])
def test_matches_reference_on_random_cases(seed, use_07):
    preds, targets = random_voc(seed)
    offset = 1.0 if seed % 2 else 0.0
    got = evaluate_voc(preds, targets, list("abcd"), use_07_metric=use_07, pixel_offset=offset).ap
    np.testing.assert_allclose(got, reference_voc(preds, targets, 4, use_07, offset), rtol=0, atol=1e-12)
