"""rtdet.engine.checkpoint: atomic writes survive failures and kills; pretrained loading reports skips."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from rtdet.engine import checkpoint as ck
from rtdet.engine.checkpoint import atomic_save, load_checkpoint, load_pretrained


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


WRITER = """
import sys, torch
from rtdet.engine.checkpoint import atomic_save
big = torch.randn(2_000_000)
i = 0
while True:
    i += 1
    atomic_save({"i": i, "big": big + i}, sys.argv[1])
    print(i, flush=True)
"""


@pytest.mark.slow
def test_killed_writer_leaves_a_complete_file(tmp_path):
    path = tmp_path / "last.pt"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        for _ in range(3):  # wait until a few saves are done, then kill mid-way through the next
            proc.stdout.readline()
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = load_checkpoint(path)
    assert ckpt["i"] >= 3 and ckpt["big"].shape == (2_000_000,)
    assert [p.name for p in tmp_path.iterdir() if p.name != "last.pt"] in ([], [p.name for p in tmp_path.glob(".last.pt.*.tmp")])


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "torn.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="torn.pt: not a readable rtdet checkpoint"):  # ModelError
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


class Small(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, classes)


def test_load_pretrained_copies_matches_and_reports_skips(tmp_path):
    torch.manual_seed(0)
    src, dst = Small(5), Small(3)
    state = {"module." + k: v for k, v in src.state_dict().items()}  # as saved from a DDP model
    state["extra.weight"] = torch.zeros(2)
    atomic_save({"model": state, "ema": None}, tmp_path / "w.pt")
    report = load_pretrained(dst, tmp_path / "w.pt")
    assert sorted(report.loaded) == ["backbone.bias", "backbone.weight"]
    assert report.skipped == {"extra.weight": "not in the model",
                              "head.weight": "shape (5, 4) in file, (3, 4) in model",
                              "head.bias": "shape (5,) in file, (3,) in model"}
    assert sorted(report.missing) == ["head.bias", "head.weight"]
    assert torch.equal(dst.backbone.weight, src.backbone.weight)
    assert "skipped 3" in report.summary() and "head.weight" in report.summary()


def test_load_pretrained_prefers_ema(tmp_path):
    a, b = Small(3), Small(3)
    ema_state = {k: torch.full_like(v, 0.5) for k, v in a.state_dict().items()}
    report = load_pretrained(b, {"model": a.state_dict(), "ema": {"module": ema_state, "updates": 3}})
    assert not report.skipped and torch.all(b.head.weight == 0.5)


class Wrapped(nn.Module):
    """A model that holds ``Small`` under a prefix, as rtdet's Faster R-CNN holds torchvision's network."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net.body = Small(classes)
        self.other = nn.Linear(2, 2)


def test_load_pretrained_reads_a_part_of_the_model_under_the_models_prefix():
    torch.manual_seed(0)
    src, dst = Small(3), Wrapped(3)
    report = load_pretrained(dst, {"features." + k: v for k, v in src.state_dict().items()} | {"extra": torch.ones(1)})
    assert report.moved == ("features.", "net.body.") and len(report.loaded) == 4
    assert report.skipped == {"extra": "outside 'features.', the part of the file that fits the model"}
    assert torch.equal(dst.net.body.head.weight, src.head.weight)
    assert "'features.*' read as 'net.body.*'" in report.summary()
    same = load_pretrained(Wrapped(3), Wrapped(3).state_dict())  # names that fit as they are stay as they are
    assert same.moved == ("", "") and len(same.loaded) == 6
