"""Checking and normalizing COCO ground truth and detection results.

pycocotools and faster-coco-eval trust their input: a NaN score sorts anywhere,
a detection on an unknown category is dropped without a word, a negative width
gives a negative area, and a missing key ends in a ``KeyError`` deep inside.
Every entry is checked here first, and the first bad one is reported by its
index, its source and what was wrong (:class:`MetricsInputError`).

Checking is vectorized (NumPy over columns) because COCO-sized results have
~100k entries and the whole evaluation must stay as fast as faster-coco-eval;
only when the fast path finds something wrong does a per-entry scan run to
name the offending entry.

The outputs are fresh dicts: the caller's lists and dicts are never modified
(both COCO libraries write ``area``, ``id``, ``ignore``... into them).

Image and category ids may be JSON integers or strings, as pycocotools allows
(``1`` and ``"1"`` are different ids). When any is a string, the checked copy
numbers them ``0..N-1`` in sorted order (integers first, then strings) for the
evaluator, which needs integers, and keeps the map (``gt["id_map"]``) so that
detections are numbered the same way and per-class rows name the original id.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from rtdet.errors import RtdetError


class MetricsInputError(RtdetError, ValueError):
    """Ground truth or detections that cannot be scored; the message names the entry."""


def load_json(source: Any, what: str) -> tuple[Any, str]:
    """``(data, label)`` for a path (read as JSON) or an already loaded object.

    ``label`` names the source in error messages (the file path, or ``what``).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as e:
            raise MetricsInputError(f"{path}: cannot read {what}: {e.strerror or e}") from None
        try:
            return json.loads(text), str(path)
        except json.JSONDecodeError as e:
            raise MetricsInputError(
                f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})"
            ) from None
    return source, what


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_id(v: Any) -> bool:
    return _is_int(v) or isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _box_problem(box: Any) -> str | None:
    """Why ``box`` is not a valid COCO ``[x, y, w, h]``, or None."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        return f"bbox must be a list of 4 numbers [x, y, w, h], got {box!r}"
    if not all(math.isfinite(v) for v in box):
        return f"bbox has a non-finite value: {list(box)!r}"
    if box[2] < 0 or box[3] < 0:
        return f"bbox has a negative width or height: {list(box)!r}"
    return None


def _entry_problem(entry: Any, keys: tuple[str, ...], image_ids: set, cat_ids: set) -> str | None:
    """Why one annotation / detection dict is invalid, or None (the slow, precise check)."""
    if not isinstance(entry, dict):
        return f"expected an object {{...}}, got {type(entry).__name__}"
    missing = [k for k in keys if k not in entry]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not _is_id(entry["image_id"]):
        return f"image_id must be an integer or a string, got {entry['image_id']!r}"
    if entry["image_id"] not in image_ids:
        return f"image_id {entry['image_id']!r} is not in the ground truth images"
    if not _is_id(entry["category_id"]):
        return f"category_id must be an integer or a string, got {entry['category_id']!r}"
    if entry["category_id"] not in cat_ids:
        return f"category_id {entry['category_id']!r} is not in the ground truth categories"
    problem = _box_problem(entry["bbox"])
    if problem:
        return problem
    for key in ("score", "area"):
        if key in entry and (not _is_number(entry[key]) or not math.isfinite(entry[key])):
            return f"{key} must be a finite number, got {entry[key]!r}"
        if key == "area" and key in entry and entry[key] < 0:
            return f"area must be >= 0, got {entry[key]!r}"
    if "iscrowd" in entry and entry["iscrowd"] not in (0, 1):
        return f"iscrowd must be 0 or 1, got {entry['iscrowd']!r}"
    return None


def _raise_first_problem(entries: list, prefix: str, keys: tuple[str, ...], image_ids: set, cat_ids: set) -> None:
    """Raise for the first invalid entry as ``"<prefix> <index>: <problem>"``."""
    for i, entry in enumerate(entries):
        problem = _entry_problem(entry, keys, image_ids, cat_ids)
        if problem:
            raise MetricsInputError(f"{prefix} {i}: {problem}")


def _columns(entries: list, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Columns of ``entries`` as arrays, or None when they are not well-formed."""
    try:
        cols = {k: [e[k] for e in entries] for k in keys}
        out = {k: np.asarray(v) for k, v in cols.items() if k != "bbox"}
        out["bbox"] = np.asarray(cols["bbox"], dtype=np.float64) if entries else np.zeros((0, 4))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if out["bbox"].shape != (len(entries), 4):  # e.g. a nested [[x, y, w, h]]
        return None
    for k in ("image_id", "category_id"):
        if len(entries) and out[k].dtype.kind not in "iu":  # floats, bools, strings
            return None
    for k in ("score",):
        if k in out and len(entries) and out[k].dtype.kind not in "iuf":
            return None
    return out


