"""Classification metrics equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from rtdet.metrics import classification as cls


def case(seed, n=300, k=6, ties=False):
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    logits = r.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y] * r.random((n, 1))
    if ties:
        logits = np.round(logits)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_against_sklearn(seed, ties):
    y, s = case(seed, ties=ties)
    k = s.shape[1]
    pred = s.argmax(1)
    assert cls.accuracy(y, s) == pytest.approx(skm.accuracy_score(y, pred))
    for top in (1, 2, 3, 5):
        assert cls.top_k_accuracy(y, s, top) == pytest.approx(skm.top_k_accuracy_score(y, s, k=top, labels=range(k)))
    np.testing.assert_array_equal(cls.confusion_matrix(y, pred, k), skm.confusion_matrix(y, pred, labels=range(k)))
    p, r, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    ours = cls.precision_recall_f1(y, pred, k)
    np.testing.assert_allclose(ours["precision"], p, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], r, atol=1e-12)
    np.testing.assert_allclose(ours["f1"], f1, atol=1e-12)
    np.testing.assert_array_equal(ours["support"], sup)
    for c in range(k):
        fpr, tpr, thr = cls.roc_curve(y == c, s[:, c])
        efpr, etpr, ethr = skm.roc_curve(y == c, s[:, c], drop_intermediate=False)
        np.testing.assert_allclose(fpr, efpr, atol=1e-12)
        np.testing.assert_allclose(tpr, etpr, atol=1e-12)
        np.testing.assert_allclose(thr, ethr)
    aucs, mean = cls.roc_auc_ovr(y, s)
    expected = [skm.roc_auc_score(y == c, s[:, c]) for c in range(k)]
    np.testing.assert_allclose(aucs, expected, atol=1e-12)
    assert mean == pytest.approx(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"), abs=1e-12)


def test_missing_class_and_tensors():
    y, s = case(0, k=4)
    y[y == 3] = 0  # class 3 never true, never predicted
    s[:, 3] = -1
    pred = s.argmax(1)
    res = cls.classification_metrics(torch.tensor(y), torch.tensor(s), ["a", "b", "c", "d"], top_k=(1, 3))
    assert np.isnan(res.auc[3]) and np.isfinite(res.mean_auc)
    assert res.per_class["precision"][3] == 0 and res.per_class["recall"][3] == 0
    assert res.top_k[1] == pytest.approx(skm.accuracy_score(y, pred))
    assert res.confusion.sum() == len(y)
    assert "AUC" in res.table()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N rows"):
        cls.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="outside 0..1"):
        cls.confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="for 3 names"):
        cls.classification_metrics([0], [[0.1, 0.9]], ["a", "b", "c"])
