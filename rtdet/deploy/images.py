"""Image input for deployment: read, letterbox to a float tensor, and the sample images used by checks and bench.

Every backend takes the same input: float32 ``[B, 3, H, W]`` RGB in ``[0, 1]``,
letterboxed with :func:`rtdet.data.transforms.letterbox` (the evaluation
transform), so exported and PyTorch models see identical pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rtdet.data.dataset import IMAGE_SUFFIXES, read_image  # noqa: F401 (one image decoder for every command)
from rtdet.data.transforms import letterbox


def shared_data_dir() -> Path:
    """``<project root>/../shared/data`` (the real data sets; may be absent)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def to_input(image: np.ndarray, imgsz: int) -> tuple[torch.Tensor, tuple[float, int, int]]:
    """Letterbox a uint8 HxWx3 RGB image: (float32 Tensor[1, 3, imgsz, imgsz] in [0, 1], (scale, pad_x, pad_y))."""
    boxed, lb = letterbox(image, (imgsz, imgsz))
    # NumPy, not torch: on a busy 2-core CPU torch's thread pool makes this 300K-element op ~10x slower
    x = np.divide(boxed.transpose(2, 0, 1)[None], np.float32(255), dtype=np.float32)  # == training's /255
    return torch.from_numpy(np.ascontiguousarray(x)), lb


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted; empty when it is not a folder."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


SAMPLE_FOLDERS = {"segment": "camvid/images/val"}  # real images a task's export checks and bench use; else coco128


def sample_images(n: int, seed: int = 0, task: str = "detect") -> list[np.ndarray]:
    """``n`` real RGB images (sorted, first ``n``) of the task's sample set: CamVid's val street scenes
    (480x360) for ``segment``, coco128 for the others; random noise images when it is absent."""
    files = image_files(shared_data_dir() / SAMPLE_FOLDERS.get(task, "coco128/images"))
    if files:
        return [read_image(p) for p in files[:n]]
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240 + 16 * i, 320, 3), dtype=np.uint8) for i in range(n)]
