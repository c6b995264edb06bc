"""``rtdet metrics ...`` handlers: thin wrappers that print tables and map bad input to exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rtdet.metrics.coco import COCO_KEYS, coco_to_rtdet, evaluate, format_per_class, format_table
from rtdet.metrics.validate import MetricsInputError

BAD_INPUT = 2


def metrics_coco(gt: str, detections: str, json_out: str | None = None, per_class: bool = False,
                 plots: str | None = None) -> int:
    """Print the 12 COCO numbers (and AP per class); write them as JSON to ``json_out``;
    with ``plots``, also print P/R/F1 per class and write the pictures into that folder."""
    try:
        result = evaluate(gt, detections, per_class=per_class)
        if plots:
            preds, targets, names = coco_to_rtdet(gt, detections)
    except MetricsInputError as e:
        print(f"rtdet metrics coco: {e}", file=sys.stderr)
        return BAD_INPUT
    print(format_table(result))
    if per_class:
        print()
        print(format_per_class(result))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps({k: result[k] for k in COCO_KEYS}, indent=1) + "\n")
        print(f"saved {json_out}")
    if plots:
        _practical(preds, targets, names, plots)
    return 0


def _practical(preds: list[dict], targets: list[dict], names: list[str], out_dir: str) -> None:
    from rtdet.metrics.plots import save_detection_plots
    from rtdet.metrics.prf import confusion_matrix, precision_recall_f1

    prf = precision_recall_f1(preds, targets, names)
    print()
    print(prf.table())
    paths = save_detection_plots(prf, confusion_matrix(preds, targets, len(names)), out_dir)
    print(f"saved {', '.join(str(p) for p in paths)}")
