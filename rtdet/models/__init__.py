"""Models by name: :func:`build_model` builds any entry of :data:`rtdet.registry.MODELS`.

Each family lives in its own module and follows the contract of
:class:`rtdet.models.base.RtdetModel`: the YOLO-style detectors
(:mod:`rtdet.models.yolo`, ``rtdet-n/s/m``), torchvision's Faster R-CNN
(:mod:`rtdet.models.faster_rcnn`, ``faster-rcnn``, ``faster-rcnn-r50``), the detection transformers
(:mod:`rtdet.models.detr`, ``rtdet-detr-n/s``), the classifiers (:mod:`rtdet.models.cls`,
``rtdet-cls-n/s``, ``lenet``) and the segmenters (:mod:`rtdet.models.seg`, ``rtdet-seg-n/s``). The registry (name -> family, task, config
section, builder) is torch-free so the command line can list it cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

from rtdet.models.base import RawOutputs, RtdetModel
from rtdet.models.faster_rcnn import FasterRCNN
from rtdet.models.yolo import SCALES, YOLO
from rtdet.registry import MODELS, ModelSpec, model_spec


def _resolve(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def build_model(name: str, num_classes: int, act: str | None = None, norm: str = "bn", **overrides: Any) -> Any:
    """Build model ``name`` for ``num_classes`` classes.

    Args:
        act: activation override (``relu``, ``lrelu``, ``silu``, ``frelu``); None or "" keeps the model's default.
        norm: ``bn`` or ``gn``.
        overrides: keywords of the family's constructor (e.g. ``reg_max=8``, ``dw_head=False`` for YOLO).

    ``model.build_args`` holds the arguments that rebuild the same architecture
    (``build_model(**model.build_args)``), for checkpoints.

    Raises:
        ModelError: unknown name.
    """
    spec = model_spec(name)
    return _resolve(spec.builder)(name, num_classes, act=act, norm=norm, **overrides)


def family_settings(model: Any, cfg: Any) -> None:
    """Apply the family's config section (e.g. ``cfg.yolo``: the loss) to a freshly built ``model``."""
    spec = model_spec(model.build_args["name"])
    if spec.section:
        module = importlib.import_module(spec.builder.split(":")[0])
        getattr(module, f"apply_{spec.section}_settings")(model, getattr(cfg, spec.section))


def family_recipe(name: str) -> Any:
    """The rules that resolve the ``auto`` settings of model ``name``'s family, ``(cfg, facts) -> [Choice]``
    (see :mod:`rtdet.engine.recipe`); a family without any has none: ``lambda cfg, facts: []``."""
    spec = model_spec(name)
    return _resolve(spec.recipe) if spec.recipe else (lambda cfg, facts: [])


def build_from_config(cfg: Any, num_classes: int) -> Any:
    """Model (with its loss settings) from a :class:`rtdet.config.Config`: ``cfg.model`` names it,
    the family's section (``cfg.yolo``, ``cfg.cls``, ``cfg.seg``) configures it: the settings the registry
    lists as ``section_args`` (e.g. ``seg.upsample``) go to the builder (they shape the network, so
    ``build_args`` records them), the others through ``apply_<section>_settings``.

    ``num_classes`` is passed explicitly because ``cfg.model.num_classes == 0`` means
    "take it from the data set", which only the caller knows.
    """
    spec = model_spec(cfg.model.model)
    shape = {k: getattr(getattr(cfg, spec.section), k) for k in spec.section_args} if spec.section else {}
    model = build_model(cfg.model.model, num_classes, act=cfg.model.act or None, norm=cfg.model.norm, **shape)
    family_settings(model, cfg)
    return model


__all__ = ["MODELS", "SCALES", "FasterRCNN", "ModelSpec", "RawOutputs", "RtdetModel", "YOLO", "build_from_config",
           "build_model", "family_recipe", "family_settings"]
