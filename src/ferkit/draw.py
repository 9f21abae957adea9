"""Annotated copies of photos: each face's box, emotion and score, and its probabilities (one per emotion of the model) as bars.
Drawn with Pillow (ImageDraw, its built-in scalable font, or a font found on the machine for the
letters that one lacks: see FALLBACK_FONTS) and written in the format the file's extension names."""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

import numpy as np

from .errors import FerkitError
from .files import write_output
from .labels import COLOR_OF

log = logging.getLogger(__name__)

TEXT = 30  # font size (pixels) at text scale 1: a face 160 px or more wide
SAVE_OPTIONS = {"JPEG": {"quality": 95}}  # Pillow's JPEG default (75) shows blocks around thin lines and text


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# Pillow's built-in font (Aileron) has ASCII only: a model's emotions named in other letters (é,
# Cyrillic, Greek, Chinese: an image folder's class names) were drawn as boxes. Text it lacks is drawn
# with the first of these fonts that has all its letters (else the one that has the most). None is a
# dependency: DejaVu Sans (Latin, Greek, Cyrillic, ...) ships with matplotlib (the training extra,
# "matplotlib:" below) and with most Linux systems; the CJK ones are found where a system has them.
FALLBACK_FONTS = (
    "matplotlib:DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian, Ubuntu
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",  # Fedora
    "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",  # macOS
    "C:/Windows/Fonts/msyh.ttc",  # Windows: Microsoft YaHei (Latin, Cyrillic, Greek, CJK)
    "C:/Windows/Fonts/arial.ttf",
)
PROBE = 20  # pixel size at which a font's letters are looked up (the answer does not depend on it)


def _font_file(name: str) -> str | None:
    """The file a FALLBACK_FONTS entry names, if this machine has it; matplotlib's is found without importing it."""
    if name.startswith("matplotlib:"):
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec is None or not spec.submodule_search_locations:
            return None
        name = str(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / name.split(":", 1)[1])
    return name if Path(name).is_file() else None


@functools.lru_cache(maxsize=64)
def _face(file: str | None, px: int):
    """Pillow's built-in font (file None; Aileron, scalable where Pillow has FreeType) or a font file, at px pixels."""
    from PIL import ImageFont

    if file is not None:
        return ImageFont.truetype(file, max(6, px))
    try:
        return ImageFont.load_default(max(6, px))
    except (TypeError, ImportError):  # a Pillow without FreeType: its one bitmap size
        return ImageFont.load_default()


@functools.cache
def _faces() -> tuple[str | None, ...]:
    """Pillow's built-in font, then each FALLBACK_FONTS file this machine has and Pillow can open."""
    found = []
    for name in FALLBACK_FONTS:
        file = _font_file(name)
        if file is not None and file not in found:
            try:
                _face(file, PROBE)
            except (OSError, ImportError):  # not a font Pillow reads, or a Pillow without FreeType
                continue
            found.append(file)
    return (None, *found)


@functools.lru_cache(maxsize=4096)
def _has(file: str | None, ch: str) -> bool:
    """Whether the font has a glyph for the character: it does not draw it as its missing-glyph box
    (Pillow cannot ask a font directly; every missing character is drawn with that one glyph)."""
    font = _face(file, PROBE)
    if not hasattr(font, "getmask"):
        return True

    def shape(text):
        m = font.getmask(text)
        return m.size, bytes(m)

    try:
        return ch.isspace() or shape(ch) != shape("\U0010fffd")  # a private-use character no font has
    except (UnicodeError, ValueError, OSError):  # a character this font's layout refuses
        return False


