"""rtdet.engine.resume: what --resume takes, extends or refuses; resumed runs through the CLI (also after SIGKILL)."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from rtdet.config import ConfigError, load_config
from rtdet.engine import RESUME_SAFE, LRSchedule, Trainer, default_hooks, load_checkpoint, resume_config, seed_everything
from rtdet.engine.hooks import read_csv
from rtdet.engine.resume import requested_settings
from tests.engine import cli_runs
from tests.engine.toy import TinyDetector, make_cfg, make_loader


def toy_run(out: Path, **settings) -> Trainer:
    cfg = make_cfg(out, **settings)
    seed_everything(0)
    trainer = Trainer(TinyDetector(), make_loader(8, 4), cfg, evaluate=lambda m: {"AP": 0.5},
                      hooks=default_hooks(cfg, progress=False))
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """last.pt of a toy run that completed its 2 epochs."""
    out = tmp_path_factory.mktemp("finished")
    toy_run(out, epochs=2)
    return out / "weights" / "last.pt"


def test_a_finished_run_needs_more_epochs(finished):
    with pytest.raises(ConfigError, match=r"already finished its 2 epochs; give --epochs N with N > 2"):
        resume_config(finished)
    with pytest.raises(ConfigError, match=r"epochs 2 asks for no more than the 2"):
        resume_config(finished, {"epochs": 2})
    cfg = resume_config(finished, {"epochs": 5})
    assert cfg.train.epochs == 5 and cfg.train.resume == str(finished)
    assert cfg.optim.lr == 0.05 and cfg.data.batch == 4  # the rest is the checkpoint's


def test_same_values_and_safe_settings_are_taken(finished):
    same = {"lr": 0.05, "batch": 4, "nbs": 4, "epochs": 3, "out": str(finished.parent.parent), "resume": "x.pt"}
    assert resume_config(finished, same).optim.lr == 0.05
    changed = {"device": "auto", "workers": 3, "patience": 7, "val_interval": 2, "tensorboard": True}
    assert set(changed) == set(RESUME_SAFE)  # one value per safe setting, all different from the checkpoint's
    cfg = resume_config(finished, {**changed, "epochs": 3})
    assert (cfg.train.device, cfg.data.workers, cfg.train.patience, cfg.train.val_interval, cfg.train.tensorboard) == (
        "auto", 3, 7, 2, True)


def test_other_changes_are_refused_in_one_line(finished):
    with pytest.raises(ConfigError) as e:
        resume_config(finished, {"optim.lr": 0.5, "batch": 2, "mosaic": 0.0, "epochs": 3})
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"--resume {finished}: cannot change ")
    for part in ("lr (0.05 in the checkpoint, 0.5 asked for)", "batch (4 in the checkpoint, 2 asked for)",
                 "mosaic (1.0 in the checkpoint, 0.0 asked for)", f"--weights {finished}"):
        assert part in text
    with pytest.raises(ConfigError, match=r"cannot change out \(.* is the run folder, elsewhere asked for\)"):
        resume_config(finished, {"out": "elsewhere", "epochs": 3})
    with pytest.raises(ConfigError, match="unknown setting 'nonsense'"):
        resume_config(finished, {"nonsense": 1})


def test_the_run_folder_is_where_the_checkpoint_lives(finished, tmp_path):
    moved = tmp_path / "moved" / "weights" / "last.pt"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(finished.read_bytes())
    assert resume_config(moved, {"epochs": 3}).train.out == str(tmp_path / "moved")


def test_requested_settings_are_the_explicit_ones(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"optim": {"lr": 0.01}, "train": {"epochs": 100}}))
    cfg = load_config(path, {"resume": "last.pt", "batch": 4})  # lr and epochs equal the defaults, yet were given
    assert requested_settings(cfg) == {"lr": 0.01, "epochs": 100, "batch": 4}


def test_extended_run_relays_the_schedule_and_continues_the_csv(finished, tmp_path):
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    last = run / "weights" / "last.pt"
    last.write_bytes(finished.read_bytes())
    cfg = resume_config(last, {"epochs": 4})
    trainer = toy_run(run, epochs=4, resume=str(last))
    assert trainer.start_epoch == 2 and trainer.iter == 4 * len(trainer.train_loader)
    rows = read_csv(run / "results.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[:2] == read_csv(finished.parent.parent / "results.csv")  # the finished run's rows, kept
    # epochs 3 and 4 follow the schedule of a 4-epoch run; the last batch reaches lrf
    planned = LRSchedule(cfg.optim, 4, len(trainer.train_loader))
    per_epoch = len(trainer.train_loader)
    for r in rows[2:]:
        it = int(r["epoch"]) * per_epoch - 1  # the lr logged is the one of the epoch's last batch
        assert r["lr/pg0"] == pytest.approx(planned.values(it, "decay", cfg.optim.lr)[0], rel=1e-6)


# ------------------------------------------------------------------ through the command line


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return cli_runs.tiny_digits(tmp_path_factory.mktemp("digits"))


@pytest.mark.slow
def test_cli_resume_extends_refuses_and_says_so(digits, tmp_path, capsys, caplog, one_thread):
    """`train --epochs 1`, then `--resume last.pt --epochs 3` trains epochs 2-3 in the same folder."""
    from rtdet.cli import main

    caplog.set_level(logging.INFO, logger="rtdet")

    out = tmp_path / "run"
    assert main(cli_runs.train_args(digits, out, "--epochs", "1", "--batch", "8", "--lr", "0.02")) == 0
    last = out / "weights" / "last.pt"
    first = read_csv(out / "results.csv")
    capsys.readouterr()
    assert main(["train", "--resume", str(last)]) == 2
    assert capsys.readouterr().err.strip() == (f"rtdet: error: --resume {last}: the run already finished its 1 epochs; "
                                               f"give --epochs N with N > 1 to train longer")
    assert main(["train", "--resume", str(last), "--epochs", "3", "--lr", "0.1", "--imgsz", "96"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "imgsz (64 in the checkpoint, 96 asked for)" in err and "lr (0.02" in err
    # the original command line plus --resume and a new --epochs (and a safe --patience) continues the run
    assert main(cli_runs.train_args(digits, out, "--batch", "8", "--lr", "0.02", "--resume", str(last),
                                    "--epochs", "3", "--patience", "9")) == 0
    assert "a run of 1 epochs continues to 3" in caplog.text
    rows = read_csv(out / "results.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[0] == pytest.approx(first[0], nan_ok=True)
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 3 and ckpt["config"]["train"]["epochs"] == 3 and ckpt["config"]["train"]["patience"] == 9
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 3


def _kill_when(proc, ready, timeout: float = 90) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() - t0 < timeout, "the moment to kill never came"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


KILL_ARGS = ["--epochs", "3", "--batch", "8", "--deterministic", "--close-mosaic", "1", "--seed", "5"]


@pytest.fixture(scope="module")
def straight(digits, tmp_path_factory) -> Path:
    """An uninterrupted deterministic 3-epoch run (mosaic in epochs 1-2, off in the last)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    done = cli_runs.rtdet(cli_runs.train_args(digits, out, *KILL_ARGS), cwd=out.parent)
    assert done.returncode == 0, cli_runs.tail(done)
    return out


