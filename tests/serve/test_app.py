"""The API over real HTTP (uvicorn on a loopback port, httpx): answers equal `rtdet predict` on the same files
and weights for every task; refusals carry their status and name their fault; the server outlives them."""

import base64
import json
import threading
import time

import cv2
import numpy as np
import pytest

from rtdet.cli import main
from rtdet.data.preview import colour
from tests.serve.conftest import app_for, httpx, running


def _post(base, path, data=None, **kw):
    files = {"file": (path.name, path.read_bytes())}
    return httpx.post(f"{base}/v1/predict", files=files, data=data or {}, timeout=60, **kw)


def _predict(weights, source, out, *flags):
    assert main(["predict", "--weights", str(weights), "--source", str(source), "--out", str(out), *flags]) == 0
    return json.loads((out / "predictions.json").read_text())


def _same_detections(api, records):
    """The API's detections are predictions.json's records: same order, class, score; xyxy vs xywh at 0.01 px."""
    assert [(d["class_id"], d["class_name"], d["score"]) for d in api] == \
        [(r["category"], r["name"], r["score"]) for r in records]
    for d, r in zip(api, records):
        x, y, w, h = r["bbox"]
        b = d["box"]
        assert (b["x1"], b["y1"]) == (x, y)
        assert abs(b["x2"] - b["x1"] - w) <= 0.011 and abs(b["y2"] - b["y1"] - h) <= 0.011


def test_health_and_models(servers):
    health = httpx.get(f"{servers['detect']}/health").json()
    assert health["status"] == "ok" and health["pool"]["capacity"] == 1 + 16
    (model,) = httpx.get(f"{servers['detect']}/v1/models").json()["models"]
    assert model["name"] == "det.onnx" and model["model"] == "rtdet-n" and model["task"] == "detect"
    assert model["classes"] == ["person", "bicycle", "car"] and model["backend"] == "onnxruntime"
    assert model["imgsz"] == 160 and model["fixed_imgsz"] is True
    assert model["colors"][2] == "#%02x%02x%02x" % colour(2)  # the colours rtdet predict draws
    assert model["parameters"] == ["conf", "iou", "max_det", "imgsz"]
    assert model["defaults"] == {"conf": 0.25, "iou": 0.7, "method": "nms", "max_det": 300, "imgsz": 160}
    (cls,) = httpx.get(f"{servers['classify']}/v1/models").json()["models"]
    assert cls["task"] == "classify" and cls["parameters"] == ["topk", "imgsz"] and cls["fixed_imgsz"] is False


def test_detections_equal_rtdet_predict_multipart_and_json(servers, weights, photos, tmp_path):
    records = _predict(weights["detect-onnx"], photos[0].parent, tmp_path / "p", "--conf", "0.2")
    base = servers["detect"]
    for photo in photos:
        answer = _post(base, photo, {"conf": "0.2"}).json()
        expected = [r for r in records if r["image"] == photo.name]
        assert answer["task"] == "detect" and answer["image"] == dict(zip(("width", "height"),
                                                                          cv2.imread(str(photo)).shape[1::-1]))
        _same_detections(answer["detections"], expected)
        assert set(answer["timing_ms"]) == {"queue", "decode", "inference", "encode", "total"}
    assert any(r["image"] == photos[0].name for r in records), "no detection to compare on the first photo"
    as_json = httpx.post(f"{base}/v1/predict", json={"image": base64.b64encode(photos[0].read_bytes()).decode(),
                                                     "conf": 0.2}, timeout=60).json()
    assert as_json["detections"] == _post(base, photos[0], {"conf": "0.2"}).json()["detections"]
    few = _post(base, photos[0], params={"conf": 0.2, "max_det": 1}).json()["detections"]  # parameters in the query
    assert few == as_json["detections"][:1]


def test_torch_backend_and_imgsz_equal_rtdet_predict(servers, weights, photos, tmp_path):
    records = _predict(weights["detect"], photos[1], tmp_path / "p", "--imgsz", "128", "--iou", "0.5")
    answer = _post(servers["detect-torch"], photos[1], {"imgsz": "128", "iou": "0.5"}).json()
    _same_detections(answer["detections"], records)
    default = _post(servers["detect-torch"], photos[1]).json()  # 160 px: the size the checkpoint says
    _same_detections(default["detections"], _predict(weights["detect"], photos[1], tmp_path / "q"))


