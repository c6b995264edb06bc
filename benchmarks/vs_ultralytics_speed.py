"""End-to-end CPU speed: rtdet-n against Ultralytics YOLO11n, both in ONNX Runtime, in one run.

    python benchmarks/vs_ultralytics_speed.py [--imgsz 320] [--threads 2] [--runs 300]
        [--weights runs/vs_ultralytics/rtdet-n/weights/best.pt]
        [--peer-weights runs/vs_ultralytics/yolo11n/weights/best.pt]

Without weights both networks are built from their definitions (``rtdet-n``,
``yolo11n.yaml``) with 80 classes. Ultralytics exports YOLO11n to ONNX in its own
environment (``peer.py``; simplified, opset of its choice); rtdet exports rtdet-n.
Both models then run here through the same ONNX Runtime session settings and
thread count and the same frame loop as ``rtdet bench``: letterbox -> network ->
confidence filter + NMS -> original pixels, on the same coco128 photos. YOLO11n's
single output ``[1, 4 + K, N]`` (centre, size, class scores) is rearranged into
rtdet's raw layout (a transpose, timed as part of its inference). The two models
alternate in rounds so drifts in machine load hit both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from peer import run_peer

from rtdet.deploy.bench import BenchResult, run_bench
from rtdet.deploy.runtime import OrtBackend, load_backend, ort_session

PEER_EXPORT = """
import json, sys
from ultralytics import YOLO
weights, imgsz, out = sys.argv[1:4]
model = YOLO(weights)
path = model.export(format="onnx", imgsz=int(imgsz), simplify=True, dynamic=False, half=False, device="cpu")
print(json.dumps({"onnx": str(path), "names": [model.names[i] for i in sorted(model.names)]}))
"""


class PeerOrtBackend(OrtBackend):
    """YOLO11n's ONNX graph behind rtdet's backend signature: ``(boxes xyxy [1, N, 4], scores [1, N, K])``."""

    name = "onnxruntime (yolo11n)"

    def __init__(self, path: str | Path, names: list[str], imgsz: int, threads: int | None = None,
                 spin: bool = False) -> None:
        self.session = ort_session(path, threads, spin)
        self.input = self.session.get_inputs()[0].name
        self.names, self.imgsz, self.path, self.dynamic = list(names), imgsz, Path(path), False

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (out,) = self.session.run(None, {self.input: images.float().cpu().numpy()})
        out = np.ascontiguousarray(out.transpose(0, 2, 1))  # [1, N, 4 + K]
        xy, wh = out[..., :2], out[..., 2:4]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1)
        return torch.from_numpy(boxes), torch.from_numpy(np.ascontiguousarray(out[..., 4:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300, help="timed frames per model")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between the two models")
    parser.add_argument("--weights", help="rtdet .pt or .onnx (default: untrained rtdet-n, 80 classes)")
    parser.add_argument("--peer-weights", default="yolo11n.yaml", help="Ultralytics .pt or model yaml")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--spin", action="store_true", help="ONNX Runtime threads busy-wait (both models)")
    parser.add_argument("--json", help="write both results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rtdet-vs-") as tmp:
        if args.weights:
            ours = load_backend(args.weights, "onnxruntime", threads=args.threads, imgsz=args.imgsz, spin=args.spin)
        else:
            from rtdet.deploy.runtime import backend_for_model
            from rtdet.models import build_model

            names = [str(i) for i in range(80)]
            ours = backend_for_model(build_model("rtdet-n", 80), names, "onnxruntime", args.threads, args.imgsz,
                                     spin=args.spin)
        peer = run_peer(PEER_EXPORT, str(Path(args.peer_weights).resolve()) if Path(args.peer_weights).is_file()
                        else args.peer_weights, str(args.imgsz), tmp)
        theirs = PeerOrtBackend(peer["onnx"], peer["names"], args.imgsz, args.threads, args.spin)
        per_round = max(args.runs // args.rounds, 1)
        results: dict[str, list[BenchResult]] = {"rtdet-n": [], "yolo11n": []}
        for _ in range(args.rounds):
            for key, backend in (("rtdet-n", ours), ("yolo11n", theirs)):
                results[key].append(run_bench(backend, args.imgsz, runs=per_round, conf=args.conf,
                                              threads=args.threads))

    summary = {}
    print(f"ONNX Runtime, {args.imgsz} px, {args.threads} threads{' (spinning)' if args.spin else ''}, "
          f"{per_round * args.rounds} frames each "
          f"(letterbox + inference + NMS, median of per-round medians)")
    print(f"{'model':10s} {'letterbox':>10s} {'inference':>10s} {'post':>8s} {'end to end':>11s} {'FPS':>7s}")
    for key, rounds in results.items():
        med = statistics.median(r.median_ms for r in rounds)
        stage = {s: statistics.median(r.stages[s]["median_ms"] for r in rounds) for s in rounds[0].stages}
        summary[key] = {"median_ms": med, "fps": 1000 / med, "stages_ms": stage}
        print(f"{key:10s} {stage['preprocess']:10.2f} {stage['inference']:10.2f} {stage['postprocess']:8.2f} "
              f"{med:11.2f} {1000 / med:7.1f}")
    ratio = summary["yolo11n"]["median_ms"] / summary["rtdet-n"]["median_ms"]
    print(f"rtdet-n is {ratio:.2f}x YOLO11n's end-to-end speed")
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "ratio": ratio, "imgsz": args.imgsz,
                                               "threads": args.threads}, indent=1))


if __name__ == "__main__":
    main()
