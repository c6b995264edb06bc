"""``rtdet data check``: read every split of a data set, decode every image, report.

The readers already record every label and layout problem and every image
that does not decode (the same checks run when training opens a data set);
this adds a decode of each image by the decoder training uses (OpenCV), which
catches a file that decoder cannot read or reads at another size. With
``decode=False`` (``--no-decode``) only headers are read: fast, but a truncated
file is not caught.
"""

from __future__ import annotations

from pathlib import Path

from rtdet.data.dataset import DetectionDataset, ImageError, read_image
from rtdet.data.sources import dataset_splits, open_dataset


def decode_all(ds: DetectionDataset) -> int:
    """Decode every image of ``ds``; problems go to ``ds.report``. Returns the number of bad images.

    Any data set with ``file(i)``, ``sizes`` [N, 2] (h, w) and ``report`` works (segmentation's too)."""
    bad = 0
    for i in range(len(ds)):
        try:
            img = read_image(ds.file(i))
        except ImageError:
            ds.report.add(ds.file(i), "cannot decode image (OpenCV, the decoder training uses)")
            bad += 1
            continue
        if tuple(img.shape[:2]) != tuple(int(v) for v in ds.sizes[i]):
            ds.report.add(ds.file(i), f"decoded size {img.shape[1]}x{img.shape[0]} differs from its header")
            bad += 1
    return bad


def check_data(spec: str | Path, images: str | Path | None = None, decode: bool = True,
               splits: list[str] | None = None) -> list[DetectionDataset]:
    """Open every split of ``spec`` (or the given ``splits``); each dataset's ``report`` holds what was found."""
    out = []
    for split in splits or dataset_splits(spec):
        ds = open_dataset(spec, split, images=images, decode=decode)
        if decode:
            decode_all(ds)
        out.append(ds)
    return out


def format_reports(datasets: list[DetectionDataset]) -> str:
    """The text ``rtdet data check`` prints: one block per split, then a verdict."""
    blocks = [ds.report.format(ds.names) for ds in datasets]
    n = sum(len(ds.report.problems) for ds in datasets)
    names = datasets[0].names if datasets else []
    head = f"classes: {len(names)} ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"
    verdict = "OK: no problems found" if n == 0 else f"FAILED: {n} problem(s) found"
    warned = sum(len(ds.report.warnings) for ds in datasets)
    verdict += f" ({warned} suspicious label(s) kept: see the warnings above)" if warned else ""
    return "\n".join([head, *blocks, verdict])


def is_classification(spec: str | Path) -> bool:
    """Whether ``spec`` has a classification layout (class folders, MNIST IDX files, CSV lists, sklearn-digits)."""
    from rtdet.data.classify import classification_layout
    from rtdet.data.yolo import DataFormatError

    try:
        classification_layout(spec)
    except DataFormatError:
        return False
    return True


def check_classification(spec: str | Path, splits: list[str] | None = None) -> list:
    """Open every split of a classification data set; readers decode each image file they list, and
    each dataset's ``report`` holds the unreadable files, bad labels and stray files found."""
    from rtdet.data.classify import classification_splits, open_classification

    return [open_classification(spec, split) for split in splits or classification_splits(spec)]


def is_segmentation(spec: str | Path) -> bool:
    """Whether ``spec`` has a segmentation layout (a data.yaml with mask folders, ADE20K, VOC SegmentationClass).

    A VOC tree that also holds ``Annotations/`` (boxes) stays detection data; ``--task segment``
    checks its masks.
    """
    from rtdet.data.segment import segmentation_layout, voc_years
    from rtdet.data.yolo import DataFormatError

    try:
        kind, path = segmentation_layout(spec)
    except DataFormatError:
        return False
    return kind != "voc" or not any((year / "Annotations").is_dir() for year in voc_years(path))


def check_segmentation(spec: str | Path, splits: list[str] | None = None, decode: bool = True) -> list:
    """Open every split of a segmentation data set (or the given ``splits``); readers check every mask
    against its image, and with ``decode`` every image is also decoded by OpenCV (:func:`decode_all`)."""
    from rtdet.data.segment import open_segmentation, segmentation_splits

    out = []
    for split in splits or segmentation_splits(spec):
        ds = open_segmentation(spec, split, decode=decode)
        if decode:
            decode_all(ds)
        out.append(ds)
    return out
