"""rtdet.config: defaults, YAML, overrides, and errors that name the key."""

import pytest
import yaml

from rtdet.config import Config, ConfigError, apply_overrides, config_from_dict, load_config, save_config


def test_defaults_are_complete_and_documented():
    import dataclasses

    from rtdet.config import SECTIONS

    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, {"lr": 0.02, "lr_drop": [3, 6], "ema": False, "model": "rtdet-s"})
    path = save_config(cfg, tmp_path / "run.yaml")
    again = load_config(path)
    assert again == cfg
    assert again.optim.lr == 0.02 and again.optim.lr_drop == [3, 6] and again.model.model == "rtdet-s"


def test_flags_override_yaml(tmp_path):
    (tmp_path / "run.yaml").write_text("optim:\n  lr: 0.05\n  optimizer: adamw\ntrain:\n  epochs: 7\n")
    cfg = load_config(tmp_path / "run.yaml", {"epochs": 3})
    assert (cfg.optim.lr, cfg.optim.optimizer, cfg.train.epochs) == (0.05, "adamw", 3)


def test_int_is_accepted_for_float():
    assert config_from_dict({"optim": {"lr": 1}}).optim.lr == 1.0


@pytest.mark.parametrize(
    "values,message",
    [
        ({"optim": {"lrr": 0.1}}, "unknown setting 'optim.lrr'"),
        ({"optimizer": {}}, "unknown config section 'optimizer'"),
        ({"optim": {"lr": "fast"}}, "setting 'optim.lr': expected float or one of 'auto', got 'fast' \\(str\\)"),
        ({"optim": {"lrf": "fast"}}, "setting 'optim.lrf': expected float, got 'fast' \\(str\\)"),
        ({"train": {"epochs": 2.5}}, "setting 'train.epochs': expected int, got 2.5"),
        ({"train": {"epochs": True}}, "expected int, got True"),
        ({"train": {"ema": "yes"}}, "setting 'train.ema': expected bool"),
        ({"optim": {"optimizer": "lion"}}, "expected one of 'auto', 'sgd'"),
        ({"optim": {"lr_drop": [1, "x"]}}, "setting 'optim.lr_drop\\[1\\]': expected int"),
        ({"optim": 3}, "section 'optim' must be a mapping"),
    ],
)
def test_bad_values_name_key_type_and_value(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


def test_bad_yaml_file_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown setting 'train.epochz'"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_reject_unknown_and_wrong_section():
    with pytest.raises(ConfigError, match="unknown setting 'foo'"):
        apply_overrides(Config(), {"foo": 1})
    with pytest.raises(ConfigError, match="unknown setting 'train.lr'"):
        apply_overrides(Config(), {"train.lr": 1.0})
    assert apply_overrides(Config(), {"optim.lr": 0.3}).optim.lr == 0.3


def test_saved_yaml_is_plain(tmp_path):
    data = yaml.safe_load(save_config(Config(), tmp_path / "c.yaml").read_text())
    assert list(data) == ["model", "data", "detect", "yolo", "optim", "train", "eval"]  # rtdet-n's sections


def test_a_run_carries_its_task_and_family_sections_only(tmp_path):
    from rtdet.config import config_to_dict

    det = config_to_dict(load_config(None, {"model": "rtdet-n"}))
    cls = config_to_dict(load_config(None, {"model": "rtdet-cls-n"}))
    assert {"detect", "yolo"} <= det.keys() and not {"classify", "cls"} & det.keys()
    assert {"classify", "cls"} <= cls.keys() and not {"detect", "yolo"} & cls.keys()
    assert "mosaic" not in yaml.safe_dump(cls)


@pytest.mark.parametrize("overrides,message", [
    ({"model": "rtdet-cls-n", "mosaic": 0.5}, "mosaic do not apply to model rtdet-cls-n \\(task classify\\)"),
    ({"model": "rtdet-n", "label_smoothing": 0.2}, "label_smoothing do not apply to model rtdet-n"),
    ({"model": "rtdet-n", "task": "classify"}, "model rtdet-n does the detect task, not classify"),
])
def test_settings_of_another_task_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_yaml_section_of_another_task_is_refused(tmp_path):
    (tmp_path / "run.yaml").write_text("detect:\n  mosaic: 0.5\n")
    with pytest.raises(ConfigError, match="mosaic do not apply"):
        load_config(tmp_path / "run.yaml", {"model": "rtdet-cls-n"})


def test_given_records_explicit_settings_from_yaml_and_flags(tmp_path):
    (tmp_path / "run.yaml").write_text("detect:\n  conf: 0.001\n")
    cfg = load_config(tmp_path / "run.yaml", {"imgsz": 256})
    assert cfg.given == {"detect.conf", "data.imgsz"}
    assert cfg.explicit("conf") and cfg.explicit("imgsz") and not cfg.explicit("iou")
    assert cfg.detect.conf == 0.001  # an explicit value equal to nothing special still wins


def test_checkpoints_written_before_the_task_sections_still_load():
    from rtdet.config import config_from_checkpoint

    old = {"model": {"model": "rtdet-n", "box_loss": "giou"}, "data": {"imgsz": 224, "mosaic": 0.5},
           "eval": {"conf": 0.01, "backend": "torch"}}
    cfg = config_from_checkpoint(old)
    assert (cfg.yolo.box_loss, cfg.detect.mosaic, cfg.detect.val_conf, cfg.data.imgsz) == ("giou", 0.5, 0.01, 224)


def test_named_recipe_loads_by_name_with_every_setting_explicit():
    from rtdet.config import recipe_names

    assert "faster-rcnn-voc0712" in recipe_names()
    cfg = load_config("faster-rcnn-voc0712", {"batch": 4})
    assert (cfg.model.model, cfg.data.imgsz, cfg.data.split) == ("faster-rcnn-r50", 800, "test")
    assert cfg.train.metric == "voc07"
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.nbs) == ("sgd", 0.01, 1e-4, 16)
    assert (cfg.train.epochs, cfg.optim.schedule, cfg.optim.lr_drop, cfg.detect.mosaic) == (12, "step", [9], 0.0)
    assert cfg.data.batch == 4 and cfg.explicit("lr") and cfg.explicit("fliplr")  # flags still win
    with pytest.raises(ConfigError, match="named recipes: faster-rcnn-voc0712"):
        load_config("no-such-recipe")
