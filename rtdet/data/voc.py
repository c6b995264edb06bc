"""Pascal VOC XML data sets: a ``VOCdevkit`` tree or a plain ``images/`` + ``annotations/`` pair.

Layouts understood (``root`` is what the user passes):
  - ``VOCdevkit/`` holding ``VOC2007/``, ``VOC2012/``, ...: every year that has the
    split's list is read, so VOC2007+VOC2012 train together;
  - one ``VOC20xx/`` folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``);
  - ``images/`` + ``annotations/`` (XML), with an optional ``<split>.txt`` list of stems.

Splits: ``ImageSets/Main/<split>.txt``. ``train`` reads ``trainval.txt`` and ``val``
reads ``test.txt`` when those lists exist (the usual detection protocol: train on
VOC07+12 trainval, test on VOC07 test), else ``train.txt`` / ``val.txt``.

VOC boxes count pixels from 1 and include both ends, so pixel columns
``xmin..xmax`` become the continuous box ``[xmin - 1, xmax]``. ``difficult`` is kept as a flag.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtdet.data.dataset import (IMAGE_SUFFIXES, DatasetBuilder, DetectionDataset, FileFinder, ImageError,
                                probe_images)
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
_OBJECT_NAME = re.compile(r"<object>.*?<name>(.*?)</name>", re.DOTALL)  # a fast scan; full parsing comes later
SPLIT_PREFERENCE = {"train": ("trainval", "train"), "val": ("test", "val")}


@dataclass
class Node:
    """An XML element with the line it starts on (ElementTree forgets lines; problems need them)."""

    tag: str
    line: int
    text: str = ""
    children: list["Node"] = field(default_factory=list)

    def find(self, tag: str) -> "Node | None":
        return next((c for c in self.children if c.tag == tag), None)

    def findtext(self, tag: str, default: str | None = None) -> str | None:
        c = self.find(tag)
        return c.text.strip() if c is not None else default


def parse_xml(path: Path) -> Node:
    """Parse an XML file into :class:`Node` s; raises ValueError with the line of a syntax error."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[Node] = [Node("", 0)]

    def start(tag: str, attrs: dict) -> None:
        node = Node(tag, parser.CurrentLineNumber)
        stack[-1].children.append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as e:
        raise ValueError(f"malformed XML at line {e.lineno}: {xml.parsers.expat.ErrorString(e.code)}") from None
    if not stack[0].children:
        raise ValueError("empty XML")
    return stack[0].children[0]


@dataclass
class VocRecord:
    """One annotation file: size, objects (name, xyxy box in rtdet pixels, difficult)."""

    size: tuple[int, int] | None
    filename: str | None
    objects: list[tuple[str, np.ndarray, bool]]


