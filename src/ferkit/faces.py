"""Photos in, 48x48 faces out: safe image loading, face detection, alignment and the crop.

    load_image(path | bytes | file | PIL image | array) -> RGB uint8 (H, W, 3)
    detect_faces(rgb, detector="yunet") -> [Detection(box, score, landmarks)], left to right
    find_faces(rgb, detector="yunet", align=True) -> [Face(box, face=uint8 (48, 48), score, landmarks, angle)]
    whole_face(rgb) -> uint8 (48, 48): a photo that already is a face crop (FER data sets)

A model with another input (its spec's in_size and channels) gets faces of its own: find_faces and
whole_face take `size` and `channels` (3: the crop stays RGB, (size, size, 3); same framing).

Loading accepts the formats a photo tool meets (FORMATS), honours EXIF orientation, flattens
alpha onto white, scales 16-bit images to 8 bits and turns every failure, whatever the decoder
raised, into an ImageError whose reason is not_found, not_image, corrupt or too_large.

Detection (detectors.py): YuNet by default, OpenCV's Haar cascade with detector="haar" (the
[opencv] extra). Photos are shrunk to the detector's working size (its `side`) and boxes and
landmarks scaled back. No OpenCV here: Pillow and numpy do every image operation (the light install).
The crop (crop_face, the one place of the framing) is the square around the face widened by
MARGIN on each side, which frames a face like FER2013 does (hairline to chin), grey, 48x48
(or at the model's size, in colour for a colour model).
With YuNet's eye landmarks the square is first turned so that the eyes are level (align=True).
"""

from __future__ import annotations

import errno
import functools
import io
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import check_args, problem
from .detectors import Detection
from .errors import FerkitError, ImageError, quoted
from .files import VIDEO_EXTS
from .runs import is_number, is_whole

MAX_PIXELS = 40_000_000  # 40 megapixels: larger images are refused (decompression bombs)
# Scans a JPEG may hold. Each is a pass over all of the image's coefficients, and a scan of a blank
# one is a few bytes: 1,000 repeats of one (125 KB) made a 16 MP photo decode for 45 s, and a 10 MB
# upload of them held a worker for hours. Encoders write at most a few dozen (libjpeg's progressive
# script: 10); 256 is the limit NVIDIA's nvImageCodec sets against the same attack.
MAX_JPEG_SCANS = 256
SIZE = 48  # FER2013 faces are 48x48
MARGIN = 0.1  # widen the detected box by 10% of its width on each side (FER2013-like framing)
# The widest margin taken: a square 5x the box's side, the face a fifth of the crop (10 of 48 pixels). Framings
# that work lie near MARGIN (docs/models.md compares 0 to 0.3); 50 was a 100x wider square to sample.
MAX_MARGIN = 2
DETECTOR = "yunet"
# Faces under this many pixels at the detector's working side are what its second, finer look
# (Detector.fine_side) adds; a photo whose faces are all over twice that (a portrait) gets none
FINE_ONLY = 24
REDUCE = 4  # crop_face samples a face at >= 4x the crop's size, from the photo's k x k means when it is larger


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the original photo's pixels, as the detector drew it
    face: np.ndarray  # uint8 crop as the model expects: (48, 48) grey, or (size, size, 3) RGB for a colour model
    score: float = 1.0  # the detector's confidence (yunet 0..1; haar: unbounded)
    landmarks: np.ndarray | None = None  # (5, 2) eyes, nose tip, mouth corners in the photo's pixels (yunet)
    angle: float = 0.0  # degrees the crop was turned to level the eyes


# ---------------------------------------------------------------- loading


def formats() -> tuple[str, ...]:
    """The Pillow formats load_image decodes: photos (JPEG, with its MPO variant, PNG, WebP, BMP, GIF,
    TIFF), the PGM/PPM of some face data sets, AVIF and HEIF where a Pillow plugin reads them.
    The dozens of other formats Pillow knows (BLP, DDS, SPIDER, IM, ...) are refused: a photo tool
    does not need them, and their decoders are where damaged files raised uncaught errors."""
    import contextlib

    from PIL import Image

    # These plugins only, not Image.init()'s ~40: it cost a cold `ferkit predict` 0.12 s. HEIF is
    # there when the application registered a plugin for it (pillow-heif); AVIF, where Pillow has it.
    Image.preinit()  # BMP, GIF, JPEG, PPM, PNG
    from PIL import TiffImagePlugin, WebPImagePlugin  # noqa: F401

    with contextlib.suppress(ImportError):
        from PIL import AvifImagePlugin  # noqa: F401
    return ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM") + tuple(f for f in ("AVIF", "HEIF") if f in Image.OPEN)


NOT_IMAGE = "not an image, or a format ferkit does not read; give a JPEG, PNG, WebP, BMP, GIF or TIFF file"


# ISO base media (MP4, QuickTime, 3GP) brands of videos; AVIF and HEIF photos have the same box, with their own brands
VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4VH", b"M4VP",
                b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"mmp4", b"MSNV", b"f4v "}


