"""The HTTP application of ``rtdet serve`` (FastAPI): the API, its OpenAPI document and the web page.

Routes: ``GET /`` the page (:mod:`rtdet.serve.page`: plain HTML/JS shipped in the
package), ``GET /health``, ``GET /v1/models``, ``POST /v1/predict``, ``GET /docs``
(Swagger UI) and ``/redoc`` on ``/openapi.json``. Nothing is fetched from the
internet: the documentation pages' scripts come from the ``fastapi-offline``
package and are served by this app.

A prediction runs :func:`rtdet.deploy.runtime.infer` (the task's letterbox ->
backend -> the task's decoding, the code ``rtdet predict`` runs) on the pixels of
:func:`rtdet.serve.inputs.load_image`, in the bounded pool of
:mod:`rtdet.serve.pool`; the answer is the task's ``response`` (:mod:`rtdet.tasks`)
plus the image size and ``timing_ms``. Refusals are ``{"detail": message}`` with
413 / 415 / 422 (:mod:`rtdet.serve.inputs`) or 503 and ``Retry-After`` (pool full);
an unexpected fault in one request is a 500 for that request and is logged, and the
server goes on.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect
from fastapi_offline import FastAPIOffline

from rtdet.deploy.runtime import Backend, infer
from rtdet.serve import schemas
from rtdet.serve.inputs import RequestError, check_params, load_image, parse_body, read_body
from rtdet.serve.pool import Busy, InferencePool
from rtdet.tasks import get_task

log = logging.getLogger("rtdet.serve")
PAGE = Path(str(resources.files("rtdet.serve") / "page"))
MAX_PIXELS = 100_000_000  # pixels of an uploaded image at most (a 10,000 x 10,000 photo): ~300 MB once decoded


class Predictor:
    """One model's predictions: a request's parameters checked into decoding settings, and one image run
    (on a pool thread) through :func:`rtdet.deploy.runtime.infer` into the task's answer.

    Args:
        settings: the task's decoding settings (:meth:`rtdet.tasks.base.Task.settings`): a request's
            parameters override them one by one.
    """

    def __init__(self, backend: Backend, settings: dict[str, Any]) -> None:
        self.backend, self.settings, self.task = backend, dict(settings), get_task(backend.task)
        # the model's parameters: its task's decoding settings, but not the NMS threshold of a model decoded
        # without NMS (the DETR family's fixed method "none"), where iou would be accepted and change nothing
        unused = {"iou"} if backend.decoding.get("method") == "none" else set()
        self.applies = tuple(p for p in schemas.PARAMS if p == "imgsz" or p in settings and p not in unused)
        if backend.name != "torch":
            # decoding's torch ops (NMS, filtering) stay on the worker's own thread next to the runtime's
            # (what infer's host_threads does per call; set once here since several workers enter it at once)
            torch.set_num_threads(1)

    def decoding(self, raw: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """``(decoding settings, imgsz or None)`` for a request's parameters as sent; RequestError when bad."""
        params = check_params(raw, self.applies, self.backend.fixed_imgsz)
        return {**self.settings, **{k: v for k, v in params.items() if k in self.settings}}, params.get("imgsz")

    def __call__(self, payload: bytes | str, decoding: dict[str, Any], imgsz: int | None) -> tuple[dict, dict]:
        """``(answer without timing_ms, seconds per stage: decode, inference, encode)`` for one upload."""
        t0 = time.perf_counter()
        image = load_image(payload, MAX_PIXELS)
        t1 = time.perf_counter()
        result = infer(self.backend, [image], imgsz, decoding)[0]
        t2 = time.perf_counter()
        answer = {"task": self.task.name, "image": {"width": image.shape[1], "height": image.shape[0]},
                  **self.task.response(result)}
        return answer, {"decode": t1 - t0, "inference": t2 - t1, "encode": time.perf_counter() - t2}


