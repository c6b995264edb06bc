"""The classify task end to end through the command line: train -> val -> predict -> export -> bench,
and a classifier's backbone into a detector."""

import json

import numpy as np
import pytest
import torch
import yaml

from rtdet.cli import main
from rtdet.data.classify import sklearn_digits
from rtdet.models.load import load_trained

pytestmark = pytest.mark.slow

RECIPE = ["--model", "rtdet-cls-n", "--data", "sklearn-digits", "--imgsz", "32", "--batch", "32", "--epochs", "3",
          "--optimizer", "adamw", "--lr", "0.003", "--nbs", "32", "--workers", "0", "--ema-tau", "5", "--ema-decay", "0.9",
          "--warmup-epochs", "0.3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    assert main(["train", *RECIPE, "--out", str(out)]) == 0
    return out


def test_run_folder_metrics_and_pictures(run):
    for name in ["weights/best.pt", "weights/last.pt", "results.csv", "metrics.json", "confusion_matrix.png",
                 "roc_curve.png", "pr_curve.png", "misclassified.png", "config.yaml"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["top1"] > 0.5 and len(metrics["confusion_matrix"]) == 10  # 10 classes; chance is 0.1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "detect" not in saved and "yolo" not in saved and saved["classify"]["topk"] == 5
    assert saved["data"]["fliplr"] == 0.0 and saved["train"]["metric"] == "top1"  # the task's defaults, resolved
    trained = load_trained(run / "weights" / "best.pt")
    assert trained.task == "classify" and trained.names == [str(i) for i in range(10)]


def test_val_reproduces_the_final_numbers(run, tmp_path):
    assert main(["val", "--weights", str(run / "weights" / "best.pt"), "--data", "sklearn-digits",
                 "--out", str(tmp_path), "--save-json"]) == 0
    again, final = json.loads((tmp_path / "metrics.json").read_text()), json.loads((run / "metrics.json").read_text())
    assert again["top1"] == final["top1"] and again["confusion_matrix"] == final["confusion_matrix"]
    recs = json.loads((tmp_path / "predictions.json").read_text())
    assert len(recs) == 359 and len(recs[0]["probs"]) == 10


def test_predict_export_and_onnx_agree(run, tmp_path):
    import cv2

    ds = sklearn_digits("val")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        cv2.imwrite(str(src / f"d{i}.png"), ds.load_image(i))
    best = run / "weights" / "best.pt"
    assert main(["predict", "--weights", str(best), "--source", str(src), "--out", str(tmp_path / "pt")]) == 0
    assert main(["export", "--weights", str(best), "--out", str(tmp_path / "m.onnx")]) == 0
    assert main(["predict", "--weights", str(tmp_path / "m.onnx"), "--source", str(src),
                 "--out", str(tmp_path / "ort")]) == 0
    pt = json.loads((tmp_path / "pt" / "predictions.json").read_text())
    ort = json.loads((tmp_path / "ort" / "predictions.json").read_text())
    assert len(pt) == 4 and all(len(r["top"]) == 5 for r in pt)
    for a, b in zip(pt, ort):
        assert [t["category"] for t in a["top"]] == [t["category"] for t in b["top"]]
        np.testing.assert_allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]],
                                   atol=1e-4)
    assert main(["val", "--weights", str(tmp_path / "m.onnx"), "--data", "sklearn-digits",
                 "--out", str(tmp_path / "val-onnx")]) == 0
    onnx_top1 = json.loads((tmp_path / "val-onnx" / "metrics.json").read_text())["top1"]
    assert onnx_top1 == pytest.approx(json.loads((run / "metrics.json").read_text())["top1"], abs=1 / 359)
    assert main(["bench", "--weights", str(tmp_path / "m.onnx"), "--runs", "3", "--warmup", "1"]) == 0


def test_settings_of_another_task_are_refused_by_the_cli(capsys, tmp_path):
    assert main(["train", *RECIPE, "--mosaic", "0.5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtdet: error:") and "mosaic" in err and "classify" in err


def test_classifier_backbone_trains_into_a_detector(run, tmp_path, capsys):
    from rtdet.data.digits import generate_digits

    root = generate_digits(tmp_path / "digits", n_train=8, n_val=4, imgsz=64, seed=0).parent
    assert main(["train", "--model", "rtdet-n", "--data", "digits", "--root", str(root), "--epochs", "1",
                 "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(tmp_path / "det"),
                 "--weights", str(run / "weights" / "best.pt")]) == 0
    out = capsys.readouterr()
    ckpt = torch.load(run / "weights" / "best.pt", weights_only=True)
    backbone = [k for k in ckpt["ema"]["module"] if k.startswith("backbone.")]
    assert len(backbone) > 50
    assert f"loaded {len(backbone)} tensors" in out.out + out.err  # every backbone tensor, and nothing else


def test_other_task_settings_are_refused_by_every_command(run, capsys):
    best = str(run / "weights" / "best.pt")
    for argv in (["val", "--weights", best, "--iou", "0.5"],
                 ["predict", "--weights", best, "--source", best, "--nms", "soft"],
                 ["export", "--weights", best, "--conf", "0.3"],
                 ["train", "--resume", str(run / "weights" / "last.pt"), "--epochs", "9", "--mosaic", "0.5"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("rtdet: error:") and "do not apply" in err and "Traceback" not in err, argv


def test_val_defaults_to_the_data_and_size_the_model_was_trained_on(run, tmp_path):
    assert main(["val", "--weights", str(run / "weights" / "best.pt"), "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["samples"] == 359  # sklearn-digits' val split


def test_config_prints_the_classify_defaults(capsys):
    assert main(["config", "--model", "rtdet-cls-n"]) == 0
    saved = yaml.safe_load(capsys.readouterr().out)
    assert saved["data"]["data"] == "sklearn-digits" and saved["data"]["fliplr"] == 0.0
    assert main(["config", "--model", "rtdet-cls-n", "--fliplr", "0.5"]) == 0  # explicit wins
    assert yaml.safe_load(capsys.readouterr().out)["data"]["fliplr"] == 0.5


def test_a_classifier_at_chance_level_says_so(tmp_path, capsys, one_thread):
    """lr 1e-9: top-1 stays at the majority class's share; the summary says so and why (chance, not 0)."""
    assert main(["train", "--model", "rtdet-cls-n", "--data", "sklearn-digits", "--imgsz", "16", "--epochs", "2",
                 "--batch", "64", "--lr", "1e-9", "--no-ema", "--workers", "0", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "warning: validation top1 stayed at chance level (0.1" in out
    assert "likely cause: the training loss barely fell" in out
