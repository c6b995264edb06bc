"""Image classification data: ImageFolder trees, MNIST IDX files, CSV lists, scikit-learn's digits.

Every reader returns a :class:`ClassificationDataset`:
``ds[i] -> (image uint8 [H, W, 3] RGB, {"label": int, "image_id": i, "file": str})``.
Grayscale images become three equal channels. Images that cannot be read are
left out and recorded in ``ds.report`` (file, line where there is one, reason),
never dropped silently.

:func:`open_classification` recognises the layout of ``spec``:

1. ``"sklearn-digits"``: scikit-learn's 1,797 8x8 digits, upsampled to 32x32
   (:func:`sklearn_digits`; offline, nothing is downloaded).
2. A folder with split folders of class folders (the ImageFolder convention of
   torchvision and Ultralytics): ``root/train/<class>/*.jpg``, ``root/val/<class>/...``.
   Class names are the sorted union of the class folders of every split, so a
   label means the same class in each split.
3. A folder holding MNIST IDX files (``*idx3*`` images, ``*idx1*`` labels,
   gzip or raw). With one pair, split ``train`` is its first 80 % and ``val`` its
   last 20 % (``../shared/data/mnist``: 6,400 and 1,600 of 8,000 digits); with the
   official pairs, ``train*`` is train and ``t10k*`` / ``test*`` / ``val*`` is val.
   The images stay in one uint8 array in memory.
4. CSV lists of ``path,label`` rows: a folder holding ``train.csv`` / ``val.csv``;
   a ``.csv`` named after a split (``data/train.csv``: the other splits are its
   siblings ``data/val.csv``, ...); or ``name.csv`` with siblings
   ``name_train.csv`` / ``name_val.csv``. See :func:`read_csv`.

Example:
    >>> ds = open_classification("../shared/data/mnist", "val")  # doctest: +SKIP
    >>> image, target = ds[0]                                    # doctest: +SKIP
    >>> image.shape, target["label"], len(ds), ds.names[:3]      # doctest: +SKIP
    ((28, 28, 3), 7, 1600, ['0', '1', '2'])
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from rtdet.data.dataset import FileFinder, ImageError, is_image_file, probe_images, read_image
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError

SPLITS = ("train", "val", "test")
IDX_TRAIN_FRACTION = 0.8  # a single IDX pair: first 80 % train, last 20 % val (6,400 / 1,600 of the shared 8,000)
IDX_MAGIC = {"images": 2051, "labels": 2049}  # unsigned-byte data with 3 and 1 dimensions
SKLEARN_DIGITS = "sklearn-digits"
DIGITS_SIZE = 32  # scikit-learn's 8x8 digits are upsampled to this side
DIGITS_TRAIN_FRACTION = 0.8


@dataclass
class ClassificationReport(Report):
    """:class:`Report` for classification: ``per_class`` counts images, ``boxes`` stays 0."""

    other_files: int = 0  # files without an image suffix in an image folder (ignored, counted)

    def summary(self) -> str:
        """One line for a training log: kept, skipped, problems."""
        s = f"{self.name}: {self.images} images in {len(self.per_class)} classes"
        if self.other_files:
            s += f", {self.other_files} non-image files ignored"
        if self.problems:
            s += f"; skipped {self.skipped_images} bad images ({len(self.problems)} problems, run `rtdet data check`)"
        return s

    per_class_unit = "images"

    def totals(self) -> str:
        return f"images: {self.images}  skipped images: {self.skipped_images}  non-image files: {self.other_files}"


class ClassificationDataset(torch.utils.data.Dataset):
    """Labelled images: ``ds[i] -> (image uint8 [H,W,3] RGB, {"label", "image_id", "file"})``.

    The images are either files (decoded on access) or one uint8 array in
    memory (``[N, H, W]`` grayscale or ``[N, H, W, 3]`` RGB), never both.

    Attributes:
        names: class names, index = label.
        labels: int64 [N], each in ``0..len(names)-1``.
        report: counts and problems found while reading (bad images are not in the set).
        source: where the data came from (a path, or ``sklearn-digits``).
        images: the in-memory array, or None for file-backed sets.
        record_ids: int64 [N], each image's position in its source (IDX record, digits index), for ``file``.
    """

    def __init__(self, labels: np.ndarray, names: list[str], report: Report, source: str, *,
                 files: list[str] | None = None, images: np.ndarray | None = None,
                 record_ids: np.ndarray | None = None):
        if (files is None) == (images is None):
            raise ValueError("ClassificationDataset needs either files or an images array")
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        self.names, self.report, self.source = list(names), report, str(source)
        n = len(self.labels)
        self.files = None  # one numpy byte-string array, not a list of str: see rtdet.data.dataset
        if files is not None:
            self.files = np.array([os.fsencode(f) for f in files], np.bytes_) if files else np.zeros(0, "S1")
        if self.files is not None and len(self.files) != n:
            raise ValueError(f"{source}: {len(self.files)} files for {n} labels")
        self.images = images
        if images is not None and (images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != n):
            raise ValueError(f"images must be uint8 [N,H,W] or [N,H,W,3] with N={n}, got {images.dtype} {images.shape}")
        self.record_ids = np.arange(n, dtype=np.int64) if record_ids is None else np.asarray(record_ids, np.int64)
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.names)):
            raise ValueError(f"{source}: labels must lie in 0..{len(self.names) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    def file(self, i: int) -> str:
        """Image ``i``'s file, or ``source#record`` for images held in memory."""
        if self.files is not None:
            return os.fsdecode(self.files[i])
        return f"{self.source}#{int(self.record_ids[i])}"

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as a new uint8 [H, W, 3] RGB array; raises ImageError naming the file."""
        if self.images is None:
            return read_image(self.file(i))
        img = self.images[i]
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img.copy()

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        return self.load_image(i), {"label": int(self.labels[i]), "image_id": int(i), "file": self.file(i)}


def _counted(report: ClassificationReport, labels: list[int] | np.ndarray) -> ClassificationReport:
    report.images = len(labels)
    report.per_class.update(np.asarray(labels, np.int64).tolist())
    return report


def _probed(files: list[Path], labels: list[int], report: Report, where: list[tuple[str, int | None]] | None = None
            ) -> tuple[list[str], list[int]]:
    """The files that open as images; each one that does not is a problem (at ``where[k]`` if given)."""
    kept_files, kept_labels = [], []
    for k, (f, c, size) in enumerate(zip(files, labels, probe_images(files))):
        if isinstance(size, ImageError):
            file, line = where[k] if where else (str(f), None)
            report.add(file, str(size) if where is None else f"{f}: {size}", line)
            report.skipped_images += 1
        else:
            kept_files.append(str(f))
            kept_labels.append(c)
    return kept_files, kept_labels


# -- ImageFolder ----------------------------------------------------------------------------------
def _subdirs(folder: Path) -> list[Path]:
    """Visible subfolders, sorted (hidden ones such as ``.ipynb_checkpoints`` are not classes)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_folder_classes(root: str | Path) -> list[str]:
    """Class names of an ImageFolder tree: the sorted union of every split folder's class folders."""
    root = Path(root)
    return sorted({c.name for split in _subdirs(root) for c in _subdirs(split)})