def video_container(data: bytes) -> tuple[str, str] | None:
    """("an MP4", ".mp4"), ("an AVI", ".avi"), ("a Matroska", ".mkv") or ("an MPEG", ".mpg") where the bytes
    begin as a video file of that kind, else None."""
    if data[4:8] == b"ftyp" and data[8:12] in VIDEO_BRANDS:
        return "an MP4", ".mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "an AVI", ".avi"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # (WebM too: .mkv reads both)
        return "a Matroska", ".mkv"
    if data[:4] == b"\x00\x00\x01\xba":
        return "an MPEG", ".mpg"
    return None


def load_image(src, name: str | None = None, max_pixels: int = MAX_PIXELS, *, video_fix: str | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a path, bytes, a binary file object, a PIL image or an array.

    `name` labels the image in error messages (default: the path, or "the image"). `video_fix` is what the
    message of a video given here says to do (default: how `ferkit predict` reads it as a video), for a
    caller that wants one image and nothing else (visualize: save a frame)."""
    from PIL import Image

    if not (is_number(max_pixels) and max_pixels >= 1):
        raise FerkitError(problem("max_pixels", "a number of pixels >= 1", max_pixels))
    if isinstance(src, np.ndarray):  # a subclass as its plain array (np.matrix's max() takes no initial=: a TypeError)
        return _from_array(np.asarray(src), name or "the image", max_pixels)
    if isinstance(src, Image.Image):
        label = name or "the image"
        _check_size(src.size, label, max_pixels)
        return _guarded(lambda: pil_to_rgb(src), label, max_pixels)
    if isinstance(src, (str, os.PathLike)):
        text = os.fsdecode(src)
        label = name or quoted(text)  # as given (Path("http://x") would print http:/x), up to a length
        if not text:  # (Path("") is the current folder)
            raise ImageError(f"{name or 'the path'}: empty; give an image file", "not_found")
        path = Path(text)
        try:
            st = path.stat()
            if stat.S_ISDIR(st.st_mode):
                raise ImageError(f"{label}: is a folder, not an image; give an image file (JPEG, PNG, ...)", "not_image")
            if not stat.S_ISREG(st.st_mode):  # a pipe or a device: reading could block forever
                raise ImageError(f"{label}: not a regular file (a pipe, socket or device); give an image file", "not_image")
            if st.st_size > max_file_bytes(max_pixels):  # read whole, it could take all the memory first
                raise _file_too_big(label, f"{st.st_size / 2**20:,.0f}", max_pixels)
            data = path.read_bytes()
        except FileNotFoundError:
            raise no_such_file(label, text) from None
        except OSError as e:  # (a name too long, a loop of links, no permission)
            fix = {errno.ELOOP: "a symbolic link that leads back to itself; fix or remove the link",
                   errno.EACCES: "check its permissions", errno.EPERM: "check its permissions"}.get(e.errno, "check the path")
            raise ImageError(f"{label}: cannot read the file ({e.strerror or e}); {fix}", "not_found") from None
        except MemoryError:
            raise ImageError(f"{label}: not enough memory to read it; give a smaller image", "too_large") from None
        except ValueError as e:  # a NUL character, or a lone surrogate the file system's encoding has no bytes for
            raise ImageError(f"{name or quoted(repr(text))}: not a path ({e}); check the path", "not_found") from None
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data, label = bytes(src), name or "the image"
        try:
            return _decode(data, str(label), max_pixels, video_fix)
        except ImageError as e:
            if e.reason == "not_image" and _names_a_file(data):  # load_image(b"/path/to/photo.jpg"): "not an image"
                raise ImageError(f"{e}; these bytes are the path of a file, {quoted(os.fsdecode(data))}: give it as a str, "
                                 "os.fsdecode(path) (bytes are read as the image itself)", e.reason) from None
            raise
    elif hasattr(src, "read"):
        label = name or getattr(src, "name", None) or "the image"
        data = _read_file(src, label, max_pixels)
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}; give a path, bytes, a file, a PIL image or an array", "not_image")
    return _decode(bytes(data), str(label), max_pixels, video_fix)


def _names_a_file(data: bytes) -> bool:
    """Whether bytes given as an image's contents are rather the path of an existing file: short (a path's
    length, PATH_MAX on Linux), with no NUL (which no path holds, and most image files do)."""
    return 0 < len(data) <= 4096 and b"\0" not in data and os.path.isfile(data)


NOT_URLS = "a URL; ferkit reads local files, not URLs: download it and give the file's path"


def is_url(text: str) -> bool:
    """Whether a photo or video 'path' is a URL (scheme://...), which ferkit does not read."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def no_such_file(label: str, text: str) -> ImageError:
    """The error for a photo or video path `text` with no file: a URL is said to be one (ferkit reads no URLs, and
    'no such file; check the path' of https://... named no fix)."""
    if is_url(text):
        return ImageError(f"{label}: {NOT_URLS} (from Python, its bytes do too)", "not_found")
    return ImageError(f"{label}: no such file; check the path", "not_found")


def max_file_bytes(max_pixels: int) -> int:
    """The largest image file load_image reads: max_pixels uncompressed at 16 bits a channel, RGBA, and room for
    metadata. A larger file cannot hold an image it accepts, and is not read into memory at all."""
    return 8 * max_pixels + 2**24


def _read_file(f, label, max_pixels: int) -> bytes:
    """A file object's bytes from where it stands, or one ImageError: held to max_file_bytes as a path's
    file is (a stream such as /dev/zero or a pipe has no end to read to), in reads of at most 16 MiB."""
    limit, parts, n = max_file_bytes(max_pixels), [], 0
    try:
        while n <= limit:
            part = f.read(int(min(limit + 1 - n, 2**24)))  # (a raw file or a pipe may return less than asked)
            if not isinstance(part, (bytes, bytearray)):
                raise ImageError(f"{label}: open the file in binary mode ('rb')", "not_image")
            if not part:
                break
            parts.append(part)
            n += len(part)
    except UnicodeDecodeError:  # a file opened in text mode
        raise ImageError(f"{label}: open the file in binary mode ('rb')", "not_image") from None
    except (OSError, ValueError) as e:  # a closed file, one opened for writing, a read that failed
        raise ImageError(f"{label}: cannot read the file ({type(e).__name__}: {e}); give a file open for reading ('rb')",
                         "not_found") from None
    if n > limit:
        raise _file_too_big(label, f"over {limit / 2**20:,.0f}", max_pixels)
    return b"".join(parts)


def _file_too_big(label: str, mib: str, max_pixels: int) -> ImageError:
    return ImageError(f"{label}: {mib} MiB is too big for a photo of at most {max_pixels / 1e6:.0f} megapixels; "
                      "give a smaller image", "too_large")


def _decode(data: bytes, label: str, max_pixels: int, video_fix: str | None = None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from .tiff import silence_tiff_messages

    silence_tiff_messages()  # a damaged TIFF is one message (below), not also libtiff's lines on stderr
    if not data:
        raise ImageError(f"{label}: the file is empty; give a JPEG, PNG or other image file", "not_image")

    def decode():
        try:
            im = Image.open(io.BytesIO(data), formats=formats())
        except UnidentifiedImageError:
            video = video_container(data)
            if video:  # (a video named .jpg was "not an image ... give a JPEG", with no word of what it is)
                raise ImageError(f"{label}: {video[0]} video, not an image; {video_fix or _video_fix(label, video[1])}",
                                 "not_image") from None
            raise ImageError(f"{label}: {NOT_IMAGE}", "not_image") from None
        _check_size(im.size, label, max_pixels)
        if im.format in ("JPEG", "MPO") and jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:  # before the decode
            raise ImageError(f"{label}: a JPEG of over {MAX_JPEG_SCANS} scans, which no camera or editor writes (a few "
                             "dozen at most) and which would take minutes to decode (each is a pass over the whole "
                             "image); re-save it, e.g. as PNG", "corrupt")
        im.load()  # a full decode: truncated or damaged data fails here, not later
        return pil_to_rgb(im)

    return _guarded(decode, label, max_pixels)


# A marker in a JPEG's entropy-coded data: FF and a byte that is not 00 (a stuffed FF), FF (fill) or D0-D7 (a restart)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def jpeg_scans(data: bytes, limit: int) -> int:
    """The scans (SOS segments) of the first image in JPEG data, counted up to limit + 1, from its markers
    alone: segments are skipped by their length (an EXIF thumbnail's scans are not counted), the image ends
    at its EOI (an MPO's other images follow), and a damaged file is counted as far as it goes."""
    scans, pos = 0, 2  # after SOI
    while scans <= limit and (m := _JPEG_MARKER.search(data, pos)) is not None:
        marker, pos = data[m.start() + 1], m.end()
        if marker == 0xD9:  # EOI
            break
        if marker in (0x01, 0xD8):  # TEM, SOI: no length follows
            continue
        scans += marker == 0xDA  # SOS: its entropy-coded data follows its header, up to the next marker
        pos += int.from_bytes(data[pos:pos + 2], "big")
    return scans


def _video_fix(label: str, suffix: str) -> str:
    """What to do with a video given where a photo is read: a video's name already (Predictor.predict("clip.mp4"))
    is read as one by `ferkit predict`, so renaming it (what was said) changes nothing."""
    if Path(label).suffix.lower() in VIDEO_EXTS:
        return "`ferkit predict` reads videos (from Python: ferkit.video.predict_video(predictor, path))"
    return f"name it {suffix} for `ferkit predict` to read it as a video"


def _guarded(decode, label: str, max_pixels: int) -> np.ndarray:
    """decode() with every failure of a decoder turned into an ImageError: ferkit processes folders
    of photos from anywhere, and one damaged file must cost a message, never the whole run."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on damaged metadata: the pixels decide
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return decode()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{label}: too large to decode safely (a decompression bomb, by Pillow's check); shrink it "
                             f"below {min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels) / 1e6:.0f} megapixels",
                             "too_large") from None
        except MemoryError:
            raise ImageError(f"{label}: not enough memory to decode it; shrink the image", "too_large") from None
        except Exception as e:
            raise ImageError(f"{label}: the image is corrupt or truncated ({type(e).__name__}: {e}); re-save or re-download it", "corrupt") from None


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(f"{label}: {w}x{h} pixels is too large (limit {max_pixels / 1e6:.0f} megapixels); shrink the image first", "too_large")
    if w < 1 or h < 1:
        raise ImageError(f"{label}: the image has no pixels ({w}x{h})", "corrupt")


def pil_to_rgb(im) -> np.ndarray:
    """Any PIL mode -> RGB uint8, upright (EXIF), alpha flattened onto white, 16-bit scaled to 8: how
    every image ferkit reads is decoded (photos here, the images of a data set in data.py)."""
    from PIL import ExifTags, Image, ImageOps

    try:  # (exif_transpose copies an upright image too, 4 bytes a pixel: called for a turned one alone)
        if im.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        pass
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _deep_grey_array(im)
    if im.mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts La to nothing but LA
        im = im.convert(im.mode.upper())
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im if im.mode == "RGBA" else im.convert("RGBA"))
        del white  # (each image here is 4 bytes a pixel: one fewer held while it converts)
    if im.mode != "RGB":  # (convert copies an RGB image too; named im, the image it was made from is let go)
        im = im.convert("RGB")
    return _rgb_array(im)


def _rgb_array(im) -> np.ndarray:
    """An RGB PIL image as an (H, W, 3) uint8 array, filled a strip of rows at a time: np.asarray(im)
    goes through im.tobytes(), which joins its chunks into a second copy (6 bytes a pixel at once)."""
    w, h = im.size
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, 2**20 // (3 * w))  # strips of about 1 MB
    for y in range(0, h, rows):
        out[y:y + rows] = np.asarray(im.crop((0, y, w, min(h, y + rows))))
    return out


def _deep_grey_array(im) -> np.ndarray:
    """A 16-bit, 32-bit or float grey PIL image as an (H, W, 3) uint8 array, scaled by _to_uint8 a strip of rows at
    a time: the whole image as floats (np.array of it, through tobytes) peaked at 13 bytes a pixel. The top value
    that scales an "I" or "F" image is found first (a float one's a strip at a time too; 16-bit ones scale by 1/257)."""
    w, h = im.size
    sixteen, floats = im.mode.startswith("I;16"), im.mode == "F"
    rows = max(1, 2**18 // w)  # strips of about 1 MB as float32

    def strip(y: int) -> np.ndarray:  # (a copy to work on in place: np.asarray's view of tobytes is read-only)
        return np.array(im.crop((0, y, w, min(h, y + rows))), np.float32)

    if sixteen:  # (scaled whatever their top)
        top = 0
    elif floats:  # (NaN left out: getextrema would not)
        top = max(np.nanmax(np.asarray(im.crop((0, y, w, min(h, y + rows)))), initial=0) for y in range(0, h, rows))
    else:
        top = max(im.getextrema()[1], 0)
    out = np.empty((h, w, 3), np.uint8)
    for y in range(0, h, rows):
        grey = _to_uint8(strip(y), top, sixteen, floats)
        for c in range(3):  # (a channel at a time: numpy's broadcast of grey[:, :, None] into the strip was 6x slower)
            out[y:y + rows, :, c] = grey
    return out


def _to_uint8(f: np.ndarray, top: float, sixteen: bool, floats: bool) -> np.ndarray:
    """Pixel values in a float array (worked on in place) as uint8, the one rule for arrays and PIL's
    16-bit and float modes: 16-bit values (`sixteen`, or a `top` value over 255) scaled by 1/257, floats
    of at most 1 by 255; NaN as 0, then rounded and clipped to 0..255."""
    if sixteen or top > 255:
        f /= 257.0
    elif floats and top <= 1.0:
        f *= 255.0
    np.clip(np.rint(np.nan_to_num(f, copy=False), out=f), 0, 255, out=f)
    return f.astype(np.uint8)


def _from_array(a: np.ndarray, label: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> RGB uint8, scaled by _to_uint8 as pil_to_rgb scales.
    Held to max_pixels as a decoded file is: the conversion and the detector copy it (a np.broadcast_to
    view of 10**10 pixels holds none of them until then)."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ImageError(f"{label}: an array of shape {a.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)", "not_image")
    _check_size((a.shape[1], a.shape[0]), label, max_pixels)
    if a.dtype == np.uint8:
        pass
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind in "iuf":  # (by kind: numpy's issubdtype counts timedelta64 as an integer)
        f = a.astype(np.float64)  # one copy, worked on in place: each float64 temporary costs 24 bytes a pixel
        finite = np.isfinite(f)
        if not finite.any():
            raise ImageError(f"{label}: every value of the array is nan or infinite; not an image", "not_image")
        top, low = np.max(f, where=finite, initial=-np.inf), np.min(f, where=finite, initial=np.inf)
        del finite
        if low < 0 and -low > (top - low) / 10:  # (a resampler's overshoot below 0 is clipped, as values over the top are)
            # a tensor normalized for a network (x / 127.5 - 1, ImageNet's mean and std): clipped to 0 and read as
            # 0..255 it was a black photo, no face found or every face neutral, without a word
            raise ImageError(f"{label}: values from {low:.4g} to {top:.4g} are not pixels, which run from 0 (black) to "
                             "1 or 255 (white); undo the normalization first (e.g. x * std + mean)", "not_image")
        # uint16 in either byte order (a big-endian one is not == np.uint16); values over 255 in a wider type are
        # 16-bit ones too (np.asarray of a PIL "I" image is int32)
        a = _to_uint8(f, top, sixteen=a.dtype.kind == "u" and a.dtype.itemsize == 2, floats=a.dtype.kind == "f")
    else:
        raise ImageError(f"{label}: arrays of dtype {a.dtype} are not images", "not_image")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:  # flatten alpha onto white
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = (a[:, :, :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def face_batch(faces, shape: tuple[int, ...], model="this model") -> np.ndarray:
    """uint8 faces as (N, *shape), the input of a model that takes faces of `shape` ((size, size) grey
    or (size, size, 3) colour); one face, or faces flattened to rows, are taken too. Faces of another
    shape are one error naming both, never regrouped (16 grey 48x48 faces hold the pixels of 3 colour 64x64 ones)."""
    if isinstance(faces, (list, tuple)) and not faces:  # no faces (numpy makes [] float64: "got float64 values")
        return np.zeros((0, *shape), np.uint8)
    try:
        faces = np.asarray(faces)
    except ValueError as e:  # faces of different sizes in a list: numpy's 'inhomogeneous shape' error was the message
        raise FerkitError(f"{model} takes uint8 faces as one array (N, {', '.join(map(str, shape))}); got a "
                          f"{type(faces).__name__} numpy cannot make one array of ({str(e).split('. ')[0]}): "
                          "faces of different sizes?") from None
    if faces.dtype != np.uint8:  # a cast would wrap 300 to 44 and turn 0..1 floats black, without a word
        ints = faces.dtype.kind in "iu" and (not faces.size or 0 <= faces.min() and faces.max() <= 255)
        if not ints:
            got = f"{faces.dtype} values" + (f" from {faces.min():g} to {faces.max():g}" if faces.dtype.kind in "iuf" and faces.size else "")
            raise FerkitError(f"{model} takes uint8 faces (0..255); got {got}; convert them, e.g. "
                              "np.uint8(np.clip(np.round(faces * 255), 0, 255)) for floats in 0..1")
        faces = faces.astype(np.uint8)
    if faces.shape[-len(shape):] != shape and not (faces.ndim <= 2 and faces.shape[-1:] == (int(np.prod(shape)),)):
        kind, size = "grey" if len(shape) == 2 else "colour", shape[0]
        raise FerkitError(f"{model} takes uint8 {kind} faces (N, {', '.join(map(str, shape))}); got an array of shape "
                          f"{faces.shape}; crop them with find_faces(rgb, size={size}, channels={1 if len(shape) == 2 else shape[2]}) "
                          "or run a model made for them")
    return faces.reshape(-1, *shape)


# ---------------------------------------------------------------- detection, alignment, crop


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> grey uint8 (H, W) with the ITU-R 601 weights (PIL's 'L', the same
    fixed-point rounding as OpenCV's RGB2GRAY)."""
    from PIL import Image

    return rgb if rgb.ndim == 2 else np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def _shrink(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo (uint8, grey or RGB) shrunk to size (w, h) by Pillow's box filter (the average of the
    pixels each output pixel covers): what the detectors look at."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BOX))


MIN_FACE = "None (the detector's floor) or a fraction of the photo's shorter side in (0, 1]"  # what min_face must be


def min_face_fits(min_face) -> bool:
    """Whether min_face is one that detect_faces (and Predictor.predict) takes: MIN_FACE."""
    return min_face is None or is_number(min_face) and 0 < min_face <= 1


def _finite(x) -> bool:
    return is_number(x) and math.isfinite(x)


def _check_crop(size, channels=1, margin=MARGIN, angle=0.0, boxes=()) -> None:
    """The crop's arguments of find_faces, whole_face and crop_face (boxes: its one box), else one
    FerkitError naming each bad one: size=0 was a ZeroDivisionError, -5 a (0, 0) array, channels=2 silently an RGB
    crop; a NaN margin a ValueError, a box of 3 numbers an unpacking one, margin=1e308 an OverflowError; a NaN or
    infinite angle or box, a margin of -0.5 or less (a square of no side) or a box of no width silently a crop of
    something else."""
    check_args(("size", size, "a whole number >= 1 (the crop's side in pixels)", is_whole(size) and size >= 1),
               ("channels", channels, "1 (a grey crop) or 3 (RGB)", is_whole(channels) and channels in (1, 3)),
               ("margin", margin, f"a number > -0.5 and <= {MAX_MARGIN} (the widening of each side, a fraction of the "
                "box's side)", _finite(margin) and -0.5 < margin <= MAX_MARGIN),
               ("angle", angle, "a finite number of degrees", _finite(angle)),
               *[("box", box, "4 finite numbers (x, y, w, h) with w and h > 0", _is_box(box)) for box in boxes])


def _is_box(box) -> bool:
    """(x, y, w, h): 4 finite numbers in a tuple, list or 1-d array, w and h > 0."""
    return ((isinstance(box, (tuple, list)) or isinstance(box, np.ndarray) and box.ndim == 1)
            and len(box) == 4 and all(map(_finite, box)) and box[2] > 0 and box[3] > 0)


def detect_faces(rgb: np.ndarray, detector: str = DETECTOR, min_face: float | None = None) -> list[Detection]:
    """The faces in an RGB (or grey) photo, left to right, in its pixels; [] when none. The photo is a
    uint8 array (H, W, 3) or (H, W); any other image (an RGBA or float array, a PIL image, a path) is read by load_image.
    Faces smaller than `min_face` x the photo's shorter side are left out (None: the detector's
    own floor, Detector.min_face). A photo larger than the detector's fine_side is looked at twice:
    shrunk to its working side, then to fine_side for the faces too small to see there."""
    from .detectors import get_detector

    if not min_face_fits(min_face):  # ('a' was a TypeError inside the detector, 2 silently no face)
        raise FerkitError(problem("min_face", MIN_FACE, min_face))
    find = get_detector(detector)
    rgb = as_photo(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    min_side = min(h, w) * (find.min_face if min_face is None else min_face)  # in the photo's pixels
    found = _detect_at(rgb, find, find.side, min_side)
    small = FINE_ONLY * max(h, w) / find.side  # in the photo's pixels
    if find.fine_side and max(h, w) > find.fine_side and (not found or min(max(d.box[2:]) for d in found) < 2 * small):
        # No face, or small ones (a group photo's front row): there may be faces too small to see.
        # Of the second look, only those: a large face seen up close can score a part of itself
        # (an eye, a mouth) as one more face.
        found += [d for d in _detect_at(rgb, find, find.fine_side, min_side)
                  if max(d.box[2:]) < small and not any(_centre_in(d.box, f.box) for f in found)]
    return sorted(found, key=lambda d: (d.box[0], d.box[1]))


def _centre_in(box, other) -> bool:
    """Whether box's centre lies in `other` (x, y, w, h): the same face, seen twice."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return other[0] <= cx <= other[0] + other[2] and other[1] <= cy <= other[1] + other[3]


def _detect_at(rgb: np.ndarray, find, side: int, min_side: float) -> list[Detection]:
    """The faces `find` sees in the photo shrunk to `side` (longest side; never enlarged), at least
    min_side pixels of the photo, in the photo's pixels."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = _shrink(rgb, (max(1, round(w * scale)), max(1, round(h * scale)))) if scale < 1 else rgb
    found = []
    for d in find(small, int(min_side * scale)):
        if max(d.box[2], d.box[3]) < min_side * scale:
            continue
        lm = None if d.landmarks is None else d.landmarks / scale
        found.append(Detection(tuple(v / scale for v in d.box), d.score, lm))
    return found


def eye_angle(landmarks: np.ndarray) -> float:
    """Degrees the eye line slopes down to the right (image coordinates); rotating the photo by
    this much (counter-clockwise) levels the eyes."""
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(dy, dx)))


@functools.lru_cache(maxsize=256)
def _resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """How one axis of n_in pixels is resized to n_out: (n_out, taps) input indices and float32 weights.
    Shrinking, each output pixel is the mean of the input it covers, fractions at the ends (OpenCV's
    INTER_AREA); enlarging, linear interpolation between pixel centres, the edge pixels repeated
    (INTER_LINEAR)."""
    scale = n_in / n_out
    if scale >= 1:
        edges = np.arange(n_out + 1) * scale
        first = np.floor(edges[:-1]).astype(int)
        idx = first[:, None] + np.arange(int(np.ceil(scale)) + 1)
        cover = np.minimum(idx + 1, edges[1:, None]) - np.maximum(idx, edges[:-1, None])
        w = np.clip(cover, 0, None) / scale
    else:
        src = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        idx, w = np.stack([lo, lo + 1], 1), np.stack([1 - (src - lo), src - lo], 1)
    return np.minimum(idx, n_in - 1), w.astype(np.float32)  # an index past the end has weight 0


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 picture (grey or with channels) to (size, size) as _resize_taps weighs it, one
    axis at a time, a few elementwise passes over the pixels each output pixel takes (not matrix
    products: BLAS's threads cost more than the work at these sizes)."""
    out = a.astype(np.float32)
    for axis in (0, 1):
        idx, w = _resize_taps(out.shape[axis], size)
        w = w.reshape(w.shape[:1] + (1,) * (out.ndim - 1) + w.shape[1:]) if axis == 0 else w.reshape((1,) + w.shape[:1] + (1,) * (out.ndim - 2) + w.shape[1:])
        acc = w[..., 0] * np.take(out, idx[:, 0], axis)
        for t in range(1, idx.shape[1]):
            acc += w[..., t] * np.take(out, idx[:, t], axis)
        out = acc
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _inside(lo: int, hi: int, n: int) -> tuple[int, int]:
    """lo..hi clipped to an axis of length n, at least one pixel (the nearest edge's) when all of it is outside."""
    a = min(max(lo, 0), n - 1)
    return a, max(min(hi, n), a + 1)


def _pads(lo: int, a: int, b: int, hi: int, k: int) -> tuple[int, int, int, int]:
    """Along one axis, the photo's pixels a..b edge-padded to lo..hi and cut in k-pixel blocks from lo: the
    pixels to pad a..b by before (left, right), and the blocks of means to pad its k x k means by after (left,
    right). Past the block a photo edge falls in and one whole block of edge pixels, each block's mean repeats
    that one's, so the rest is padded after: the same means, from at most 2k pixels of padding a side."""
    left = min(a - lo, (a - lo) % k + k)
    right = min(hi - b, -(b - lo) % k + k)  # to the end of the last photo pixel's block, and one block more
    start = lo + (a - lo - left)  # of the padded part: whole blocks from lo
    return left, right, (start - lo) // k, -(-(hi - lo) // k) - (start - lo) // k - -(-(b + right - start) // k)


def _edge_pad(a: np.ndarray, pad) -> np.ndarray:
    """The picture (grey or with channels) padded by ((top, bottom), (left, right)) of its edge pixels."""
    return np.pad(a, tuple(pad) + ((0, 0),) * (a.ndim - 2), mode="edge")


def crop_face(grey: np.ndarray, box, margin: float = MARGIN, size: int = SIZE, angle: float = 0.0) -> np.ndarray:
    """The square around `box` (side = its longer side) widened by `margin` per side, turned by
    `angle` degrees about its centre, resized to (size, size) uint8; parts outside the photo repeat
    its edge pixels. The one place of the FER2013-style framing. `grey` may also be an RGB photo
    (H, W, 3): the crop is then (size, size, 3), framed the same (each channel as it alone would be).

    The square is sampled bilinearly (Pillow's affine transform) at the photo's resolution, or for a
    face over REDUCE x the crop's size at 1/k of it (Pillow's exact k x k means first, k as large as
    keeps >= REDUCE x the crop's size), then shrunk by area (_resize): never aliased, and a large
    face costs about what a small one does. A square far past the photo costs at most a few times the
    photo's memory (_pads); one over `size` x the photo's shorter side (the photo under a pixel of the crop
    across; w=1e300 was an OverflowError, a 50,000-pixel square a 2.5 GB padding) is a FerkitError."""
    _check_crop(size, margin=margin, angle=angle, boxes=(box,))
    return _crop(grey, box, margin, size, angle)


def _crop(image: np.ndarray, box, margin: float, size: int, angle: float) -> np.ndarray:
    """crop_face once its arguments are checked: find_faces checks size and margin once for all the faces of a photo
    and crops each here, its square and angle made of the detector's box and landmarks (the square's side > 0: the
    box's longer side is past _detect_at's floor; a NaN or inf box stops at find_faces' rounding)."""
    from PIL import Image

    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    shortest = min(image.shape[:2])  # (k <= shortest / REDUCE, so _pads pads by at most about the photo's shorter side)
    if not max(w, h) * (1 + 2 * margin) <= size * shortest:
        raise FerkitError(f"box {tuple(box)} with margin {margin} frames a square over {size} x the photo's shorter side "
                          f"({shortest} pixels): the photo would fill under one pixel of the {size}x{size} crop across; "
                          "give the box of a face in this photo, in its pixels")
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    k = max(1, side // (REDUCE * size))
    out = side if k == 1 else round(side / k)  # the square is sampled out x out
    # crop pixel (u, v) -> photo point c + R (u - side/2, v - side/2): the square's centre on the box's,
    # turned counter-clockwise by `angle` (as OpenCV's getRotationMatrix2D + warpAffine drew it)
    cos, sin = float(np.cos(np.radians(angle))), float(np.sin(np.radians(angle)))
    half = (side - 1) / 2
    corners = np.array([cx, cy]) + (np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * half + (half - side / 2)) @ np.array([[cos, sin], [-sin, cos]])
    # the part of the photo the samples fall in, with one more pixel (at 1/k: k + 1) around for the
    # bilinear weights; where it reaches outside the photo, the photo's edge pixels repeated
    (x0, y0), (x1, y1) = np.floor(corners.min(0)).astype(int) - k, np.ceil(corners.max(0)).astype(int) + k + 1
    (xa, xb), (ya, yb) = _inside(x0, x1, image.shape[1]), _inside(y0, y1, image.shape[0])
    part = image[ya:yb, xa:xb]
    x0, y0 = min(x0, xa), min(y0, ya)  # the part's corner in the photo
    # the photo is padded by at most two blocks a side, its k x k means by the rest (the same means: bounded memory
    # however far the square reaches past the photo)
    (left, right, *more_x), (top, bottom, *more_y) = _pads(x0, xa, xb, max(x1, xb), k), _pads(y0, ya, yb, max(y1, yb), k)
    pad, more = ((top, bottom), (left, right)), (tuple(more_y), tuple(more_x))
    part = Image.fromarray(_edge_pad(part, pad) if any(map(any, pad)) else np.ascontiguousarray(part))
    if k > 1:
        part = part.reduce(k)
    if any(map(any, more)):
        part = Image.fromarray(_edge_pad(np.asarray(part), more))
    # Pillow's affine data maps an output point to a point of `part` (pixel i spans [i, i + 1]):
    # output pixel (u, v) of the full-resolution square, centre (u + 0.5, v + 0.5), to the photo's
    # point c + R (u - side/2, v - side/2) + 0.5, then to part's pixels (1/k, from its corner)
    f = side / out / k
    ox = (cx + 0.5 - cos * (side / 2 + 0.5) + sin * (side / 2 + 0.5) - x0) / k
    oy = (cy + 0.5 - sin * (side / 2 + 0.5) - cos * (side / 2 + 0.5) - y0) / k
    data = (cos * f, -sin * f, ox, sin * f, cos * f, oy)
    crop = np.asarray(part.transform((out, out), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR))
    return crop if out == size else _resize(crop, size)


def whole_face(rgb: np.ndarray, size: int = SIZE, channels: int = 1) -> np.ndarray:
    """A photo that is already a face crop (as in most FER data sets) -> uint8 (size, size): its
    centre square, grey, resized; with channels=3 the square in colour, (size, size, 3). The photo: as detect_faces takes it."""
    _check_crop(size, channels)
    rgb = as_photo(rgb)
    grey = to_grey(rgb) if channels == 1 else _rgb(rgb)
    h, w = grey.shape[:2]
    s = min(h, w)
    return _resize(grey[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s], size)


def find_faces(rgb: np.ndarray, min_face: float | None = None, margin: float = MARGIN, detector: str = DETECTOR,
               align: bool = True, size: int = SIZE, channels: int = 1) -> list[Face]:
    """Every face in the photo as a box and a FER2013-style crop, turned upright by its eye landmarks
    when `align` and the detector gives them; [] when none. The crop is (size, size) grey, or with
    channels=3 (size, size, 3) RGB: the model's input (a colour model is cropped from the colour photo).
    The photo: as detect_faces takes it."""
    from .detectors import get_detector

    _check_crop(size, channels, margin)  # once for the photo's faces (min_face: detect_faces checks it)
    box_to_square = get_detector(detector).box_to_square
    rgb = as_photo(rgb)  # (once, before the crops' source and the detector are made of it)
    grey = to_grey(rgb) if channels == 1 else _rgb(rgb)  # named grey for the usual case: the image the crops come from
    faces = []
    for d in detect_faces(rgb, detector, min_face):
        x, y, w, h = d.box
        s = max(w, h) * box_to_square
        square = (x + w / 2 - s / 2, y + h / 2 - s / 2, s, s)
        angle = eye_angle(d.landmarks) if align and d.landmarks is not None else 0.0
        box = tuple(int(round(v)) for v in d.box)
        faces.append(Face(box, _crop(grey, square, margin, size, angle), d.score, d.landmarks, angle))
    return faces


def as_photo(image) -> np.ndarray:
    """The photo detect_faces, find_faces and whole_face work on: a uint8 grey (H, W) or RGB (H, W, 3)
    array as it is, anything else as load_image reads it (an RGBA PNG's array, floats, a PIL image, a
    path), or its ImageError. These were numpy's and Pillow's errors ("could not broadcast input array
    from shape (4,60,60)", "Cannot handle this data type", "'str' object has no attribute 'ndim'"), or a
    4-channel crop for a colour model. A view (np.broadcast_to) goes through load_image's pixel limit. The one check
    of a photo ready to use: Predictor.predict's too (it had its own, which sent a grey array through load_image)."""
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size and image.flags.c_contiguous
            and (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3)):
        return image
    return load_image(image)


def _rgb(image: np.ndarray) -> np.ndarray:
    """An RGB photo as it is; a grey one (H, W) with its grey in all three channels."""
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
