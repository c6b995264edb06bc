"""Request bodies, images and parameters: the pixels equal rtdet predict's; every fault has its status and name."""

import asyncio
import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from rtdet.data.dataset import ImageError, probe_image, read_image
from rtdet.serve.inputs import RequestError, check_params, load_image, parse_body, read_body


def _refused(status, text, fn, *args):
    with pytest.raises(RequestError) as e:
        fn(*args)
    assert e.value.status == status and text in str(e.value), str(e.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_uploaded_bytes_decode_to_the_pixels_of_the_file(photos, tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    cv2.imwrite(str(path), cv2.imread(str(photos[0])))
    data = path.read_bytes()
    np.testing.assert_array_equal(load_image(data, 10**8), read_image(path))
    np.testing.assert_array_equal(load_image(base64.b64encode(data).decode(), 10**8), read_image(path))
    data_url = "data:image/webp;base64," + base64.b64encode(data).decode()  # as browsers write them
    np.testing.assert_array_equal(load_image(data_url, 10**8), read_image(path))
    assert probe_image(data) == probe_image(path)


def test_bad_images_are_refused_with_their_fault(photos, tmp_path):
    jpeg = photos[0].read_bytes()
    bmp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bmp, format="BMP")
    _refused(415, "not an image file (expected JPEG, PNG or WebP; the first bytes are b'hello", load_image,
             b"hello world", 10**8)
    _refused(415, "BMP files are not accepted", load_image, bmp.getvalue(), 10**8)
    _refused(422, "corrupt JPEG file: image data does not decode", load_image, jpeg[: len(jpeg) // 2], 10**8)
    _refused(422, "empty file", load_image, b"", 10**8)
    _refused(422, "not valid base64", load_image, "not base64!", 10**8)
    big = io.BytesIO()
    Image.new("L", (4000, 3000)).save(big, format="PNG")  # 12 megapixels in a few kB
    _refused(422, "4000x3000 is 12 megapixels, over the limit of 10", load_image, big.getvalue(), 10**7)
    with pytest.raises(ImageError, match="unreadable image"):
        probe_image(b"hello world")


def test_parameters_are_checked_and_named():
    detect = ("conf", "iou", "max_det", "imgsz")
    assert check_params({"conf": "0.5", "max_det": 3}, detect, None) == {"conf": 0.5, "max_det": 3}
    assert check_params({}, detect, 160) == {} and check_params({"imgsz": 160}, detect, 160) == {"imgsz": 160}
    _refused(422, "conf: Input should be less than or equal to 1 (got 1.5)", check_params, {"conf": 1.5}, detect, None)
    _refused(422, "conf: Input should be less than or equal to 1 (got 1.5)", check_params, {"conf": "1.5"}, detect,
             None)  # a form field's text reads as a JSON number does
    _refused(422, "conf: Input should be a valid number, unable to parse string as a number (got high)", check_params,
             {"conf": "high"}, detect, None)
    _refused(422, "conf: Input should be a valid number, unable to parse string as a number (got '')", check_params,
             {"conf": ""}, detect, None)
    _refused(422, "max_det: Input should be greater than or equal to 1 (got 0)", check_params, {"max_det": 0},
             detect, None)
    _refused(422, "imgsz: Input should be a multiple of 32 (got 100)", check_params, {"imgsz": 100}, detect, None)
    _refused(422, "imgsz: Input should be less than or equal to 1280", check_params, {"imgsz": 4096}, detect, None)
    _refused(422, "colour: unknown parameter (expected one of conf, iou, max_det, topk, imgsz)", check_params,
             {"colour": "red"}, detect, None)
    _refused(422, "topk: not a parameter of this model (it takes conf, iou, max_det, imgsz)", check_params,
             {"topk": 3}, detect, None)
    _refused(422, "imgsz: this model is a static graph for 160 px input, got 320", check_params, {"imgsz": 320},
             detect, 160)


def _body(data: bytes, limit: int, headers=None) -> bytes:
    async def stream():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    return asyncio.run(read_body(headers or {}, stream(), limit))


def test_bodies_over_the_limit_are_refused_by_declared_or_counted_length():
    assert _body(b"x" * 5000, 5000) == b"x" * 5000
    _refused(413, "request body of 0.0 MB: the limit is 0.004 MB", _body, b"x" * 10, 4000, {"content-length": "5000"})
    _refused(413, "request body over 0.004 MB", _body, b"x" * 5000, 4000)  # chunked: no length declared


def test_bodies_of_other_types_are_refused():
    def parse(kind, body, query=None):
        return asyncio.run(parse_body({"content-type": kind}, body, query or {}))

    assert parse("application/json", b'{"image": "aGk=", "conf": 0.5}') == ("aGk=", {"conf": 0.5})
    _refused(415, "content type 'text/plain'", parse, "text/plain", b"hi")
    _refused(422, "JSON body does not parse", parse, "application/json", b"{oops")
    _refused(422, "image: missing or not a string", parse, "application/json", b'{"conf": 0.5}')
    _refused(422, "conf: given both in the query string and in the body", parse, "application/json",
             b'{"image": "aGk=", "conf": 0.5}', {"conf": "0.3"})
