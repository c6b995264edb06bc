"""Classifier speed on this CPU: loader images/s and training-step time of rtdet-cls-n (and lenet).

    PYTHONPATH=. python benchmarks/cls_speed.py [--sizes 32 64] [--batch 64] [--threads 2] [--steps 10]

Uses the MNIST digits in ``../shared/data/mnist`` (first 6,400 = train) for the
loader rows and random images for the step rows. A training step is forward,
backward and an SGD update at batch ``--batch``, timed as the median of
``--steps`` steps after 3 warm-up steps; contiguous and channels-last memory
layouts are both shown (the trainer uses channels-last).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rtdet.data.classify import open_classification  # noqa: E402
from rtdet.data.classify_aug import DIGITS_AUGMENT, build_classification_loader  # noqa: E402
from rtdet.models.cls import build_classifier  # noqa: E402

MNIST = ROOT / ".." / "shared" / "data" / "mnist"


def loader_rate(size: int, batch: int, train: bool) -> float:
    """Images per second of one pass over the MNIST train split (in-process, workers=0)."""
    ds = open_classification(MNIST, "train")
    loader = build_classification_loader(ds, size, batch, train, augment=DIGITS_AUGMENT)
    t = time.perf_counter()
    n = sum(len(images) for images, _ in loader)
    return n / (time.perf_counter() - t)


def step_ms(name: str, size: int, batch: int, steps: int, channels_last: bool) -> tuple[float, float]:
    """Median milliseconds of a training step and of an eval forward pass."""
    torch.manual_seed(0)
    model = build_classifier(name, 10).train()
    images = torch.rand(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    targets = [{"label": i % 10} for i in range(batch)]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        loss = model(images, targets)["loss_cls"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    model.eval()
    evals = []
    with torch.no_grad():
        for i in range(steps + 3):
            t = time.perf_counter()
            model(images)
            if i >= 3:
                evals.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), 1000 * statistics.median(evals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--models", nargs="+", default=["rtdet-cls-n", "lenet"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    if MNIST.is_dir():
        print("\n| loader (MNIST train, workers 0) | imgsz | images/s |\n|---|---|---|")
        for size in args.sizes:
            for train in (True, False):
                kind = "train (DIGITS_AUGMENT)" if train else "eval"
                print(f"| {kind} | {size} | {loader_rate(size, args.batch, train):.0f} |")
    print("\n| model | imgsz | layout | train step ms | train images/s | eval ms |\n|---|---|---|---|---|---|")
    for name in args.models:
        for size in args.sizes:
            for cl in (False, True):
                train, ev = step_ms(name, size, args.batch, args.steps, cl)
                layout = "channels-last" if cl else "contiguous"
                print(f"| {name} | {size} | {layout} | {train:.1f} | {args.batch / train * 1000:.0f} | {ev:.1f} |")


if __name__ == "__main__":
    main()
