"""The segmentation loss: cross-entropy over labelled pixels against torch's, class weights and Dice against
looped references."""

import math

import pytest
import torch
import torch.nn.functional as F

from rtdet.losses.seg_loss import SegmentationLoss, class_weights, dice_loss, hard_pixels, stack_labels


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


def test_class_weights_by_hand():
    # shares 0.1, 0.3, 0, 0.6; the median over the three classes present is 0.3
    plain = class_weights([1, 3, 0, 6], "median_freq")
    torch.testing.assert_close(plain, torch.tensor([3.0, 1.0, 1.0, 0.5]))
    root = class_weights([1, 3, 0, 6], "sqrt_median_freq")
    torch.testing.assert_close(root, torch.tensor([math.sqrt(3), 1.0, 1.0, math.sqrt(0.5)]))
    # an even number of classes present: the median is the mean of the middle two shares (0.2 and 0.3)
    torch.testing.assert_close(class_weights([1, 2, 3, 4], "median_freq"), torch.tensor([2.5, 1.25, 25 / 30, 0.625]))
    assert class_weights([1, 3, 0, 6], "none") is None and class_weights([0, 0], "median_freq") is None
    with pytest.raises(ValueError, match="expected one of"):
        class_weights([1, 2], "inverse")
    with pytest.raises(ValueError, match=">= 0"):
        class_weights([1, -2], "median_freq")


def test_weighted_cross_entropy_against_a_looped_reference():
    logits, targets = _case(seed=2)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss_fn = SegmentationLoss(4)
    loss_fn.class_weight = weight
    out = loss_fn(logits, targets)["loss_ce"]
    labels = stack_labels(targets, 4, logits.device)
    num = den = 0.0
    for b, h, w in torch.cartesian_prod(*(torch.arange(n) for n in labels.shape)).tolist():
        y = int(labels[b, h, w])
        if y < 0:
            continue
        num += weight[y] * -logits[b, :, h, w].log_softmax(0)[y]
        den += weight[y]
    torch.testing.assert_close(out, num / den)


def test_weighted_loss_of_no_labelled_pixel_is_zero_and_bad_weights_are_refused():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss_fn = SegmentationLoss(3)
    loss_fn.class_weight = torch.ones(3)
    loss = loss_fn(logits, [{"mask": torch.full((4, 4), 255)}])["loss_ce"]
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.abs().max() == 0
    loss_fn = SegmentationLoss(3)
    for bad in (torch.ones(4), torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, -1.0, 2.0])):
        with pytest.raises(ValueError, match="3 positive numbers"):
            loss_fn.class_weight = bad
    assert loss_fn.class_weight is None and "class_weight" not in dict(loss_fn.named_buffers())


def test_weigh_classes_follows_the_weighting_and_pads_missing_classes():
    assert SegmentationLoss(4).weigh_classes([1, 3, 6]) is None  # plain cross-entropy by default
    loss_fn = SegmentationLoss(4, weighting="median_freq")
    torch.testing.assert_close(loss_fn.weigh_classes([1, 3, 6]), torch.tensor([3.0, 1.0, 0.5, 1.0]))
    torch.testing.assert_close(loss_fn.class_weight, torch.tensor([3.0, 1.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="5 pixel counts for a loss over 4 classes"):
        loss_fn.weigh_classes([1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="expected one of none, median_freq, sqrt_median_freq"):
        SegmentationLoss(4, weighting="inverse")


def _ohem_reference(logits, labels, thresh, weight=None, min_share=1 / 16):
    """Looped OHEM: every labelled pixel's probability of its class; those below thresh, or else the
    ceil(min_share * labelled) least likely; the (weighted) mean of their cross-entropy."""
    pixels = []  # (probability, cross-entropy, weight)
    for b, h, w in torch.cartesian_prod(*(torch.arange(n) for n in labels.shape)).tolist():
        y = int(labels[b, h, w])
        if y >= 0:
            logp = logits[b, :, h, w].log_softmax(0)[y]
            pixels.append((float(logp.exp()), -logp, 1.0 if weight is None else float(weight[y])))
    kept = [p for p in pixels if p[0] < thresh]
    n_min = math.ceil(min_share * len(pixels))
    if len(kept) < n_min:
        kept = sorted(pixels, key=lambda p: p[0])[:n_min]
    return sum(w * l for _, l, w in kept) / sum(w for _, _, w in kept), len(kept)


@pytest.mark.parametrize("thresh", [0.7, 0.2, 0.01])
@pytest.mark.parametrize("weighted", [False, True])
def test_ohem_against_a_looped_reference(thresh, weighted):
    """At 0.7 most pixels of random logits are hard; at 0.01 almost none: the sixteenth floor decides."""
    logits, targets = _case(b=2, k=4, h=12, w=10, seed=3)
    loss_fn = SegmentationLoss(4, ohem_thresh=thresh)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0]) if weighted else None
    loss_fn.class_weight = weight
    labels = stack_labels(targets, 4, logits.device)
    ref, n_kept = _ohem_reference(logits, labels, thresh, weight)
    torch.testing.assert_close(loss_fn(logits, targets)["loss_ce"], ref)
    pixel = F.cross_entropy(logits, labels, ignore_index=-1, reduction="none")
    assert int(hard_pixels(pixel, labels, thresh).sum()) == n_kept


def test_ohem_floor_keeps_the_hardest_sixteenth_and_only_their_gradients():
    logits, targets = _case(b=2, k=3, h=8, w=8, seed=4)
    logits = (logits * 10).requires_grad_()  # confident: few pixels are below any threshold
    labels = stack_labels(targets, 3, logits.device)
    pixel = F.cross_entropy(logits, labels, ignore_index=-1, reduction="none")
    keep = hard_pixels(pixel, labels, 1e-300)
    labelled = int((labels >= 0).sum())
    assert int(keep.sum()) == math.ceil(labelled / 16)
    assert pixel[keep].min() >= pixel[(labels >= 0) & ~keep].max()  # the largest losses
    SegmentationLoss(3, ohem_thresh=1e-300)(logits, targets)["loss_ce"].backward()
    assert torch.equal(logits.grad.abs().sum(1) > 0, keep)
    assert not hard_pixels(pixel, torch.full_like(labels, -1), 0.7).any()  # nothing labelled: nothing kept


def test_ohem_of_no_labelled_pixel_is_zero_and_bad_thresholds_are_refused():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = SegmentationLoss(3, ohem_thresh=0.7)(logits, [{"mask": torch.full((4, 4), 255)}])["loss_ce"]
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.abs().max() == 0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="ohem_thresh"):
            SegmentationLoss(3, ohem_thresh=bad)
    with pytest.raises(ValueError, match="OHEM needs"):
        hard_pixels(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.int64), 0.0)
