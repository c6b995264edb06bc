"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium through chromedriver.

A coco128 photo goes in through the file chooser; the boxes the page draws are the API's answer for that
file, and the canvas holds each box's class colour on its edge; the confidence slider hides detections at
once and then shows the server's answer at its value; nothing the page or /docs loads comes from elsewhere.
"""

import shutil
import time
from pathlib import Path

import pytest

from rtdet.deploy.images import image_files, shared_data_dir
from rtdet.data.preview import colour
from tests.serve.conftest import app_for, httpx, running

pytestmark = pytest.mark.slow  # a browser driving the page: seconds per test
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,1000")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("no browser: the page test needs Chromium and chromedriver (apt-get install chromium "
                    "chromium-driver; `make install` does it where apt-get can)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    fake_camera = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")  # Chromium's test camera
    for flag in (*FLAGS, *fake_camera, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(weights):
    with running(app_for(weights["detect-onnx"])) as base:
        yield base


def _photo_with_detections(base):
    """The first coco128 photo on which the model finds something at its default confidence."""
    files = image_files(shared_data_dir() / "coco128" / "images")
    if not files:
        pytest.skip(f"the page test uploads coco128 photos: {shared_data_dir() / 'coco128'} is absent")
    for f in files[:20]:
        answer = httpx.post(f"{base}/v1/predict", files={"file": (f.name, f.read_bytes())}, timeout=60).json()
        if answer["detections"]:
            return f, answer
    pytest.fail("no detection on the first 20 coco128 photos")


def _wait(driver, script, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def _resources_are_local(driver, base):
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base + "/") or u.startswith("data:") for u in urls), urls


def test_upload_draws_the_apis_boxes_and_the_slider_is_live(browser, site, tmp_path):
    photo, api = _photo_with_detections(site)
    browser.get(site + "/")
    _wait(browser, "return document.getElementById('status').dataset.state === 'ready'")
    browser.find_element("id", "file").send_keys(str(photo.resolve()))  # chromedriver wants no ".."
    _wait(browser, "return window.rtdet.requests === 1 && document.getElementById('status').dataset.state === 'done'")
    drawn = browser.execute_script("return window.rtdet.drawn")
    assert drawn == api["detections"] and len(drawn) >= 1
    assert browser.find_element("id", "status").text.startswith(f"{len(drawn)} detection")
    assert len(browser.find_elements("css selector", "#results tbody tr")) == len(drawn)
    assert "round trip" in browser.find_element("id", "latency").text
    edges = browser.execute_script("""
        const ctx = document.getElementById('view').getContext('2d');
        return window.rtdet.drawn.map(d => Array.from(ctx.getImageData(
            Math.floor(d.box.x1), Math.floor((d.box.y1 + d.box.y2) / 2), 1, 1).data.slice(0, 3)));""")
    on_edge = [tuple(e) == colour(d["class_id"]) for d, e in zip(drawn, edges)]
    assert any(on_edge), f"no box edge in its class colour: {edges}"
    size = browser.execute_script("const c = document.getElementById('view'); return [c.width, c.height]")
    assert size == [api["image"]["width"], api["image"]["height"]]
    browser.save_screenshot(str(tmp_path / "page.png"))

    scores = sorted(d["score"] for d in drawn)  # up: detections below the slider vanish at once, no new request
    cut = round((scores[0] + scores[-1]) / 2, 2) if scores[-1] - scores[0] > 0.02 else round(scores[-1] + 0.01, 2)
    browser.execute_script(f"""const s = document.getElementById('conf'); s.value = {cut};
        s.dispatchEvent(new Event('input'));""")
    assert browser.execute_script("return window.rtdet.requests") == 1
    kept = browser.execute_script("return window.rtdet.drawn")
    assert kept == [d for d in drawn if d["score"] > cut] and len(kept) < len(drawn)
    cut = 0.2  # down, then let go: the server's answer at the slider's value
    browser.execute_script(f"""const s = document.getElementById('conf'); s.value = {cut};
        s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));""")
    _wait(browser, "return window.rtdet.requests >= 2 && document.getElementById('status').dataset.state === 'done'"
                   " && document.getElementById('status').textContent.endsWith('0.20')")
    lower = httpx.post(f"{site}/v1/predict", files={"file": (photo.name, photo.read_bytes())},
                       data={"conf": cut}).json()
    assert browser.execute_script("return window.rtdet.drawn") == lower["detections"]
    assert len(lower["detections"]) >= len(drawn)
    _resources_are_local(browser, site)


def test_a_bad_file_shows_the_servers_reason(browser, site, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    browser.get(site + "/")
    _wait(browser, "return document.getElementById('status').dataset.state === 'ready'")
    browser.find_element("id", "file").send_keys(str(bad))
    _wait(browser, "return document.getElementById('status').dataset.state === 'error'")
    assert browser.find_element("id", "status").text.startswith("415: image: not an image file")


def test_docs_render_without_the_internet(browser, site, tmp_path):
    browser.get(site + "/docs")
    _wait(browser, "return document.querySelectorAll('.opblock').length >= 3")
    browser.save_screenshot(str(tmp_path / "docs.png"))
    text = browser.find_element("css selector", ".swagger-ui").text
    assert "/v1/predict" in text and "/v1/models" in text and "/health" in text
    _resources_are_local(browser, site)


def _upload(browser, base, path):
    browser.get(base + "/")
    _wait(browser, "return document.getElementById('status').dataset.state === 'ready'")
    browser.find_element("id", "file").send_keys(str(path.resolve()))
    _wait(browser, "return window.rtdet.requests === 1 && document.getElementById('status').dataset.state === 'done'")


def test_segmentation_is_drawn_as_rtdet_predict_draws_it(browser, weights, photos, tmp_path):
    """The page's overlay equals rtdet.data.overlay's (the blend of `rtdet predict`) to the rounding of one level."""
    import base64

    import cv2
    import numpy as np

    from rtdet.data.overlay import overlay
    from rtdet.deploy.images import read_image

    png = tmp_path / "photo.png"  # lossless: the browser and OpenCV see the same pixels
    cv2.imwrite(str(png), cv2.imread(str(photos[0])))
    with running(app_for(weights["segment"])) as base:
        _upload(browser, base, png)
        api = httpx.post(f"{base}/v1/predict", files={"file": (png.name, png.read_bytes())}).json()
    browser.save_screenshot(str(tmp_path / "segment.png"))
    shown = browser.execute_script("return document.getElementById('view').toDataURL('image/png')")
    canvas = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(shown.split(",")[1]), np.uint8),
                                       cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(api["mask"]["png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    expected = overlay(read_image(png), mask, len(api["classes"]), 0.5)
    assert canvas.shape == expected.shape and np.abs(canvas.astype(int) - expected).max() <= 1
    assert len(api["pixels"]) >= 2  # classes meet somewhere: the comparison covers their borders
    assert browser.execute_script("return window.rtdet.drawn") == sorted(
        [list(p) for p in api["pixels"].items()], key=lambda p: -p[1])


def test_classification_lists_the_apis_top_classes(browser, weights, photos):
    with running(app_for(weights["classify"])) as base:
        _upload(browser, base, photos[0])
        api = httpx.post(f"{base}/v1/predict", files={"file": (photos[0].name, photos[0].read_bytes())}).json()
        assert not browser.find_element("id", "conf-box").is_displayed()  # no confidence for a classifier
    assert browser.execute_script("return window.rtdet.drawn") == api["top"]
    rows = browser.find_elements("css selector", "#results tbody tr")
    assert [r.find_elements("css selector", "td")[1].text for r in rows] == [t["class_name"] for t in api["top"]]


def test_webcam_frames_are_sent_and_drawn_until_stopped(browser, site):
    browser.get(site + "/")
    _wait(browser, "return document.getElementById('status').dataset.state === 'ready'")
    browser.find_element("id", "webcam").click()
    _wait(browser, "return window.rtdet.requests >= 3")  # one frame after another
    size = browser.execute_script("const v = document.getElementById('video'); return [v.videoWidth, v.videoHeight]")
    answer = browser.execute_script("return window.rtdet.answer")
    assert [answer["image"]["width"], answer["image"]["height"]] == size and size[0] > 0
    assert browser.execute_script("return window.rtdet.drawn") == answer["detections"]
    browser.find_element("id", "webcam").click()
    assert browser.find_element("id", "webcam").text == "Start webcam"

    sent = browser.execute_script("return window.rtdet.requests")
    time.sleep(1.0)
    assert browser.execute_script("return window.rtdet.requests") <= sent + 1  # at most the one in flight


def test_a_dropped_file_is_sent_like_a_chosen_one(browser, site):
    import base64

    photo, api = _photo_with_detections(site)
    browser.get(site + "/")
    _wait(browser, "return document.getElementById('status').dataset.state === 'ready'")
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], arguments[1], { type: "image/jpeg" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true,
                                                                              cancelable: true }));""",
                           base64.b64encode(photo.read_bytes()).decode(), photo.name)
    _wait(browser, "return window.rtdet.requests === 1 && document.getElementById('status').dataset.state === 'done'")
    assert browser.execute_script("return window.rtdet.drawn") == api["detections"]
