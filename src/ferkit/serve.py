"""`ferkit serve`: a REST API and a web page that find faces in a photo and name their emotions.

    POST /predict   multipart field `file` -> {"faces": [records], "width", "height", "count"[, "message"]}
    GET  /health    200 {"status": "ready"} once a warm-up prediction passed; 503 before, or if it failed
    GET  /version   ferkit version, the model (name, file name, epochs, validation accuracy, the faces
                    it takes: input size and channels), the limits
    GET  /labels    the model's emotions and their plot colours (the page draws with these)
    GET  /          the web page (src/ferkit/static); OpenAPI docs at /docs (Swagger UI served from
                    this server, from the fastapi-offline package), the spec at /openapi.json

The model loads once per process, in create_app. Predictions run off the event loop in
`max_concurrent` worker threads (default: one per CPU), so requests overlap but memory stays
bounded. `ferkit serve --workers N` runs N such processes on one port (uvicorn's supervisor),
each building its app with `app_from_env` from FERKIT_SERVE_* variables (Settings).
Every error is JSON {"error": "..."}: 400 no file (or two, or a second file of any name, or a body cut short, or sent in
chunks under MIN_CHUNK_BYTES on average), 408 upload too slow,
411 a POST without Content-Length (or Transfer-Encoding), 431 a request line and headers over 16 KB,
413 too many bytes or pixels, 415 not an image (or empty), 422 corrupt, 503 not ready, busy (over --max-queue photos
held, or no prediction free within --queue-timeout) or unable to store the upload, 500 a bug.
Every response carries security headers (SECURITY_HEADERS): the pages run only their own files.
Connections are bounded (GuardedH11Protocol): at most --max-connections open per process (the
next ones get a 503 and are closed), a request's headers must arrive within --header-timeout
seconds, and a client that stops reading its response for as long is dropped, so idle, half-open
or unread connections cannot hold the server's file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import json
import logging
import math
import os
import socket
import struct
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

import h11
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # (uvicorn imports it from there too)
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.routing import Match
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import FerkitError, ImageError, quoted
from .files import temp_folder, write_fix
from .labels import EMOTIONS, colors
from .settings import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_UPLOAD_TIMEOUT,
    Settings,
    flags_as_variables,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SWAGGER_UI = files("fastapi_offline") / "static"  # swagger-ui-bundle.js and .css, shipped in the wheel
FD_RESERVE = 128  # file descriptors kept for the model, logs and the listening socket
FDS_PER_CONNECTION = 2  # its socket, and the temporary file of an upload over 1 MB (or of a static file sent)
WARN_EVERY = 60.0  # seconds between two warnings about the same overload (full, out of descriptors)
TRIM_PIXELS = 2_000_000  # after photos this large, hand freed memory back to the OS (release_memory)
TRIM_HELD = 16  # ... and when the photos held (_Photos) fall to none after a burst of this many at once
FILENAME_REQUIRED = ("the part's Content-Disposition must name a filename (form-data; name=\"file\"; "
                     "filename=\"photo.jpg\"); without one it is a text field, not a file")
NO_FILENAME = ("the 'file' part has no filename, so it arrived as a text field, not as a photo; send it as a file, "
               "e.g. curl -F file=@photo.jpg http://HOST:PORT/predict")
MAX_FIELDS = 4  # text fields a /predict form may carry (none is read; a page's form may add a token or two)
MAX_FIELD_BYTES = 16 * 2**10  # the bytes of each (kept in memory while the request waits its turn: starlette's 1 MB allowed 4 MB)
MULTIPART_SLACK = 64 * 2**10  # room for multipart headers around the file in the request body
STATUS = {"not_image": 415, "corrupt": 422, "too_large": 413, "not_found": 422}  # ImageError.reason -> HTTP
STARTUP_FAILURE = 3  # a worker's exit code when it cannot build the app: uvicorn's supervisor then stops
ERROR_FILE_ENV = "_FERKIT_SERVE_ERROR_FILE"  # where a worker leaves its start-up error for `ferkit serve`

# The pages load only this server's own scripts, styles and images (Swagger UI's icons are data:
# URIs); nothing inline, no frames, no plugins. The page's scripts set styles through the DOM
# (element.style), which style-src does not restrict.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def ferkit_version() -> str:
    try:
        return version("ferkit")
    except PackageNotFoundError:
        return "unknown"


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _multipart_error(e: MultiPartException) -> str:
    """A multipart body the parser refused, as an error message with the fix. Starlette words every
    parse error of python-multipart as "Invalid multipart data." (its cause says which); its own
    refusals (no boundary, no name, too many fields) say what is wrong already."""
    cause, why = e.__cause__, e.message.rstrip(".")
    if why.startswith("Too many files"):  # (_OnePhotoRequest's limit)
        why = "several files in one request: send one photo per request"
    elif why.startswith("Too many fields"):
        why = f"over {MAX_FIELDS} text fields in one request: /predict reads only the photo; send it alone"
    elif why.startswith(("Part exceeded maximum size", "Field exceeded maximum size")):  # (multipart, urlencoded)
        why = (f"a text field over {MAX_FIELD_BYTES // 2**10} KB: /predict reads only the photo, sent as a file (a part "
               "without a filename is a text field)")
    try:  # (python-multipart before 0.0.13 is the module `multipart`, and has no header limits)
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import DEFAULT_MAX_HEADER_COUNT, DEFAULT_MAX_HEADER_SIZE
    except ImportError:
        FormParserError = DEFAULT_MAX_HEADER_COUNT = DEFAULT_MAX_HEADER_SIZE = None
    if FormParserError is not None and isinstance(cause, FormParserError):
        why = f"malformed multipart body ({cause})"
        if str(cause).startswith("Maximum header size"):
            why = (f"a part's header line is over {DEFAULT_MAX_HEADER_SIZE:,} bytes (the multipart parser's limit), "
                   "e.g. a file name thousands of characters long: shorten it")
        elif str(cause).startswith("Maximum header count"):
            why = (f"a part has over {DEFAULT_MAX_HEADER_COUNT} header lines (the multipart parser's limit); "
                   "send only its Content-Disposition and Content-Type")
    return f"{why}; POST the photo as multipart/form-data field 'file', e.g. curl -F file=@photo.jpg http://HOST:PORT/predict"


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _cannot_store_upload(e: OSError) -> JSONResponse:
    """The server could not spool an upload to its temporary file (a full disk, out of descriptors, a file
    size limit): its fault, not the request's, so a 503 and a warning, not FastAPI's 400 "There was an
    error parsing the body" with nothing in the log."""
    where = temp_folder()  # None: none takes a file, which e says, naming those tried (asked of tempfile, a 500)
    if where is None:
        _cannot_store.warn(f"cannot store uploads over 1 MB: no temporary folder takes a file ({e.strerror or e}): they get "
                           "a 503; free space in one of those folders, or set TMPDIR to a folder with room")
    else:
        _cannot_store.warn(f"cannot store uploads over 1 MB in {where} ({e.strerror or e}): they get a 503; free space "
                           "there (or set TMPDIR), or raise the open-file or file-size limit (ulimit -n, -f)")
    why = "no temporary folder takes a file" if where is None else e.strerror or e  # (the folders are the server's own)
    return _error(503, f"the server cannot store the upload ({why}); try again later", {"Retry-After": "60", "Connection": "close"})


