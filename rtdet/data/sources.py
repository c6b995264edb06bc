"""Open a data set from the ``data`` setting: a YOLO data.yaml, a COCO json, a VOC tree, or ``digits``.

Example:
    >>> train = open_dataset("digits", "train", root="datasets/digits")  # doctest: +SKIP
    >>> val = open_dataset("coco/annotations/instances_val2017.json", "val", images="coco/val2017")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rtdet.data.coco import read_coco
from rtdet.data.dataset import DetectionDataset
from rtdet.data.voc import read_voc, voc_splits
from rtdet.data.yolo import DataFormatError, load_data_yaml, read_yolo

DIGITS_ROOT = "datasets/digits"


def _yaml_kind(path: Path) -> dict:
    """A data yaml: YOLO (``names`` + splits) or a small COCO one (splits are ``.json`` files)."""
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DataFormatError(f"{path}: cannot read data yaml ({e})") from None
    return cfg if isinstance(cfg, dict) else {}


def coco_folder_json(folder: Path, split: str) -> Path | None:
    """The COCO json of ``split`` in a COCO folder (``annotations/*.json`` beside the images), or None when
    ``folder`` is not one. The json whose name holds the split ("instances_val2017.json" for ``val``) is
    chosen; a folder with a single json uses it for every split (as a single json file does).

    Raises:
        DataFormatError: several jsons and none names the split.
    """
    ann = folder / "annotations"
    jsons = sorted(ann.glob("*.json")) if ann.is_dir() else []
    if not jsons or next(ann.glob("*.xml"), None) is not None:
        return None
    if len(jsons) == 1:
        return jsons[0]
    named = [j for j in jsons if split in j.stem]
    if not named:
        raise DataFormatError(f"{ann}: no json for the '{split}' split (have: {', '.join(j.name for j in jsons)})")
    return min(named, key=lambda j: len(j.name))  # "instances_val2017" before "person_keypoints_val2017"


def open_dataset(spec: str | Path, split: str, root: str | Path | None = None,
                 images: str | Path | None = None, decode: bool = True) -> DetectionDataset:
    """The ``split`` ("train", "val", ...) of the data set named by ``spec``.

    Args:
        spec: ``digits``; a YOLO ``data.yaml``; a COCO ``.json`` (one file serves
            every split); a yaml whose splits are COCO jsons (``train: a.json``,
            optional ``train_images: dir``); a VOC tree; a COCO folder (``annotations/*.json``, see
            :func:`coco_folder_json`); or a folder with ``data.yaml``.
        root: where the digits set lives (generated there if absent; default ``datasets/digits``).
        images: COCO image folder (inferred from the json's location when None).
        decode: decode every image to judge it (False: read headers only, faster, but a
            truncated file is not caught; see :func:`rtdet.data.dataset.probe_image`).

    The returned dataset's ``report`` lists the bad samples it skipped.
    """
    spec = str(spec)
    if spec == "digits":
        from rtdet.data.digits import ensure_digits

        return read_yolo(ensure_digits(root or DIGITS_ROOT), split, decode)
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return read_coco(path, images, decode=decode)
    if path.suffix.lower() in (".yaml", ".yml"):
        cfg = _yaml_kind(path)
        entry = cfg.get(split)
        if isinstance(entry, str) and entry.lower().endswith(".json"):
            base = Path(cfg.get("path") or path.parent)
            base = base if base.is_absolute() else path.parent / base
            img = cfg.get(f"{split}_images")
            return read_coco(base / entry, (base / img) if img else images, decode=decode)
        return read_yolo(path, split, decode)
    if path.is_dir() and (path / "data.yaml").is_file():
        return read_yolo(path / "data.yaml", split, decode)
    if path.is_dir() and (coco := coco_folder_json(path, split)) is not None:
        return read_coco(coco, images, decode=decode)
    if path.is_dir():
        return read_voc(path, split, decode=decode)
    raise DataFormatError(f"data set {spec!r} not found: expected 'digits', a data.yaml, a COCO json or a VOC folder")


def dataset_splits(spec: str | Path, root: str | Path | None = None) -> list[str]:
    """The split names a data set has (for ``rtdet data check`` and converters)."""
    spec = str(spec)
    if spec == "digits":
        return ["train", "val"]
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return [path.stem]
    if path.is_dir() and (path / "data.yaml").is_file():
        path = path / "data.yaml"
    if path.suffix.lower() in (".yaml", ".yml"):
        cfg = _yaml_kind(path)
        if not any(isinstance(cfg.get(k), str) and cfg[k].lower().endswith(".json") for k in ("train", "val", "test")):
            cfg = load_data_yaml(path)
        return [k for k in ("train", "val", "test") if cfg.get(k)]
    if path.is_dir() and coco_folder_json(path, "train") is not None:
        jsons = sorted((path / "annotations").glob("*.json"))
        return [k for k in ("train", "val", "test") if any(k in j.stem for j in jsons)] or [jsons[0].stem]
    if path.is_dir():
        return voc_splits(path)
    raise DataFormatError(f"data set {spec!r} not found")
