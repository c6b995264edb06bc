"""The segmentation loss: cross-entropy over labelled pixels against torch's, Dice against a looped reference."""

import pytest
import torch
import torch.nn.functional as F

from rtdet.losses.seg_loss import SegmentationLoss, dice_loss, stack_labels


def _case(b=2, k=4, h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, h, w, generator=g)
    masks = torch.randint(0, k, (b, h, w), generator=g)
    masks[0, :2] = 255  # unlabelled (the data's ignore index)
    masks[1, -1, :3] = k + 3  # any value outside 0..K-1 is unlabelled too
    return logits, [{"mask": m} for m in masks]


def test_cross_entropy_equals_torch_over_labelled_pixels():
    logits, targets = _case()
    out = SegmentationLoss(4)(logits, targets)
    assert set(out) == {"loss_ce"} and out["loss_ce"].ndim == 0
    labels = torch.stack([t["mask"] for t in targets])
    ref = F.cross_entropy(logits, torch.where(labels < 4, labels, torch.full_like(labels, 255)), ignore_index=255)
    torch.testing.assert_close(out["loss_ce"], ref)


def test_no_labelled_pixel_gives_zero_and_zero_gradients():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = SegmentationLoss(3)(logits, [{"mask": torch.full((4, 4), 255)}])["loss_ce"]
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all() and logits.grad.abs().max() == 0


def test_dice_against_a_looped_reference_and_its_gain():
    logits, targets = _case(seed=1)
    labels = stack_labels(targets, 4, logits.device)
    probs = logits.softmax(1)
    per_class = []
    for c in range(4):
        inter = total = 0.0
        for b, h, w in torch.cartesian_prod(*(torch.arange(n) for n in labels.shape)).tolist():
            if labels[b, h, w] < 0:
                continue
            g = float(labels[b, h, w] == c)
            inter, total = inter + probs[b, c, h, w] * g, total + probs[b, c, h, w] + g
        per_class.append(1 - (2 * inter + 1) / (total + 1))
    torch.testing.assert_close(dice_loss(logits, labels), torch.stack(per_class).mean())
    out = SegmentationLoss(4, dice_gain=0.5)(logits, targets)
    torch.testing.assert_close(out["loss_dice"], 0.5 * dice_loss(logits, labels))


def test_a_confident_right_prediction_has_almost_no_loss():
    labels = torch.randint(0, 3, (1, 8, 8))
    logits = F.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50
    out = SegmentationLoss(3, dice_gain=1.0)(logits, [{"mask": labels[0]}])
    assert out["loss_ce"] < 1e-6 and out["loss_dice"] < 0.02


def test_bad_settings_and_sizes_are_refused():
    with pytest.raises(ValueError, match="dice_gain"):
        SegmentationLoss(3, dice_gain=-1)
    with pytest.raises(ValueError, match="differ in size"):
        SegmentationLoss(3)(torch.zeros(1, 3, 4, 4), [{"mask": torch.zeros(5, 4, dtype=torch.int64)}])
