"""Classification augmentation and loader: geometry, batch mixup / cutmix, seeding, epochs, workers."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from rtdet.data.classify import ClassificationDataset, ClassificationReport, read_image_folder
from rtdet.data.classify_aug import (DIGITS_AUGMENT, ClassifyAugment, ClassifyCollate, ClassifyTransform,
                                     brightness_jitter, build_classification_loader, center_crop_resize,
                                     cutmix_batch, mixup_batch, random_crop_box)

PLAIN = ClassifyAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hsv_h=0, hsv_s=0, hsv_v=0)  # no change


def _memory_set(n: int = 20, size: int = 28, k: int = 4, seed: int = 0) -> ClassificationDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = np.arange(n) % k
    return ClassificationDataset(labels, [f"c{i}" for i in range(k)], ClassificationReport(), "mem", images=images)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (bilinear resampling of it is well-defined to within rounding)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // (h + w)], -1).astype(np.uint8)


def test_eval_transform_is_a_centre_crop_then_resize():
    img = _image(40, 60)
    out = center_crop_resize(img, 32)
    np.testing.assert_array_equal(out, cv2.resize(img[:, 10:50], (32, 32), interpolation=cv2.INTER_AREA))
    square = _image(28, 28)
    np.testing.assert_array_equal(center_crop_resize(square, 32), cv2.resize(square, (32, 32)))
    chw = ClassifyTransform(32, train=False)(img)
    assert chw.shape == (3, 32, 32) and chw.dtype == np.uint8 and chw.flags.c_contiguous
    np.testing.assert_array_equal(chw, out.transpose(2, 0, 1))


@pytest.mark.parametrize("size", [(28, 28), (40, 60), (60, 40)])
def test_identity_training_geometry_equals_evaluation(size):
    """With a full crop, no affine and no colour change, training sees the evaluation image (to rounding)."""
    img = _image(*size)
    out = ClassifyTransform(64, True, PLAIN)(img, np.random.default_rng(0))
    ref = ClassifyTransform(64, False)(img)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 2
    flip = ClassifyTransform(64, True, replace(PLAIN, fliplr=1.0))
    flipped = flip(img, np.random.default_rng(0))
    assert np.abs(flipped.astype(int) - ref[:, :, ::-1].astype(int)).max() <= 2


def test_random_crop_box_respects_scale_ratio_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x, y, w, h = random_crop_box(rng, (30, 50), (0.3, 0.9), (0.5, 2.0))
        assert 0 <= x and x + w <= 50 + 1e-9 and 0 <= y and y + h <= 30 + 1e-9
        assert 0.3 - 1e-9 <= w * h / 1500 <= 0.9 + 1e-9 and 0.5 - 1e-9 <= w / h <= 2.0 + 1e-9
    x, y, w, h = random_crop_box(rng, (10, 100), (1.0, 1.0), (0.5, 2.0))  # impossible: centred, ratio clamped
    assert (w, h) == (20.0, 10) and (x, y) == (40.0, 0.0)


def test_training_transform_is_seeded_and_varied():
    img = _image(28, 28)
    t = ClassifyTransform(32, True, ClassifyAugment(degrees=10, translate=0.1, scale=0.1, erasing=0.5))
    a = t(img, np.random.default_rng([0, 0, 3]))
    np.testing.assert_array_equal(a, t(img, np.random.default_rng([0, 0, 3])))
    assert not np.array_equal(a, t(img, np.random.default_rng([0, 1, 3])))
    assert a.shape == (3, 32, 32) and a.dtype == np.uint8
    big = ClassifyTransform(48, True)(_image(300, 500), np.random.default_rng(0))  # shrunk first, then warped
    assert big.shape == (3, 48, 48)
    with pytest.raises(ValueError, match="needs a random generator"):
        t(img)


def test_digits_border_stays_black():
    """A digit on black shifted and rotated keeps a black background (edge replicated, not grey padding)."""
    img = np.zeros((28, 28, 3), np.uint8)
    img[11:17, 12:16] = 255
    t = ClassifyTransform(32, True, replace(DIGITS_AUGMENT, degrees=30, translate=0.1))
    for seed in range(10):
        out = t(img, np.random.default_rng(seed))
        assert out[:, 0, :].max() <= 1 and out[:, :, 0].max() <= 1


def test_brightness_jitter_scales_every_channel():
    img = np.full((4, 4, 3), 100, np.uint8)
    out = brightness_jitter(img, np.random.default_rng(0), 0.5)
    gain = 1 + np.random.default_rng(0).uniform(-0.5, 0.5)
    assert (out == round(100 * gain)).all()
    assert (brightness_jitter(np.full((2, 2, 3), 250, np.uint8), np.random.default_rng(1), 0.9) <= 255).all()


def test_mixup_and_cutmix_mix_images_and_soft_targets():
    images = torch.stack([torch.full((3, 10, 10), v, dtype=torch.uint8) for v in (0, 100, 200)])
    soft = torch.eye(3)
    mixed, s = mixup_batch(images, soft, 0.7)
    assert mixed[1, 0, 0, 0] == round(0.7 * 100 + 0.3 * 0) and mixed[0, 0, 0, 0] == round(0.3 * 200)  # roll(1)
    torch.testing.assert_close(s[1], torch.tensor([0.3, 0.7, 0.0]))
    cut, s = cutmix_batch(images, soft, 0.75, np.random.default_rng(0))
    pasted = (cut[1, 0] == 0).float().mean()  # image 1 receives image 0's pixels
    torch.testing.assert_close(s[1], torch.tensor([pasted, 1 - pasted, 0.0]))
    assert 0 < pasted < 0.5 and torch.allclose(s.sum(1), torch.ones(3))


def test_eval_loader_batches_in_order_with_one_hot_targets():
    ds = _memory_set(10)
    loader = build_classification_loader(ds, 32, 4, train=False)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4, 4, 2]  # nothing dropped
    images, targets = batches[0]
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
    assert [t["image_id"] for t in targets] == [0, 1, 2, 3] and targets[1]["file"] == "mem#1"
    t = targets[3]
    assert t["label"].dtype == torch.int64 and t["label"].ndim == 0 and int(t["label"]) == 3
    torch.testing.assert_close(t["soft"], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    expected = cv2.resize(cv2.cvtColor(ds.images[2], cv2.COLOR_GRAY2RGB), (32, 32)).transpose(2, 0, 1)
    np.testing.assert_array_equal(images[2].numpy(), expected)


def test_train_loader_epochs_shuffle_and_repeat():
    ds = _memory_set(24)
    loader = build_classification_loader(ds, 32, 8, train=True, seed=3, augment=DIGITS_AUGMENT)

    def epoch(e):
        loader.set_epoch(e)
        return [(im.clone(), [t["image_id"] for t in tg]) for im, tg in loader]

    a, b, again = epoch(0), epoch(1), epoch(0)
    assert len(a) == 3 and sorted(sum((ids for _, ids in a), [])) == list(range(24))
    assert [ids for _, ids in a] != [ids for _, ids in b]
    for (x, i), (y, j) in zip(a, again):
        assert i == j and torch.equal(x, y)  # the same epoch repeats exactly
    fresh = build_classification_loader(ds, 32, 8, train=True, seed=3, augment=DIGITS_AUGMENT)
    first = [(im.clone(), [t["image_id"] for t in tg]) for im, tg in fresh]  # no set_epoch: epoch 0, then 1
    second = [[t["image_id"] for t in tg] for _, tg in fresh]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(first, a)) and second == [ids for _, ids in b]


def test_workers_give_the_same_batches():
    ds = _memory_set(16)
    kw = dict(seed=1, augment=ClassifyAugment(mixup=0.5, cutmix=0.5, erasing=0.5, degrees=5))
    serial = build_classification_loader(ds, 32, 4, True, workers=0, **kw)
    parallel = build_classification_loader(ds, 32, 4, True, workers=2, **kw)
    for e in (0, 1):
        serial.set_epoch(e)
        parallel.set_epoch(e)
        for (x, s), (y, p) in zip(serial, parallel):
            assert torch.equal(x, y) and all(torch.equal(a["soft"], b["soft"]) for a, b in zip(s, p))


def test_mixing_in_the_loader_and_close_mix():
    ds = _memory_set(16)
    aug = ClassifyAugment(mixup=1.0, cutmix=1.0, close_mix=1)
    loader = build_classification_loader(ds, 32, 8, True, epochs=3, augment=aug)
    loader.set_epoch(0)
    _, targets = next(iter(loader))
    soft = torch.stack([t["soft"] for t in targets])
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert (soft.max(1).values < 1).any() and ((soft > 0).sum(1) >= 1).all()  # mixed targets
    loader.set_epoch(2)  # the last epoch: mixing closed
    _, targets = next(iter(loader))
    assert all(t["soft"].max() == 1 for t in targets)
    collate = ClassifyCollate(4)  # evaluation: never mixes
    _, targets = collate([(np.zeros((3, 8, 8), np.uint8), {"label": 2, "image_id": 0, "file": "x"})])
    assert targets[0]["soft"].tolist() == [0, 0, 1, 0]


def test_unreadable_file_is_skipped_with_a_warning(tmp_path):
    root = tmp_path / "set"
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / "train" / c / f"{i}.png"), np.full((9, 9, 3), 50 * i, np.uint8))
    ds = read_image_folder(root, "train")
    (root / "train" / "a" / "0.png").unlink()  # goes missing after the set was read
    loader = build_classification_loader(ds, 16, 4, train=False)
    with pytest.warns(RuntimeWarning, match="skipping unreadable sample"):
        _, targets = next(iter(loader))
    assert [t["image_id"] for t in targets] == [1, 1, 2, 3]


def test_mnist_loader_is_cheap():
    """Smoke test on the real digits (skipped without the shared data): shapes and soft targets."""
    from rtdet.data.classify import open_classification
    from tests.data.conftest import SHARED

    if not (SHARED / "mnist").is_dir():
        pytest.skip("shared MNIST data absent")
    ds = open_classification(SHARED / "mnist", "val")
    images, targets = next(iter(build_classification_loader(ds, 32, 64, True, augment=DIGITS_AUGMENT)))
    assert images.shape == (64, 3, 32, 32) and len(targets) == 64
    assert math.isclose(float(sum(t["soft"].sum() for t in targets)), 64.0, rel_tol=1e-6)
