"""The Python API: one object per model, the same code paths as the CLI, for every task.

Example:
    >>> from rtdet import Model
    >>> m = Model("rtdet-n")                                      # doctest: +SKIP
    >>> m.train(data="digits", epochs=10, out="runs/digits")      # doctest: +SKIP
    >>> m.val()["AP"]                                             # doctest: +SKIP
    >>> m.predict(image)[0]["boxes"]                              # doctest: +SKIP
    >>> Model("rtdet-cls-n").train(data="sklearn-digits", epochs=5)["top1"]  # doctest: +SKIP
    >>> Model("rtdet-seg-n").train(data="camvid/data.yaml", epochs=60)["mIoU"]  # doctest: +SKIP

``Detector`` is the same class under its older name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtdet.config import Config, apply_overrides, load_config


class Model:
    """A model by name (to train) or by checkpoint path (to evaluate or predict).

    Args:
        model: a name from :data:`rtdet.registry.MODELS` or a ``.pt`` checkpoint written by training.
        config: optional YAML file of settings; ``overrides`` (flat names, as the CLI flags) win over it.
    """

    def __init__(self, model: str = "rtdet-n", config: str | Path | None = None, **overrides: Any) -> None:
        self.weights: Path | None = None
        self.cfg: Config = load_config(config, overrides)
        self.net: torch.nn.Module | None = None
        self.names: list[str] = []
        self.task = ""
        self._backend: tuple[torch.nn.Module, Any] | None = None  # (net it was built from, TorchBackend)
        if str(model).endswith(".pt"):
            self._load(Path(model))
        else:
            self.cfg = apply_overrides(self.cfg, {"model": str(model)})
            from rtdet.tasks import task_for

            self.task = task_for(self.cfg)

    def _load(self, weights: Path) -> None:
        from rtdet.models.load import load_trained

        trained = load_trained(weights)
        self.net, self.names, self.task, self.weights = trained.model, trained.names, trained.task, weights
        given = self.cfg.given
        self.cfg = apply_overrides(trained.config, {k.split(".")[-1]: _get(self.cfg, k) for k in given
                                                    if not k.startswith("model.")})

    def train(self, **overrides: Any) -> dict[str, float]:
        """Train with the current settings plus ``overrides`` (``data=``, ``epochs=``, ``out=``, ...).

        Returns the final metrics (detect: 12 COCO numbers, P/R/F1; classify: accuracy and more;
        segment: mIoU, mAcc, aAcc and the IoU of each class as ``IoU/<name>``)
        and loads the best weights.
        """
        from rtdet.workflows import train

        self.cfg = apply_overrides(self.cfg, overrides)
        result = train(self.cfg, progress=True)
        if result.weights is not None and result.weights.is_file():
            self._load(result.weights)
        return result.metrics

    def val(self, **overrides: Any) -> dict[str, float]:
        """The task's official numbers of the loaded weights on the data set's ``val`` split."""
        from rtdet.workflows import validate

        if self.weights is None:
            raise RuntimeError("val() needs weights: train first or build Model('path/to/best.pt')")
        return validate(self.weights, apply_overrides(self.cfg, overrides)).metrics

    @torch.no_grad()
    def predict(self, images: np.ndarray | list[np.ndarray], imgsz: int | None = None) -> list[dict[str, Any]]:
        """Results for uint8 HxWx3 RGB image(s); the same code and settings as ``rtdet predict`` (torch backend).

        Returns:
            One dict per image. Detect: ``boxes`` float32 [K,4] xyxy in the image's pixels,
            ``scores`` float32 [K], ``labels`` int64 [K], ``names`` list[str] (decoded with
            ``detect.conf``, 0.25 unless set). Classify: ``probs`` float32 [C], its ``classify.topk``
            ``labels`` and ``scores``, ``names``. Segment: ``mask`` uint8 [H, W] class indices in the
            image's pixels (int32 above 256 classes), ``pixels`` int64 [K] pixels per class, ``names``
            (the K class names), ``alpha`` (the overlay opacity of ``rtdet predict``).
        """
        from rtdet.deploy.runtime import TorchBackend, infer
        from rtdet.tasks import get_task

        if self.net is None:
            raise RuntimeError("predict() needs weights: train first or build Model('path/to/best.pt')")
        batch = [images] if isinstance(images, np.ndarray) else list(images)
        size = imgsz or self.cfg.data.imgsz
        if self._backend is None or self._backend[0] is not self.net:  # fused copy, rebuilt when weights change
            self._backend = (self.net, TorchBackend(self.net, self.names, size))
        return infer(self._backend[1], batch, size, get_task(self.task).settings(self.cfg))


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


Detector = Model
