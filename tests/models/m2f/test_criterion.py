"""The Mask2Former set loss: each term against a looped reference, deep supervision, the loss decreasing."""

import pytest
import torch
import torch.nn.functional as F

from rtdet.models.m2f.criterion import M2FCriterion, dice_loss
from rtdet.models.m2f.matcher import MaskMatcher
from rtdet.models.m2f.points import point_sample, uncertain_points


def _outputs(b=2, q=6, k=4, d=8, sets=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"sets": [{"logits": torch.randn(b, q, k + 1, generator=g), "embed": torch.randn(b, q, d, generator=g)}
                     for _ in range(sets)], "features": torch.randn(b, d, 8, 10, generator=g)}


def _targets(sizes=(3, 2), k=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        labels = torch.randperm(k, generator=g)[:n].sort().values
        out.append({"labels": labels, "masks": (torch.rand(n, 32, 40, generator=g) > 0.5).float()})
    return out


def test_class_loss_weighs_no_object_a_tenth():
    crit = M2FCriterion(4, no_object=0.1)
    out, targets = _outputs(), _targets()
    pairs = [(torch.tensor([1, 3, 4]), torch.tensor([2, 0, 1])), (torch.tensor([0, 5]), torch.tensor([1, 0]))]
    logits = out["sets"][0]["logits"]
    num, den = 0.0, 0.0
    for b in range(2):
        matched = dict(zip(pairs[b][0].tolist(), pairs[b][1].tolist()))
        for q in range(6):
            cls = int(targets[b]["labels"][matched[q]]) if q in matched else 4
            w = 1.0 if q in matched else 0.1
            num += w * float(-logits[b, q].log_softmax(-1)[cls])
            den += w
    assert float(crit.class_loss(logits, targets, pairs)) == pytest.approx(num / den, rel=1e-5)


def test_mask_losses_equal_a_looped_reference_at_the_same_points():
    crit = M2FCriterion(4, num_points=50)
    out, targets = _outputs(), _targets()
    pairs = [(torch.tensor([1, 3, 4]), torch.tensor([2, 0, 1])), (torch.tensor([0, 5]), torch.tensor([1, 0]))]
    s = out["sets"][1]
    torch.manual_seed(0)
    bce, dice = crit.mask_losses(s["embed"], out["features"], targets, pairs, num_masks=5.0)
    torch.manual_seed(0)  # the same draws
    masks = torch.stack([out["features"][b].permute(1, 2, 0) @ s["embed"][b, q] for b, (qs, _) in enumerate(pairs)
                         for q in qs.tolist()])[:, None]
    points = uncertain_points(masks, 50, 3.0, 0.75)
    want_bce = want_dice = 0.0
    i = 0
    for b, (_, ns) in enumerate(pairs):
        for n in ns.tolist():
            pred = point_sample(masks[i:i + 1], points[i:i + 1])[0, 0]
            true = point_sample(targets[b]["masks"][n][None, None], points[i:i + 1])[0, 0]
            want_bce += float(F.binary_cross_entropy_with_logits(pred, true))
            p = pred.sigmoid()
            want_dice += float(1 - (2 * (p * true).sum() + 1) / (p.sum() + true.sum() + 1))
            i += 1
    assert float(bce) == pytest.approx(want_bce / 5, rel=1e-5) and float(dice) == pytest.approx(want_dice / 5, rel=1e-5)
    torch.testing.assert_close(dice_loss(torch.tensor([[30.0, -30.0]]), torch.tensor([[1.0, 0.0]])),
                               torch.tensor([0.0]), atol=1e-6, rtol=0)


def test_every_prediction_is_supervised_with_the_gains():
    """The loss over L + 1 predictions is the sum of each one's loss (the same random draws, in order)."""
    crit = M2FCriterion(4, MaskMatcher(num_points=40), class_gain=2.0, mask_gain=5.0, dice_gain=5.0, num_points=40)
    out, targets = _outputs(), _targets()
    torch.manual_seed(0)
    total = crit(out, targets)
    torch.manual_seed(0)
    parts = [crit({"sets": [s], "features": out["features"]}, targets) for s in out["sets"]]
    assert set(total) == {"loss_ce", "loss_mask", "loss_dice"}
    for k in total:
        torch.testing.assert_close(total[k], sum(p[k] for p in parts))
    torch.manual_seed(0)
    unit = M2FCriterion(4, MaskMatcher(2.0, 5.0, 5.0, 40), 1.0, 1.0, 1.0, num_points=40)(out, targets)
    for k, gain in (("loss_ce", 2.0), ("loss_mask", 5.0), ("loss_dice", 5.0)):
        torch.testing.assert_close(total[k], gain * unit[k])


def test_images_without_segments_learn_no_object_only():
    crit = M2FCriterion(4, num_points=40)
    out = _outputs()
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 32, 40)} for _ in range(2)]
    losses = crit(out, empty)
    assert float(losses["loss_mask"]) == float(losses["loss_dice"]) == 0.0 and float(losses["loss_ce"]) > 0


def test_the_loss_decreases():
    """Adam on the predictions themselves (the class logits, embeddings and features of 3 predictions), towards
    segments made of the features' own cells (a mask the features can draw)."""
    torch.manual_seed(0)
    out, targets = _outputs(d=16), _targets()
    for t in targets:
        t["masks"] = t["masks"][:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2)
    params = [out["features"]] + [t for s in out["sets"] for t in s.values()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=0.05)
    crit = M2FCriterion(4, num_points=200)
    totals = []
    for _ in range(60):
        loss = sum(crit(out, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(float(loss.detach()))
    assert totals[-1] < 0.5 * totals[0], totals[::10]  # measured: 0.41 (edges between cells stay blurred)
