"""``--tune``: the candidates, the choice (margin, int8 only within the allowed loss), the file and its use."""

import json
import shutil

import pytest

from rtdet.cli import main
from rtdet.deploy.runtime import load_backend
from rtdet.deploy.tune import (Candidate, Measured, candidates, choose, read_tuning, thread_counts, tune, tune_path,
                               write_tuning)
from tests.deploy.conftest import DECODE

pytest.importorskip("onnxruntime")


def test_thread_counts_and_candidates():
    assert thread_counts(1) == [1] and thread_counts(2) == [1, 2] and thread_counts(6) == [1, 2, 3, 4, 6]
    assert thread_counts(64) == [1, 2, 3, 4, 8, 16, 32, 64]
    found = candidates(2, ["onnxruntime", "openvino"], int8=True)
    assert len(found) == 2 * (2 * 2 + 2)  # precisions x (ORT: threads x spin + OpenVINO: threads)
    assert not any(c.spin for c in found if c.backend == "openvino")
    assert {c.threads for c in candidates(8, ["onnxruntime"], False, threads=3)} == {3}
    assert {c.spin for c in candidates(2, ["onnxruntime"], False, spin=False)} == {False}


def _m(backend, threads, ms, spin=False, precision="float32", metric=None):
    stages = {"preprocess": 0.1, "inference": ms - 0.2, "postprocess": 0.1}
    return Measured(Candidate(backend, threads, spin, precision), ms, stages, ms, metric)


def test_the_default_stays_unless_clearly_beaten_and_int8_only_within_the_loss():
    default = Candidate("onnxruntime", 2)
    base, close, fast = _m("onnxruntime", 2, 10.0), _m("openvino", 2, 9.7), _m("onnxruntime", 1, 8.0, spin=True)
    assert choose([base, close], default, 0.005, None)[0] is base  # 3% is within the noise
    chosen, why = choose([base, close, fast], default, 0.005, None)
    assert chosen is fast and "25.0% faster" in why
    lossy = _m("openvino", 2, 5.0, precision="int8", metric=0.300)
    assert choose([base, fast, lossy], default, 0.005, 0.310)[0] is fast  # 0.010 lost > 0.005 allowed
    assert choose([base, fast, lossy], default, 0.02, 0.310)[0] is lossy
    unmeasured = _m("openvino", 2, 5.0, precision="int8")
    assert choose([base, unmeasured], default, 1.0, None)[0] is base  # int8 without a score is never chosen


@pytest.fixture
def model_file(onnx_file, tmp_path):
    """A private copy: the tuning file lands next to it."""
    return shutil.copy(onnx_file, tmp_path / "m.onnx")


def test_tune_writes_a_file_that_load_backend_applies_while_current(model_file, capsys):
    report = tune(model_file, settings=DECODE, runs=4, rounds=2, backend="onnxruntime", threads=1, log=lambda s: 0)
    table = report.table()
    assert len(report.measured) == 2 and "chosen:" in table and "int8: not a candidate" in table
    path = write_tuning(report)
    assert path == tune_path(model_file) and path.name == "m.onnx.tune.json"
    saved = json.loads(path.read_text())
    assert saved["choice"]["threads"] == 1 and saved["cpu"] and len(saved["measured"]) == 2
    backend = load_backend(model_file)
    assert "tuned settings from m.onnx.tune.json" in backend.tuned
    options = backend.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if report.chosen.candidate.spin
                                                                                   else "0")
    assert load_backend(model_file, threads=2).session.get_session_options().intra_op_num_threads == 2  # flag wins
    assert read_tuning(model_file, imgsz=192)[0] is None  # measured at 160 px
    saved["sha256"] = "0" * 64
    path.write_text(json.dumps(saved))
    choice, note = read_tuning(model_file)
    assert choice is None and "changed since" in note
    assert "changed since" in load_backend(model_file).tuned  # said, and not applied
    path.write_text("{")
    assert "not a readable tuning file" in read_tuning(model_file)[1]


def test_cli_tune_prints_the_table_and_predict_uses_it(model_file, tmp_path, capsys):
    assert main(["bench", "--weights", str(model_file), "--tune", "--backend", "onnxruntime", "--threads", "1",
                 "--no-spin", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "e2e ms" in out and "chosen: onnxruntime float32, 1 thread" in out and "wrote" in out
    import cv2

    from rtdet.deploy.images import sample_images

    source = tmp_path / "images"
    source.mkdir()
    cv2.imwrite(str(source / "a.jpg"), sample_images(1)[0][..., ::-1])
    assert main(["predict", "--weights", str(model_file), "--source", str(source), "--out", str(tmp_path / "p")]) == 0
    assert "tuned settings from m.onnx.tune.json" in capsys.readouterr().out
    assert main(["bench", "--model", "rtdet-n", "--tune"]) == 2  # nothing to write the choice next to
