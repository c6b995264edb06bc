"""Image input for deployment: read, letterbox to a float tensor, and the sample images used by checks and bench.

Every backend takes the same input: float32 ``[B, 3, H, W]`` RGB in ``[0, 1]``,
letterboxed as :func:`rtdet.data.transforms.letterbox` does (the evaluation
transform), so exported and PyTorch models see identical pixels.

A stream of frames goes from uint8 HxWx3 to that input in one pass and without
allocating per frame (:class:`Letterbox`, :class:`FrameInput`): ``cv2.resize``
writes into a reused buffer, OpenCV splits the three channel planes into reused
buffers, and one division per plane writes ``x / 255`` straight into the float
input, only where the image lies (the grey border is written when the placement
changes). On a 640x480 photo to 320 px this is 2-3x faster than letterboxing
into a new padded image and then dividing a transposed copy (measured 0.35 ->
0.13 ms), and equal to it bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from rtdet.data.dataset import IMAGE_SUFFIXES, read_image  # noqa: F401 (one image decoder for every command)
from rtdet.data.transforms import PAD_VALUE, letterbox_params, letterbox_resize

_BYTE = np.float32(255)  # x / 255 in float32, as training's ToTensor-style scaling


def shared_data_dir() -> Path:
    """``<project root>/../shared/data`` (the real data sets; may be absent)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


class FrameInput:
    """A reused float32 input ``array [1, 3, S, S]`` that frames of uint8 pixels are written into.

    ``fill(pixels uint8 [h, w, 3], top, left)`` writes ``pixels / 255`` (float32, channels first) at
    ``(top, left)`` and :data:`~rtdet.data.transforms.PAD_VALUE` ``/ 255`` around it (written only when the
    placement changed since the previous frame); ``h, w <= S``. The array is overwritten by the next ``fill``.
    Raises ValueError for anything but uint8 HxWx3 pixels.
    """

    def __init__(self, imgsz: int) -> None:
        self.array = np.empty((1, 3, imgsz, imgsz), np.float32)
        self._placed: tuple[int, ...] = ()
        self._plane_memory = np.empty(3 * imgsz * imgsz, np.uint8)  # views of it hold the split channels

    def fill(self, pixels: np.ndarray, top: int = 0, left: int = 0) -> np.ndarray:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 image, got {pixels.dtype} {tuple(pixels.shape)}")
        h, w = pixels.shape[:2]
        content = self.array[0, :, top:top + h, left:left + w]
        if self._placed != (top, left, h, w):
            self.array.fill(np.float32(PAD_VALUE) / _BYTE)
            self._placed = (top, left, h, w)
        planes = list(self._plane_memory[:3 * h * w].reshape(3, h, w))
        cv2.split(pixels, planes)  # channels last -> three contiguous planes, into the reused memory
        for plane, out in zip(planes, content):
            np.divide(plane, _BYTE, out=out)  # uint8 -> float32 and / 255 in one pass, into the strided view
        return self.array


class Letterbox:
    """``letterbox(image uint8 HxWx3 RGB) -> (float32 Tensor [1, 3, S, S] in [0, 1], (scale, pad_x, pad_y))``.

    Equal to :func:`rtdet.data.transforms.letterbox` followed by ``/ 255`` (tested), without a per-frame
    allocation: the resize writes into reused memory and the tensor shares one reused array
    (:class:`FrameInput`), valid until the next call. Not for use by two threads at once.
    """

    def __init__(self, imgsz: int) -> None:
        self.imgsz, self.input = int(imgsz), FrameInput(imgsz)
        self._resize_memory = np.empty(3 * self.imgsz * self.imgsz, np.uint8)

    def _resize_target(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A view of the reused memory shaped as the resize of an image of ``shape`` (OpenCV's rounding of
        ``side * scale``); None when it does not fit (OpenCV then allocates)."""
        s = letterbox_params(shape[:2], (self.imgsz, self.imgsz))[0]
        h, w = round(shape[0] * s), round(shape[1] * s)
        return self._resize_memory[:h * w * 3].reshape(h, w, 3) if h * w * 3 <= self._resize_memory.size else None

    def __call__(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[float, int, int]]:
        size = self.imgsz
        resized, (s, px, py) = letterbox_resize(image, (size, size), dst=self._resize_target(image.shape))
        self.input.fill(resized[:size - py, :size - px], py, px)
        return torch.from_numpy(self.input.array), (s, px, py)


def to_input(image: np.ndarray, imgsz: int) -> tuple[torch.Tensor, tuple[float, int, int]]:
    """Letterbox a uint8 HxWx3 RGB image: (float32 Tensor[1, 3, imgsz, imgsz] in [0, 1], (scale, pad_x, pad_y)).

    A new tensor per call (:class:`Letterbox` reuses one across frames)."""
    return Letterbox(imgsz)(image)


def letterbox_preprocessor(imgsz: int) -> Callable[[np.ndarray], tuple[torch.Tensor, tuple[tuple[float, int, int], int]]]:
    """The detect and segment tasks' stream preprocess: ``image -> (input [1, 3, S, S], (letterbox, S))``
    through one :class:`Letterbox` (the input is overwritten by the next frame)."""
    letterbox = Letterbox(imgsz)

    def preprocess(image: np.ndarray) -> tuple[torch.Tensor, tuple[tuple[float, int, int], int]]:
        x, lb = letterbox(image)
        return x, (lb, letterbox.imgsz)

    return preprocess


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
