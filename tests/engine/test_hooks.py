"""rtdet.engine.hooks: results.csv, the loss picture, event names."""

import math

import pytest

from rtdet.engine.hooks import EVENTS, Hook, call_hooks, higher_is_better, plot_results, read_csv, write_csv


def test_csv_columns_can_appear_later(tmp_path):
    rows = [{"epoch": 1, "train/loss": 2.0}, {"epoch": 2, "train/loss": 1.5, "AP": 0.25, "val/loss": 1.75}]
    write_csv(tmp_path / "results.csv", rows)
    text = (tmp_path / "results.csv").read_text()
    assert text.splitlines()[0] == "epoch,train/loss,AP,val/loss"
    back = read_csv(tmp_path / "results.csv")
    assert back[1] == {"epoch": 2.0, "train/loss": 1.5, "AP": 0.25, "val/loss": 1.75}
    assert math.isnan(back[0]["AP"])
    path = plot_results(back, tmp_path / "results.png", "AP")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_events_and_metric_direction():
    assert EVENTS == ("before_train", "before_epoch", "before_iter", "after_iter", "before_val", "after_val",
                      "after_epoch", "after_train")
    assert all(callable(getattr(Hook(), e)) for e in EVENTS)
    assert higher_is_better("AP") and not higher_is_better("val/loss")
    with pytest.raises(ValueError, match="unknown hook event 'after_step'"):
        call_hooks([], "after_step", None)


def test_hooks_depend_on_the_trainer_protocol_only():
    """hooks.py imports nothing from trainer.py (no import cycle); the Trainer provides every protocol member."""
    import ast
    import inspect

    from rtdet.engine import hooks
    from rtdet.engine.hooks import TrainerView
    from rtdet.engine.trainer import Trainer
    from tests.engine.toy import TinyDetector, make_cfg, make_loader

    tree = ast.parse(inspect.getsource(hooks))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("rtdet.engine.trainer") for m in modules)
    members = set(TrainerView.__annotations__) | {n for n in vars(TrainerView) if not n.startswith("_")}
    trainer = Trainer(TinyDetector(), make_loader(), make_cfg("unused"), hooks=[])
    assert {"cfg", "eval_model", "request_stop", "validation_due"} <= members
    assert [m for m in sorted(members) if not hasattr(trainer, m)] == []
