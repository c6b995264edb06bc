"""The benchmarks' own scoring, on real data: what they report is what rtdet's metrics say.

The benchmarks train for minutes to hours and are not run here; their scoring and tables are."""

import sys
from pathlib import Path

import pytest

from rtdet.deploy.images import shared_data_dir

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
BCCD = shared_data_dir() / "bccd"
pytestmark = pytest.mark.skipif(not BCCD.is_dir(), reason="needs ../shared/data/bccd (real photos)")


@pytest.fixture(scope="module")
def bccd():
    sys.path.insert(0, str(BENCH))
    try:
        import bccd as module
        yield module, module.BenchData(str(BCCD), "")
    finally:
        sys.path.remove(str(BENCH))


def _ground_truth_as_predictions(data, drop_class=None):
    preds = []
    for i, f in enumerate(data.files):
        ann = data.val.annotations(i)
        preds += [{"image": f, "xyxy": b.tolist(), "score": 1.0, "label": int(c)}
                  for b, c in zip(ann["boxes"], ann["labels"]) if c != drop_class]
    return preds


def test_bccd_scores_perfect_predictions_as_perfect(bccd):
    module, data = bccd
    assert len(data.train) == 292 and len(data.val) == 72  # trainval / test, VOC's protocol
    row = module.score(data, _ground_truth_as_predictions(data))
    assert row["voc07_mAP50"] == pytest.approx(1.0) and row["AP"] == pytest.approx(1.0)
    assert set(row["voc07_per_class"]) == set(row["coco_per_class"]) == {"Platelets", "RBC", "WBC"}


def test_bccd_per_class_numbers_follow_the_classes(bccd):
    module, data = bccd
    wbc = data.val.names.index("WBC")
    row = module.score(data, _ground_truth_as_predictions(data, drop_class=wbc))
    assert row["voc07_per_class"]["WBC"] == 0.0 and row["coco_per_class"]["WBC"] == 0.0
    assert row["voc07_per_class"]["RBC"] == pytest.approx(1.0)
    assert row["voc07_mAP50"] == pytest.approx(2 / 3)  # the mean over the three classes


def test_bccd_names_the_single_pixel_boxes(bccd):
    _, data = bccd
    warned = {w.file.rsplit("/", 1)[-1] for w in data.train.report.warnings}
    assert warned == {"BloodImage_00338.jpg", "BloodImage_00343.jpg"}
