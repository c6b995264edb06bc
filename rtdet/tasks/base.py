"""The task contract: the functions the workflows, the evaluator and the deploy code call.

Each task module builds one :class:`Task` from its own functions. Shapes and
frames are the task's business; the callers only pass what one function returns
to the next:

- data: ``open_split(cfg, split) -> dataset`` (``.names``, ``.report``, ``len``) and
  ``build_loader(dataset, cfg, train, epochs=, seed=, sampler=)`` yielding
  ``(images uint8 [B, 3, H, W], targets list[dict])``;
- scoring: ``collect(prediction, target) -> (record, target record)`` per image,
  on the CPU in original pixels (the gathered lists feed ``metric_fn(names, metric)`` and
  ``final_report(..., metric=)``); ``metric`` names the number that picks best.pt; a
  ``metric`` the user names may ask for more numbers (detect: ``voc07``) and, in
  ``val``, for its report (``reports``);
- deployment: ``preprocess(image uint8 HxWx3 RGB, imgsz) -> (input float [1, 3, S, S],
  geometry)``; ``preprocessor(imgsz) -> preprocess(image)``, the same for a stream of frames with its
  buffers reused (each input is overwritten by the next frame); ``predictions(outputs tuple of tensors
  [B, ...], input (H, W), settings) -> B eval-mode predictions`` (what the PyTorch model returns in eval
  mode, from the export outputs, so an ONNX Runtime session can stand in for the model);
  ``decode(outputs, geometry, image shape, names, settings) -> result`` for one image; ``response(result) ->
  dict`` the HTTP API's JSON answer for it (``rtdet serve``); ``annotate(image, result) -> image``; ``records(result,
  image_name) -> list of json-ready dicts``; ``save(result, out_dir, image_name, frame) -> [paths]`` the files
  ``predict`` writes for a result besides its annotated picture (segment: the class-index mask PNG);
  ``settings(cfg) -> dict`` the decoding settings of delivered results;
- training: ``recipe(cfg, facts) -> [Choice]`` resolves the task's own settings left at
  ``auto`` (see :mod:`rtdet.engine.recipe`); ``diagnose(train dataset, cfg) -> [sentence]``
  what in the data can keep a model from learning (logged at the start, repeated as a likely
  cause when the run learns nothing, see :mod:`rtdet.engine.diagnose`); ``chance(val dataset)``
  what guessing scores in ``metric`` (a run at or below it learned nothing);
  ``prepare_model(model, train dataset, cfg) -> [sentence]`` what the model takes from the
  training data before the first step (segment: the loss's class weights), logged.

A task's defaults for shared settings the user did not give are data, not code:
:data:`rtdet.registry.TASK_DEFAULTS`, applied by :func:`rtdet.config.resolve_task_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class RunResult:
    """What a training or validation run leaves behind."""

    out: Path  # the run folder
    metrics: dict[str, float]  # detect: the 12 COCO numbers, P/R/F1; classify: accuracy and more; segment: mIoU...
    weights: Path | None = None  # best.pt (training) or the evaluated checkpoint
    files: list[Path] = field(default_factory=list)  # pictures and json files written
    task: str = "detect"  # detect, classify, segment
    warnings: list[str] = field(default_factory=list)  # printed after the summary (e.g. learned nothing)


@dataclass(frozen=True)
class Task:
    """One task's functions (see the module docstring for each one's contract)."""

    name: str
    metric: str  # the validation number that picks best.pt (higher is better)
    open_split: Callable[..., Any]
    build_loader: Callable[..., Any]
    collect: Callable[[dict, dict], tuple[dict, dict]]
    metric_fn: Callable[..., Callable[[list[dict], list[dict]], dict[str, float]]]  # (names, metric="")
    final_report: Callable[..., RunResult]
    summary: Callable[[RunResult], str]
    preprocess: Callable[..., Any]
    preprocessor: Callable[[int], Callable[..., Any]]  # imgsz -> preprocess(image) reusing its buffers
    predictions: Callable[..., list[dict]]
    decode: Callable[..., Any]
    response: Callable[[dict], dict]
    annotate: Callable[..., Any]
    records: Callable[..., list[dict]]
    settings: Callable[..., dict[str, Any]]
    recipe: Callable[..., list] = lambda cfg, facts: []  # the task's own "auto" settings (rtdet.engine.recipe)
    diagnose: Callable[..., list[str]] = lambda dataset, cfg: dataset.report.notes(dataset.names)
    chance: Callable[..., float] = lambda dataset: 0.0  # what guessing scores on ``dataset`` in ``metric``
    prepare_model: Callable[..., list[str]] = lambda model, dataset, cfg: []  # from the training data, logged
    reports: tuple[str, ...] = ()  # evaluation protocols `val --metric` can name (detect: coco, voc07, voc)
    save: Callable[..., list] = lambda result, out_dir, image_name, frame=None: []  # predict's extra files
