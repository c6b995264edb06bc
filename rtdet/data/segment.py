"""Semantic segmentation data: images and class-index masks, paired by file stem.

Every reader returns a :class:`SegmentationDataset`: ``ds.load_image(i)`` uint8 [H, W, 3]
RGB, ``ds.load_mask(i)`` [H, W] class indices ``0..K-1`` with unlabelled pixels set to
``ds.ignore_index`` (255 unless the reader is told otherwise), and ``ds[i] -> (image uint8
[3, H, W] tensor, {"mask": int64 [H, W], "image_id": i, "orig_size": (H, W), "file": str})``.

Opening a split decodes every mask once (with Pillow, so a palette PNG gives its palette
indices, not its colours) and checks it against its image. What is found goes to
``ds.report`` (:class:`SegmentationReport`): images, and images and pixels per class. A
pair with a problem is left out and counted (``report.skipped_images``); reading never
stops at one. Problems, each naming its file: an image without a mask, a mask without an
image, an image or mask that does not decode, image and mask sizes that differ, mask values
that are neither a class nor unlabelled (which values, how many pixels), a colour mask
where class indices are expected (a 3-channel mask whose channels are equal is read as
grey; one with colours is a problem). Reading a mask file and mapping its stored values to
classes is :mod:`rtdet.data.masks`.

Layouts (:func:`segmentation_layout`, :func:`open_segmentation`):

1. ADE20K (``ADEChallengeData2016/``): ``images/{training,validation}/*.jpg`` and
   ``annotations/{training,validation}/*.png``; split ``train`` is ``training``, ``val`` is
   ``validation``. 150 classes; value 0 ("other") is unlabelled and value k is class k-1
   (mmsegmentation's ``reduce_zero_label``; 255 stays unlabelled).
2. Pascal VOC: a ``VOC20xx/`` folder, or a ``VOCdevkit/`` holding them, with
   ``SegmentationClass/*.png`` (palette PNGs), ``JPEGImages/`` and
   ``ImageSets/Segmentation/<split>.txt``. 21 classes, background first; 255 (object
   boundaries) is unlabelled.
3. A ``data.yaml`` (or a folder holding one) naming mask folders::

       path: ../shared/data/camvid  # root of the paths below (relative to the yaml; default its folder)
       train: images/train          # a split's image folder (searched recursively)
       train_masks: masks/train     # its masks: x.png pairs with the image x.* at the same
       val: images/val              #   relative path (the file stem in flat folders)
       val_masks: masks/val
       names: [sky, building, ...]  # class k is mask value k (a list, or {index: name})
       ignore_index: 11             # mask value(s) of unlabelled pixels: an int or a list (default 255)
       reduce_zero_label: false     # true: 0 is unlabelled and value k is class k-1 (ADE20K's coding)

Whatever value the files use for unlabelled pixels, the dataset hands out ``ignore_index``.
Masks are uint8 when ``ignore_index`` and the classes fit in 0..255, else uint16 (OpenCV
warps both; ``ignore_index`` must lie in 0..65535 and not be a class).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rtdet.data.dataset import FileFinder, IMAGE_SUFFIXES, ImageError, is_image_file, probe_images, read_image
from rtdet.data.masks import MAX_MASK_VALUE, LabelMapping, MaskError, mask_counts, read_mask, value_table
from rtdet.data.report import Report
from rtdet.data.voc import VOC_CLASSES
from rtdet.data.yolo import DataFormatError, load_data_yaml

SPLITS = ("train", "val", "test")
ADE20K_SPLITS = {"train": "training", "val": "validation"}
ADE20K_CLASSES = [  # mmsegmentation's ADE20KDataset order (its 'bed ' without the trailing space)
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier",
    "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
]
VOC_SEG_CLASSES = ["background", *VOC_CLASSES]


@dataclass
class SegmentationReport(Report):
    """:class:`Report` of a segmentation split: ``per_class`` counts the images holding each class,
    ``pixels_per_class`` its pixels; ``boxes`` stays 0."""

    pixels_per_class: Counter = field(default_factory=Counter)
    ignored_pixels: int = 0  # unlabelled pixels of the kept masks
    masks_without_image: int = 0
    per_class_unit = "images"
    per_class_score = "IoU"

    @property
    def labelled_pixels(self) -> int:
        return sum(self.pixels_per_class.values())

    def summary(self) -> str:
        """One line for a training log: kept, skipped, problems."""
        total = self.labelled_pixels + self.ignored_pixels
        s = (f"{self.name}: {self.images} images, {len(self.per_class)} classes present, "
             f"{self.ignored_pixels / max(total, 1):.1%} of pixels unlabelled")
        if self.problems:
            s += f"; skipped {self.skipped_images} bad images ({len(self.problems)} problems, run `rtdet data check`)"
        return s

    def totals(self) -> str:
        return (f"images: {self.images}  labelled pixels: {self.labelled_pixels}  ignored pixels: "
                f"{self.ignored_pixels}  skipped images: {self.skipped_images}  masks without an image: "
                f"{self.masks_without_image}")

    def class_lines(self, names: list[str] | None = None) -> list[str]:
        """One line per class: images holding it, its pixels and their share of the labelled pixels."""
        if not self.per_class and not names:
            return []
        n = max(len(names or []), max(self.per_class, default=-1) + 1)
        total = max(self.labelled_pixels, 1)
        lines = [f"  {'per class':<27} {'images':>7} {'pixels':>12} {'share':>7}"]
        for c in range(n):
            label = names[c] if names and c < len(names) else str(c)
            px = self.pixels_per_class.get(c, 0)
            lines.append(f"    {c:>4} {label:<20} {self.per_class.get(c, 0):>7} {px:>12} {px / total:7.2%}")
        return lines


class SegmentationDataset(torch.utils.data.Dataset):
    """Images and their class masks; ``ds[i] -> (image uint8 [3,H,W], {"mask", "image_id", "orig_size", "file"})``.

    Attributes:
        names: class names, index = class.
        mapping: how stored mask values become classes (``mapping.ignore_index``: unlabelled).
        sizes: int64 [N, 2], ``(h, w)`` of each image (and of its mask).
        report: counts and problems found while reading (bad pairs are not in the set).
        source: where the data came from.
    """

    def __init__(self, images: list[str], masks: list[str], sizes: np.ndarray, names: list[str],
                 mapping: LabelMapping, report: SegmentationReport, source: str):
        if len(images) != len(masks) or len(names) != mapping.num_classes:
            raise ValueError(f"{source}: {len(images)} images, {len(masks)} masks, {len(names)} names for "
                             f"{mapping.num_classes} classes")
        # one numpy byte-string array, not a list of str: see rtdet.data.dataset
        self.files = np.array([os.fsencode(f) for f in images], np.bytes_) if images else np.zeros(0, "S1")
        self.mask_files = np.array([os.fsencode(f) for f in masks], np.bytes_) if masks else np.zeros(0, "S1")
        self.sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
        self.names, self.mapping, self.report, self.source = list(names), mapping, report, str(source)

    @property
    def ignore_index(self) -> int:
        return self.mapping.ignore_index

    def __len__(self) -> int:
        return len(self.files)

    def file(self, i: int) -> str:
        return os.fsdecode(self.files[i])

    def mask_file(self, i: int) -> str:
        return os.fsdecode(self.mask_files[i])

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 [H, W, 3] RGB; raises ImageError naming the file."""
        return read_image(self.file(i))

    def load_mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as [H, W] class indices (``mapping.dtype``), unlabelled pixels = ``ignore_index``.

        Raises MaskError naming the file if it no longer holds what was checked when the split was read.
        """
        raw = read_mask(self.mask_file(i))
        if raw.dtype != np.uint8 and (raw.min() < 0 or raw.max() > MAX_MASK_VALUE):
            raise MaskError(f"{self.mask_file(i)}: mask values outside 0..{MAX_MASK_VALUE}")
        out = value_table(self.mapping, 256 if raw.dtype == np.uint8 else MAX_MASK_VALUE + 1)[raw]
        if out.min(initial=0) < 0:
            raise MaskError(f"{self.mask_file(i)}: {mask_counts(raw, self.mapping)[2]}")
        return out.astype(self.mapping.dtype)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, mask = self.load_image(i), self.load_mask(i)
        target = {"mask": torch.from_numpy(mask.astype(np.int64)), "image_id": int(i),
                  "orig_size": tuple(int(v) for v in self.sizes[i]), "file": self.file(i)}
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), target


# -- pairing and checking -------------------------------------------------------------------------
def _by_key(files: list[Path], root: Path) -> dict[str, list[Path]]:
    """Files grouped by their path relative to ``root`` without suffix (the stem, in a flat folder)."""
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(f.relative_to(root).with_suffix("").as_posix(), []).append(f)
    return out


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and is_image_file(f))


def pair_by_stem(image_dir: Path, mask_dir: Path, report: SegmentationReport) -> list[tuple[Path, Path]]:
    """``(image, mask)`` pairs of two folders, matched by relative path without suffix.

    An image without a mask, a mask without an image and a stem shared by several files
    (``x.jpg`` and ``x.png``) are problems; the images concerned are counted as skipped.
    """
    images, masks = _by_key(_image_files(image_dir), image_dir), _by_key(_image_files(mask_dir), mask_dir)
    pairs = []
    for key, imgs in images.items():
        found = masks.get(key, [])
        if len(imgs) > 1 or len(found) > 1:
            both = [str(f) for f in (*imgs, *found)]
            report.add(both[0], f"several files share the stem '{key}' ({', '.join(both)}): cannot pair them")
        elif not found:
            report.add(str(imgs[0]), f"image without a mask (expected {mask_dir / key}.png)")
        else:
            pairs.append((imgs[0], found[0]))
            continue
        report.skipped_images += len(imgs)
    for key, found in masks.items():
        if key not in images:
            report.add(str(found[0]), f"mask without an image (expected {image_dir / key}.jpg or another image suffix)")
            report.masks_without_image += len(found)
    return pairs


def _inspect(mask: Path, size: tuple[int, int] | ImageError, image: Path, mapping: LabelMapping
             ) -> tuple[np.ndarray, int] | tuple[str, str]:
    """A pair's ``(pixels per class, unlabelled pixels)``, or ``(file, problem)``."""
    if isinstance(size, ImageError):
        return str(image), f"{size} (its mask: {mask.name})"
    try:
        raw = read_mask(mask)
    except MaskError as e:
        return str(mask), str(e).removeprefix(f"{mask}: ")
    if raw.shape != tuple(size):
        return str(mask), f"mask is {raw.shape[1]}x{raw.shape[0]}, its image {image.name} is {size[1]}x{size[0]}"
    per_class, ignored, problem = mask_counts(raw, mapping)
    return (str(mask), problem) if problem else (per_class, ignored)


