"""rtdet: train, evaluate and deploy real-time vision models (detect, classify).

Importing rtdet has no side effects: nothing is downloaded, no file is written
and no global setting (print, logging, torch flags) is changed.
"""

from rtdet.api import Detector, Model
from rtdet.boxes import aligned_iou, box_convert, box_iou, clip_boxes
from rtdet.config import Config, ConfigError, load_config, save_config
from rtdet.nms import non_max_suppression

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Detector",
    "Model",
    "ConfigError",
    "aligned_iou",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "load_config",
    "non_max_suppression",
    "save_config",
]
