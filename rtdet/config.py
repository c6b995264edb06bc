"""Typed settings for every rtdet run.

Settings are dataclasses whose fields carry a default and a one-line help text
(the ``help`` metadata, shown by ``rtdet <cmd> --help``). YAML files only load and
save them; command-line flags map onto the very same fields. Every value that
enters a config, from YAML or from Python, is checked against the field's type,
so a typo or a wrong type fails early with the key, the expected type and the
value received.

Example:
    >>> cfg = load_config(None, {"lr": 0.02, "epochs": 5})
    >>> cfg.optim.lr, cfg.train.epochs
    (0.02, 5)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from rtdet.errors import RtdetError


class ConfigError(RtdetError, ValueError):
    """A setting that is unknown or has the wrong type."""


AUTO = "auto"
Auto = Literal["auto"]  # a setting the training recipe chooses from the run (rtdet.engine.recipe)


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line help text."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    model: str = opt("rtdet-n", "model name: rtdet-n/s/m, rtdet-detr-n/s, faster-rcnn (MobileNetV3-Large-FPN) and "
                     "faster-rcnn-r50 (ResNet-50-FPN) (detect), rtdet-cls-n/s and lenet (classify), "
                     "rtdet-seg-n/s and rtdet-m2f (segment)")
    task: str = opt("", "task (detect, classify, segment); empty: the model's own (a checkpoint records it)")
    num_classes: int = opt(0, "number of classes; 0 takes it from the data set")
    act: str = opt("", "activation override: relu, lrelu, silu, frelu; empty keeps the model's default")
    norm: Literal["bn", "gn"] = opt("bn", "normalization layers: bn (BatchNorm) or gn (GroupNorm)")
    weights: str = opt("", "local checkpoint or state dict to start from; tensors with matching names and shapes "
                       "are copied (e.g. a classifier's backbone into a detector; torchvision's backbone or "
                       "detector files); 'torchvision:NAME' (e.g. torchvision:ResNet50_Weights.IMAGENET1K_V1) "
                       "downloads torchvision's published weights of that name")


@dataclass
class DataConfig:
    data: str = opt("digits", "data set: detect: a YOLO data.yaml, a COCO json, a VOC tree, or 'digits' (built-in); "
                    "classify: an image folder of class folders, a folder of MNIST IDX files, a CSV, or "
                    "'sklearn-digits' (built-in); segment: a data.yaml with <split>_masks folders, an ADE20K folder "
                    "or a VOC tree with SegmentationClass/")
    root: str = opt("datasets/digits", "folder of the built-in digits detection set (generated there when absent)")
    imgsz: int = opt(320, "input image size in pixels (square); predict/export/bench default to the model's own")
    split: str = opt("val", "split that val and the validation during training score: val, test or any split the "
                     "data set names (VOC: val reads test.txt when present)")
    batch: int = opt(16, "images per batch (per process when distributed)")
    workers: int = opt(-1, "data loader worker processes; -1: 0 on machines with 2 cores or fewer (workers "
                       "would compete with the model's threads), else half the cores up to 8")
    cache: bool = opt(False, "keep decoded images in RAM")
    fliplr: float = opt(0.5, "probability of a horizontal flip")
    hsv_h: float = opt(0.015, "hue jitter (fraction of the hue circle)")
    hsv_s: float = opt(0.7, "saturation jitter (fraction)")
    hsv_v: float = opt(0.4, "value jitter (fraction)")
    degrees: float = opt(0.0, "random rotation range in degrees (+/-)")
    translate: float = opt(0.1, "random translation (fraction of image size, +/-)")
    scale: float | Auto = opt(AUTO, "random scale gain (+/-); auto: 0.25 for a short run (< 10,000 iterations), the "
                                    "classic 0.5 for a long one")
    shear: float = opt(0.0, "random shear in degrees (+/-)")
    mixup: float = opt(0.0, "probability of mixup")
    cutmix: float = opt(0.0, "probability of cutmix")
    erasing: float = opt(0.0, "probability of random erasing")


@dataclass
class DetectConfig:
    """Settings of the detect task: detection-only augmentation and the decoding of boxes."""

    mosaic: float = opt(1.0, "probability of a 4-image mosaic")
    close_mosaic: int | Auto = opt(AUTO, "turn mosaic off for the last N epochs; auto: a third of the run, 1 to 10")
    multi_scale: bool = opt(False, "train at a random size in [0.5, 1.5] x imgsz per batch")
    rect: bool = opt(False, "rectangular validation batches (less padding)")
    conf: float = opt(0.25, "confidence threshold of delivered detections (predict, export --nms, bench, the API)")
    val_conf: float = opt(0.001, "confidence threshold when scoring (val, validation while training): low, so "
                          "the precision-recall curve is complete, as COCO evaluation expects")
    iou: float = opt(0.7, "NMS IoU threshold")
    max_det: int = opt(300, "maximum detections per image")
    nms: Literal["nms", "soft", "diou", "agnostic"] = opt("nms", "suppression method")


@dataclass
class ClassifyConfig:
    """Settings of the classify task."""

    crop_scale: float = opt(0.8, "random resized crop: smallest crop area as a fraction of the image (1 = no crop); "
                            "0.8 keeps whole glyphs (digits, letters), natural photos take 0.35 or less")
    topk: int = opt(5, "classes reported per image by predict, and the k of top-k accuracy")


@dataclass
class SegmentConfig:
    """Settings of the segment task (the data say which mask value is unlabelled: see rtdet.data.segment)."""

    overlay_alpha: float = opt(0.5, "opacity of the class colours laid over the image in predict's pictures and "
                               "the run's val_predictions.png (0: the image only, 1: the colours only)")


@dataclass
class YoloConfig:
    """The YOLO family's loss (rtdet-n/s/m)."""

    box_loss: Literal["ciou", "giou", "diou", "iou"] = opt("ciou", "box regression loss: 1 - this IoU kind")
    cls_loss: Literal["bce", "focal", "varifocal"] = opt("bce", "classification loss")
    box_gain: float = opt(7.5, "weight of the box (IoU) loss")
    cls_gain: float = opt(0.5, "weight of the classification loss")
    dfl_gain: float = opt(1.5, "weight of the distribution focal loss")