def build_segmentation(pairs: list[tuple[Path, Path]], names: list[str], mapping: LabelMapping,
                       report: SegmentationReport, source: str, decode: bool = True) -> SegmentationDataset:
    """Check every ``(image, mask)`` pair and keep the good ones; counts and problems go to ``report``.

    ``decode=False`` reads image headers only (masks are always decoded: their values are checked).
    """
    sizes = probe_images([img for img, _ in pairs], decode)

    def one(k: int) -> tuple:
        return _inspect(pairs[k][1], sizes[k], pairs[k][0], mapping)

    if len(pairs) < 16:
        results = [one(k) for k in range(len(pairs))]
    else:
        with ThreadPoolExecutor(8) as pool:  # Pillow's decoders release the GIL
            results = list(pool.map(one, range(len(pairs)), chunksize=16))
    kept: list[int] = []
    for k, res in enumerate(results):
        if isinstance(res[0], str):
            report.add(res[0], res[1])
            report.skipped_images += 1
            continue
        per_class, ignored = res
        kept.append(k)
        present = np.flatnonzero(per_class)
        report.per_class.update(present.tolist())
        report.pixels_per_class.update(dict(zip(present.tolist(), per_class[present].tolist())))
        report.ignored_pixels += ignored
    report.images = len(kept)
    return SegmentationDataset([str(pairs[k][0]) for k in kept], [str(pairs[k][1]) for k in kept],
                               np.array([sizes[k] for k in kept], np.int64).reshape(-1, 2), names, mapping,
                               report, source)


