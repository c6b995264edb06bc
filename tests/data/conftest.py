"""Shared fixtures: a tiny digits set and the paths of the shared real data."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
COCO128 = SHARED / "coco128"
VOC_MINI = SHARED / "voc_mini" / "VOCdevkit"


@pytest.fixture(scope="session")
def digits_yaml(tmp_path_factory) -> Path:
    from rtdet.data.digits import generate_digits

    return generate_digits(tmp_path_factory.mktemp("digits"), n_train=24, n_val=8, imgsz=160, seed=3)


@pytest.fixture
def coco128() -> tuple[Path, Path]:
    ann = COCO128 / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip("shared coco128 data absent")
    return ann, COCO128 / "images"


@pytest.fixture
def voc_mini() -> Path:
    if not VOC_MINI.is_dir():
        pytest.skip("shared voc_mini data absent")
    return VOC_MINI
