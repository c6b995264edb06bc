"""rtdet: train, evaluate and deploy real-time vision models (detect, classify, segment).

Importing rtdet has no side effects: nothing is downloaded, no file is written
and no global setting (print, logging, torch flags) is changed.

The public names below are loaded on first use (PEP 562 ``__getattr__``), so
``import rtdet`` and the ``rtdet`` command's start-up import neither torch nor
any subpackage; ``from rtdet import Detector`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "Config": "rtdet.config",
    "ConfigError": "rtdet.config",
    "load_config": "rtdet.config",
    "save_config": "rtdet.config",
    "Detector": "rtdet.api",
    "Model": "rtdet.api",
    "RtdetError": "rtdet.errors",
    "aligned_iou": "rtdet.boxes",
    "box_convert": "rtdet.boxes",
    "box_iou": "rtdet.boxes",
    "clip_boxes": "rtdet.boxes",
    "non_max_suppression": "rtdet.nms",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # static analysers and IDEs see ordinary imports
    from rtdet.api import Detector, Model
    from rtdet.boxes import aligned_iou, box_convert, box_iou, clip_boxes
    from rtdet.config import Config, ConfigError, load_config, save_config
    from rtdet.errors import RtdetError
    from rtdet.nms import non_max_suppression


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'rtdet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
