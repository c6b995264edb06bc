"""DetectionDataset: the sample contract, flat storage, RAM cache, image probing."""

import cv2
import numpy as np
import pytest
import torch

from rtdet.data.dataset import DatasetBuilder, ImageError, probe_image, read_image
from rtdet.data.report import Report


def _image(path, h=20, w=30, value=(10, 20, 30)):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = value
    cv2.imwrite(str(path), img[..., ::-1])
    return path


def _dataset(tmp_path):
    b = DatasetBuilder(["a", "b"], Report())
    b.add(str(_image(tmp_path / "x.png")), (20, 30), 7, [[1, 2, 5, 6], [0, 0, 30, 20]], [0, 1],
          iscrowd=[False, True])
    b.add(str(_image(tmp_path / "y.png", 40, 10)), (40, 10), 9, np.zeros((0, 4)), [])
    return b.build()


def test_sample_contract(tmp_path):
    ds = _dataset(tmp_path)
    assert len(ds) == 2 and ds.names == ["a", "b"]
    img, t = ds[0]
    assert img.dtype == np.uint8 and img.shape == (20, 30, 3) and tuple(img[0, 0]) == (10, 20, 30)  # RGB
    assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (2, 4)
    assert t["labels"].dtype == torch.int64 and t["labels"].tolist() == [0, 1]
    assert t["iscrowd"].tolist() == [False, True] and t["difficult"].tolist() == [False, False]
    assert ds.source_ids == [7, 9] and ds.image_ids.tolist() == [0, 1]  # own ids kept; rtdet's = position
    assert t["image_id"] == 0 and t["orig_size"] == (20, 30) and t["letterbox"] == (1.0, 0.0, 0.0)
    assert t["file"].endswith("x.png")
    _, t = ds[1]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)
    assert ds.report.images == 2 and ds.report.boxes == 2 and ds.report.empty_images == 1


def test_storage_is_flat_numpy(tmp_path):
    ds = _dataset(tmp_path)
    for name in ("files", "sizes", "image_ids", "offsets", "boxes", "labels", "iscrowd", "difficult"):
        assert isinstance(getattr(ds, name), np.ndarray), name
    assert ds.offsets.tolist() == [0, 2, 2]


def test_ram_cache_matches_disk_and_shrinks(tmp_path):
    ds = _dataset(tmp_path)
    ref = [ds[i] for i in range(2)]
    ds.cache_images()
    for i in range(2):
        img, t = ds[i]
        assert np.array_equal(img, ref[i][0]) and torch.equal(t["boxes"], ref[i][1]["boxes"])
    ds.cache_images(max_side=15)
    img, t = ds[0]
    assert img.shape == (10, 15, 3) and t["letterbox"] == (0.5, 0.0, 0.0)
    assert torch.allclose(t["boxes"], ref[0][1]["boxes"] * 0.5)


def test_probe_detects_missing_unreadable_truncated(tmp_path):
    good = tmp_path / "g.jpg"
    cv2.imwrite(str(good), np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8))
    assert probe_image(good) == (50, 60)
    with pytest.raises(ImageError, match="not found"):
        probe_image(tmp_path / "none.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="unreadable"):
        probe_image(tmp_path / "junk.jpg")
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        probe_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageError, match="none.png"):
        read_image(tmp_path / "none.png")
