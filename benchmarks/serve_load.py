"""`rtdet serve` under load, on this machine's loopback only, beside `rtdet bench` in the same run.

    .venv/bin/python benchmarks/serve_load.py --weights runs/x/weights/best.pt [--imgsz 320] [--workers 2]

1. The model: a ``.pt`` is exported to a static ONNX file at ``--imgsz`` (an ``.onnx`` is used as it is; without
   ``--weights``, an untrained rtdet-n with 80 classes).
2. ``rtdet serve`` in its own process on 127.0.0.1 (a free port); clients are threads of this process, each with
   one keep-alive connection, posting coco128 photos as multipart uploads in turn.
3. For 1, 4 and 16 concurrent clients: ``--requests`` requests (after a warm-up), bounded by ``--max-s`` seconds:
   throughput, latency p50 / p95 / p99 (the client's round trip), the answers' status codes and the server's own
   median times (``timing_ms``: decoding the upload, inference = letterbox + network + decoding).
4. The bad-input mix: ``--soak`` requests at 4 clients, every 10th a corrupt file (cut JPEGs, random bytes, text,
   an empty file, a BMP): every status counted (5xx must be 0), and the server's resident memory (VmRSS) every
   500 requests.
5. ``rtdet bench``'s measurement (:func:`rtdet.deploy.bench.run_bench` on the same ONNX file, loaded as ``rtdet bench
   --weights`` loads it: single stream, letterbox + network + decoding, JPEG decoding excluded) runs in this
   process while the server idles, in slices interleaved with the server's: every phase is cut into ``--slices``
   parts, each a bench slice of ``--bench-frames`` frames and then its share of the requests. On a machine shared
   with other jobs the load changes from second to second; slices side by side see the same conditions. A phase's
   ratio is its requests per second (count / wall time) over the bench slices' frames per second (count / the
   frames' own time); the bench's own FPS (1000 / median frame time) is shown beside it. CPU time does not
   depend on the load: the server process's CPU per request and the bench's per frame (both all threads) say
   what a request costs beyond a bench frame (the upload's JPEG decoding above all).

Prints the tables (markdown) and the machine's load average before and after; ``--json OUT`` keeps the numbers.
Every request goes to 127.0.0.1 and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOUNDARY = "rtdet-load-boundary"


def onnx_model(weights: str | None, imgsz: int, folder: Path) -> Path:
    """The ONNX file to serve (see the module docstring, step 1)."""
    from rtdet.deploy.onnx import export_onnx

    if weights and weights.endswith(".onnx"):
        return Path(weights)
    if weights:
        return export_onnx(weights, folder / "model.onnx", imgsz=imgsz)
    from rtdet.models import build_model

    model = build_model("rtdet-n", 80).eval()
    return export_onnx(model, folder / "model.onnx", imgsz=imgsz, names=[str(i) for i in range(80)])


def bench_slice(backend, frames: int, reading_cpu_s: float) -> tuple[int, float, float, float]:
    """``(frames, seconds they took, median ms, CPU seconds per frame)`` of ``rtdet bench``'s loop on ``backend``
    (see step 5); seconds and CPU are the frames' own: the stages' mean times, and this process's CPU time less
    ``reading_cpu_s`` (what reading the bench's sample images costs, see :func:`reading_cpu`)."""
    from rtdet.deploy.bench import run_bench

    warmup, cpu = 2, process_cpu()
    result = run_bench(backend, runs=frames, warmup=warmup)
    cpu_per_frame = (process_cpu() - cpu - reading_cpu_s) / (frames + warmup)
    return frames, frames * sum(s["mean_ms"] for s in result.stages.values()) / 1e3, result.median_ms, cpu_per_frame


def process_cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) so far; this one by default."""
    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reading_cpu(task: str = "detect") -> float:
    """CPU seconds :func:`rtdet.deploy.bench.run_bench` spends reading its sample images (median of 3)."""
    from rtdet.deploy.images import sample_images

    costs = []
    for _ in range(3):
        cpu = process_cpu()
        sample_images(16, task=task)
        costs.append(process_cpu() - cpu)
    return sorted(costs)[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


class Server:
    """`rtdet serve` in its own process on a free loopback port."""

    def __init__(self, onnx: Path, workers: int, queue_size: int, threads: int | None) -> None:
        cmd = [sys.executable, "-m", "rtdet", "serve", "--weights", str(onnx), "--port", "0", "--workers",
               str(workers), "--queue", str(queue_size)] + (["--threads", str(threads)] if threads else [])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        first = self.proc.stdout.readline()
        if " on http://" not in first:
            self.proc.kill()
            raise SystemExit(f"rtdet serve did not start: {first}{self.proc.stderr.read()[-2000:]}")
        host_port = first.split(" on http://")[-1].strip()
        self.host, self.port = host_port.rsplit(":", 1)[0], int(host_port.rsplit(":", 1)[1])
        print(first.strip())

    def cpu_s(self) -> float:
        return process_cpu(self.proc.pid)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def multipart(name: str, data: bytes) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def bodies(n_bad_every: int = 0, seed: int = 0) -> list[tuple[bytes, bool]]:
    """(multipart body, is a good image) for coco128's photos; with ``n_bad_every``, every such request is
    one of the corrupt kinds instead."""
    from PIL import Image

    from rtdet.deploy.images import image_files, shared_data_dir

    files = image_files(shared_data_dir() / "coco128" / "images")
    if not files:
        raise SystemExit("coco128 is absent (../shared/data/coco128): the load test posts its photos")
    good = [(multipart(f.name, f.read_bytes()), True) for f in files]
    if not n_bad_every:
        return good
    rng = np.random.default_rng(seed)
    jpeg = files[0].read_bytes()
    bmp = io.BytesIO()
    Image.new("RGB", (64, 48)).save(bmp, format="BMP")
    bad = [multipart("cut.jpg", jpeg[: len(jpeg) // 3]), multipart("noise.jpg", rng.bytes(20_000)),
           multipart("notes.png", b"not an image at all"), multipart("empty.jpg", b""),
           multipart("old.bmp", bmp.getvalue())]
    mixed = []
    for i in range(len(good) * n_bad_every):
        bad_one = bad[(i // n_bad_every) % len(bad)]  # the kinds in turn
        mixed.append((bad_one, False) if i % n_bad_every == n_bad_every - 1 else good[i % len(good)])
    return mixed


def load(server: Server, clients: int, requests: int, max_s: float, payloads: list[tuple[bytes, bool]],
         on_progress=None) -> dict:
    """``requests`` posts from ``clients`` threads (stopping at ``max_s`` seconds): latencies and status codes."""
    todo: queue.Queue = queue.Queue()
    for i in range(requests):
        todo.put(i)
    latencies, statuses, timings, lock = [], Counter(), [], threading.Lock()
    deadline = time.perf_counter() + max_s

    def client() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        while time.perf_counter() < deadline:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                break
            body, _ = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            timing = None
            try:
                conn.request("POST", "/v1/predict", body=body, headers=headers)
                resp = conn.getresponse()
                answer = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
            took = time.perf_counter() - t0
            if status == 200:
                timing = json.loads(answer)["timing_ms"]
            with lock:
                latencies.append(took)
                statuses[status] += 1
                if timing:
                    timings.append(timing)
                n = len(latencies)
            if on_progress:
                on_progress(n)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1e3
    return {"clients": clients, "requests": len(latencies), "seconds": wall, "per_s": len(latencies) / wall,
            "latencies_ms": ms, "statuses": {str(k): v for k, v in statuses.items()},
            "server_ms": {k: float(np.median([t[k] for t in timings])) for k in ("decode", "inference", "total")}
            if timings else {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", help=".pt or .onnx (default: an untrained rtdet-n, 80 classes)")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--workers", type=int, default=2, help="rtdet serve --workers")
    p.add_argument("--threads", type=int, help="rtdet serve --threads (default: one per core)")
    p.add_argument("--queue", type=int, default=16, help="rtdet serve --queue")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=400, help="requests per client count")
    p.add_argument("--soak", type=int, default=2000, help="requests of the bad-input mix")
    p.add_argument("--max-s", type=float, default=300, help="seconds per phase at most")
    p.add_argument("--slices", type=int, default=8, help="bench and load slices per phase (step 5)")
    p.add_argument("--bench-frames", type=int, default=60, help="frames per bench slice")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rtdet-serve-load-") as tmp:
        onnx = onnx_model(args.weights, args.imgsz, Path(tmp))
        from rtdet.deploy.runtime import load_backend

        backend = load_backend(onnx, "onnxruntime", args.threads)  # what `rtdet bench --weights` runs
        server = Server(onnx, args.workers, args.queue, args.threads)
        try:
            good, mixed = bodies(), bodies(n_bad_every=10)
            load(server, 2, 40, 60, good)  # warm-up: sessions, allocators, connections
            reading = reading_cpu()
            bench_slice(backend, 20, reading)
            rows = []
            for c in [*args.clients, 0]:  # 0: the bad-input mix at 4 clients
                rss = [(0, server.rss_mb())]

                def sample(n: int) -> None:
                    if n % 500 == 0:
                        rss.append((n, server.rss_mb()))

                total = args.soak if c == 0 else args.requests
                parts, benches, server_cpu = [], [], 0.0
                for k in range(args.slices):
                    benches.append(bench_slice(backend, args.bench_frames, reading))
                    n = total // args.slices + (k < total % args.slices)
                    done, cpu = sum(x["requests"] for x in parts), server.cpu_s()
                    parts.append(load(server, c or 4, n, args.max_s / args.slices, mixed if c == 0 else good,
                                      (lambda i, done=done: sample(done + i)) if c == 0 else None))
                    server_cpu += server.cpu_s() - cpu
                row = merge(parts, benches)
                row["server_cpu_ms"] = 1e3 * server_cpu / row["requests"]
                if c == 0:
                    row.update(clients=4, corrupt=0.1, rss_mb=rss)
                rows.append(row)
                print(f"{row['clients']} clients{' (bad-input mix)' if c == 0 else ''}: {row['per_s']:.1f} "
                      f"requests/s, bench {row['bench_per_s']:.1f} frames/s in the slices beside it", flush=True)
        finally:
            server.stop()
    report = {"rows": rows, "workers": args.workers, "threads": args.threads, "imgsz": args.imgsz,
              "weights": args.weights or "untrained rtdet-n", "cpus": os.cpu_count(),
              "load_before": load_before, "load_after": os.getloadavg()}
    print_tables(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


def merge(parts: list[dict], benches: list[tuple[int, float, float]]) -> dict:
    """One phase from its slices: requests/s over all of them, latency percentiles over every request, statuses
    summed, server times (median of the slices' medians), and the bench slices' frames/s and median FPS."""
    latencies = np.concatenate([p["latencies_ms"] for p in parts])
    statuses = Counter()
    for p in parts:
        statuses.update(p["statuses"])
    seconds = sum(p["seconds"] for p in parts)
    return {"clients": parts[0]["clients"], "requests": len(latencies), "seconds": seconds,
            "per_s": len(latencies) / seconds, "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)), "p99_ms": float(np.percentile(latencies, 99)),
            "statuses": dict(sorted(statuses.items())),
            "server_ms": {k: float(np.median([p["server_ms"][k] for p in parts if p["server_ms"]]))
                          for k in ("decode", "inference", "total")},
            "bench_per_s": sum(b[0] for b in benches) / sum(b[1] for b in benches),
            "bench_fps_median": 1000 / float(np.median([b[2] for b in benches])),
            "bench_cpu_ms": 1e3 * float(np.median([b[3] for b in benches]))}


def print_tables(r: dict) -> None:
    print(f"\nrtdet serve --workers {r['workers']}" + (f" --threads {r['threads']}" if r["threads"] else "") +
          f", {r['imgsz']} px ONNX, coco128 JPEG uploads (640x480 mostly); load average {r['load_before'][0]:.1f} "
          f"before, {r['load_after'][0]:.1f} after ({r['cpus']} CPUs)\n")
    print("| clients | requests | requests/s | rtdet bench frames/s beside it (FPS by median) | ratio | p50 ms | "
          "p95 ms | p99 ms | server: decode / inference ms | CPU ms per request (bench: per frame) | statuses |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        who = f"{row['clients']}, 10% corrupt" if row.get("corrupt") else str(row["clients"])
        statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
        srv = row["server_ms"]
        print(f"| {who} | {row['requests']} | {row['per_s']:.1f} | {row['bench_per_s']:.1f} "
              f"({row['bench_fps_median']:.1f}) | {row['per_s'] / row['bench_per_s']:.0%} | {row['p50_ms']:.1f} | "
              f"{row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {srv['decode']:.1f} / {srv['inference']:.1f} | "
              f"{row['server_cpu_ms']:.1f} ({row['bench_cpu_ms']:.1f}) | {statuses} |")
    soak = r["rows"][-1]
    errors = sum(v for k, v in soak["statuses"].items() if k.startswith("5") or not k.isdigit())
    rss = ", ".join(f"{mb:.0f}" for _, mb in soak["rss_mb"])
    print(f"\nbad-input mix: {errors} server errors (5xx or broken connections); server memory (VmRSS, MB) "
          f"every 500 requests: {rss}")


if __name__ == "__main__":
    main()
