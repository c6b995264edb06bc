"""The benchmark peer, Ultralytics YOLO11n, kept in its own virtual environment.

Ultralytics is AGPL-licensed: rtdet never imports it. The comparison scripts
(``vs_ultralytics.py``, ``vs_ultralytics_speed.py``) run it as a separate
process in ``.venv-peer`` (created on first use: the same torch build as
rtdet's environment, then ``ultralytics`` from the package index) and read back
files it writes (predictions, ONNX models, timings).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".venv-peer"


def _torch_pins() -> list[str]:
    import torch
    import torchvision

    return [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}"]


def peer_python(venv: Path = PEER_VENV) -> Path:
    """The peer environment's interpreter, creating the environment if it has no ``ultralytics``."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import ultralytics"], capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with ultralytics (benchmark peer, not an rtdet dependency) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *_torch_pins()], check=True)
    subprocess.run([*pip, "ultralytics", "onnx", "onnxslim", "onnxruntime"], check=True)
    return python


def run_peer(code: str, *args: str, threads: int | None = None) -> dict:
    """Run ``code`` (a script body) in the peer environment; it must print one JSON object as its last line."""
    env = None
    if threads:
        import os

        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([str(peer_python()), "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"peer script failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(peer_python())
