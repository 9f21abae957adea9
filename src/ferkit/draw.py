"""Annotated copies of photos: each face's box, emotion and score, and its probabilities (one per emotion of the model) as bars.
Drawn with Pillow (ImageDraw, its built-in scalable font) and written in the format the file's extension names."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

from .errors import FerkitError
from .files import write_output
from .labels import COLOR_OF

TEXT = 30  # font size (pixels) at text scale 1: a face 160 px or more wide
SAVE_OPTIONS = {"JPEG": {"quality": 95}}  # Pillow's JPEG default (75) shows blocks around thin lines and text


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@functools.lru_cache(maxsize=32)
def _font(px: int):
    """Pillow's built-in font (Aileron, scalable where Pillow has FreeType) at px pixels."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(max(6, px))
    except (TypeError, ImportError):  # a Pillow without FreeType: its one bitmap size
        return ImageFont.load_default()


def annotate(rgb: np.ndarray, records: list[dict]) -> np.ndarray:
    """A copy of the photo (RGB) with each face's box, label and the probability of each emotion drawn."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    draw = ImageDraw.Draw(img)
    W = img.width
    for r in records:
        x, y, w, h = r["box"]
        colour = _rgb(COLOR_OF.get(r["label"], "#888888"))
        s = float(np.clip(w / 160, 0.35, 1.0))  # text scale follows the face size
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=max(2, round(3 * s)))
        title, font = f"{r['label']} {r['score']:.2f}", _font(round(TEXT * s))
        left, top, right, bottom = draw.textbbox((0, 0), title, font=font, anchor="ls")  # around the baseline's start
        ty = y - 4 - bottom if y - 4 - bottom + top >= 0 else y + h + 4 - top  # above the box, else below it
        draw.rectangle((x, ty + top - 2, x + right - left + 4, ty + bottom + 2), fill=colour)
        draw.text((x + 2 - left, ty), title, fill=(0, 0, 0), font=font, anchor="ls")
        # the probabilities as bars beside the box: right side, else left, shrunk to fit
        room = max(W - (x + w), x) - 10
        ps = min(0.7 * s, room / 240)  # the panel is ~235 * ps pixels wide
        if ps >= 0.25:
            _prob_panel(img, draw, r["probs"], x + w + 6 if W - (x + w) - 10 >= x else None, x, y, ps)
    return np.asarray(img)


def _prob_panel(img, draw, probs: dict, left: int | None, box_x: int, top: int, s: float) -> None:
    """Draw the emotion names and probability bars at scale s, from x=left (or ending at box_x when None)."""
    font = _font(round(TEXT * s))
    lx0, ly0, lx1, _ = draw.textbbox((0, 0), "surprise", font=font, anchor="ls")
    lw, lh = lx1 - lx0, -ly0  # the longest name's width, the letters' height above the baseline
    line, bar_w = int(lh * 1.7), int(lw * 0.8)
    width = lw + bar_w + 12
    x0 = left if left is not None else max(0, box_x - 6 - width)
    y0, y1 = max(0, top), min(img.height, top + len(probs) * line + line // 2)
    if y1 > y0:  # a dark panel keeps the text readable on any photo
        area = (x0, y0, min(img.width, x0 + width), y1)
        img.paste(img.crop(area).point(lambda v: int(v * 0.35)), area[:2])
    for i, (e, p) in enumerate(probs.items()):
        yy = top + (i + 1) * line
        if yy > img.height:
            break
        draw.text((x0 + 3, yy), e, fill=(255, 255, 255), font=font, anchor="ls")
        bx = x0 + lw + 8
        draw.rectangle((bx, yy - lh, bx + bar_w, yy), outline=(160, 160, 160), width=1)
        draw.rectangle((bx, yy - lh, bx + int(bar_w * p), yy), fill=_rgb(COLOR_OF.get(e, "#888888")))


def _format(suffix: str) -> str | None:
    """The Pillow format that writes files ending in `suffix` (.png, .jpg, .webp, ...), or None."""
    from PIL import Image

    Image.preinit()  # BMP, GIF, JPEG, PPM, PNG: the others' plugins only when asked for
    if suffix not in Image.EXTENSION:
        Image.init()
    fmt = Image.EXTENSION.get(suffix)
    return fmt if fmt in Image.SAVE else None


def save_rgb(rgb: np.ndarray, path: str | Path) -> Path:
    """Write the picture (RGB) in the format its extension names, atomically (files.write_output)."""
    from PIL import Image

    path = Path(path)
    fmt, buf = _format(path.suffix.lower()), io.BytesIO()
    try:
        if fmt is None:
            raise KeyError(path.suffix)
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    except (KeyError, OSError, ValueError):  # an extension Pillow has no writer for, or one that cannot hold RGB
        raise FerkitError(f"{path}: cannot encode the image as {path.suffix or 'a file without an extension'}; give .png or .jpg") from None
    return write_output(path, buf.getvalue())
