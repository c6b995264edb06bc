"""End-to-end CPU speed: rtdet-n (default and tuned settings) against Ultralytics YOLO11n and YOLO26n, in one run.

    python benchmarks/vs_ultralytics_speed.py --weights runs/demo/weights/best.pt [--imgsz 320] [--runs 300]
        [--rounds 3] [--peer-weights yolo11n.yaml yolo26n.yaml] [--json out.json]

Four tables from one run, on the same coco128 photos (decoded once beforehand, as ``rtdet bench`` does):

1. *Each tool as its user runs it, with its own defaults.* rtdet: the frame path of ``rtdet predict`` /
   ``bench`` (:class:`rtdet.deploy.runtime.Pipeline`) with the default settings (ONNX Runtime, a thread per
   core, no spinning) and with the tuned ones (``<weights>.tune.json``; ``rtdet bench --tune`` is run
   first when there is none). Ultralytics: its own predict path, ``YOLO("x.onnx").predict(image,
   imgsz=...)`` (its ONNX Runtime session with its default options, its letterbox, its NMS, its per-stage
   ``speed``), on YOLO11n and YOLO26n exported by its own exporter with its defaults, run in its own
   environment (``.venv-peer``, :mod:`peer`). The rounds alternate between the tools so drifts in the
   machine's load hit all of them.
2. *Model vs model in one frame loop:* the three ONNX files through rtdet's Pipeline with the same ONNX
   Runtime settings (the peers' single output ``[1, 4 + K, N]`` rearranged to rtdet's raw layout, timed as
   part of their inference).
3. *Single-thread CPU time per frame and stage* (``time.thread_time``; one intra-op thread, OpenCV and
   torch on one thread, so all the work runs on the calling thread): the load-robust figure.
4. *The floors:* the network's FLOPs at the machine's measured float32 matrix-multiply rate, and the
   pre/post-processing's bytes at its measured memory bandwidth.

Without ``--peer-weights`` the peers are built untrained from their yaml with the rtdet model's class
count (the head's cost depends on it); untrained peers find nothing above ``--conf``, so their NMS is
cheap. CPU, SIMD flags, load averages and versions are printed with the tables. Speed is a ratio
measured side by side: absolute numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from peer import run_peer

from rtdet.deploy.bench import STAGES
from rtdet.deploy.images import image_files, sample_images, shared_data_dir
from rtdet.deploy.runtime import OnnxFileBackend, Pipeline, host_threads, load_backend, onnx_backend, ort_session
from rtdet.deploy.tune import cores, cpu_flags, cpu_name, measure, read_tuning, tune, write_tuning

PEER = """
import json, os, statistics, sys, time
import cv2, yaml
args = json.loads(sys.argv[1])
os.chdir(args["dir"])
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load

def build(spec):
    if spec.endswith(".yaml") and args["classes"]:
        cfg = yaml_model_load(spec)
        cfg["nc"] = args["classes"]
        cfg.pop("yaml_file", None)
        spec = os.path.join(args["dir"], os.path.basename(spec))
        open(spec, "w").write(yaml.safe_dump(cfg))
    return YOLO(spec)

if args["mode"] == "export":
    out = {}
    for spec in args["models"]:
        model = build(spec)
        path = model.export(format="onnx", imgsz=args["imgsz"], device="cpu")
        names = [model.names[i] for i in sorted(model.names)]
        out[os.path.basename(spec).split(".")[0]] = {"onnx": os.path.abspath(path), "names": names}
    print(json.dumps(out))
else:
    images = [cv2.imread(p) for p in args["images"]]
    out = {}
    for name, path in args["onnx"].items():
        model = YOLO(path, task="detect")
        frames = []
        for i in range(args["warmup"] + args["runs"]):
            c0, t0 = time.process_time(), time.perf_counter()
            r = model.predict(images[i % len(images)], imgsz=args["imgsz"], conf=args["conf"], verbose=False)[0]
            t1, c1 = time.perf_counter(), time.process_time()
            if i >= args["warmup"]:
                frames.append(((t1 - t0) * 1e3, (c1 - c0) * 1e3, r.speed))
        out[name] = {"median_ms": statistics.median(f[0] for f in frames),
                     "cpu_ms": statistics.median(f[1] for f in frames),
                     "stages": {k: statistics.median(f[2][k] for f in frames)
                                for k in ("preprocess", "inference", "postprocess")}}
    import ultralytics, onnxruntime
    print(json.dumps({"results": out, "ultralytics": ultralytics.__version__, "onnxruntime": onnxruntime.__version__}))
