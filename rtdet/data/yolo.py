"""YOLO txt data sets (Ultralytics-compatible ``data.yaml``): reader and writer.

``data.yaml`` keys: ``path`` (root; relative to the yaml's folder, default that
folder), ``train`` / ``val`` / ``test`` (each a folder of images, a ``.txt``
list of image paths, or a list of those, relative to the root) and ``names``
(a list, or a dict ``{index: name}``). The labels of ``.../images/x.jpg`` are in
``.../labels/x.txt``: one ``cls cx cy w h`` line per box, normalized to [0, 1].
A missing label file means an image without boxes. Polygon lines
(``cls x1 y1 x2 y2 ...``) are read as their bounding box.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from rtdet.data.dataset import DatasetBuilder, DetectionDataset, FileFinder, ImageError, is_image_file, probe_images
from rtdet.data.report import Report
from rtdet.errors import RtdetError

COORD_TOL = 1e-3  # normalized coordinates may overshoot [0, 1] by this much (rounding in other tools)


class DataFormatError(RtdetError, ValueError):
    """A data set description (yaml, json, folder layout) that cannot be used at all."""


def load_data_yaml(path: str | Path) -> dict:
    """The parsed ``data.yaml`` with ``root`` (Path) and ``names`` (list[str]) resolved."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DataFormatError(f"data file not found: {path}") from None
    except yaml.YAMLError as e:
        raise DataFormatError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict) or "names" not in cfg:
        raise DataFormatError(f"{path}: a YOLO data.yaml needs 'names' and 'train'/'val' keys")
    names = cfg["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise DataFormatError(f"{path}: 'names' keys must be 0..{len(names) - 1}, got {sorted(names)}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list):
        raise DataFormatError(f"{path}: 'names' must be a list or a mapping, got {names!r}")
    root = Path(cfg.get("path") or ".")
    if not root.is_absolute():
        root = path.parent / root
    cfg["names"], cfg["root"] = [str(n) for n in names], root
    return cfg


def split_images(cfg: dict, split: str, where: str = "data.yaml") -> list[Path]:
    """Image files of one split, sorted within each folder, in the order the yaml lists sources."""
    if split not in cfg or cfg[split] is None:
        raise DataFormatError(f"{where}: no '{split}' split (has: {', '.join(k for k in ('train', 'val', 'test') if cfg.get(k))})")
    sources = cfg[split] if isinstance(cfg[split], list) else [cfg[split]]
    files: list[Path] = []
    finder = FileFinder()
    for src in sources:
        p = Path(src) if Path(src).is_absolute() else cfg["root"] / src
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if is_image_file(f))
        elif p.suffix.lower() == ".txt" and p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line:
                    f = Path(line) if Path(line).is_absolute() else p.parent / line
                    files.append(finder.find(f) or f)  # x.JPG listed as x.jpg
        else:
            raise DataFormatError(f"{where}: '{split}' source {src} ({p}) is neither a folder nor a .txt list")
    return files