@functools.cache
def _malloc_trim():
    return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only; None elsewhere (musl, macOS)


def release_memory() -> None:
    """Hand freed heap memory back to the OS. glibc keeps the blocks that worker threads freed in
    their arenas (a few 40-megapixel photos left ~1 GB resident); malloc_trim returns them (~1 ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# ---------------------------------------------------------------- middleware


class SecurityHeaders:
    """ASGI middleware, the outermost: adds SECURITY_HEADERS to every response (413s and 408s of
    UploadGuard included), and answers an unexpected exception with a logged JSON 500."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in have]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as e:
            log.exception("%s %s failed", quoted(scope.get("method")), quoted(scope.get("path")))
            if not started:  # else the client sees the connection drop: the response was half sent
                await _error(500, f"internal error ({type(e).__name__}); the server is still running, "
                                  "please report this")(scope, receive, send_with_headers)


class _Refused(Exception):
    """Raised from UploadGuard's receive() to stop the app reading a refused body."""


class _Body:
    """What UploadGuard saw of a request's body (scope[BODY_KEY]): the bytes that arrived, the
    Content-Length declared, and for multipart/form-data whether its closing boundary (--BOUNDARY--)
    arrived. A body that ends short of either was cut off (a dropped connection, a client or proxy
    that sent less than it declared): the multipart parser then finds no file, which is the wrong story."""

    def __init__(self, headers: dict):
        length, self.seen, self.done, self.closed, self.tail = headers.get(b"content-length"), 0, False, False, b""
        chunked = b"transfer-encoding" in headers  # its chunks frame the body; a Content-Length beside it is ignored (RFC 9112)
        self.declared = int(length) if length is not None and length.isdigit() and not chunked else None
        self.delimiter = None  # b"--BOUNDARY--" of a multipart body
        ctype = headers.get(b"content-type", b"")
        if ctype.lower().startswith(b"multipart/"):
            from python_multipart.multipart import parse_options_header

            boundary = parse_options_header(ctype)[1].get(b"boundary")
            self.delimiter = b"--" + boundary + b"--" if boundary else None

    def add(self, chunk: bytes, last: bool) -> None:
        self.seen, self.done = self.seen + len(chunk), last
        if self.delimiter and not self.closed and chunk:  # (a delimiter may straddle two chunks)
            text = self.tail + chunk
            self.closed = self.delimiter in text
            self.tail = text[-(len(self.delimiter) - 1):]

    def cut_short(self) -> str | None:
        """Why the body is incomplete, as an error message with the fix, or None (also while it is
        still arriving: a parser that stopped early, at a malformed part, has not read it all)."""
        if not self.done:
            return None
        again = "send the whole photo again, e.g. curl -F file=@photo.jpg http://HOST:PORT/predict"
        if self.declared is not None and self.seen < self.declared:
            return (f"upload cut short: {self.seen:,} of the {self.declared:,} bytes its Content-Length declares "
                    f"arrived; {again}")
        if self.delimiter and not self.closed and self.seen:  # (no body at all: no file, as the route says)
            return (f"upload cut short or malformed: the multipart body ({self.seen:,} bytes) ends before its closing "
                    f"boundary {self.delimiter.decode('latin-1')}; {again}")
        return None


BODY_KEY = "ferkit.body"  # the request scope's _Body, set by UploadGuard


def cut_short(request: Request) -> str | None:
    """_Body.cut_short of the request's body, once it has been read; None without UploadGuard."""
    body = request.scope.get(BODY_KEY)
    return body.cut_short() if body is not None else None


