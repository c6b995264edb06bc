"""What a ``POST /v1/predict`` carries: the body (size-limited), the image in it, and its parameters.

Every fault is a :class:`RequestError` with the HTTP status and a message naming it:
``413`` a body over the limit; ``415`` a body that is neither multipart nor JSON, or
bytes that are not a JPEG, PNG or WebP image; ``422`` a missing or corrupt image
(judged as ``rtdet predict`` judges files, by decoding it:
:func:`rtdet.data.dataset.decode_whole`) or a bad parameter. The pixels are
:func:`rtdet.data.dataset.decode_image`'s, the decoder ``rtdet predict`` reads files
with, so a request and ``rtdet predict`` on the same file see the same pixels.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from rtdet.serve.schemas import PARAMS, PredictParams, validation_message

FORMATS = ("JPEG", "PNG", "WEBP")  # Pillow's names of the formats accepted
ACCEPTED = "JPEG, PNG or WebP"


class RequestError(Exception):
    """A request the server refuses: ``status`` (HTTP) and a message naming what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(headers: Mapping[str, str], stream: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The request body; ``413`` as soon as it is known to exceed ``max_bytes`` (declared length or bytes read)."""
    declared = headers.get("content-length")
    limit = f"the limit is {max_bytes / 1e6:g} MB (rtdet serve --max-mb)"
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"request body of {int(declared) / 1e6:.1f} MB: {limit}")
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"request body over {max_bytes / 1e6:g} MB: {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> tuple[bytes | str, dict]:
    """``(the image: file bytes, or base64 text from JSON, parameters as sent)`` of a multipart or JSON body;
    parameters may also come in the query string (a name given twice is a ``422``)."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        image, params = await _multipart(headers, body)
    elif kind == "application/json":
        image, params = _json(body)
    else:
        raise RequestError(415, f"content type {kind or '(none)'!r}: send multipart/form-data with the image in "
                                "field 'file', or application/json with the image in base64 under 'image'")
    twice = sorted(set(params) & set(query))
    if twice:
        raise RequestError(422, f"{', '.join(twice)}: given both in the query string and in the body")
    return image, {**query, **params}


async def _multipart(headers: Mapping[str, str], body: bytes) -> tuple[bytes, dict]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=1, max_fields=len(PARAMS)).parse()
    except MultiPartException as e:
        raise RequestError(422, f"multipart body: {e.message}") from None
    fields = dict(form.multi_items())
    file = fields.pop("file", None)
    if not isinstance(file, UploadFile):
        others = [k for k, v in fields.items() if isinstance(v, UploadFile)]
        hint = f" (got a file in {others[0]!r})" if others else ""
        raise RequestError(422, f"file: missing: send the image as the multipart file field 'file'{hint}")
    data = await file.read()
    await form.close()
    return data, {k: v for k, v in fields.items() if not isinstance(v, UploadFile)}


def _json(body: bytes) -> tuple[str, dict]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(422, f"JSON body does not parse: {e}") from None
    if not isinstance(doc, dict):
        raise RequestError(422, f"JSON body must be an object with 'image', got {type(doc).__name__}")
    image = doc.pop("image", None)
    if not isinstance(image, str):
        raise RequestError(422, "image: missing or not a string: send the image file's bytes in base64")
    return image, doc


def check_params(raw: dict[str, Any], applies: tuple[str, ...], fixed_imgsz: int | None) -> dict[str, Any]:
    """The parameters that were set, checked: types and ranges (:class:`PredictParams`), that each applies to
    the model (``applies``: the names it takes), and ``imgsz`` against a static graph's size."""
    try:
        params = PredictParams.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as e:
        raise RequestError(422, validation_message(e)) from None
    wrong = [k for k in params if k not in applies]
    if wrong:
        raise RequestError(422, f"{', '.join(wrong)}: not a parameter of this model (it takes {', '.join(applies)})")
    if fixed_imgsz and params.get("imgsz", fixed_imgsz) != fixed_imgsz:
        raise RequestError(422, f"imgsz: this model is a static graph for {fixed_imgsz} px input, got "
                                f"{params['imgsz']} (re-export with --dynamic to serve other sizes)")
    return params


def load_image(payload: bytes | str, max_pixels: int) -> np.ndarray:
    """uint8 [H, W, 3] RGB pixels of an uploaded file (bytes) or of its base64 text.

    Raises:
        RequestError: 422 not base64, empty, corrupt, or over ``max_pixels``; 415 not a JPEG, PNG or WebP.
    """
    from rtdet.data.dataset import ImageError, decode_whole, image_header

    data = _unbase64(payload) if isinstance(payload, str) else payload
    if not data:
        raise RequestError(422, "image: empty file")
    try:
        h, w, kind = image_header(data)
    except ImageError:
        raise RequestError(415, f"image: not an image file (expected {ACCEPTED}; the first bytes are "
                                f"{data[:8]!r})") from None
    if kind not in FORMATS:
        raise RequestError(415, f"image: {kind} files are not accepted (expected {ACCEPTED})")
    if w * h > max_pixels:
        raise RequestError(422, f"image: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                                f"{max_pixels / 1e6:.0f}")
    try:
        return decode_whole(data)
    except ImageError as e:
        raise RequestError(422, f"image: corrupt {kind} file: {e}") from None


def _unbase64(text: str) -> bytes:
    if text.startswith("data:") and "," in text:  # a data: URL, as browsers write them
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(422, f"image: not valid base64 ({e})") from None