"""


class PeerBackend(OnnxFileBackend):
    """An Ultralytics ONNX detector behind rtdet's backend call: ``(boxes xyxy [1, N, 4], scores [1, N, K])``."""

    def __init__(self, name: str, path: str | Path, names: list[str], imgsz: int, threads: int | None,
                 spin: bool = False) -> None:
        self.session = ort_session(path, threads, spin)
        self.input, self.name, self.threads = self.session.get_inputs()[0].name, f"onnxruntime ({name})", threads
        OnnxFileBackend.__init__(self, names, imgsz, "detect", ("boxes", "scores"))
        self.path, self.dynamic = Path(path), False

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        (out,) = self.session.run(None, {self.input: x})
        out = out.transpose(0, 2, 1)  # [1, N, 4 + K]: centre, size, class probabilities
        xy, wh = out[..., :2], out[..., 2:4]
        return [np.concatenate([xy - wh / 2, xy + wh / 2], -1), np.ascontiguousarray(out[..., 4:])]


def single_thread_cpu(pipeline: Pipeline, images: list, runs: int) -> dict[str, float]:
    """Median thread CPU ms per stage and frame, everything on the calling thread (see the module docstring)."""
    per_stage = {s: [] for s in STAGES}
    with host_threads(pipeline.backend):
        for i in range(runs + 10):
            image = images[i % len(images)]
            t0 = time.thread_time()
            x, geometry = pipeline.preprocess(image)
            t1 = time.thread_time()
            outputs = pipeline.backend(x)
            t2 = time.thread_time()
            pipeline.decode(outputs, geometry, image.shape)
            t3 = time.thread_time()
            if i >= 10:
                for s, v in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2)):
                    per_stage[s].append(v * 1e3)
    out = {s: statistics.median(v) for s, v in per_stage.items()}
    out["frame"] = sum(out.values())
    return out


