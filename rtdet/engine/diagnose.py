"""Did the run learn anything, and if not, why not: read from its own ``results.csv``.

A run that ends with its validation metric at zero after the warm-up has learned
nothing a user can use; saying so, with the causes that the run's own numbers
point to, beats a silent table of zeros. The engine judges what it sees (the
losses, the learning rate, the number of optimizer steps); the task adds what
its data says (:attr:`rtdet.tasks.base.Task.diagnose`, e.g. no usable boxes).

Example:
    >>> rows = [{"epoch": 1, "train/loss": 9.0, "AP": 0.0}, {"epoch": 2, "train/loss": 8.9, "AP": 0.0}]
    >>> learned_nothing(rows, "AP", warmup_epochs=0.5)
    True
"""

from __future__ import annotations

import math
from typing import Any

ZERO = 1e-4  # a metric at or below this (mAP, accuracy as a fraction) counts as nothing learned
FLAT = 0.95  # a last-epoch training loss above this fraction of the first epoch's did not fall


def learned_nothing(rows: list[dict[str, float]], metric: str, warmup_epochs: float, chance: float = 0.0) -> bool:
    """Whether every validation after the warm-up scored ``metric`` <= ``chance`` + :data:`ZERO`
    (``chance``: what guessing scores, e.g. the majority class's share for top-1 accuracy; 0 for mAP).

    Validations during the warm-up do not count (nothing is expected yet); a run
    validated only during its warm-up is judged on those. False without any validation.
    """
    scored = [r for r in rows if math.isfinite(r.get(metric, math.nan))]
    after = [r for r in scored if r["epoch"] > warmup_epochs] or scored
    return bool(after) and max(r[metric] for r in after) <= chance + ZERO


def training_causes(rows: list[dict[str, float]], steps: int, warmup_steps: int, lr: float) -> list[str]:
    """The likely causes the losses and the schedule show: each a sentence a user can act on.

    Args:
        rows: ``results.csv`` rows (``train/loss`` per epoch).
        steps: optimizer steps taken; ``warmup_steps``: of them, warm-up.
        lr: the initial learning rate (after the recipe).
    """
    causes = []
    losses = [r["train/loss"] for r in rows if math.isfinite(r.get("train/loss", math.nan))]
    if steps <= warmup_steps:
        causes.append(f"only {steps} optimizer steps, all of them warm-up ({warmup_steps}): train longer "
                      f"(--epochs) or with a smaller --batch")
    elif steps < 100:
        causes.append(f"only {steps} optimizer steps: train longer (--epochs) or with a smaller --batch")
    if len(losses) >= 2:
        first, last, low = losses[0], losses[-1], min(losses)
        if last > 1.5 * low and last > first:
            causes.append(f"the training loss rose from {low:.4g} to {last:.4g}: the learning rate ({lr:g}) is "
                          f"likely too high (try --lr {lr / 10:g})")
        elif last > FLAT * first:
            causes.append(f"the training loss barely fell ({first:.4g} -> {last:.4g}): the learning rate ({lr:g}) "
                          f"is likely too low for this run, or the run too short")
    return causes


def summary_lines(metric: str, causes: list[str], chance: float = 0.0) -> list[str]:
    """The final summary's warning: one line, then one line per likely cause."""
    level = "0" if chance <= 0 else f"chance level ({chance:.4g}, always guessing the most frequent class)"
    lines = [f"warning: validation {metric} stayed at {level} after the warm-up: the model learned nothing usable"]
    lines += [f"  likely cause: {c}" for c in causes] or ["  no likely cause found in the losses or the data"]
    return lines


def diagnose_run(rows: list[dict[str, float]], metric: str, cfg: Any, steps: int, warmup_steps: int,
                 data_causes: list[str], chance: float = 0.0) -> list[str]:
    """Warning lines for the final summary, or ``[]`` when the run learned something."""
    if not learned_nothing(rows, metric, cfg.optim.warmup_epochs, chance):
        return []
    return summary_lines(metric, data_causes + training_causes(rows, steps, warmup_steps, cfg.optim.lr), chance)
