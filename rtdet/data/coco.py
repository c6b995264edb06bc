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
from typing import Any, Sequence

import numpy as np

from rtdet.data.dataset import DatasetBuilder, DetectionDataset, FileFinder, ImageError, probe_images
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError, place_image, unique_stems


def infer_images_dir(ann_path: Path) -> Path:
    """The image folder next to an annotation json: ``../images/<split>``, ``../<split>``, ``images``, ``../images``."""
    split = ann_path.stem.split("_")[-1]  # instances_val2017 -> val2017
    base = ann_path.parent
    for cand in (base.parent / "images" / ann_path.stem, base.parent / "images" / split, base.parent / split,
                 base / "images", base.parent / "images", base / split, base):
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
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: cannot read annotation file ({e})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: a COCO instances json is an object with 'images', 'annotations' and "
                              f"'categories', got a JSON {_JSON_TYPES.get(type(data), type(data).__name__)}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataFormatError(f"{path}: a COCO instances json needs a '{key}' list")
    return data


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
               list: "array", dict: "object"}


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a COCO id, or None: ids are JSON integers or strings.

    Ids are compared with their type, as pycocotools' dicts compare them: ``1``
    and ``"1"`` are two different ids, never merged. Numbers with a fraction,
    booleans, null, arrays and objects are refused (``1.0`` would silently
    equal ``1`` in a Python dict).
    """
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    return f"must be an integer or a string, got {json.dumps(value)[:40]} ({_JSON_TYPES.get(type(value), 'value')})"


def id_sort_key(value: int | str) -> tuple[bool, int | str]:
    """Sort order of ids of mixed types: integers (by value) first, then strings."""
    return isinstance(value, str), value


def _twin(value: Any, ids: dict) -> str:
    """A hint when ``value`` misses only by its type (``"7"`` where the id is ``7``)."""
    other = str(value) if isinstance(value, int) else int(value) if isinstance(value, str) and value.isdigit() else None
    return f" (there is an id {other!r}: ids of different types are different ids)" if other in ids else ""


def _check_ids(items: list, what: str, path: str, report: Report) -> dict[Any, int]:
    """Index of each id in ``items``; bad and duplicate ids are reported and their entries left out."""
    seen: dict[Any, int] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            report.add(path, f"{what}[{k}] has no 'id'")
            continue
        problem = id_problem(item["id"])
        if problem:
            report.add(path, f"{what}[{k}]: id {problem}")
            continue
        if item["id"] in seen:
            report.add(path, f"duplicate {what[:-1]} id {item['id']!r} ({what}[{seen[item['id']]}] and {what}[{k}])")
            continue
        seen[item["id"]] = k
    return seen


def _annotation_box(ann: dict) -> tuple[np.ndarray, float]:
    """The xyxy box and the area of an annotation; raises ValueError with the reason."""
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
    area = ann.get("area", w * h)
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not np.isfinite(area) or area < 0:
        raise ValueError(f"area must be a number >= 0, got {json.dumps(area)[:40]}")
    return np.array([x, y, x + w, y + h], np.float64), float(area)


def _annotation_problem(ann: dict, where: str, images: dict, cats: dict, ann_ids: set) -> str | None:
    """What is wrong with the ids of one annotation, or None."""
    img, cat = ann.get("image_id"), ann.get("category_id")
    if id_problem(img):
        return f"{where}: image_id {id_problem(img)}"
    if img not in images:
        return f"{where} points at image id {img!r}, which is not in 'images'{_twin(img, images)}"
    if id_problem(cat):
        return f"{where}: category_id {id_problem(cat)}"
    if cat not in cats:
        return f"{where} has unknown category id {cat!r}{_twin(cat, cats)}"
    if "id" in ann and id_problem(ann["id"]):
        return f"{where}: id {id_problem(ann['id'])}"
    if ann.get("id") in ann_ids:
        return f"duplicate annotation id {ann.get('id')!r} at {where}"
    return None


def _group_annotations(data: dict, path: str, images: dict, cats: dict, report: Report) -> tuple[dict, set]:
    """Annotations per image id (as ``(box, label, crowd, difficult, area)``) and the image ids with a bad
    annotation. ``difficult`` (or ``ignore``) marks a VOC difficult box: rtdet writes those with ``iscrowd`` 1
    for COCO scorers, and reads them back as difficult, not crowd (:func:`write_coco`)."""
    per_image: dict[Any, list] = {}
    bad: set = set()
    ann_ids: set = set()
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            report.add(path, f"annotations[{k}] is not an object")
            continue
        where = f"annotations[{k}] (id {json.dumps(ann.get('id'))[:40]})"
        problem = _annotation_problem(ann, where, images, cats, ann_ids)
        if not id_problem(ann.get("id")):
            ann_ids.add(ann.get("id"))
        try:
            box, area = _annotation_box(ann)
        except ValueError as e:
            problem = problem or f"{where}: {e}"
        img_id = ann.get("image_id")
        if problem:
            report.add(path, problem)
            if not id_problem(img_id) and img_id in images:
                bad.add(img_id)
            continue
        difficult = bool(ann.get("difficult", 0) or ann.get("ignore", 0))
        crowd = bool(ann.get("iscrowd", 0)) and not difficult
        per_image.setdefault(img_id, []).append((box, cats[ann["category_id"]], crowd, difficult, area))
    return per_image, bad


def _json_size(im: dict) -> tuple[int, int] | None:
    """``(height, width)`` from an image entry, None when absent or not whole numbers."""
    h, w = im.get("height"), im.get("width")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in (h, w))
    return (int(h), int(w)) if ok else None


def _image_files(data: dict, rows: list[int], images_dir: Path, path: str, report: Report) -> dict[int, Path]:
    """The file of each image row (a suffix may differ in case: ``x.JPG`` for ``x.jpg``); bad names are reported."""
    finder, files = FileFinder(), {}
    for k in rows:
        name = data["images"][k].get("file_name")
        if not isinstance(name, str) or not name:
            report.add(path, f"images[{k}] (id {data['images'][k]['id']!r}) has no 'file_name' string")
            continue
        files[k] = finder.find(images_dir / name) or images_dir / name
    return files


def read_coco(ann_path: str | Path, images_dir: str | Path | None = None, probe: bool = True,
              decode: bool = True) -> DetectionDataset:
    """Read a COCO instances json; images come from ``images_dir`` (inferred when None).

    Bad images (missing, not decodable, a bad or duplicate id, a bad annotation)
    are reported and left out. Ids are kept as the json has them
    (``ds.source_ids``, ``ds.cat_ids``; see :class:`DetectionDataset`);
    category ids sort integers first, then strings, to give labels 0..K-1.
    ``decode=False`` reads image headers only; ``probe=False`` does not open the
    images at all (trusts the json's sizes).
    """
    ann_path = Path(ann_path)
    data = load_coco_json(ann_path)
    images_dir = Path(images_dir) if images_dir else infer_images_dir(ann_path)
    path, report = str(ann_path), Report(name=str(ann_path))
    cat_index = _check_ids(data["categories"], "categories", path, report)
    cat_ids = sorted(cat_index, key=id_sort_key)
    cats = {cid: i for i, cid in enumerate(cat_ids)}
    names = [str(data["categories"][cat_index[c]].get("name", c)) for c in cat_ids]
    images = _check_ids(data["images"], "images", path, report)
    per_image, bad = _group_annotations(data, path, images, cats, report)
    builder = DatasetBuilder(names, report)
    rows = sorted(k for img_id, k in images.items() if img_id not in bad)
    files = _image_files(data, rows, images_dir, path, report)
    rows = [k for k in rows if k in files]
    report.skipped_images += len(data["images"]) - len(rows)
    sizes = probe_images([files[k] for k in rows], decode) if probe else [_json_size(data["images"][k]) for k in rows]
    for k, size in zip(rows, sizes):
        im, file = data["images"][k], files[k]
        where = f"images[{k}], id {im['id']!r}"
        if size is None or isinstance(size, ImageError):
            report.add(str(file), f"{size or 'image entry without a valid height and width'} ({where})")
            report.skipped_images += 1
            continue
        h, w = size
        if probe and ("height" in im or "width" in im) and _json_size(im) != (h, w):
            report.add(str(file), f"json says {im.get('width')}x{im.get('height')}, image is {w}x{h} ({where})")
            report.skipped_images += 1
            continue
        anns = per_image.get(im["id"], [])
        builder.add(str(file), (h, w), im["id"], np.array([a[0] for a in anns]).reshape(-1, 4),
                    [a[1] for a in anns], [a[2] for a in anns], [a[3] for a in anns], [a[4] for a in anns])
    return builder.build(cat_ids=cat_ids)


def to_coco_gt(ds: DetectionDataset, original_ids: bool = False,
               file_names: dict[str, str] | None = None) -> dict:
    """COCO-format ground truth of ``ds`` in original-image pixels.

    Ids are rtdet's own (image = position ``0..N-1``, as targets' ``image_id``;
    category = label ``0..K-1``), or with ``original_ids`` the data set's own
    (``ds.source_ids`` and, for COCO data, ``ds.cat_ids``; see
    :class:`DetectionDataset`). Every annotation carries ``iscrowd`` (crowd
    boxes) and ``ignore`` + ``difficult`` (VOC difficult boxes, which a scorer
    should ignore). ``file_names`` maps image paths to the ``file_name`` written
    (default: the path as read).
    """
    cat_ids = [ds.category_id(k) if original_ids else k for k in range(len(ds.names))]
    image_ids = ds.source_ids if original_ids else ds.image_ids.tolist()
    images, annotations = [], []
    for i in range(len(ds)):
        h, w = (int(v) for v in ds.sizes[i])
        f = ds.file(i)
        images.append({"id": image_ids[i], "file_name": file_names.get(f, f) if file_names else f,
                       "height": h, "width": w})
        a, b = ds.offsets[i], ds.offsets[i + 1]
        for j in range(a, b):
            x1, y1, x2, y2 = (float(v) for v in ds.boxes[j])
            area = float(ds.areas[j]) if ds.areas is not None else (x2 - x1) * (y2 - y1)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_ids[i], "category_id": cat_ids[ds.labels[j]],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": int(ds.iscrowd[j]),
                "ignore": int(ds.difficult[j]), "difficult": int(ds.difficult[j])})
    categories = [{"id": c, "name": n, "supercategory": ""} for c, n in zip(cat_ids, ds.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def detections_to_coco_results(preds: Sequence[dict], dataset: DetectionDataset) -> list[dict]:
    """Detections as a COCO results list in the data set's own numbering, for pycocotools and other tools.

    Args:
        preds: per image ``{"image_id": int, "boxes": [K, 4] float xyxy in original pixels,
            "scores": [K], "labels": [K] int}`` (tensors or arrays); ``image_id`` is rtdet's
            id of the image in ``dataset`` (its position, as targets carry it).
        dataset: the data set the predictions are for.

    Returns:
        ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]`` with the
        data set's image ids (``dataset.source_ids``) and category ids (``dataset.cat_ids``
        for COCO data; the label for YOLO and VOC data, as ``rtdet data convert --to coco``
        writes them), so that scoring against the user's own annotation file needs no remapping.

    Raises:
        ValueError: naming the prediction whose image id or label is not in ``dataset``.
    """
    out = []
    for k, p in enumerate(preds):
        i = int(p["image_id"])
        if not 0 <= i < len(dataset):
            raise ValueError(f"prediction {k}: image_id {i} is not an image of the data set (0..{len(dataset) - 1})")
        boxes, scores, labels = (_numpy(p[key]) for key in ("boxes", "scores", "labels"))
        boxes = boxes.astype(np.float64).reshape(-1, 4)
        if ((labels < 0) | (labels >= len(dataset.names))).any():
            raise ValueError(f"prediction {k}: label outside 0..{len(dataset.names) - 1}: {labels.tolist()}")
        image_id = dataset.source_ids[i]
        for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.astype(np.float64).tolist(), labels.tolist()):
            out.append({"image_id": image_id, "category_id": dataset.category_id(int(label)),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return out


def _numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a NumPy array."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def write_coco(splits: dict[str, DetectionDataset], out_dir: str | Path, copy: bool = False) -> list[Path]:
    """Write ``OUT/annotations/<split>.json`` per split and the images they name (linked or copied).

    Images keep their file names, in ``OUT/images/`` for one split and in
    ``OUT/images/<split>/`` for several (so ``train/00000.jpg`` and
    ``val/00000.jpg`` both keep theirs); only two files of one split with the
    same name get a suffix (``x_1.jpg``). Ids are the data set's own (see
    :class:`DetectionDataset`), so detections that ``rtdet val`` writes for the
    source data score against these files. A VOC ``difficult`` box is written with
    ``"iscrowd": 1`` and ``"difficult": 1``: a COCO scorer ignores it (as rtdet's
    COCO and VOC numbers do), and :func:`read_coco` reads it back as difficult.
    """
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    paths = []
    for split, ds in splits.items():
        folder = out / "images" / split if len(splits) > 1 else out / "images"
        stems = unique_stems([ds.file(i) for i in range(len(ds))])
        names = {f: stem + Path(f).suffix for f, stem in stems.items()}
        for f, name in names.items():
            if not (folder / name).exists():
                place_image(f, folder / name, copy)
        gt = to_coco_gt(ds, original_ids=True, file_names=names)
        for ann in gt["annotations"]:
            del ann["ignore"]  # an rtdet-internal hint, not a COCO field
            if ann["difficult"]:  # COCO's only "ignore" is a crowd region: pycocotools then ignores it as rtdet does
                ann["iscrowd"] = 1
            else:
                del ann["difficult"]
        path = out / "annotations" / f"{split}.json"
        path.write_text(json.dumps(gt))
        paths.append(path)
    return paths


def category_counts(data: dict) -> Counter:
    """Boxes per category id of a COCO dict (for reports and tests)."""
    return Counter(a["category_id"] for a in data["annotations"])