def _font(px: int, text: str = ""):
    """The font for `text` at px pixels: Pillow's built-in one where it has every letter (ASCII), else
    the first of FALLBACK_FONTS that has them all, else the one with the most (the others drawn as boxes)."""
    letters = set(text)
    faces = _faces()
    best = next((f for f in faces if all(_has(f, c) for c in letters)), None) if letters else None
    if best is None and letters:  # (max keeps the first of equals: the earlier font)
        best = max(faces, key=lambda f: sum(_has(f, c) for c in letters))
    return _face(best, px)


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
        title = f"{r['label']} {r['score']:.2f}"
        font = _font(round(TEXT * s), title)
        left, top, right, bottom = draw.textbbox((0, 0), title, font=font, anchor="ls")  # around the baseline's start
        ty = y - 4 - bottom if y - 4 - bottom + top >= 0 else y + h + 4 - top  # above the box, else below it
        draw.rectangle((x, ty + top - 2, x + right - left + 4, ty + bottom + 2), fill=colour)
        draw.text((x + 2 - left, ty), title, fill=(0, 0, 0), font=font, anchor="ls")
        # the probabilities as bars beside the box: right side, else left, shrunk to fit
        room = max(W - (x + w), x) - 10
        # the panel is ~240 * ps pixels wide with FER's emotion names, wider with longer ones
        ps = min(0.7 * s, room / max(240, _panel_size(tuple(r["probs"]), TEXT)[0]))
        if ps >= 0.25:
            _prob_panel(img, draw, r["probs"], x + w + 6 if W - (x + w) - 10 >= x else None, x, y, ps)
    return np.asarray(img)


@functools.lru_cache(maxsize=256)
def _panel_size(names: tuple[str, ...], px: int) -> tuple[int, int, int]:
    """The probability panel's width for these emotion names at px pixels, the names' width (the
    longest, and at least "surprise"'s: the bars keep their length) and their height above the baseline."""
    text = "".join(names)
    font = _font(px, text)
    boxes = [font.getbbox(n, anchor="ls") for n in ("surprise", *names, text)]
    lw, lh = max(b[2] - b[0] for b in boxes[:-1]), max(-b[1] for b in (boxes[0], boxes[-1]))
    return lw + int(lw * 0.8) + 12, lw, lh


def _prob_panel(img, draw, probs: dict, left: int | None, box_x: int, top: int, s: float) -> None:
    """Draw the emotion names and probability bars at scale s, from x=left (or ending at box_x when None)."""
    px = round(TEXT * s)
    font = _font(px, "".join(probs))
    width, lw, lh = _panel_size(tuple(probs), px)  # the longest name's width, the letters' height above the baseline
    line, bar_w = int(lh * 1.7), int(lw * 0.8)
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


def check_encodable(path: str | Path, flag: str = "") -> str:
    """The Pillow format path's extension names, or a FerkitError (flag: the option that gave path) when
    Pillow has no writer for it or it cannot hold RGB: said before any work, where a command can."""
    path = Path(path)
    fmt = _format(path.suffix.lower())
    if fmt is None:
        raise FerkitError(f"{f'{flag} ' if flag else ''}{path}: cannot encode the image as "
                          f"{path.suffix or 'a file without an extension'}; give .png or .jpg")
    return fmt


def encode_rgb(rgb: np.ndarray, path: str | Path) -> bytes:
    """The picture (RGB) encoded in the format path's extension names."""
    from PIL import Image

    path = Path(path)
    fmt, buf = check_encodable(path), io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    except (OSError, ValueError) as e:  # a size the format cannot hold (WebP 16,383 pixels a side, JPEG 65,500)
        raise FerkitError(f"{path}: cannot encode this {rgb.shape[1]}x{rgb.shape[0]} image as {path.suffix} ({e}); "
                          "give .png") from None
    return buf.getvalue()


def save_rgb(rgb: np.ndarray, path: str | Path) -> Path:
    """Write the picture (RGB) in the format its extension names, atomically (files.write_output)."""
    return write_output(path, encode_rgb(rgb, path))


def no_copy(copy: str | Path, source: str | Path, why: str) -> None:
    """Say that the annotated copy of a photo or video could not be written (a full disk, a folder
    gone read-only, a size OpenCV cannot encode): a warning, not an error, for the faces were
    predicted all the same and stay in the results (--json, --csv) instead of being lost with the copy."""
    log.warning("%s: no annotated copy of %s (%s); its faces are predicted all the same", copy, Path(source).name, why)
