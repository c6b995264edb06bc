"""build_loader: the batch contract, padding, workers, determinism, rect and multi-scale batches."""

import numpy as np
import pytest
import torch

from rtdet.config import DataConfig, DetectConfig
from rtdet.data.loader import build_loader, collate, pad_targets, rect_batches
from rtdet.data.transforms import unletterbox
from rtdet.data.yolo import read_yolo


def test_batch_contract(digits_yaml):
    ds = read_yolo(digits_yaml, "train")
    loader = build_loader(ds, DataConfig(imgsz=96, batch=4, workers=0), train=True, epochs=3)
    images, targets = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 96, 96)
    assert len(targets) == 4 and set(targets[0]) >= {"boxes", "labels", "iscrowd", "difficult", "image_id",
                                                      "file", "orig_size", "letterbox"}
    assert len(loader) == 24 // 4


def test_collate_pads_and_pad_targets():
    t1 = {"boxes": torch.tensor([[1.0, 2, 3, 4]]), "labels": torch.tensor([5]), "image_id": 0}
    t2 = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "image_id": 1}
    images, targets = collate([(np.zeros((4, 6, 3), np.uint8), t1), (np.ones((5, 3, 3), np.uint8), t2)])
    assert images.shape == (2, 3, 5, 6) and images[0, 0, 4, 0] == 114 and images[1, 0, 0, 0] == 1
    boxes, labels, mask = pad_targets(targets)
    assert boxes.shape == (2, 1, 4) and labels.tolist() == [[5], [-1]] and mask.tolist() == [[True], [False]]
    boxes, labels, mask = pad_targets([t2])
    assert boxes.shape == (1, 0, 4)


def _all(loader):
    return [(im.clone(), [t["image_id"] for t in ts]) for im, ts in loader]


@pytest.mark.slow
def test_workers_give_the_same_batches_and_persist(digits_yaml):
    ds = read_yolo(digits_yaml, "train")
    cfg = DataConfig(imgsz=64, batch=6)
    ref = _all(build_loader(ds, cfg, train=True, workers=0, seed=1))
    loader = build_loader(ds, cfg, train=True, workers=2, seed=1)
    assert loader.persistent_workers
    got = _all(loader)
    assert [r[1] for r in ref] == [g[1] for g in got]
    assert all(torch.equal(r[0], g[0]) for r, g in zip(ref, got))
    second = _all(loader)  # next epoch: new shuffle and augmentation
    assert [r[1] for r in ref] != [s[1] for s in second]
    loader.set_epoch(0)
    again = _all(loader)
    assert all(torch.equal(r[0], g[0]) for r, g in zip(got, again))


def test_eval_loader_keeps_order_and_everything(digits_yaml):
    ds = read_yolo(digits_yaml, "val")
    loader = build_loader(ds, DataConfig(imgsz=64, batch=3), train=False, workers=0)
    ids = [t["image_id"] for _, ts in loader for t in ts]
    assert ids == ds.image_ids.tolist()


def test_rect_batches_shapes(coco128):
    from rtdet.data.coco import read_coco

    ann, images = coco128
    ds = read_coco(ann, images)
    batches, shapes = rect_batches(ds, 320, 8)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    assert (shapes % 32 == 0).all() and shapes.max() == 320
    loader = build_loader(ds, DataConfig(imgsz=320, batch=8), train=False, detect=DetectConfig(rect=True), workers=0)
    images, targets = next(iter(loader))
    assert images.shape[2] < 320 and images.shape[3] == 320  # COCO photos are mostly landscape
    index = {int(v): k for k, v in enumerate(ds.image_ids)}
    for t in targets:
        ref = ds.annotations(index[t["image_id"]])["boxes"]
        np.testing.assert_allclose(unletterbox(t["boxes"].numpy(), t["letterbox"]), ref, atol=1e-3)


def test_multi_scale(digits_yaml):
    ds = read_yolo(digits_yaml, "train")
    loader = build_loader(ds, DataConfig(imgsz=64, batch=4), train=True, detect=DetectConfig(multi_scale=True), workers=0)
    sizes = set()
    for images, targets in loader:
        assert images.shape[2] == images.shape[3] and images.shape[2] % 32 == 0 and images.dtype == torch.uint8
        assert all((t["boxes"] <= images.shape[2] + 1e-3).all() for t in targets)
        sizes.add(images.shape[2])
    assert sizes <= {32, 64, 96}


def test_cache_gives_same_eval_batches(digits_yaml):
    ds = read_yolo(digits_yaml, "val")
    ref = _all(build_loader(ds, DataConfig(imgsz=64, batch=4), train=False, workers=0))
    ds2 = read_yolo(digits_yaml, "val")
    got = _all(build_loader(ds2, DataConfig(imgsz=64, batch=4, cache=True), train=False, workers=0))
    assert ds2._cache is not None
    assert all(torch.equal(r[0], g[0]) for r, g in zip(ref, got))
