"""``rtdet bench --tune``: measure the runtime settings on this machine once and keep the fastest next to the model.

Candidates (:func:`candidates`): each backend installed (ONNX Runtime; OpenVINO when the
``openvino`` package is), intra-op threads 1 .. cores (:func:`thread_counts`), ONNX Runtime's
thread spinning on and off, and float32 or int8 weights. Each runs the same frame loop as
``rtdet bench`` (the task's preprocess, the network, the task's decoding; :class:`Pipeline`),
all candidates alternating in rounds so that drifts in the machine's load hit them alike; a
candidate's time is the median of its per-round medians.

The winner is the fastest, except that the default (ONNX Runtime, a thread per core, no spinning,
float32) is kept unless the winner beats it by :data:`MARGIN`: on a shared CPU smaller differences
are noise, and the default is the setting that stays safe when the machine gets busy.

int8 never trades accuracy silently: it is a candidate only with ``--data``, where the model is
quantized (:func:`rtdet.deploy.quantize.quantize_int8`, calibrated on the training split's images),
both files are scored on the validation split by ``rtdet val``'s code on every backend measured, and
int8 may win only where its loss in the task's metric is at most ``max_loss`` (absolute, e.g.
0.005 = half a point of mAP50-95). Without ``--data`` int8 is not measured, and the report says so.

The choice is written to ``<weights file name>.tune.json`` (:func:`tune_path`) with the table that decided
it, the CPU, the load average and a SHA-256 of the weights; :func:`read_tuning` gives it to
:func:`rtdet.deploy.runtime.load_backend` (``predict``, ``bench`` and the Python API), which applies
it only while the weights are unchanged and the input size is the one measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rtdet.errors import ModelError

TUNE_SUFFIX = ".tune.json"
MARGIN = 0.05  # a candidate must be this much faster than the default to replace it
MAX_LOSS = 0.005  # default largest loss of the task's metric (absolute) for int8 to be chosen


@dataclass(frozen=True)
class Candidate:
    """One runtime setting: backend, intra-op threads, spinning (ONNX Runtime only), precision."""

    backend: str
    threads: int
    spin: bool = False
    precision: str = "float32"  # float32 | int8

    def label(self) -> str:
        spin = ", spinning" if self.spin else ""
        return f"{self.backend} {self.precision}, {self.threads} thread{'s' * (self.threads > 1)}{spin}"


@dataclass
class Measured:
    """A candidate's frame times: median over rounds of the per-round medians (ms), and CPU ms per frame."""

    candidate: Candidate
    median_ms: float
    stages: dict[str, float]  # preprocess / inference / postprocess median ms
    cpu_ms: float  # process CPU time per frame (all threads): what spinning costs
    metric: float | None = None  # the task's metric on the val split (int8 tuning only)


@dataclass
class Tuning:
    """What ``<weights>.tune.json`` says to run (see :func:`read_tuning`)."""

    backend: str
    threads: int
    spin: bool
    precision: str
    imgsz: int
    weights: str = ""  # a file next to the model to load instead (the int8 copy), or "" for the model itself
    median_ms: float = 0.0

    def weights_path(self, model: Path) -> Path:
        return model.parent / self.weights if self.weights else model

    def label(self) -> str:
        return Candidate(self.backend, self.threads, self.spin, self.precision).label()


def tune_path(weights: str | Path) -> Path:
    """``best.pt`` -> ``best.pt.tune.json`` next to it (the full name: ``best.onnx`` has its own)."""
    weights = Path(weights)
    return weights.with_name(weights.name + TUNE_SUFFIX)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_task(weights: str | Path) -> str:
    """The task of a checkpoint or an rtdet ``.onnx`` (from its metadata)."""
    if Path(weights).suffix == ".onnx":
        from rtdet.deploy.onnx import read_metadata

        return read_metadata(weights)["task"]
    from rtdet.models.load import load_trained

    return load_trained(weights).task


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_counts(n: int) -> list[int]:
    """Intra-op thread counts worth measuring on ``n`` cores: 1 .. 4 each, then powers of two, and ``n``."""
    counts = {t for t in range(1, min(n, 4) + 1)} | {2 ** k for k in range(n.bit_length()) if 2 ** k <= n} | {n}
    return sorted(counts)