def _mid_epoch_2(weights: Path):
    """0.3 s after the first last.pt appeared: in epoch 2 (or 3 on a fast machine)."""

    def ready() -> bool:
        if not (weights / "last.pt").is_file():
            return False
        time.sleep(0.3)
        return True

    return ready


def _mid_checkpoint_write(weights: Path):
    """While the second last.pt is being written: its temporary file exists."""
    return lambda: (weights / "last.pt").is_file() and any(weights.glob(".last.pt.*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("moment", [_mid_epoch_2, _mid_checkpoint_write], ids=["mid-epoch", "mid-checkpoint-write"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(digits, straight, tmp_path, moment):
    out = tmp_path / "run"
    weights = out / "weights"
    _kill_when(cli_runs.popen(cli_runs.train_args(digits, out, *KILL_ARGS), cwd=tmp_path), moment(weights))
    epoch = load_checkpoint(weights / "last.pt")["epoch"]  # complete, although the process died
    assert epoch in (1, 2)
    if moment is _mid_checkpoint_write:  # a torn temporary file, and a row of epoch 2 that last.pt lacks
        assert any(weights.glob(".last.pt.*.tmp")) and epoch == 1 and len(read_csv(out / "results.csv")) == 2
    resumed = cli_runs.rtdet(["train", "--resume", str(weights / "last.pt")], cwd=tmp_path)
    assert resumed.returncode == 0, cli_runs.tail(resumed)
    for name in ("last.pt", "best.pt"):
        a, b = cli_runs.weights(straight / "weights" / name), cli_runs.weights(weights / name)
        for part in ("model", "ema"):
            assert a[part].keys() == b[part].keys()
            assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), f"{name} {part}"
    # rows of epochs after last.pt (written before the kill) are replaced, never repeated
    assert (out / "results.csv").read_text() == (straight / "results.csv").read_text()
    assert sorted(p.name for p in weights.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
