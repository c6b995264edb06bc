"""Data sets, augmentation and loaders: every detector reads data through here.

Entry points:
    open_dataset(spec, split)      -> DetectionDataset  (YOLO data.yaml, COCO json, VOC tree, "digits")
    build_loader(ds, cfg, train)   -> DataLoader of (images uint8 [B,3,H,W] RGB, list of target dicts)
    to_coco_gt(ds)                 -> COCO ground-truth dict in original-image pixels (rtdet's ids: image
                                      position, label; original_ids=True: the data set's own ids)
    detections_to_coco_results(preds, ds) -> COCO results in the data set's own ids (what val --save-json writes)
    pad_targets(targets)           -> dense boxes [B,M,4] / labels [B,M] (-1 pad) / mask [B,M] for losses

A trainer's start-up:
    >>> train_ds = open_dataset(cfg.data.data, "train", root="datasets/digits")  # doctest: +SKIP
    >>> print(train_ds.report.summary())      # images, boxes, and how many bad samples were skipped
    >>> loader = build_loader(train_ds, cfg.data, train=True, epochs=cfg.train.epochs, seed=cfg.train.seed)
    >>> for epoch in range(cfg.train.epochs):
    ...     loader.set_epoch(epoch)            # seeds augmentation and shuffling, handles close_mosaic
    ...     for images, targets in loader: ...

Evaluation maps predictions back with each target's ``letterbox = (scale, pad_x, pad_y)``:
``unletterbox(boxes, target["letterbox"])`` computes ``x_orig = (x - pad_x) / scale``; it scores them against ``to_coco_gt(val_ds)``, whose
image ids are the targets' ``image_id``.
"""

from rtdet.data.coco import detections_to_coco_results, read_coco, to_coco_gt, write_coco
from rtdet.data.dataset import DetectionDataset, ImageError, read_image
from rtdet.data.loader import build_loader, collate, pad_targets
from rtdet.data.report import Problem, Report
from rtdet.data.sources import dataset_splits, open_dataset
from rtdet.data.transforms import unletterbox
from rtdet.data.voc import read_voc
from rtdet.data.yolo import DataFormatError, read_yolo, write_yolo

__all__ = [
    "DataFormatError", "DetectionDataset", "ImageError", "Problem", "Report", "build_loader", "collate",
    "dataset_splits", "detections_to_coco_results", "open_dataset", "pad_targets", "read_coco", "read_image", "read_voc", "read_yolo",
    "to_coco_gt", "unletterbox", "write_coco", "write_yolo",
]
