"""The HTTP API (TestClient) and the web page (real server + headless Chromium via Selenium)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ferkit.labels import COLORS, EMOTIONS
from ferkit.predict import default_path, shipped_graph
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
        deadline = time.monotonic() + 120
        while c.get("/health").json()["status"] == "starting" and time.monotonic() < deadline:
            time.sleep(0.1)  # the warm-up prediction runs in the background
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


def test_an_upload_cut_short_is_400_saying_so_not_no_file(client, astronaut_png):
    """A body that ends before its closing boundary (cut mid-file, or in a part's headers), or
    before the bytes its Content-Length declares, holds no complete file part: the answer says
    the upload was cut short, not that no file was sent."""
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    whole = head + astronaut_png + b"\r\n--b--\r\n"
    mime = {"Content-Type": "multipart/form-data; boundary=b"}
    for body in (head + astronaut_png[:5000], head + astronaut_png + b"\r\n--b", head[:30]):
        r = client.post("/predict", content=body, headers=mime)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith(f"upload cut short or malformed: the multipart body ({len(body):,} bytes) "
                                            "ends before its closing boundary --b--"), r.json()
    r = client.post("/predict", content=whole, headers={**mime, "Content-Length": str(len(whole) + 1000)})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"upload cut short: {len(whole):,} of the {len(whole) + 1000:,} bytes"), r.json()
    # the whole body, its boundary quoted or not, and a body-less POST (no file) are as before
    for boundary in ("b", '"b"'):
        assert client.post("/predict", content=whole, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}).status_code == 200
    r = client.post("/predict", content=b"", headers=mime)
    assert r.status_code == 400 and r.json()["error"].startswith("no file"), r.json()


def test_a_file_part_without_a_filename_is_400_and_the_schema_says_so(client, astronaut_png):
    """Such a part is a text field to the multipart parser (decoded, capped at 1 MB): its bytes are
    not the photo's, so the filename is required, and the schema says it (schemathesis found it)."""
    for data in (astronaut_png[:1000], b"text"):  # binary (fails validation as a file) and text (reaches the route)
        body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + data + b"\r\n--b--\r\n"
        r = client.post("/predict", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 400 and "the 'file' part has no filename" in r.json()["error"], r.json()
    spec = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    header = spec["encoding"]["file"]["headers"]["Content-Disposition"]
    assert header["required"] is True and "filename" in header["description"]


def test_a_malformed_multipart_body_says_what_is_wrong_not_invalid_multipart_data(client, astronaut_png):
    """python-multipart's parse errors reached the client as Starlette's "Invalid multipart data.":
    a 5,000-letter file name (a header line over the parser's 4,224 bytes), too many part headers,
    a header line without a colon. The answer now names the problem and the fix."""
    mime = {"Content-Type": "multipart/form-data; boundary=b"}

    def body(headers: bytes) -> bytes:
        return b"--b\r\n" + headers + b"\r\n\r\n" + astronaut_png[:100] + b"\r\n--b--\r\n"

    disposition = b'Content-Disposition: form-data; name="file"; filename="%s.png"'
    cases = {body(disposition % (b"a" * 5000)): "a part's header line is over 4,224 bytes",
             body(disposition % b"a" + b"\r\nX: y" * 20): "a part has over 8 header lines",
             body(b"no colon here"): "malformed multipart body (Found invalid character"}
    for data, why in cases.items():
        r = client.post("/predict", content=data, headers=mime)
        assert r.status_code == 400 and r.json()["error"].startswith(why), r.json()
        assert "curl -F file=@photo.jpg" in r.json()["error"]


def test_a_malformed_multipart_body_is_answered_not_logged_by_the_parser(client, astronaut_png, caplog):
    """python-multipart logged a warning ("Expected boundary character ...") for each malformed body, besides the
    400 that says it: a client could have the server write a line for every bad request it sent, without limit."""
    body = b"--c\r\n" + b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + astronaut_png[:100]
    with caplog.at_level("DEBUG"):
        r = client.post("/predict", content=body + b"\r\n--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and r.json()["error"].startswith("malformed multipart body (Expected boundary character"), r.json()
    assert not [m.getMessage() for m in caplog.records if m.name.startswith(("python_multipart", "multipart"))]


def test_a_chunked_upload_with_a_content_length_is_framed_by_its_chunks(client, astronaut_png):
    """Transfer-Encoding overrides Content-Length (RFC 9112, as uvicorn's h11 reads the body): the
    whole chunked photo was answered 'upload cut short: N of the M bytes its Content-Length declares'."""
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    whole = head + astronaut_png + b"\r\n--b--\r\n"
    r = client.post("/predict", content=iter([whole]), headers={
        "Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked", "Content-Length": str(len(whole) + 1000)})
    assert r.status_code == 200, r.text


def test_two_photos_in_one_request_are_refused_not_one_of_them_dropped(client, astronaut_png):
    files = [("file", ("a.png", astronaut_png, "image/png")), ("file", ("b.png", astronaut_png, "image/png"))]
    r = client.post("/predict", files=files)
    assert r.status_code == 400 and "one photo per request" in r.json()["error"], r.json()
    assert post(client, astronaut_png).status_code == 200


def test_a_second_file_of_any_name_is_refused_and_connections_fit_two_descriptors_each(client, astronaut_png, monkeypatch):
    """Each file part over 1 MB spooled to a temporary file of its own, held until the answer, and any
    name but 'file' was read and ignored: nine such parts made a request hold ten descriptors, and 30 of
    them used up `ulimit -n 256`. Now a request's second file is refused as it starts, and the connection
    cap counts two descriptors a connection (its socket and its upload's temporary file)."""
    import resource

    from ferkit.serve import FD_RESERVE, connection_cap

    files = [("file", ("a.png", astronaut_png, "image/png")), ("extra", ("b.bin", b"x" * 1000, "application/octet-stream"))]
    r = client.post("/predict", files=files)
    assert r.status_code == 400 and r.json()["error"].startswith("several files in one request: send one photo per request")
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    assert connection_cap(1000) == (256 - FD_RESERVE) // 2 and connection_cap(10) == 10


def test_text_fields_beside_the_photo_are_bounded_in_number(client, astronaut_png):
    """Text fields stay in memory (up to 1 MB each) and 1000 were allowed: a request held as many
    megabytes as --max-upload-mb let through. A few (a page's token) still pass beside the photo."""
    from ferkit.serve import MAX_FIELDS

    photo = {"file": ("a.png", astronaut_png, "image/png")}
    r = client.post("/predict", files=photo, data={f"f{i}": "x" * 1000 for i in range(MAX_FIELDS + 1)})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"over {MAX_FIELDS} text fields in one request: /predict reads only the photo")
    r = client.post("/predict", files=photo, data={f"f{i}": "x" for i in range(MAX_FIELDS)})
    assert r.status_code == 200, r.text


def test_text_fields_beside_the_photo_are_bounded_in_size(client, astronaut_png):
    """Each text field could hold 1 MB (starlette's limit), kept in memory while its request waited for a
    prediction thread: 100 requests of four such fields and a small photo, queued, held 500 MB (5 GB at the
    1000 connections let in). A field is now held to MAX_FIELD_BYTES (100 such requests: 12 MB), and one over
    it is a 400 saying so, in a multipart form or an urlencoded one."""
    from ferkit.serve import MAX_FIELD_BYTES

    photo = {"file": ("a.png", astronaut_png, "image/png")}
    why = f"a text field over {MAX_FIELD_BYTES // 2**10} KB: /predict reads only the photo, sent as a file"
    r = client.post("/predict", files=photo, data={"token": "x" * (MAX_FIELD_BYTES + 1)})
    assert r.status_code == 400 and r.json()["error"].startswith(why), r.text
    r = client.post("/predict", data={"file": "x" * (MAX_FIELD_BYTES + 1)})
    assert r.status_code == 400 and r.json()["error"].startswith(why), r.text
    r = client.post("/predict", files=photo, data={"token": "x" * MAX_FIELD_BYTES})
    assert r.status_code == 200, r.text


def test_an_upload_the_server_cannot_store_is_its_503_not_the_clients_400(client, astronaut_png, monkeypatch, caplog):
    """An upload over 1 MB spools to a temporary file; a full disk (or a file-size or descriptor limit) made
    FastAPI answer 400 "There was an error parsing the body", blaming the client, with nothing in the log."""
    import errno
    import tempfile

    from ferkit import serve

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    monkeypatch.setattr(serve._cannot_store, "last", -serve.WARN_EVERY)  # as if nothing was logged yet
    with caplog.at_level("WARNING"):
        r = post(client, b"\0" * 1_500_000, name="big.png")
    assert r.status_code == 503 and r.headers["retry-after"] == "60", r.text
    assert r.json()["error"] == "the server cannot store the upload (No space left on device); try again later"
    assert "cannot store uploads over 1 MB in" in caplog.text and caplog.records[-1].exc_info is None
    assert post(client, astronaut_png).status_code == 200  # under 1 MB: kept in memory, answered


def test_an_upload_with_no_temporary_folder_at_all_is_its_503_not_a_500(client, astronaut_png, monkeypatch, caplog):
    """Where no folder takes a file (TMPDIR's, /tmp, /var/tmp, the current folder: the whole disk full), tempfile
    finds none for an upload over 1 MB, and the 503's warning, which asked it for the folder's name again, was a
    traceback in the log and a 500 "please report this". The client is not told the server's folders."""
    import errno
    import tempfile

    from ferkit import serve

    def none_usable():  # what tempfile raises then (it tries each folder afresh: none was found before)
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found in ['/tmp', '/var/tmp', '/srv']")

    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "gettempdir", none_usable)
    monkeypatch.setattr(serve._cannot_store, "last", -serve.WARN_EVERY)
    with caplog.at_level("WARNING"):
        r = post(client, b"\0" * 1_500_000, name="big.png")
    assert r.status_code == 503 and r.headers["retry-after"] == "60", r.text
    assert r.json()["error"] == "the server cannot store the upload (no temporary folder takes a file); try again later"
    assert ("cannot store uploads over 1 MB: no temporary folder takes a file (No usable temporary directory found in "
            "['/tmp', '/var/tmp', '/srv']): they get a 503; free space in one of those folders, or set TMPDIR") in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    assert post(client, astronaut_png).status_code == 200


def test_health_version_labels(client, tiny_checkpoint):
    assert client.get("/health").json() == {"status": "ready", "model": "tiny"}
    r = client.get("/version")
    v = r.json()
    assert v["ferkit"] == "0.1.0"
    m = v["model"]
    assert m["name"] == "tiny" and m["epochs"] == 3 and 1 <= m["epoch"] <= 3 and m["backend"] == "torch"
    assert 0 <= m["val_acc"] <= 1
    assert m["file"] == "best.pt" and "path" not in m  # the file's name only: not where the server keeps it
    assert str(tiny_checkpoint.parent) not in r.text
    assert v["max_upload_bytes"] == LIMIT and v["max_upload_pixels"] == 16_000_000 and v["upload_timeout_s"] == 30
    assert v["max_queue"] == 256
    assert client.get("/labels").json() == {"emotions": list(EMOTIONS), "colors": dict(zip(EMOTIONS, COLORS))}


def test_a_bundled_model_goes_by_its_name_and_its_preset_is_said_apart():
    with TestClient(create_app("ferplus-fast", max_upload_bytes=LIMIT)) as c:
        m = c.get("/version").json()["model"]
        shipped = shipped_graph("ferplus-fast", default_path("ferplus-fast")[1])  # (an fp32 graph on AMD's Zen)
        assert m["name"] == "ferplus-fast" and m["preset"] == "tiny" and m["file"] == shipped.name
        assert _wait_for(lambda: c.get("/health").status_code == 200)
        assert c.get("/health").json() == {"status": "ready", "model": "ferplus-fast"}


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="canvas"' in r.text and "/static/app.js" in r.text
    assert "/predict" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/nope.js").status_code == 404


def test_onnx_backend_gives_the_same_answer(tiny_checkpoint, astronaut_png):
    with TestClient(create_app(str(tiny_checkpoint), max_upload_bytes=LIMIT, backend="onnx")) as c:
        assert c.get("/version").json()["model"]["backend"] == "onnx"
        got = post(c, astronaut_png).json()["faces"]
    with TestClient(create_app(str(tiny_checkpoint), max_upload_bytes=LIMIT, precision="fp32")) as c:  # ONNX runs fp32
        want = post(c, astronaut_png).json()["faces"]
    assert [f["box"] for f in got] == [f["box"] for f in want]
    for g, w in zip(got, want):
        assert list(g["probs"].values()) == pytest.approx(list(w["probs"].values()), abs=1e-4)


def test_bad_model_path_is_a_clear_error(tmp_path):
    from ferkit.cli import main
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="no such file or folder, and not a bundled model"):
        create_app(str(tmp_path / "missing.pt"))
    assert main(["serve", "--port", "0", "--model", str(tmp_path / "missing.pt")]) == 2


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


# ---------------------------------------------------------------- hardening


def _wait_for(cond, seconds: float = 20) -> bool:
    """Whether cond() came true within `seconds` (not asked again after: with several worker
    processes the next /health may come from one still warming up)."""
    deadline = time.time() + seconds
    while not cond():
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_pixel_limit_is_checked_from_the_header_before_decoding(client):
    """The probe's 38 KB all-black 6300x6300 PNG (40 MP) is refused; so is a header that claims as
    much over truncated data, with 413 (too large) rather than 422 (corrupt): nothing was decoded."""
    buf = io.BytesIO()
    Image.new("1", (6300, 6300)).save(buf, format="PNG")
    for name, data in (("black.png", buf.getvalue()), ("claims.png", bomb_png(6300))):
        r = post(client, data, name=name)
        assert r.status_code == 413, r.text
        assert r.json()["error"] == f"{name}: 6300x6300 pixels is too large (limit 16 megapixels); shrink the image first"


def test_max_upload_pixels_setting(tiny_checkpoint, astronaut_png):
    with TestClient(create_app(str(tiny_checkpoint), max_upload_pixels=512 * 512)) as c:
        assert post(c, astronaut_png).status_code == 200  # 512x512: just within
        assert post(c, png_bytes(np.zeros((513, 512, 3), np.uint8))).status_code == 413


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
def test_memory_goes_back_to_the_os_after_big_photos(tiny_checkpoint):
    """4 photos of 6 MP decoded in 2 inference threads: glibc would keep ~120 MB of their freed
    arrays in the threads' arenas (measured with release_memory disabled); release_memory() hands it back."""
    from ferkit.faces import load_image

    big = png_bytes(np.zeros((2000, 3000, 3), np.uint8))
    load_image(big)  # Pillow's and numpy's own first-use costs, outside the measurement
    with TestClient(create_app(str(tiny_checkpoint), max_concurrent=2)) as c:
        assert _wait_for(lambda: c.get("/health").status_code == 200)
        before = rss_mb()
        with ThreadPoolExecutor(2) as pool:
            codes = [r.status_code for r in pool.map(lambda _: post(c, big, name="big.png"), range(4))]
        after = rss_mb()
    assert codes == [200] * 4
    assert after - before < 50, f"RSS {before:.0f} -> {after:.0f} MB"


def test_memory_goes_back_to_the_os_once_a_burst_of_photos_is_answered(monkeypatch):
    """Up to --max-queue (256) small photos held at once left ~300 MB resident after the burst: release_memory ran
    only after photos of TRIM_PIXELS. It runs when the photos held fall to none after TRIM_HELD or more were held at
    once: once a burst, not after every photo, nor after photos that came one at a time."""
    from ferkit import serve

    calls = []
    monkeypatch.setattr(serve, "release_memory", lambda: calls.append(1))
    photos = serve._Photos(256)
    for _ in range(3 * serve.TRIM_HELD):  # one at a time: nothing to hand back
        photos.take()
        photos.done()
    assert calls == [] and photos.held == 0
    for _ in range(serve.TRIM_HELD):  # a burst ...
        photos.take()
    for _ in range(serve.TRIM_HELD - 1):
        photos.done()
        photos.take()  # ... that goes on
        photos.done()
    assert calls == [] and photos.held == 1
    photos.done()  # the last of it
    assert calls == [1] and photos.held == 0
    photos.take()
    photos.done()  # the peak was the burst's: not again
    assert calls == [1]

    class Blank:
        def predict(self, rgb):
            return []

    monkeypatch.setattr(serve, "TRIM_HELD", 1)  # each photo, alone, a "burst": /predict takes and gives back photos so
    with TestClient(create_app(Blank())) as c:
        assert _wait_for(lambda: c.get("/health").status_code == 200)
        assert [post(c, png_bytes(np.zeros((8, 8, 3), np.uint8))).status_code for _ in range(3)] == [200] * 3
    assert calls == [1] * 4 and c.app.state.photos.held == 0


def _headers_ok(r) -> bool:
    return (r.headers.get("x-content-type-options") == "nosniff" and r.headers.get("x-frame-options") == "DENY"
            and r.headers.get("referrer-policy") == "no-referrer"
            and "script-src 'self';" in r.headers.get("content-security-policy", ""))


def test_security_headers_on_every_response(client, astronaut_png):
    answers = [client.get(u) for u in ("/", "/docs", "/static/app.js", "/health", "/version", "/openapi.json", "/nope")]
    answers += [post(client, b"not an image", name="x.txt"), post(client, astronaut_png),
                client.post("/predict", content=b"x", headers={"content-length": str(LIMIT * 2)}),  # UploadGuard's 413
                client.delete("/health")]
    assert [a.status_code for a in answers] == [200] * 6 + [404, 415, 200, 413, 405]
    assert all(_headers_ok(a) for a in answers)
    assert "unsafe-inline" not in answers[0].headers["content-security-policy"]


def test_pages_have_nothing_inline():
    """The CSP forbids inline scripts and styles: the pages must not need them."""
    import re

    for page in ("index.html", "docs.html"):
        html = (ROOT / "src/ferkit/static" / page).read_text()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], page  # every script is a file
        assert "<style" not in html and " style=" not in html, page
        assert re.findall(r"<[^>]*\son[a-z]+\s*=", html) == [], page  # no onclick=... handlers


