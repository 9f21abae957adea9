"""Photos in, 48x48 faces out: safe image loading and face detection.

    load_image(path | bytes | file | PIL image | array) -> RGB uint8 (H, W, 3)
    find_faces(rgb) -> [Face(box=(x, y, w, h), face=uint8 (48, 48))], [] when there is none

Loading honours EXIF orientation, flattens alpha onto white, scales 16-bit images to 8 bits and
turns every failure into an ImageError whose reason is not_found, not_image, corrupt or too_large.

Detection uses OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless 4.x
(the 5.0 wheels dropped both the class and its XML files, hence the `<5` pin). No pip wheel
carries a stronger detector's weights usable here: mediapipe's wheel has no face model (and
needs opencv-contrib-python), facenet-pytorch's MTCNN weights come with torch<2.3 and
torchvision, dlib's must be compiled, and the YuNet wrappers download their model; nothing is
downloaded at run time. Crops are square around the detected box, widened by MARGIN on each side,
which frames a face like FER2013 does (from the hairline to the chin), grey and resized to 48x48.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FerkitError, ImageError

MAX_PIXELS = 40_000_000  # 40 megapixels: larger images are refused (decompression bombs)
SIZE = 48  # FER2013 faces are 48x48
MARGIN = 0.1  # widen the detected box by 10% of its width on each side (FER2013-like framing)
MIN_FACE = 1 / 20  # smallest face searched for, as a fraction of the photo's shorter side
SCALE_STEP = 1.2  # cascade pyramid step: same detections as 1.1 on our test photos, ~1.8x faster
DETECT_SIDE = 1280  # photos are shrunk to this longest side for detection (boxes are scaled back)
CASCADE = "haarcascade_frontalface_default.xml"  # best of OpenCV's frontal cascades on our test photos


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the original photo's pixels
    face: np.ndarray  # (48, 48) uint8 grey crop, as the model expects


# ---------------------------------------------------------------- loading


def load_image(src, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a path, bytes, a binary file object, a PIL image or an array.

    `name` labels the image in error messages (default: the path, or "the image")."""
    from PIL import Image

    if isinstance(src, np.ndarray):
        return _from_array(src, name or "the image")
    if isinstance(src, Image.Image):
        label = name or "the image"
        _check_size(src.size, label, max_pixels)
        return _to_rgb(src, label)
    if isinstance(src, (str, Path)):
        path = Path(src)
        label = name or str(path)
        if path.is_dir():
            raise ImageError(f"{label}: is a folder, not an image; give an image file (JPEG, PNG, ...)", "not_image")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{label}: no such file; check the path", "not_found") from None
        except OSError as e:
            raise ImageError(f"{label}: cannot read the file ({e.strerror or e}); check its permissions", "not_found") from None
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data, label = bytes(src), name or "the image"
    elif hasattr(src, "read"):
        data, label = src.read(), name or getattr(src, "name", None) or "the image"
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"{label}: open the file in binary mode ('rb')", "not_image")
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}; give a path, bytes, a file, a PIL image or an array", "not_image")
    return _decode(bytes(data), str(label), max_pixels)


def _decode(data: bytes, label: str, max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{label}: the file is empty; give a JPEG, PNG or other image file", "not_image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            _check_size(im.size, label, max_pixels)
            im.load()  # a full decode: truncated or damaged data fails here, not later
        except UnidentifiedImageError:
            raise ImageError(f"{label}: not an image, or a format Pillow cannot read; give a JPEG, PNG, BMP, GIF, TIFF or WebP file", "not_image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{label}: too large to decode safely ({e}); shrink it below {max_pixels / 1e6:.0f} megapixels", "too_large") from None
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
            raise ImageError(f"{label}: the image is corrupt or truncated ({e}); re-save or re-download it", "corrupt") from None
    return _to_rgb(im, label)


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(f"{label}: {w}x{h} pixels is too large (limit {max_pixels / 1e6:.0f} megapixels); shrink the image first", "too_large")
    if w < 1 or h < 1:
        raise ImageError(f"{label}: the image has no pixels ({w}x{h})", "corrupt")


def _to_rgb(im, label: str) -> np.ndarray:
    """Any PIL mode -> RGB uint8, upright (EXIF), alpha flattened onto white."""
    from PIL import Image, ImageOps

    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        pass
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, np.float64)
        if im.mode.startswith("I;16") or a.max(initial=0) > 255:
            a = a / 257.0  # 16-bit 0..65535 -> 0..255
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    try:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), np.uint8))
    except (OSError, ValueError) as e:
        raise ImageError(f"{label}: cannot convert its {im.mode} pixels to RGB ({e})", "corrupt") from None


def _from_array(a: np.ndarray, label: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> RGB uint8; floats in 0..1 are scaled."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ImageError(f"{label}: an array of shape {a.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)", "not_image")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
        f = a.astype(np.float64)
        if np.issubdtype(a.dtype, np.floating) and np.nanmax(f) <= 1.0:
            f = f * 255.0
        a = np.clip(np.nan_to_num(f), 0, 255).round().astype(np.uint8)
    else:
        raise ImageError(f"{label}: arrays of dtype {a.dtype} are not images", "not_image")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:  # flatten alpha onto white
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = (a[:, :, :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------- detection

_local = threading.local()  # one cascade per thread: detectMultiScale is not safe to share


def _cascade():
    c = getattr(_local, "cascade", None)
    if c is None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise FerkitError(
                f"OpenCV {cv2.__version__} has no Haar face detector (OpenCV 5 moved it to opencv-contrib); "
                "install OpenCV 4: pip install 'opencv-python-headless>=4.8,<5'"
            )
        c = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
        if c.empty():
            raise RuntimeError(f"OpenCV could not load its face cascade {CASCADE} from {cv2.data.haarcascades}")
        _local.cascade = c
    return c


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> grey uint8 (H, W) with the ITU-R 601 weights (as PIL's 'L')."""
    import cv2

    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def detect_faces(rgb: np.ndarray, min_face: float = MIN_FACE) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the frontal faces in an RGB or grey photo, left to right."""
    import cv2

    grey = to_grey(rgb)
    h, w = grey.shape
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
    side = max(24, int(min(small.shape) * min_face))
    if min(small.shape) < side:
        return []
    found = _cascade().detectMultiScale(cv2.equalizeHist(small), scaleFactor=SCALE_STEP, minNeighbors=5, minSize=(side, side))
    boxes = [tuple(int(round(v / scale)) for v in b) for b in np.asarray(found).reshape(-1, 4)]
    return sorted(boxes, key=lambda b: (b[0], b[1]))


def crop_face(grey: np.ndarray, box, margin: float = MARGIN, size: int = SIZE) -> np.ndarray:
    """The square crop around `box` widened by `margin` per side, resized to (size, size) uint8;
    parts outside the photo repeat its edge pixels."""
    import cv2

    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    x0, y0, s = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), max(1, int(round(side)))
    H, W = grey.shape
    pad = max(0, -x0, -y0, x0 + s - W, y0 + s - H)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = grey[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def find_faces(rgb: np.ndarray, min_face: float = MIN_FACE, margin: float = MARGIN) -> list[Face]:
    """Every face in the photo, as a box and a FER2013-style 48x48 grey crop; [] when none."""
    grey = to_grey(rgb)
    return [Face(b, crop_face(grey, b, margin)) for b in detect_faces(grey, min_face)]