def test_classification_equals_rtdet_predict(servers, weights, photos, tmp_path):
    records = _predict(weights["classify"], photos[0].parent, tmp_path / "p", "--topk", "2")
    for photo in photos:
        top = _post(servers["classify"], photo, {"topk": "2"}).json()["top"]
        (rec,) = [r for r in records if r["image"] == photo.name]
        assert [(t["class_id"], t["class_name"], t["probability"]) for t in top] == \
            [(t["category"], t["name"], t["probability"]) for t in rec["top"]]
    assert len(_post(servers["classify"], photos[0]).json()["top"]) == 3  # topk 5 of 3 classes


def test_segmentation_mask_equals_rtdet_predict(servers, weights, photos, tmp_path):
    out = tmp_path / "p"
    (record,) = _predict(weights["segment"], photos[2], out)
    answer = _post(servers["segment"], photos[2]).json()
    png = base64.b64decode(answer["mask"]["png"])
    assert png == (out / record["mask"]).read_bytes()  # the very file predict writes
    mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (answer["image"]["height"], answer["image"]["width"]) == cv2.imread(str(photos[2])).shape[:2]
    assert answer["pixels"] == record["pixels"] and answer["classes"] == ["sky", "road", "car"]
    assert sum(answer["pixels"].values()) == mask.size


BAD = [  # (what is sent, status, words the answer must hold)
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content type 'text/plain'"),
    ({"files": {"file": ("x.txt", b"just text")}}, 415, "not an image file"),
    ({"files": {"file": ("x.jpg", b"")}}, 422, "empty file"),
    ({"files": {"image": ("x.jpg", b"\xff\xd8")}}, 422, "file: missing"),
    ({"json": {"image": "???"}}, 422, "not valid base64"),
    ({"json": {"conf": 0.5}}, 422, "image: missing"),
    ({"json": [1, 2]}, 422, "must be an object"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 422, "does not parse"),
    ({"json": {"image": "aGk=", "conf": -1}}, 422, "conf: Input should be greater than or equal to 0"),
    ({"json": {"image": "aGk=", "max_det": "many"}}, 422, "max_det: Input should be a valid integer"),
    ({"json": {"image": "aGk=", "imgsz": 320}}, 422, "static graph for 160 px input"),
    ({"json": {"image": "aGk=", "topk": 2}}, 422, "topk: not a parameter of this model"),
    ({"json": {"image": "aGk=", "nms": "soft"}}, 422, "nms: unknown parameter"),
]


@pytest.mark.parametrize("request_kw, status, words", BAD, ids=[b[2][:24] for b in BAD])
def test_refusals_name_the_problem_and_the_server_goes_on(servers, photos, request_kw, status, words):
    r = httpx.post(f"{servers['detect']}/v1/predict", timeout=60, **request_kw)
    assert r.status_code == status and words in r.json()["detail"], r.text
    assert _post(servers["detect"], photos[0]).status_code == 200


