"""Data sets, augmentation and loaders: every detector reads data through here.

Entry points:
    open_dataset(spec, split)      -> DetectionDataset  (YOLO yaml, COCO json, VOC tree, "digits")
    build_loader(ds, cfg, train)   -> DataLoader of (images uint8 [B,3,H,W], targets)
    to_coco_gt(ds)                 -> COCO ground-truth dict in original pixels
    pad_targets(targets)           -> dense boxes / labels / mask for losses
"""

from rtdet.data.coco import read_coco, to_coco_gt, write_coco
from rtdet.data.dataset import DetectionDataset, ImageError, read_image
from rtdet.data.loader import build_loader, collate, pad_targets
from rtdet.data.report import Problem, Report
from rtdet.data.sources import dataset_splits, open_dataset
from rtdet.data.voc import read_voc
from rtdet.data.yolo import DataFormatError, read_yolo, write_yolo

__all__ = [
    "DataFormatError", "DetectionDataset", "ImageError", "Problem", "Report", "build_loader", "collate",
    "dataset_splits", "open_dataset", "pad_targets", "read_coco", "read_image", "read_voc", "read_yolo",
    "to_coco_gt", "write_coco", "write_yolo",
]
