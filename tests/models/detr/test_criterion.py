"""The DETR set loss: perfect predictions, normalization, auxiliary and denoising sets, both class losses,
one-to-many matching of the auxiliary sets."""

import pytest
import torch

from rtdet.models.detr.criterion import DETRCriterion
from rtdet.models.detr.matcher import HungarianMatcher


def _targets():
    return [{"boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2]]), "labels": torch.tensor([1, 0])},
            {"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]]), "labels": torch.tensor([2])}]


def _perfect(targets, q=8, k=3):
    """Predictions whose queries 2, 5 (image 0) and 4 (image 1) are the targets, sure of their class."""
    torch.manual_seed(0)
    boxes = torch.cat([torch.rand(2, q, 2) * 0.5 + 0.25, torch.full((2, q, 2), 0.05)], -1)
    logits = torch.full((2, q, k), -8.0)
    for i, slots in enumerate(([2, 5], [4])):
        for s, box, label in zip(slots, targets[i]["boxes"], targets[i]["labels"]):
            boxes[i, s], logits[i, s, label] = box, 8.0
    return {"logits": logits, "boxes": boxes}


@pytest.mark.parametrize("class_loss", ["varifocal", "focal"])
def test_a_perfect_prediction_has_no_box_loss_and_little_class_loss(class_loss):
    targets = _targets()
    losses = DETRCriterion(3, class_loss=class_loss)(_perfect(targets), targets)
    assert set(losses) == {"cls", "l1", "giou"}
    assert losses["l1"] < 1e-6 and losses["giou"] < 1e-6
    assert 0 <= losses["cls"] < 0.05


def test_a_worse_prediction_costs_more():
    targets = _targets()
    good, bad = _perfect(targets), _perfect(targets)
    bad["boxes"] = bad["boxes"] + 0.05
    bad["logits"] = torch.zeros_like(bad["logits"])
    crit = DETRCriterion(3)
    lg, lb = crit(good, targets), crit(bad, targets)
    assert all(lb[k] > lg[k] for k in lg)


def test_losses_are_normalized_by_the_number_of_boxes():
    torch.manual_seed(0)
    targets = _targets()
    out = {"logits": torch.randn(2, 8, 3), "boxes": torch.rand(2, 8, 4) * 0.5 + 0.2}
    twice = {k: torch.cat([v, v]) for k, v in out.items()}
    crit = DETRCriterion(3)
    one, two = crit(out, targets), crit(twice, targets + targets)
    for k in one:
        torch.testing.assert_close(one[k], two[k])


def test_auxiliary_encoder_and_denoising_sets_add_up():
    torch.manual_seed(0)
    targets = _targets()
    out = {"logits": torch.randn(2, 8, 3), "boxes": torch.rand(2, 8, 4) * 0.5 + 0.2}
    crit = DETRCriterion(3, class_gain=2.0)
    base = crit(out, targets)
    three = crit({**out, "aux": [dict(out)], "enc": dict(out)}, targets)
    for k in base:
        torch.testing.assert_close(three[k], 3 * base[k])
    # denoising: queries 0, 1 of image 0 and 0 of image 1 reconstruct their targets exactly
    dn = {"logits": torch.zeros(2, 4, 3), "boxes": torch.full((2, 4, 4), 0.1)}
    dn["boxes"][0, :2], dn["boxes"][1, 0] = targets[0]["boxes"], targets[1]["boxes"][0]
    positives = [(torch.tensor([0, 1]), torch.tensor([0, 1])), (torch.tensor([0]), torch.tensor([0]))]
    with_dn = crit({**out, "dn": [dn], "dn_positives": positives, "dn_groups": 1}, targets)
    torch.testing.assert_close(with_dn["l1"], base["l1"])
    assert with_dn["cls"] > base["cls"]  # the denoising set's own class loss (its logits are not sure)


def test_gradients_reach_logits_and_boxes():
    targets = _targets()
    logits = torch.randn(2, 6, 3, requires_grad=True)
    boxes = (torch.rand(2, 6, 4) * 0.5 + 0.2).requires_grad_()
    sum(DETRCriterion(3)({"logits": logits, "boxes": boxes}, targets).values()).backward()
    assert logits.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_empty_targets_only_teach_no_object():
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    losses = DETRCriterion(3)({"logits": torch.zeros(2, 5, 3), "boxes": torch.rand(2, 5, 4)}, empty)
    assert losses["l1"] == 0 and losses["giou"] == 0 and losses["cls"] > 0


def test_unknown_class_loss_is_refused():
    with pytest.raises(ValueError, match="unknown DETR class loss"):
        DETRCriterion(3, class_loss="bce")


class _SpyMatcher(HungarianMatcher):
    """Records the ``k`` of every matching, in call order."""

    def __init__(self):
        super().__init__()
        self.ks = []

    def __call__(self, logits, boxes, targets, k=1):
        self.ks.append(k)
        return super().__call__(logits, boxes, targets, k=k)


def test_one_to_many_matches_the_auxiliary_sets_and_keeps_the_last_layer_one_to_one():
    torch.manual_seed(0)
    targets = _targets()
    out = {"logits": torch.randn(2, 8, 3), "boxes": torch.rand(2, 8, 4) * 0.5 + 0.2}
    spy = _SpyMatcher()
    DETRCriterion(3, spy, o2m_k=4)({**out, "aux": [dict(out), dict(out)], "enc": dict(out)}, targets)
    assert spy.ks == [1, 4, 4, 4]
    for k in (0, 1, 4):  # the last layer alone: the same loss at any k
        losses = DETRCriterion(3, o2m_k=k)(out, targets)
        for name, v in DETRCriterion(3)(out, targets).items():
            torch.testing.assert_close(losses[name], v)
    for k in (0, 1):  # off: one to one everywhere
        spy = _SpyMatcher()
        DETRCriterion(3, spy, o2m_k=k)({**out, "aux": [dict(out)], "enc": dict(out)}, targets)
        assert spy.ks == [1, 1, 1]
    with pytest.raises(ValueError, match="o2m_k"):
        DETRCriterion(3, o2m_k=-1)


def test_one_to_many_rewards_duplicates_in_the_auxiliary_sets():
    # each target predicted exactly by two queries: one to one must call one of them "no object"
    targets = _targets()
    aux = _perfect(targets)
    for i, slots in enumerate(([0, 7], [6])):
        for s, box, label in zip(slots, targets[i]["boxes"], targets[i]["labels"]):
            aux["boxes"][i, s], aux["logits"][i, s, label] = box, 8.0
    main = _perfect(targets)
    o2o, o2m = (DETRCriterion(3, o2m_k=k)({**main, "aux": [aux]}, targets) for k in (0, 2))
    assert o2m["cls"] < 0.1 < o2o["cls"]
    assert o2m["l1"] < 1e-6 and o2m["giou"] < 1e-6


def test_a_one_to_many_set_is_divided_by_the_pairs_made():
    # 3 queries all off by 0.1 in x from the one target: each pair's L1 is 0.1, so the mean over the pairs
    # made (3, fewer than k = 5) is 0.1 in every set, one to one or one to many
    targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "labels": torch.tensor([0])}]
    out = {"logits": torch.zeros(1, 3, 2), "boxes": torch.tensor([[[0.6, 0.5, 0.2, 0.2]] * 3])}
    crit = DETRCriterion(2, l1_gain=1.0, o2m_k=5)
    torch.testing.assert_close(crit(out, targets)["l1"], torch.tensor(0.1))
    torch.testing.assert_close(crit({**out, "aux": [dict(out)]}, targets)["l1"], torch.tensor(0.2))


def test_one_to_many_losses_are_finite_normalized_and_reach_k_queries_per_target():
    torch.manual_seed(0)
    targets = _targets()
    logits = torch.randn(2, 12, 3, requires_grad=True)
    boxes = (torch.rand(2, 12, 4) * 0.5 + 0.2).requires_grad_()
    aux_boxes = (torch.rand(2, 12, 4) * 0.5 + 0.2).requires_grad_()
    out = {"logits": logits, "boxes": boxes, "aux": [{"logits": logits * 1.0, "boxes": aux_boxes}]}
    crit = DETRCriterion(3, o2m_k=3)
    losses = crit(out, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # box losses reach exactly the matched queries: 3 per target in the one-to-many set, 1 in the last layer
    assert (aux_boxes.grad.abs().sum(-1) > 0).sum(1).tolist() == [6, 3]
    assert (boxes.grad.abs().sum(-1) > 0).sum(1).tolist() == [2, 1]
    twice = {k: torch.cat([v, v]).detach() for k, v in out.items() if k != "aux"}
    twice["aux"] = [{k: torch.cat([v, v]).detach() for k, v in out["aux"][0].items()}]
    for k, v in crit(twice, targets + targets).items():
        torch.testing.assert_close(v, losses[k].detach())
