"""The request parameters of ``POST /v1/predict`` (checked) and the answers' shapes (for the OpenAPI document).

:class:`PredictParams` checks every parameter a request may carry: a value out of
range, of the wrong type or a name it does not know is a ``422`` naming the
parameter. The answer models below are documentation only: the server builds its
answers with the task modules' ``response`` functions (:mod:`rtdet.tasks`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_IMGSZ = 1280  # pixels: the largest input a request may ask for (a 1280 px pass needs 16x the memory of 320 px)
MAX_DET = 10_000  # detections per image a request may ask for
STRIDE = 32  # the largest stride of rtdet's networks: input sizes are multiples of it


class PredictParams(BaseModel):
    """Decoding parameters of one request; an unset one takes the server's default (``rtdet serve`` flags)."""

    model_config = ConfigDict(extra="forbid")

    conf: float | None = Field(None, ge=0, le=1, description="detect: confidence threshold of delivered detections")
    iou: float | None = Field(None, ge=0, le=1, description="detect: NMS IoU threshold")
    max_det: int | None = Field(None, ge=1, le=MAX_DET, description="detect: maximum detections per image")
    topk: int | None = Field(None, ge=1, le=MAX_DET, description="classify: classes reported")
    imgsz: int | None = Field(None, ge=STRIDE, le=MAX_IMGSZ, multiple_of=STRIDE,
                              description="input size in pixels (square); default: the model's own")


PARAMS = tuple(PredictParams.model_fields)  # conf, iou, max_det, topk, imgsz


def validation_message(error: ValidationError) -> str:
    """Pydantic's errors as one line: ``conf: Input should be less than or equal to 1 (got 1.5); ...``."""
    parts = []
    for e in error.errors():
        where = ".".join(str(x) for x in e["loc"]) or "parameters"
        msg = "unknown parameter (expected one of " + ", ".join(PARAMS) + ")" if e["type"] == "extra_forbidden" \
            else e["msg"]
        got = e["input"]  # a form field's text as it came (1.5, not '1.5': as in a JSON body), else its repr
        shown = got if isinstance(got, str) and got and got.strip() == got and got.isprintable() else repr(got)
        parts.append(f"{where}: {msg} (got {shown})")
    return "; ".join(parts)


class PredictJSON(PredictParams):
    """``application/json`` request: the image as base64 text (a ``data:`` URL prefix is allowed)."""

    image: str = Field(description="the image file's bytes (JPEG, PNG or WebP) in base64")


class PredictForm(BaseModel):
    """``multipart/form-data`` request: the image file in ``file``; parameters as form fields or in the query."""

    file: bytes = Field(json_schema_extra={"format": "binary"}, description="JPEG, PNG or WebP file")
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    topk: int | None = None
    imgsz: int | None = None


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class Detection(BaseModel):
    class_id: int
    class_name: str
    score: float
    box: Box = Field(description="xyxy in the original image's pixels")
    category_id: Any | None = Field(None, description="the training data set's own id (COCO), when known")


class TopClass(BaseModel):
    class_id: int
    class_name: str
    probability: float


class Mask(BaseModel):
    png: str = Field(description="base64 PNG: the class index of every original pixel (8-bit; 16-bit above 256 "
                                 "classes)")
    width: int
    height: int


class ImageSize(BaseModel):
    width: int
    height: int


class PredictAnswer(BaseModel):
    """One of ``detections`` (detect), ``top`` (classify) or ``mask`` + ``classes`` + ``pixels`` (segment)."""

    task: str
    image: ImageSize
    detections: list[Detection] | None = None
    top: list[TopClass] | None = None
    mask: Mask | None = None
    classes: list[str] | None = None
    pixels: dict[str, int] | None = Field(None, description="pixels per class present")
    timing_ms: dict[str, float] = Field(description="queue (waiting for a worker), decode (file -> pixels), "
                                                    "inference (letterbox + network + decoding), encode, total")


class ModelInfo(BaseModel):
    name: str = Field(description="the weights file")
    model: str = Field(description="architecture, e.g. rtdet-n (empty when the file does not say)")
    task: str
    classes: list[str]
    colors: list[str] = Field(description="#rrggbb per class: the colours rtdet predict draws")
    imgsz: int = Field(description="default input size (pixels, square)")
    fixed_imgsz: bool = Field(description="true: the model takes no other size (a static ONNX graph)")
    backend: str
    parameters: list[str] = Field(description="the request parameters this model takes")
    defaults: dict[str, Any] = Field(description="the server's decoding settings (used when a request omits them)")


class Models(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    pool: dict[str, int] = Field(description="running, waiting, capacity, done, refused")


class Problem(BaseModel):
    detail: str = Field(description="what was wrong, naming the parameter, the file or the limit")