@dataclass
class DetrConfig:
    """The DETR family's network, denoising, loss and matching (rtdet-detr-n/s). Defaults are RT-DETR's
    (Zhao et al., 2024; rtdetr_pytorch's configs) unless a comment names another source."""

    num_queries: int = opt(300, "object queries: the most objects an image can have detected")
    embed_dims: int = opt(0, "transformer width; 0: the scale's own, 128 for -n (D-FINE-N's), 256 for -s "
                          "(RT-DETR-R18's)")
    num_decoder_layers: int = opt(3, "decoder layers (RT-DETR-R18, D-FINE-N: 3)")
    num_heads: int = opt(8, "attention heads in the encoder and decoder")
    num_levels: int = opt(3, "feature levels the decoder reads: the backbone's last 1-3 maps (strides 8, 16, 32)")
    num_points: int = opt(4, "deformable attention sampling points per head and level")
    num_denoising: int = opt(100, "about how many contrastive denoising queries in training (0: no denoising)")
    label_noise: float = opt(0.5, "denoising: twice the probability of a flipped label")
    box_noise: float = opt(1.0, "denoising: box corner noise, in half box sizes")
    class_loss: Literal["varifocal", "focal"] = opt("varifocal", "classification loss: varifocal (IoU-aware "
                                                    "targets, RT-DETR) or focal (Deformable DETR)")
    class_gain: float = opt(1.0, "weight of the classification loss")
    l1_gain: float = opt(5.0, "weight of the L1 box loss (normalized cxcywh)")
    giou_gain: float = opt(2.0, "weight of the GIoU box loss")
    cost_class: float = opt(2.0, "matching cost weight of the focal class cost")
    cost_l1: float = opt(5.0, "matching cost weight of the L1 box distance")
    cost_giou: float = opt(2.0, "matching cost weight of minus the GIoU")
    backbone_lr_scale: float | Auto = opt(AUTO, "the backbone's learning rate as a fraction of lr; auto: 0.1 with "
                                          "--weights (RT-DETR's, for a pretrained backbone), 1 from scratch")
    o2m_k: int = opt(0, "one-to-many matching of the auxiliary sets (earlier decoder layers, encoder proposals): "
                     "up to this many queries per target (H-DETR's hybrid layer scheme); the last layer stays "
                     "one-to-one; 0: off. Training only")


