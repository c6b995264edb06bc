"""Model-only speed of rtdet scales: params, GFLOPs, PyTorch and ONNX Runtime latency on CPU.

Usage:
    PYTHONPATH=. python benchmarks/model_speed.py [--models rtdet-n rtdet-s] [--imgsz 320] [--threads 2]
        [--variant name key=value ...]

Times ``forward_raw`` (network + in-graph decoding to boxes/scores; no NMS) at
batch 1 after warm-up, median over ``--runs`` runs. The model is Conv+BN fused
and exported once with ``torch.onnx.export`` (TorchScript exporter) to a temporary
file. ``--variant`` adds an rtdet-n variant with keyword overrides, e.g.
``--variant silu act=silu`` to see what one design lever buys.

On a machine shared with other jobs wall-clock latency is noisy; the last
column, the CPU time of a single-threaded ONNX Runtime session, is not (it is
roughly 1.7x the 2-thread latency on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import ast
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rtdet.models import RawOutputs, build_model
from rtdet.models.info import model_info


def _times_ms(fn, runs: int, warmup: int, clock=time.perf_counter) -> tuple[float, float]:
    """(median, minimum) latency in ms; the minimum shows the cost when the shared CPU is quiet."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
    return statistics.median(times), min(times)


def time_torch(model: torch.nn.Module, imgsz: int, runs: int, warmup: int, clock=time.perf_counter) -> tuple[float, float]:
    x = torch.rand(1, 3, imgsz, imgsz)
    with torch.inference_mode():
        return _times_ms(lambda: model.forward_raw(x), runs, warmup, clock)


def torch_cpu_ms(model: torch.nn.Module, imgsz: int, runs: int, warmup: int) -> float:
    """Median CPU time of a single-threaded PyTorch forward (see the ONNX Runtime column)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return time_torch(model, imgsz, runs, warmup, time.thread_time)[0]
    finally:
        torch.set_num_threads(n)


def time_onnxruntime(
    model: torch.nn.Module, imgsz: int, threads: int, runs: int, warmup: int, clock=time.perf_counter
) -> tuple[float, float]:
    import onnxruntime as ort

    x = torch.rand(1, 3, imgsz, imgsz)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(RawOutputs(model), (x,), str(path), input_names=["images"],
                          output_names=["boxes", "scores"], opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"images": x.numpy()}
    return _times_ms(lambda: sess.run(None, feed), runs, warmup, clock)


def _parse_variant(spec: list[str]) -> tuple[str, dict]:
    name, *pairs = spec
    kwargs = {}
    for p in pairs:
        k, v = p.split("=", 1)
        try:
            kwargs[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            kwargs[k] = v
    return name, kwargs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["rtdet-n", "rtdet-s", "rtdet-m"])
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime column")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [(m, m, {}) for m in args.models]
    rows += [(name, "rtdet-n", kw) for name, kw in map(_parse_variant, args.variant)]
    print(f"imgsz {args.imgsz}, batch 1, {args.threads} threads, median of {args.runs} runs (model only, no NMS)")
    print(f"{'model':<16}{'params(M)':>10}{'GFLOPs':>8}{'torch ms':>10}{'(min)':>7}{'ort ms':>9}{'(min)':>7}"
          f"{'ort FPS':>9}{'torch cpu-ms 1t':>17}{'ort cpu-ms 1t':>15}")
    for label, name, kw in rows:
        model = build_model(name, args.classes, **kw).fuse()
        info = model_info(model, args.imgsz)
        t_torch = time_torch(model, args.imgsz, args.runs, args.warmup)
        nan = (float("nan"), float("nan"))
        t_ort = nan if args.no_onnx else time_onnxruntime(model, args.imgsz, args.threads, args.runs, args.warmup)
        # CPU time of a single-threaded session (ORT then runs on the calling thread): the
        # work itself, insensitive to other processes competing for the cores
        cpu = nan if args.no_onnx else time_onnxruntime(model, args.imgsz, 1, args.runs, args.warmup, time.thread_time)
        print(f"{label:<16}{info['params'] / 1e6:>10.2f}{info['gflops']:>8.2f}{t_torch[0]:>10.2f}{t_torch[1]:>7.2f}"
              f"{t_ort[0]:>9.2f}{t_ort[1]:>7.2f}{1e3 / t_ort[0]:>9.0f}"
              f"{torch_cpu_ms(model, args.imgsz, args.runs, args.warmup):>17.2f}{cpu[0]:>15.2f}")


if __name__ == "__main__":
    main()