class UploadGuard:
    """ASGI middleware: refuse a request body over `limit` bytes (413) or that has not fully arrived
    `timeout` seconds after the request started (408), without waiting for the rest of it.

    A Content-Length over the limit is refused before any body is read; otherwise the bytes are
    counted as they arrive (chunked uploads too). The deadline covers slow and stalled uploads,
    which uvicorn's keep-alive timeout does not: each read of the body waits only until it."""

    def __init__(self, app, limit: int, upload_limit: int, timeout: float):
        self.app, self.limit, self.upload_limit, self.timeout = app, limit, upload_limit, timeout

    # A refusal closes the connection once answered: the rest of the body may still be on its way (or
    # never come), so the connection cannot carry another request; left open, it would be held until
    # the keep-alive timeout.
    CLOSE = {"connection": "close"}

    def _too_large(self):
        return _error(413, f"upload too large: the limit is {_mb(self.upload_limit)}; send a smaller photo "
                           "(or start the server with a larger --max-upload-mb)", self.CLOSE)

    def _too_slow(self, body: _Body):
        got = (f" ({body.seen:,} of the {body.declared:,} bytes its Content-Length declares arrived)"
               if body.declared is not None else f" ({body.seen:,} bytes arrived)")
        return _error(408, f"upload too slow: the whole photo must arrive within {self.timeout:g} s{got}; "
                           "send a smaller photo or use a faster connection (or start the server with "
                           "a longer --upload-timeout)", self.CLOSE)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = scope[BODY_KEY] = _Body(dict(scope["headers"]))
        if body.declared is not None and body.declared > self.limit:
            return await self._too_large()(scope, receive, send)
        deadline = time.monotonic() + self.timeout
        body_done, refusal, started = False, None, False

        async def guarded_receive():
            nonlocal body_done, refusal
            if body_done:  # later reads wait for a disconnect (e.g. while streaming a response): no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                refusal = self._too_slow(body)
                raise _Refused() from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                body.add(message.get("body", b""), body_done)
                if body.seen > self.limit:
                    refusal = self._too_large()
                    raise _Refused()
            return message

        async def guarded_send(message):
            nonlocal started
            if refusal is not None:  # whatever the app made of the cut-off body, the answer is the refusal
                return
            started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Refused:
            pass
        except StarletteHTTPException:  # FastAPI turns a failed body read into a 400 "error parsing the body"
            if refusal is None:
                raise
        if refusal is not None and not started:
            await refusal(scope, receive, send)


# ---------------------------------------------------------------- connections (uvicorn's protocol, guarded)


class _Rarely:
    """A warning logged at most once per WARN_EVERY seconds: an overload repeats it per connection."""

    def __init__(self):
        self.last = -WARN_EVERY

    def warn(self, message: str) -> None:
        if time.monotonic() - self.last >= WARN_EVERY:
            self.last = time.monotonic()
            log.warning(message)


_full, _out_of_fds, _cannot_store, _queue_full = _Rarely(), _Rarely(), _Rarely(), _Rarely()