@dataclass
class ClsConfig:
    """The classifier family's head and loss (rtdet-cls-n/s, lenet)."""

    label_smoothing: float = opt(0.1, "cross-entropy label smoothing")
    dropout: float = opt(0.0, "dropout before the linear head")


@dataclass
class RcnnConfig:
    """The Faster R-CNN family's backbone (faster-rcnn, faster-rcnn-r50), as torchvision's references set it."""

    trainable_layers: int | Auto = opt(AUTO, "backbone stages that train, counted from the top (ResNet-50: 0-5, "
                                       "MobileNetV3: 0-6); auto: 3 with --weights, all from scratch (torchvision)")
    backbone_bn: Literal["auto", "frozen", "trained"] = opt(
        "auto", "backbone BatchNorm: frozen (statistics and affine kept, torchvision's FrozenBatchNorm2d) or "
        "trained; auto: frozen with --weights, trained from scratch (torchvision)")


@dataclass
class SegConfig:
    """The segmentation family's network and loss (rtdet-seg-n/s)."""

    upsample: Literal["nearest", "bilinear", "transposed", "pixelshuffle"] = opt(
        "bilinear", "how the head's class logits (stride 4 or 8) reach the input resolution: interpolation (nearest, "
        "bilinear), a learned depthwise ConvTranspose2d started as bilinear (transposed), or sub-pixel convolution "
        "(pixelshuffle)")
    head_stride: Literal[4, 8] = opt(4, "the stride at which the class head predicts: the FPN fuses the backbone's "
                                     "stages at strides 4-32 (4), or 8-32 as LR-ASPP (8: a quarter fewer "
                                     "multiply-adds for rtdet-seg-n)")
    blocks: Literal["c2f", "ir"] = opt("c2f", "the blocks of the backbone's stages at strides 16 and 32: the "
                                       "detector's C2f (c2f: a detector's or classifier's backbone weights load), "
                                       "or MobileNetV3's inverted residuals with squeeze-excitation (ir)")
    dice_gain: float = opt(0.0, "weight of a Dice loss added to the cross-entropy (0: cross-entropy only)")
    aux_gain: float = opt(0.0, "deep supervision: weight of the losses of auxiliary class heads on the FPN's "
                          "stride-16 and stride-8 maps (stride 16 only with head_stride 8) (training only; 0: none)")
    loss_stride: Literal[1, 2, 4] = opt(1, "the training loss reads the logits upsampled to 1/loss_stride of the input "
                                      "size, against the mask at the centres of loss_stride x loss_stride cells "
                                      "(2: 4x fewer pixels; CamVid, rtdet-seg-n: a sixth less training CPU time, the "
                                      "same mIoU; needs an interpolating upsampler)")
    ohem_thresh: float = opt(0.0, "online hard example mining: the cross-entropy averages over the labelled pixels "
                             "whose predicted probability of their class is below this, at least a sixteenth of "
                             "them (the hardest) (BiSeNet's OhemCELoss: 0.7); 0: over all labelled pixels")
    class_weight: Literal["none", "median_freq", "sqrt_median_freq"] = opt(
        "sqrt_median_freq", "cross-entropy class weights from each class's share f of the training pixels: "
        "sqrt(median(f) / f) (default), median(f) / f (SegNet's median-frequency balancing) or none; "
        "CamVid, 50 epochs: mIoU 0.593, 0.521, 0.524")