def test_corrupt_and_unsupported_images(servers, photos, tmp_path):
    jpeg = photos[0].read_bytes()
    r = httpx.post(f"{servers['detect']}/v1/predict", files={"file": ("cut.jpg", jpeg[:len(jpeg) // 3])})
    assert r.status_code == 422 and "corrupt JPEG file" in r.json()["detail"]
    cv2.imwrite(str(tmp_path / "x.bmp"), cv2.imread(str(photos[0])))
    r = _post(servers["detect"], tmp_path / "x.bmp")
    assert r.status_code == 415 and "BMP files are not accepted (expected JPEG, PNG or WebP)" in r.json()["detail"]


def test_request_size_limit(weights, photos):
    with running(app_for(weights["detect-onnx"], max_bytes=20_000)) as base:
        small = cv2.imencode(".jpg", cv2.imread(str(photos[0]))[:60, :60])[1].tobytes()
        assert httpx.post(f"{base}/v1/predict", files={"file": ("s.jpg", small)}).status_code == 200
        r = httpx.post(f"{base}/v1/predict", files={"file": ("big.jpg", b"\xff" * 30_000)})
        assert r.status_code == 413 and "the limit is 0.02 MB" in r.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            yield b'{"image": "'
            for _ in range(30):
                yield b"A" * 1000

        r = httpx.post(f"{base}/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "request body over 0.02 MB" in r.json()["detail"]
        assert httpx.get(f"{base}/health").json()["status"] == "ok"


class Gate:
    """Wraps a backend: each call waits for the gate to open (so requests pile up), or raises when told to."""

    def __init__(self, backend):
        self.backend, self.open, self.entered, self.fail = backend, threading.Event(), threading.Event(), False

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def __call__(self, images):
        self.entered.set()
        if self.fail:
            raise RuntimeError("the backend broke")
        assert self.open.wait(60)
        return self.backend(images)


def test_full_queue_is_503_with_retry_after_and_faults_are_500(weights, photos):
    from rtdet.deploy.runtime import load_backend
    from rtdet.serve.app import create_app

    gate = Gate(load_backend(weights["detect-onnx"]))
    app = create_app(gate, {"conf": 0.25, "iou": 0.7, "method": "nms", "max_det": 300}, "det.onnx", workers=1,
                     queue=1)
    with running(app) as base:
        answers = {}

        def send(key):
            answers[key] = _post(base, photos[0])

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert gate.entered.wait(60)  # the only worker holds the first request
        second = threading.Thread(target=send, args=("second",))
        second.start()
        for _ in range(600):  # the second waits in the queue
            if httpx.get(f"{base}/health").json()["pool"]["waiting"] == 1:
                break
            time.sleep(0.05)
        busy = _post(base, photos[0])
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
        assert "queue is full" in busy.json()["detail"]
        gate.open.set()
        first.join(60)
        second.join(60)
        assert answers["first"].status_code == answers["second"].status_code == 200
        assert answers["first"].json()["detections"] == answers["second"].json()["detections"]
        gate.fail = True
        broken = _post(base, photos[0])
        assert broken.status_code == 500
        assert "internal error: RuntimeError: the backend broke" in broken.json()["detail"]
        gate.fail = False
        assert _post(base, photos[0]).status_code == 200
        assert httpx.get(f"{base}/health").json()["pool"] == {"running": 0, "waiting": 0, "capacity": 2, "done": 3,
                                                             "refused": 1}


def test_openapi_docs_and_page_are_served_from_here(servers):
    base = servers["detect"]
    spec = httpx.get(f"{base}/openapi.json").json()
    assert {"/health", "/v1/models", "/v1/predict"} <= set(spec["paths"])
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert "image" in body["application/json"]["schema"]["properties"]
    assert {"413", "415", "422", "503"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])
    for page, assets in (("/docs", ("/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css")),
                         ("/redoc", ("/docs-static/redoc.standalone.js",)), ("/", ("/page/page.js", "/page/page.css"))):
        html = httpx.get(f"{base}{page}").text
        assert "http://" not in html.replace(base, "") and "https://" not in html
        for asset in assets:
            assert asset in html and httpx.get(f"{base}{asset}").status_code == 200


def test_an_nms_free_detector_takes_no_iou(tmp_path):
    """rtdet-detr-n decodes without NMS: /v1/models does not offer iou and a request that sends it is told so."""
    from rtdet.models import build_model
    from tests.serve.conftest import save_checkpoint

    weights = save_checkpoint(build_model("rtdet-detr-n", 2, num_queries=20).eval(), ["a", "b"],
                              tmp_path / "detr.pt", 64)
    with running(app_for(weights)) as base:
        (model,) = httpx.get(f"{base}/v1/models").json()["models"]
        assert model["parameters"] == ["conf", "max_det", "imgsz"] and model["defaults"]["method"] == "none"
        answer = httpx.post(f"{base}/v1/predict", json={"image": "aGk=", "iou": 0.3}, timeout=60)
        assert answer.status_code == 422
        assert answer.json()["detail"] == "iou: not a parameter of this model (it takes conf, max_det, imgsz)"