def label_path(image: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (last ``images`` folder of the path)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _parse_line(fields: list[str], nc: int) -> tuple[int, np.ndarray]:
    """One label line -> (class, normalized cxcywh [4]); raises ValueError with the reason."""
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise ValueError(f"expected 5 fields 'cls cx cy w h' (or a polygon), got {len(fields)}")
    try:
        values = [float(v) for v in fields]
    except ValueError:
        raise ValueError(f"non-numeric field in {' '.join(fields)!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError("non-finite number")
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < nc:
        raise ValueError(f"class index {fields[0]} out of range 0..{nc - 1}")
    if len(fields) == 5:
        coords = np.array(values[1:], np.float64)
        corners = np.array([coords[0] - coords[2] / 2, coords[1] - coords[3] / 2,
                            coords[0] + coords[2] / 2, coords[1] + coords[3] / 2])
        check = np.concatenate([coords[:2], corners])
        if coords[2] <= 0 or coords[3] <= 0:
            raise ValueError(f"zero or negative width/height ({fields[3]}, {fields[4]})")
    else:
        pts = np.array(values[1:], np.float64).reshape(-1, 2)
        corners = np.concatenate([pts.min(0), pts.max(0)])
        check = pts.reshape(-1)
        if corners[2] <= corners[0] or corners[3] <= corners[1]:
            raise ValueError("polygon with zero width or height")
    if check.min() < -COORD_TOL or check.max() > 1 + COORD_TOL:
        raise ValueError(f"normalized coordinate outside [0, 1]: {' '.join(fields[1:5])}")
    return int(cls), corners


def read_label_file(path: Path | None, nc: int, report: Report) -> tuple[np.ndarray, np.ndarray] | None:
    """Boxes (normalized xyxy [n,4] float64) and classes [n] of one label file (no boxes when ``path`` is
    None or absent); None if any line is bad."""
    if path is None or not path.is_file():
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    boxes, classes, ok = [], [], True
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        report.add(str(path), f"unreadable label file ({e})")
        return None
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            c, box = _parse_line(fields, nc)
        except ValueError as e:
            report.add(str(path), str(e), n)
            ok = False
            continue
        boxes.append(box)
        classes.append(c)
    if not ok:
        return None
    return np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)


def read_yolo(data_yaml: str | Path, split: str, decode: bool = True) -> DetectionDataset:
    """Read one split of a YOLO data set; bad images and label files are reported and skipped.

    An image's id (``ds.source_ids``) is its position in the split's list of
    files. Its label file is ``labels/<stem>.txt`` (``.TXT`` found too).
    ``decode=False`` reads image headers only (see :func:`probe_image`).
    """
    cfg = load_data_yaml(data_yaml)
    names = cfg["names"]
    report = Report(name=f"{data_yaml} [{split}]")
    builder = DatasetBuilder(names, report)
    files = split_images(cfg, split, str(data_yaml))
    finder = FileFinder()
    for i, (img, size) in enumerate(zip(files, probe_images(files, decode))):
        if isinstance(size, ImageError):
            report.add(str(img), str(size))
            report.skipped_images += 1
            continue
        h, w = size
        labels = read_label_file(finder.find(label_path(img)), len(names), report)
        if labels is None:
            report.skipped_images += 1
            continue
        boxes = np.clip(labels[0], 0.0, 1.0) * np.array([w, h, w, h], np.float64)
        builder.add(str(img), (h, w), i, boxes, labels[1])
    return builder.build()


def _fmt(value: float, size: int) -> str:
    """A normalized number with 6 decimals, or more when 6 would move the pixel coordinate by > 1e-5 px."""
    for d in range(6, 12):
        s = f"{value:.{d}f}"
        if abs(float(s) - value) * size <= 1e-5:
            return s
    return repr(float(value))


def label_lines(boxes: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> list[str]:
    """YOLO lines ``cls cx cy w h`` for absolute xyxy ``boxes`` [n,4] of an image of ``size = (h, w)``."""
    h, w = size
    out = []
    for (x1, y1, x2, y2), c in zip(np.asarray(boxes, np.float64), labels):
        vals = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
        out.append(f"{int(c)} " + " ".join(_fmt(v, s) for v, s in zip(vals, (w, h, w, h))))
    return out


def place_image(src: str, dst: Path, copy: bool = False) -> None:
    """Put image ``src`` at ``dst`` as a symlink (or a copy when linking fails or ``copy``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if not copy:
        try:
            os.symlink(os.path.abspath(src), dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def unique_stems(files: list[str]) -> dict[str, str]:
    """A distinct output stem per image file (``name``, ``name_1``, ...), in first-seen order."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for f in files:
        if f in out:
            continue
        stem, k = Path(f).stem, 0
        while (cand := stem if k == 0 else f"{stem}_{k}") in used:
            k += 1
        out[f] = cand
        used.add(cand)
    return out


def write_yolo(splits: dict[str, DetectionDataset], out_dir: str | Path, keep_crowd: bool = False,
               copy: bool = False) -> Path:
    """Write ``OUT/images/``, ``OUT/labels/<stem>.txt`` and ``OUT/data.yaml``; returns the yaml path.

    One split is written as ``train: images`` and ``val: images``; several splits
    get a list file each (``OUT/<split>.txt``). Crowd boxes and VOC difficult boxes
    are left out unless ``keep_crowd`` (then they are written as ordinary boxes): a
    YOLO label file has no flag that would keep them ignored.
    """
    out = Path(out_dir)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    first = next(iter(splits.values()))
    stems = unique_stems([ds.file(i) for ds in splits.values() for i in range(len(ds))])
    lists: dict[str, list[str]] = {}
    for split, ds in splits.items():
        if ds.names != first.names:
            raise DataFormatError(f"split '{split}' has other class names than the first split")
        lists[split] = []
        for i in range(len(ds)):
            f = ds.file(i)
            image = out / "images" / (stems[f] + Path(f).suffix)
            lists[split].append(f"./images/{image.name}")
            if not image.exists():
                place_image(f, image, copy)
            ann = ds.annotations(i)
            keep = np.ones(len(ann["labels"]), bool) if keep_crowd else ~(ann["iscrowd"] | ann["difficult"])
            lines = label_lines(ann["boxes"][keep], ann["labels"][keep], tuple(ds.sizes[i]))
            (out / "labels" / f"{stems[f]}.txt").write_text("".join(line + "\n" for line in lines))
    cfg: dict = {}
    if len(splits) == 1:
        cfg["train"] = cfg["val"] = "images"
    else:
        for split, files in lists.items():
            (out / f"{split}.txt").write_text("".join(f + "\n" for f in files))
            cfg[split] = f"{split}.txt"
        for want, alts in (("train", ("trainval",)), ("val", ("test", "trainval", "train"))):
            cfg.setdefault(want, next((cfg[a] for a in alts if a in cfg), next(iter(cfg.values()))))
    cfg["nc"], cfg["names"] = len(first.names), list(first.names)
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
