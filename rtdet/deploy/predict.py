"""``rtdet predict``: run a model on an image, a folder, a glob or a video and write the results.

Outputs in ``out``: one annotated copy of each image (same file name), one
annotated ``<stem>.mp4`` per video (same frame rate and size), what the task adds
per result (segment: a class-index PNG per image or video frame in ``masks/``), and
``predictions.json``: a list of the task's records (detect: ``{"image": file name,
"bbox": [x, y, w, h] original pixels, "score", "category": class index, "name"}``;
classify: ``{"image", "top": [{"category", "name", "probability"}, ...]}``; segment:
``{"image", "mask": "masks/<stem>.png", "pixels": {class name: pixels}}``; video
entries add ``"frame"``). A file that does not decode completely (judged as
``rtdet data check`` judges it: :func:`rtdet.data.dataset.read_whole`) is reported
on stderr and skipped; the rest are processed.
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

from rtdet.data.dataset import read_whole
from rtdet.deploy.images import IMAGE_SUFFIXES
from rtdet.deploy.runtime import Backend, Pipeline, host_threads
from rtdet.tasks import get_task

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass
class PredictResult:
    """What a predict run did."""

    records: list[dict[str, Any]] = field(default_factory=list)  # the predictions.json entries
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


def predict_source(backend: Backend, source: str | Path, out: str | Path | None, imgsz: int | None = None,
                   save: bool = True, settings: dict[str, Any] | None = None) -> PredictResult:
    """Run ``backend`` on every image and video of ``source``; write annotated files and ``predictions.json``.

    Args:
        settings: the task's decoding settings for :func:`rtdet.deploy.runtime.infer`.
    """
    task = get_task(backend.task)
    files, ignored = list_sources(source)
    result = PredictResult()
    pipeline = Pipeline(backend, imgsz, settings)  # one for the run: its buffers serve every image and frame
    for p in ignored:
        _skip(result, p, "not an image or video file (by its suffix)")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            _predict_video(pipeline, path, out_dir if save else None, result)
            continue
        try:
            image = read_whole(path)  # a file cut short is skipped, not guessed at
        except ValueError as e:
            _skip(result, path, str(e))
            continue
        with host_threads(backend):
            res = pipeline(image)
        result.records += task.records(res, path.name)
        if save and out_dir is not None:
            target = out_dir / path.name
            cv2.imwrite(str(target), cv2.cvtColor(task.annotate(image, res), cv2.COLOR_RGB2BGR))
            result.files += [target, *task.save(res, out_dir, path.name)]
    if out_dir is not None:
        (out_dir / "predictions.json").write_text(json.dumps(result.records))
    return result


def _skip(result: PredictResult, path: Path, reason: str) -> None:
    result.skipped.append((str(path), reason))
    reason = reason.removeprefix(f"{path}: ")  # the file is named once
    print(f"skipped {path}: {reason}", file=sys.stderr)


def _predict_video(pipeline: Pipeline, path: Path, out_dir: Path | None, result: PredictResult) -> None:
    """Frames in order -> results and an annotated ``<stem>.mp4`` with the same fps and size."""
    task = pipeline.task
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
    t0, n, rgb = time.perf_counter(), 0, None
    while ok:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, rgb)  # one RGB buffer for the whole video
        with host_threads(pipeline.backend):
            res = pipeline(rgb)
        result.records += task.records(res, path.name, frame=n)
        if writer is not None:
            writer.write(cv2.cvtColor(task.annotate(rgb, res), cv2.COLOR_RGB2BGR))
            result.files += task.save(res, out_dir, path.name, n)
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