def _raw_error(status: str, message: str, *extra: bytes) -> bytes:
    """A JSON error response as bytes, for the protocol to write where no app runs (a connection over the
    cap, a request h11 cannot parse); the connection is closed after it."""
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status}".encode(), b"content-type: application/json", b"connection: close", *extra,
            b"content-length: %d" % len(body)]
    head += [f"{k}: {v}".encode() for k, v in SECURITY_HEADERS.items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


BUSY = _raw_error("503 Service Unavailable", "the server has too many open connections; try again in a few seconds",
                  b"retry-after: 5")
LENGTH_REQUIRED = _raw_error(
    "411 Length Required", "POST without a Content-Length header: a body that ends where the client closes the "
    "connection cannot be told from one cut short, so it is not read; send the photo's size in Content-Length "
    "(or the body with Transfer-Encoding: chunked), e.g. curl -F file=@photo.jpg http://HOST:PORT/predict")


# h11 parses a chunked body one chunk at a time in Python, ~16-20 us each (2-core EPYC, busy): two clients sending
# 1-byte chunks (6 bytes on the wire each) held the event loop so that /health took 25 s instead of 0.1 s, until
# --upload-timeout. A chunked body's chunks must average MIN_CHUNK_BYTES, after its first CHUNK_SLACK (a client
# may send its multipart headers and closing boundary as chunks of their own): curl, Java and Go send 4-64 KB.
MIN_CHUNK_BYTES = 1024
CHUNK_SLACK = 64


def _chunks_too_small(chunks: int, size: int) -> bytes:
    return _raw_error("400 Bad Request", f"a chunked body in chunks of {size / chunks:.0f} bytes on average ({chunks:,} "
                      f"chunks): the server parses each as it would {MIN_CHUNK_BYTES:,} bytes of data, so they must average "
                      f"at least that; send the photo with a Content-Length, e.g. curl -F file=@photo.jpg "
                      "http://HOST:PORT/predict, or in larger chunks")


def _headers_too_large(size: int) -> bytes:
    return _raw_error("431 Request Header Fields Too Large", f"the request line and headers are over {size / 2**10:g} KB "
                      "(the server's limit); send fewer or shorter headers (e.g. cookies) or a shorter URL")


def _head_size(request: h11.Request) -> int:
    """The bytes of a request's line and headers, about as sent."""
    return len(request.method) + len(request.target) + 12 + sum(len(k) + len(v) + 4 for k, v in request.headers)


class _FramedConnection(h11.Connection):
    """h11's server side, which also refuses a POST whose body has no framing (no Content-Length, no
    Transfer-Encoding). h11 reads such a body as empty (RFC 9112), so the photo of an HTTP/1.0 client that
    ends it by closing its side was parsed as a request without a file, and the close dropped the answer.
    It keeps the status h11 suggests for a request it refuses (`refused`), which uvicorn drops: all were 400.
    h11 checks its limit on a request's line and headers only while they are incomplete, so headers that
    arrived in one read (up to 256 KB: asyncio's) passed; they are measured here too. A chunked body whose
    chunks are too small for their cost (MIN_CHUNK_BYTES) is refused as it arrives (`too_fine`)."""

    refused = 0  # the error_status_hint of the request h11 could not take: 400, 411 (no framing), 431 (headers too large)
    too_fine = None  # a chunked body refused for its chunks: (chunks, bytes) so far

    def __init__(self, max_head: int):
        super().__init__(h11.SERVER, max_head)
        self.max_head = max_head
        self.chunks = self.chunk_bytes = 0  # of the current request's body (chunked; a Content-Length body has none)

    def next_event(self):
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as e:
            self.refused = e.error_status_hint
            raise
        if isinstance(event, h11.Request) and _head_size(event) > self.max_head:
            self.refused = 431
            raise h11.RemoteProtocolError("request line and headers too long", error_status_hint=431)
        if isinstance(event, h11.Request) and event.method == b"POST" and not any(
                name in (b"content-length", b"transfer-encoding") for name, _ in event.headers):
            self.refused = 411
            raise h11.RemoteProtocolError("POST without Content-Length or Transfer-Encoding", error_status_hint=411)
        if isinstance(event, h11.Request):
            self.chunks = self.chunk_bytes = 0
        elif isinstance(event, h11.Data):  # (a chunk that spans two reads comes as two events: chunk_start counts it once)
            self.chunks, self.chunk_bytes = self.chunks + event.chunk_start, self.chunk_bytes + len(event.data)
            if self.chunks > CHUNK_SLACK + self.chunk_bytes // MIN_CHUNK_BYTES:
                self.refused, self.too_fine = 400, (self.chunks, self.chunk_bytes)
                raise h11.RemoteProtocolError("chunks too small", error_status_hint=400)
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the three bounds it lacks (uvicorn 0.54): a connection beyond the
    cap is answered a JSON 503 and closed at once (uvicorn only refuses its requests, and keeps it
    open); a request's headers must arrive within `timeout_keep_alive` seconds of the connection
    opening or of the previous response (uvicorn times out only idle keep-alive connections, never one
    that is still sending, or has not started, its headers); and a client that stops reading its
    response for as long is dropped (uvicorn waits on it for ever, holding the socket and, for a
    static file, the file). Both numbers are uvicorn's own options (uvicorn_options), so --workers
    processes get them too: the cap is `limit_concurrency` less one, so that uvicorn's own check of
    connections (a plain-text 503 to the request of the cap-th) never comes first; its check of running
    requests still answers so when more than the cap run at once. A POST whose body has no framing is
    answered 411, and a request line and headers over h11's buffer (16 KB) 431 (_FramedConnection)."""

    _header_timer = None
    _send_timer = None
    _draining = False  # a refused request's body may still be arriving: read and dropped (_refuse_unread)

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        size = config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # (None: h11's, as uvicorn builds it)
        self.conn = _FramedConnection(size)
        self._too_large = _headers_too_large(size)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        limit = self.config.limit_concurrency  # (None: a uvicorn.Config built without uvicorn_options)
        if limit is not None and len(self.connections) > (cap := limit - 1):  # the set includes this connection
            _full.warn(f"{cap} connections are open (--max-connections): new ones get a 503 until some close")
            transport.write(BUSY)
            transport.close()
            return
        self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:  # a request h11 cannot parse: JSON too (uvicorn's is plain text)
        if self.conn.too_fine:
            return self._refuse_body(_chunks_too_small(*self.conn.too_fine))
        if self.conn.refused == 411:
            return self._refuse_unread(LENGTH_REQUIRED)
        if self.conn.refused == 431:  # (h11's buffer for one request's line and headers overflowed; uvicorn said 400)
            return self._refuse_unread(self._too_large)
        self.transport.write(_raw_error("400 Bad Request", "malformed HTTP request: check its request line, headers and "
                                        "body framing (Content-Length, Transfer-Encoding)"))
        self.transport.close()

    def _refuse_unread(self, answer: bytes) -> None:
        """Answer and end our side, but read the request on until the client ends its own (or the header
        deadline passes): closing with its bytes unread would reset the connection, and a reset can
        discard the answer before the client reads it."""
        self.transport.write(answer)
        if not self.transport.can_write_eof():  # (TLS)
            return self.transport.close()
        self.transport.write_eof()
        self._draining = True

    def _refuse_body(self, answer: bytes) -> None:
        """Refuse a request while its body arrives: the app's cycle ends as at a disconnect (its reads say so,
        its answer is dropped), and the answer goes out unless the app's has begun (then the connection just
        closes). The rest is read and dropped until the client stops, or the header deadline."""
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.conn.our_state is not h11.SEND_RESPONSE:  # (no second answer to a request answered already)
            return self.transport.close()
        self.flow.resume_reading()  # (paused while the app had not read the body yet)
        self._refuse_unread(answer)
        self._arm_header_timer()  # the deadline of the request's headers had passed to its cycle

    def data_received(self, data: bytes) -> None:
        if not self._draining:
            super().data_received(data)

    def on_response_complete(self) -> None:
        done = self.cycle
        super().on_response_complete()  # which starts a pipelined request's cycle: its headers are in
        if self.cycle is done and not self.transport.is_closing():  # the next request's headers get the same deadline
            self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        for timer in (self._header_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:  # the client is not taking the response as fast as it is written
        super().pause_writing()
        if self._send_timer is None:
            self._arm_send_timer()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _arm_send_timer(self) -> None:
        self._unsent = self._unsent_bytes()  # (the app writes nothing more while writing is paused)
        self._send_timer = self.loop.call_later(self.timeout_keep_alive, self._send_late)

    def _send_late(self) -> None:
        """Drop the connection if its client took nothing of the response since the timer was armed; a
        slow reader that still takes some keeps it."""
        self._send_timer = None
        unsent = self._unsent_bytes()
        if not unsent:  # all taken: nothing stalls (the header and keep-alive deadlines see to an idle connection)
            return
        if unsent < self._unsent:
            self._arm_send_timer()
        else:
            self._drop()

    def _unsent_bytes(self) -> int:
        """What the client has not taken yet: the transport's buffer and, where the OS tells (Linux's
        TIOCOUTQ), the socket's send queue, which a slow reader drains for seconds before the buffer moves."""
        n = self.transport.get_write_buffer_size()
        with contextlib.suppress(AttributeError, ImportError, OSError, ValueError):
            import fcntl
            import termios

            fd = self.transport.get_extra_info("socket").fileno()
            n += struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return n

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._headers_late, self.cycle)

    def _headers_late(self, cycle) -> None:
        """Close the connection unless a request's headers arrived since the timer was armed (a new cycle),
        or the last response is still on its way (a slow reader): then only once that stops moving."""
        if self.cycle is not cycle:
            return
        if self.transport.get_write_buffer_size():
            if self._send_timer is None:
                self._arm_send_timer()
        else:
            self._drop()

    def _drop(self) -> None:
        if self.transport.get_write_buffer_size():  # close would wait to send it, which a client that reads nothing never takes
            self.transport.abort()
        elif not self.transport.is_closing():  # the kernel still sends what it holds; the descriptor goes now
            self.transport.close()


def _quiet_accept_errors(loop, context) -> None:
    """asyncio's exception handler, but a failed accept for want of file descriptors (EMFILE and the
    like; asyncio retries a second later) is one warning a minute, not a traceback per failure."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        _out_of_fds.warn(f"cannot accept connections ({exc.strerror}): new ones wait; lower --max-connections "
                         "or raise the open-file limit (ulimit -n)")
        return
    loop.default_exception_handler(context)


def connection_cap(max_connections: int) -> int:
    """max_connections, lowered to fit the process's open-file limit (less FD_RESERVE) at
    FDS_PER_CONNECTION each: a cap above it would let the connections exhaust the descriptors that the
    cap exists to protect (at one each, 125 uploads of 1.1 MB under `ulimit -n 256` did: accepts failed)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or max_connections * FDS_PER_CONNECTION <= soft - FD_RESERVE:
        return max_connections
    cap = max(1, (soft - FD_RESERVE) // FDS_PER_CONNECTION)
    log.warning("--max-connections %d: lowered to %d, to fit the open-file limit of %d (ulimit -n; a connection "
                "may hold %d: its socket and its upload's temporary file)", max_connections, cap, soft, FDS_PER_CONNECTION)
    return cap


def uvicorn_options(s: Settings) -> dict:
    """The uvicorn.Config options that bound connections (see GuardedH11Protocol)."""
    return {"http": GuardedH11Protocol, "limit_concurrency": connection_cap(s.max_connections) + 1,
            "timeout_keep_alive": s.header_timeout}


# ---------------------------------------------------------------- the documented shapes (OpenAPI)


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong and how to fix it, in one sentence")


class FaceOut(BaseModel):
    """schema.Face, documented (tests/test_schema.py keeps the two alike)."""

    box: list[int] = Field(description="x, y, width, height in the photo's pixels (upright, after EXIF rotation)")
    label: str = Field(description="the most probable emotion")
    score: float = Field(description="its probability")
    probs: dict[str, float] = Field(description="the probability of each emotion, in /labels order")


class PredictOut(BaseModel):
    faces: list[FaceOut]
    width: int
    height: int
    count: int
    message: str | None = Field(None, description='"no face found" when faces is empty')


class HealthOut(BaseModel):
    status: str = Field(description="ready | starting (warming up) | failed")
    model: str | None = None
    error: str | None = Field(None, description="why the server cannot predict, when failed")


def _errors(*codes: int) -> dict:
    why = {400: "no `file` field, or two, or a second file of any name, or a body cut short (less than its Content-Length, or no closing "
                "boundary), or a chunked body whose chunks average under 1 KB",
           408: "the upload did not arrive within --upload-timeout",
           413: "over --max-upload-mb bytes or --max-upload-pixels pixels",
           415: "not an image, or an empty file", 422: "a corrupt or truncated image, or a malformed request",
           500: "a server bug", 503: "the server is starting, or cannot predict (see /health), or busy (--queue-timeout, "
                "--max-queue), or cannot store the upload (Retry-After)"}
    return {c: {"model": ErrorOut, "description": why[c]} for c in codes}


# ---------------------------------------------------------------- the app


class _OnePhotoRequest(Request):
    """A request whose form may hold one file. Each file part over 1 MB spools to a temporary file of
    its own, held until the answer, and starlette allows 1000 of them: nine 1.1 MB parts made a request
    hold ten descriptors, and 30 such uploads used up the 256 of `ulimit -n 256` (a connection counts
    FDS_PER_CONNECTION). The second file is refused as it starts, before a byte of it is stored.
    Text fields stay in memory, and starlette allows 1000 of them of up to 1 MB each: a request held as many
    megabytes as --max-upload-mb allowed, at every connection the cap lets in; MAX_FIELDS bounds their number
    and MAX_FIELD_BYTES their size (four of 1 MB made each request waiting its turn hold 5 MB: 100 held 500 MB)."""

    def form(self, **limits):
        return super().form(**{**limits, "max_files": 1, "max_fields": MAX_FIELDS, "max_part_size": MAX_FIELD_BYTES})


class _Photos:
    """The photos a process holds at once (app.state.photos): from the start of their upload to their answer, at
    most `limit` (--max-queue). Each waits in up to 1.1 MB of memory, beyond 1 MB in a temporary file of up to
    --max-upload-mb, and only --max-connections bounded them: 300 queued 0.9 MB photos raised the RSS by 360 MB,
    40 of 8 MB held 330 MB of disk, and the default 1000 connections would hold 1.2 GB, or 10 GB of disk."""

    def __init__(self, limit: int):
        self.limit, self.held, self.peak = limit, 0, 0  # peak: the most held at once since none were

    def take(self) -> None:
        self.held += 1  # (one event loop: no lock needed)
        self.peak = max(self.peak, self.held)

    def done(self) -> None:
        """A photo answered or dropped. When the last of a burst goes (TRIM_HELD or more held at once), the memory
        their uploads and decoding took goes back to the OS: 192 photos of 0.9 MB, 64 at once, left 130 MB more resident
        (56 with this), which only a photo of TRIM_PIXELS handed back. Once a burst, not every photo; none is waiting,
        so its ~15 ms on the event loop (280 MB freed) delay nobody's turn."""
        self.held -= 1
        if self.held == 0:
            if self.peak >= TRIM_HELD:
                release_memory()
            self.peak = 0

    def busy(self) -> JSONResponse:
        _queue_full.warn(f"{self.limit} photos are uploading or waiting for a prediction (--max-queue): new ones get a "
                         "503 until some are answered")
        # (the body is not read: the connection cannot carry another request)
        return _error(503, f"the server is busy: {self.limit} photos are already uploading or waiting for a prediction "
                           "(--max-queue); try again in a few seconds", {"Retry-After": "5", **UploadGuard.CLOSE})


class _OnePhotoRoute(APIRoute):
    """A route whose endpoint sees an _OnePhotoRequest (FastAPI parses its form before the endpoint runs), and
    which refuses a photo beyond the app's _Photos limit before reading a byte of it."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def one_photo(request: Request):
            photos = request.app.state.photos
            if photos.held >= photos.limit:
                return photos.busy()
            photos.take()
            try:
                return await handler(_OnePhotoRequest(request.scope, request.receive))
            finally:
                photos.done()

        return one_photo


def _model_info(predictor, clf, path, backend: str, precision: str) -> dict:
    """Name, file name, epochs and validation accuracy from the checkpoint, or from the metadata of
    an .onnx file. Only the file's name: its folder would tell clients about the server's disk."""
    info = {"file": Path(str(path)).name if path else None, "backend": backend, "precision": precision}
    if hasattr(predictor, "face_shape"):  # a Predictor: the faces it crops for its model (a colour one: size, size, 3)
        info["input"] = {"size": predictor.size, "channels": predictor.channels}
    tta = getattr(predictor, "tta", None)  # whether faces are averaged with their mirror: as set, else the model's default
    info["tta"] = clf.tta if tta is None and clf is not None else tta
    session, training = getattr(predictor, "session", None), {}
    if clf is not None:
        training = clf.training
    elif session is not None:  # an .onnx file: its training travels in its metadata (older files: none)
        from .runtime import onnx_training

        training = onnx_training(session)
    model = {"name": Path(str(path)).stem if path else None, **training, **info}
    bundled = getattr(predictor, "bundled", None)
    # a bundled model goes by its own name ("ferplus-fast"), not by its preset's ("tiny") or file's
    return {**model, "name": bundled, "preset": model["name"]} if bundled else model


def _public(e: Exception, predictor) -> str:
    """An error's message for clients, the model's path in it cut to the file's name (as _model_info's): the
    Predictor names the file it was given, whose folder would tell clients about the server's disk."""
    path = getattr(predictor, "path", None)
    return str(e).replace(str(path), Path(str(path)).name) if path else str(e)


def _warm_up(predictor) -> None:
    """One prediction on a real photo (predict.DEMO_PHOTO, shipped with ferkit): loads the
    detector, runs the model once (first calls are slow) and proves the set-up works."""
    from .faces import load_image
    from .predict import DEMO_PHOTO

    predictor.predict(load_image(DEMO_PHOTO))


def create_app(predictor_or_model_path=None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               max_concurrent: int | None = None, backend: str | None = None, *,
               max_upload_pixels: int = DEFAULT_MAX_PIXELS, upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
               threads: int | None = None, precision: str | None = None, tta: bool | None = None,
               queue_timeout: float = DEFAULT_QUEUE_TIMEOUT, max_queue: int = DEFAULT_MAX_QUEUE) -> FastAPI:
    """The app. `predictor_or_model_path`: a ferkit.predict.Predictor (or anything with .predict),
    a Classifier, a checkpoint (.pt, run folder; .onnx with backend="onnx"), or None for the
    bundled model. At most `max_concurrent` predictions run at once (default: the number of CPUs);
    the others wait their turn, up to `queue_timeout` seconds (then a 503), and at most `max_queue` photos are held
    at once, uploading, waiting or predicted (more: a 503). `threads`: torch's and OpenCV's threads in this process."""
    from .faces import load_image

    if max_upload_bytes < 1 or max_upload_pixels < 1 or upload_timeout <= 0 or queue_timeout <= 0 or max_queue < 1:
        raise ValueError("max_upload_bytes, max_upload_pixels, upload_timeout, queue_timeout and max_queue must be > 0")
    # python-multipart logs a warning for each malformed body it refuses ("Expected boundary character ..."), which
    # the 400 (_multipart_error) tells the client: a log line per bad request, as many as a client sends. Its errors
    # (a temporary file it cannot open: the server's trouble) are still logged.
    for name in ("python_multipart", "multipart"):  # (the module's name before python-multipart 0.0.13)
        logging.getLogger(name).setLevel(logging.ERROR)
    src = predictor_or_model_path
    if not hasattr(src, "predict"):
        from .predict import Predictor

        src = Predictor(src, backend=backend, threads=threads, precision=precision, tta=tta)
    predictor = src
    cv2 = sys.modules.get("cv2")  # loaded where the predictor uses OpenCV (the Haar detector; not in the light install)
    if threads and cv2 is not None:
        cv2.setNumThreads(threads)  # several worker processes: each keeps to its share of the CPUs
    clf, path = getattr(predictor, "classifier", None), getattr(predictor, "path", None)
    precision_used = getattr(predictor, "precision", None) or getattr(clf, "precision", None) or "fp32"
    model = _model_info(predictor, clf, path, getattr(predictor, "backend", backend or "torch"), precision_used)
    labels = tuple(getattr(predictor, "labels", None) or EMOTIONS)  # the model's own emotions
    info = {"ferkit": ferkit_version(), "model": model, "max_upload_bytes": max_upload_bytes,
            "max_upload_pixels": max_upload_pixels, "upload_timeout_s": upload_timeout, "queue_timeout_s": queue_timeout,
            "max_queue": max_queue}
    # a few fixed inference threads (not the shared threadpool): bounded concurrency, and torch's
    # per-thread memory (oneDNN caches, malloc arenas) is paid for these threads only
    n_workers = max_concurrent or os.cpu_count() or 1
    workers = ThreadPoolExecutor(n_workers, thread_name_prefix="ferkit-predict")
    turns = asyncio.Semaphore(n_workers)  # a request waits here for a free worker, not in the pool's queue (predict)
    health = {"status": "starting", **({"model": model["name"]} if model["name"] else {})}

    def warm_up():
        try:
            _warm_up(predictor)
            health["status"] = "ready"
        except Exception as e:  # noqa: BLE001 - whatever it is, the server must say it cannot predict
            if isinstance(e, FerkitError):  # the model's (an ONNX graph that gives NaN): its message says it all
                log.error("warm-up prediction failed: %s", e)
            else:
                log.exception("warm-up prediction failed")
            health.update(status="failed", error=f"the warm-up prediction failed ({type(e).__name__}: {_public(e, predictor)})")

    @asynccontextmanager
    async def lifespan(app):
        # warm up in the background: the server answers at once, /health says 503 until it is done
        # (the thread pool outlives a shutdown: an app may be started again, as the tests do)
        loop = asyncio.get_running_loop()
        app.state.warm_up = loop.run_in_executor(workers, warm_up)
        loop.set_exception_handler(_quiet_accept_errors)
        yield

    app = FastAPI(title="ferkit", version=info["ferkit"], lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Find the faces in a photo and name the emotion of each. "
                              "Every error is JSON {\"error\": \"...\"}.")
    app.add_middleware(UploadGuard, limit=max_upload_bytes + MULTIPART_SLACK, upload_limit=max_upload_bytes,
                       timeout=upload_timeout)
    app.add_middleware(SecurityHeaders)  # added last = outermost: it sees every response
    app.state.predictor, app.state.health, app.state.photos = predictor, health, _Photos(max_queue)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message, headers = str(exc.detail), exc.headers
        if exc.status_code == 405:
            # every method of every route at this path (starlette names the first route's: GET
            # and HEAD are two routes, to keep HEAD out of the schema); StaticFiles' 405 names none
            methods = {m for r in app.router.routes if getattr(r, "methods", None) and r.matches(request.scope)[0] != Match.NONE
                       for m in r.methods}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(methods)) if methods else "GET, HEAD"}
            message = f"{quoted(request.method)} {quoted(request.url.path)}: method not allowed; use {headers['Allow']}"
        elif exc.status_code == 400 and (why := cut_short(request)) is not None:  # FastAPI's "error parsing the body"
            message = why
        elif exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):  # the form could not be parsed
            message = _multipart_error(exc.__context__)
        elif exc.status_code == 400 and isinstance(exc.__context__, OSError):  # FastAPI's 400 for any failure of the form
            return _cannot_store_upload(exc.__context__)
        elif exc.status_code == 404:
            message = f"{quoted(request.url.path)}: not found; the API is POST /predict, GET /health, /version, /labels (docs at /docs)"
        return _error(exc.status_code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if (why := cut_short(request)) is not None:
            return _error(400, why)
        if any(tuple(e.get("loc", ())) == ("body", "file") for e in exc.errors()):  # a text field, not a file
            return _error(400, NO_FILENAME)
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, f"bad request ({where}); POST the photo as multipart/form-data field 'file'")

    @app.get("/health", summary="readiness: 200 once the model answered a warm-up prediction",
             response_model=HealthOut, response_model_exclude_none=True, responses={503: {"model": HealthOut}})
    def get_health():
        return health if health["status"] == "ready" else JSONResponse(health, status_code=503)

    @app.get("/version", summary="ferkit version, the model in use and the upload limits")
    def get_version():
        return info

    @app.get("/labels", summary="the model's emotions and their colours")
    def get_labels():
        return {"emotions": list(labels), "colors": dict(zip(labels, colors(labels)))}

    # HEAD answers as GET does (a load balancer's probe), kept out of the schema: one route for both
    # methods gave both one operationId, which OpenAPI forbids (and client generators trip on)
    for path, endpoint in (("/health", get_health), ("/version", get_version), ("/labels", get_labels)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    def answer(upload, name: str):
        """Read, decode and predict: (a dict or an error response, whether memory should be released)."""
        data = upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return _error(413, f"{name}: upload too large: the limit is {_mb(max_upload_bytes)}; send a smaller photo"), False
        try:  # the pixel limit is checked from the image header, before decoding
            rgb = load_image(data, name=name, max_pixels=max_upload_pixels)
        except ImageError as e:
            return _error(STATUS.get(e.reason, 422), str(e)), e.reason != "too_large"
        try:
            faces = predictor.predict(rgb)  # JSON-ready records
        except FerkitError as e:  # the server's set-up (e.g. no face detector), not the photo
            return _error(500, f"the server cannot predict: {_public(e, predictor)}"), True
        out = {"faces": faces, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "count": len(faces)}
        if not faces:
            out["message"] = "no face found"
        return out, rgb.shape[0] * rgb.shape[1] >= TRIM_PIXELS

    def run(upload, name: str):
        """In an inference worker: answer, then release what a big (or broken) photo's decoding freed."""
        out, big = answer(upload, name)
        if big:  # the photo's arrays are gone with answer's frame
            release_memory()
        return out

    # A part without a filename is a text field to the multipart parser: decoded as UTF-8 (else
    # Latin-1, which of the two cannot be told afterwards) and capped at 1 MB, so its bytes cannot
    # be trusted to be the photo's. The schema therefore requires the filename that browsers, curl
    # -F file=@photo.jpg, requests and httpx all send, and such a part gets a 400 that says so.
    async def predict(request: Request, file: UploadFile | None = File(None, description="a photo (JPEG, PNG, ...), sent as a file: "
                                                                                           + FILENAME_REQUIRED)):
        if (why := cut_short(request)) is not None:  # before "no file": a cut-off part is no file to the parser
            return _error(400, why)
        if isinstance(file, str):
            return _error(400, NO_FILENAME)
        if file is None:
            return _error(400, "no file: POST the photo as multipart/form-data field 'file', "
                               "e.g. curl -F file=@photo.jpg http://HOST:PORT/predict")
        if len((await request.form()).getlist("file")) > 1:  # (the form is parsed once: this is FastAPI's)
            return _error(400, "several 'file' parts: POST one photo per request (one 'file' field)")
        if health["status"] == "failed":
            return _error(503, f"the server cannot predict: {health['error']}")
        # queued requests hold only their spooled upload (on disk beyond 1 MB); decoding happens in a worker.
        # The wait is bounded: under more photos than the workers get through, a client hears so (503)
        # instead of waiting on, its upload kept, behind a queue that only grows
        try:
            await asyncio.wait_for(turns.acquire(), queue_timeout)
        except TimeoutError:
            return _error(503, f"the server is busy: no prediction was free within {queue_timeout:g} s (--queue-timeout); "
                               "try again later", headers={"Retry-After": str(math.ceil(queue_timeout))})
        try:
            if await request.is_disconnected():  # the client hung up while it waited: no work for nobody
                return _error(400, "the client closed the connection before its turn")
            return await asyncio.get_running_loop().run_in_executor(workers, run, file.file, quoted(file.filename or "upload"))
        finally:
            turns.release()

    app.router.add_api_route(
        "/predict", predict, methods=["POST"], route_class_override=_OnePhotoRoute,
        summary="faces and emotions in an uploaded photo", response_model=None,
        responses={200: {"model": PredictOut, "description": "the faces found (maybe none)"},
                   **_errors(400, 408, 413, 415, 422, 500, 503)},
        openapi_extra={"requestBody": {"content": {"multipart/form-data": {"encoding": {"file": {
            "contentType": "image/*, application/octet-stream",
            "headers": {"Content-Disposition": {
                "required": True, "description": FILENAME_REQUIRED,
                "schema": {"type": "string", "pattern": "filename="}}}}}}}}})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    def docs():
        return FileResponse(STATIC / "docs.html")

    app.mount("/static/swagger", StaticFiles(directory=str(SWAGGER_UI)), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_settings(s: Settings) -> FastAPI:
    s.check()
    return create_app(s.model, s.max_upload_bytes, s.max_concurrent, s.backend,
                      max_upload_pixels=s.max_upload_pixels, upload_timeout=s.upload_timeout,
                      threads=s.threads, precision=s.precision, tta=s.tta, queue_timeout=s.queue_timeout,
                      max_queue=s.max_queue)


def app_from_env() -> FastAPI:
    """The app factory for uvicorn (`uvicorn --factory ferkit.serve:app_from_env`), which `ferkit
    serve --workers N` runs in each worker process; settings from FERKIT_SERVE_* (Settings.from_env).
    A bad setting or model ends the process with STARTUP_FAILURE after one `error:` log line, which
    names each setting as its variable (FERKIT_SERVE_MODEL), or for `ferkit serve` (which leaves
    ERROR_FILE_ENV for the message) as the flag it was given as."""
    try:
        return app_from_settings(Settings.from_env())
    except FerkitError as e:
        error_file = os.environ.get(ERROR_FILE_ENV)
        message = str(e) if error_file else flags_as_variables(str(e))
        logging.getLogger("uvicorn.error").error("error: %s", message)
        if error_file:
            Path(error_file).write_text(message)
        sys.exit(STARTUP_FAILURE)


# ---------------------------------------------------------------- running it


def check_port(host: str, port: int) -> int:
    """The port to serve on: `port`, or for 0 a free one picked now (the banner names it); a
    FerkitError with the fix when host:port cannot be bound (out of range, in use, privileged,
    not this machine's)."""
    if not 0 <= port <= 65535:  # else bind() raises OverflowError, or a negative port blames the host
        raise FerkitError(f"--port {port}: must be between 1 and 65535 (0: any free port); pick another with --port")
    try:
        addrs = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:  # (UnicodeError: a host name with an empty or 64+ letter label)
        why = e.strerror if isinstance(e, socket.gaierror) else "not a valid host name"
        raise FerkitError(f"--host {host}: cannot resolve it ({why}); use 127.0.0.1, 0.0.0.0 or an address of this machine") from None
    for family, kind, proto, _, addr in addrs:
        addr = (addr[0], port, *addr[2:])  # port 0: the free port the first bind got, for the others too
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                s.bind(addr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise FerkitError(f"port {port} is in use; pick another with --port") from None
                if e.errno == errno.EACCES:
                    raise FerkitError(f"port {port}: permission denied (ports below 1024 need root); pick another with --port") from None
                raise FerkitError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); "
                                  "use 127.0.0.1, 0.0.0.0 or an address of this machine") from None
            port = port or s.getsockname()[1]
    return port


def default_share(workers: int) -> int:
    """Threads and concurrent predictions for each of `workers` processes: their share of the CPUs."""
    return max(1, (os.cpu_count() or 1) // workers)


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the server until interrupted: one process (the model loads here, first), or `workers`
    processes that each load the model (uvicorn's supervisor restarts any that dies)."""
    import uvicorn

    s = settings or Settings()
    s.check()
    cpus = os.cpu_count() or 1
    if not 1 <= workers <= cpus:  # each process holds its own model: more than the CPUs add memory, not speed
        raise FerkitError(f"--workers {workers}: must be 1..{cpus} (this machine's CPUs; each worker process loads "
                          "its own copy of the model, and more processes than CPUs only add memory)")
    port = check_port(host, port)  # before the model loads: a busy port fails fast, in one line
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/ (API docs at /docs); Ctrl+C stops"  # [::1]: IPv6
    if workers == 1:
        app = app_from_settings(s)
        print(f"ferkit serve: {where}", flush=True)
        uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(s))
        return
    share = default_share(workers)
    s = replace(s, threads=s.threads or share, max_concurrent=s.max_concurrent or share)
    try:  # where a worker that cannot start leaves its error for this process to say
        errors = tempfile.TemporaryDirectory(prefix="ferkit-serve-")
    except OSError as e:  # a temporary folder gone, or none that takes a file (the whole disk full): was a traceback
        where = temp_folder()  # (None: tempfile found none; e names those it tried)
        raise FerkitError(f"--workers {workers}: cannot make a temporary folder for the workers' start-up errors "
                          f"{f'in {where} ' if where else ''}({e.strerror or e}); "
                          f"{write_fix(e) if where else 'free some space in one of those folders'}, or set TMPDIR to a folder "
                          "with room") from None
    with errors as tmp:
        error_file = Path(tmp) / "error.txt"
        s.set_env()  # the spawned workers inherit these
        os.environ[ERROR_FILE_ENV] = str(error_file)
        print(f"ferkit serve: {workers} worker processes, each with {s.max_concurrent} concurrent predictions "
              f"on {s.threads} threads; {where}", flush=True)
        uvicorn.run("ferkit.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, **uvicorn_options(s))
        if error_file.exists():  # the supervisor stopped because a worker could not start
            raise FerkitError(error_file.read_text())
