"""The training engine: one trainer for every model (see :mod:`rtdet.engine.trainer`).

Nothing here runs on import; import the submodules or the names below.
"""

from rtdet.engine.checkpoint import LoadReport, atomic_save, load_checkpoint, load_pretrained
from rtdet.engine.ema import ModelEMA
from rtdet.engine.evaluate import make_evaluator
from rtdet.engine.hooks import EVENTS, Hook, default_hooks
from rtdet.engine.optim import LRSchedule, build_optimizer, param_groups
from rtdet.engine.resume import RESUME_SAFE, resume_config
from rtdet.engine.seed import seed_everything
from rtdet.engine.trainer import Trainer

__all__ = [
    "EVENTS",
    "Hook",
    "LRSchedule",
    "LoadReport",
    "RESUME_SAFE",
    "ModelEMA",
    "Trainer",
    "atomic_save",
    "build_optimizer",
    "default_hooks",
    "load_checkpoint",
    "load_pretrained",
    "make_evaluator",
    "param_groups",
    "resume_config",
    "seed_everything",
]
