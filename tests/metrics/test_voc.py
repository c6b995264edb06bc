"""VOC AP: hand-computed cases, a straightforward devkit-style reference on random cases, and the devkit's
own rules on the voc_mini photos (read from their XML in the devkit's coordinates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtdet.deploy.images import shared_data_dir
from rtdet.metrics.voc import evaluate_voc, voc_ap
from tests.metrics.cases import box, detections_near, devkit_voc_eval, random_voc, read_voc_xml

VOC = shared_data_dir() / "voc_mini" / "VOCdevkit"


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


def _one(boxes, labels, difficult=None, scores=None):
    d = {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), "labels": torch.tensor(labels)}
    if difficult is not None:
        d["difficult"] = torch.tensor(difficult)
    if scores is not None:
        d["scores"] = torch.tensor(scores)
    return d


def test_detections_on_a_difficult_only_image_are_neither_true_nor_false_positives():
    targets = [_one([box(0, 0, 10, 10), box(20, 20, 30, 30)], [0, 0], [False, False]),
               _one([box(50, 50, 90, 90)], [0], [True])]  # the second image holds one difficult object only
    base = [_one([box(0, 0, 10, 10), box(60, 0, 70, 10)], [0, 0], scores=[0.9, 0.5]), _one([], [], scores=[])]
    hits = [base[0], _one([box(50, 50, 90, 90), box(51, 50, 90, 91), box(50, 52, 88, 90)], [0, 0, 0],
                          scores=[0.95, 0.8, 0.7])]  # two of them would be duplicates of a normal box
    for use_07 in (False, True):
        without = evaluate_voc(base, targets, ["a"], use_07_metric=use_07)
        with_hits = evaluate_voc(hits, targets, ["a"], use_07_metric=use_07)
        assert without.n_gt.tolist() == with_hits.n_gt.tolist() == [2]  # difficult boxes are not positives
        assert with_hits.ap[0] == without.ap[0] == pytest.approx(6 / 11 if use_07 else 0.5)  # TP 0.9, FP 0.5
    missed = [base[0], _one([box(0, 0, 20, 20)], [0], scores=[0.95])]  # away from the difficult box: a FP
    assert evaluate_voc(missed, targets, ["a"]).ap[0] == pytest.approx(0.5 * 0.5)


def test_duplicates_are_false_positives_and_a_class_without_ground_truth_is_left_out():
    targets = [_one([box(0, 0, 10, 10)], [0], [False])]
    preds = [_one([box(0, 0, 10, 10), box(0, 0, 10, 11), box(0, 0, 10, 10)], [0, 0, 2], scores=[0.9, 0.8, 0.7])]
    r = evaluate_voc(preds, targets, ["a", "b", "c"])
    assert r.ap[0] == 1.0 and np.isnan(r.ap[1]) and np.isnan(r.ap[2]) and r.mAP == 1.0  # c: detections, no GT
    preds = [_one([box(0, 0, 10, 11), box(0, 0, 10, 10)], [0, 0], scores=[0.9, 0.8])]  # the better box second
    assert evaluate_voc(preds, targets, ["a"]).ap[0] == 1.0  # the first hit takes the box, the second is a FP
    assert r.per_class() == {"a": 1.0, "b": None, "c": None}
    assert "VOC all-point" in r.table() and "'-': no ground truth" in r.table()


def test_11_point_and_all_point_on_a_known_curve():
    # 4 positives; ranked TP TP FP FP TP: recall .25 .5 .5 .5 .75, precision 1 1 2/3 1/2 3/5
    rec, prec = np.array([1, 2, 2, 2, 3]) / 4, np.array([1, 1, 2 / 3, 1 / 2, 3 / 5])
    assert voc_ap(rec, prec) == pytest.approx(0.25 + 0.25 + 0.25 * 0.6)  # area under the envelope: 0.65
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 * 1 + 2 * 0.6) / 11)  # t = 0..0.5, 0.6, 0.7
    # the devkit's Python port counts its recall points with np.arange: 3 of 10 found (recall 0.3 exactly)
    # does not reach its 4th point, 0.30000000000000004
    assert voc_ap(np.array([0.1, 0.2, 0.3]), np.ones(3), use_07_metric=True) == pytest.approx(3 / 11)
    targets = [_one([box(i * 20, 0, i * 20 + 10, 10) for i in range(4)], [0] * 4, [False] * 4)]
    preds = [_one([box(0, 0, 10, 10), box(20, 0, 30, 10), box(100, 100, 110, 110), box(200, 0, 210, 10),
                   box(40, 0, 50, 10)], [0] * 5, scores=[0.9, 0.8, 0.7, 0.6, 0.5])]
    assert evaluate_voc(preds, targets, ["a"]).ap[0] == pytest.approx(0.65)
    assert evaluate_voc(preds, targets, ["a"], use_07_metric=True).ap[0] == pytest.approx(7.2 / 11)


@pytest.mark.parametrize("use_07", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_voc_mini_photos_score_as_the_devkit_scores_them(use_07, seed):
    """rtdet reads the XML once into continuous boxes; the devkit keeps 1-based inclusive pixels and adds 1
    to every width: the same APs, difficult objects included."""
    if not VOC.is_dir():
        pytest.skip(f"{VOC} absent (../shared/data)")
    from rtdet.data import read_voc

    ds = read_voc(VOC, "test")
    targets = [ds.annotations(i) for i in range(len(ds))]
    assert len(ds) == 10 and sum(int(t["difficult"].sum()) for t in targets) == 2
    preds = detections_near(targets, len(ds.names), seed)
    got = evaluate_voc(preds, targets, ds.names, use_07_metric=use_07)
    files = [Path(ds.file(i)) for i in range(len(ds))]
    annotations = {str(f): read_voc_xml(f.parent.parent / "Annotations" / f"{f.stem}.xml") for f in files}
    dets = {c: [] for c in range(len(ds.names))}
    for f, p in zip(files, preds):
        for (x1, y1, x2, y2), s, c in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            dets[c].append((str(f), s, [x1 + 1, y1 + 1, x2, y2]))  # rtdet's continuous box in the devkit's pixels
    want = np.array([devkit_voc_eval(dets[c], annotations, name, use_07) for c, name in enumerate(ds.names)])
    np.testing.assert_allclose(got.ap, want, rtol=0, atol=1e-12)
    assert np.isfinite(want).sum() == 8 and got.mAP == pytest.approx(np.nanmean(want), abs=1e-12)
