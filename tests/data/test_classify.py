"""Classification readers: ImageFolder, MNIST IDX, CSV, scikit-learn digits, and the layout detection."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdet.data.classify import (ClassificationDataset, classification_splits, open_classification, read_csv,
                                 read_idx, read_image_folder, sklearn_digits, write_image_folder)
from rtdet.data.report import Report
from rtdet.data.yolo import DataFormatError
from tests.data.conftest import SHARED

MNIST = SHARED / "mnist"
MNIST_COUNTS = [773, 905, 834, 803, 788, 723, 756, 813, 787, 818]  # digits 0..9 in the 8,000 (data README)


def _png(path: Path, rgb=(200, 30, 10), size=(12, 16), gray: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((*size, 3), rgb, np.uint8)
    cv2.imwrite(str(path), img[..., 0] if gray else img[..., ::-1])
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    root = tmp_path / "pets"
    _png(root / "train" / "cat" / "a.png")
    _png(root / "train" / "cat" / "sub" / "B.PNG", rgb=(1, 2, 3))  # nested, upper-case suffix
    _png(root / "train" / "dog" / "gray.png", rgb=(77, 0, 0), gray=True)
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    _png(root / "train" / "stray.png")  # outside any class folder
    (root / "train" / ".ipynb_checkpoints").mkdir()
    _png(root / "val" / "bird" / "v1.png")  # a class only in val
    _png(root / "val" / "dog" / "v2.png")
    return root


def test_image_folder_reads_classes_images_and_problems(image_folder):
    ds = open_classification(image_folder, "train")
    assert isinstance(ds, ClassificationDataset) and ds.source == str(image_folder)
    assert ds.names == ["bird", "cat", "dog"]  # union of every split's class folders, sorted
    assert len(ds) == 3 and ds.labels.tolist() == [1, 1, 2] and ds.labels.dtype == np.int64
    img, t = ds[0]
    assert img.dtype == np.uint8 and img.shape == (12, 16, 3) and tuple(img[0, 0]) == (200, 30, 10)  # RGB
    assert t == {"label": 1, "image_id": 0, "file": str(image_folder / "train" / "cat" / "a.png")}
    assert ds[1][1]["file"].endswith("B.PNG")
    gray, t = ds[2]
    assert gray.shape == (12, 16, 3) and (gray == 77).all() and t["label"] == 2  # grayscale -> 3 equal channels
    r = ds.report
    assert r.images == 3 and r.skipped_images == 2 and r.other_files == 1 and dict(r.per_class) == {1: 2, 2: 1}
    problems = {Path(p.file).name: p.message for p in r.problems}
    assert set(problems) == {"broken.jpg", "stray.png"}
    assert "truncated" in problems["broken.jpg"] or "unreadable" in problems["broken.jpg"]
    assert "outside a class folder" in problems["stray.png"]
    assert "3 images in 2 classes" in r.summary() and "skipped 2 bad images" in r.summary()
    text = r.format(ds.names)
    assert "dog" in text and "broken.jpg" in text and "non-image files: 1" in text
    val = read_image_folder(image_folder, "val")
    assert val.names == ds.names and val.labels.tolist() == [0, 2] and val.report.ok
    assert classification_splits(image_folder) == ["train", "val"]
    with pytest.raises(DataFormatError, match="no 'test' folder"):
        open_classification(image_folder, "test")


def test_mnist_idx_default_split():
    if not MNIST.is_dir():
        pytest.skip(f"shared MNIST data absent: {MNIST}")
    train, val = open_classification(MNIST, "train"), open_classification(MNIST, "val")
    assert (len(train), len(val)) == (6400, 1600)  # first 80 % / last 20 % of the 8,000
    assert train.images.shape == (6400, 28, 28) and train.images.dtype == np.uint8  # one array in memory
    assert (np.bincount(train.labels, minlength=10) + np.bincount(val.labels, minlength=10)).tolist() == MNIST_COUNTS
    img, t = val[0]
    assert img.shape == (28, 28, 3) and (img[..., 0] == img[..., 2]).all()
    assert t["image_id"] == 0 and t["file"].endswith("images-idx3-ubyte.gz#6400") and t["label"] == val.labels[0]
    assert train.report.ok and train.report.images == 6400 and val.names == [str(d) for d in range(10)]
    assert classification_splits(MNIST) == ["train", "val"]
    with pytest.raises(DataFormatError, match="splits train and val, not 'test'"):
        open_classification(MNIST, "test")


def _idx(path: Path, magic: int, dims: tuple[int, ...], data: np.ndarray, gz: bool = False) -> Path:
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + data.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_idx_files_are_checked(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 4, 5), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 12, 9])
    _idx(tmp_path / "x-images-idx3-ubyte", 2051, (10, 4, 5), images)  # raw
    _idx(tmp_path / "x-labels-idx1-ubyte", 2049, (10,), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-images-idx3-ubyte", "images"), images)
    train, val = open_classification(tmp_path, "train"), open_classification(tmp_path, "val")
    assert len(train) == 8 and len(val) == 1  # label 12 is left out and reported
    assert val.labels.tolist() == [9] and val.record_ids.tolist() == [9]
    np.testing.assert_array_equal(val.load_image(0)[..., 1], images[9])
    (p,) = val.report.problems
    assert p.file.endswith("x-labels-idx1-ubyte") and "record 8: label 12 outside 0..9" in p.message
    assert val.report.skipped_images == 1

    bad = tmp_path / "bad"
    bad.mkdir()
    _idx(bad / "b-images-idx3-ubyte.gz", 2049, (10, 4, 5), images, gz=True)
    with pytest.raises(DataFormatError, match=r"b-images-idx3-ubyte.gz: magic number 2049, expected 2051"):
        read_idx(bad / "b-images-idx3-ubyte.gz", "images")
    _idx(bad / "c-images-idx3-ubyte", 2051, (10, 4, 6), images)  # header promises more data
    with pytest.raises(DataFormatError, match=r"c-images-idx3-ubyte: header says 10x4x6 = 240 bytes"):
        read_idx(bad / "c-images-idx3-ubyte", "images")
    (bad / "d-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(DataFormatError, match="d-images-idx3-ubyte.gz: cannot read IDX file"):
        read_idx(bad / "d-images-idx3-ubyte.gz", "images")

    short = tmp_path / "short"
    short.mkdir()
    _idx(short / "s-images-idx3-ubyte", 2051, (10, 4, 5), images)
    _idx(short / "s-labels-idx1-ubyte", 2049, (9,), labels[:9])
    with pytest.raises(DataFormatError, match="holds 10 images but .*s-labels-idx1-ubyte 9 labels"):
        open_classification(short, "train")


def test_official_idx_pairs_by_name(tmp_path):
    for prefix, n in (("train", 6), ("t10k", 3)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", 2051, (n, 2, 2), np.zeros((n, 2, 2)), gz=True)
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", 2049, (n,), np.arange(n), gz=True)
    assert len(open_classification(tmp_path, "train")) == 6 and len(open_classification(tmp_path, "val")) == 3
    _idx(tmp_path / "extra-images-idx3-ubyte", 2051, (1, 2, 2), np.zeros((1, 2, 2)))
    with pytest.raises(DataFormatError, match="no labels file extra-labels-idx1-ubyte"):
        open_classification(tmp_path, "train")


@pytest.fixture
def csv_set(tmp_path) -> Path:
    root = tmp_path / "csvset"
    for name in ("a.png", "b.png", "c.png", "sub/d.png"):
        _png(root / "img" / name)
    (root / "train.csv").write_text(
        "path,label\n"            # 1 header
        "img/a.png,cat\n"         # 2 by name
        "img/b.png,1\n"           # 3 by index -> dog
        "\n"                      # 4 blank: ignored
        "img/c.png\n"             # 5 missing label
        "img/missing.png,cat\n"   # 6 no such file
        "img/sub/d.png,zebra\n"   # 7 unknown class (zebra is no class of this set)
        "img/a.png,7\n"           # 8 index out of range
        f"{root / 'img' / 'c.png'},dog\n"  # 9 absolute path
    )
    (root / "val.csv").write_text("img/sub/d.png,dog\nimg/a.png,cat\n")  # no header
    return root


def test_csv_lists(csv_set):
    (csv_set / "train.csv").write_text((csv_set / "train.csv").read_text().replace("zebra", "dog"))
    ds = open_classification(csv_set / "train.csv", "train")
    assert ds.names == ["cat", "dog"] and ds.labels.tolist() == [0, 1, 1, 1]
    assert ds[0][1]["file"] == str(csv_set / "img" / "a.png")
    lines = sorted((p.line, p.message) for p in ds.report.problems)
    assert [n for n, _ in lines] == [5, 6, 8] and all(p.file == str(csv_set / "train.csv") for p in ds.report.problems)
    assert "expected 2 fields" in lines[0][1] and "missing.png" in lines[1][1] and "outside 0..1" in lines[2][1]
    assert ds.report.skipped_images == 3
    val = open_classification(csv_set / "train.csv", "val")  # the sibling of a split-named csv
    assert val.names == ds.names and val.labels.tolist() == [1, 0]
    assert open_classification(csv_set, "val").labels.tolist() == [1, 0]  # a folder of split csvs
    assert classification_splits(csv_set) == ["train", "val"]


def test_csv_unknown_class_and_named_siblings(csv_set):
    ds = open_classification(csv_set, "train")
    assert ds.names == ["cat", "dog", "zebra"]  # every name in the set's split files is a class
    ds = read_csv(csv_set / "val.csv", names=["cat"])
    assert [(p.line, p.message) for p in ds.report.problems] == [(1, "unknown class 'dog'")] and len(ds) == 1
    (csv_set / "labels_train.csv").write_text("img/a.png,0\nimg/b.png,2\nimg/c.png,x\n")
    (csv_set / "labels_val.csv").write_text("img/a.png,1\n")
    ds = open_classification(csv_set / "labels.csv", "train")  # name.csv -> name_train.csv
    assert ds.names == ["x"] and ds.labels.tolist() == [0, 0]
    assert [(p.line, "outside 0..0" in p.message) for p in ds.report.problems] == [(2, True)]
    with pytest.raises(DataFormatError, match="no CSV for split 'test'"):
        open_classification(csv_set / "labels.csv", "test")


def test_unknown_layouts_name_the_path(tmp_path):
    with pytest.raises(DataFormatError, match="nothing-here not found"):
        open_classification(tmp_path / "nothing-here", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty: not a classification data set"):
        open_classification(tmp_path / "empty", "train")
    with pytest.raises(DataFormatError, match="CSV file not found"):
        open_classification(tmp_path / "list.csv", "train")


def test_sklearn_digits_and_image_folder_round_trip(tmp_path):
    train, val = sklearn_digits("train"), open_classification("sklearn-digits", "val")
    assert (len(train), len(val)) == (1438, 359) and train.images.shape == (1438, 32, 32)
    img, t = val[0]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.max() > 200 and t["file"] == "sklearn-digits#1438"
    np.testing.assert_array_equal(sklearn_digits("val").images, val.images)  # deterministic
    assert classification_splits("sklearn-digits") == ["train", "val"]
    out = write_image_folder(val, tmp_path / "digits", "val")
    assert out == tmp_path / "digits" / "val" and len(list(out.rglob("*.png"))) == 359
    back = open_classification(tmp_path / "digits", "val")
    assert back.names == val.names and back.report.ok
    order = np.argsort([Path(back.file(i)).name for i in range(len(back))])  # files are written as <index>.png
    np.testing.assert_array_equal(back.labels[order], val.labels)
    np.testing.assert_array_equal(back.load_image(int(order[5])), val.load_image(5))  # PNG is lossless


def test_dataset_refuses_inconsistent_arrays():
    report = Report()
    with pytest.raises(ValueError, match="either files or an images array"):
        ClassificationDataset([0], ["a", "b"], report, "x")
    with pytest.raises(ValueError, match="x: 2 files for 1 labels"):
        ClassificationDataset([0], ["a", "b"], report, "x", files=["p.png", "q.png"])
    with pytest.raises(ValueError, match="uint8"):
        ClassificationDataset([0], ["a", "b"], report, "x", images=np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="x: labels must lie in 0..1"):
        ClassificationDataset([2], ["a", "b"], report, "x", images=np.zeros((1, 4, 4), np.uint8))
    empty = ClassificationDataset([], ["a", "b"], report, "x", files=[])
    assert len(empty) == 0 and empty.files.shape == (0,)
