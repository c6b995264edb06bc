"""``rtdet predict``: detect objects in an image, a folder, a glob or a video and write the results.

Outputs in ``out``: one annotated copy of each image (same file name), one
annotated ``<stem>.mp4`` per video (same frame rate and size), and
``detections.json``: a list of ``{"image": file name, "bbox": [x, y, w, h]
original pixels, "score", "category": class index, "name"}`` (video entries add
``"frame"``). A file that cannot be read is reported on stderr and skipped; the
rest are processed.
"""

from __future__ import annotations

import glob
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtdet.deploy.images import IMAGE_SUFFIXES, read_image
from rtdet.deploy.runtime import Backend, detect

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass
class PredictResult:
    """What a predict run did."""

    detections: list[dict[str, Any]] = field(default_factory=list)  # the detections.json entries
    files: list[Path] = field(default_factory=list)  # annotated images / videos written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    frames: int = 0  # video frames processed
    video_fps: float = 0.0  # achieved frames per second over all videos (read + detect + draw + write)


def list_sources(source: str | Path) -> tuple[list[Path], list[Path]]:
    """``(images and videos to process, other files ignored)`` for a file, folder or glob pattern."""
    src = str(source)
    if any(c in src for c in "*?["):
        paths = sorted(Path(p) for p in glob.glob(src, recursive=True))
        if not paths:
            raise FileNotFoundError(f"--source {src}: no file matches this pattern")
    elif Path(src).is_dir():
        paths = sorted(p for p in Path(src).iterdir())
    elif Path(src).exists():
        return [Path(src)], []
    else:
        raise FileNotFoundError(f"--source {src}: no such file, folder or matching files")
    paths = [p for p in paths if p.is_file()]
    known = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
    return known, [p for p in paths if p not in known]


def _colour(label: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(label)
    return tuple(int(v) for v in rng.integers(40, 256, 3))


def annotate(image: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB) with each box, its class name and score drawn."""
    out = np.ascontiguousarray(image).copy()
    thick = max(1, round(max(image.shape[:2]) / 400))
    for box, label, score, name in zip(det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist(),
                                       det["names"]):
        x1, y1, x2, y2 = (round(v) for v in box)
        col = _colour(label)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, thick)
        cv2.putText(out, f"{name} {score:.2f}", (x1 + 1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, col, thick, cv2.LINE_AA)
    return out


def to_records(det: dict[str, Any], image_name: str, frame: int | None = None) -> list[dict[str, Any]]:
    """``detections.json`` entries of one image: xywh original pixels, rounded to 0.01 px."""
    recs = []
    for (x1, y1, x2, y2), score, label, name in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                    det["labels"].tolist(), det["names"]):
        rec = {"image": image_name, "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
               "score": round(score, 5), "category": int(label), "name": name}
        if frame is not None:
            rec["frame"] = frame
        recs.append(rec)
    return recs


def predict_source(backend: Backend, source: str | Path, out: str | Path | None, imgsz: int | None = None,
                   save: bool = True, **decode: Any) -> PredictResult:
    """Run ``backend`` on every image and video of ``source``; write annotated files and ``detections.json``.

    Args:
        decode: ``conf``, ``iou``, ``method``, ``max_det`` for :func:`rtdet.deploy.runtime.detect`.
    """
    files, ignored = list_sources(source)
    result = PredictResult()
    for p in ignored:
        _skip(result, p, "not an image or video file (by its suffix)")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            _predict_video(backend, path, out_dir if save else None, imgsz, result, decode)
            continue
        try:
            image = read_image(path)
        except ValueError as e:
            _skip(result, path, str(e))
            continue
        det = detect(backend, [image], imgsz, **decode)[0]
        result.detections += to_records(det, path.name)
        if save and out_dir is not None:
            target = out_dir / path.name
            cv2.imwrite(str(target), cv2.cvtColor(annotate(image, det), cv2.COLOR_RGB2BGR))
            result.files.append(target)
    if out_dir is not None:
        (out_dir / "detections.json").write_text(json.dumps(result.detections))
    return result


def _skip(result: PredictResult, path: Path, reason: str) -> None:
    result.skipped.append((str(path), reason))
    print(f"skipped {path}: {reason}", file=sys.stderr)


def _predict_video(backend: Backend, path: Path, out_dir: Path | None, imgsz: int | None, result: PredictResult,
                   decode: dict[str, Any]) -> None:
    """Frames in order -> detections and an annotated ``<stem>.mp4`` with the same fps and size."""
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        _skip(result, path, "cannot read video (missing codec, empty or not a video)")
        return
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    h, w = frame.shape[:2]
    writer = None
    if out_dir is not None:
        target = out_dir / f"{path.stem}.mp4"
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        result.files.append(target)
    t0, n = time.perf_counter(), 0
    while ok:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        det = detect(backend, [rgb], imgsz, **decode)[0]
        result.detections += to_records(det, path.name, frame=n)
        if writer is not None:
            writer.write(cv2.cvtColor(annotate(rgb, det), cv2.COLOR_RGB2BGR))
        n += 1
        ok, frame = cap.read()
    cap.release()
    if writer is not None:
        writer.release()
    elapsed = time.perf_counter() - t0
    done = result.frames
    result.frames += n
    # achieved FPS over all videos so far (frames / seconds), kept as a running figure
    prev_time = done / result.video_fps if result.video_fps else 0.0
    result.video_fps = result.frames / max(prev_time + elapsed, 1e-9)
    print(f"{path.name}: {n} frames {w}x{h} at {fps:.1f} fps in, {n / max(elapsed, 1e-9):.1f} FPS achieved")
