"""Tiny `python -m rtdet train` runs for the engine's end-to-end tests: a 16-image digits set at 64 px."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # this checkout, so its rtdet is the one that runs
NO_AUGMENT = ["--mosaic", "0", "--fliplr", "0", "--hsv-h", "0", "--hsv-s", "0", "--hsv-v", "0", "--translate", "0",
              "--scale", "0"]


def tiny_digits(folder: Path) -> Path:
    """16 train and 8 val images of 64 x 64; returns the data.yaml."""
    from rtdet.data.digits import generate_digits

    return generate_digits(folder, n_train=16, n_val=8, imgsz=64, seed=1)


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--imgsz", "64", "--workers", "0", "--device", "cpu", "--out", str(out),
            *extra]


def env(**extra: str) -> dict[str, str]:
    """This checkout first on the path; one compute thread (on a busy 2-core machine a run took 19 s
    with two, 6 s with one), the same for every run a test compares."""
    path = os.pathsep.join(p for p in (extra.pop("PYTHONPATH", ""), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **{"OMP_NUM_THREADS": "1", **extra})


def rtdet(args: list[str], cwd: Path, torchrun: int = 0, timeout: float = 120, **env_extra: str
          ) -> subprocess.CompletedProcess:
    """Run ``python -m rtdet ARGS`` (under ``torch.distributed.run`` with ``torchrun`` processes)."""
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--standalone"]
    cmd = [*(launch if torchrun else [sys.executable]), "-m", "rtdet", *args]
    return subprocess.run(cmd, cwd=cwd, env=env(**env_extra), capture_output=True, text=True, timeout=timeout)


def popen(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtdet", *args], cwd=cwd, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tail(proc: subprocess.CompletedProcess, n: int = 2000) -> str:
    return (proc.stdout + proc.stderr)[-n:]


def weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The model and EMA tensors of a checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return {"model": ckpt["model"], "ema": ckpt["ema"]["module"]}


# Imported at start-up by every Python process that has this folder's copy on PYTHONPATH (see
# ``write_audit``): logs each file the process opens for writing or renames into WRITES_UNDER.
WRITE_AUDIT = '''
import os, sys
if os.environ.get("WRITES_LOG") and os.environ.get("WRITES_UNDER"):
    _under = os.environ["WRITES_UNDER"]
    _log = open(os.environ["WRITES_LOG"] + "." + os.environ.get("RANK", "launcher"), "a", buffering=1)

    def _audit(event, args):
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR))
        elif event == "os.rename":
            path, writing = args[1], True
        else:
            return
        if writing and isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(_under):
            _log.write(event + " " + os.fspath(path) + "\\n")

    sys.addaudithook(_audit)
'''


def write_audit(folder: Path) -> Path:
    """A folder holding the ``sitecustomize`` above; put it first on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(WRITE_AUDIT)
    return folder


def read_rows(path: Path) -> dict[str, list[float]]:
    """results.csv as columns."""
    from rtdet.engine.hooks import read_csv

    rows = read_csv(path)
    return {k: [r[k] for r in rows] for k in rows[0]}
