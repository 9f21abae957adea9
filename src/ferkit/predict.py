"""From photos and videos to emotions: the Predictor, annotated copies, video timelines.

    Predictor(model).predict(load_image(src)) -> [{"box": [x, y, w, h], "label": "happy",
                                                   "score": p, "probs": {"angry": p, ..., "neutral": p}}]

`model` is None (the bundled model, src/ferkit/weights/ferkit.pt), a checkpoint path, a
Classifier or, with backend="onnx", an .onnx file from `ferkit export`. All faces of a photo go
through one forward pass. Videos are sampled every Nth frame; faces keep an id across sampled
frames by box overlap (IoU), giving a timeline of emotions per face.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .checkpoint import Classifier, load_checkpoint
from .data import IMAGE_EXTS
from .errors import FerkitError, ImageError
from .faces import MIN_FACE, SIZE, find_faces, load_image
from .labels import COLORS, EMOTIONS

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
                 tta: bool | None = None):
        if backend not in ("torch", "onnx"):
            raise FerkitError(f"backend {backend!r}: choose torch or onnx")
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

    def predict(self, image, min_face: float = MIN_FACE) -> list[dict]:
        """Every face in a photo (RGB array, or anything load_image reads) with its emotion; [] if none."""
        rgb = image if isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3 else load_image(image)
        faces = find_faces(rgb, min_face)
        probs = self.predict_faces(np.stack([f.face for f in faces]) if faces else np.zeros((0, SIZE, SIZE), np.uint8))
        return [record(f.box, p) for f, p in zip(faces, probs)]


# ---------------------------------------------------------------- drawing


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def annotate(rgb: np.ndarray, records: list[dict]) -> np.ndarray:
    """A copy of the photo (RGB) with each face's box, label and its 7 probabilities drawn."""
    import cv2

    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    H, W = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r in records:
        x, y, w, h = r["box"]
        colour = _bgr(COLORS[EMOTIONS.index(r["label"])])
        s = float(np.clip(w / 160, 0.35, 1.0))  # text scale follows the face size
        th = max(1, round(2 * s))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, max(2, round(3 * s)))
        title = f"{r['label']} {r['score']:.2f}"
        (tw, tht), base = cv2.getTextSize(title, font, s, th)
        ty = y - 4 if y - tht - base - 4 >= 0 else y + h + tht + 4
        cv2.rectangle(img, (x, ty - tht - base), (x + tw + 4, ty + base), colour, -1)
        cv2.putText(img, title, (x + 2, ty), font, s, (0, 0, 0), th, cv2.LINE_AA)
        # the 7 probabilities as bars beside the box: right side, else left, shrunk to fit
        room = max(W - (x + w), x) - 10
        ps = min(0.7 * s, room / 240)  # the panel is ~235 * ps pixels wide
        if ps >= 0.25:
            _prob_panel(img, r["probs"], x + w + 6 if W - (x + w) - 10 >= x else None, x, y, ps)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _prob_panel(img, probs: dict, left: int | None, box_x: int, top: int, s: float) -> None:
    """Draw the 7 names and probability bars at scale s, from x=left (or ending at box_x when None)."""
    import cv2

    font, H = cv2.FONT_HERSHEY_SIMPLEX, img.shape[0]
    (lw, lh), _ = cv2.getTextSize("surprise", font, s, 1)
    line, bar_w = int(lh * 1.7), int(lw * 0.8)
    width = lw + bar_w + 12
    x0 = left if left is not None else max(0, box_x - 6 - width)
    y1 = min(H, top + 7 * line + line // 2)
    sub = img[max(0, top):y1, x0 : x0 + width]
    sub[:] = (sub * 0.35).astype(np.uint8)  # a dark panel keeps the text readable on any photo
    for i, (e, p) in enumerate(probs.items()):
        yy = top + (i + 1) * line
        if yy > H:
            break
        cv2.putText(img, e, (x0 + 3, yy), font, s, (255, 255, 255), 1, cv2.LINE_AA)
        bx = x0 + lw + 8
        cv2.rectangle(img, (bx, yy - lh), (bx + bar_w, yy), (160, 160, 160), 1)
        cv2.rectangle(img, (bx, yy - lh), (bx + int(bar_w * p), yy), _bgr(COLORS[i]), -1)


def save_rgb(rgb: np.ndarray, path: str | Path) -> None:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise FerkitError(f"{path}: cannot write the image here; check the folder and the extension (.png, .jpg)")


# ---------------------------------------------------------------- videos


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


class FaceTracker:
    """Face ids across sampled frames: a box continues the track it overlaps most (IoU >= min_iou)
    among those seen in the last `patience` sampled frames; otherwise it starts a new id."""

    def __init__(self, min_iou: float = 0.3, patience: int = 5):
        self.min_iou, self.patience = min_iou, patience
        self.tracks: dict[int, tuple[list[int], int]] = {}  # id -> (last box, last step)
        self.step = 0

    def assign(self, boxes: list) -> list[int]:
        live = {t: b for t, (b, s) in self.tracks.items() if self.step - s <= self.patience}
        pairs = sorted(((iou(b, tb), i, t) for i, b in enumerate(boxes) for t, tb in live.items()), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        used = set()
        for o, i, t in pairs:
            if o < self.min_iou:
                break
            if ids[i] is None and t not in used:
                ids[i] = t
                used.add(t)
        for i, b in enumerate(boxes):
            if ids[i] is None:
                ids[i] = len(self.tracks) + 1
                self.tracks[ids[i]] = (b, self.step)
            self.tracks[ids[i]] = (list(b), self.step)
        self.step += 1
        return ids


def predict_video(predictor: Predictor, path: str | Path, every: int = 1, annotate_to: str | Path | None = None) -> dict:
    """Emotions of every face in every `every`-th frame, with face ids and a per-face summary."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file; check the path", "not_found")
    if every < 1:
        raise FerkitError(f"--every {every}: must be >= 1")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageError(f"{path}: cannot open as a video (not a video, an unsupported codec or a damaged file); "
                         "convert it to MP4 (H.264) or pass the frames as images", "not_image")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    frames, tracker, writer, i = [], FaceTracker(), None, 0
    try:
        while True:
            if i % every:
                if not cap.grab():
                    break
                i += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            recs = predictor.predict(rgb)
            for r, fid in zip(recs, tracker.assign([r["box"] for r in recs])):
                r["face_id"] = fid
            frames.append({"frame": i, "time": round(i / fps, 3) if fps else None, "faces": recs})
            if annotate_to is not None:
                if writer is None:
                    Path(annotate_to).parent.mkdir(parents=True, exist_ok=True)
                    out_fps = max(fps / every, 1.0) if fps else 5.0
                    writer = cv2.VideoWriter(str(annotate_to), cv2.VideoWriter_fourcc(*"mp4v"), out_fps, (bgr.shape[1], bgr.shape[0]))
                writer.write(cv2.cvtColor(annotate(rgb, recs), cv2.COLOR_RGB2BGR))
            i += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise ImageError(f"{path}: no frame could be decoded (an empty, truncated or damaged video)", "corrupt")
    return {"file": str(path), "type": "video", "width": w, "height": h, "fps": fps, "frames_read": i,
            "every": every, "frames": frames, "faces": summarize_tracks(frames)}


def summarize_tracks(frames: list[dict]) -> list[dict]:
    """Per face id: first/last frame, how often seen, the label counts and the mean probabilities."""
    by_id: dict[int, list] = {}
    for fr in frames:
        for r in fr["faces"]:
            by_id.setdefault(r["face_id"], []).append((fr["frame"], r))
    out = []
    for fid, seen in sorted(by_id.items()):
        mean = np.mean([[r["probs"][e] for e in EMOTIONS] for _, r in seen], axis=0)
        labels = {}
        for _, r in seen:
            labels[r["label"]] = labels.get(r["label"], 0) + 1
        out.append({"face_id": fid, "first_frame": seen[0][0], "last_frame": seen[-1][0], "count": len(seen),
                    "labels": labels, "mean_probs": {e: float(p) for e, p in zip(EMOTIONS, mean)},
                    "label": EMOTIONS[int(np.argmax(mean))], "timeline": [r["label"] for _, r in seen]})
    return out


# ---------------------------------------------------------------- inputs and outputs


def collect_inputs(paths: list[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files to process as (file, folder it was found in or None) and one message per bad input.
    Folders are searched recursively for image and video files (by extension)."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                problems.append(f"{p}: the folder holds no images or videos ({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
            files += [(f, p) for f in found]
        elif p.exists():
            files.append((p, None))
        else:
            problems.append(f"{p}: no such file or folder; check the path")
    return files, problems


def predict_file(predictor: Predictor, path: Path, every: int = 1, annotate_to: Path | None = None) -> dict:
    """One image or video -> its result dict; raises ImageError for a bad file."""
    if path.suffix.lower() in VIDEO_EXTS:
        return predict_video(predictor, path, every, annotate_to.with_suffix(".mp4") if annotate_to else None)
    rgb = load_image(path)
    recs = predictor.predict(rgb)
    if annotate_to is not None:
        suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else ".png"
        save_rgb(annotate(rgb, recs), annotate_to.with_suffix(suffix))
    return {"file": str(path), "type": "image", "width": rgb.shape[1], "height": rgb.shape[0], "faces": recs}


def format_result(res: dict) -> str:
    """A readable block of lines for one result."""
    if res["type"] == "video":
        lines = [f"{res['file']}  video {res['width']}x{res['height']}, {len(res['frames'])} frames sampled "
                 f"(every {res['every']} of {res['frames_read']}), {len(res['faces'])} face(s)"]
        for t in res["faces"]:
            share = ", ".join(f"{k} {v / t['count']:.0%}" for k, v in sorted(t["labels"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  face {t['face_id']}: frames {t['first_frame']}-{t['last_frame']} ({t['count']} sightings)  "
                         f"mostly {t['label']}  [{share}]")
            lines.append(f"    timeline: {' '.join(t['timeline'][:40])}{' ...' if len(t['timeline']) > 40 else ''}")
        return "\n".join(lines)
    n = len(res["faces"])
    lines = [f"{res['file']}  {res['width']}x{res['height']}, " + (f"{n} face{'s' if n != 1 else ''}" if n else "no face found")]
    for i, r in enumerate(res["faces"], 1):
        x, y, w, h = r["box"]
        rest = sorted(((p, e) for e, p in r["probs"].items() if e != r["label"]), reverse=True)[:2]
        lines.append(f"  #{i}  box x={x} y={y} w={w} h={h}   {r['label']:<8} {r['score']:.2f}   "
                     f"(then {', '.join(f'{e} {p:.2f}' for p, e in rest)})")
    return "\n".join(lines)


def csv_rows(results: list[dict]):
    """One row per face (per sampled frame for videos): file, frame, time, face_id, box, label, score, 7 probs."""
    yield ["file", "frame", "time", "face_id", "x", "y", "w", "h", "label", "score", *EMOTIONS]
    for res in results:
        if "error" in res:
            continue
        groups = res["frames"] if res["type"] == "video" else [{"frame": "", "time": "", "faces": res["faces"]}]
        for fr in groups:
            for k, r in enumerate(fr["faces"], 1):
                yield [res["file"], fr["frame"], fr["time"], r.get("face_id", k), *r["box"], r["label"],
                       f"{r['score']:.6f}", *(f"{r['probs'][e]:.6f}" for e in EMOTIONS)]


def write_results(results: list[dict], json_path: str | Path | None = None, csv_path: str | Path | None = None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerows(csv_rows(results))
