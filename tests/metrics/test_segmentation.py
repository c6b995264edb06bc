"""Segmentation metrics equal scikit-learn's and a looped per-image reference (mmsegmentation's definition),
on real CamVid masks against corrupted copies and on hand-built edge cases."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from rtdet.metrics.segmentation import SegmentationMetric, SegmentationResult
from rtdet.metrics.validate import MetricsInputError

CAMVID = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "camvid"
K, IGNORE = 11, 255


def looped_reference(preds: list[np.ndarray], labels: list[np.ndarray], k: int, ignore: int) -> dict:
    """mmsegmentation's IoUMetric written out: per image and class, count, then sum over images."""
    inter, union, pred_area, label_area = (np.zeros(k, np.int64) for _ in range(4))
    for p, t in zip(preds, labels):
        valid = t != ignore
        for c in range(k):
            pc, tc = (p == c) & valid, (t == c) & valid
            inter[c] += int((pc & tc).sum())
            pred_area[c] += int(pc.sum())
            label_area[c] += int(tc.sum())
            union[c] += int((pc | tc).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        iou, acc = inter / union, inter / label_area  # 0 / 0 -> NaN, as torch gives in mmsegmentation
    total = label_area.sum()
    return {"intersect": inter, "union": union, "pred_area": pred_area, "label_area": label_area, "iou": iou,
            "acc": acc, "miou": np.nanmean(iou) if np.isfinite(iou).any() else np.nan,
            "macc": np.nanmean(acc) if np.isfinite(acc).any() else np.nan,
            "aacc": inter.sum() / total if total else np.nan}


def check(result: SegmentationResult, preds: list[np.ndarray], labels: list[np.ndarray], k: int, ignore: int):
    """``result`` against the looped reference and, on the flattened labelled pixels, scikit-learn."""
    ref = looped_reference(preds, labels, k, ignore)
    for key in ("intersect", "union", "pred_area", "label_area"):
        np.testing.assert_array_equal(getattr(result, key), ref[key], err_msg=key)
    for key in ("iou", "acc"):
        np.testing.assert_allclose(getattr(result, key), ref[key], rtol=0, atol=1e-12, err_msg=key)
    for key in ("miou", "macc", "aacc"):
        np.testing.assert_allclose(getattr(result, key), ref[key], rtol=0, atol=1e-12, err_msg=key)
    t = np.concatenate([x.ravel() for x in labels])
    p = np.concatenate([x.ravel() for x in preds])
    t, p = t[t != ignore], p[t != ignore]
    if not len(t):
        return
    labels_k = np.arange(k)
    np.testing.assert_array_equal(result.confusion, skm.confusion_matrix(t, p, labels=labels_k))
    iou = skm.jaccard_score(t, p, labels=labels_k, average=None, zero_division=0)
    acc = skm.recall_score(t, p, labels=labels_k, average=None, zero_division=0)
    # scikit-learn gives 0 where the ratio is 0 / 0; mmsegmentation's definition gives NaN
    iou[~np.isin(labels_k, np.union1d(t, p))] = np.nan
    acc[~np.isin(labels_k, t)] = np.nan
    np.testing.assert_allclose(result.iou, iou, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.acc, acc, rtol=0, atol=1e-12)
    assert result.aacc == pytest.approx(skm.accuracy_score(t, p), abs=1e-12)


def run(preds, labels, k=K, ignore=IGNORE, batch=1) -> SegmentationResult:
    metric = SegmentationMetric(k, ignore)
    for i in range(0, len(preds), batch):
        p, t = np.stack(preds[i:i + batch]), np.stack(labels[i:i + batch])
        metric.update(p[0] if batch == 1 else p, t[0] if batch == 1 else t)
    return metric.compute()


@pytest.fixture(scope="module")
def camvid_masks() -> list[np.ndarray]:
    """Every 4th CamVid val mask (26 of 101), unlabelled (11) mapped to 255."""
    files = sorted((CAMVID / "masks" / "val").glob("*.png"))[::4]
    if not files:
        pytest.skip(f"shared CamVid data absent: {CAMVID}")
    masks = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    return [np.where(m == 11, IGNORE, m).astype(np.uint8) for m in masks]


def corrupted(masks: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Plausible wrong predictions: shifted masks, road/pavement confused, 5 % random pixels, no bicyclist,
    and the unlabelled pixels predicted as some class (which must not count)."""
    rng = np.random.default_rng(seed)
    out = []
    for m in masks:
        p = np.roll(m, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1)).astype(np.int64)
        p[p == IGNORE] = rng.integers(0, K)
        if rng.random() < 0.5:
            p[(p == 4) & (rng.random(p.shape) < 0.5)] = 3
        noise = rng.random(p.shape) < 0.05
        p[noise] = rng.integers(0, K, int(noise.sum()))
        p[p == 10] = 9
        out.append(p.astype(np.uint8))
    return out


def test_camvid_against_references(camvid_masks):
    preds = corrupted(camvid_masks, 0)
    result = run(preds, camvid_masks)
    check(result, preds, camvid_masks, K, IGNORE)
    assert result.iou[10] == 0 and result.pred_area[10] == 0 < result.label_area[10]  # bicyclist never predicted
    assert 0.3 < result.miou < 0.9 and result.pixels == sum(int((m != IGNORE).sum()) for m in camvid_masks)
    perfect = run(camvid_masks, camvid_masks)
    assert perfect.miou == perfect.aacc == perfect.macc == 1.0


def test_batches_and_devices_agree(camvid_masks):
    """The same numbers whether images come one by one, in batches, as numpy or as torch tensors."""
    preds, labels = corrupted(camvid_masks[:9], 1), camvid_masks[:9]
    one = run(preds, labels)
    batched = run(preds, labels, batch=4)
    tensors = SegmentationMetric(K, IGNORE)
    tensors.update(torch.from_numpy(np.stack(preds)).long(), torch.from_numpy(np.stack(labels)))
    for other in (batched, tensors.compute()):
        np.testing.assert_array_equal(other.confusion, one.confusion)
    check(one, preds, labels, K, IGNORE)


def test_random_cases_against_references():
    rng = np.random.default_rng(5)
    for k in (2, 5, 19):
        labels = [rng.integers(0, k, (17, 23)) for _ in range(4)]
        for t in labels:
            t[rng.random(t.shape) < 0.2] = IGNORE
        preds = [np.where(rng.random(t.shape) < 0.6, np.where(t == IGNORE, 0, t), rng.integers(0, k, t.shape))
                 for t in labels]
        check(run(preds, labels, k), preds, labels, k, IGNORE)


def test_absent_class_is_nan_and_left_out_of_the_means():
    t = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    p = np.array([[0, 1, 1, 1], [0, 0, 1, 3]])  # class 2 nowhere; class 3 only predicted (one pixel)
    result = run([p], [t], k=4)
    check(result, [p], [t], 4, IGNORE)
    assert np.isnan(result.iou[2]) and np.isnan(result.acc[2])
    assert result.iou[3] == 0 and np.isnan(result.acc[3])  # only predicted: IoU 0, counted; Acc undefined
    assert result.iou[0] == pytest.approx(3 / 4) and result.iou[1] == pytest.approx(3 / 5)
    assert result.miou == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    assert result.macc == pytest.approx((3 / 4 + 3 / 4) / 2) and result.aacc == pytest.approx(6 / 8)
    d = result.as_dict()
    assert d["iou"][2] is None and d["acc"][3] is None and d["mIoU"] == pytest.approx(result.miou)
    json.dumps(d)  # plain numbers only
    text = result.text()
    assert "8 labelled pixels, 4 classes" in text and "nan" in text.splitlines()[4]


def test_all_pixels_ignored_gives_nan_without_warnings():
    t = np.full((5, 6), IGNORE)
    p = np.full((5, 6), 200)  # predictions at ignored pixels are never looked at, even out of range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run([p], [t], k=3)
    assert result.pixels == 0 and not result.confusion.any()
    assert np.isnan(result.miou) and np.isnan(result.macc) and np.isnan(result.aacc) and np.isnan(result.iou).all()
    check(result, [p], [t], 3, IGNORE)


def test_ignored_pixels_do_not_count():
    t = np.array([[0, 1, IGNORE, IGNORE]])
    a, b = np.array([[0, 1, 0, 0]]), np.array([[0, 1, 1, 5]])
    np.testing.assert_array_equal(run([a], [t], k=2).confusion, run([b], [t], k=2).confusion)


def test_bad_inputs_are_named():
    metric = SegmentationMetric(3)
    with pytest.raises(MetricsInputError, match=r"pass logits.argmax\(1\)"):
        metric.update(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(MetricsInputError, match="pred must hold integer class indices, got float32"):
        metric.update(np.zeros((4, 5), np.float32), np.zeros((4, 5), np.int64))
    with pytest.raises(MetricsInputError, match=r"target holds class 7, outside 0..2 \(or 255: ignored\)"):
        metric.update(np.zeros((4, 5), np.int64), np.full((4, 5), 7))
    with pytest.raises(MetricsInputError, match="pred holds class 3, outside 0..2 at labelled pixels"):
        metric.update(torch.full((4, 5), 3), torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(MetricsInputError, match="2 names for 3 classes"):
        SegmentationMetric(3, names=["a", "b"])
    assert not metric.confusion.any()  # nothing was added by the refused updates


def test_plots(tmp_path, camvid_masks):
    from rtdet.metrics.segmentation_plots import save_segmentation_plots
    from tests.metrics.test_plots import check_png

    preds = corrupted(camvid_masks[:4], 2)
    metric = SegmentationMetric(12, IGNORE, names=[*"abcdefghijk", "never"])  # one class without pixels: n/a
    for p, t in zip(preds, camvid_masks[:4]):
        metric.update(p, t)
    paths = save_segmentation_plots(metric.compute(), tmp_path)
    assert [p.name for p in paths] == ["iou_per_class.png", "confusion_matrix.png"]
    for p in paths:
        check_png(p)
