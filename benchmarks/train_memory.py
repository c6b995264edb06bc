"""Resident memory of the training process and its data-loader workers, epoch after epoch.

    PYTHONPATH=. python benchmarks/train_memory.py [--epochs 12] [--workers 2] [--train 400]

Trains a small dense detector on the digits set (generated in a temporary folder
unless ``--data-dir`` is given) through :class:`rtdet.engine.Trainer` with the
default hooks (CSV, PNG, checkpoints) and persistent worker processes. After each
epoch it prints the RSS and PSS (proportional set size: shared pages divided among
the processes that share them) of the main process and of every worker. Memory is
"flat" when every process's RSS after the last epoch is within 5% of its RSS after
epoch 2; the script exits with status 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from rtdet.config import load_config
from rtdet.data import build_loader, open_dataset, pad_targets
from rtdet.data.digits import ensure_digits
from rtdet.engine import Trainer, default_hooks, seed_everything
from rtdet.engine.hooks import Hook, ProgressBar
from rtdet.engine.memory import child_pids, pss_mb, rss_mb


class CellDetector(nn.Module):
    """A stride-8 grid; the cell holding a box centre predicts its class and box (a few lines of loss)."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers, c = [], 3
        for _ in range(3):
            layers += [nn.Conv2d(c, width, 3, 2, 1), nn.BatchNorm2d(width), nn.SiLU()]
            c, width = width, width * 2
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 1 + num_classes + 4, 1)

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None):
        p = self.out(self.body(images))  # [B, 1+K+4, h, w]
        b, _, h, w = p.shape
        stride = images.shape[-1] / w
        if not self.training:
            return self._decode(p, stride)
        boxes, labels, mask = pad_targets([{k: t[k].cpu() for k in ("boxes", "labels")} for t in targets])
        boxes, labels, mask = boxes.to(p.device), labels.to(p.device), mask.to(p.device)
        centre = ((boxes[..., :2] + boxes[..., 2:]) / 2 / stride).long()
        cx, cy = centre[..., 0].clamp(0, w - 1), centre[..., 1].clamp(0, h - 1)
        bi = torch.arange(b, device=p.device)[:, None].expand_as(cx)
        obj_t = torch.zeros(b, h, w, device=p.device)
        obj_t[bi[mask], cy[mask], cx[mask]] = 1.0
        cell = p.permute(0, 2, 3, 1)[bi[mask], cy[mask], cx[mask]]  # [M, 1+K+4]
        scale = images.shape[-1]
        return {"obj": nn.functional.binary_cross_entropy_with_logits(p[:, 0], obj_t),
                "cls": nn.functional.cross_entropy(cell[:, 1:1 + self.num_classes], labels[mask]),
                "box": (cell[:, -4:].sigmoid() - boxes[mask] / scale).abs().mean()}

    def _decode(self, p: torch.Tensor, stride: float) -> list[dict]:
        out = []
        scale = p.shape[-1] * stride
        for q in p.flatten(2).transpose(1, 2):  # [h*w, 1+K+4] per image
            score, idx = q[:, 0].sigmoid().topk(min(10, len(q)))
            out.append({"boxes": q[idx, -4:].sigmoid() * scale, "scores": score,
                        "labels": q[idx, 1:1 + self.num_classes].argmax(1)})
        return out


class MemoryLog(Hook):
    """After each epoch: RSS (and PSS) of the main process and of each worker, in MiB."""

    priority = 95

    def __init__(self) -> None:
        self.rss: list[list[float]] = []  # per epoch: [main, worker 1, worker 2, ...]

    def after_epoch(self, trainer: Trainer) -> None:
        pids = [os.getpid(), *child_pids(os.getpid())]
        self.rss.append([rss_mb(p) for p in pids])
        cells = [f"{rss_mb(p):6.0f}/{pss_mb(p):4.0f}" for p in pids]
        print(f"epoch {trainer.epoch + 1:3d}  loss {trainer.epoch_losses['loss']:.3f}  RSS/PSS MiB  "
              f"main {cells[0]}  workers {'  '.join(cells[1:])}", flush=True)


def growth(rss: list[list[float]]) -> float:
    """The largest relative RSS growth of any process from epoch 2 to the last epoch."""
    base, last = rss[min(1, len(rss) - 1)], rss[-1]
    return max((b2 - b1) / b1 for b1, b2 in zip(base, last))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train", type=int, default=400, help="training images to generate")
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--hooks", choices=["default", "none"], default="default",
                    help="default: CSV, PNG and checkpoints as in a real run; none: only the memory log")
    ap.add_argument("--data-dir", default="", help="existing or wanted digits folder (default: a temp folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data_dir or Path(tmp) / "digits")
        ensure_digits(root, n_train=args.train, n_val=50, imgsz=args.imgsz)
        cfg = load_config(None, {"epochs": args.epochs, "out": str(Path(tmp) / "run"), "device": "cpu",
                                 "batch": args.batch, "workers": args.workers, "imgsz": args.imgsz,
                                 "nbs": args.batch, "lr": 0.01, "patience": 0, "close_mosaic": 2})
        seed_everything(0)
        ds = open_dataset(str(root / "data.yaml"), "train")
        loader = build_loader(ds, cfg.data, train=True, epochs=args.epochs, seed=0)
        log = MemoryLog()
        hooks = [h for h in default_hooks(cfg) if not isinstance(h, ProgressBar)] if args.hooks == "default" else []
        hooks.append(log)
        Trainer(CellDetector(len(ds.names)), loader, cfg, hooks=hooks).train()
    g = growth(log.rss)
    print(f"largest RSS growth of a process from epoch 2 to epoch {len(log.rss)}: {100 * g:+.1f}% "
          f"({'flat' if g < 0.05 else 'GROWING'}; PSS is informative only: it moves when other programs "
          "sharing the same libraries start or stop)")
    return 0 if g < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
