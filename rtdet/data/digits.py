"""The built-in ``digits`` demo set, generated offline from data scikit-learn ships.

Real handwritten digits (``sklearn.datasets.load_digits``: 1,797 8x8 scans) are
scaled to 24-80 px, lightly jittered (aspect, rotation +-8 deg, stroke weight, opacity)
and pasted onto crops of the two real photos in ``load_sample_images`` with an
ink colour chosen to contrast with the photo underneath. 2-6 digits per image,
never overlapping; boxes are tight around the ink. Train and val draw from
disjoint source digits (80 % / 20 %), so val measures generalisation to unseen
handwriting. Everything is seeded: the same arguments write the same files.

Written in YOLO format: ``OUT/images/{train,val}/*.jpg``, ``OUT/labels/...``,
``OUT/data.yaml``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

from rtdet.data.yolo import label_lines

NAMES = [str(d) for d in range(10)]
VERSION = 4  # bump when the rendering changes, so cached sets are regenerated
INK_THRESHOLD = 0.3  # alpha above which a pixel counts as ink (defines the tight box)


def _sources() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Digit images (float32 [1797,8,8] in [0,1]), their classes, and the photos (RGB uint8)."""
    try:
        from sklearn.datasets import load_digits, load_sample_images  # its bundled files: nothing is downloaded
    except ImportError:
        raise ImportError("the digits set is made from data scikit-learn ships: pip install 'rtdet[demo]'") from None

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), list(load_sample_images().images)


def _background(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A random square crop of a random photo, resized to ``size`` (uint8 [size,size,3] RGB)."""
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    s = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    crop = photo[y:y + s, x:x + s]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def _sprite(rng: np.random.Generator, digit: np.ndarray, height: int) -> np.ndarray:
    """Alpha mask (float32 [h,w] in [0,1]) of one digit scaled to ``height`` px, jittered."""
    width = max(8, round(height * rng.uniform(0.7, 0.95)))
    alpha = cv2.resize(digit, (width, height), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip((alpha - rng.uniform(0.15, 0.25)) * rng.uniform(1.3, 1.8), 0.0, 1.0)  # stroke weight
    angle = rng.uniform(-8, 8)
    diag = int(math.ceil(math.hypot(width, height))) + 2
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    m[:, 2] += ((diag - width) / 2, (diag - height) / 2)
    alpha = cv2.warpAffine(alpha, m, (diag, diag), flags=cv2.INTER_LINEAR, borderValue=0.0)
    ys, xs = np.nonzero(alpha > INK_THRESHOLD)
    return alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _ink(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """An ink colour (float32 [3]) contrasting with the mean brightness of ``region``."""
    if region.mean() > 110:
        return rng.uniform(0, 60, 3).astype(np.float32)
    return rng.uniform(190, 255, 3).astype(np.float32)


def _free(box: tuple[int, int, int, int], boxes: list, gap: int = 3) -> bool:
    x1, y1, x2, y2 = box
    return all(x1 >= b[2] + gap or x2 + gap <= b[0] or y1 >= b[3] + gap or y2 + gap <= b[1] for b in boxes)


def render(rng: np.random.Generator, digits: np.ndarray, classes: np.ndarray, pool: np.ndarray,
           photos: list[np.ndarray], size: int, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: (uint8 [size,size,3] RGB, boxes float64 [n,4] xyxy, labels int64 [n]).

    ``noise`` is an int16 [>=2*size, >=2*size, 3] bank of sensor-like noise; a random window of it is added.
    """
    img = _background(rng, photos, size)
    boxes: list[tuple[int, int, int, int]] = []
    labels: list[int] = []
    lo, hi = max(8, round(size * 0.075)), max(9, round(size * 0.25))  # 24-80 px at 320
    for k in rng.choice(pool, size=int(rng.integers(2, 7)), replace=False):
        alpha = _sprite(rng, digits[k], int(rng.integers(lo, hi + 1)))
        h, w = alpha.shape
        for _ in range(20):
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if _free((x, y, x + w, y + h), boxes):
                region = img[y:y + h, x:x + w].astype(np.float32)
                a = (alpha * rng.uniform(0.85, 1.0))[..., None]
                img[y:y + h, x:x + w] = region * (1 - a) + _ink(rng, region) * a
                boxes.append((x, y, x + w, y + h))
                labels.append(int(classes[k]))
                break
    oy, ox = (int(v) for v in rng.integers(0, noise.shape[0] - size + 1, 2))
    out = cv2.add(img, noise[oy:oy + size, ox:ox + size], dtype=cv2.CV_8U)  # saturating
    return out, np.array(boxes, np.float64).reshape(-1, 4), np.array(labels, np.int64)


def generate_digits(out: str | Path, n_train: int = 2000, n_val: int = 500, imgsz: int = 320,
                    seed: int = 0) -> Path:
    """Write the digits set in YOLO format under ``out``; returns ``out/data.yaml``."""
    out = Path(out)
    digits, classes, photos = _sources()
    order = np.random.default_rng(seed).permutation(len(digits))
    n_val_pool = len(digits) // 5
    pools = {"train": np.sort(order[n_val_pool:]), "val": np.sort(order[:n_val_pool])}
    for split, n, split_seed in (("train", n_train, 1), ("val", n_val, 2)):
        noise = np.round(np.random.default_rng([seed, split_seed]).normal(0, 3, (2 * imgsz, 2 * imgsz, 3)))
        noise = noise.astype(np.int16)
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)

        def write(i: int) -> None:  # one rng per image: same files whatever the thread scheduling
            rng = np.random.default_rng([seed, split_seed, i])
            img, boxes, labels = render(rng, digits, classes, pools[split], photos, imgsz, noise)
            cv2.imwrite(str(out / "images" / split / f"{i:05d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines = label_lines(boxes, labels, (imgsz, imgsz))
            (out / "labels" / split / f"{i:05d}.txt").write_text("".join(s + "\n" for s in lines))

        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:  # OpenCV and file I/O release the GIL
            list(pool.map(write, range(n)))
    cfg = {"train": "images/train", "val": "images/val", "nc": 10, "names": NAMES}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    stamp = {"version": VERSION, "train": n_train, "val": n_val, "imgsz": imgsz, "seed": seed,
             "source_digits": {k: v.tolist() for k, v in pools.items()}}
    (out / "digits.json").write_text(json.dumps(stamp))  # written last: marks a complete set
    return out / "data.yaml"


def _complete(root: Path) -> bool:
    try:
        return json.loads((root / "digits.json").read_text()).get("version") == VERSION
    except (OSError, json.JSONDecodeError):
        return False


def ensure_digits(root: str | Path, **kwargs) -> Path:
    """``root/data.yaml`` of a complete digits set, generating it (with ``kwargs``) if absent or outdated.

    The set is written to a temporary sibling folder and renamed into place, so
    several processes (e.g. distributed ranks) may call this at once and a
    crash never leaves a half-written set that looks complete.
    """
    root = Path(root)
    if _complete(root):
        return root / "data.yaml"
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        generate_digits(tmp, **kwargs)
        if root.exists() and not _complete(root):
            shutil.rmtree(root, ignore_errors=True)  # outdated or half-written by an older version
        try:
            os.rename(tmp, root)
        except OSError:  # another process got there first
            if not _complete(root):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / "data.yaml"
