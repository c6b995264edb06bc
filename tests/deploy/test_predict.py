"""``rtdet predict``: folders, globs, broken files, detections.json, videos frame by frame."""

import json

import cv2
import numpy as np
import pytest

from rtdet.cli import main
from rtdet.deploy.images import sample_images
from rtdet.deploy.predict import list_sources, predict_source
from rtdet.deploy.runtime import infer, load_backend
from tests.deploy.conftest import DECODE, NAMES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    for i, im in enumerate(sample_images(2)):
        cv2.imwrite(str(d / f"img{i}.jpg"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    whole = (d / "img0.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # OpenCV would decode half a picture
    (d / "notes.txt").write_text("not an image")
    return d


def test_folder_writes_annotated_images_and_json_and_skips_broken(folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--weights", str(checkpoint), "--source", str(folder), "--out", str(out),
                 "--imgsz", "160", "--conf", "0.05", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "broken.jpg" in err and "notes.txt" in err and "cut.jpg" in err  # reported, not dropped silently
    assert sorted(p.name for p in out.glob("*.jpg")) == ["img0.jpg", "img1.jpg"]
    recs = json.loads((out / "predictions.json").read_text())
    assert recs and {r["image"] for r in recs} <= {"img0.jpg", "img1.jpg"}
    assert set(recs[0]) == {"image", "bbox", "score", "category", "name"}
    assert all(r["name"] == NAMES[r["category"]] and r["score"] >= 0.05 for r in recs)
    # bbox is xywh in original pixels: equal to the library's detections
    im0 = cv2.cvtColor(cv2.imread(str(folder / "img0.jpg")), cv2.COLOR_BGR2RGB)
    det = infer(load_backend(checkpoint, "torch", imgsz=160), [im0], settings=dict(DECODE, conf=0.05))[0]
    x1, y1, x2, y2 = det["boxes"][0].tolist()
    first = next(r for r in recs if r["image"] == "img0.jpg")
    np.testing.assert_allclose(first["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.02)


def test_glob_and_onnx_weights(folder, onnx_file, tmp_path):
    files, ignored = list_sources(str(folder / "img*.jpg"))
    assert [p.name for p in files] == ["img0.jpg", "img1.jpg"] and not ignored
    code = main(["predict", "--weights", str(onnx_file), "--source", str(folder / "img*.jpg"),
                 "--out", str(tmp_path), "--conf", "0.05"])  # backend and size from the .onnx file
    assert code == 0 and len(list(tmp_path.glob("img*.jpg"))) == 2


def test_missing_source_is_an_error(checkpoint, tmp_path, capsys):
    for src in ("none*.jpg", "none.jpg"):
        args = ["predict", "--weights", str(checkpoint), "--source", str(tmp_path / src), "--out", str(tmp_path)]
        assert main(args) == 2
        assert "none" in capsys.readouterr().err


def _write_video(path, frames=7, fps=12.0, size=(200, 150)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    base = cv2.resize(cv2.cvtColor(sample_images(1)[0], cv2.COLOR_RGB2BGR), size)
    for i in range(frames):
        writer.write(np.roll(base, 5 * i, axis=1))
    writer.release()


def test_video_frames_in_order_same_fps_and_size(checkpoint, tmp_path, capsys):
    src = tmp_path / "clip.mp4"
    _write_video(src)
    backend = load_backend(checkpoint, "torch", imgsz=160)
    result = predict_source(backend, src, tmp_path / "out", settings=dict(DECODE, conf=0.05))
    assert result.frames == 7 and result.video_fps > 0
    assert "FPS achieved" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 7
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (200, 150)
    frames = [r["frame"] for r in result.records]
    assert frames == sorted(frames) and set(frames) <= set(range(7))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    assert predict_source(backend, bad, tmp_path / "o2").skipped


def test_python_api_shares_the_predict_code_path(checkpoint):
    from rtdet import Detector

    images = sample_images(2)
    api = Detector(str(checkpoint), conf=0.05, max_det=5).predict(images, imgsz=160)
    ref = infer(load_backend(checkpoint, "torch", imgsz=160), images, settings=dict(DECODE, conf=0.05, max_det=5))
    for a, b in zip(api, ref):
        assert 0 < len(a["boxes"]) <= 5 and a["names"] == b["names"]
        np.testing.assert_array_equal(a["boxes"].numpy(), b["boxes"].numpy())


def test_yaml_conf_reaches_predict_and_equals_the_api(folder, checkpoint, tmp_path):
    from rtdet import Model

    (tmp_path / "low.yaml").write_text("detect:\n  conf: 0.001\n  max_det: 50\n")
    out = tmp_path / "low"
    assert main(["predict", "--weights", str(checkpoint), "--source", str(folder / "img0.jpg"), "--out", str(out),
                 "--imgsz", "160", "--config", str(tmp_path / "low.yaml")]) == 0
    recs = json.loads((out / "predictions.json").read_text())
    assert 0 < len(recs) <= 50 and min(r["score"] for r in recs) < 0.25  # 0.001 from the YAML, not 0.25
    image = cv2.cvtColor(cv2.imread(str(folder / "img0.jpg")), cv2.COLOR_BGR2RGB)
    (api,) = Model(str(checkpoint), config=tmp_path / "low.yaml").predict(image, imgsz=160)
    assert len(api["scores"]) == len(recs)


def test_each_command_has_the_flags_it_uses_and_no_others(capsys):
    def flags(cmd):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        return capsys.readouterr().out

    val, predict, export = flags("val"), flags("predict"), flags("export")
    assert "--device" in val and "--val-conf" in val and "--mosaic" not in val and "--hsv-h" not in val
    assert "--conf" in predict and "--mosaic" not in predict and "--epochs" not in predict
    assert "--conf" in export and "--lr" not in export