def _parse_object(obj: Node) -> tuple[str, np.ndarray, bool]:
    name = obj.findtext("name")
    if not name:
        raise ValueError("object without <name>")
    bnd = obj.find("bndbox")
    if bnd is None:
        raise ValueError(f"object '{name}' without <bndbox>")
    try:
        xmin, ymin, xmax, ymax = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        raise ValueError(f"object '{name}': <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
    if xmax < xmin or ymax < ymin:
        raise ValueError(f"object '{name}': zero or negative size box ({xmin}, {ymin}, {xmax}, {ymax})")
    difficult = (obj.findtext("difficult", "0") or "0") not in ("0", "")
    return name, np.array([xmin - 1, ymin - 1, xmax, ymax], np.float64), difficult


def read_xml(path: Path, report: Report) -> VocRecord | None:
    """Parse one VOC XML file; problems go to ``report`` with their line, and None is returned."""
    try:
        root = parse_xml(path)
    except (OSError, ValueError) as e:
        report.add(str(path), str(e))
        return None
    ok, size = True, None
    node = root.find("size")
    try:
        size = (int(float(node.findtext("height"))), int(float(node.findtext("width"))))
        if min(size) <= 0:
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        report.add(str(path), "missing or invalid <size> (width, height)", node.line if node is not None else root.line)
        ok = False
    objects = []
    for obj in (c for c in root.children if c.tag == "object"):
        try:
            objects.append(_parse_object(obj))
        except ValueError as e:
            report.add(str(path), str(e), obj.line)
            ok = False
    return VocRecord(size, root.findtext("filename"), objects) if ok else None


@dataclass
class VocSource:
    """One folder of annotations and images, with its split lists."""

    ann_dir: Path
    img_dir: Path
    list_dir: Path

    def split_file(self, split: str) -> Path | None:
        for name in SPLIT_PREFERENCE.get(split, (split,)):
            if (self.list_dir / f"{name}.txt").is_file():
                return self.list_dir / f"{name}.txt"
        return None

    def stems(self, split: str | None) -> list[str]:
        f = self.split_file(split) if split else None
        if f is None:
            return sorted(p.stem for p in self.ann_dir.glob("*.xml"))
        return [ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()]


def voc_sources(root: str | Path) -> list[VocSource]:
    """The annotation folders under ``root`` (see the module docstring for layouts)."""
    root = Path(root)
    if (root / "Annotations").is_dir():
        return [VocSource(root / "Annotations", root / "JPEGImages", root / "ImageSets" / "Main")]
    if (root / "annotations").is_dir():
        return [VocSource(root / "annotations", root / "images", root)]
    years = sorted(d for d in root.iterdir() if (d / "Annotations").is_dir()) if root.is_dir() else []
    if not years:
        raise DataFormatError(f"{root}: not a VOC tree (no Annotations/ nor VOC20xx/Annotations/ nor annotations/)")
    return [VocSource(d / "Annotations", d / "JPEGImages", d / "ImageSets" / "Main") for d in years]


def voc_splits(root: str | Path) -> list[str]:
    """Split lists available (``trainval``, ``test``, ...); ``["all"]`` when there are none."""
    names = set()
    for s in voc_sources(root):
        if s.list_dir.is_dir():
            names |= {p.stem for p in s.list_dir.glob("*.txt") if "_" not in p.stem}
    return sorted(names) or ["all"]


def class_names(sources: list[VocSource]) -> list[str]:
    """The 20 VOC classes when every name found is one of them, else all names found, sorted."""
    found: set[str] = set()
    for s in sources:
        for p in s.ann_dir.glob("*.xml"):
            found |= {m.strip() for m in _OBJECT_NAME.findall(p.read_text(errors="replace"))}
    return VOC_CLASSES if found <= set(VOC_CLASSES) else sorted(found)


def _image_file(finder: FileFinder, src: VocSource, stem: str, filename: str | None) -> Path:
    """The image of an annotation: its ``<filename>``, else ``<stem>`` with an image suffix; suffixes
    match in any case (``x.JPG`` for ``x.jpg``)."""
    named = src.img_dir / filename if filename else None
    found = (finder.find(named) if named else None) or finder.find(src.img_dir / (stem + ".jpg"), IMAGE_SUFFIXES)
    return found or named or src.img_dir / (stem + ".jpg")


def read_voc(root: str | Path, split: str | None = None, names: list[str] | None = None,
             decode: bool = True) -> DetectionDataset:
    """Read the ``split`` of every VOC folder under ``root``; ``None`` or ``"all"`` reads every XML.

    An image's id (``ds.source_ids``) is its position in the split's list
    (counting images skipped as bad). ``decode=False`` reads image headers only
    (see :func:`probe_image`).
    """
    sources = voc_sources(root)
    if split in (None, "all") or voc_splits(root) == ["all"]:
        split = None  # no split lists at all: every split is every annotated image
    names = names or class_names(sources)
    index = {n: i for i, n in enumerate(names)}
    report = Report(name=f"{root} [{split or 'all'}]")
    used = [s for s in sources if split is None or s.split_file(split)]
    if not used:
        raise DataFormatError(f"{root}: no '{split}' list in any ImageSets/Main (have: {', '.join(voc_splits(root))})")
    records, finder = [], FileFinder()
    for src in used:
        for stem in src.stems(split):
            xml_path, rec = _read_record(src, stem, report)
            image = _image_file(finder, src, stem, rec.filename) if rec else None
            records.append((xml_path, rec, image))
    sizes = iter(probe_images([image for _, rec, image in records if rec is not None], decode))
    builder = DatasetBuilder(names, report)
    for image_id, (xml_path, rec, image) in enumerate(records):
        if rec is None or not _add_record(builder, image_id, xml_path, rec, image, next(sizes), index, report):
            report.skipped_images += 1
    return builder.build()


def _read_record(src: VocSource, stem: str, report: Report) -> tuple[Path, VocRecord | None]:
    xml_path = src.ann_dir / f"{stem}.xml"
    if not xml_path.is_file():
        report.add(str(xml_path), "annotation file listed in the split is missing")
        return xml_path, None
    return xml_path, read_xml(xml_path, report)


def _add_record(builder: DatasetBuilder, image_id: int, xml_path: Path, rec: VocRecord, image: Path,
                size: tuple[int, int] | ImageError, index: dict, report: Report) -> bool:
    """Add one annotated image to ``builder``; False (with the problem reported) when it cannot be used."""
    if isinstance(size, ImageError):
        report.add(str(image), f"{size} (annotated in {xml_path.name})")
        return False
    if size != rec.size:
        report.add(str(xml_path), f"<size> says {rec.size[1]}x{rec.size[0]}, image is {size[1]}x{size[0]}")
        return False
    unknown = [o[0] for o in rec.objects if o[0] not in index]
    if unknown:
        report.add(str(xml_path), f"unknown class name(s) {sorted(set(unknown))}")
        return False
    boxes = np.array([o[1] for o in rec.objects], np.float64).reshape(-1, 4)
    builder.add(str(image), size, image_id, boxes, [index[o[0]] for o in rec.objects], None,
                [o[2] for o in rec.objects])
    return True
