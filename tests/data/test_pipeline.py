"""DetectionPipeline: evaluation letterbox maps back to original pixels; training augmentation contract."""

import numpy as np
import pytest
import torch

from rtdet.config import DataConfig, DetectConfig
from rtdet.data.pipeline import DetectionPipeline
from rtdet.data.transforms import unletterbox
from rtdet.data.yolo import read_yolo

NO_MOSAIC = DetectConfig(mosaic=0.0)
NO_AUG = dict(fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0)


def test_eval_letterbox_maps_back(digits_yaml):
    ds = read_yolo(digits_yaml, "val")
    pipe = DetectionPipeline(ds, DataConfig(imgsz=224), train=False)
    img, t = pipe[0]
    assert img.shape == (224, 224, 3)
    s, px, py = t["letterbox"]
    assert s == pytest.approx(224 / 160) and (px, py) == (0, 0)
    back = unletterbox(t["boxes"], t["letterbox"])
    torch.testing.assert_close(back, ds[0][1]["boxes"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(unletterbox(t["boxes"].numpy(), t["letterbox"]), back.numpy(), atol=1e-4)
    assert t["orig_size"] == (160, 160) and t["image_id"] == ds[0][1]["image_id"]


def test_train_without_augmentation_is_a_letterbox(digits_yaml):
    ds = read_yolo(digits_yaml, "train")
    train = DetectionPipeline(ds, DataConfig(imgsz=160, **NO_AUG), train=True, detect=NO_MOSAIC)
    evalp = DetectionPipeline(ds, DataConfig(imgsz=160), train=False)
    (a, ta), (b, tb) = train[3], evalp[3]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    torch.testing.assert_close(ta["boxes"], tb["boxes"], atol=1e-4, rtol=0)
    assert ta["letterbox"] == pytest.approx((1.0, 0.0, 0.0))


def test_train_augmentation_keeps_boxes_inside(digits_yaml):
    ds = read_yolo(digits_yaml, "train")
    cfg = DataConfig(imgsz=128, mixup=0.5, cutmix=0.5, erasing=0.5, degrees=10, shear=5)
    pipe = DetectionPipeline(ds, cfg, train=True)
    for i in range(len(pipe)):
        img, t = pipe[i]
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        b = t["boxes"]
        assert b.dtype == torch.float32 and len(b) == len(t["labels"]) == len(t["iscrowd"])
        assert (b >= 0).all() and (b <= 128).all() and (b[:, 2:] > b[:, :2]).all()
        assert t["labels"].max() < 10 if len(b) else True


def test_same_epoch_same_sample_new_epoch_new_sample(digits_yaml):
    pipe = DetectionPipeline(read_yolo(digits_yaml, "train"), DataConfig(imgsz=96), train=True)
    a = pipe[2][0]
    assert np.array_equal(a, pipe[2][0])
    pipe.set_epoch(1)
    assert not np.array_equal(a, pipe[2][0])


def test_close_mosaic(digits_yaml):
    pipe = DetectionPipeline(read_yolo(digits_yaml, "train"), DataConfig(), train=True, epochs=5,
                             detect=DetectConfig(close_mosaic=2))
    pipe.set_epoch(2)
    assert pipe.mosaic_on()
    pipe.set_epoch(3)
    assert not pipe.mosaic_on()


def test_crowd_boxes_are_left_out_of_training(coco128):
    from rtdet.data.coco import read_coco

    ann, images = coco128
    ds = read_coco(ann, images)
    i = int(np.nonzero(np.add.reduceat(ds.iscrowd, ds.offsets[:-1]))[0][0])
    pipe = DetectionPipeline(ds, DataConfig(imgsz=640, **NO_AUG), train=True, detect=NO_MOSAIC)
    _, t = pipe[i]
    ann = ds.annotations(i)
    s = 640 / max(ds.sizes[i])
    wh = (ann["boxes"][:, 2:] - ann["boxes"][:, :2]) * s
    visible = (wh > 2).all(1)  # boxes under 2 px at the training size are dropped as unlearnable
    assert not t["iscrowd"].any() and len(t["boxes"]) == (~ann["iscrowd"] & visible).sum()


def test_a_file_broken_after_reading_is_replaced_not_fatal(digits_yaml, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(digits_yaml.parent, root)
    ds = read_yolo(root / "data.yaml", "val")
    (root / "images" / "val" / "00000.jpg").write_bytes(b"gone bad")
    pipe = DetectionPipeline(ds, DataConfig(imgsz=64), train=False)
    with pytest.warns(RuntimeWarning, match="00000.jpg"):
        img, t = pipe[0]
    assert t["image_id"] == ds.image_ids[1] and img.shape == (64, 64, 3)
