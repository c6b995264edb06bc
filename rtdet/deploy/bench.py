"""``rtdet bench``: end-to-end latency on real images, with a per-stage breakdown.

One frame = preprocess (the task's: letterbox, resize + pad + to float tensor) ->
inference (the network and what is inside its graph, e.g. the box decoding) ->
postprocess (the task's decoding: confidence filter, NMS, ``max_det``, mapping back
to original pixels; for classifiers top-k; for segmenters the bilinear resampling of the
logits to original pixels and the arg-max). Image
decoding (JPEG -> pixels) is excluded: the images are read once beforehand. The stages run
as every command runs them (:class:`rtdet.deploy.runtime.Pipeline`: one preprocess whose
buffers are reused from frame to frame, the backend, the task's decoding).
Frames cycle over the task's sample images (:func:`rtdet.deploy.images.sample_images`:
coco128, CamVid's val split for segmenters; random images when absent), batch 1, after
``warmup`` frames. FPS is ``1000 / median_ms``. ``cpu_ms`` is the process's CPU time per
frame over all threads (``time.process_time``): insensitive to other processes competing for
the cores, it shows what the frames cost (and what spinning threads burn).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtdet.deploy.images import sample_images
from rtdet.deploy.runtime import Backend, Pipeline, host_threads

STAGES = ("preprocess", "inference", "postprocess")


@dataclass
class BenchResult:
    backend: str
    imgsz: int
    fps: float
    median_ms: float
    p90_ms: float
    runs: int
    threads: int | None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> {"median_ms", "p90_ms", "mean_ms"}
    detections_per_frame: float = 0.0  # detect: detections per frame; classify: 0
    task: str = "detect"
    cpu_ms: float = 0.0  # process CPU time per frame, all threads

    def table(self) -> str:
        """A printable table: one row per stage and the end-to-end row."""
        rows = [f"{'stage':<14}{'median ms':>11}{'p90 ms':>10}{'mean ms':>10}"]
        for name, s in self.stages.items():
            rows.append(f"{name:<14}{s['median_ms']:>11.2f}{s['p90_ms']:>10.2f}{s['mean_ms']:>10.2f}")
        rows.append(f"{'end to end':<14}{self.median_ms:>11.2f}{self.p90_ms:>10.2f}")
        dets = f", {self.detections_per_frame:.1f} detections/frame" if self.task == "detect" else ""
        threads = self.threads or "ONNX Runtime's / PyTorch's default number of"
        rows.append(f"{self.backend} @ {self.imgsz}px, {threads} threads, {self.runs} frames: "
                    f"{self.fps:.1f} FPS (1000 / median){dets}, {self.cpu_ms:.2f} CPU ms/frame")
        return "\n".join(rows)

    def summary(self) -> dict:
        """The ``--json`` contents."""
        return {"fps": self.fps, "median_ms": self.median_ms, "p90_ms": self.p90_ms, "backend": self.backend,
                "imgsz": self.imgsz, "threads": self.threads, "runs": self.runs, "stages": self.stages,
                "cpu_ms": self.cpu_ms}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_frame(pipeline: Pipeline, image: np.ndarray) -> tuple[list[float], int]:
    """One frame end to end: (milliseconds per stage in :data:`STAGES` order, detections)."""
    t0 = time.perf_counter()
    x, geometry = pipeline.preprocess(image)
    t1 = time.perf_counter()
    outputs = pipeline.backend(x)
    t2 = time.perf_counter()
    out = pipeline.decode(outputs, geometry, image.shape)
    t3 = time.perf_counter()
    return [(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3], len(out.get("boxes", ()))


def run_bench(backend: Backend, imgsz: int | None = None, runs: int = 100, warmup: int = 10, n_images: int = 16,
              settings: dict | None = None, threads: int | None = None) -> BenchResult:
    """Time ``runs`` frames end to end (after ``warmup``) and each stage; see the module docstring.

    ``settings``: the task's decoding settings (detect: conf, iou, method, max_det).
    """
    pipeline = Pipeline(backend, imgsz, settings)
    images = sample_images(n_images, task=backend.task)
    per_frame, dets, cpu = [], 0, 0.0
    with host_threads(backend):
        for i in range(warmup + runs):
            c0 = time.process_time()
            ms, n = time_frame(pipeline, images[i % len(images)])
            if i >= warmup:
                cpu += time.process_time() - c0
                per_frame.append(ms)
                dets += n
    total = [sum(ms) for ms in per_frame]
    med = statistics.median(total)
    stages = {}
    for j, name in enumerate(STAGES):
        v = [ms[j] for ms in per_frame]
        stages[name] = {"median_ms": statistics.median(v), "p90_ms": _pct(v, 90), "mean_ms": statistics.fmean(v)}
    return BenchResult(backend.name, pipeline.size, 1000.0 / med, med, _pct(total, 90), runs,
                       threads or backend.threads, stages, dets / runs, backend.task, cpu * 1e3 / runs)


def write_json(result: BenchResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.summary(), indent=2))
    return path