def candidates(n_cores: int, backends: list[str], int8: bool, threads: int | None = None,
               spin: bool | None = None) -> list[Candidate]:
    """Every combination to measure; ``threads`` / ``spin`` given fix that dimension. Spinning is ONNX
    Runtime's setting only (OpenVINO has none)."""
    out = []
    for backend in backends:
        for precision in ("float32", "int8") if int8 else ("float32",):
            for t in [threads] if threads else thread_counts(n_cores):
                spins = [False] if backend != "onnxruntime" else [spin] if spin is not None else [False, True]
                out += [Candidate(backend, t, s, precision) for s in spins]
    return out


def read_tuning(weights: str | Path, imgsz: int | None = None) -> tuple[Tuning | None, str]:
    """``(the tuned choice, a line saying so)`` for ``weights``, or ``(None, why not)`` ("" without a file).

    Ignored (with the reason): a file that does not parse, weights changed since (SHA-256), an input
    size other than the measured one (``imgsz`` given and different, or None while the measurement
    was at an explicit size), a missing or changed int8 copy, OpenVINO no longer installed.
    """
    path = tune_path(weights)
    if not path.is_file():
        return None, ""
    try:
        data = json.loads(path.read_text())
        choice = Tuning(**data["choice"])
        digest, files = data["sha256"], data.get("files", {})
    except (ValueError, KeyError, TypeError) as e:
        return None, f"{path}: not a readable tuning file ({e}); ignored"
    if data.get("model", Path(weights).name) != Path(weights).name:  # renamed or copied: not what was measured
        return None, f"{path} was measured for {data.get('model')}, not {Path(weights).name}; ignored"
    if sha256(weights) != digest:
        return None, f"{path} was measured for other weights ({Path(weights).name} changed since); ignored: " \
                     "run rtdet bench --tune again"
    if (imgsz is not None and imgsz != choice.imgsz) or (imgsz is None and data.get("imgsz_given")):
        return None, f"{path} was measured at {choice.imgsz} px; ignored (give --imgsz {choice.imgsz} to use it)"
    if choice.weights:
        other = choice.weights_path(Path(weights))
        if not other.is_file() or sha256(other) != files.get(choice.weights):
            return None, f"{path}: its {choice.weights} is missing or changed; ignored"
    if choice.backend == "openvino":
        from rtdet.deploy.openvino import openvino_available

        if not openvino_available():
            return None, f"{path} chose OpenVINO, which is not installed; ignored"
    return choice, f"tuned settings from {path.name}: {choice.label()} ({choice.median_ms:.2f} ms/frame when measured)"


def _time_frames(pipeline: Any, images: list, runs: int, offset: int) -> tuple[list[list[float]], float]:
    """``runs`` frames through ``pipeline`` (:func:`rtdet.deploy.bench.time_frame`): (per-frame stage ms,
    process CPU ms per frame)."""
    from rtdet.deploy.bench import time_frame

    cpu0 = time.process_time()
    frames = [time_frame(pipeline, images[(offset + i) % len(images)])[0] for i in range(runs)]
    return frames, (time.process_time() - cpu0) * 1e3 / max(runs, 1)