@dataclass
class M2fConfig:
    """The Mask2Former family's network and loss (rtdet-m2f). Defaults are Mask2Former's (Cheng et al., 2022;
    its ADE20K and Cityscapes semantic configs) unless a comment names another source. Flag names are flat,
    so these carry the prefix m2f_ (the detr section has its own num_queries, num_heads, ...)."""

    m2f_queries: int = opt(100, "queries: the most segments an image can be predicted to have")
    m2f_dims: int = opt(128, "transformer and mask-feature width (Mask2Former: 256; 128 as rtdet-detr-n, for CPUs)")
    m2f_layers: int = opt(6, "decoder layers, reading the strides 32, 16, 8 in turn (Mask2Former: 9; 6 for CPUs)")
    m2f_heads: int = opt(8, "attention heads in the pixel decoder and the decoder")
    m2f_points: int = opt(3136, "points per mask at which the mask losses and matching costs are computed "
                          "(56 x 56; Mask2Former: 112 x 112 = 12544, on GPUs: 2.7x the loss's CPU time at 480 px)")
    m2f_oversample: float = opt(3.0, "point sampling: candidates per point, of which the most uncertain are kept")
    m2f_importance: float = opt(0.75, "point sampling: share of the points taken where the prediction is most "
                                "uncertain (the rest uniformly random)")
    m2f_class_gain: float = opt(2.0, "weight of the classification loss and of the class matching cost")
    m2f_mask_gain: float = opt(5.0, "weight of the mask binary cross-entropy loss and matching cost")
    m2f_dice_gain: float = opt(5.0, "weight of the mask Dice loss and matching cost")
    m2f_no_object: float = opt(0.1, "class weight of 'no object' in the classification loss")
    m2f_backbone_lr_scale: float = opt(0.1, "the backbone's learning rate as a fraction of lr")


@dataclass
class OptimConfig:
    optimizer: Literal["auto", "sgd", "adam", "adamw", "rmsprop", "adagrad"] = opt(
        "auto", "optimizer; auto: AdamW for short runs, SGD for long ones (rtdet.engine.recipe)")
    lr: float | Auto = opt(AUTO, "initial learning rate; auto: the model family's value for the optimizer")
    lrf: float = opt(0.01, "final learning rate as a fraction of lr (cosine and linear schedules)")
    momentum: float = opt(0.937, "SGD momentum / Adam beta1 / RMSProp momentum")
    nesterov: bool = opt(True, "Nesterov momentum for SGD")
    weight_decay: float | Auto = opt(AUTO, "weight decay on weights (never on biases or norm parameters); auto: the "
                                     "family's value for the optimizer (AdamW 0.05, SGD 5e-4)")
    schedule: Literal["cosine", "linear", "step"] = opt("cosine", "learning-rate decay after warm-up")
    lr_drop: list[int] = opt([], "epochs at which the step schedule multiplies lr by lr_gamma")
    lr_gamma: float = opt(0.1, "multiplier at each lr_drop epoch")
    warmup_epochs: float | Auto = opt(AUTO, "linear warm-up length in epochs; auto: 3, at most a tenth of the run")
    warmup_iters: int = opt(0, "warm-up length in iterations; overrides warmup_epochs when > 0")
    warmup_momentum: float = opt(0.8, "momentum at the start of warm-up")
    warmup_bias_lr: float = opt(0.1, "bias learning rate at the start of warm-up")
    nbs: int | Auto = opt(AUTO, "nominal batch size: gradients are accumulated up to it; auto: the batch (no "
                          "accumulation) for short runs, 64 for long ones")
    clip_grad: float | Auto = opt(AUTO, "clip the gradient norm to this value; 0 disables; auto: the model family's "
                                  "value (10; rtdet-m2f with AdamW: 0.01, Mask2Former's)")