def test_docs_are_served_from_this_server(client):
    html = client.get("/docs").text
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css", "/static/docs.js"):
        assert asset in html
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 200, asset
    assert "SwaggerUIBundle" in client.get("/static/swagger/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN page is off


def test_openapi_documents_the_real_responses(client):
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert sorted(responses) == ["200", "400", "408", "413", "415", "422", "500", "503"]
    for code in ("400", "408", "413", "415", "422", "500", "503"):
        assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert spec["components"]["schemas"]["ErrorOut"]["properties"].keys() == {"error"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # the shape FastAPI would document
    ok = responses["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert spec["components"]["schemas"][ok]["required"] == ["faces", "width", "height", "count"]
    assert spec["paths"]["/health"]["get"]["responses"].keys() == {"200", "503"}
    ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))  # OpenAPI wants each unique: HEAD shared GET's (client generators trip on it)
    # and what comes back has that shape
    assert client.post("/predict", data={"x": "1"}).json().keys() == {"error"}


def test_405_names_the_allowed_methods(client):
    for method, url, allow in (("DELETE", "/health", "GET, HEAD"), ("GET", "/predict", "POST"), ("POST", "/static/app.js", "GET, HEAD")):
        r = client.request(method, url)
        given = r.headers["allow"]  # (starlette lists a route's methods from a set: in no fixed order)
        assert r.status_code == 405 and sorted(given.split(", ")) == sorted(allow.split(", ")), (method, url)
        assert r.json() == {"error": f"{method} {url}: method not allowed; use {given}"}
    for url in ("/", "/health", "/version", "/labels", "/docs"):  # monitors and curl -I ask with HEAD (was 405)
        assert client.head(url).status_code == 200, url
    long = "/" + "x" * 60_000  # a 404 does not echo a path of any length (a 100 KB one was a 100 KB reply)
    assert client.get(long).json() == {"error": f"/{'x' * 199}... (60,001 characters): not found; the API is POST /predict, "
                                                "GET /health, /version, /labels (docs at /docs)"}
    long = "/static/" + "x" * 60_000  # nor a 405 (it came back whole)
    r = client.post(long)
    assert r.status_code == 405 and r.json() == {"error": f"POST /static/{'x' * 192}... (60,008 characters): method not allowed; "
                                                          f"use {r.headers['allow']}"}


def test_a_bug_is_a_json_500_with_the_headers(astronaut_png):
    calls = []

    class Breaks:
        def predict(self, rgb):  # the warm-up passes, then it breaks
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("boom")
            return []

    from ferkit.cli import setup_logging

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        handler = setup_logging()  # as `ferkit serve` logs: the bug's traceback, as an error (it was a warning, without it)
    try:
        with TestClient(create_app(Breaks()), raise_server_exceptions=False) as c:
            assert _wait_for(lambda: c.get("/health").status_code == 200)
            r = post(c, astronaut_png)
    finally:
        logging.getLogger("ferkit").removeHandler(handler)
    assert r.status_code == 500 and _headers_ok(r)
    assert r.json() == {"error": "internal error (RuntimeError); the server is still running, please report this"}
    assert "error: POST /predict failed\nTraceback (most recent call last):" in out.getvalue()
    assert "RuntimeError: boom" in out.getvalue()


def test_health_is_503_until_the_warm_up_prediction_passes(astronaut_png):
    gate = threading.Event()

    class Slow:
        def predict(self, rgb):
            gate.wait(20)
            return []

    with TestClient(create_app(Slow())) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "starting"}
        gate.set()
        assert _wait_for(lambda: c.get("/health").status_code == 200)
        assert c.get("/health").json() == {"status": "ready"}


