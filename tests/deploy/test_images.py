"""The stream preprocessors equal the evaluation transforms (letterbox, centre crop) then / 255, bit for bit."""

import numpy as np
import pytest

from rtdet.data.classify_aug import ClassifyTransform
from rtdet.data.transforms import letterbox
from rtdet.deploy.images import Letterbox, sample_images, to_input
from rtdet.tasks import get_task


def _frames():
    rng = np.random.default_rng(0)
    odd = [(320, 320), (100, 50), (50, 100), (700, 331), (321, 319), (1, 5), (2000, 30)]
    return sample_images(6) + [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in odd]


def _reference(image, size):
    boxed, lb = letterbox(image, (size, size))
    return np.divide(boxed.transpose(2, 0, 1)[None], np.float32(255), dtype=np.float32), lb


@pytest.mark.parametrize("size", [320, 160])
def test_letterbox_stream_equals_letterbox_then_divide(size):
    stream = Letterbox(size)
    frames = _frames()
    for image in frames + frames[::-1] + [frames[0]] * 2:  # sizes change, come back and repeat
        ref, lb = _reference(image, size)
        x, got_lb = stream(image)
        assert got_lb == lb and x.numpy().dtype == ref.dtype and np.array_equal(x.numpy(), ref), image.shape
    x, lb = to_input(frames[0], size)
    assert np.array_equal(x.numpy(), _reference(frames[0], size)[0])


def test_the_stream_reuses_its_memory_and_to_input_does_not():
    stream, image = Letterbox(320), sample_images(1)[0]  # 640x480: resized, so the resize buffer is used
    a, b = stream(image)[0], stream(image)[0]
    assert a.data_ptr() == b.data_ptr()  # one input array, overwritten by the next frame
    assert np.shares_memory(stream._resize_target(image.shape), stream._resize_memory)
    assert to_input(image, 320)[0].data_ptr() != to_input(image, 320)[0].data_ptr()


def test_classify_stream_equals_the_evaluation_transform():
    pre = get_task("classify").preprocessor(64)
    frames = _frames() + [np.random.default_rng(1).integers(0, 256, (40, 70), dtype=np.uint8)]  # a grey image
    for image in frames + frames[::-1]:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        ref = np.divide(ClassifyTransform(64, train=False)(rgb)[None], np.float32(255), dtype=np.float32)
        x, geometry = pre(image)
        assert geometry is None and np.array_equal(x.numpy(), ref), image.shape


def test_only_uint8_rgb_is_taken():
    stream = Letterbox(64)
    for bad in (np.zeros((8, 8, 3), np.uint16), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(ValueError, match="uint8 HxWx3"):
            stream(bad)
