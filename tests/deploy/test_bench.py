"""``rtdet bench``: stages, JSON contents, both backends, argument errors."""

import json

import pytest

from rtdet.cli import main
from rtdet.deploy.bench import STAGES, run_bench
from rtdet.deploy.runtime import load_backend

pytest.importorskip("onnxruntime")


def test_run_bench_reports_every_stage(onnx_file):
    result = run_bench(load_backend(onnx_file, threads=1), runs=5, warmup=1, n_images=3, threads=1)
    assert set(result.stages) == set(STAGES) and result.runs == 5
    assert result.p90_ms >= result.median_ms > 0 and result.fps == pytest.approx(1000 / result.median_ms)
    assert sum(s["median_ms"] for s in result.stages.values()) <= result.p90_ms * 1.5
    assert "end to end" in result.table() and "FPS" in result.table()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_cli_bench_writes_json(backend, checkpoint, tmp_path, capsys):
    out = tmp_path / "b.json"
    code = main(["bench", "--weights", str(checkpoint), "--backend", backend, "--imgsz", "160", "--runs", "3",
                 "--warmup", "1", "--threads", "1", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert {"fps", "median_ms", "p90_ms", "backend", "imgsz"} <= set(data)
    assert data["backend"] == backend and data["imgsz"] == 160 and data["fps"] > 0
    assert "preprocess" in capsys.readouterr().out


def test_cli_bench_random_model_and_errors(tmp_path, capsys):
    assert main(["bench", "--model", "rtdet-n", "--classes", "3", "--backend", "torch", "--imgsz", "160",
                 "--runs", "2", "--warmup", "0", "--threads", "1"]) == 0
    assert main(["bench", "--imgsz", "160"]) == 2
    assert main(["bench", "--model", "rtdet-x", "--imgsz", "160"]) == 2
    assert "rtdet-x" in capsys.readouterr().err
