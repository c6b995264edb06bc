"""``rtdet metrics ...`` handlers: thin wrappers that print tables and map bad input to exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rtdet.metrics.coco import COCO_KEYS, evaluate, format_per_class, format_table
from rtdet.metrics.validate import MetricsInputError

BAD_INPUT = 2


def metrics_coco(gt: str, detections: str, json_out: str | None = None, per_class: bool = False) -> int:
    """Print the 12 COCO numbers (and AP per class); write them as JSON to ``json_out``."""
    try:
        result = evaluate(gt, detections, per_class=per_class)
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
    return 0