def _fast_check(cols: dict[str, np.ndarray] | None, image_ids: np.ndarray, cat_ids: np.ndarray) -> bool:
    """True when every entry passes the vectorized checks."""
    if cols is None:
        return False
    box = cols["bbox"]
    ok = np.isfinite(box).all() and (box[:, 2:] >= 0).all()
    ok = ok and np.isin(cols["image_id"], image_ids).all() and np.isin(cols["category_id"], cat_ids).all()
    if "score" in cols:
        ok = ok and np.isfinite(cols["score"]).all()
    return bool(ok)


def _check_table(data: dict, key: str, label: str, id_key: str = "id") -> list[dict]:
    """The ``images`` or ``categories`` list of a GT dict, with unique integer or string ids."""
    rows = data.get(key)
    if not isinstance(rows, list):
        raise MetricsInputError(f"{label}: ground truth needs a '{key}' list, got {type(rows).__name__}")
    seen: set = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not _is_id(row.get(id_key)):
            raise MetricsInputError(f"{label}: {key}[{i}]: needs an integer or string '{id_key}', got {row!r:.80}")
        if row[id_key] in seen:
            raise MetricsInputError(f"{label}: {key}[{i}]: duplicate {id_key} {row[id_key]!r}")
        seen.add(row[id_key])
    return rows


def _numbering(ids: list) -> dict | None:
    """``{id: 0..N-1}`` in sorted order (integers first, then strings) when any id is a string, else None."""
    if all(_is_int(v) for v in ids):
        return None
    return {v: k for k, v in enumerate(sorted(ids, key=lambda v: (isinstance(v, str), v)))}


def check_ground_truth(gt: Any) -> dict:
    """A clean copy of a COCO instances GT (path or dict) for the COCO evaluators.

    Annotations are copied with only the keys evaluation reads; ``area`` defaults
    to ``w * h`` and ``iscrowd`` to 0 when absent; annotation ids are renumbered
    ``1..N`` because both COCO libraries use the id as a "matched" marker (an id
    of 0 would count as unmatched) and look annotations up by id (duplicate ids
    would alias).

    Raises:
        MetricsInputError: malformed JSON, missing lists, or the first bad annotation.
    """
    data, label = load_json(gt, "ground truth")
    if not isinstance(data, dict):
        raise MetricsInputError(f"{label}: ground truth must be a COCO object {{images, annotations, categories}}")
    images = _check_table(data, "images", label)
    categories = _check_table(data, "categories", label)
    if not categories:
        raise MetricsInputError(f"{label}: ground truth has no categories")
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise MetricsInputError(f"{label}: 'annotations' must be a list")
    id_map = {"images": _numbering([im["id"] for im in images]),
              "categories": _numbering([c["id"] for c in categories])}
    if any(id_map.values()):
        anns = _renumber(anns, id_map, f"{label}: annotation", ("image_id", "category_id", "bbox"))
        images = [{**im, "id": _new_id(im["id"], id_map["images"])} for im in images]
        categories = [{**c, "id": _new_id(c["id"], id_map["categories"]), "source_id": c["id"]} for c in categories]
    image_ids = np.array([im["id"] for im in images], dtype=np.int64)
    cat_ids = np.array([c["id"] for c in categories], dtype=np.int64)
    keys = ("image_id", "category_id", "bbox")
    cols = _columns(anns, keys)
    if not _fast_check(cols, image_ids, cat_ids) or not all(_extras_ok(a) for a in anns):
        _raise_first_problem(anns, f"{label}: annotation", keys, set(image_ids.tolist()), set(cat_ids.tolist()))
    clean = []
    for i, a in enumerate(anns):
        box = [float(v) for v in a["bbox"]]
        clean.append({
            "id": i + 1,
            "image_id": int(a["image_id"]),
            "category_id": int(a["category_id"]),
            "bbox": box,
            "area": float(a["area"]) if "area" in a else box[2] * box[3],
            "iscrowd": int(a.get("iscrowd", 0)),
        })
    out = {
        "images": [{"id": im["id"], "height": im.get("height", 0), "width": im.get("width", 0)} for im in images],
        "categories": [{"id": c["id"], "name": str(c.get("name", c.get("source_id", c["id"]))),
                        **({"source_id": c["source_id"]} if "source_id" in c else {})} for c in categories],
        "annotations": clean,
    }
    if any(id_map.values()):
        out["id_map"] = id_map
    return out


