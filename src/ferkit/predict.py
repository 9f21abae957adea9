"""From photos to emotions: the Predictor, and one file (photo or video) to its result.

    Predictor(model).predict(load_image(src)) -> [{"box": [x, y, w, h], "label": "happy",
                                                   "score": p, "probs": {"angry": p, ..., "neutral": p}}]

`model` is None (the bundled model, src/ferkit/weights/ferkit.pt), a checkpoint path, a
Classifier or, with backend="onnx", an .onnx file from `ferkit export`. Faces are found by
`detector` (yunet, or haar) and turned upright by their eye landmarks (`align`); with
crops=True each photo is taken as one face, already cropped. All faces of a photo go through
one forward pass. Drawing lives in draw.py, videos in video.py, the output files in outputs.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import Classifier, load_checkpoint
from .data import IMAGE_EXTS
from .draw import annotate, save_rgb
from .errors import FerkitError, ImageError
from .faces import DETECTOR, MIN_FACE, SIZE, find_faces, load_image, whole_face
from .labels import EMOTIONS

BUNDLED = Path(__file__).resolve().parent / "weights" / "ferkit.pt"
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def load_model(path: str | Path | None = None, device: str = "cpu") -> Classifier:
    """A Classifier from a checkpoint (or run folder); None means the bundled model."""
    if path is None:
        if not BUNDLED.exists():
            raise FerkitError(f"the bundled model {BUNDLED} is missing (a broken install?); reinstall ferkit, "
                              "or pass a checkpoint written by 'ferkit train' with --model PATH")
        path = BUNDLED
    return load_checkpoint(path, device)


def record(box, probs: np.ndarray) -> dict:
    """One face's result with plain Python numbers (JSON-ready)."""
    k = int(np.argmax(probs))
    return {"box": [int(v) for v in box], "label": EMOTIONS[k], "score": float(probs[k]),
            "probs": {e: float(p) for e, p in zip(EMOTIONS, probs)}}


class Predictor:
    """Faces in a photo -> emotion records, with the torch or onnxruntime backend."""

    def __init__(self, model=None, backend: str = "torch", device: str = "cpu", threads: int | None = None,
                 tta: bool | None = None, detector: str = DETECTOR, align: bool = True):
        from .detectors import get_detector

        if backend not in ("torch", "onnx"):
            raise FerkitError(f"backend {backend!r}: choose torch or onnx")
        get_detector(detector)  # an unknown name or a missing package fails here, not on the first photo
        self.detector, self.align = detector, align
        self.backend, self.tta, self.session, self.classifier, self.path = backend, tta, None, None, None
        if backend == "onnx" and isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx":
            from .onnx_export import onnx_session

            self.session, self.path = onnx_session(model, threads), Path(model)  # tta is baked into the file
            return
        if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx":
            raise FerkitError(f"{model}: an ONNX model runs with backend='onnx' (--backend onnx)")
        if isinstance(model, Classifier):
            self.classifier = model
        else:
            self.path = Path(model) if model is not None else BUNDLED
            self.classifier = load_model(model, device)
        import torch

        if threads:
            torch.set_num_threads(threads)
        if self.classifier.device.type == "cpu":  # NHWC convolutions: ~1.6x the faces/s on CPU, same numbers
            self.classifier.model.to(memory_format=torch.channels_last)
        if backend == "onnx":
            from .onnx_export import session_from_classifier

            self.session = session_from_classifier(self.classifier, threads, tta)

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> probabilities (N, 7) in EMOTIONS order, one forward pass."""
        faces = np.ascontiguousarray(np.asarray(faces, np.uint8).reshape(-1, SIZE, SIZE))
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self.session is not None:
            return self.session.run(None, {"faces": faces})[0]
        import torch

        with torch.inference_mode():
            return self.classifier.predict_proba(faces, batch_size=max(len(faces), 1), tta=self.tta)

    def predict(self, image, min_face: float = MIN_FACE, crops: bool = False, align: bool | None = None) -> list[dict]:
        """Every face in a photo (RGB array, or anything load_image reads) with its emotion; [] if none.
        crops=True: the photo is one face already cropped (its box is the whole photo)."""
        rgb = image if isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3 else load_image(image)
        if crops:
            h, w = rgb.shape[:2]
            return [record((0, 0, w, h), self.predict_faces(whole_face(rgb)[None])[0])]
        faces = find_faces(rgb, min_face, detector=self.detector, align=self.align if align is None else align)
        probs = self.predict_faces(np.stack([f.face for f in faces]) if faces else np.zeros((0, SIZE, SIZE), np.uint8))
        return [record(f.box, p) for f, p in zip(faces, probs)]


# ---------------------------------------------------------------- files


def collect_inputs(paths: list[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files to process as (file, folder it was found in or None) and one message per bad input.
    Folders are searched recursively for image and video files (by extension); pipes, sockets and
    devices are skipped (reading one could wait forever)."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                problems.append(f"{p}: the folder holds no images or videos ({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
            files += [(f, p) for f in found]
        elif p.is_file():
            files.append((p, None))
        elif p.exists():
            problems.append(f"{p}: not a regular file (a pipe, socket or device); skipped")
        else:
            problems.append(f"{p}: no such file or folder; check the path")
    return files, problems


def predict_file(predictor: Predictor, path: Path, every: int = 1, annotate_to: Path | None = None, crops: bool = False) -> dict:
    """One image or video -> its result dict; raises ImageError for a bad file."""
    if path.suffix.lower() in VIDEO_EXTS:
        if crops:
            raise ImageError(f"{path}: a video is not a face crop; run videos without --crops", "not_image")
        from .video import predict_video

        return predict_video(predictor, path, every, annotate_to.with_suffix(".mp4") if annotate_to else None)
    rgb = load_image(path)
    recs = predictor.predict(rgb, crops=crops)
    if annotate_to is not None:
        suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else ".png"
        save_rgb(annotate(rgb, recs), annotate_to.with_suffix(suffix))
    return {"file": str(path), "type": "image", "width": rgb.shape[1], "height": rgb.shape[0], "faces": recs}
