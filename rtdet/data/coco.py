"""COCO instances json: reader, writer and the ground-truth dict metrics score against.

COCO category ids are not contiguous (1..90 for COCO's 80 classes); labels are
their index in sorted-id order and ``dataset.cat_ids[label]`` gives the id back.
``iscrowd`` boxes are kept and flagged. Boxes are ``[x, y, w, h]`` in the json
and absolute ``xyxy`` inside rtdet.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rtdet.data.dataset import DatasetBuilder, DetectionDataset, ImageError, probe_images
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError, place_image, unique_stems


def infer_images_dir(ann_path: Path) -> Path:
    """The image folder next to an annotation json: ``../images``, ``images``, ``../<split>``, ``../images/<split>``."""
    split = ann_path.stem.split("_")[-1]  # instances_val2017 -> val2017
    base = ann_path.parent
    for cand in (base.parent / "images" / split, base.parent / split, base / "images", base.parent / "images",
                 base / split, base):
        if cand.is_dir() and any(cand.iterdir()):
            return cand
    return base


def load_coco_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(f"annotation file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataFormatError(f"{path}: a COCO instances json needs a '{key}' list")
    return data


def _check_ids(items: list, what: str, path: str, report: Report) -> dict[Any, int]:
    """Index of each id in ``items``; duplicates are reported and their later copies marked bad."""
    seen: dict[Any, int] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            report.add(path, f"{what}[{k}] has no 'id'")
            continue
        if item["id"] in seen:
            report.add(path, f"duplicate {what[:-1]} id {item['id']} ({what}[{seen[item['id']]}] and {what}[{k}])")
            continue
        seen[item["id"]] = k
    return seen


def _annotation_box(ann: dict) -> np.ndarray:
    """The xyxy box of an annotation; raises ValueError with the reason."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox must be [x, y, w, h], got {bbox!r}")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"non-numeric bbox {bbox!r}") from None
    if not np.isfinite([x, y, w, h]).all():
        raise ValueError(f"non-finite bbox {bbox!r}")
    if w <= 0 or h <= 0:
        raise ValueError(f"zero or negative width/height in bbox {bbox!r}")
    return np.array([x, y, x + w, y + h], np.float64)


def _group_annotations(data: dict, path: str, images: dict, cats: dict, report: Report) -> tuple[dict, set]:
    """Annotations per image id (as ``(box, label, crowd, area)``) and the image ids with a bad annotation."""
    per_image: dict[Any, list] = {}
    bad: set = set()
    ann_ids: set = set()
    for k, ann in enumerate(data["annotations"]):
        where = f"annotations[{k}] (id {ann.get('id')})" if isinstance(ann, dict) else f"annotations[{k}]"
        if not isinstance(ann, dict):
            report.add(path, f"{where} is not an object")
            continue
        img_id = ann.get("image_id")
        problem = None
        if ann.get("id") in ann_ids:
            problem = f"duplicate annotation id {ann.get('id')} at {where}"
        elif img_id not in images:
            problem = f"{where} points at image id {img_id!r}, which is not in 'images'"
        elif ann.get("category_id") not in cats:
            problem = f"{where} has unknown category id {ann.get('category_id')!r}"
        ann_ids.add(ann.get("id"))
        try:
            box = _annotation_box(ann)
        except ValueError as e:
            problem = problem or f"{where}: {e}"
        if problem:
            report.add(path, problem)
            bad.add(img_id)
            continue
        area = float(ann.get("area", (box[2] - box[0]) * (box[3] - box[1])))
        per_image.setdefault(img_id, []).append((box, cats[ann["category_id"]], bool(ann.get("iscrowd", 0)), area))
    return per_image, bad


def _json_size(im: dict) -> tuple[int, int] | ImageError:
    try:
        return int(im["height"]), int(im["width"])
    except (KeyError, TypeError, ValueError):
        return ImageError("image entry without a valid height and width")


