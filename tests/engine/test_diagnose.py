"""The learned-nothing verdict and the causes it names, from results.csv rows."""

from __future__ import annotations

import math

from rtdet.engine.diagnose import learned_nothing, summary_lines, training_causes


def rows(losses, metrics):
    return [{"epoch": i + 1, "train/loss": loss, "AP": m} for i, (loss, m) in enumerate(zip(losses, metrics))]


def test_zero_after_warmup_is_nothing_learned():
    assert learned_nothing(rows([9, 8, 7], [0.0, 0.0, 0.0]), "AP", warmup_epochs=1.0)
    assert not learned_nothing(rows([9, 8, 7], [0.0, 0.0, 0.01]), "AP", warmup_epochs=1.0)
    # a score during the warm-up only does not count as learning ...
    assert learned_nothing(rows([9, 8, 7], [0.2, 0.0, 0.0]), "AP", warmup_epochs=1.0)
    # ... unless every validation was during the warm-up
    assert not learned_nothing(rows([9], [0.2]), "AP", warmup_epochs=3.0)


def test_no_validation_is_no_verdict():
    assert not learned_nothing(rows([9, 8], [math.nan, math.nan]), "AP", warmup_epochs=0.0)
    assert not learned_nothing([], "AP", warmup_epochs=0.0)


def test_a_rising_loss_points_at_a_too_high_lr():
    causes = training_causes(rows([9, 5, 12], [0, 0, 0]), steps=500, warmup_steps=50, lr=0.1)
    assert len(causes) == 1 and "too high" in causes[0] and "--lr 0.01" in causes[0]


def test_a_flat_loss_points_at_a_too_low_lr():
    causes = training_causes(rows([9, 8.9, 8.8], [0, 0, 0]), steps=500, warmup_steps=50, lr=1e-7)
    assert len(causes) == 1 and "too low" in causes[0]


def test_too_few_steps_is_named():
    assert "all of them warm-up" in training_causes(rows([9, 5], [0, 0]), steps=20, warmup_steps=30, lr=0.002)[0]
    assert "only 60 optimizer steps" in training_causes(rows([9, 5], [0, 0]), steps=60, warmup_steps=30, lr=0.002)[0]
    assert training_causes(rows([9, 5], [0, 0]), steps=600, warmup_steps=30, lr=0.002) == []


def test_summary_lines_say_so_even_without_a_cause():
    assert summary_lines("AP", [])[1] == "  no likely cause found in the losses or the data"
    assert summary_lines("top1", ["x"]) == [
        "warning: validation top1 stayed at 0 after the warm-up: the model learned nothing usable",
        "  likely cause: x"]
