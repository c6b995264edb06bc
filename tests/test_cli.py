"""The rtdet command line: help for every command, config flags, honest exit codes."""

import subprocess
import sys

import pytest
import yaml

from rtdet.cli import build_parser, main

COMMANDS = ["train", "val", "predict", "export", "bench", "data", "metrics", "demo", "info", "config"]


def test_every_command_has_help(capsys):
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: rtdet " + cmd in capsys.readouterr().out


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out


def test_config_flags_and_yaml(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("optim:\n  lr: 0.05\n")
    out = tmp_path / "resolved.yaml"
    assert main(["config", "--config", str(tmp_path / "run.yaml"), "--epochs", "4", "--no-ema",
                 "--lr-drop", "2", "3", "--save", str(out)]) == 0
    saved = yaml.safe_load(out.read_text())
    assert saved["optim"]["lr"] == 0.05 and saved["train"]["epochs"] == 4
    assert saved["train"]["ema"] is False and saved["optim"]["lr_drop"] == [2, 3]


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("optim:\n  lr: fast\n")
    assert main(["config", "--config", str(tmp_path / "run.yaml")]) == 2
    assert "setting 'optim.lr': expected float or one of 'auto', got 'fast'" in capsys.readouterr().err


def test_bad_flag_type_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["config", "--epochs", "many"])
    assert e.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_flags_are_unique_across_sections():
    build_parser()  # raises if two sections share a setting name


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "rtdet", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: rtdet" in r.stdout


def test_import_has_no_side_effects(tmp_path):
    code = (
        "import builtins, os, socket, sys\n"
        "p0 = builtins.print\n"
        "def no_net(*a, **k): raise AssertionError('network used on import')\n"
        "socket.socket.connect = no_net\n"
        "before = set(os.listdir('.'))\n"
        "import rtdet, rtdet.cli\n"
        "assert builtins.print is p0\n"
        "assert set(os.listdir('.')) == before, 'files written on import'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", ["predict", "val", "export", "bench"])
def test_unreadable_weights_are_one_error_line(command, tmp_path, capsys):
    """An image, a cut file or a fake .onnx given as weights: `rtdet: error:` naming it, never a traceback."""
    picture = tmp_path / "photo.pt"
    picture.write_bytes(b"\xff\xd8\xff\xe0 not a checkpoint at all")
    fake_onnx = tmp_path / "model.onnx"
    fake_onnx.write_bytes(b"not protobuf")
    for weights in (picture, fake_onnx):
        argv = [command, "--weights", str(weights)] + {"predict": ["--source", str(tmp_path)]}.get(command, [])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("rtdet: error:") and weights.name in err and "Traceback" not in err