@dataclass
class TrainConfig:
    epochs: int = opt(100, "training epochs")
    out: str = opt("runs/train", "run folder for weights, logs and pictures")
    device: str = opt("auto", "cpu, cuda, cuda:N, or auto")
    seed: int = opt(0, "random seed")
    deterministic: bool = opt(False, "deterministic algorithms (bitwise-repeatable runs on CPU)")
    amp: Literal["off", "fp16", "bf16"] = opt("off", "mixed precision: fp16 (CUDA, loss scaling) or bf16")
    channels_last: bool = opt(True, "channels-last memory layout for weights and images (faster convolutions, "
                              "on CPUs too)")
    ema: bool = opt(True, "keep an exponential moving average of the weights")
    ema_decay: float = opt(0.9999, "EMA decay (ramped up over the first iterations)")
    ema_tau: float = opt(2000.0, "EMA ramp: decay * (1 - exp(-updates / ema_tau)); short runs then keep the EMA "
                         "close to the last weights (ramps scaled to the run measured no better, benchmarks/recipe.md)")
    patience: int = opt(50, "stop after this many validations without improvement; 0 disables")
    val_interval: int = opt(1, "validate every N epochs")
    precise_bn: int = opt(0, "before each validation, recompute the evaluated model's BatchNorm statistics over "
                          "this many training batches (PreciseBN; 0: off; the DETR family's recipe turns it on)")
    metric: str = opt("", "validation metric that picks best.pt and drives early stopping; empty: the task's own "
                       "(detect AP, classify top1, segment mIoU) (higher is better, lower if its name ends in "
                       "'loss'); detect: voc07 (PASCAL VOC2007 11-point mAP@0.5) or voc (all-point) adds the VOC "
                       "metric, and `val --metric voc07|voc` its per-class table (coco: the COCO numbers only)")
    resume: str = opt("", "checkpoint (last.pt) to resume exactly from")
    sync_bn: bool = opt(False, "SyncBatchNorm when distributed")
    tensorboard: bool = opt(False, "also log to TensorBoard (needs the tensorboard package)")


@dataclass
class EvalConfig:
    backend: Literal["torch", "onnxruntime", "openvino"] = opt(
        "torch", "inference backend of val and predict (predict: onnxruntime for an .onnx file, or what "
        "`rtdet bench --tune` chose for the weights; openvino needs the openvino package)")


@dataclass
class Config:
    """One run: what to build, what to read, how to optimize, train and evaluate.

    ``given`` holds the settings set explicitly (by YAML or flag) as ``"section.name"``;
    it is not a setting itself (not saved, not compared). Explicit values always win
    over a default chosen later (e.g. the model's own input size in ``predict``), and
    ``--resume`` refuses explicit settings it cannot honour.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    yolo: YoloConfig = field(default_factory=YoloConfig)
    detr: DetrConfig = field(default_factory=DetrConfig)
    cls: ClsConfig = field(default_factory=ClsConfig)
    rcnn: RcnnConfig = field(default_factory=RcnnConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    m2f: M2fConfig = field(default_factory=M2fConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    given: set = field(default_factory=set, repr=False, compare=False, metadata={"internal": True})

    def explicit(self, name: str) -> bool:
        """Whether setting ``name`` (flat, e.g. ``"imgsz"``) was given by YAML or flag."""
        return any(k.split(".")[-1] == name for k in self.given)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)  # type: ignore[misc]
                             if not f.metadata.get("internal")}
COMMON_SECTIONS = ("model", "data", "optim", "train", "eval")  # every run carries these


def run_sections(cfg: Config) -> tuple[str, ...]:
    """The sections a run of ``cfg.model.model`` carries: the common ones, its task's and its family's."""
    from rtdet.registry import MODELS, TASK_SECTIONS

    spec = MODELS.get(cfg.model.model)
    if spec is None:  # an unknown name is reported where the model is built
        return tuple(SECTIONS)
    own = [TASK_SECTIONS[spec.task]] + ([spec.section] if spec.section else [])
    return tuple(s for s in SECTIONS if s in COMMON_SECTIONS or s in own)


def resolve_task_defaults(cfg: Config) -> Config:
    """``cfg`` with the task's own defaults (:data:`rtdet.registry.TASK_DEFAULTS`) for the settings not given."""
    from rtdet.registry import MODELS, TASK_DEFAULTS

    spec = MODELS.get(cfg.model.model)
    task = cfg.model.task or (spec.task if spec else "detect")
    defaults = {k: v for k, v in TASK_DEFAULTS.get(task, {}).items() if not cfg.explicit(k)}
    if not defaults:
        return cfg
    given = set(cfg.given)
    out = apply_overrides(cfg, defaults)
    out.given = given  # the task chose these, not the user
    return out


