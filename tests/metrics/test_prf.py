"""P/R/F1 against a plain looped reference; the best confidence by brute force; the confusion matrix by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtdet.metrics.prf import RECALL_POINTS, confusion_matrix, normalize_confusion, precision_recall_f1
from tests.metrics.cases import box, random_voc


def reference_counts(preds, targets, k, conf, thresh=0.5):
    """(kept, TP, GT) per class at ``conf``, with plain loops (greedy by score, IoU >= thresh)."""
    kept, tps, gts = np.zeros(k), np.zeros(k), np.zeros(k)
    for p, t in zip(preds, targets):
        ignore = t["difficult"].tolist()
        for lab, ig in zip(t["labels"].tolist(), ignore):
            gts[lab] += not ig
        taken = [False] * len(ignore)
        dets = [(s, b, lab) for b, s, lab in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()) if s >= conf]
        for s, b, lab in sorted(dets, key=lambda d: -d[0]):
            best, best_g = -1.0, -1
            for g, (gb, gl) in enumerate(zip(t["boxes"].tolist(), t["labels"].tolist())):
                if gl != lab:
                    continue
                iw = max(min(b[2], gb[2]) - max(b[0], gb[0]), 0)
                ih = max(min(b[3], gb[3]) - max(b[1], gb[1]), 0)
                inter = iw * ih
                union = (b[2] - b[0]) * (b[3] - b[1]) + (gb[2] - gb[0]) * (gb[3] - gb[1]) - inter
                iou = inter / union if union > 0 else 0.0
                if iou > best:
                    best, best_g = iou, g
            if best >= thresh and ignore[best_g]:
                continue
            kept[lab] += 1
            if best >= thresh and not taken[best_g]:
                taken[best_g] = True
                tps[lab] += 1
    return kept, tps, gts


def reference_prf(preds, targets, k, conf):
    kept, tp, gt = reference_counts(preds, targets, k, conf)
    p = np.array([tp[c] / kept[c] if kept[c] else 0.0 for c in range(k)])
    r = np.array([tp[c] / gt[c] if gt[c] else 0.0 for c in range(k)])
    f1 = np.array([2 * p[c] * r[c] / (p[c] + r[c]) if p[c] + r[c] else 0.0 for c in range(k)])
    return p, r, f1, gt > 0


@pytest.mark.parametrize("seed", range(8))
def test_prf_at_confidence_matches_reference(seed):
    preds, targets = random_voc(seed)
    res = precision_recall_f1(preds, targets, list("abcd"))
    for conf in (0.0, 0.25, 0.5, 0.77):
        at = res.at(conf)
        p, r, f1, has = reference_prf(preds, targets, 4, conf)
        np.testing.assert_allclose(at.precision, p, atol=1e-12)
        np.testing.assert_allclose(at.recall, r, atol=1e-12)
        np.testing.assert_allclose(at.f1, f1, atol=1e-12)
        assert at.has_gt.tolist() == has.tolist()
    j = int(np.searchsorted(res.conf_grid, 0.25))  # the grid curve agrees with the exact value
    np.testing.assert_allclose(res.f1[:, j], reference_prf(preds, targets, 4, res.conf_grid[j])[2], atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_best_confidence_maximizes_mean_f1(seed):
    preds, targets = random_voc(seed)
    res = precision_recall_f1(preds, targets, list("abcd"))
    scores = sorted({s for p in preds for s in p["scores"].tolist()})
    brute = max(reference_prf(preds, targets, 4, s)[2][reference_prf(preds, targets, 4, s)[3]].mean() for s in scores)
    assert res.best.mean()["f1"] == pytest.approx(brute, abs=1e-12)
    assert "mean" in res.table()


def test_hand_case_and_pr_curve():
    targets = [{"boxes": torch.tensor([box(0, 0, 10, 10), box(20, 20, 30, 30)]), "labels": torch.tensor([0, 0]),
                "difficult": torch.tensor([False, False])}]
    preds = [{"boxes": torch.tensor([box(0, 0, 10, 10), box(50, 50, 60, 60), box(20, 20, 30, 30)]),
              "scores": torch.tensor([0.9, 0.8, 0.3]), "labels": torch.tensor([0, 0, 0])}]
    res = precision_recall_f1(preds, targets, ["a"])
    # conf 0.9: P 1, R .5, F1 2/3; conf 0.3: P 2/3, R 1, F1 .8 -> best is 0.3
    assert res.best.conf == pytest.approx(0.3)
    assert res.best.f1[0] == pytest.approx(0.8)
    at = res.at(0.85)
    assert (at.precision[0], at.recall[0]) == (1.0, 0.5)
    assert res.ap50[0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert res.pr_precision[0, RECALL_POINTS <= 0.5].tolist() == [1.0] * int((RECALL_POINTS <= 0.5).sum())
    assert res.pr_precision[0, -1] == pytest.approx(2 / 3)


def test_no_detections_and_no_ground_truth():
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "difficult": torch.zeros(0, dtype=torch.bool)}]
    preds = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    res = precision_recall_f1(preds, targets, ["a", "b"])
    assert np.isnan(res.best.mean()["f1"]) and np.isnan(res.ap50).all()
    assert confusion_matrix(preds, targets, 2).sum() == 0


def test_confusion_matrix_by_hand():
    targets = [{"boxes": torch.tensor([box(0, 0, 10, 10), box(20, 20, 30, 30), box(40, 40, 50, 50), box(70, 70, 80, 80)]),
                "labels": torch.tensor([0, 1, 1, 0]), "iscrowd": torch.tensor([False, False, False, True])}]
    preds = [{"boxes": torch.tensor([box(0, 0, 10, 10), box(20, 20, 30, 30), box(90, 90, 99, 99), box(70, 70, 80, 80),
                                     box(0, 0, 10, 10)]),
              "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.1]), "labels": torch.tensor([0, 0, 1, 0, 1])}]
    cm = confusion_matrix(preds, targets, 2, conf=0.25)
    # a correct hit, a class-1 box called 0, a missed class-1 box, a false class-1 detection,
    # a hit on a crowd box (not counted), a low-score detection (below conf)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
    norm = normalize_confusion(cm)
    assert norm[1].tolist() == [0.5, 0.0, 0.5] and norm[2].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_accounts_for_every_box(seed):
    preds, targets = random_voc(seed)
    cm = confusion_matrix(preds, targets, 4, conf=0.3, iou_thresh=0.5)
    n_gt = sum(int((~t["difficult"]).sum()) for t in targets)
    n_det = sum(int((p["scores"] >= 0.3).sum()) for p in preds)
    assert cm[:4].sum() == n_gt  # every box is hit or missed, once
    assert cm[:, :4].sum() <= n_det  # detections on difficult boxes are dropped
    assert cm[4, 4] == 0