def read_coco(ann_path: str | Path, images_dir: str | Path | None = None, probe: bool = True) -> DetectionDataset:
    """Read a COCO instances json; images come from ``images_dir`` (inferred when None).

    Bad images (missing, unreadable, duplicate id, a bad annotation) are
    reported and left out. ``probe=False`` skips reading image headers (trusts
    the json's sizes).
    """
    ann_path = Path(ann_path)
    data = load_coco_json(ann_path)
    images_dir = Path(images_dir) if images_dir else infer_images_dir(ann_path)
    path, report = str(ann_path), Report(name=str(ann_path))
    cat_index = _check_ids(data["categories"], "categories", path, report)
    cat_ids = sorted(cat_index)
    cats = {cid: i for i, cid in enumerate(cat_ids)}
    names = [str(data["categories"][cat_index[c]].get("name", c)) for c in cat_ids]
    images = _check_ids(data["images"], "images", path, report)
    per_image, bad = _group_annotations(data, path, images, cats, report)
    dup_rows = {k for k, im in enumerate(data["images"]) if not isinstance(im, dict) or images.get(im.get("id")) != k}
    builder = DatasetBuilder(names, report)
    rows = [k for k, im in enumerate(data["images"]) if k not in dup_rows and im.get("id") not in bad]
    report.skipped_images += len(data["images"]) - len(rows)
    files = [images_dir / str(data["images"][k].get("file_name", "")) for k in rows]
    sizes = probe_images(files) if probe else [_json_size(data["images"][k]) for k in rows]
    for k, file, size in zip(rows, files, sizes):
        im = data["images"][k]
        if isinstance(size, ImageError):
            report.add(str(file), f"{size} (images[{k}], id {im['id']})")
            report.skipped_images += 1
            continue
        h, w = size
        if probe and (im.get("height"), im.get("width")) not in ((h, w), (None, None)):
            report.add(str(file), f"json says {im.get('width')}x{im.get('height')}, image is {w}x{h} (images[{k}])")
            report.skipped_images += 1
            continue
        anns = per_image.get(im["id"], [])
        builder.add(str(file), (h, w), im["id"], np.array([a[0] for a in anns]).reshape(-1, 4),
                    [a[1] for a in anns], [a[2] for a in anns], None, [a[3] for a in anns])
    return builder.build(cat_ids=cat_ids)


def to_coco_gt(ds: DetectionDataset, original_ids: bool = False,
               file_names: dict[str, str] | None = None) -> dict:
    """COCO-format ground truth of ``ds`` in original-image pixels.

    Category ids are the labels 0..K-1, or the original COCO ids when
    ``original_ids`` (and the data came from COCO). Every annotation carries
    ``iscrowd`` (crowd boxes) and ``ignore`` + ``difficult`` (VOC difficult
    boxes, which a scorer should ignore). ``file_names`` maps image paths to the
    ``file_name`` written (default: the path as read).
    """
    ids = ds.cat_ids if (original_ids and ds.cat_ids) else list(range(len(ds.names)))
    images, annotations = [], []
    for i in range(len(ds)):
        h, w = (int(v) for v in ds.sizes[i])
        f = ds.file(i)
        images.append({"id": int(ds.image_ids[i]), "file_name": file_names.get(f, f) if file_names else f,
                       "height": h, "width": w})
        a, b = ds.offsets[i], ds.offsets[i + 1]
        for j in range(a, b):
            x1, y1, x2, y2 = (float(v) for v in ds.boxes[j])
            area = float(ds.areas[j]) if ds.areas is not None else (x2 - x1) * (y2 - y1)
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(ds.image_ids[i]), "category_id": int(ids[ds.labels[j]]),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": int(ds.iscrowd[j]),
                "ignore": int(ds.difficult[j]), "difficult": int(ds.difficult[j])})
    categories = [{"id": int(c), "name": n, "supercategory": ""} for c, n in zip(ids, ds.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(splits: dict[str, DetectionDataset], out_dir: str | Path, copy: bool = False) -> list[Path]:
    """Write ``OUT/images/`` (linked or copied) and ``OUT/annotations/<split>.json`` per split."""
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    stems = unique_stems([ds.file(i) for ds in splits.values() for i in range(len(ds))])
    names = {f: stem + Path(f).suffix for f, stem in stems.items()}
    for f, name in names.items():
        if not (out / "images" / name).exists():
            place_image(f, out / "images" / name, copy)
    paths = []
    for split, ds in splits.items():
        gt = to_coco_gt(ds, original_ids=True, file_names=names)
        for ann in gt["annotations"]:
            del ann["ignore"]  # an rtdet-internal hint, not a COCO field
            if not ann["difficult"]:
                del ann["difficult"]
        path = out / "annotations" / f"{split}.json"
        path.write_text(json.dumps(gt))
        paths.append(path)
    return paths


def category_counts(data: dict) -> Counter:
    """Boxes per category id of a COCO dict (for reports and tests)."""
    return Counter(a["category_id"] for a in data["annotations"])
