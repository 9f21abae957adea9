"""Annotated copies of photos: each face's box, emotion and score, and its probabilities (one per emotion of the model) as bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import FerkitError
from .files import write_output
from .labels import COLOR_OF


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def annotate(rgb: np.ndarray, records: list[dict]) -> np.ndarray:
    """A copy of the photo (RGB) with each face's box, label and the probability of each emotion drawn."""
    import cv2

    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    H, W = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r in records:
        x, y, w, h = r["box"]
        colour = _bgr(COLOR_OF.get(r["label"], "#888888"))
        s = float(np.clip(w / 160, 0.35, 1.0))  # text scale follows the face size
        th = max(1, round(2 * s))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, max(2, round(3 * s)))
        title = f"{r['label']} {r['score']:.2f}"
        (tw, tht), base = cv2.getTextSize(title, font, s, th)
        ty = y - 4 if y - tht - base - 4 >= 0 else y + h + tht + 4
        cv2.rectangle(img, (x, ty - tht - base), (x + tw + 4, ty + base), colour, -1)
        cv2.putText(img, title, (x + 2, ty), font, s, (0, 0, 0), th, cv2.LINE_AA)
        # the probabilities as bars beside the box: right side, else left, shrunk to fit
        room = max(W - (x + w), x) - 10
        ps = min(0.7 * s, room / 240)  # the panel is ~235 * ps pixels wide
        if ps >= 0.25:
            _prob_panel(img, r["probs"], x + w + 6 if W - (x + w) - 10 >= x else None, x, y, ps)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _prob_panel(img, probs: dict, left: int | None, box_x: int, top: int, s: float) -> None:
    """Draw the emotion names and probability bars at scale s, from x=left (or ending at box_x when None)."""
    import cv2

    font, H = cv2.FONT_HERSHEY_SIMPLEX, img.shape[0]
    (lw, lh), _ = cv2.getTextSize("surprise", font, s, 1)
    line, bar_w = int(lh * 1.7), int(lw * 0.8)
    width = lw + bar_w + 12
    x0 = left if left is not None else max(0, box_x - 6 - width)
    y1 = min(H, top + len(probs) * line + line // 2)
    sub = img[max(0, top):y1, x0 : x0 + width]
    sub[:] = (sub * 0.35).astype(np.uint8)  # a dark panel keeps the text readable on any photo
    for i, (e, p) in enumerate(probs.items()):
        yy = top + (i + 1) * line
        if yy > H:
            break
        cv2.putText(img, e, (x0 + 3, yy), font, s, (255, 255, 255), 1, cv2.LINE_AA)
        bx = x0 + lw + 8
        cv2.rectangle(img, (bx, yy - lh), (bx + bar_w, yy), (160, 160, 160), 1)
        cv2.rectangle(img, (bx, yy - lh), (bx + int(bar_w * p), yy), _bgr(COLOR_OF.get(e, "#888888")), -1)


def save_rgb(rgb: np.ndarray, path: str | Path) -> Path:
    """Write the picture (RGB) in the format its extension names, atomically (files.write_output)."""
    import cv2

    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:  # an extension OpenCV has no encoder for
        ok = False
    if not ok:
        raise FerkitError(f"{path}: cannot encode the image as {path.suffix or 'a file without an extension'}; give .png or .jpg")
    return write_output(path, data.tobytes())