def machine_rates() -> tuple[float, float]:
    """(float32 matmul GFLOP/s, memory copy GB/s) of one thread, measured now in thread CPU time (so other
    processes taking turns on the core do not count): the compute and memory floors' rates."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a = torch.rand(1536, 1536)
    torch.mm(a, a)
    matmul = min(_cpu_seconds(lambda: torch.mm(a, a)) for _ in range(5))
    torch.set_num_threads(threads)
    src, dst = np.ones(1 << 25, np.uint8), np.empty(1 << 25, np.uint8)
    copy = min(_cpu_seconds(lambda: np.copyto(dst, src)) for _ in range(5))
    return 2 * 1536 ** 3 / matmul / 1e9, 2 * src.nbytes / copy / 1e9  # read + write


def _cpu_seconds(fn) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def _row(name: str, stages: dict, median: float, cpu: float | None = None) -> str:
    cpu_text = f"{cpu:>9.2f}" if cpu is not None else f"{'':>9}"
    return (f"{name:<46}{stages['preprocess']:>8.2f}{stages['inference']:>8.2f}{stages['postprocess']:>9.2f}"
            f"{median:>8.2f}{1000 / median:>8.1f}{cpu_text}")


HEADER = f"{'':<46}{'pre ms':>8}{'net ms':>8}{'post ms':>9}{'e2e ms':>8}{'FPS':>8}{'cpu ms':>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="trained rtdet .pt or .onnx (e.g. the demo's best.pt)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--runs", type=int, default=300, help="timed frames per model and table")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between the tools")
    parser.add_argument("--peer-weights", nargs="+", default=["yolo11n.yaml", "yolo26n.yaml"],
                        help="Ultralytics .pt files or model yamls (default: YOLO11n and YOLO26n, untrained)")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold of every tool")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()
    n_cores, load = cores(), [os.getloadavg()]
    weights = Path(args.weights)
    settings = {"conf": args.conf, "iou": 0.7, "method": "nms", "max_det": 300}
    images = sample_images(16)
    files = [str(p) for p in image_files(shared_data_dir() / "coco128/images")[:16]]
    if len(files) < 16:
        raise SystemExit("needs the shared coco128 images (Ultralytics reads the same files)")

    if read_tuning(weights, args.imgsz)[0] is None:
        report = tune(weights, args.imgsz, settings, runs=120)
        print(report.table())
        print(f"wrote {write_tuning(report)}\n")
    tuned = load_backend(weights, imgsz=args.imgsz)

    with tempfile.TemporaryDirectory(prefix="rtdet-vs-") as tmp:
        rtdet_onnx = weights if weights.suffix == ".onnx" else _export(weights, Path(tmp) / "rtdet-n.onnx", args.imgsz)
        default = onnx_backend(rtdet_onnx)  # rtdet's defaults: ONNX Runtime, a thread per core, no spinning
        ours = {"rtdet-n default": Pipeline(default, args.imgsz, settings),
                f"rtdet-n tuned ({read_tuning(weights, args.imgsz)[0].label()})": Pipeline(tuned, args.imgsz, settings)}
        specs = [str(Path(p).resolve()) if Path(p).is_file() else p for p in args.peer_weights]
        peers = run_peer(PEER, json.dumps({"mode": "export", "models": specs, "imgsz": args.imgsz, "dir": tmp,
                                           "classes": len(default.names)}))
        onnx = {k: v["onnx"] for k, v in peers.items()}
        per_round = max(args.runs // args.rounds, 1)
        rounds: dict[str, list] = {}
        versions = {}
        for r in range(args.rounds):  # 1. each tool's own path, alternating
            for m in measure({name: p for name, p in ours.items()}, images, per_round, rounds=1):
                rounds.setdefault(m.candidate, []).append((m.median_ms, m.stages, m.cpu_ms))
            got = run_peer(PEER, json.dumps({"mode": "time", "onnx": onnx, "images": files, "imgsz": args.imgsz,
                                             "runs": per_round, "warmup": 10, "conf": args.conf, "dir": tmp,
                                             "classes": 0}))
            versions = {k: got[k] for k in ("ultralytics", "onnxruntime")}
            for name, v in got["results"].items():
                rounds.setdefault(f"{name} (Ultralytics predict)", []).append((v["median_ms"], v["stages"],
                                                                                 v["cpu_ms"]))
        load.append(os.getloadavg())
        own = {name: (statistics.median(x[0] for x in rs), {s: statistics.median(x[1][s] for x in rs) for s in STAGES},
                      statistics.median(x[2] for x in rs)) for name, rs in rounds.items()}

        # 2. model vs model in rtdet's frame loop, the default ONNX Runtime settings for all
        backends = {"rtdet-n": default, **{k: PeerBackend(k, v["onnx"], v["names"], args.imgsz, None)
                                           for k, v in peers.items()}}
        loop = {m.candidate: m for m in measure({k: Pipeline(b, args.imgsz, settings) for k, b in backends.items()},
                                                images, args.runs, args.rounds)}
        # 3. single-thread CPU time
        cv2_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
        cv2.setNumThreads(1)
        single = {"rtdet-n": single_thread_cpu(Pipeline(onnx_backend(default.path, threads=1), args.imgsz, settings),
                                               images, args.runs)}
        for k, v in peers.items():
            single[k] = single_thread_cpu(Pipeline(PeerBackend(k, v["onnx"], v["names"], args.imgsz, 1),
                                                   args.imgsz, settings), images, args.runs)
        cv2.setNumThreads(cv2_threads)
        torch.set_num_threads(torch_threads)
    load.append(os.getloadavg())
    _report(args, own, loop, single, versions, load, n_cores, weights)


def _report(args, own, loop, single, versions, load, n_cores, weights) -> None:
    import onnxruntime

    from rtdet.models import build_model
    from rtdet.models.info import model_info

    print(f"CPU: {cpu_name()}, {n_cores} cores; SIMD: {cpu_flags()}")
    print(f"onnxruntime {onnxruntime.__version__} (peer: {versions.get('onnxruntime')}), ultralytics "
          f"{versions.get('ultralytics')}; load average (1, 5, 15 min) at start "
          f"{', '.join(f'{x:.2f}' for x in load[0])}, after table 1 {', '.join(f'{x:.2f}' for x in load[1])}, "
          f"at the end {', '.join(f'{x:.2f}' for x in load[2])}")
    print(f"\n1. each tool's own predict path and defaults, {args.imgsz} px, {args.runs} frames each in "
          f"{args.rounds} alternating rounds (median of per-round medians; cpu ms: process CPU per frame)")
    print(HEADER)
    for name, (median, stages, cpu) in own.items():
        print(_row(name, stages, median, cpu))
    base = own["rtdet-n default"][0]
    tuned = next(v[0] for k, v in own.items() if k.startswith("rtdet-n tuned"))
    for name, (median, _, _) in own.items():
        if "Ultralytics" in name:
            print(f"rtdet-n is {median / base:.2f}x (default) / {median / tuned:.2f}x (tuned) {name}'s frames/s")
    print(f"\n2. model vs model in rtdet's frame loop (ONNX Runtime, {n_cores} threads, no spinning)")
    print(HEADER)
    for name, m in loop.items():
        print(_row(name, m.stages, m.median_ms, m.cpu_ms))
    print("\n3. single-thread CPU ms per frame (time.thread_time: one intra-op thread, OpenCV and torch on one thread)")
    print(f"{'':<46}{'pre':>8}{'net':>8}{'post':>9}{'frame':>8}{'outside':>9}")
    for name, s in single.items():
        outside = (s["preprocess"] + s["postprocess"]) / s["frame"]
        print(f"{name:<46}{s['preprocess']:>8.2f}{s['inference']:>8.2f}{s['postprocess']:>9.2f}{s['frame']:>8.2f}"
              f"{outside:>9.1%}")
    one, bandwidth = machine_rates()
    meta = default_meta(weights, args.imgsz)
    gflops = model_info(build_model(meta["model"] or "rtdet-n", len(meta["names"])).fuse(), args.imgsz)["gflops"]
    net1, net = single["rtdet-n"]["inference"], loop["rtdet-n"].stages["inference"]
    s = args.imgsz
    pre_bytes = 640 * 480 * 3 + 2 * s * s * 3 * 0.75 + s * s * 3 * 4  # a 640x480 photo: read, resize, float input
    floor1, floor = gflops / one * 1e3, gflops / (one * n_cores) * 1e3
    print(f"\n4. floors (one thread's rates, measured now in thread CPU time): float32 matmul {one:.0f} GFLOP/s, "
          f"memory copy {bandwidth:.1f} GB/s; rtdet-n {gflops:.2f} GFLOPs at {s} px")
    print(f"network: floor {floor1:.2f} ms on 1 thread, measured {net1:.2f} CPU ms ({net1 / floor1:.1f}x the floor); "
          f"{floor:.2f} ms on {n_cores} threads at {n_cores}x that rate, measured {net:.2f} ms ({net / floor:.1f}x)")
    print(f"preprocess: memory floor {pre_bytes / bandwidth / 1e6:.3f} ms (a 640x480 photo), measured "
          f"{single['rtdet-n']['preprocess']:.3f} CPU ms; postprocess: {single['rtdet-n']['postprocess']:.3f} CPU ms "
          f"(reads {2100 * (4 + len(meta['names'])) * 4 / 1e3:.0f} kB of outputs)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "own": {k: {"median_ms": v[0], "stages_ms": v[1], "cpu_ms": v[2]} for k, v in own.items()},
            "loop": {k: {"median_ms": m.median_ms, "stages_ms": m.stages, "cpu_ms": m.cpu_ms} for k, m in loop.items()},
            "single_thread_cpu_ms": single, "load": load, "cpu": cpu_name(), "flags": cpu_flags(),
            "imgsz": args.imgsz, "gflops": gflops, "matmul_gflops_1_thread": one, "copy_gbs": bandwidth,
            "versions": versions}, indent=1))


def _export(weights: Path, out: Path, imgsz: int) -> Path:
    from rtdet.deploy.onnx import export_onnx

    return export_onnx(weights, out, imgsz)


def default_meta(weights: Path, imgsz: int) -> dict:
    """The rtdet model's name and class names (from the checkpoint or the ONNX metadata)."""
    if weights.suffix == ".onnx":
        from rtdet.deploy.onnx import read_metadata

        return read_metadata(weights)
    from rtdet.models.load import load_trained

    trained = load_trained(weights)
    return {"model": trained.model.build_args.get("name", "rtdet-n"), "names": trained.names}


if __name__ == "__main__":
    main()
