"""Resuming a run: the checkpoint's settings, and which of today's settings may differ from them.

``rtdet train --resume runs/x/weights/last.pt [flags]`` continues the run saved in the
checkpoint, in its own run folder (the folder above ``weights/``; ``results.csv`` gets
the new epochs' rows after the checkpoint's). The checkpoint's config is the base,
and every setting given explicitly (``cfg.given``: a flag, a key of the ``--config``
YAML, an override from Python) is compared with it:

- the same value: nothing to do, so the original command line plus ``--resume`` works;
- ``epochs``: a total larger than the epochs the checkpoint completed continues to that
  total. The learning-rate schedule is re-laid over the new total (see
  :class:`rtdet.engine.optim.LRSchedule`) and ``close_mosaic`` counts from the new end;
- a setting of :data:`RESUME_SAFE`: taken; these change where or how the run is
  executed and reported, never what it computes;
- ``out``: must name the run folder;
- anything else: refused with one :class:`~rtdet.config.ConfigError` naming every such
  setting, its value in the checkpoint and the value asked for. Resume cannot honour
  them (the optimizer state, the data order and best.pt belong to the old values);
  start a new run from the weights instead (``--weights last.pt``).

Resuming a run that already completed its epochs without asking for more is an
error too, so a resume never ends without training and without a word. A run that
early stopping ended resumes under the same rule (its count of validations without
improvement carries over): give a larger ``--patience`` to let it train on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rtdet.config import Config, ConfigError, apply_overrides, check_applies, config_from_checkpoint, flat_fields
from rtdet.engine.checkpoint import load_checkpoint
from rtdet.errors import ModelError

# Settings a resumed run takes from today's command line although the checkpoint holds
# another value, each with the reason that is safe. Everything else must match.
RESUME_SAFE: dict[str, str] = {
    "device": "where the run computes; the checkpoint is read on the CPU and moved there",
    "workers": "loader processes; batches are a function of (seed, epoch, index) whatever their number",
    "patience": "early stopping from now on; its count of validations without improvement carries over",
    "val_interval": "how often to validate; validation forks the RNG, so it never changes the training",
    "tensorboard": "an extra logger of the same numbers",
}


def requested_settings(cfg: Config) -> dict[str, Any]:
    """``{flat name: value}`` of the settings given explicitly in ``cfg`` (``cfg.given``: flags,
    YAML keys, Python overrides), ``resume`` itself left out."""
    names = {key.split(".")[-1] for key in cfg.given}
    fields = flat_fields()
    return {n: getattr(getattr(cfg, fields[n][0]), n) for n in sorted(names) if n in fields and n != "resume"}


def run_folder(path: str | Path, saved: Config) -> Path:
    """The run folder a checkpoint belongs to: the folder above ``weights/``, else its saved ``out``."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "weights" else Path(saved.train.out)


def resume_config(path: str | Path, requested: Mapping[str, Any] | None = None) -> Config:
    """The config to continue the run of checkpoint ``path`` with (see the module docstring).

    Args:
        path: a checkpoint written by :class:`rtdet.engine.trainer.Trainer` (``last.pt``).
        requested: ``{setting name: value}`` given explicitly for this resume (flat names
            as from :func:`requested_settings`, or ``"section.name"``); ``resume`` is ignored.

    Returns the checkpoint's config with ``train.resume = path``, ``train.out`` = the run
    folder, and the accepted requests applied. Raises :class:`ConfigError` (one line)
    when a request cannot be honoured or when there is no epoch left to train.
    """
    try:
        ckpt = load_checkpoint(path)
    except ModelError as e:  # unreadable: one line, not a traceback
        raise ModelError(f"--resume: {e}") from e
    if "config" not in ckpt:
        raise ModelError(f"--resume {path}: holds no config, not a checkpoint written by rtdet's trainer")
    saved, done = config_from_checkpoint(ckpt["config"]), int(ckpt.get("epoch", 0))
    folder = run_folder(path, saved)
    requested = {k.split(".")[-1]: v for k, v in (requested or {}).items() if k.split(".")[-1] != "resume"}
    wanted = apply_overrides(saved, requested)  # checks names and types
    fields = flat_fields()
    wanted.given = {f"{fields[n][0]}.{n}" for n in requested}
    check_applies(wanted)  # a setting of another task is refused as such, not as a change
    refused = []
    for name in requested:
        section = fields[name][0]
        old, new = getattr(getattr(saved, section), name), getattr(getattr(wanted, section), name)
        if name == "out":
            if Path(new).resolve() != folder.resolve():
                refused.append(f"out ({folder} is the run folder, {new} asked for)")
        elif old != new and name not in RESUME_SAFE and name != "epochs":
            refused.append(f"{name} ({old!r} in the checkpoint, {new!r} asked for)")
    if refused:
        raise ConfigError(f"--resume {path}: cannot change {'; '.join(refused)}. A resumed run may change epochs "
                          f"and {', '.join(RESUME_SAFE)}; start a new run from these weights with --weights {path}")
    epochs = wanted.train.epochs
    if epochs <= done:
        why = (f"epochs {epochs} asks for no more than the {done} the checkpoint completed" if "epochs" in requested
               else f"the run already finished its {done} epochs")
        raise ConfigError(f"--resume {path}: {why}; give --epochs N with N > {done} to train longer")
    wanted.train.resume, wanted.train.out = str(path), str(folder)
    return wanted
