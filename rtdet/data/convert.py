"""``rtdet data convert``: YOLO / COCO / VOC in, YOLO or COCO out.

Every split of the source is read with the same readers training uses (bad
samples are reported and left out), then written with the YOLO or COCO writer.

Example:
    >>> convert("coco", "yolo", "out/", ann="instances_val2017.json", images="val2017/")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from rtdet.data.coco import read_coco, write_coco
from rtdet.data.dataset import DetectionDataset
from rtdet.data.voc import read_voc, voc_splits
from rtdet.data.yolo import DataFormatError, load_data_yaml, read_yolo, write_yolo


def read_source(fmt: str, source: str | Path | None = None, ann: str | Path | None = None,
                images: str | Path | None = None) -> dict[str, DetectionDataset]:
    """Every split of a source data set, by split name."""
    if fmt == "coco":
        ann = ann or source
        if not ann:
            raise DataFormatError("--from coco needs --ann ANN.json (and --images DIR unless next to it)")
        return {Path(ann).stem: read_coco(ann, images)}
    if not source:
        raise DataFormatError(f"--from {fmt} needs a source (data.yaml or VOC folder)")
    if fmt == "yolo":
        cfg = load_data_yaml(source)
        return {s: read_yolo(source, s) for s in ("train", "val", "test") if cfg.get(s)}
    if fmt == "voc":
        return {s: read_voc(source, None if s == "all" else s) for s in voc_splits(source)}
    raise DataFormatError(f"unknown source format {fmt!r}; expected yolo, coco or voc")


def convert(src_fmt: str, dst_fmt: str, out: str | Path, source: str | Path | None = None,
            ann: str | Path | None = None, images: str | Path | None = None, keep_crowd: bool = False,
            copy: bool = False) -> tuple[list[Path], dict[str, DetectionDataset]]:
    """Convert a data set; returns the files written (data.yaml or the jsons) and the splits read."""
    splits = read_source(src_fmt, source, ann, images)
    if dst_fmt == "yolo":
        return [write_yolo(splits, out, keep_crowd=keep_crowd, copy=copy)], splits
    if dst_fmt == "coco":
        return write_coco(splits, out, copy=copy), splits
    raise DataFormatError(f"unknown target format {dst_fmt!r}; expected yolo or coco")
