"""The HTTP API (TestClient) and the web page (real server + headless Chromium via Selenium)."""

from __future__ import annotations

import io
import shutil
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ferkit.labels import COLORS, EMOTIONS
from ferkit.serve import create_app

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 2 * 2**20  # the tests' upload limit (bytes)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A valid-looking PNG header claiming side x side pixels (a decompression bomb), a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * (side + 1) * 4, 9)  # the first rows; a real bomb would go on
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    from skimage.data import astronaut

    return png_bytes(astronaut())


@pytest.fixture(scope="module")
def app(tiny_checkpoint):
    return create_app(str(tiny_checkpoint), max_upload_bytes=LIMIT)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def post(client, data: bytes, name="photo.png", mime="image/png"):
    return client.post("/predict", files={"file": (name, data, mime)})


# ---------------------------------------------------------------- API


def test_predict_returns_a_record_per_face(client, astronaut_png):
    r = post(client, astronaut_png)
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["width"], j["height"]) == (512, 512)
    assert j["count"] == len(j["faces"]) == 1  # the astronaut's face
    assert "message" not in j
    f = j["faces"][0]
    x, y, w, h = f["box"]
    assert 0 <= x < x + w <= 512 and 0 <= y < y + h <= 512 and w > 20 and h > 20
    assert list(f["probs"]) == list(EMOTIONS)
    assert sum(f["probs"].values()) == pytest.approx(1, abs=1e-4)
    assert f["label"] == max(f["probs"], key=f["probs"].get)
    assert f["score"] == pytest.approx(f["probs"][f["label"]])


def test_photo_without_a_face_says_so(client):
    r = post(client, png_bytes(np.full((120, 160, 3), 128, np.uint8)))
    assert r.status_code == 200, r.text
    assert r.json() == {"faces": [], "width": 160, "height": 120, "count": 0, "message": "no face found"}


def test_oversize_upload_is_413(client):
    r = post(client, b"\0" * (LIMIT + 1))
    assert r.status_code == 413
    assert "limit is 2.0 MB" in r.json()["error"]


def test_oversize_upload_without_content_length_is_cut_off(app):
    """A chunked body (no Content-Length) is counted as it arrives and refused once over the limit."""
    body = (b"x" * 2**16 for _ in range(64))  # 4 MiB, twice the limit
    with TestClient(app) as c:
        r = c.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_non_image_is_415(client):
    r = post(client, b"hello, this is text\n" * 10, name="notes.txt", mime="text/plain")
    assert r.status_code == 415
    assert r.json()["error"].startswith("notes.txt: ")


def test_empty_file_is_415(client):
    r = post(client, b"", name="empty.png")
    assert r.status_code == 415 and "empty" in r.json()["error"]


def test_truncated_png_is_422(client, astronaut_png):
    r = post(client, astronaut_png[: len(astronaut_png) // 2], name="cut.png")
    assert r.status_code == 422
    assert r.json()["error"].startswith("cut.png: ")


def test_decompression_bomb_is_refused(client):
    data = bomb_png()
    assert len(data) < 2000
    r = post(client, data, name="bomb.png")
    assert r.status_code in (413, 422)
    assert "bomb.png" in r.json()["error"]


def test_missing_file_field_is_400(client):
    r = client.post("/predict", data={"photo": "x"})
    assert r.status_code == 400 and "'file'" in r.json()["error"]
    r = client.post("/predict", json={"file": "x"})
    assert r.status_code == 400 and "'file'" in r.json()["error"]


def test_health_version_labels(client, tiny_checkpoint):
    assert client.get("/health").json() == {"status": "ok"}
    v = client.get("/version").json()
    assert v["ferkit"] == "0.1.0"
    m = v["model"]
    assert m["name"] == "tiny" and m["epochs"] == 3 and 1 <= m["epoch"] <= 3 and m["backend"] == "torch"
    assert 0 <= m["val_acc"] <= 1 and m["path"] == str(tiny_checkpoint)
    assert v["max_upload_bytes"] == LIMIT
    assert client.get("/labels").json() == {"emotions": list(EMOTIONS), "colors": dict(zip(EMOTIONS, COLORS))}
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="canvas"' in r.text and "/static/app.js" in r.text
    assert "/predict" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/nope.js").status_code == 404


def test_onnx_backend_gives_the_same_answer(client, tiny_checkpoint, astronaut_png):
    with TestClient(create_app(str(tiny_checkpoint), max_upload_bytes=LIMIT, backend="onnx")) as c:
        assert c.get("/version").json()["model"]["backend"] == "onnx"
        got = post(c, astronaut_png).json()["faces"]
    want = post(client, astronaut_png).json()["faces"]
    assert [f["box"] for f in got] == [f["box"] for f in want]
    for g, w in zip(got, want):
        assert list(g["probs"].values()) == pytest.approx(list(w["probs"].values()), abs=1e-4)


def test_bad_model_path_is_a_clear_error(tmp_path):
    from ferkit.cli import main
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="no such checkpoint"):
        create_app(str(tmp_path / "missing.pt"))
    assert main(["serve", "--model", str(tmp_path / "missing.pt")]) == 2


def test_concurrent_requests_run_in_parallel_up_to_the_bound(tiny_checkpoint, astronaut_png):
    """6 requests at once, at most 2 predictions at a time: 2 run together, never 3, all answers equal."""
    from ferkit.predict import Predictor

    inner = Predictor(str(tiny_checkpoint))
    lock, now, peak = threading.Lock(), [0], [0]

    class Counting:
        def predict(self, rgb):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.2)
            try:
                return inner.predict(rgb)
            finally:
                with lock:
                    now[0] -= 1

    with TestClient(create_app(Counting(), max_upload_bytes=LIMIT, max_concurrent=2)) as c:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: post(c, astronaut_png), range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert all(a.json() == answers[0].json() for a in answers)
    assert peak[0] == 2


