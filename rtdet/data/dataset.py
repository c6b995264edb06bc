"""The one sample type every reader produces, stored without per-image Python objects.

A :class:`DetectionDataset` holds its labels as a few flat numpy arrays (all
boxes of all images concatenated, plus per-image offsets) and its file names as
one numpy byte-string array. DataLoader workers are forked from the main
process; with one large array instead of a list of small ones, reading a
sample does not touch (and so copy) the pages of thousands of Python objects,
which is the memory growth other loaders show over many epochs.

Boxes are stored as absolute ``xyxy`` float64 in the original image's pixels
(float64 so that format conversions round-trip exactly; samples hand out float32).

Example:
    >>> ds = open_dataset("datasets/digits/data.yaml", "val")  # doctest: +SKIP
    >>> image, target = ds[0]                                   # doctest: +SKIP
    >>> image.shape, target["boxes"].shape                      # doctest: +SKIP
    ((320, 320, 3), torch.Size([4, 4]))
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from rtdet.data.report import Report
from rtdet.errors import RtdetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# The stored pixel grid is what annotations refer to, so EXIF rotation is ignored.
TINY_BOX_PX = 1.0  # a box this narrow or short in original pixels is kept but warned about (a likely labelling slip,
# e.g. VOC's xmin == xmax, which the inclusive 1-based convention makes one pixel wide)
_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class ImageError(RtdetError, ValueError):
    """An image file that is missing, unreadable or truncated."""


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix, in any case (``x.JPG`` is an image like ``x.jpg``)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class FileFinder:
    """Finds a file whose suffix differs only in case: ``x.JPG`` when ``x.jpg`` is asked for.

    Annotations name files as the tool that wrote them saw them (``x.jpg``),
    while cameras and some file systems store ``x.JPG``. A folder is listed once,
    at its first miss, so a data set whose names all match costs one
    ``is_file`` per file.
    """

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[Path]]] = {}

    def _stems(self, folder: Path) -> dict[str, list[Path]]:
        if folder not in self._folders:
            listing: dict[str, list[Path]] = {}
            for f in sorted(folder.iterdir()) if folder.is_dir() else []:
                listing.setdefault(f.stem, []).append(f)
            self._folders[folder] = listing
        return self._folders[folder]

    def find(self, path: str | Path, suffixes: tuple[str, ...] = ()) -> Path | None:
        """``path`` when it is a file, else a file in its folder with its stem and its suffix in any
        case, else one with any of ``suffixes`` (in this order, any case); None when there is none."""
        path = Path(path)
        if path.is_file():
            return path
        files = [f for f in self._stems(path.parent).get(path.stem, []) if f.is_file()]
        for want in (path.suffix, *suffixes):
            hit = next((f for f in files if f.suffix.lower() == want.lower()), None)
            if hit is not None:
                return hit
        return None


def probe_image(path: str | Path | bytes, decode: bool = True) -> tuple[int, int]:
    """``(height, width)`` of an image file (or of its bytes); raises ImageError saying why it cannot be used.

    A file is judged by decoding it, not by its bytes: with ``decode`` the whole
    file goes through the decoder (a JPEG at 1/8 scale, which still reads every
    coded block), so a file that ends early or holds corrupt data is caught,
    while bytes after a complete image (which phones and editors append) are
    not a fault. ``decode=False`` reads the header only: fast, and it rejects
    nothing a decoder would accept (nor catches a truncated file).

    Decoding relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES =
    False`` (rtdet never changes it); with it set to True, Pillow pads a
    truncated file instead of raising.
    """
    if not isinstance(path, bytes) and not Path(path).is_file():
        raise ImageError("image file not found")
    with _open(path) as im:
        w, h = im.size
        if decode:
            try:
                if im.format == "JPEG":
                    im.draft(None, (max(1, w // 8), max(1, h // 8)))
                im.load()
            except Exception as e:
                raise ImageError(f"image data does not decode ({type(e).__name__}: {e})") from None
    if w <= 0 or h <= 0:
        raise ImageError(f"image has size {w}x{h}")
    return h, w


def image_header(data: bytes) -> tuple[int, int, str]:
    """``(height, width, format)`` from an image's header alone (Pillow's format name: ``JPEG``, ``PNG``,
    ``WEBP``, ...); raises ImageError when Pillow recognises no image format in ``data``."""
    with _open(data) as im:
        return im.size[1], im.size[0], str(im.format)


def _open(source: str | Path | bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
    except Exception as e:  # PIL raises many types for broken files
        raise ImageError(f"unreadable image ({type(e).__name__}: {e})") from None


def probe_images(paths: list, decode: bool = True, threads: int = 8) -> list[tuple[int, int] | ImageError]:
    """:func:`probe_image` for many files at once (the decoders release the GIL, so threads overlap).

    Returns, per path, ``(height, width)`` or the ImageError describing what is wrong.
    """
    def one(p: str | Path) -> tuple[int, int] | ImageError:
        try:
            return probe_image(p, decode)
        except ImageError as e:
            return e

    if len(paths) < 16:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, paths, chunksize=16 if decode else 64))


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 [H, W, 3] RGB; raises ImageError naming the file."""
    img = cv2.imread(str(path), _IMREAD_FLAGS)
    if img is None:
        raise ImageError(f"{path}: cannot decode image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes) -> np.ndarray:
    """:func:`read_image` for a file's bytes (an upload): the same decoder and flags, so the same pixels."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD_FLAGS)
    if img is None:
        raise ImageError("cannot decode image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_whole(data: bytes) -> np.ndarray:
    """:func:`decode_image` of a file's bytes that decode completely, judged as :func:`probe_image` judges
    them, with one decoding where that suffices: uint8 [H, W, 3] RGB.

    A JPEG that starts with SOI (FF D8) and ends with EOI (FF D9) was written to its end:
    its entropy-coded data cannot hold FF D9 (every FF there is followed by 00 or a restart
    marker), so a cut file ends so only inside a header segment that holds those bytes (an
    EXIF thumbnail's end, a comment), before the image's own headers are complete, and the
    decoder refuses it (tested at such cuts; encoders put no such segment between the scans
    of a progressive JPEG). Such a file is decoded once; any other file (a PNG, WebP, a JPEG
    cut short or with bytes after its end) is decoded fully by :func:`probe_image` first. The probe's decoding costs nearly as much
    as the pixels' (1.6 and 2.0 ms of CPU for a 640x480 coco128 photo).

    Raises:
        ImageError: unreadable, cut short or corrupt (the decoder's reason).
    """
    if not (data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"):
        probe_image(data)
    return decode_image(data)


def read_whole(path: str | Path) -> np.ndarray:
    """:func:`read_image` of a file that decodes completely (:func:`decode_whole`): uint8 [H, W, 3] RGB.

    Raises:
        ImageError: naming the file: missing or unreadable, cut short or corrupt.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: image file cannot be read ({e.strerror or e})") from None
    try:
        return decode_whole(data)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


class DetectionDataset(torch.utils.data.Dataset):
    """Images and their boxes; ``ds[i] -> (image uint8 [H,W,3] RGB, target dict)``.

    Two numberings, so that what rtdet writes for other tools scores against the user's own files:

    - inside rtdet an image is its position: ``image_ids`` is ``0..N-1`` (a target's
      ``"image_id"``) and a label is ``0..K-1``;
    - ``source_ids[i]`` and ``cat_ids[label]`` are the data set's own ids, written back out
      (``detections.json``, converted annotations). COCO ids are kept as the json has them,
      integers or strings (``1`` and ``"1"`` are different ids, as in pycocotools). YOLO and VOC
      files have no ids: an image's id is its position in the split's list of files (counting
      files skipped as bad) and ``cat_ids`` is None, meaning a category id is the label itself.

    Attributes:
        names: class names, index = label.
        report: counts and problems found while reading (bad images are not in the set).
        source_ids: the data set's own id of each image (a plain list; read only when writing out,
            so forked loader workers never touch, and so never copy, its pages).
        cat_ids: for COCO data, the original category id of each label; else ``None``.
    """

    def __init__(self, files: list[str], sizes: np.ndarray, source_ids: list, offsets: np.ndarray,
                 boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray, difficult: np.ndarray,
                 areas: np.ndarray | None, names: list[str], report: Report, cat_ids: list | None = None):
        if len(source_ids) != len(files):
            raise ValueError(f"{len(source_ids)} image ids for {len(files)} files")
        self.files = np.array([os.fsencode(f) for f in files], dtype=np.bytes_) if files else np.zeros(0, "S1")
        self.sizes = np.asarray(sizes, np.int64).reshape(-1, 2)  # [N, 2] (h, w)
        self.image_ids = np.arange(len(files), dtype=np.int64)  # [N] rtdet's id of each image: its position
        self.source_ids = list(source_ids)  # [N] the data set's own ids (int or str), for writing out
        self.offsets = np.asarray(offsets, np.int64)  # [N + 1]; boxes of image i: offsets[i]:offsets[i+1]
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)  # [T, 4] xyxy, original pixels
        self.labels = np.asarray(labels, np.int64)  # [T]
        self.iscrowd = np.asarray(iscrowd, bool)  # [T]
        self.difficult = np.asarray(difficult, bool)  # [T]
        self.areas = None if areas is None else np.asarray(areas, np.float64)  # [T] COCO 'area' when known
        self.names = list(names)
        self.report = report
        self.cat_ids = cat_ids
        self._cache: torch.Tensor | None = None  # one shared uint8 buffer of every decoded image
        self._cache_offsets: np.ndarray | None = None
        self._cache_shapes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def file(self, i: int) -> str:
        return os.fsdecode(self.files[i])

    def category_id(self, label: int) -> Any:
        """The data set's own category id of ``label`` (the label itself for YOLO and VOC data)."""
        return self.cat_ids[label] if self.cat_ids is not None else int(label)

    def annotations(self, i: int) -> dict[str, np.ndarray]:
        """Numpy labels of image ``i`` in original pixels: boxes [n,4] xyxy float64, labels, iscrowd, difficult."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return {"boxes": self.boxes[a:b].copy(), "labels": self.labels[a:b].copy(),
                "iscrowd": self.iscrowd[a:b].copy(), "difficult": self.difficult[a:b].copy()}

    def load_image(self, i: int) -> tuple[np.ndarray, float]:
        """Image ``i`` as uint8 [H,W,3] RGB and the scale from original pixels (< 1 if cached smaller)."""
        if self._cache is not None:
            a = int(self._cache_offsets[i])
            h, w = (int(v) for v in self._cache_shapes[i])
            img = self._cache[a:a + h * w * 3].numpy().reshape(h, w, 3)
            return img, w / float(self.sizes[i, 1])
        return read_image(self.file(i)), 1.0

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, Any]]:
        img, scale = self.load_image(i)
        ann = self.annotations(i)
        h, w = (int(v) for v in self.sizes[i])
        target = {
            "boxes": torch.from_numpy((ann["boxes"] * scale).astype(np.float32)),
            "labels": torch.from_numpy(ann["labels"]),
            "iscrowd": torch.from_numpy(ann["iscrowd"]),
            "difficult": torch.from_numpy(ann["difficult"]),
            "image_id": int(self.image_ids[i]),
            "file": self.file(i),
            "orig_size": (h, w),
            "letterbox": (float(scale), 0.0, 0.0),
        }
        return img, target

    def cache_images(self, max_side: int | None = None, threads: int = 4) -> int:
        """Decode every image once into one shared-memory buffer; returns its size in bytes.

        With ``max_side`` images are stored shrunk so that their longer side is at
        most ``max_side`` (the training size), which is all augmentation needs.
        The buffer is a shared-memory tensor, so forked or spawned workers read
        it without copying.
        """
        shapes = np.empty((len(self), 2), np.int64)
        for i, (h, w) in enumerate(self.sizes):
            r = min(1.0, max_side / max(h, w)) if max_side else 1.0
            shapes[i] = (max(1, round(h * r)), max(1, round(w * r)))
        offsets = np.zeros(len(self) + 1, np.int64)
        np.cumsum(shapes[:, 0] * shapes[:, 1] * 3, out=offsets[1:])
        buf = torch.empty(int(offsets[-1]), dtype=torch.uint8)
        view = buf.numpy()

        def fill(i: int) -> None:
            img = read_image(self.file(i))
            h, w = shapes[i]
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_AREA)
            view[offsets[i]:offsets[i + 1]] = img.reshape(-1)

        with ThreadPoolExecutor(max(1, threads)) as pool:
            list(pool.map(fill, range(len(self))))
        self._cache, self._cache_offsets, self._cache_shapes = buf.share_memory_(), offsets, shapes
        return int(offsets[-1])


class DatasetBuilder:
    """Collects images one by one (while reading a file format) and builds the flat arrays."""

    def __init__(self, names: list[str], report: Report):
        self.names, self.report = list(names), report
        self.files: list[str] = []
        self.sizes: list[tuple[int, int]] = []
        self.ids: list = []  # the data set's own image ids
        self.counts: list[int] = []
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("boxes", "labels", "iscrowd", "difficult", "areas")}
        self.has_areas = False

    def add(self, file: str, size: tuple[int, int], image_id: Any, boxes: np.ndarray, labels: np.ndarray,
            iscrowd: np.ndarray | None = None, difficult: np.ndarray | None = None,
            areas: np.ndarray | None = None) -> None:
        """Add one image; ``image_id`` is the data set's own id (kept as given: an int or a str),
        ``boxes`` float [n,4] absolute xyxy in original pixels, ``labels`` int [n]."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        labels = np.asarray(labels, np.int64).reshape(n)
        self.files.append(str(file))
        self.sizes.append(size)
        self.ids.append(image_id)
        self.counts.append(n)
        self.parts["boxes"].append(boxes)
        self.parts["labels"].append(labels)
        self.parts["iscrowd"].append(np.zeros(n, bool) if iscrowd is None else np.asarray(iscrowd, bool))
        self.parts["difficult"].append(np.zeros(n, bool) if difficult is None else np.asarray(difficult, bool))
        self.has_areas |= areas is not None
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        self.parts["areas"].append(w * h if areas is None else np.asarray(areas, np.float64))
        r = self.report
        for j in np.flatnonzero(np.minimum(w, h) <= TINY_BOX_PX):
            r.warn(str(file), f"box {j} ({self.names[labels[j]] if 0 <= labels[j] < len(self.names) else labels[j]}) "
                              f"is {w[j]:g} x {h[j]:g} px: kept; check the label")
        r.images += 1
        r.boxes += n
        r.empty_images += n == 0
        r.per_class.update(labels.tolist())

    def build(self, cat_ids: list | None = None) -> DetectionDataset:
        offsets = np.zeros(len(self.counts) + 1, np.int64)
        np.cumsum(self.counts, out=offsets[1:])
        cat = {k: (np.concatenate(v) if v else None) for k, v in self.parts.items()}
        return DetectionDataset(
            self.files, np.array(self.sizes, np.int64).reshape(-1, 2), self.ids, offsets,
            cat["boxes"] if cat["boxes"] is not None else np.zeros((0, 4)),
            cat["labels"] if cat["labels"] is not None else np.zeros(0, np.int64),
            cat["iscrowd"] if cat["iscrowd"] is not None else np.zeros(0, bool),
            cat["difficult"] if cat["difficult"] is not None else np.zeros(0, bool),
            cat["areas"] if self.has_areas else None, self.names, self.report, cat_ids)
