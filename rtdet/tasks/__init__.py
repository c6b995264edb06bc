"""Tasks: what is specific to detect, classify and segment, behind one contract.

A task module (:mod:`rtdet.tasks.detect`, :mod:`rtdet.tasks.classify`, :mod:`rtdet.tasks.segment`) provides a
:class:`rtdet.tasks.base.Task`: its data readers and loaders, how a model's
predictions become records in original pixels, its metrics and final report,
its decoding of exported outputs, its drawing and its json records. The engine
(trainer, hooks, checkpoints, EMA, DDP) and the workflows in
:mod:`rtdet.workflows` know a task only through this contract.

Example:
    >>> get_task("classify").metric
    'top1'
"""

from __future__ import annotations

import importlib

from rtdet.errors import ModelError
from rtdet.registry import TASKS

_MODULES = {"detect": "rtdet.tasks.detect", "classify": "rtdet.tasks.classify", "segment": "rtdet.tasks.segment"}


def get_task(name: str):  # -> Task (imported lazily: the task modules import torch)
    """The :class:`~rtdet.tasks.base.Task` named ``name``; raises ModelError for an unknown task."""
    if name not in TASKS:
        raise ModelError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return importlib.import_module(_MODULES[name]).TASK


def task_for(cfg) -> str:  # cfg: rtdet.config.Config
    """The task of a run: ``cfg.model.task`` when given, else the model's own."""
    from rtdet.registry import model_spec

    return cfg.model.task or model_spec(cfg.model.model).task