def test_health_is_503_when_the_warm_up_fails(astronaut_png):
    class Broken:
        def predict(self, rgb):
            raise OSError("cascade file missing")

    with TestClient(create_app(Broken())) as c:
        assert _wait_for(lambda: c.get("/health").json()["status"] != "starting")
        r = c.get("/health")
        assert r.status_code == 503
        assert r.json() == {"status": "failed", "error": "the warm-up prediction failed (OSError: cascade file missing)"}
        r = post(c, astronaut_png)
        assert r.status_code == 503 and "cascade file missing" in r.json()["error"]


def test_a_models_error_names_its_file_not_its_folder_and_is_logged_without_a_traceback(astronaut_png):
    """The Predictor's errors name the model's path (an ONNX graph that gives NaN for some faces): clients were told
    the server's folders, which /version keeps to the file's name, and the warm-up's was logged with a traceback."""
    from ferkit.cli import setup_logging
    from ferkit.errors import FerkitError

    class NaNs:
        def __init__(self, after):
            self.path, self.calls, self.after = Path("/srv/models/m.onnx"), 0, after

        def predict(self, rgb):  # fails after `after` predictions
            self.calls += 1
            if self.calls > self.after:
                raise FerkitError(f"{self.path}: the ONNX model's outputs for 1 face are not probabilities")
            return []

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        handler = setup_logging()
    try:
        with TestClient(create_app(NaNs(after=1))) as c:  # the warm-up passes, a photo fails
            assert _wait_for(lambda: c.get("/health").status_code == 200)
            r = post(c, astronaut_png)
            assert r.status_code == 500
            assert r.json() == {"error": "the server cannot predict: m.onnx: the ONNX model's outputs for 1 face are not probabilities"}
        with TestClient(create_app(NaNs(after=0))) as c:  # the warm-up fails
            assert _wait_for(lambda: c.get("/health").json()["status"] != "starting")
            assert c.get("/health").json()["error"] == ("the warm-up prediction failed (FerkitError: m.onnx: the ONNX "
                                                        "model's outputs for 1 face are not probabilities)")
    finally:
        logging.getLogger("ferkit").removeHandler(handler)
    assert ("error: warm-up prediction failed: /srv/models/m.onnx: the ONNX model's outputs for 1 face are not "
            "probabilities\n") in out.getvalue() and "Traceback" not in out.getvalue()


