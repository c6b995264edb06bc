"""The segment task on real CamVid street scenes: frames, scores, and every command end to end.

One tiny run (8 training images, 4 validation images, 64 px, 2 epochs) feeds the command
tests: val reproduces the final numbers, predict delivers what val scores (pixel for pixel),
exports agree with PyTorch, bench and the Python API run. A separate loop checks that the
model learns: it overfits four scenes well above the majority class's share.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor
import yaml

from rtdet.cli import main
from rtdet.data.segment_aug import letterbox_mask
from rtdet.data.transforms import letterbox_params
from rtdet.metrics.segmentation import SegmentationMetric
from rtdet.models.load import load_trained
from rtdet.tasks.segment import TASK, annotate, chance, collect, metric_fn, records, to_original
from tests.data.test_segment import CAMVID, CAMVID_NAMES

TRAIN = ["--model", "rtdet-seg-n", "--imgsz", "64", "--epochs", "2", "--batch", "4", "--workers", "0",
         "--optimizer", "adamw", "--lr", "0.01", "--warmup-epochs", "0", "--no-ema"]


def camvid_subset(folder, n_train=8, n_val=4):
    """A data.yaml over links to the first CamVid images of each split (value 11 = unlabelled)."""
    if not (CAMVID / "masks" / "val").is_dir():
        pytest.skip(f"shared CamVid data absent: {CAMVID}")
    for split, n in (("train", n_train), ("val", n_val)):
        for kind in ("images", "masks"):
            (folder / kind / split).mkdir(parents=True)
        for f in sorted((CAMVID / "images" / split).glob("*.png"))[:n]:
            (folder / "images" / split / f.name).symlink_to(f)
            (folder / "masks" / split / f.name).symlink_to(CAMVID / "masks" / split / f.name)
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", "train_masks": "masks/train",
                                    "val_masks": "masks/val", "names": CAMVID_NAMES, "ignore_index": 11}))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return camvid_subset(tmp_path_factory.mktemp("camvid"))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    torch.set_num_threads(1)
    assert main(["train", *TRAIN, "--data", str(data), "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------------------------------- frames and scores
def test_to_original_undoes_the_letterbox_exactly():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, (6, 8))
    big = np.kron(truth, np.ones((2, 2), np.int64))  # the map at twice the size, placed by a letterbox
    lb = letterbox_params((6, 8), (32, 32))
    boxed = letterbox_mask(big.astype(np.uint8)[::2, ::2], (32, 32), 255)  # the letterbox of the original
    assert lb[0] == 4.0
    got = to_original({"labels": torch.from_numpy(boxed.astype(np.int64))}, lb, (6, 8))
    np.testing.assert_array_equal(got.numpy(), truth)
    logits = torch.nn.functional.one_hot(torch.from_numpy(boxed.astype(np.int64)).clamp(max=4), 5).permute(2, 0, 1)
    got = to_original({"logits": logits.float() * 10}, lb, (6, 8))  # bilinear, then argmax
    np.testing.assert_array_equal(got.numpy(), truth)


def _resampled_reference(pred, letterbox, orig_size):
    """The plain definition: grid_sample every class map to original pixels (bilinear, or nearest for a class
    map), then the first maximum over classes. Returns (classes [H, W], resampled logits or None)."""
    s, px, py = letterbox
    h, w = orig_size
    key = "logits" if "logits" in pred else "labels"
    x = pred[key].float()[None] if key == "logits" else pred[key].float()[None, None]
    size = pred.get("input_size", x.shape[-2:])  # the frame the grid spans: grid_sample normalises over it
    xs = ((torch.arange(w, dtype=torch.float32) + 0.5) * s + px) * (2.0 / size[1]) - 1
    ys = ((torch.arange(h, dtype=torch.float32) + 0.5) * s + py) * (2.0 / size[0]) - 1
    grid = torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)), -1)[None]
    mode = "bilinear" if key == "logits" else "nearest"
    up = torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)[0]
    return (up.argmax(0), up) if key == "logits" else (up[0].long(), None)


def _smooth_logits(k: int, side: int, seed: int, sigma: float = 3.0) -> Tensor:
    """float32 [k, side, side]: one-hot regions (6 x 8 blocks) blurred by ``sigma`` px, plus noise: class maps
    with boundaries."""
    rng = np.random.default_rng(seed)
    regions = cv2.resize(rng.integers(0, k, (6, 8)).astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
    onehot = np.eye(k, dtype=np.float32)[regions].transpose(2, 0, 1)
    smooth = np.stack([cv2.GaussianBlur(p, (0, 0), sigma) for p in onehot]) * 10
    return torch.from_numpy(smooth + rng.normal(0, 0.3, (k, side, side)).astype(np.float32))


@pytest.mark.parametrize("orig, size, k, stride", [
    ((360, 480), 480, 12, 1), ((480, 640), 480, 12, 1), ((100, 37), 64, 5, 1), ((31, 200), 96, 150, 1),
    ((640, 480), 320, 19, 1), ((64, 64), 32, 3, 1),
    ((360, 480), 480, 12, 4), ((480, 640), 480, 12, 4), ((100, 37), 64, 5, 4), ((31, 200), 96, 150, 8)])
def test_to_original_equals_resampling_every_class_map(orig, size, k, stride):
    """Only boundary pixels are interpolated in to_original; the classes equal resampling all K maps, except
    where the two best resampled values are within float rounding of each other. ``stride`` > 1: logits on a
    coarser grid spanning the input (``input_size``), resampled straight to original pixels."""
    lb = letterbox_params(orig, (size, size))
    logits = _smooth_logits(k, size // stride, k, 3.0 / stride)
    pred = {"logits": logits, "input_size": (size, size)}
    ref, up = _resampled_reference(pred, lb, orig)
    got = to_original(pred, lb, orig)
    assert got.dtype == torch.int64 and got.shape == orig
    top2 = up.topk(2, 0).values
    differ = got != ref
    assert (top2[0] - top2[1])[differ].numpy().max(initial=0.0) < 1e-4, int(differ.sum())
    if stride == 1:
        labels = logits.argmax(0)
        assert torch.equal(to_original({"labels": labels}, lb, orig),
                           _resampled_reference({"labels": labels}, lb, orig)[0])


@pytest.mark.parametrize("orig, k", [((360, 480), 12), ((480, 480), 5)])
def test_coarse_logits_at_scale_one_equal_upsampling_them_in_the_network(orig, k):
    """Where the letterbox scale is 1 (CamVid's 480 x 360 at 480 px) every original pixel is an input pixel
    centre, so resampling stride-4 logits straight to original pixels gives the classes of upsampling them
    bilinearly to the input first (what the graph did before the task took over) -- up to float near-ties."""
    lb = letterbox_params(orig, (480, 480))
    assert lb[0] == 1.0
    coarse = _smooth_logits(k, 120, 1, 0.75)
    full = torch.nn.functional.interpolate(coarse[None], scale_factor=4.0, mode="bilinear", align_corners=False)[0]
    got = to_original({"logits": coarse, "input_size": (480, 480)}, lb, orig)
    want = to_original({"logits": full}, lb, orig)
    differ = got != want
    _, up = _resampled_reference({"logits": full}, lb, orig)
    top2 = up.topk(2, 0).values
    assert (top2[0] - top2[1])[differ].numpy().max(initial=0.0) < 1e-4, int(differ.sum())
    assert differ.float().mean() < 1e-4


def test_first_argmax_is_argmax_with_ties_to_the_first():
    from rtdet.tasks.segment import first_argmax

    rng = np.random.default_rng(0)
    for k in (1, 2, 7, 300):
        values = rng.integers(0, 3, (k, 9, 11)).astype(np.float32)  # many ties
        got = first_argmax(values)
        assert got.dtype == (np.uint8 if k <= 256 else np.int32)
        np.testing.assert_array_equal(got, values.argmax(0))


def test_collect_and_metric_equal_the_metric_on_whole_masks():
    rng = np.random.default_rng(1)
    preds, targets, ref = [], [], SegmentationMetric(4, 255, list("abcd"))
    for i in range(3):
        truth = rng.integers(0, 4, (5, 7))
        truth[0, :3] = 255
        pred = np.where(rng.random((5, 7)) < 0.7, truth.clip(max=3), rng.integers(0, 4, (5, 7)))
        ref.update(pred, truth)
        p, t = collect({"labels": torch.from_numpy(pred)}, {"letterbox": (1.0, 0, 0), "orig_size": (5, 7),
                                                         "orig_mask": torch.from_numpy(truth), "ignore_index": 255,
                                                         "image_id": i, "file": f"{i}.png"})
        preds.append(p)
        targets.append(t)
    res = ref.compute()
    got = metric_fn(list("abcd"))(preds, targets)
    assert got == {"mIoU": res.miou, "mAcc": res.macc, "aAcc": res.aacc}


def test_chance_is_the_majority_class_everywhere(data):
    from rtdet.config import load_config

    ds = TASK.open_split(load_config(None, {"data": str(data)}), "val")
    px = ds.report.pixels_per_class
    metric = SegmentationMetric(11, ds.ignore_index)
    majority = max(px, key=px.get)
    for i in range(len(ds)):
        mask = ds.load_mask(i)
        metric.update(np.full(mask.shape, majority), mask)
    assert chance(ds) == pytest.approx(metric.compute().miou)


def test_prepare_model_weights_the_loss_by_the_training_pixels(data):
    """The class weights come from the training masks as stored (counted here again, independently, with
    OpenCV), value 11 unlabelled; rtdet-m2f takes nothing."""
    from rtdet.config import load_config
    from rtdet.models import build_from_config, build_model

    cfg = load_config(None, {"model": "rtdet-seg-n", "data": str(data)})
    ds = TASK.open_split(cfg, "train")
    counts = np.zeros(12, np.int64)
    for f in sorted((data.parent / "masks" / "train").glob("*.png")):
        counts += np.bincount(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).ravel(), minlength=12)[:12]
    share = counts[:11] / counts[:11].sum()
    present = share > 0
    expected = np.ones(11)
    expected[present] = np.sqrt(np.median(share[present]) / share[present])
    model = build_from_config(cfg, 11)
    notes = TASK.prepare_model(model, ds, cfg)
    np.testing.assert_allclose(model.criterion.class_weight.numpy(), expected, rtol=1e-6)
    assert cfg.seg.class_weight == "sqrt_median_freq" and len(notes) == 1
    assert notes[0].startswith(f"class weights of the loss, from {counts[:11].sum()} training pixels: sky ")
    plain = load_config(None, {"model": "rtdet-seg-n", "data": str(data), "class_weight": "none"})
    model = build_from_config(plain, 11)
    assert TASK.prepare_model(model, ds, plain) == [] and model.criterion.class_weight is None
    m2f = build_model("rtdet-m2f", 11)
    assert TASK.prepare_model(m2f, ds, cfg) == [] and not hasattr(m2f.criterion, "class_weight")


def test_train_logs_its_class_weights(data, tmp_path, caplog):
    import logging

    torch.set_num_threads(1)
    with caplog.at_level(logging.INFO):
        assert main(["train", *TRAIN, "--epochs", "1", "--class-weight", "median_freq", "--data", str(data),
                     "--out", str(tmp_path)]) == 0
    assert "class weights of the loss, from " in caplog.text
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["seg"]["class_weight"] == "median_freq"


def test_annotate_and_records():
    image = np.full((40, 60, 3), 100, np.uint8)
    mask = torch.zeros(40, 60, dtype=torch.uint8)
    mask[:, 30:] = 2
    result = {"mask": mask, "pixels": torch.bincount(mask.long().ravel(), minlength=3), "names": ["a", "b", "c"],
              "alpha": 0.5}
    drawn = annotate(image, result)
    assert drawn.shape == image.shape and (drawn != image).any() and (image == 100).all()
    rec = records(result, "x.jpg", frame=3)
    assert rec == [{"image": "x.jpg", "mask": "masks/x_000003.png", "pixels": {"a": 1200, "c": 1200}, "frame": 3}]


# ---------------------------------------------------------------------------------------- commands
def test_train_writes_the_run_folder(run):
    for name in ("weights/best.pt", "results.csv", "results.png", "metrics.json", "iou_per_class.png",
                 "confusion_matrix.png", "val_predictions.png", "config.yaml"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["names"] == CAMVID_NAMES and len(metrics["confusion_matrix"]) == 11 and 0 <= metrics["mIoU"] <= 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "detect" not in saved and saved["segment"]["overlay_alpha"] == 0.5 and saved["seg"]["upsample"]
    assert saved["train"]["metric"] == "mIoU" and saved["data"]["degrees"] == 0.0
    header = (run / "results.csv").read_text().splitlines()[0]
    assert "mIoU" in header and "val/loss_ce" in header
    assert load_trained(run / "weights" / "best.pt").task == "segment"


def test_val_reproduces_the_final_numbers(run, tmp_path):
    assert main(["val", "--weights", str(run / "weights" / "best.pt"), "--out", str(tmp_path), "--save-json"]) == 0
    again, final = (json.loads((p / "metrics.json").read_text()) for p in (tmp_path, run))
    assert again["confusion_matrix"] == final["confusion_matrix"]
    recs = json.loads((tmp_path / "predictions.json").read_text())
    assert len(recs) == 4 and sum(r["pixels"] for r in recs) == final["pixels"]


def test_predict_delivers_what_val_scores(run, data, tmp_path):
    """The class map `predict` writes for an image is the one `collect` scores for it."""
    best = run / "weights" / "best.pt"
    src = data.parent / "images" / "val"
    assert main(["predict", "--weights", str(best), "--source", str(src), "--out", str(tmp_path / "p")]) == 0
    recs = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert len(recs) == 4 and all(set(r) == {"image", "mask", "pixels"} for r in recs)
    first = recs[0]
    written = cv2.imread(str(tmp_path / "p" / first["mask"]), cv2.IMREAD_UNCHANGED)
    assert written.shape == (360, 480) and written.dtype == np.uint8 and written.max() < 11
    assert sum(first["pixels"].values()) == 360 * 480 and (tmp_path / "p" / first["image"]).is_file()
    trained = load_trained(best)
    cfg = trained.config
    ds = TASK.open_split(cfg, "val")
    images, targets = next(iter(TASK.build_loader(ds, cfg, False)))
    with torch.no_grad():
        pred = trained.model(images[:1].float() / 255)[0]
    scored = to_original(pred, targets[0]["letterbox"], targets[0]["orig_size"]).numpy()
    np.testing.assert_array_equal(scored, written)
    assert main(["predict", "--weights", str(best), "--source", str(src / first["image"]),
                 "--out", str(tmp_path / "one"), "--overlay-alpha", "0.8"]) == 0
    assert (tmp_path / "one" / "masks" / first["mask"].split("/")[-1]).is_file()


def test_predict_on_a_video(run, data, tmp_path):
    """The generic video path: an overlay video, one record and one mask PNG per frame."""
    frames = [cv2.imread(str(f)) for f in sorted((data.parent / "images" / "val").iterdir())[:3]]
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (480, 360))
    for f in frames:
        writer.write(f)
    writer.release()
    assert main(["predict", "--weights", str(run / "weights" / "best.pt"), "--source", str(tmp_path / "clip.mp4"),
                 "--out", str(tmp_path / "p")]) == 0
    recs = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert [r["frame"] for r in recs] == [0, 1, 2] and recs[2]["mask"] == "masks/clip_000002.png"
    assert (tmp_path / "p" / "clip.mp4").stat().st_size > 0
    assert len(list((tmp_path / "p" / "masks").glob("clip_*.png"))) == 3


def test_exports_agree_with_pytorch(run, data, tmp_path):
    best = run / "weights" / "best.pt"
    src = data.parent / "images" / "val"
    for name, extra in (("logits", []), ("labels", ["--argmax"])):
        onnx = tmp_path / f"{name}.onnx"
        assert main(["export", "--weights", str(best), "--out", str(onnx), *extra]) == 0
        assert main(["predict", "--weights", str(onnx), "--source", str(src), "--out", str(tmp_path / name)]) == 0
        assert main(["val", "--weights", str(onnx), "--data", str(data), "--out", str(tmp_path / f"v-{name}")]) == 0
    assert main(["predict", "--weights", str(best), "--source", str(src), "--out", str(tmp_path / "pt")]) == 0
    for f in sorted((tmp_path / "pt" / "masks").glob("*.png")):
        pt, ort = (cv2.imread(str(tmp_path / d / "masks" / f.name), cv2.IMREAD_UNCHANGED) for d in ("pt", "logits"))
        assert (pt != ort).mean() < 1e-3  # near-ties only
        nearest = cv2.imread(str(tmp_path / "labels" / "masks" / f.name), cv2.IMREAD_UNCHANGED)
        assert (pt != nearest).mean() < 0.2  # nearest instead of bilinear: class boundaries move
    final = json.loads((run / "metrics.json").read_text())
    assert json.loads((tmp_path / "v-logits" / "metrics.json").read_text())["mIoU"] == pytest.approx(final["mIoU"],
                                                                                                     abs=1e-3)
    assert main(["bench", "--weights", str(tmp_path / "labels.onnx"), "--runs", "2", "--warmup", "1"]) == 0


def test_bench_and_info_of_a_model_name(capsys):
    assert main(["bench", "--model", "rtdet-seg-n", "--classes", "11", "--imgsz", "64", "--runs", "2",
                 "--warmup", "1"]) == 0
    assert "onnxruntime @ 64px" in capsys.readouterr().out
    assert main(["info", "--model", "rtdet-seg-n", "--imgsz", "480", "--classes", "11"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rtdet-seg-n: 0.56 M parameters, 1.12 GFLOPs at 480x480 (segment, 11 classes")
    assert main(["info", "--model", "rtdet-seg-n", "--imgsz", "100"]) == 2


def test_python_api(data, tmp_path):
    from rtdet.api import Model

    m = Model("rtdet-seg-n")
    metrics = m.train(data=str(data), imgsz=64, epochs=1, batch=4, workers=0, out=str(tmp_path / "api"))
    assert {"mIoU", "mAcc", "aAcc"} <= set(metrics) and m.task == "segment"
    assert m.val()["mIoU"] == pytest.approx(metrics["mIoU"])
    image = cv2.cvtColor(cv2.imread(str(sorted((data.parent / "images" / "val").iterdir())[0])), cv2.COLOR_BGR2RGB)
    result = m.predict(image)[0]
    assert result["mask"].shape == (360, 480) and result["pixels"].sum() == 360 * 480
    assert result["names"] == CAMVID_NAMES


def test_settings_that_do_not_apply_are_refused(run, data, tmp_path, capsys):
    best = str(run / "weights" / "best.pt")
    for argv in (["train", *TRAIN, "--data", str(data), "--mixup", "0.5", "--out", str(tmp_path)],
                 ["train", *TRAIN, "--data", str(data), "--mosaic", "0.5", "--out", str(tmp_path)],
                 ["val", "--weights", best, "--iou", "0.5"],
                 ["predict", "--weights", best, "--source", best, "--topk", "3"],
                 ["export", "--weights", best, "--nms"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("rtdet: error:") and "Traceback" not in err, argv
    assert main(["train", "--model", "rtdet-seg-n", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "needs --data" in capsys.readouterr().err
    with pytest.raises(Exception, match="--argmax is for segmentation"):
        from rtdet.deploy.onnx import export_onnx
        from rtdet.models import build_model

        export_onnx(build_model("rtdet-n", 2), tmp_path / "x.onnx", 64, argmax=True)


# ---------------------------------------------------------------------------------------- learning
def test_overfits_four_street_scenes(data, one_thread):
    """100 steps (~4 s) on 4 CamVid images at 64 px: pixel accuracy on them far above the majority class's
    share (measured: aAcc 0.73, majority 0.37, mIoU 0.39; predicting the majority class: mIoU 0.037). Scored in
    eval mode: BatchNorm's running statistics lag the weights, so 30 steps scored only 0.52."""
    from rtdet.models import build_model

    torch.manual_seed(0)
    model = build_model("rtdet-seg-n", 11)
    res, majority = overfit(model, data, 64, torch.optim.AdamW(model.parameters(), lr=0.01), 100)
    assert res.aacc > majority + 0.25 and res.miou > 0.25, (res.aacc, majority, res.miou)


def overfit(model, data, imgsz, optimizer, steps):
    """Train ``model`` for ``steps`` steps on the training images of ``data`` (one batch, letterboxed to ``imgsz``,
    no augmentation), then score it in eval mode on them: ``(SegmentationResult, the majority class's pixel share)``."""
    from rtdet.config import load_config

    cfg = load_config(None, {"model": "rtdet-seg-n", "data": str(data), "imgsz": imgsz, "batch": 4, "workers": 0})
    images, targets = next(iter(TASK.build_loader(TASK.open_split(cfg, "train"), cfg, False)))
    x = images.float() / 255
    for _ in range(steps):
        loss = sum(model.train()(x, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        preds = model.eval()(x)
    metric = SegmentationMetric(model.num_classes, 255)
    for p, t in zip(preds, targets):  # the stride-4 logits resampled to the letterboxed mask, as the task does
        logits = torch.nn.functional.interpolate(p["logits"][None], size=tuple(p["input_size"]), mode="bilinear")
        metric.update(logits[0].argmax(0), t["mask"])
    res = metric.compute()
    return res, res.label_area.max() / res.label_area.sum()


def test_m2f_runs_every_command(data, tmp_path):
    """rtdet-m2f through the same commands as rtdet-seg-n: the task and the engine take it unchanged."""
    out = tmp_path / "m2f"
    argv = ["train", "--model", "rtdet-m2f", "--imgsz", "64", "--epochs", "1", "--batch", "4", "--workers", "0",
            "--m2f-queries", "20", "--data", str(data), "--out", str(out)]
    torch.set_num_threads(1)
    assert main(argv) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["m2f"]["m2f_queries"] == 20 and "seg" not in saved
    assert (saved["optim"]["lr"], saved["optim"]["clip_grad"]) == (0.002, 10.0)  # the family's short-run recipe
    best = out / "weights" / "best.pt"
    assert load_trained(best).model.decoder.query_feat.weight.shape[0] == 20
    assert main(["val", "--weights", str(best), "--out", str(tmp_path / "val")]) == 0
    again, final = (json.loads((p / "metrics.json").read_text()) for p in (tmp_path / "val", out))
    assert again["confusion_matrix"] == final["confusion_matrix"]
    src = data.parent / "images" / "val"
    onnx = tmp_path / "m2f.onnx"
    assert main(["export", "--weights", str(best), "--out", str(onnx), "--argmax"]) == 0
    for weights, folder in ((best, "pt"), (onnx, "ort")):
        assert main(["predict", "--weights", str(weights), "--source", str(src), "--out", str(tmp_path / folder)]) == 0
    for f in sorted((tmp_path / "pt" / "masks").glob("*.png")):
        pt, ort = (cv2.imread(str(tmp_path / d / "masks" / f.name), cv2.IMREAD_UNCHANGED) for d in ("pt", "ort"))
        assert pt.shape == (360, 480) and (pt != ort).mean() < 0.2  # nearest instead of bilinear resampling
    assert main(["bench", "--weights", str(onnx), "--runs", "2", "--warmup", "1"]) == 0