# ---------------------------------------------------------------- web page in headless Chromium


def _free_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@pytest.fixture(scope="module")
def live_server(app):
    """The real server (uvicorn) on a free loopback port, in a thread."""
    import uvicorn

    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("browser test needs Chromium and chromedriver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _upload(browser, url, path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "message").get_attribute("class") in ("ok", "empty", "error"))
    return browser.find_element(By.ID, "message")


def test_real_server_answers_413_before_an_endless_upload_ends(live_server):
    """Over a real socket: the server answers 413 while the client is still sending a chunked body."""
    import select

    port = int(live_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        s.sendall(b"%x\r\n" % len(head) + head + b"\r\n")
        chunk = b"%x\r\n" % 2**16 + b"x" * 2**16 + b"\r\n"
        sent = 0
        while sent < 1000 and not select.select([s], [], [], 0.01)[0]:  # up to 64 MiB unless answered
            try:
                s.sendall(chunk)
            except OSError:  # the server closed the connection after answering
                break
            sent += 1
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert 32 <= sent < 100  # the limit is 2 MiB = 32 chunks; it stopped soon after


def test_page_draws_boxes_and_bars(browser, live_server, astronaut_png, tmp_path):
    from selenium.webdriver.common.by import By

    photo = tmp_path / "astronaut.png"
    photo.write_bytes(astronaut_png)
    msg = _upload(browser, live_server, photo)
    assert msg.get_attribute("class") == "ok", msg.text
    assert msg.text == "Found 1 face in astronaut.png."
    faces = browser.find_elements(By.CSS_SELECTOR, "#faces .face")
    assert len(faces) == 1
    rows = faces[0].find_elements(By.CSS_SELECTOR, ".bar-row")
    assert [r.get_attribute("data-emotion") for r in rows] == list(EMOTIONS)
    widths = [float(r.find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width")[:-2]) for r in rows]
    track = float(rows[0].find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width")[:-2])
    assert sum(widths) == pytest.approx(track, rel=0.02)  # the 7 probabilities fill one bar's length
    label = faces[0].get_attribute("data-label")
    assert faces[0].find_element(By.CSS_SELECTOR, ".bar-row.top").get_attribute("data-emotion") == label
    # the box is drawn on the canvas in the emotion's colour: read a pixel on its left edge
    x, y, w, h = map(int, faces[0].get_attribute("data-box").split(","))
    pixel = browser.execute_script(
        "return Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)", x, y + h // 2)
    want = COLORS[EMOTIONS.index(label)]
    assert pixel[:3] == [int(want[i:i + 2], 16) for i in (1, 3, 5)]
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(out / "serve-page.png"))


def test_page_says_when_the_file_is_not_an_image(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By

    bad = tmp_path / "notes.txt"
    bad.write_text("not a photo\n")
    msg = _upload(browser, live_server, bad)
    assert msg.get_attribute("class") == "error"
    assert msg.text.startswith("notes.txt: ")
    assert not browser.find_element(By.ID, "result").is_displayed()


def test_page_refuses_a_photo_over_the_limit(browser, live_server, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (LIMIT + 1))
    msg = _upload(browser, live_server, big)
    assert msg.get_attribute("class") == "error"
    assert msg.text == "huge.png is 2.0 MB; the limit is 2.0 MB. Choose a smaller photo."


def test_page_says_when_no_face_is_found(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By

    blank = tmp_path / "wall.png"
    blank.write_bytes(png_bytes(np.full((90, 120, 3), 200, np.uint8)))
    msg = _upload(browser, live_server, blank)
    assert msg.get_attribute("class") == "empty" and msg.text.startswith("No face found")
    assert browser.find_elements(By.CSS_SELECTOR, "#faces .face") == []
