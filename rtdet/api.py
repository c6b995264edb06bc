"""The Python API: one object per detector, the same code paths as the CLI.

Example:
    >>> from rtdet import Detector
    >>> m = Detector("rtdet-n")                                   # doctest: +SKIP
    >>> m.train(data="digits", epochs=10, out="runs/digits")      # doctest: +SKIP
    >>> m.val()["AP"]                                             # doctest: +SKIP
    >>> m.predict(image)[0]["boxes"]                              # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtdet.config import Config, apply_overrides, load_config


class Detector:
    """A detector by model name (to train) or by checkpoint path (to evaluate or predict).

    Args:
        model: a name from :data:`rtdet.models.MODELS` or a ``.pt`` checkpoint written by training.
        config: optional YAML file of settings; ``overrides`` (flat names, as the CLI flags) win over it.
    """

    def __init__(self, model: str = "rtdet-n", config: str | Path | None = None, **overrides: Any) -> None:
        self.weights: Path | None = None
        self.cfg: Config = load_config(config, overrides)
        self.net: torch.nn.Module | None = None
        self.names: list[str] = []
        self._backend: tuple[torch.nn.Module, Any] | None = None  # (net it was built from, TorchBackend)
        if str(model).endswith(".pt"):
            self._load(Path(model))
        else:
            self.cfg = apply_overrides(self.cfg, {"model": str(model)})

    def _load(self, weights: Path) -> None:
        from rtdet.workflows import load_detector

        self.net, self.names, saved = load_detector(weights, self.cfg)
        self.cfg.model, self.weights = saved.model, weights

    def train(self, **overrides: Any) -> dict[str, float]:
        """Train with the current settings plus ``overrides`` (``data=``, ``epochs=``, ``out=``, ...).

        Returns the final metrics (12 COCO numbers, P/R/F1) and loads the best weights.
        """
        from rtdet.workflows import train

        self.cfg = apply_overrides(self.cfg, overrides)
        result = train(self.cfg, progress=True)
        if result.weights is not None and result.weights.is_file():
            self._load(result.weights)
        return result.metrics

    def val(self, **overrides: Any) -> dict[str, float]:
        """Official COCO numbers (and P/R/F1) of the loaded weights on the data set's ``val`` split."""
        from rtdet.workflows import validate

        if self.weights is None:
            raise RuntimeError("val() needs weights: train first or build Detector('path/to/best.pt')")
        cfg = apply_overrides(self.cfg, overrides)
        return validate(self.weights, cfg).metrics

    @torch.no_grad()
    def predict(self, images: np.ndarray | list[np.ndarray], imgsz: int | None = None) -> list[dict[str, Any]]:
        """Detect objects in uint8 HxWx3 RGB image(s); the same code as ``rtdet predict`` (torch backend).

        Returns:
            One dict per image: ``boxes`` float32 [K,4] xyxy in the image's pixels,
            ``scores`` float32 [K], ``labels`` int64 [K], ``names`` list[str].
        """
        from rtdet.deploy.runtime import TorchBackend, detect

        if self.net is None:
            raise RuntimeError("predict() needs weights: train first or build Detector('path/to/best.pt')")
        batch = [images] if isinstance(images, np.ndarray) else list(images)
        size = imgsz or self.cfg.data.imgsz
        if self._backend is None or self._backend[0] is not self.net:  # fused copy, rebuilt when weights change
            self._backend = (self.net, TorchBackend(self.net, self.names, size))
        args = getattr(self.net, "postprocess_args", {})
        decode = {"conf": args.get("conf", 0.001), "iou": args.get("iou", 0.7), "method": args.get("method", "nms"),
                  "max_det": args.get("max_det", 300)}
        return detect(self._backend[1], batch, size, **decode)