def _new_id(value: Any, numbering: dict | None) -> Any:
    return numbering[value] if numbering is not None else value


def _renumber(entries: list, id_map: dict, prefix: str, keys: tuple[str, ...]) -> list:
    """Copies of ``entries`` with string-bearing ids replaced by their numbers (see the module docstring);
    raises for the first entry whose ids are malformed or unknown, naming it with its original ids."""
    known = {k: set(m) for k, m in id_map.items() if m is not None}
    images, cats = id_map["images"], id_map["categories"]
    _raise_first_problem(entries, prefix, keys, known.get("images", _ANY), known.get("categories", _ANY))
    return [{**e, "image_id": _new_id(e["image_id"], images), "category_id": _new_id(e["category_id"], cats)}
            for e in entries]


class _Anything:
    """A set that holds every value (a table whose integer ids the fast checks look up later)."""

    def __contains__(self, value: Any) -> bool:
        return True


_ANY = _Anything()


def _extras_ok(ann: Any) -> bool:
    """Optional GT keys (area, iscrowd) are well-formed; cheap enough per entry for ~40k GT boxes."""
    area = ann.get("area", 0.0)
    return _is_number(area) and math.isfinite(area) and area >= 0 and ann.get("iscrowd", 0) in (0, 1)


def check_detections(dets: Any, gt: dict, label: str = "detections") -> list[dict]:
    """Fresh COCO result dicts ``{id, image_id, category_id, bbox, score, area, iscrowd}``.

    Args:
        dets: a path to a COCO results json, or a list of ``{image_id, category_id,
            bbox: [x, y, w, h], score}``.
        gt: the output of :func:`check_ground_truth` (for the known ids).

    Raises:
        MetricsInputError: naming the first entry with an unknown image or
            category id, a non-finite score or box, a negative size or a missing key.
    """
    data, label = load_json(dets, label)
    if isinstance(data, dict) and "annotations" in data:
        raise MetricsInputError(f"{label}: expected a COCO results list, got a dict (a ground-truth file?)")
    if not isinstance(data, list):
        raise MetricsInputError(f"{label}: expected a list of detections, got {type(data).__name__}")
    keys = ("image_id", "category_id", "bbox", "score")
    if gt.get("id_map"):
        data = _renumber(data, gt["id_map"], f"{label}: detection", keys)
    image_ids = np.array([im["id"] for im in gt["images"]], dtype=np.int64)
    cat_ids = np.array([c["id"] for c in gt["categories"]], dtype=np.int64)
    cols = _columns(data, keys)
    if not _fast_check(cols, image_ids, cat_ids):
        _raise_first_problem(data, f"{label}: detection", keys, set(image_ids.tolist()), set(cat_ids.tolist()))
        raise MetricsInputError(f"{label}: malformed detections")  # the scan found nothing: should not happen
    assert cols is not None
    boxes = cols["bbox"].tolist()
    areas = (cols["bbox"][:, 2] * cols["bbox"][:, 3]).tolist()
    return [
        {"id": i + 1, "image_id": im, "category_id": c, "bbox": b, "score": s, "area": a, "iscrowd": 0}
        for i, (im, c, b, s, a) in enumerate(
            zip(cols["image_id"].tolist(), cols["category_id"].tolist(), boxes, cols["score"].tolist(), areas)
        )
    ]
