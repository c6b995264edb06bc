"""What exists, by name, without importing torch: tasks and model families.

One table says, for every model name, its family, its task, the config section
that holds the family's settings and where its builder lives. The config uses
it to know which sections a run carries (a classifier run has no mosaic
settings); :mod:`rtdet.models` imports the builders from it; the command line
lists the names in its help. Keeping the table free of torch keeps
``rtdet --help`` fast.

Example:
    >>> MODELS["rtdet-cls-n"].task, MODELS["rtdet-cls-n"].section
    ('classify', 'cls')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtdet.errors import ModelError

TASKS = ("detect", "classify", "segment")
TASK_SECTIONS = {"detect": "detect", "classify": "classify", "segment": "segment"}  # each task's own settings
# A task's own defaults for shared settings the user did not give (flat names). A classifier sees whole
# objects or glyphs, where a mirror image can be another class (digits, letters), and detection's strong
# scale jitter does not apply. Natural photos: pass --fliplr 0.5. Segmentation has no built-in data set (--data
# is required) and trains on street scenes at CamVid's width: flips and scale jitter, no rotation (the horizon
# stays level), written out so that a change of the detection defaults does not reach it.
TASK_DEFAULTS = {
    "detect": {},
    "classify": {"data": "sklearn-digits", "fliplr": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.3, "degrees": 10.0,
                 "translate": 0.08, "scale": 0.1, "shear": 0.0},
    "segment": {"data": "", "imgsz": 480, "fliplr": 0.5, "scale": 0.5, "degrees": 0.0, "shear": 0.0},
}


@dataclass(frozen=True)
class ModelSpec:
    """One model name: ``builder`` is ``"module:function"``, called as ``function(name, num_classes, **kwargs)``."""

    name: str
    family: str  # yolo, rcnn, detr, cls, seg: models that share an architecture and a loss
    task: str  # one of TASKS
    section: str | None  # config section of the family's settings (None: the family has none)
    builder: str
    about: str = ""
    recipe: str = ""  # "module:function" resolving the family's "auto" settings (rtdet.engine.recipe); "": none
    section_args: tuple[str, ...] = ()  # settings of ``section`` that shape the network: passed to the builder
    # decoding settings the family fixes whatever the config says, as (name, value) pairs: a set-prediction
    # detector (DETR) has no duplicates to suppress, so every backend decodes its outputs without NMS
    decoding: tuple[tuple[str, Any], ...] = ()


# the detr section's settings that shape the network (build arguments, recorded in checkpoints)
DETR_SHAPE = ("num_queries", "embed_dims", "num_decoder_layers", "num_heads", "num_levels", "num_points")
M2F_SHAPE = ("m2f_queries", "m2f_dims", "m2f_layers", "m2f_heads")  # the m2f section's settings that shape the network
SEG_SHAPE = ("upsample", "head_stride", "aux_gain", "blocks")  # the seg section's settings that shape the network
NO_NMS = (("method", "none"),)  # rtdet.models.postprocess.postprocess: the top max_det (box, class) pairs
DETR_RECIPE = "rtdet.models.detr.recipe:detr_recipe"


def _specs(*specs: ModelSpec) -> dict[str, ModelSpec]:
    return {s.name: s for s in specs}


MODELS: dict[str, ModelSpec] = _specs(
    ModelSpec("rtdet-n", "yolo", "detect", "yolo", "rtdet.models.yolo:build_yolo",
              "YOLO-style CNN detector, CPU-first (0.45 GFLOPs at 320 px)"),
    ModelSpec("rtdet-s", "yolo", "detect", "yolo", "rtdet.models.yolo:build_yolo", "YOLO-style CNN detector, small"),
    ModelSpec("rtdet-m", "yolo", "detect", "yolo", "rtdet.models.yolo:build_yolo", "YOLO-style CNN detector, medium"),
    ModelSpec("faster-rcnn", "rcnn", "detect", "rcnn", "rtdet.models.faster_rcnn:build_faster_rcnn",
              "torchvision's Faster R-CNN, MobileNetV3-Large-FPN (fast)", "rtdet.models.faster_rcnn:rcnn_recipe"),
    ModelSpec("faster-rcnn-r50", "rcnn", "detect", "rcnn", "rtdet.models.faster_rcnn:build_faster_rcnn",
              "torchvision's Faster R-CNN, ResNet-50-FPN (the classic recipe)", "rtdet.models.faster_rcnn:rcnn_recipe"),
    ModelSpec("rtdet-cls-n", "cls", "classify", "cls", "rtdet.models.cls:build_classifier",
              "classifier on rtdet-n's backbone (its weights transfer to the detector)"),
    ModelSpec("rtdet-cls-s", "cls", "classify", "cls", "rtdet.models.cls:build_classifier",
              "classifier on rtdet-s's backbone"),
    ModelSpec("lenet", "cls", "classify", "cls", "rtdet.models.cls:build_classifier",
              "LeNet-5-style network for 28x28 digits (the classic reference)"),
    ModelSpec("rtdet-detr-n", "detr", "detect", "detr", "rtdet.models.detr.model:build_detr",
              "real-time detection transformer (RT-DETR-style) on rtdet-n's backbone, no NMS", DETR_RECIPE,
              section_args=DETR_SHAPE, decoding=NO_NMS),
    ModelSpec("rtdet-detr-s", "detr", "detect", "detr", "rtdet.models.detr.model:build_detr",
              "real-time detection transformer on rtdet-s's backbone (RT-DETR-R18's widths)", DETR_RECIPE,
              section_args=DETR_SHAPE, decoding=NO_NMS),
    ModelSpec("rtdet-seg-n", "seg", "segment", "seg", "rtdet.models.seg:build_segmenter",
              "semantic segmentation on rtdet-n's backbone, FPN to stride 4 or 8", section_args=SEG_SHAPE),
    ModelSpec("rtdet-seg-s", "seg", "segment", "seg", "rtdet.models.seg:build_segmenter",
              "semantic segmentation on rtdet-s's backbone", section_args=SEG_SHAPE),
    ModelSpec("rtdet-m2f", "m2f", "segment", "m2f", "rtdet.models.m2f.model:build_m2f",
              "Mask2Former-style mask classification (masked-attention decoder) on rtdet-n's backbone",
              "rtdet.models.m2f.recipe:m2f_recipe", section_args=M2F_SHAPE),
)


def model_spec(name: str) -> ModelSpec:
    """The entry of model ``name``; raises :class:`ModelError` listing the known names."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name]


def fixed_decoding(name: str) -> dict[str, Any]:
    """The decoding settings model ``name`` fixes (see :attr:`ModelSpec.decoding`); {} for an unknown name."""
    spec = MODELS.get(name)
    return dict(spec.decoding) if spec else {}
