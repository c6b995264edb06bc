"""Start-up: ``import rtdet`` and the command line's help load no torch; public names resolve on first use.

Speed itself is measured by ``benchmarks/cli_startup.py``, not here: these tests
check the cause (which modules a fresh process imports), which does not depend
on how busy the machine is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rtdet

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision")

# runs `python -m rtdet ARGS` and reports, even when the command exits, which heavy modules it loaded
RUNNER = """\
import runpy, sys
sys.argv = ["rtdet", *sys.argv[1:]]
try:
    runpy.run_module("rtdet", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("\\nheavy modules loaded: " + ",".join(m for m in %r if m in sys.modules) + "\\n")
""" % (HEAVY,)


def run_rtdet(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``python -m rtdet ARGS`` as a fresh process (this checkout's rtdet); returns it and the heavy
    modules (torch, torchvision) it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=cwd, env=env, capture_output=True, text=True)
    marker = "heavy modules loaded: "
    assert marker in r.stderr, r.stderr[-3000:]
    loaded = r.stderr.rsplit(marker, 1)[1].strip()
    return r, loaded.split(",") if loaded else []


def test_import_rtdet_loads_no_torch(tmp_path):
    code = ("import sys, rtdet\n"
            "assert rtdet.__file__.startswith(sys.argv[1]), rtdet.__file__\n"
            "loaded = [m for m in ('torch', 'torchvision', 'numpy', 'cv2') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [
    ["--help"], ["metrics", "coco", "--help"], ["train", "--help"], ["val", "--help"], ["predict", "--help"],
    ["export", "--help"], ["bench", "--help"], ["data", "convert", "--help"], ["demo", "--help"],
    ["config", "--help"], ["info", "--help"],
], ids=lambda a: " ".join(a[:-1]) or "rtdet")
def test_help_loads_no_torch(args, tmp_path):
    r, heavy = run_rtdet(args, tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: rtdet"), r.stderr[-2000:]
    assert heavy == [], f"`rtdet {' '.join(args)}` imported {heavy}"


def test_config_command_loads_no_torch(tmp_path):
    """A command that needs only the settings runs without torch too."""
    r, heavy = run_rtdet(["config", "--epochs", "3"], tmp_path)
    assert r.returncode == 0 and "epochs: 3" in r.stdout, r.stderr[-2000:]
    assert heavy == []


def test_public_names_resolve_on_first_use():
    from rtdet import Config, Detector, box_convert, box_iou, non_max_suppression  # noqa: F401

    assert rtdet.__all__ == sorted(rtdet.__all__) and "Detector" in rtdet.__all__
    for name in rtdet.__all__:
        assert getattr(rtdet, name).__name__ == ("Model" if name == "Detector" else name)  # Detector = Model
        assert name in dir(rtdet)
    assert rtdet.box_iou is __import__("rtdet.boxes", fromlist=["box_iou"]).box_iou
    namespace: dict = {}
    exec("from rtdet import *", namespace)
    assert set(rtdet.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rtdet.nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from rtdet import nope", {})