def is_image_folder(root: str | Path) -> bool:
    """True when ``root`` has a ``train``/``val``/``test`` folder that holds class folders."""
    root = Path(root)
    return root.is_dir() and any((root / s).is_dir() and _subdirs(root / s) for s in SPLITS)


def read_image_folder(root: str | Path, split: str) -> ClassificationDataset:
    """Split ``split`` of ``root/<split>/<class>/**/<image>`` (suffixes matched case-insensitively).

    Images directly in the split folder (outside any class) are problems; files
    without an image suffix are ignored and counted (``report.other_files``).
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        has = [p.name for p in _subdirs(root)] if root.is_dir() else []
        raise DataFormatError(f"{root}: no '{split}' folder of class folders (has: {', '.join(has) or 'nothing'})")
    names = image_folder_classes(root)
    report = ClassificationReport(name=f"{root} [{split}]")
    files: list[Path] = []
    labels: list[int] = []
    for entry in sorted(split_dir.iterdir()):
        if entry.is_file() and is_image_file(entry):
            report.add(str(entry), f"image outside a class folder (expected {split}/<class>/<image>)")
            report.skipped_images += 1
    for c, name in enumerate(names):
        folder = split_dir / name
        if not folder.is_dir():
            continue  # a class without images in this split
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            if is_image_file(f):
                files.append(f)
                labels.append(c)
            else:
                report.other_files += 1
    kept, kept_labels = _probed(files, labels, report)
    return ClassificationDataset(kept_labels, names, _counted(report, kept_labels), str(root), files=kept)


def write_image_folder(ds: ClassificationDataset, root: str | Path, split: str) -> Path:
    """Write ``ds`` as ``root/<split>/<class name>/<index:06d>.png``; returns the split folder.

    Grayscale arrays are written as 1-channel PNGs (the reader turns them into 3 channels again).
    """
    out = Path(root) / split
    for name in ds.names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(len(ds)):
        img = ds.images[i] if ds.images is not None and ds.images.ndim == 3 else ds.load_image(i)[..., ::-1]
        path = out / ds.names[int(ds.labels[i])] / f"{i:06d}.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
            raise OSError(f"{path}: cannot write image")
    return out


# -- MNIST IDX ------------------------------------------------------------------------------------
def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """The array in an IDX file (gzip or raw): uint8 [N, H, W] for ``kind="images"``, [N] for ``"labels"``.

    Checks the magic number (2051 images, 2049 labels) and that the data size
    matches the header; raises DataFormatError naming the file and the problem.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataFormatError(f"{path}: cannot read IDX file ({type(e).__name__}: {e})") from None
    want = IDX_MAGIC[kind]
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != want:
        raise DataFormatError(f"{path}: magic number {magic}, expected {want} (an IDX {kind} file)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataFormatError(f"{path}: header says {'x'.join(map(str, dims))} = {expected} bytes of data, "
                              f"the file holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def idx_pairs(folder: str | Path) -> dict[str, tuple[Path, Path]]:
    """IDX ``(images, labels)`` file pairs in ``folder`` by role: ``{"all": ...}`` for one pair,
    else ``{"train": ..., "val": ...}`` from the names (``train*``; ``t10k*``, ``test*`` or ``val*``).

    The labels file of ``X-images-idx3-ubyte[.gz]`` is ``X-labels-idx1-ubyte[.gz]``.
    """
    folder = Path(folder)
    pairs: list[tuple[Path, Path]] = []
    for img in sorted(p for p in folder.iterdir() if "idx3" in p.name and p.is_file()):
        lab = folder / img.name.replace("idx3", "idx1").replace("images", "labels")
        if not lab.is_file():
            raise DataFormatError(f"{img}: no labels file {lab.name} next to it")
        pairs.append((img, lab))
    if len(pairs) <= 1:
        return {"all": pairs[0]} if pairs else {}
    roles: dict[str, tuple[Path, Path]] = {}
    for pair in pairs:
        name = pair[0].name.lower()
        role = "train" if name.startswith("train") else "val" if name.startswith(("t10k", "test", "val")) else None
        if role is None or role in roles:
            raise DataFormatError(f"{folder}: cannot tell which IDX pair is train and which is val "
                                  f"({', '.join(p[0].name for p in pairs)}); name them train-* and t10k-*")
        roles[role] = pair
    return roles


def read_idx_folder(folder: str | Path, split: str) -> ClassificationDataset:
    """Split ``train`` or ``val`` of the MNIST IDX files in ``folder`` (see the module docstring)."""
    folder = Path(folder)
    pairs = idx_pairs(folder)
    if not pairs:
        raise DataFormatError(f"{folder}: no IDX files (*idx3* images with *idx1* labels)")
    if split not in ("train", "val"):
        raise DataFormatError(f"{folder}: IDX data has splits train and val, not '{split}'")
    img_path, lab_path = pairs.get(split) or pairs["all"]
    images, labels = read_idx(img_path, "images"), read_idx(lab_path, "labels")
    if len(images) != len(labels):
        raise DataFormatError(f"{img_path} holds {len(images)} images but {lab_path} {len(labels)} labels")
    ids = np.arange(len(labels), dtype=np.int64)
    if "all" in pairs:
        cut = round(len(labels) * IDX_TRAIN_FRACTION)
        ids = ids[:cut] if split == "train" else ids[cut:]
    report = ClassificationReport(name=f"{folder} [{split}]")
    names = [str(d) for d in range(10)]
    bad = ids[labels[ids] >= len(names)]
    for k in bad:
        report.add(str(lab_path), f"record {k}: label {labels[k]} outside 0..9")
    report.skipped_images = len(bad)
    ids = ids[labels[ids] < len(names)]
    return ClassificationDataset(labels[ids], names, _counted(report, labels[ids]), str(img_path),
                                 images=np.ascontiguousarray(images[ids]), record_ids=ids)


# -- CSV ------------------------------------------------------------------------------------------
_INT = re.compile(r"-?\d+")


def csv_split_files(spec: str | Path) -> dict[str, Path]:
    """The CSV file of each split of ``spec`` (a folder, a split-named ``.csv`` or ``name.csv``), existing ones only."""
    spec = Path(spec)
    if spec.is_dir():
        cands = {s: spec / f"{s}.csv" for s in SPLITS}
    elif spec.stem in SPLITS:
        cands = {s: spec.with_name(f"{s}.csv") for s in SPLITS}
    else:
        cands = {s: spec.with_name(f"{spec.stem}_{s}.csv") for s in SPLITS}
    return {s: p for s, p in cands.items() if p.is_file()}


def _csv_rows(path: Path, report: Report) -> list[tuple[int, str, str]]:
    """``(line, path, label)`` of each well-formed row; bad rows are problems. A first row whose path
    has no image suffix (such as ``path,label``) is a header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: cannot read CSV file ({e})") from None
    rows = []
    for line, fields in enumerate(csv.reader(text.splitlines()), 1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        if line == 1 and not is_image_file(fields[0]):
            continue  # header
        if len(fields) != 2 or not fields[0] or not fields[1]:
            report.add(str(path), f"expected 2 fields 'path,label', got {len(fields)}: {','.join(fields)!r}", line)
            report.skipped_images += 1
            continue
        rows.append((line, fields[0], fields[1]))
    return rows


def csv_classes(files: list[Path]) -> list[str]:
    """Class names of a CSV data set (all its split files): the sorted labels that are not integers;
    when every label is an integer index, ``"0" .. str(max)``."""
    labels = {label for f in files for _, _, label in _csv_rows(f, Report())}
    names = sorted(x for x in labels if not _INT.fullmatch(x))
    if names:
        return names
    top = max((int(x) for x in labels), default=-1)
    return [str(i) for i in range(top + 1)]


def read_csv(path: str | Path, names: list[str] | None = None) -> ClassificationDataset:
    """Images listed in a CSV of ``path,label`` rows (header optional, ``csv`` module quoting).

    Paths are relative to the CSV's folder (or absolute); a file whose suffix
    differs only in case (``x.JPG`` for ``x.jpg``) is found. A label is a class
    name or an integer index into ``names`` (default: :func:`csv_classes` of this
    file alone). Bad rows, unknown labels and unreadable images are problems
    named by file and line, and are skipped.
    """
    path = Path(path)
    names = csv_classes([path]) if names is None else names
    index = {n: i for i, n in enumerate(names)}
    report = ClassificationReport(name=str(path))
    files, labels, where = [], [], []
    finder = FileFinder()
    for line, file, label in _csv_rows(path, report):
        c = int(label) if _INT.fullmatch(label) else index.get(label, -1)
        if not 0 <= c < len(names):
            if _INT.fullmatch(label):
                report.add(str(path), f"class index {label} outside 0..{len(names) - 1}", line)
            else:
                report.add(str(path), f"unknown class {label!r}", line)
            report.skipped_images += 1
            continue
        f = Path(file) if Path(file).is_absolute() else path.parent / file
        files.append(finder.find(f) or f)
        labels.append(c)
        where.append((str(path), line))
    kept, kept_labels = _probed(files, labels, report, where)
    return ClassificationDataset(kept_labels, names, _counted(report, kept_labels), str(path), files=kept)


# -- scikit-learn digits --------------------------------------------------------------------------
def sklearn_digits(split: str) -> ClassificationDataset:
    """scikit-learn's 1,797 handwritten 8x8 digits (offline), upsampled to 32x32 uint8 grayscale.

    ``train``: the first 80 % (1,438 images), ``val``: the last 20 % (359).
    """
    try:
        from sklearn.datasets import load_digits  # its bundled files: nothing is downloaded
    except ImportError:
        raise ImportError("the sklearn-digits set comes with scikit-learn: pip install 'rtdet[demo]'") from None
    if split not in ("train", "val"):
        raise DataFormatError(f"{SKLEARN_DIGITS}: splits are train and val, not '{split}'")
    d = load_digits()
    small = np.clip(d.images * (255 / 16), 0, 255).round().astype(np.uint8)  # [1797, 8, 8], values 0..16
    cut = round(len(small) * DIGITS_TRAIN_FRACTION)
    ids = np.arange(cut) if split == "train" else np.arange(cut, len(small))
    size = (DIGITS_SIZE, DIGITS_SIZE)
    images = np.stack([cv2.resize(small[i], size, interpolation=cv2.INTER_LINEAR) for i in ids])
    labels = d.target[ids].astype(np.int64)
    report = _counted(ClassificationReport(name=f"{SKLEARN_DIGITS} [{split}]"), labels)
    return ClassificationDataset(labels, [str(i) for i in range(10)], report, SKLEARN_DIGITS, images=images,
                                 record_ids=ids)


# -- one entry point ------------------------------------------------------------------------------
def classification_layout(spec: str | Path) -> str:
    """``sklearn-digits``, ``imagefolder``, ``idx`` or ``csv``; DataFormatError naming the path otherwise."""
    if str(spec) == SKLEARN_DIGITS:
        return SKLEARN_DIGITS
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        if not path.is_file() and not csv_split_files(path):
            raise DataFormatError(f"classification data {spec}: CSV file not found")
        return "csv"
    if not path.is_dir():
        raise DataFormatError(f"classification data {spec} not found: expected '{SKLEARN_DIGITS}', a folder or a .csv")
    if is_image_folder(path):
        return "imagefolder"
    if any("idx3" in p.name for p in path.iterdir()):
        return "idx"
    if csv_split_files(path):
        return "csv"
    raise DataFormatError(f"{spec}: not a classification data set; expected train/<class>/<images> and "
                          f"val/<class>/<images> folders, MNIST IDX files (*idx3*, *idx1*) or train.csv / val.csv")


def classification_splits(spec: str | Path) -> list[str]:
    """The split names the data set ``spec`` has (for checks and converters)."""
    kind = classification_layout(spec)
    if kind in (SKLEARN_DIGITS, "idx"):
        return ["train", "val"]
    if kind == "imagefolder":
        return [s for s in SPLITS if (Path(spec) / s).is_dir()]
    return list(csv_split_files(spec))


def open_classification(spec: str | Path, split: str) -> ClassificationDataset:
    """The ``split`` (``train``, ``val``, ...) of the classification data set ``spec`` (layouts: module docstring).

    Raises DataFormatError naming the path when no layout fits or the split is absent.
    """
    kind = classification_layout(spec)
    if kind == SKLEARN_DIGITS:
        return sklearn_digits(split)
    if kind == "imagefolder":
        return read_image_folder(spec, split)
    if kind == "idx":
        return read_idx_folder(spec, split)
    files = csv_split_files(spec)
    if split not in files:
        if Path(spec).is_file() and not files:
            raise DataFormatError(f"{spec}: no CSV for split '{split}' (looked for "
                                  f"{Path(spec).stem}_{split}.csv next to it, or name the files train.csv / val.csv)")
        raise DataFormatError(f"{spec}: no CSV for split '{split}' (has: {', '.join(files) or 'none'})")
    return read_csv(files[split], csv_classes(list(files.values())))
