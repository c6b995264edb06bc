"""The classifiers' cross-entropy: hard labels, soft (mixed) targets, label smoothing."""

import pytest
import torch
import torch.nn.functional as F

from rtdet.losses.cls_loss import ClassificationLoss, target_distribution


def _logits(b=6, k=5):
    return torch.randn(b, k, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_hard_labels_equal_torch_cross_entropy(eps):
    logits, labels = _logits(), torch.tensor([0, 4, 2, 2, 1, 3])
    loss = ClassificationLoss(eps)(logits, [{"label": int(c)} for c in labels])["loss_cls"]
    assert loss.ndim == 0
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, label_smoothing=eps))


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_targets_are_used_and_smoothed(eps):
    logits = _logits()
    g = torch.Generator().manual_seed(1)
    soft = torch.rand(6, 5, generator=g)
    soft = soft / soft.sum(1, keepdim=True)
    targets = [{"label": int(p.argmax()), "soft": p} for p in soft]
    loss = ClassificationLoss(eps)(logits, targets)["loss_cls"]
    smoothed = soft * (1 - eps) + eps / 5
    torch.testing.assert_close(loss, -(smoothed * logits.log_softmax(1)).sum(1).mean())
    one_hot = [{"label": int(c), "soft": F.one_hot(torch.tensor(c), 5).float()} for c in (0, 4, 2, 2, 1, 3)]
    hard = [{"label": c} for c in (0, 4, 2, 2, 1, 3)]
    loss_fn = ClassificationLoss(eps)
    torch.testing.assert_close(loss_fn(logits, one_hot)["loss_cls"], loss_fn(logits, hard)["loss_cls"])


def test_target_distribution_and_errors():
    assert target_distribution([{"label": 2}, {"label": torch.tensor(0)}], 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        ClassificationLoss()(_logits(2), [{"label": 0}])
    with pytest.raises(ValueError, match="the model has 5 classes"):
        ClassificationLoss()(_logits(1), [{"label": 0, "soft": torch.ones(3) / 3}])