def refuse_other_tasks(cfg: Config, task: str) -> None:
    """Refuse explicit settings of other tasks and their families for a run of ``task`` (e.g. ``--iou`` for
    a classifier's ``val``, ``--topk`` for a detector's ``predict``): one ConfigError naming them."""
    from rtdet.registry import MODELS, TASK_SECTIONS

    own = {TASK_SECTIONS[task]} | {m.section for m in MODELS.values() if m.task == task and m.section}
    other = ({s for t, s in TASK_SECTIONS.items() if t != task}
             | {m.section for m in MODELS.values() if m.task != task and m.section}) - own
    foreign = sorted(k.split(".")[-1] for k in cfg.given if k.split(".")[0] in other)
    if foreign:
        raise ConfigError(f"setting(s) {', '.join(foreign)} do not apply to a {task} model")


def check_applies(cfg: Config) -> None:
    """Refuse explicit settings that the run's model cannot use (e.g. ``mosaic`` for a classifier)."""
    keep = run_sections(cfg)
    foreign = sorted(k for k in cfg.given if k.split(".")[0] not in keep)
    if foreign:
        from rtdet.registry import MODELS

        spec = MODELS[cfg.model.model]
        names = ", ".join(k.split(".")[-1] for k in foreign)
        raise ConfigError(f"setting(s) {names} do not apply to model {spec.name} (task {spec.task}); "
                          f"its settings are in sections: {', '.join(keep)}")
    if cfg.model.task:
        from rtdet.registry import MODELS, TASKS

        if cfg.model.task not in TASKS:
            raise ConfigError(f"setting 'model.task': expected one of {', '.join(TASKS)}, got {cfg.model.task!r}")
        spec = MODELS.get(cfg.model.model)
        if spec is not None and spec.task != cfg.model.task:
            raise ConfigError(f"model {spec.name} does the {spec.task} task, not {cfg.model.task}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def check_value(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` (int -> float only), or raise ConfigError."""
    origin = typing.get_origin(tp)
    ok, out = True, value
    if origin is Literal:
        ok = value in typing.get_args(tp)
    elif origin in (list, tuple):
        ok = isinstance(value, (list, tuple))
        if ok:
            out = [check_value(f"{key}[{i}]", v, typing.get_args(tp)[0]) for i, v in enumerate(value)]
    elif origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return check_value(key, value, arg)
            except ConfigError:
                pass
        ok = False
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out = float(value) if ok else value
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is type(None):
        ok = value is None
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"setting '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return out


def _section_from_dict(cls: type, values: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting '{where}{key}'; known in this section: {', '.join(sorted(known))}")
        kwargs[key] = check_value(where + key, value, hints[key])
    return cls(**kwargs)


def config_from_dict(values: dict | None) -> Config:
    """Build a Config from a nested dict ``{"optim": {"lr": 0.01}, ...}``; validated."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(values).__name__}")
    sections = {}
    for name, section in values.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section '{name}'; expected one of {', '.join(SECTIONS)}")
        if not isinstance(section, dict):
            raise ConfigError(f"config section '{name}' must be a mapping, got {section!r}")
        sections[name] = _section_from_dict(SECTIONS[name], section, f"{name}.")
    cfg = Config(**sections)
    cfg.given = {f"{name}.{key}" for name, section in values.items() for key in section}
    return cfg


# Where settings of checkpoints written before the task sections went (old "section.name" -> new).
_MOVED = {**{f"data.{k}": f"detect.{k}" for k in ("mosaic", "close_mosaic", "multi_scale", "rect")},
          **{f"model.{k}": f"yolo.{k}" for k in ("box_loss", "cls_loss", "box_gain", "cls_gain", "dfl_gain")},
          "eval.conf": "detect.val_conf", "eval.iou": "detect.iou", "eval.max_det": "detect.max_det",
          "eval.nms": "detect.nms"}


def config_from_checkpoint(values: dict) -> Config:
    """The config saved in a checkpoint, including those written before the task sections existed."""
    values = {name: dict(section) if isinstance(section, dict) else section for name, section in values.items()}
    for old, new in _MOVED.items():
        sec, key = old.split(".")
        if isinstance(values.get(sec), dict) and key in values[sec]:
            nsec, nkey = new.split(".")
            values.setdefault(nsec, {})[nkey] = values[sec].pop(key)
    return config_from_dict(values)


def flat_fields() -> dict[str, tuple[str, dataclasses.Field, Any]]:
    """Every setting by its flag name: ``{"lr": ("optim", field, type), ...}``."""
    out: dict[str, tuple[str, dataclasses.Field, Any]] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in out:  # flags are flat, so names must be unique across sections
                raise RuntimeError(f"setting name '{f.name}' is used by two sections")
            out[f.name] = (section, f, hints[f.name])
    return out


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return a copy of ``cfg`` with flat overrides ``{"lr": 0.1}`` (or ``{"optim.lr": 0.1}``) applied."""
    fields = flat_fields()
    given = set(cfg.given)
    cfg = config_from_dict(config_to_dict(cfg, every_section=True))
    cfg.given = given
    for key, value in overrides.items():
        name = key.split(".")[-1]
        if name not in fields or ("." in key and key.split(".")[0] != fields[name][0]):
            raise ConfigError(f"unknown setting '{key}'")
        section, _, tp = fields[name]
        setattr(getattr(cfg, section), name, check_value(key, value, tp))
        cfg.given.add(f"{section}.{name}")
    return cfg


def config_to_dict(cfg: Config, every_section: bool = False) -> dict:
    """Nested dict of the settings: the sections the run carries (:func:`run_sections`), or all of them."""
    keep = SECTIONS if every_section else run_sections(cfg)
    return {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS if name in keep}


RECIPES_DIR = Path(__file__).parent / "recipes"  # named recipes: settings of a published training recipe


def recipe_names() -> list[str]:
    """Names of the recipes shipped with rtdet (``rtdet train --config NAME``), e.g. ``faster-rcnn-voc0712``."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(path: str | Path) -> Path:
    """``path`` itself, or the shipped recipe of that name when no such file exists."""
    if not Path(path).exists() and (RECIPES_DIR / f"{path}.yaml").is_file():
        return RECIPES_DIR / f"{path}.yaml"
    return Path(path)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                check: bool = True) -> Config:
    """Defaults, then the YAML file at ``path`` (if any; or a named recipe, :func:`recipe_names`), then flat
    ``overrides``.

    With ``check`` (the default) every given setting must apply to the run's model
    (:func:`check_applies`); commands whose model comes from a weights file check later.
    """
    values = {}
    if path is not None:
        path = recipe_path(path)
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path} (named recipes: {', '.join(recipe_names())})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        try:
            cfg = config_from_dict(values)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    else:
        cfg = Config()
    cfg = apply_overrides(cfg, overrides or {})
    if check:
        check_applies(cfg)
    return cfg


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (sections in a fixed order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
