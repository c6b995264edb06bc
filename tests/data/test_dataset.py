"""DetectionDataset: the sample contract, flat storage, RAM cache, image probing."""

import cv2
import numpy as np
import pytest
import torch

from rtdet.data.dataset import (DatasetBuilder, FileFinder, ImageError, is_image_file, probe_image, probe_images,
                                read_image)
from rtdet.data.report import Report
from tests.data.conftest import SHARED


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


def real_photo(tmp_path, suffix):
    """A real photo (coco128) as ``suffix``, or a noise image when the shared data is absent."""
    files = sorted((SHARED / "coco128" / "images").glob("*.jpg"))
    img = cv2.imread(str(files[0])) if files else np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8)
    path = tmp_path / f"photo{suffix}"
    cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_images_are_judged_by_decoding_not_by_their_last_bytes(tmp_path, suffix):
    """Issue 11.3: bytes after a complete image (phones, editors) are no fault; a file cut short is."""
    photo = real_photo(tmp_path, suffix)
    data = photo.read_bytes()
    extra = tmp_path / f"extra{suffix}"
    extra.write_bytes(data + np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    size = probe_image(photo)
    for decode in (True, False):  # the header-only probe rejects nothing a decoder accepts
        assert probe_image(extra, decode) == size
    assert np.array_equal(read_image(extra), read_image(photo))
    with pytest.raises(ImageError, match="does not decode.*truncated"):
        probe_image(cut)
    assert probe_image(cut, decode=False) == size  # a header-only probe cannot know
    assert [isinstance(r, ImageError) for r in probe_images([photo, extra, cut] * 6)] == [False, False, True] * 6


def test_decode_whole_refuses_every_cut_jpeg_and_decodes_whole_ones_once(tmp_path, monkeypatch):
    """A JPEG ending with its EOI marker skips the probe; every file cut short is still refused, including
    cuts just after an FF D9 inside a header segment (a thumbnail's end, a comment)."""
    import io

    from PIL import Image

    import rtdet.data.dataset as dataset

    photo = Image.fromarray(read_image(real_photo(tmp_path, ".jpg")))
    thumb, buf = io.BytesIO(), io.BytesIO()
    photo.resize((64, 48)).save(thumb, "JPEG")
    photo.save(buf, "JPEG", progressive=True, comment=b"a\xff\xd9b")
    app2 = b"\xff\xe2" + (len(thumb.getvalue()) + 2).to_bytes(2, "big") + thumb.getvalue()  # a thumbnail segment
    data = buf.getvalue()[:2] + app2 + buf.getvalue()[2:]
    inner = [k + 2 for k in range(len(data) - 2) if data[k:k + 2] == b"\xff\xd9"]
    assert len(inner) >= 2  # the thumbnail's EOI and the comment's bytes
    cuts = sorted({*inner, *range(3, len(data) - 1, 211)})
    for k in cuts:
        with pytest.raises(ImageError):
            dataset.decode_whole(data[:k])
    path = tmp_path / "whole.jpg"
    path.write_bytes(data)
    extra = data + b"\x00" * 100  # bytes after the end: probed, and no fault
    np.testing.assert_array_equal(dataset.decode_whole(extra), read_image(path))

    def no_probe(*args, **kwargs):
        raise AssertionError("a whole JPEG is decoded once")

    monkeypatch.setattr(dataset, "probe_image", no_probe)
    np.testing.assert_array_equal(dataset.decode_whole(data), read_image(path))


def test_file_finder_matches_suffixes_in_any_case(tmp_path):
    """Issue 11.6: ``x.jpg`` named, ``x.JPG`` stored."""
    (tmp_path / "x.JPG").write_bytes(b"1")
    (tmp_path / "y.jpeg").write_bytes(b"2")
    (tmp_path / "Z.png").write_bytes(b"3")
    find = FileFinder().find
    assert find(tmp_path / "x.jpg") == tmp_path / "x.JPG"
    assert find(tmp_path / "x.JPG") == tmp_path / "x.JPG"
    assert find(tmp_path / "y.jpg") is None and find(tmp_path / "y.jpg", (".png", ".JPEG")) == tmp_path / "y.jpeg"
    assert find(tmp_path / "z.png") is None  # names (stems) keep their case: only suffixes are matched loosely
    assert is_image_file("a/B.JPG") and is_image_file("c.Png") and not is_image_file("d.txt")