def test_a_hog_model_on_the_onnx_backend_is_told_to_run_on_torch(tiny_hog_run, capsys):
    """It was export's message (export a CNN-only model), which is no way to serve it."""
    from ferkit.cli import main

    assert main(["serve", "--model", str(tiny_hog_run), "--backend", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "is a HOG hybrid model" in err and "run it on torch: backend='torch' (--backend torch, or leave --backend onnx out)" in err, err
    assert main(["serve", "--model", str(tiny_hog_run), "--precision", "int8"]) == 2  # (was: use --backend onnx)
    err = capsys.readouterr().err
    assert "is a HOG hybrid model" in err and "(--precision fp32 or bf16, or leave --precision out)" in err, err
    assert "--backend onnx" not in err, err


def test_precision_reaches_the_model_and_version(tiny_checkpoint):
    for asked, used in (("fp32", "fp32"), ("bf16", "bf16")):
        with TestClient(create_app(str(tiny_checkpoint), precision=asked)) as c:
            assert c.get("/version").json()["model"]["precision"] == used


def test_labels_are_the_models_own(tiny_checkpoint):
    from ferkit.checkpoint import load_checkpoint
    from ferkit.labels import FERPLUS

    clf = load_checkpoint(tiny_checkpoint)
    with TestClient(create_app(clf)) as c:
        assert len(c.get("/labels").json()["emotions"]) == 7
    clf.labels = FERPLUS  # as a FER+ model says of itself
    with TestClient(create_app(clf)) as c:
        assert c.get("/labels").json()["emotions"][-1] == "contempt"


def test_settings_from_env_are_read_as_training_configs_are():
    """Environment variables go through config.py's field check: its coercion and its words."""
    from ferkit.config import TrainConfig
    from ferkit.errors import ConfigError, FerkitError
    from ferkit.serve import Settings

    with pytest.raises(ConfigError) as config_error:
        TrainConfig(threads="many")
    shared = str(config_error.value).split("--threads ")[1]  # what the shared check says of an int field
    with pytest.raises(FerkitError) as e:
        Settings.from_env({"FERKIT_SERVE_MAX_CONNECTIONS": "many"})
    assert str(e.value) == "$FERKIT_SERVE_MAX_CONNECTIONS " + shared
    with pytest.raises(FerkitError, match=r"\$FERKIT_SERVE_MAX_CONCURRENT must be an integer or null; got '2.5'"):
        Settings.from_env({"FERKIT_SERVE_MAX_CONCURRENT": "2.5"})
    # YAML 1.1 leaves "1e-3" a string; the shared coercion makes it a number, as in a config file
    s = Settings.from_env({"FERKIT_SERVE_UPLOAD_TIMEOUT": "1e-3", "FERKIT_SERVE_MODEL": "123", "FERKIT_SERVE_THREADS": "2"})
    assert (s.upload_timeout, s.model, s.threads) == (0.001, "123", 2)  # a model named 123 stays a name
    with pytest.raises(FerkitError, match=r"^\$FERKIT_SERVE_MAX_UPLOAD: no such setting; the variables are \$FERKIT_SERVE_MODEL, "):
        Settings.from_env({"FERKIT_SERVE_MAX_UPLOAD": "1"})  # misspelt: it would change nothing


def test_serve_workers_take_no_stray_variables_from_the_shell():
    from ferkit.serve import Settings

    env = {"FERKIT_SERVE_MODEL": "fer2013-fast", "FERKIT_SERVE_TTA": "true", "PATH": "/bin"}  # left in the shell
    Settings(threads=2).set_env(env)  # as `ferkit serve --workers N` does before starting them
    assert Settings.from_env(env) == Settings(threads=2) and env["PATH"] == "/bin"


def test_settings_travel_through_environment_variables(tiny_checkpoint, monkeypatch, tmp_path):
    from ferkit.errors import FerkitError
    from ferkit.serve import ERROR_FILE_ENV, STARTUP_FAILURE, Settings, app_from_env

    s = Settings(model=str(tiny_checkpoint), max_upload_mb=2, max_upload_pixels=1000, upload_timeout=5, threads=1, max_queue=3)
    assert Settings.from_env(s.to_env()) == s
    with pytest.raises(FerkitError, match=r"\$FERKIT_SERVE_THREADS must be an integer or null; got 'many'"):
        Settings.from_env({"FERKIT_SERVE_THREADS": "many"})
    with pytest.raises(FerkitError, match=r"^\$FERKIT_SERVE_UPLOAD_TIMEOUT 0.0: must be > 0; \$FERKIT_SERVE_THREADS 0: must be >= 1$"):
        Settings.from_env({"FERKIT_SERVE_UPLOAD_TIMEOUT": "0", "FERKIT_SERVE_THREADS": "0"})  # named as set (was --threads)
    for k, v in s.to_env().items():
        monkeypatch.setenv(k, v)
    with TestClient(app_from_env()) as c:
        v = c.get("/version").json()
        assert (v["max_upload_bytes"], v["max_upload_pixels"], v["upload_timeout_s"], v["max_queue"]) == (2 * 2**20, 1000, 5, 3)
    # a worker that cannot load its model: one log line, a note for `ferkit serve`, uvicorn's start-up failure code
    monkeypatch.setenv("FERKIT_SERVE_MODEL", str(tmp_path / "missing.pt"))
    monkeypatch.setenv(ERROR_FILE_ENV, str(tmp_path / "error.txt"))
    with pytest.raises(SystemExit) as exit:
        app_from_env()
    assert exit.value.code == STARTUP_FAILURE
    assert (tmp_path / "error.txt").read_text().startswith(f"--model {tmp_path / 'missing.pt'}: no such file")  # as typed


def test_uvicorn_running_app_from_env_names_the_variables_not_the_flags(monkeypatch, caplog):
    """Under uvicorn itself (no `ferkit serve`, so no ERROR_FILE_ENV), the settings came from
    FERKIT_SERVE_* variables: a model that cannot be loaded names its variable, not --model."""
    from ferkit.serve import ERROR_FILE_ENV, STARTUP_FAILURE, app_from_env
    from ferkit.settings import flags_as_variables

    monkeypatch.delenv(ERROR_FILE_ENV, raising=False)
    for k in [k for k in os.environ if k.startswith("FERKIT_SERVE_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("FERKIT_SERVE_MODEL", "no-such-model")
    with pytest.raises(SystemExit) as exit:
        app_from_env()
    assert exit.value.code == STARTUP_FAILURE
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["error: $FERKIT_SERVE_MODEL no-such-model: no such file or folder, and not a bundled model "
                      "(fer2013, fer2013-fast, ferplus, ferplus-fast)"], errors
    # every serve flag is renamed (--no-tta as the switch's value); a quoted command's flags and other flags stay
    assert flags_as_variables("run it with --precision auto, --backend onnx or --no-tta, not --device; "
                              "'ferkit export X --onnx Y --no-tta'") == (
        "run it with $FERKIT_SERVE_PRECISION auto, $FERKIT_SERVE_BACKEND onnx or $FERKIT_SERVE_TTA false, not --device; "
        "'ferkit export X --onnx Y --no-tta'")
    # ... a quoted command whose paths are quoted for a shell too ("'" opens one after a space): its flags stay
    command = """'ferkit export '/my runs/it'"'"'s.pt' --onnx 'a b.onnx' --no-tta'"""
    assert (flags_as_variables(f"re-export it with {command}, or --no-tta")
            == f"re-export it with {command}, or $FERKIT_SERVE_TTA false")


def test_an_upload_limit_of_no_bytes_or_beyond_a_tebibyte_is_one_line(capsys):
    """(--max-upload-mb 1e308 overflowed int() and 1e-9 made 0 bytes, create_app's ValueError: tracebacks both)"""
    from ferkit.cli import main
    from ferkit.settings import Settings

    for mb in ("1e308", "1e-9"):
        assert main(["serve", "--port", "0", "--max-upload-mb", mb]) == 2
        assert capsys.readouterr().err == (f"error: --max-upload-mb {float(mb):g}: must be at least 0.000001 (a byte) "
                                           "and at most 1,048,576 (a TiB)\n")
    assert Settings(max_upload_mb=0.000001).max_upload_bytes == 1 and Settings(max_upload_mb=3).max_upload_bytes == 3 * 2**20


def test_busy_port_is_a_one_line_error(capsys):
    from ferkit.cli import main

    with _free_socket() as s:
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"error: port {port} is in use; pick another with --port\n"
    assert main(["serve", "--port", "0", "--upload-timeout", "0", "--workers", "0"]) == 2
    assert capsys.readouterr().err == "error: --upload-timeout 0.0: must be > 0\n"
    many = (os.cpu_count() or 1) + 1  # 1000 worker processes, each loading a model, filled the memory
    assert main(["serve", "--port", "0", "--workers", str(many)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --workers {many}: must be 1..{many - 1} (this machine's CPUs")


def test_workers_without_a_temporary_folder_are_a_one_line_error(capsys, monkeypatch, tmp_path):
    """`ferkit serve --workers N` makes a temporary folder for its workers' start-up errors: with none that takes
    a file (the whole disk full), or TMPDIR's folder gone since tempfile found it, that was a traceback."""
    import errno
    import tempfile

    from ferkit.cli import main

    def none_usable():  # what tempfile raises then
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found in ['/tmp', '/var/tmp']")

    real = tempfile.gettempdir
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tempfile, "gettempdir", none_usable)
    assert main(["serve", "--port", "0", "--workers", "2"]) == 2
    assert capsys.readouterr().err == ("error: --workers 2: cannot make a temporary folder for the workers' start-up errors (No "
                                       "usable temporary directory found in ['/tmp', '/var/tmp']); free some space in one of "
                                       "those folders, or set TMPDIR to a folder with room\n")
    monkeypatch.setattr(tempfile, "gettempdir", real)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    assert main(["serve", "--port", "0", "--workers", "2"]) == 2
    assert capsys.readouterr().err == (f"error: --workers 2: cannot make a temporary folder for the workers' start-up errors in "
                                       f"{tmp_path / 'gone'} (No such file or directory); fix the folder, or set TMPDIR to a "
                                       "folder with room\n")


@pytest.mark.parametrize("port", [70000, -1])
def test_port_out_of_range_is_a_one_line_error(capsys, port):
    from ferkit.cli import main

    assert main(["serve", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (f"error: --port {port}: must be between 1 and 65535 (0: any free port); "
                                       "pick another with --port\n")


def test_a_host_that_cannot_be_named_or_bound_is_a_one_line_error(capsys):
    """(an empty label raised UnicodeError from getaddrinfo; --port 0 on another machine's address, OSError)"""
    from ferkit.cli import main

    assert main(["serve", "--host", "a..b", "--port", "8123"]) == 2
    assert capsys.readouterr().err == ("error: --host a..b: cannot resolve it (not a valid host name); use 127.0.0.1, "
                                       "0.0.0.0 or an address of this machine\n")
    assert main(["serve", "--host", "192.0.2.1", "--port", "0"]) == 2  # TEST-NET-1: never this machine's
    err = capsys.readouterr().err
    assert err.startswith("error: --host 192.0.2.1 --port 0: cannot listen there (") and len(err.splitlines()) == 1


# ---------------------------------------------------------------- web page in headless Chromium


def _free_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@contextmanager
def serving(app, settings=None):
    """The real server (uvicorn) for `app` on a free loopback port, in a thread, with `ferkit serve`'s
    connection bounds (settings: Settings' defaults): yields its URL."""
    import uvicorn

    from ferkit.serve import Settings, uvicorn_options

    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_options(settings or Settings())))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert _wait_for(lambda: server.started), "uvicorn did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def live_server(app):
    with serving(app) as url:
        yield url


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
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CSP violations show
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _csp_violations(browser) -> list[str]:
    """Console messages about the Content-Security-Policy since the last call (reading empties the log)."""
    return [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]


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


def test_real_server_answers_408_to_a_stalled_upload(app):
    """A client that sends part of its body and stalls is answered 408 at the deadline, saying how
    much of it arrived, and the connection is closed with the answer (not held until the 10 s header timeout)."""
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + b"x" * 1000
    with serving(create_app(app.state.predictor, upload_timeout=1)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                      b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" + part)
            t = time.monotonic()
            answer = s.recv(4096)
            waited = time.monotonic() - t
            while chunk := s.recv(4096):  # the rest, until the server closes the connection
                answer += chunk
            closed = time.monotonic() - t
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert f"within 1 s ({len(part):,} of the 100,000 bytes its Content-Length declares arrived)".encode() in answer
    assert b"nosniff" in answer and b"connection: close" in answer.lower()
    assert 0.5 < waited < 5 and closed < 5


def _closed_after(socks: list[socket.socket], limit: float) -> tuple[list[float | None], list[bytes]]:
    """Seconds until the server closed each socket (None: still open after `limit`), and what it sent."""
    import selectors

    t, sel = time.monotonic(), selectors.DefaultSelector()
    when, got = [None] * len(socks), [b""] * len(socks)
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    while sel.get_map() and time.monotonic() - t < limit:
        for key, _ in sel.select(0.1):
            i = key.data
            try:
                data = socks[i].recv(4096)
            except ConnectionResetError:
                data = b""
            got[i] += data
            if not data:
                when[i] = time.monotonic() - t
                sel.unregister(socks[i])
    sel.close()
    return when, got


def test_idle_and_half_open_connections_are_capped_and_dropped(app):
    """300 connections that never finish (or never start) their headers: the ones beyond
    --max-connections get a 503 and are closed at once, the rest at --header-timeout; then the
    server answers /health again."""
    import httpx

    from ferkit.serve import Settings

    n, cap, timeout = 300, 50, 3
    with serving(app, Settings(max_connections=cap, header_timeout=timeout)) as url:
        port, socks = int(url.rsplit(":", 1)[1]), []
        try:
            for i in range(n):
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                if i % 2:  # half send the start of a request whose headers never end
                    socks[-1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            when, got = _closed_after(socks, 20)
        finally:
            for s in socks:
                s.close()
        assert None not in when, f"{when.count(None)} of {n} connections still open after 20 s"
        early = [i for i, t in enumerate(when) if t < timeout - 1]
        assert len(early) >= n - cap - 5, f"only {len(early)} closed at once: no connection cap"
        assert all(got[i].startswith(b"HTTP/1.1 503") and b"too many open connections" in got[i] for i in early)
        assert sum(t >= timeout - 1 for t in when) >= cap - 5  # the ones under the cap: at the header deadline
        assert _wait_for(lambda: httpx.get(url + "/health", timeout=5).status_code == 200, 30)


def test_clients_that_stop_reading_their_response_are_dropped(app):
    """A client that asks for a large file and reads nothing held its socket and the open file for
    ever (two descriptors each: enough of them starved the server). They are dropped once the
    response has stalled for --header-timeout; the connection cap is exact (uvicorn's own plain-text
    503 came one connection early)."""
    import httpx

    from ferkit.serve import Settings

    def fds():
        return len(os.listdir("/proc/self/fd"))

    n, timeout = 20, 2
    with serving(app, Settings(header_timeout=timeout, max_connections=n + 1)) as url:
        port, socks, before = int(url.rsplit(":", 1)[1]), [], fds()
        try:
            for _ in range(n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", port))
                socks.append(s)
            health = httpx.get(url + "/health", timeout=5)  # the (n+1)th connection: within the cap
            assert health.status_code == 200 and health.json()["status"] == "ready"
            for s in socks:
                s.sendall(b"GET /static/swagger/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n" * 8)  # 12 MB unread
            assert _wait_for(lambda: fds() - before <= n, timeout + 10), f"{fds() - before - n} server descriptors held"
        finally:
            for s in socks:
                s.close()


def test_a_slow_reader_gets_its_whole_response(app):
    """A client that reads slower than the responses are written, for longer than --header-timeout, is
    not cut off: its connection goes only once all is sent, or when it stops taking any. (Three
    pipelined: more than the kernel's send buffer, so some waits in the server at the deadline.)"""
    from ferkit.serve import Settings

    with serving(app, Settings(header_timeout=1)) as url:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting: it sets the window)
            s.settimeout(10)
            s.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            s.sendall(b"GET /static/swagger/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            got, t0 = b"", time.monotonic()
            while time.monotonic() - t0 < 3:  # about 40 KB/s for three header deadlines
                got += s.recv(2048)
                time.sleep(0.05)
            while chunk := s.recv(65536):  # to the end: the server closes once all is sent and the deadline is past
                got += chunk
    bodies = []
    while got:
        head, got = got.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        bodies.append(len(got[:length]))
        got = got[length:]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2] > 1_000_000, bodies


def test_a_pipelined_request_is_not_cut_off_by_the_header_deadline():
    """A second request sent behind the first (pipelined) has its headers in when the first response
    ends: the header deadline armed then timed out the second's response half way."""
    import asyncio

    from ferkit.serve import Settings

    async def slow_app(scope, receive, send):  # /slow answers after twice the header deadline
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(2)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serving(slow_app, Settings(header_timeout=1)) as url:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as s:
            s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while got.count(b"ok") < 2 and (chunk := s.recv(4096)):
                got += chunk
    assert got.count(b"HTTP/1.1 200") == 2, got


def test_the_photos_of_clients_that_hung_up_are_not_predicted(astronaut_png):
    """Clients that send a photo and hang up before their turn: their predictions ran all the same,
    one after another, and a client sent behind them waited for all of them (39 s for 150)."""
    import httpx

    calls = []

    class Slow:
        def predict(self, rgb):
            calls.append(1)
            time.sleep(0.3)
            return []

    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
            + astronaut_png + b"\r\n--b--\r\n")
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with serving(create_app(Slow(), max_concurrent=1)) as url:
        assert _wait_for(lambda: httpx.get(url + "/health", timeout=5).status_code == 200)
        calls.clear()  # the warm-up's
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as s:
                s.sendall(head + body)
                time.sleep(0.05)
        t0 = time.monotonic()
        r = httpx.post(url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
        waited = time.monotonic() - t0
    assert r.status_code == 200 and len(calls) <= 3 and waited < 2.5, (len(calls), waited)


def test_a_photo_waits_for_its_turn_at_most_queue_timeout(astronaut_png):
    """Behind more photos than the server gets through, a request is answered 503 with Retry-After
    after --queue-timeout, instead of waiting on behind a queue that only grows."""
    import httpx

    gate = threading.Event()

    class Stuck:
        def predict(self, rgb):
            if warmed.is_set():
                gate.wait(20)
            warmed.set()
            return []

    warmed = threading.Event()
    with serving(create_app(Stuck(), max_concurrent=1, queue_timeout=0.5)) as url:
        assert _wait_for(lambda: httpx.get(url + "/health", timeout=5).status_code == 200)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
            time.sleep(0.5)  # the first holds the one prediction thread
            t0 = time.monotonic()
            r = httpx.post(url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
            waited = time.monotonic() - t0
            gate.set()
            assert first.result().status_code == 200
        again = httpx.post(url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
        assert again.status_code == 200  # the turn given up on was not lost
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and waited < 5, (r.status_code, waited)
    assert r.json()["error"].startswith("the server is busy: no prediction was free within 0.5 s (--queue-timeout)")


def test_photos_beyond_max_queue_are_503_before_their_upload_is_read(astronaut_png):
    """Each photo uploading or waiting its turn holds up to 1.1 MB of memory (or --max-upload-mb of disk), and only
    --max-connections bounded how many: 300 queued 0.9 MB photos raised the RSS by 360 MB. Beyond --max-queue a
    photo is refused at once, its body unread, and the count goes down as photos are answered."""
    import httpx

    gate, warmed, predicting = threading.Event(), threading.Event(), threading.Event()

    class Stuck:
        def predict(self, rgb):
            if warmed.is_set():
                predicting.set()
                gate.wait(20)
            warmed.set()
            return []

    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n")
    app = create_app(Stuck(), max_concurrent=1, max_queue=2)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        assert _wait_for(lambda: httpx.get(url + "/health", timeout=5).status_code == 200)
        with ThreadPoolExecutor(1) as pool, socket.create_connection(("127.0.0.1", port), timeout=5) as uploading:
            first = pool.submit(httpx.post, url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
            assert predicting.wait(20)  # the first is being predicted
            uploading.sendall(head + b"--b\r\n")  # the second is still uploading
            assert _wait_for(lambda: app.state.photos.held == 2)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as third:
                third.sendall(head)  # no byte of its body
                answer = b"".join(iter(lambda: third.recv(65536), b""))  # to the close
            gate.set()
            assert first.result().status_code == 200
        again = httpx.post(url + "/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=30)
        assert again.status_code == 200  # the photos answered (or dropped) no longer count
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in status and b"connection: close" in status, answer
    assert b"2 photos are already uploading or waiting for a prediction (--max-queue)" in body, answer


def test_a_request_http_cannot_parse_gets_a_json_400(live_server):
    """(uvicorn's own answer was plain text "Invalid HTTP request received.", without the security headers)"""
    import json

    port = int(live_server.rsplit(":", 1)[1])
    for raw in (b"GET /health\r\n\r\n", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(raw)
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head, got
        assert b"content-security-policy" in head.lower()
        assert json.loads(body)["error"].startswith("malformed HTTP request: check its request line")


def test_headers_over_the_limit_get_a_json_431_not_a_400(live_server):
    """h11 refuses a request whose line and headers outgrow its 16 KB buffer and suggests 431; uvicorn
    answered 400 "malformed HTTP request", which blamed the request's syntax for its size."""
    import json

    import httpx

    port = int(live_server.rsplit(":", 1)[1])
    start, cookie = b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: ", b"a" * 100_000
    # headers still arriving (h11's own check), and whole in one read (which h11 let through: a 200)
    for parts in ((start + cookie[:20_000],), (start + cookie + b"\r\n\r\n",)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for part in parts:
                s.sendall(part)
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), got[:300]
        assert b"content-type: application/json" in head and b"nosniff" in head
        assert json.loads(body)["error"].startswith("the request line and headers are over 16 KB (the server's limit)")
    assert _wait_for(lambda: httpx.get(live_server + "/health", headers={"Cookie": "a" * 15_000}).status_code == 200, 60)


def test_a_chunked_body_in_tiny_chunks_is_refused_as_it_arrives(live_server, astronaut_png):
    """h11 parses a chunked body a chunk at a time in Python (~16-20 us each): two clients sending 1-byte chunks
    (6 bytes on the wire) held the event loop so that /health took 25 s, until --upload-timeout ended them. Chunks
    must average 1 KB after the first 64: 1-byte ones get a JSON 400 at once, and a photo in 1 KB chunks, its
    multipart headers and boundary sent apart, is read as before."""
    import json

    import httpx

    port = int(live_server.rsplit(":", 1)[1])
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(part), part) + b"1\r\nx\r\n" * 2000)  # and no end
        got = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request") and b"content-type: application/json" in head, got[:300]
    assert json.loads(body)["error"].startswith("a chunked body in chunks of 2 bytes on average (65 chunks): the server "
                                                "parses each as it would 1,024 bytes of data, so they must average at least")

    def in_chunks():
        yield part
        yield from (astronaut_png[i:i + 1024] for i in range(0, len(astronaut_png), 1024))
        yield from (b"\r\n", b"--b--\r\n")

    r = httpx.post(live_server + "/predict", content=in_chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"},
                   timeout=60)
    assert r.status_code == 200 and r.json()["count"] >= 1, r.text


def test_a_post_without_content_length_is_411_even_when_the_client_closes_its_side(live_server, astronaut_png):
    """An HTTP/1.0 POST whose photo ends where the client shuts its side (no Content-Length): h11 read its
    body as empty and the shutdown dropped the answer, so the client got nothing at all. Now a JSON 411
    naming the header and the fix, after a small photo and a big one (whose rest arrives after the answer)."""
    import json

    port = int(live_server.rsplit(":", 1)[1])
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    for version, photo in ((b"1.0", astronaut_png), (b"1.1", astronaut_png), (b"1.0", astronaut_png * 4)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /predict HTTP/" + version + b"\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n"
                      + head + photo + b"\r\n--b--\r\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        head_, _, body = got.partition(b"\r\n\r\n")
        assert head_.startswith(b"HTTP/1.1 411 Length Required") and b"nosniff" in head_, (version, len(photo), got[:300])
        error = json.loads(body)["error"]
        assert error.startswith("POST without a Content-Length header") and "send the photo's size in Content-Length" in error


def test_failed_accepts_log_one_line_not_a_traceback_each(caplog):
    """Out of file descriptors, asyncio fails an accept a second: while the app runs, that is one
    warning a minute, not a traceback each time."""
    import asyncio
    import errno

    from ferkit import serve

    class NoFaces:
        def predict(self, rgb):
            return []

    app = create_app(NoFaces())

    async def overloaded():
        async with app.router.lifespan_context(app):
            for _ in range(5):
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "socket.accept() out of system resource",
                     "exception": OSError(errno.EMFILE, "Too many open files")})

    saved, serve._out_of_fds.last = serve._out_of_fds.last, -serve.WARN_EVERY  # as if nothing was logged yet
    try:
        with caplog.at_level("WARNING"):
            asyncio.run(overloaded())
    finally:
        serve._out_of_fds.last = saved
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is None, caplog.text
    assert "Too many open files" in caplog.text and "--max-connections" in caplog.text


def test_workers_serve_from_several_processes(tiny_checkpoint, astronaut_png, tmp_path):
    """`ferkit serve --workers 2`: two processes with a model each answer on one port; a bad model
    stops it all with one error line (exit 2)."""
    import subprocess
    import sys

    import httpx

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with _free_socket() as s:
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    log = (tmp_path / "serve.log").open("w+")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen(cmd + ["--model", str(tiny_checkpoint)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        def ready_or_ended():
            try:
                return proc.poll() is not None or httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        assert _wait_for(ready_or_ended, 180) and proc.poll() is None, \
            f"no ready answer from /health within 180 s: {(tmp_path / 'serve.log').read_text()}"
        r = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.png", astronaut_png, "image/png")}, timeout=60)
        assert r.status_code == 200 and r.json()["count"] == 1
        children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == proc.pid
                    and b"spawn_main" in (p / "cmdline").read_bytes()]  # not multiprocessing's resource tracker
        assert len(children) == 2
    finally:
        proc.terminate()
        proc.wait(30)
        out = (tmp_path / "serve.log").read_text()
    share = max(1, (os.cpu_count() or 1) // 2)  # each worker's share of the CPUs
    assert f"2 worker processes, each with {share} concurrent predictions on {share} threads" in out, out

    bad = subprocess.run(cmd + ["--model", str(tmp_path / "missing.pt")], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith(f"error: --model {tmp_path / 'missing.pt'}: no such file or folder")
    assert "Traceback" not in bad.stderr


def _ppid(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


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
    assert _csp_violations(browser) == []


def test_docs_page_works_under_the_csp(browser, live_server):
    """Swagger UI, from this server's files, lists the API without breaking the security policy."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _csp_violations(browser)  # start with an empty log
    browser.get(live_server + "/docs")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/predict" in paths and "/health" in paths
    assert _csp_violations(browser) == []


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


@pytest.mark.parametrize("env,tta", [({}, False), ({"FERKIT_SERVE_TTA": "true"}, True)])
def test_the_mirror_setting_reaches_the_model_and_is_reported(env, tta):
    """--tta/--no-tta (FERKIT_SERVE_TTA): the default model runs without its mirror, which buys it under 0.2 points."""
    from ferkit.serve import Settings, app_from_settings

    with TestClient(app_from_settings(Settings.from_env(env))) as c:
        assert c.get("/version").json()["model"]["tta"] is tta


def test_the_banner_names_a_port_0_server_by_its_real_port_and_brackets_an_ipv6_host(monkeypatch, capsys):
    """(`--port 0` printed http://127.0.0.1:0/, and --host ::1 an address no browser takes)"""
    import uvicorn

    import ferkit.serve as serve_module
    from ferkit.errors import FerkitError

    ran = {}
    monkeypatch.setattr(serve_module, "app_from_settings", lambda s: "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **k: ran.update(host=host, port=port))
    serve_module.serve("127.0.0.1", 0)
    assert ran["port"] > 0 and f"http://127.0.0.1:{ran['port']}/" in capsys.readouterr().out
    if socket.has_ipv6:
        try:
            serve_module.serve("::1", 0)
        except FerkitError:  # no IPv6 loopback on this machine
            return
        assert f"http://[::1]:{ran['port']}/" in capsys.readouterr().out


def test_an_uploads_file_name_is_quoted_printable_and_short(client):
    """(a file name came back whole in the error: any length, with its newlines and terminal escapes)"""
    name = "a\x1b[31m\n\u202e" + "x" * 1000 + ".jpg"
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode() +
            b'"\r\nContent-Type: image/jpeg\r\n\r\nnot an image\r\n--b--\r\n')
    r = client.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 415
    assert r.json()["error"] == ("a?[31m??" + "x" * 192 + "... (1,012 characters): not an image, or a format ferkit does not read; "
                                 "give a JPEG, PNG, WebP, BMP, GIF or TIFF file")
    assert client.get("/%1b[2J").json()["error"].startswith("/?[2J: not found")  # a path, as the 404 quotes it


def test_an_rfc_5987_file_name_is_not_read_as_percent_codes_and_a_plain_utf8_one_is(client):
    """RFC 7578 (4.2) forbids filename*= (RFC 5987/6266) in multipart/form-data, and python-multipart
    ignores it: beside a plain filename, that one is the name; alone, the part is a text field (400, no
    filename). Either way no percent codes are quoted back; a plain filename in UTF-8 comes back decoded."""
    def error(disposition: bytes) -> tuple[int, str]:
        body = (b'--b\r\nContent-Disposition: form-data; name="file"; ' + disposition +
                b'\r\nContent-Type: image/jpeg\r\n\r\nnot an image\r\n--b--\r\n')
        r = client.post("/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        return r.status_code, r.json()["error"]

    status, text = error(b"filename=\"naive.jpg\"; filename*=UTF-8''na%C3%AFve.jpg")
    assert status == 415 and text.startswith("naive.jpg: not an image"), text
    status, text = error('filename="naïve.jpg"'.encode())
    assert status == 415 and text.startswith("naïve.jpg: not an image"), text
    for disposition in (b"filename*=UTF-8''na%C3%AFve.jpg", b"filename*=UTF-8''%ZZ.jpg", b"filename*=bogus''x.jpg"):
        status, text = error(disposition)
        assert status == 400 and text.startswith("the 'file' part has no filename") and "%" not in text, text