# -- layouts --------------------------------------------------------------------------------------
def read_mask_folders(image_dir: str | Path, mask_dir: str | Path, names: list[str], mapping: LabelMapping,
                      name: str = "", decode: bool = True) -> SegmentationDataset:
    """Images of ``image_dir`` with the masks of ``mask_dir`` of the same stem (module docstring)."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for d in (image_dir, mask_dir):
        if not d.is_dir():
            raise DataFormatError(f"{name or d}: folder {d} not found")
    report = SegmentationReport(name=name or str(image_dir))
    return build_segmentation(pair_by_stem(image_dir, mask_dir, report), names, mapping, report, str(image_dir),
                              decode)


def _ade20k_root(root: Path) -> Path | None:
    for r in (root, root / "ADEChallengeData2016"):
        if any((r / "images" / s).is_dir() and (r / "annotations" / s).is_dir() for s in ADE20K_SPLITS.values()):
            return r
    return None


def read_ade20k(root: str | Path, split: str, ignore_index: int = 255, decode: bool = True) -> SegmentationDataset:
    """Split ``train`` (``training``) or ``val`` (``validation``) of an ADE20K folder; 150 classes."""
    base = _ade20k_root(Path(root)) or Path(root)
    folder = ADE20K_SPLITS.get(split, split)
    mapping = LabelMapping(len(ADE20K_CLASSES), (255,), reduce_zero_label=True, ignore_index=ignore_index)
    return read_mask_folders(base / "images" / folder, base / "annotations" / folder, ADE20K_CLASSES, mapping,
                             f"{root} [{split}]", decode)


def voc_years(root: Path) -> list[Path]:
    """The VOC folders with ``SegmentationClass/``: ``root`` itself, or its ``VOC20xx`` children."""
    if (root / "SegmentationClass").is_dir():
        return [root]
    return sorted(d for d in root.iterdir() if (d / "SegmentationClass").is_dir()) if root.is_dir() else []


def read_voc_segmentation(root: str | Path, split: str, ignore_index: int = 255,
                          decode: bool = True) -> SegmentationDataset:
    """The images of ``ImageSets/Segmentation/<split>.txt`` in every VOC folder under ``root`` that has the list."""
    root = Path(root)
    lists = [(y, y / "ImageSets" / "Segmentation" / f"{split}.txt") for y in voc_years(root)]
    lists = [(y, f) for y, f in lists if f.is_file()]
    if not lists:
        raise DataFormatError(f"{root}: no ImageSets/Segmentation/{split}.txt in any VOC folder with "
                              f"SegmentationClass/ (have: {', '.join(segmentation_splits(root)) or 'none'})")
    pairs, finder = [], FileFinder()
    for year, listed in lists:
        for line in listed.read_text().splitlines():
            if line.strip():
                stem = line.split()[0]
                image = finder.find(year / "JPEGImages" / f"{stem}.jpg", IMAGE_SUFFIXES)
                pairs.append((image or year / "JPEGImages" / f"{stem}.jpg",
                              finder.find(year / "SegmentationClass" / f"{stem}.png")
                              or year / "SegmentationClass" / f"{stem}.png"))
    mapping = LabelMapping(len(VOC_SEG_CLASSES), (255,), ignore_index=ignore_index)
    report = SegmentationReport(name=f"{root} [{split}]")
    return build_segmentation(pairs, VOC_SEG_CLASSES, mapping, report, str(root), decode)


def _is_mask_yaml(path: Path) -> bool:
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(cfg, dict) and any(f"{s}_masks" in cfg for s in SPLITS)


def load_mask_yaml(path: Path) -> dict:
    """The parsed data.yaml with ``root`` and ``names`` resolved (:func:`rtdet.data.yolo.load_data_yaml`)."""
    try:
        has_names = "names" in (yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, TypeError):
        has_names = True  # let load_data_yaml say what is wrong
    if not has_names:
        raise DataFormatError(f"{path}: a segmentation data.yaml needs 'names' (class k = mask value k)")
    return load_data_yaml(path)


def _yaml_mapping(path: Path, cfg: dict, ignore_index: int) -> LabelMapping:
    values = cfg.get("ignore_index", 255)
    values = values if isinstance(values, list) else [values]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DataFormatError(f"{path}: 'ignore_index' must be an integer or a list of integers, "
                              f"got {cfg['ignore_index']!r}")
    reduce = cfg.get("reduce_zero_label", False)
    if not isinstance(reduce, bool):
        raise DataFormatError(f"{path}: 'reduce_zero_label' must be true or false, got {reduce!r}")
    try:
        return LabelMapping(len(cfg["names"]), tuple(values), reduce, ignore_index)
    except ValueError as e:
        raise DataFormatError(f"{path}: {e}") from None


def read_segmentation_yaml(path: str | Path, split: str, ignore_index: int = 255,
                           decode: bool = True) -> SegmentationDataset:
    """The ``split`` of a data.yaml with image and mask folders (module docstring)."""
    path = Path(path)
    cfg = load_mask_yaml(path)
    if not cfg.get(split) or not cfg.get(f"{split}_masks"):
        has = [s for s in SPLITS if cfg.get(s) and cfg.get(f"{s}_masks")]
        raise DataFormatError(f"{path}: split '{split}' needs '{split}' (images) and '{split}_masks' (masks) "
                              f"folders (has: {', '.join(has) or 'none'})")
    root = cfg["root"]
    image_dir, mask_dir = (Path(cfg[k]) if Path(cfg[k]).is_absolute() else root / cfg[k]
                           for k in (split, f"{split}_masks"))
    return read_mask_folders(image_dir, mask_dir, cfg["names"], _yaml_mapping(path, cfg, ignore_index),
                             f"{path} [{split}]", decode)


def segmentation_layout(spec: str | Path) -> tuple[str, Path]:
    """``("yaml" | "ade20k" | "voc", path)`` of a segmentation data set; DataFormatError naming ``spec`` otherwise."""
    path = Path(spec)
    if path.is_dir() and (path / "data.yaml").is_file():
        path = path / "data.yaml"
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise DataFormatError(f"data file not found: {path}")
        if _is_mask_yaml(path):
            return "yaml", path
    elif _ade20k_root(path):
        return "ade20k", path
    elif voc_years(path):
        return "voc", path
    raise DataFormatError(f"{spec}: not a segmentation data set; expected a data.yaml with <split>_masks folders "
                          f"(train_masks, val_masks), an ADE20K folder (images/training, annotations/training) or "
                          f"a VOC folder with SegmentationClass/ and ImageSets/Segmentation/")


def segmentation_splits(spec: str | Path) -> list[str]:
    """The split names the data set ``spec`` has."""
    kind, path = segmentation_layout(spec)
    if kind == "yaml":
        cfg = load_mask_yaml(path)
        return [s for s in SPLITS if cfg.get(s) and cfg.get(f"{s}_masks")]
    if kind == "ade20k":
        base = _ade20k_root(path)
        return [s for s, d in ADE20K_SPLITS.items() if (base / "images" / d).is_dir()]
    found = {f.stem for y in voc_years(path) for f in (y / "ImageSets" / "Segmentation").glob("*.txt")}
    return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))


def open_segmentation(spec: str | Path, split: str, ignore_index: int = 255,
                      decode: bool = True) -> SegmentationDataset:
    """The ``split`` (``train``, ``val``, ...) of the segmentation data set ``spec`` (layouts: module docstring).

    Args:
        spec: a data.yaml with mask folders (or its folder), an ADE20K folder, a VOC folder.
        ignore_index: the value unlabelled pixels get in the masks handed out (0..65535, not a class).
        decode: decode every image to judge it (False: headers only; masks are always decoded).

    Raises DataFormatError naming the path when no layout fits or the split is absent.
    """
    kind, path = segmentation_layout(spec)
    if kind == "yaml":
        return read_segmentation_yaml(path, split, ignore_index, decode)
    if kind == "ade20k":
        return read_ade20k(path, split, ignore_index, decode)
    return read_voc_segmentation(path, split, ignore_index, decode)
