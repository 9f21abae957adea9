"""`ferkit serve`: a REST API and a web page that find faces in a photo and name their emotions.

    POST /predict   multipart field `file` -> {"faces": [records], "width", "height", "count"[, "message"]}
    GET  /health    {"status": "ok"}
    GET  /version   ferkit version, the model (name, epochs, validation accuracy), the upload limit
    GET  /labels    the 7 emotions and their plot colours (the page draws with these)
    GET  /          the web page (src/ferkit/static), OpenAPI docs at /docs

The model loads once, in create_app. Predictions run off the event loop in `max_concurrent`
worker threads (default: one per CPU), so requests overlap but memory stays bounded.
Every error is JSON {"error": "..."}: 413 too large, 415 not an image (or empty), 422 corrupt,
400 no file.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import FerkitError, ImageError
from .labels import COLORS, EMOTIONS

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD = 10 * 2**20  # bytes
MULTIPART_SLACK = 64 * 2**10  # room for multipart headers around the file in the request body
STATUS = {"not_image": 415, "corrupt": 422, "too_large": 413, "not_found": 422}  # ImageError.reason -> HTTP


def ferkit_version() -> str:
    try:
        return version("ferkit")
    except PackageNotFoundError:
        return "unknown"


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, without reading them all.

    A Content-Length over the limit is refused before any body is read; otherwise the bytes are
    counted as they arrive (chunked uploads too) and the request is cut off once over the limit."""

    def __init__(self, app, limit: int, upload_limit: int):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    def _too_large(self):
        return JSONResponse({"error": f"upload too large: the limit is {_mb(self.upload_limit)}; send a smaller photo "
                             "(or start the server with a larger --max-upload-mb)"}, status_code=413)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large()(scope, receive, send)
        seen, over, started = 0, False, False

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise StarletteHTTPException(413, "upload too large")
            return message

        async def guarded_send(message):
            nonlocal started
            if over:  # whatever the app made of the cut-off body, the answer is 413
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except StarletteHTTPException:
            if not over:
                raise
        if over and not started:
            await self._too_large()(scope, receive, send)


def _model_info(clf, path, backend: str) -> dict:
    """Name, epochs and validation accuracy from the Classifier's checkpoint meta."""
    info = {"path": str(path) if path else None, "backend": backend}
    if clf is None:  # an .onnx file: no training meta
        return {"name": Path(str(path)).stem if path else None, **info}
    meta = clf.meta or {}
    cfg = meta.get("config") or {}
    return {
        "name": Path(str(cfg.get("model", "unknown"))).stem,  # the preset, or the spec file's name
        **info,
        "epoch": meta.get("epoch"),  # the epoch these weights come from
        "epochs": cfg.get("epochs"),  # the epochs the training was set to run
        "val_acc": meta.get("best_acc"),  # best validation accuracy of that training
        "tta": clf.tta,
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(predictor_or_model_path=None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               max_concurrent: int | None = None, backend: str = "torch") -> FastAPI:
    """The app. `predictor_or_model_path`: a ferkit.predict.Predictor, a Classifier, a checkpoint
    (.pt, run folder; .onnx with backend="onnx"), or None for the bundled model. At most
    `max_concurrent` predictions run at once (default: the number of CPUs); the others wait
    their turn in the threadpool."""
    from .faces import load_image
    from .predict import Predictor

    if max_upload_bytes < 1:
        raise ValueError("max_upload_bytes must be >= 1")
    src = predictor_or_model_path
    predictor = src if hasattr(src, "predict") else Predictor(src, backend=backend)
    clf, path = getattr(predictor, "classifier", None), getattr(predictor, "path", None)
    model = _model_info(clf, path, getattr(predictor, "backend", backend))
    info = {"ferkit": ferkit_version(), "model": model, "max_upload_bytes": max_upload_bytes}
    # a few fixed inference threads (not the shared threadpool): bounded concurrency, and torch's
    # per-thread memory (oneDNN caches, malloc arenas) is paid for these threads only
    workers = ThreadPoolExecutor(max_concurrent or os.cpu_count() or 1, thread_name_prefix="ferkit-predict")

    app = FastAPI(title="ferkit", version=info["ferkit"],
                  description="Find the faces in a photo and name the emotion of each (FER2013's 7 emotions).")
    app.add_middleware(BodyLimit, limit=max_upload_bytes + MULTIPART_SLACK, upload_limit=max_upload_bytes)
    app.state.predictor = predictor

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, f"bad request ({where}); POST the photo as multipart/form-data field 'file'")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return _error(500, f"internal error ({type(exc).__name__}); the server is still running, please report this")

    @app.get("/health", summary="liveness")
    def health():
        return {"status": "ok"}

    @app.get("/version", summary="ferkit version and the model in use")
    def get_version():
        return info

    @app.get("/labels", summary="the 7 emotions and their colours")
    def labels():
        return {"emotions": list(EMOTIONS), "colors": dict(zip(EMOTIONS, COLORS))}

    def run(upload, name: str):
        """In an inference worker: read, decode and predict; a dict, or an error response."""
        data = upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return _error(413, f"{name}: upload too large: the limit is {_mb(max_upload_bytes)}; send a smaller photo")
        try:
            rgb = load_image(data, name=name)
        except ImageError as e:
            return _error(STATUS.get(e.reason, 422), str(e))
        try:
            faces = predictor.predict(rgb)  # JSON-ready records
        except FerkitError as e:  # the server's set-up (e.g. no face detector), not the photo
            return _error(500, f"the server cannot predict: {e}")
        out = {"faces": faces, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "count": len(faces)}
        if not faces:
            out["message"] = "no face found"
        return out

    @app.post("/predict", summary="faces and emotions in an uploaded photo")
    async def predict(file: UploadFile | None = File(None, description="a photo (JPEG, PNG, ...)")):
        if file is None or isinstance(file, str):
            return _error(400, "no file: POST the photo as multipart/form-data field 'file', "
                               "e.g. curl -F file=@photo.jpg http://127.0.0.1:8000/predict")
        # queued requests hold only their spooled upload (on disk beyond 1 MB); decoding happens in a worker
        return await asyncio.get_running_loop().run_in_executor(workers, run, file.file, file.filename or "upload")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, model=None, max_upload_mb: float = 10,
          max_concurrent: int | None = None, backend: str = "torch", log_level: str = "info") -> None:
    """Load the model and run the server until interrupted."""
    import uvicorn

    app = create_app(model, int(max_upload_mb * 2**20), max_concurrent, backend)
    print(f"ferkit serve: http://{host}:{port}/ (API docs at /docs); Ctrl+C stops", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
