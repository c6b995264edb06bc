"""``rtdet metrics coco``: the table, ``--json`` with exactly the 12 keys, exit code 2 on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rtdet.cli import main
from rtdet.metrics.coco import COCO_KEYS
from tests.test_startup import run_rtdet

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cocoeval"


def write_case(tmp_path: Path) -> tuple[Path, Path]:
    gt = {"images": [{"id": 1, "width": 50, "height": 50}],
          "categories": [{"id": 1, "name": "thing"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.8}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    return tmp_path / "gt.json", tmp_path / "dets.json"


def test_table_and_json(tmp_path, capsys):
    gt, dets = write_case(tmp_path)
    out = tmp_path / "sub" / "stats.json"
    assert main(["metrics", "coco", str(gt), str(dets), "--json", str(out), "--per-class"]) == 0
    text = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in text
    assert "thing" in text  # the per-class table
    stats = json.loads(out.read_text())
    assert list(stats) == list(COCO_KEYS)
    assert stats["AP"] == 1.0 and stats["APs"] == 1.0 and stats["APm"] == -1.0


def test_reference_case_matches_pycocotools_without_torch(tmp_path):
    """`rtdet metrics coco` as its own process on the COCO API's reference case: pycocotools' 12 numbers
    (to 1e-9 in --json, to the 3 printed decimals in the table), and torch is never imported."""
    if not DATA.is_dir():
        pytest.skip("../shared/data/cocoeval absent")
    out = tmp_path / "stats.json"
    r, heavy = run_rtdet(["metrics", "coco", str(DATA / "instances_val2014_100.json"),
                          str(DATA / "instances_val2014_fakebbox100_results.json"), "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert heavy == [], f"rtdet metrics coco imported {heavy}"
    expected = json.loads((DATA / "expected_stats_pycocotools.json").read_text())["bbox"]
    got = json.loads(out.read_text())
    assert list(got) == list(COCO_KEYS)
    assert max(abs(got[k] - e) for k, e in zip(COCO_KEYS, expected)) <= 1e-9
    printed = [float(v) for v in re.findall(r"\] = (-?[0-9.]+)", r.stdout)]
    assert printed == [round(e, 3) for e in expected], r.stdout


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    gt, dets = write_case(tmp_path)
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.8},
                                {"image_id": 3, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.8}]))
    assert main(["metrics", "coco", str(gt), str(dets)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtdet metrics coco: ") and "detection 1: image_id 3 is not in the ground truth" in err
    dets.write_text("[{")
    assert main(["metrics", "coco", str(gt), str(dets)]) == 2
    assert "malformed JSON" in capsys.readouterr().err
    assert main(["metrics", "coco", str(tmp_path / "nope.json"), str(dets)]) == 2


def test_plots_option_writes_pictures(tmp_path, capsys):
    gt, dets = write_case(tmp_path)
    assert main(["metrics", "coco", str(gt), str(dets), "--plots", str(tmp_path / "pics")]) == 0
    out = capsys.readouterr().out
    assert "P/R/F1 at conf" in out
    assert sorted(p.name for p in (tmp_path / "pics").glob("*.png")) == [
        "confusion_matrix.png", "confusion_matrix_normalized.png", "f1_curve.png", "pr_curve.png"]
