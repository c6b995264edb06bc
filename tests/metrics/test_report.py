"""The one-call report: same official numbers, pictures written, letterboxed input mapped back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from rtdet.metrics.coco import COCO_KEYS, evaluate_predictions
from rtdet.metrics.report import detection_report
from tests.metrics.cases import random_voc


def test_report_matches_the_parts(tmp_path):
    preds, targets = random_voc(4)
    for i, t in enumerate(targets):
        t["image_id"] = i
    names = list("abcd")
    rep = detection_report(preds, targets, names, out_dir=tmp_path)
    direct = evaluate_predictions(preds, targets, names)
    assert [rep.coco[k] for k in COCO_KEYS] == [direct[k] for k in COCO_KEYS]
    assert len(rep.plots) == 4 and sorted(p.name for p in rep.plots) == sorted(p.name for p in tmp_path.glob("*.png"))
    assert rep.confusion.shape == (5, 5)
    assert "AP50" in rep.text() and "F1" in rep.text()


def test_input_frame_is_mapped_back():
    preds, targets = random_voc(6)
    names = list("abcd")
    boxed_p, boxed_t = [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        t["image_id"] = i
        lb = (0.5 + 0.1 * (i % 3), 4.0, 9.0)
        shift = torch.tensor([lb[1], lb[2], lb[1], lb[2]], dtype=torch.float64)
        boxed_t.append({**t, "boxes": t["boxes"] * lb[0] + shift, "letterbox": lb})
        boxed_p.append({**p, "boxes": p["boxes"] * lb[0] + shift})
    a = detection_report(preds, targets, names)
    b = detection_report(boxed_p, boxed_t, names, frame="input")
    np.testing.assert_allclose([b.coco[k] for k in COCO_KEYS], [a.coco[k] for k in COCO_KEYS], atol=1e-9)
    np.testing.assert_array_equal(a.confusion, b.confusion)
    np.testing.assert_allclose(a.prf.best.f1, b.prf.best.f1, atol=1e-9)


def test_import_has_no_heavy_side_effects():
    code = ("import sys, rtdet.metrics, rtdet.metrics.plots; "
            "print(any(m in sys.modules for m in ('matplotlib', 'faster_coco_eval', 'pycocotools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
