"""Classification metrics equal scikit-learn's, on real MNIST predictions and on random and edge cases."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from rtdet.metrics import classification as cls
from rtdet.metrics.classification_plots import misclassified_grid, save_classification_plots
from tests.metrics.test_plots import check_png

MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


def case(seed, n=300, k=6, ties=False):
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    logits = r.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y] * r.random((n, 1))
    if ties:
        logits = np.round(logits)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


@pytest.fixture(scope="module")
def mnist_predictions():
    """Real predictions: linear discriminant analysis on 10x10 MNIST digits (first 6,400 -> last 1,600; ~87 %)."""
    from rtdet.data.classify import open_classification
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    if not MNIST.is_dir():
        pytest.skip(f"shared MNIST data absent: {MNIST}")
    train, val = open_classification(MNIST, "train"), open_classification(MNIST, "val")

    def features(images):
        small = [cv2.resize(im, (10, 10), interpolation=cv2.INTER_AREA) for im in images]
        return np.stack(small).reshape(len(images), -1) / 255.0

    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1).fit(features(train.images), train.labels)
    return val.labels, lda.predict_proba(features(val.images)), val.names, val.images


def check_against_sklearn(y, s):
    """Every number of classification_report against scikit-learn (all classes present in y)."""
    k = s.shape[1]
    labels = np.arange(k)
    pred = s.argmax(1)
    res = cls.classification_report(y, s, [str(c) for c in labels])
    assert res.top1 == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert res.top5_k == min(5, k)
    top5 = 1.0 if k <= 5 else skm.top_k_accuracy_score(y, s, k=5, labels=labels)  # sklearn warns for k >= K
    assert res.top5 == pytest.approx(top5, abs=1e-12)
    np.testing.assert_array_equal(res.confusion, skm.confusion_matrix(y, pred, labels=labels))
    p, r, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for ours, theirs in ((res.precision, p), (res.recall, r), (res.f1, f1)):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
    np.testing.assert_array_equal(res.support, sup)
    for avg, d in (("macro", res.macro), ("weighted", res.weighted)):
        p, r, f1, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        assert (d["precision"], d["recall"], d["f1"]) == pytest.approx((p, r, f1), abs=1e-12)
    assert res.macro["auc"] == pytest.approx(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"), abs=1e-12)
    assert res.auc_micro == pytest.approx(skm.roc_auc_score(y, s, multi_class="ovr", average="micro"), abs=1e-12)
    np.testing.assert_allclose(res.auc, [skm.roc_auc_score(y == c, s[:, c]) for c in labels], atol=1e-12)
    ap = [skm.average_precision_score(y == c, s[:, c]) for c in labels]
    np.testing.assert_allclose(res.ap, ap, atol=1e-12)
    assert res.macro["ap"] == pytest.approx(skm.average_precision_score(np.eye(k)[y], s, average="macro"), abs=1e-12)
    for c in labels:
        fpr, tpr, _ = skm.roc_curve(y == c, s[:, c])
        np.testing.assert_allclose(res.roc_curves[c][0], fpr)
        np.testing.assert_allclose(res.roc_curves[c][1], tpr)
        assert skm.auc(*res.roc_curves[c]) == pytest.approx(res.auc[c], abs=1e-12)  # the curve is the AUC's
        precision, recall, _ = skm.precision_recall_curve(y == c, s[:, c])
        np.testing.assert_allclose(res.pr_curves[c][0], precision)
        np.testing.assert_allclose(res.pr_curves[c][1], recall)
    return res


def test_real_mnist_predictions_equal_sklearn(mnist_predictions, tmp_path):
    y, probs, names, images = mnist_predictions
    res = check_against_sklearn(y, probs)
    assert 0.8 < res.top1 < 0.95 and res.top5 > res.top1 and res.samples == 1600  # a realistic, imperfect model
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))  # strict JSON: plain floats and lists
    assert d["top1"] == pytest.approx(res.top1) and d["per_class"]["support"] == res.support.tolist()
    assert d["confusion_matrix"] == res.confusion.tolist() and d["micro"]["auc"] == pytest.approx(res.auc_micro)
    text = res.text()
    assert "top-1" in text and "macro" in text and "weighted" in text and len(text.splitlines()) == 2 + 10 + 2
    for p in save_classification_plots(res, tmp_path):
        check_png(p)
    grid = misclassified_grid(images, y, probs.argmax(1), probs, names, tmp_path / "misclassified.png", n=16)
    check_png(grid, min_side=250)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_random_cases_equal_sklearn(seed, ties):
    y, s = case(seed, ties=ties)
    check_against_sklearn(y, s)


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_few_classes_clip_top5(k):
    y, s = case(k, n=200, k=k)
    y[:k] = np.arange(k)  # every class present
    res = check_against_sklearn(y, s) if k > 2 else cls.classification_report(y, s, ["a", "b"])
    assert res.top5_k == min(5, k)
    if k <= 5:
        assert res.top5 == 1.0
    if k == 2:  # binary: one-vs-rest AUC of each class equals the binary AUC
        assert res.auc[1] == pytest.approx(skm.roc_auc_score(y, s[:, 1]), abs=1e-12)
        assert res.auc[0] == pytest.approx(res.auc[1], abs=1e-12)


def test_class_absent_from_y_true():
    """Class 3 never true: its AUC and AP are NaN (no positives), the macro AUC / mAP average the other classes.

    scikit-learn's ovr macro AUC is NaN in this case, its micro AUC is still defined, and its
    average precision for the absent class is 0 with a warning.
    """
    y, s = case(0, k=4)
    y[y == 3] = 0
    res = cls.classification_report(torch.tensor(y), torch.tensor(s), ["a", "b", "c", "d"])
    assert np.isnan(res.auc[3]) and np.isnan(res.ap[3]) and res.roc_curves[3] is None and res.pr_curves[3] is None
    expected = [skm.roc_auc_score(y == c, s[:, c]) for c in range(3)]
    np.testing.assert_allclose(res.auc[:3], expected, atol=1e-12)
    assert res.macro["auc"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert res.macro["ap"] == pytest.approx(np.mean([skm.average_precision_score(y == c, s[:, c]) for c in range(3)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(skm.roc_auc_score(y, s, multi_class="ovr", average="macro", labels=range(4)))
        micro = skm.roc_auc_score(y, s, multi_class="ovr", average="micro", labels=range(4))
        assert skm.average_precision_score(y == 3, s[:, 3]) == 0
    assert res.auc_micro == pytest.approx(micro, abs=1e-12)
    assert res.recall[3] == 0 and res.support[3] == 0  # precision 0 too when class 3 is predicted at all
    assert res.as_dict()["per_class"]["auc"][3] is None  # NaN -> null in metrics.json
    assert "nan" in res.text()


def test_perfect_and_single_sample():
    y = np.array([0, 1, 2, 2])
    res = cls.classification_report(y, np.eye(3)[y] * 0.9 + 0.05, ["a", "b", "c"])
    assert res.top1 == 1 and res.macro["auc"] == 1 and res.auc_micro == 1 and res.macro["ap"] == 1
    assert res.confusion.trace() == 4
    one = cls.classification_report([1], [[0.2, 0.7, 0.1]], ["a", "b", "c"])  # only one class present
    assert one.top1 == 1 and np.isnan(one.auc).all() and np.isnan(one.macro["auc"]) and one.auc_micro == 1


def test_helpers_equal_sklearn():
    y, s = case(9, k=8)
    pred = s.argmax(1)
    assert cls.accuracy(y, s) == cls.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    for k in (1, 2, 3, 7):
        assert cls.top_k_accuracy(y, s, k) == pytest.approx(skm.top_k_accuracy_score(y, s, k=k, labels=range(8))
                                                            if k > 1 else skm.accuracy_score(y, pred))
    assert cls.top_k_accuracy(y, s, 8) == 1.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="N rows"):
        cls.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="outside 0..1"):
        cls.confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="for 3 names"):
        cls.classification_report([0], [[0.1, 0.9]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="y_true has a class outside 0..1"):
        cls.classification_report([0, 5], [[0.1, 0.9], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        cls.classification_report([0, 1], [[np.nan, 0.9], [0.5, 0.5]], ["a", "b"])
    with pytest.raises(ValueError, match="no samples"):
        cls.classification_report(np.zeros(0, int), np.zeros((0, 2)), ["a", "b"])


def test_misclassified_grid_layouts(tmp_path):
    rng = np.random.default_rng(0)
    chw = torch.from_numpy(rng.integers(0, 256, (5, 3, 20, 24), dtype=np.uint8))
    y, pred = np.array([0, 1, 1, 0, 1]), np.array([1, 1, 0, 0, 0])
    probs = np.array([[0.3, 0.7], [0.1, 0.9], [0.6, 0.4], [0.8, 0.2], [0.9, 0.1]])
    check_png(misclassified_grid(chw, y, pred, probs, ["cat", "dog"], tmp_path / "a.png"), min_side=150)
    hwc = [rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8) for i in range(5)]  # mixed sizes
    check_png(misclassified_grid(hwc, y, pred, probs, ["cat", "dog"], tmp_path / "b.png", n=2), min_side=150)
    none = misclassified_grid(chw[:2], y[:2], y[:2], probs[:2], ["cat", "dog"], tmp_path / "c.png")
    assert cv2.imread(str(none)) is not None
    with pytest.raises(ValueError, match="expected the same N"):
        misclassified_grid(chw, y[:3], pred, probs, ["cat", "dog"], tmp_path / "d.png")