def create_app(backend: Backend, settings: dict[str, Any], weights: str = "", workers: int = 1, queue: int = 16,
               max_bytes: int = 20_000_000) -> Any:
    """The ASGI app serving ``backend`` with decoding ``settings`` (see :class:`Predictor`).

    Args:
        weights: the weights file's name, reported by ``/v1/models``.
        workers, queue: the pool (:class:`rtdet.serve.pool.InferencePool`), reachable as ``app.state.pool``.
        max_bytes: the largest request body; larger ones get 413.
    """
    pool, predictor = InferencePool(workers, queue), Predictor(backend, settings)
    info = model_info(backend, predictor.settings, weights, predictor.applies)

    @asynccontextmanager
    async def lifespan(app: Any):
        yield
        pool.close()  # after uvicorn has answered the requests in flight

    app = FastAPIOffline(title="rtdet serve", version=_version(), lifespan=lifespan, static_url="/docs-static",
                         description="Real-time vision models over HTTP: the page is at /, the API below. "
                                     "Results equal `rtdet predict` on the same file and weights.",
                         swagger_ui_parameters={"validatorUrl": None})  # no badge fetched from swagger.io
    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    app.state.pool = pool

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE / "index.html")

    @app.get("/health", response_model=schemas.Health, summary="liveness and the pool's load")
    async def health() -> dict:
        return {"status": "ok", "pool": pool.stats()}

    @app.get("/v1/models", response_model=schemas.Models, summary="the model served")
    async def models() -> dict:
        return {"models": [info]}

    @app.post("/v1/predict", summary="run the model on one image", openapi_extra=PREDICT_BODY,
              response_model=schemas.PredictAnswer, responses=PROBLEMS)
    async def predict(request: Request) -> JSONResponse:
        """The image as a multipart file (field ``file``) or base64 in JSON (``image``); parameters as form
        fields, JSON keys or query parameters. Boxes and masks are in the original image's pixels."""
        start = time.perf_counter()
        try:
            body = await read_body(request.headers, request.stream(), max_bytes)
            payload, raw = await parse_body(request.headers, body, dict(request.query_params))
            decoding, imgsz = predictor.decoding(raw)
            (answer, stages), waited = await pool.run(predictor, payload, decoding, imgsz)
        except RequestError as e:
            return JSONResponse({"detail": str(e)}, status_code=e.status)
        except Busy as e:
            return JSONResponse({"detail": str(e)}, status_code=503, headers={"Retry-After": str(e.retry_after)})
        except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing to log
            return JSONResponse({"detail": "client disconnected"}, status_code=400)
        except Exception as e:  # a fault of the server, not of the request: answered, logged, and serving goes on
            log.exception("POST /v1/predict failed")
            return JSONResponse({"detail": f"internal error: {type(e).__name__}: {e}"}, status_code=500)
        stages = {"queue": waited, **stages, "total": time.perf_counter() - start}
        answer["timing_ms"] = {k: round(v * 1e3, 3) for k, v in stages.items()}
        return JSONResponse(answer)

    return app


def model_info(backend: Backend, settings: dict[str, Any], weights: str, applies: tuple[str, ...]) -> dict:
    """What ``GET /v1/models`` says about the model (see :class:`rtdet.serve.schemas.ModelInfo`)."""
    from rtdet.data.preview import colour

    return {"name": weights, "model": backend.model_name, "task": backend.task, "classes": backend.names,
            "colors": ["#%02x%02x%02x" % tuple(colour(k)) for k in range(len(backend.names))],
            "imgsz": backend.imgsz, "fixed_imgsz": backend.fixed_imgsz is not None, "backend": backend.name,
            "parameters": list(applies), "defaults": {**settings, **backend.decoding, "imgsz": backend.imgsz}}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtdet")
    except PackageNotFoundError:
        return "0"


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "description": text} for status, text in (
        (413, "request body over the limit (--max-mb)"),
        (415, "not multipart or JSON, or not a JPEG, PNG or WebP image"),
        (422, "missing or corrupt image, or a bad parameter (named)"),
        (503, "every worker busy and the queue full: retry after the Retry-After header's seconds"),
    )}

PREDICT_BODY = {
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": schemas.PredictForm.model_json_schema()},
        "application/json": {"schema": schemas.PredictJSON.model_json_schema()}}},
    "parameters": [{"name": name, "in": "query", "required": False, "schema": spec,
                    "description": spec.get("description", "")}
                   for name, spec in schemas.PredictParams.model_json_schema()["properties"].items()],
}