def measure(pipelines: dict[Candidate, Any], images: list, runs: int = 150, rounds: int = 3,
            warmup: int = 10) -> list[Measured]:
    """Time every candidate's pipeline, alternating in ``rounds`` (see the module docstring)."""
    from rtdet.deploy.bench import STAGES
    from rtdet.deploy.runtime import host_threads

    per_round = max(runs // rounds, 1)
    times: dict[Candidate, list] = {c: [] for c in pipelines}
    cpu: dict[Candidate, list] = {c: [] for c in pipelines}
    for r in range(rounds):
        for c, pipeline in pipelines.items():
            with host_threads(pipeline.backend):
                _time_frames(pipeline, images, warmup, 0)
                frames, cpu_ms = _time_frames(pipeline, images, per_round, r * per_round)
            times[c].append(frames)
            cpu[c].append(cpu_ms)
    out = []
    for c, by_round in times.items():
        median = statistics.median(statistics.median(sum(f) for f in frames) for frames in by_round)
        stages = {s: statistics.median(statistics.median(f[j] for f in frames) for frames in by_round)
                  for j, s in enumerate(STAGES)}
        out.append(Measured(c, median, stages, statistics.median(cpu[c])))
    return out


def choose(measured: list[Measured], default: Candidate, max_loss: float, reference_metric: float | None
           ) -> tuple[Measured, str]:
    """The winner and the sentence saying why (see the module docstring)."""
    allowed = [m for m in measured if m.candidate.precision == "float32"
               or (m.metric is not None and reference_metric is not None and reference_metric - m.metric <= max_loss)]
    best = min(allowed, key=lambda m: m.median_ms)
    base = next((m for m in measured if m.candidate == default), None)
    if base is None or best is base:
        return best, "the fastest"
    gain = base.median_ms / best.median_ms - 1
    if gain < MARGIN:
        return base, (f"the default: the fastest ({best.candidate.label()}, {best.median_ms:.2f} ms) is only "
                      f"{gain:.1%} faster (< {MARGIN:.0%}: within the noise of a shared CPU)")
    return best, f"{gain:.1%} faster than the default ({default.label()}, {base.median_ms:.2f} ms)"


@dataclass
class TuneReport:
    """What :func:`tune` measured and chose; ``table()`` prints it, ``json()`` is the tuning file."""

    weights: Path
    imgsz: int
    imgsz_given: bool
    measured: list[Measured]
    chosen: Measured
    why: str
    int8_note: str
    load: tuple[float, float]  # 1-minute load average before and after
    n_cores: int
    metric: str = ""
    reference_metric: float | None = None
    files: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256 of files the choice loads

    def table(self) -> str:
        metric = f"{self.metric:>9}" if self.reference_metric is not None else ""
        rows = [f"{'backend':<12}{'precision':<10}{'threads':>8}{'spin':>6}{'pre ms':>8}{'net ms':>8}{'post ms':>9}"
                f"{'e2e ms':>8}{'FPS':>7}{'cpu ms':>8}{metric}"]
        for m in sorted(self.measured, key=lambda m: m.median_ms):
            c, s = m.candidate, m.stages
            mark = " <- chosen" if m is self.chosen else ""
            score = f"{m.metric:>9.4f}" if self.reference_metric is not None and m.metric is not None else \
                (f"{'':>9}" if self.reference_metric is not None else "")
            rows.append(f"{c.backend:<12}{c.precision:<10}{c.threads:>8}{'yes' if c.spin else 'no':>6}"
                        f"{s['preprocess']:>8.2f}{s['inference']:>8.2f}{s['postprocess']:>9.2f}{m.median_ms:>8.2f}"
                        f"{1000 / m.median_ms:>7.1f}{m.cpu_ms:>8.2f}{score}{mark}")
        rows.append(f"{self.imgsz} px, {self.n_cores} cores; e2e: median of per-round medians; cpu ms: process CPU "
                    f"time per frame, all threads (spinning shows here); load average {self.load[0]:.2f} before, "
                    f"{self.load[1]:.2f} after")
        if max(self.load) > self.n_cores / 2:
            rows.append(f"note: the machine was busy (load above {self.n_cores / 2:g} on {self.n_cores} cores): the "
                        "choice may differ when it is quiet; tune again where and as the model will run")
        rows.append(f"chosen: {self.chosen.candidate.label()}, {self.chosen.median_ms:.2f} ms "
                    f"({1000 / self.chosen.median_ms:.1f} FPS): {self.why}")
        rows.append(self.int8_note)
        return "\n".join(rows)

    def json(self) -> dict[str, Any]:
        c = self.chosen.candidate
        weights = next((name for name in self.files), "") if c.precision == "int8" else ""
        choice = Tuning(c.backend, c.threads, c.spin, c.precision, self.imgsz, weights, self.chosen.median_ms)
        return {"choice": asdict(choice), "why": self.why, "int8": self.int8_note,
                "model": self.weights.name, "sha256": sha256(self.weights), "files": self.files,
                "imgsz_given": self.imgsz_given,
                "measured": [{**asdict(m.candidate), "median_ms": m.median_ms, "stages_ms": m.stages,
                              "cpu_ms": m.cpu_ms, "metric": m.metric} for m in self.measured],
                "metric": self.metric, "reference_metric": self.reference_metric,
                "cpu": cpu_name(), "cores": self.n_cores, "load_average": list(self.load),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(wanted: tuple[str, ...] = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
                                        "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "neon", "asimd")) -> str:
    """The SIMD flags of ``/proc/cpuinfo`` that matter for inference speed (those present), space-separated."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in wanted if f in have)
    except OSError:
        pass
    return ""


def write_tuning(report: TuneReport) -> Path:
    path = tune_path(report.weights)
    path.write_text(json.dumps(report.json(), indent=1))
    return path


def tune(weights: str | Path, imgsz: int | None = None, settings: dict[str, Any] | None = None, runs: int = 150,
         rounds: int = 3, backend: str | None = None, threads: int | None = None, spin: bool | None = None,
         val: Callable[[Path, str], float] | None = None, calibration: list | None = None,
         max_loss: float = MAX_LOSS, metric: str = "", log: Callable[[str], None] = print) -> TuneReport:
    """Measure the candidates for ``weights`` (``.pt`` or float32 ``.onnx``) and choose (module docstring).

    Args:
        settings: the task's decoding settings (as ``rtdet bench``). backend, threads, spin: fix that
            dimension (None: every value).
        val: ``val(onnx file, backend) -> the task's metric`` on the user's validation split; with
            ``calibration`` (uint8 RGB images) it makes int8 a candidate.
        max_loss: the largest metric loss (absolute) int8 may cost to be chosen.
        metric: the metric's name, for the report.

    Raises:
        ModelError: no backend to measure, or weights that cannot be tuned (an ``--nms`` export).
    """
    from rtdet.deploy.images import sample_images
    from rtdet.deploy.onnx import read_metadata
    from rtdet.deploy.openvino import openvino_available
    from rtdet.deploy.runtime import Pipeline, onnx_backend

    weights = Path(weights)
    if backend == "torch":
        raise ModelError("--tune measures ONNX Runtime and OpenVINO; --backend torch has nothing to tune")
    backends = [backend] if backend else ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    if not openvino_available():
        log("OpenVINO is not installed (pip install 'rtdet[openvino]'): not a candidate")
    n_cores, load0 = cores(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rtdet-tune-") as tmp:
        fp32 = _float_onnx(weights, imgsz, Path(tmp))
        meta = read_metadata(fp32)
        if meta["int8"] or meta["half"] or meta["dynamic"]:
            raise ModelError(f"{weights}: --tune takes a checkpoint or a static float32 export "
                             "(the int8 copy is made and measured by --tune itself, with --data)")
        size = meta["imgsz"]
        int8, int8_note, reference, scores = None, "", None, {}
        if val is None or not calibration:
            int8_note = ("int8: not a candidate: no validation data to measure its accuracy loss on (rtdet bench "
                         "--tune --data D measures it on D's validation split)")
        else:
            from rtdet.deploy.quantize import quantize_int8

            log(f"int8: calibrating on {len(calibration)} training images ...")
            int8 = quantize_int8(fp32, Path(tmp) / f"{weights.stem}.int8.onnx", calibration)
            for b in backends:
                log(f"int8: scoring float32 and int8 on the validation split ({b}) ...")
                scores[(b, "float32")], scores[(b, "int8")] = val(fp32, b), val(int8, b)
            reference = max(v for (b, p), v in scores.items() if p == "float32")
        files = {"float32": fp32, "int8": int8}
        todo = candidates(n_cores, backends, int8 is not None, threads, spin)
        log(f"measuring {len(todo)} candidates, {runs} frames each in {rounds} rounds ...")
        pipelines = {c: Pipeline(onnx_backend(files[c.precision], c.backend, c.threads, c.spin), size, settings)
                     for c in todo}
        if weights.suffix == ".pt" and "openvino" in backends:  # OpenVINO checked against PyTorch, as the export
            from rtdet.deploy.onnx import check_parity, fused_copy
            from rtdet.models.load import load_trained

            check_parity(fused_copy(load_trained(weights).model), fp32, size, runtime=onnx_backend(fp32, "openvino"))
        measured = measure(pipelines, sample_images(16, task=meta["task"]), runs, rounds)
        for m in measured:
            m.metric = scores.get((m.candidate.backend, m.candidate.precision))
        default = Candidate(backend or "onnxruntime", threads or n_cores, bool(spin))
        chosen, why = choose(measured, default, max_loss, reference)
        if int8 is not None:
            int8_note = _int8_note(measured, scores, reference, max_loss, metric)
        report = TuneReport(weights, size, imgsz is not None, measured, chosen, why, int8_note,
                            (load0, os.getloadavg()[0]), n_cores, metric, reference)
        if chosen.candidate.precision == "int8":
            target = weights.with_name(f"{weights.name}.int8.onnx")  # not best.int8.onnx: export --int8 writes that
            shutil.copyfile(int8, target)
            report.files = {target.name: sha256(target)}
    return report


def int8_judges(cfg: Any, task: Any, n_calib: int = 200) -> tuple[Callable[[Path, str], float], list]:
    """For ``--tune --data``: (``val(onnx file, backend) -> the task's metric`` on the validation split of
    ``cfg``'s data set, scored by ``rtdet val``'s code; up to ``n_calib`` images spread over its training
    split, uint8 RGB, to calibrate int8 on). No calibration images when the split has no image files."""
    import contextlib
    import io

    from rtdet.config import apply_overrides
    from rtdet.deploy.images import read_image
    from rtdet.workflows import validate

    files = getattr(task.open_split(cfg, "train"), "files", None)
    files = [os.fsdecode(f) for f in files] if files is not None else []
    chosen = files[::max(len(files) // n_calib, 1)][:n_calib]

    def val(path: Path, backend: str) -> float:
        with tempfile.TemporaryDirectory(prefix="rtdet-tune-val-") as out, contextlib.redirect_stdout(io.StringIO()):
            score = float(validate(path, apply_overrides(cfg, {"backend": backend}), out).metrics[task.metric])
        precision = "int8" if path.name.endswith(".int8.onnx") else "float32"
        print(f"  {precision} on {backend}: {task.metric} {score:.4f}")
        return score

    return val, [read_image(f) for f in chosen]


def _float_onnx(weights: Path, imgsz: int | None, tmp: Path) -> Path:
    """The float32 ONNX file to measure: ``weights`` itself, or a checked export of the checkpoint."""
    if weights.suffix == ".onnx":
        return weights
    from rtdet.deploy.onnx import export_onnx
    from rtdet.models.load import load_trained

    trained = load_trained(weights)
    return export_onnx(trained.model, tmp / f"{weights.stem}.onnx", imgsz or trained.config.data.imgsz,
                       names=trained.names, category_ids=trained.meta.get("cat_ids"))


def _int8_note(measured: list[Measured], scores: dict, reference: float, max_loss: float, metric: str) -> str:
    losses = ", ".join(f"{b} {scores[(b, 'float32')]:.4f} -> {scores[(b, 'int8')]:.4f}"
                       for b in sorted({b for b, _ in scores}))
    ok = [m for m in measured if m.candidate.precision == "int8" and reference - m.metric <= max_loss]
    verdict = ("within" if ok else "beyond") + f" the allowed loss of {max_loss:g}"
    return f"int8: {metric} float32 -> int8 on the validation split: {losses} ({verdict})"
