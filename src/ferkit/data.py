"""FER2013 readers, splits, the array cache and the mean image.

Every form users have FER2013 in is read into one `FerData`: uint8 images (N, 48, 48), int64
labels (N,) and the split of each row. Usage maps to splits: Training -> train,
PublicTest -> val, PrivateTest -> test.

Supported inputs:
  * the Kaggle CSV `emotion,pixels,Usage` (plain or .gz);
  * `icml_face_data.csv` (same columns, written ` Usage`, ` pixels` with a leading space);
  * the `train.csv` (`emotion,pixels`) / `test.csv` (`pixels`, unlabelled) pair: no Usage
    column, so the split comes from the file name (train* -> train, test* -> test);
  * the image-folder release `ROOT/{train,test}/<emotion>/*.jpg|png`: the split comes from
    the file-name prefix (Training_, PublicTest_, PrivateTest_) where present, else the folder.

Parsed arrays are cached as .npz (keyed by path, size and mtime), so a second load is fast.

Limits, so that a wrong --data (a device, an endless stream, a decompression bomb) ends in a
message rather than in all of memory: the data must be a regular file or a folder; a CSV line may
hold at most MAX_LINE_BYTES bytes, and a file or folder at most MAX_ROWS rows or images.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import logging
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import atomic_write
from .labels import FER2013

log = logging.getLogger(__name__)

SIZE = 48  # FER2013 faces are 48x48 grey
SPLITS = ("train", "val", "test")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SHARED_DATA = Path("../shared/data/fer2013/fer2013.csv.gz")  # relative to the project root
DATA_ENV = "FERKIT_DATA"
DOWNLOAD_HINT = (
    "FER2013 is not bundled with ferkit. Download it from Kaggle "
    "(https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge "
    "-> fer2013.csv, or the image-folder release) and pass --data PATH or set FERKIT_DATA=PATH."
)
MAX_ROWS = 500_000  # rows or images: ~14 times FER2013's 35,887, ~1.2 GB of faces in memory
MAX_LINE_BYTES = 1 << 20  # a FER2013 row is ~9 KB (2,304 numbers); a line this long is not one
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}  # what PIL reads


@dataclass
class FerData:
    """Images, labels and split of each row; labels are -1 where the file has none."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, -1 = unlabelled
    splits: np.ndarray  # (N,) int8 index into SPLITS
    source: str = ""
    skipped: int = 0  # rows skipped with skip_bad_rows
    problems: list[str] = field(default_factory=list)  # what was skipped, first few

    def counts(self) -> dict[str, int]:
        return {s: int((self.splits == i).sum()) for i, s in enumerate(SPLITS)}

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of one split; a clear error when the file has none of it."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        mask = self.splits == SPLITS.index(name)
        if not mask.any():
            have = ", ".join(f"{k} ({v})" for k, v in self.counts().items() if v) or "nothing"
            usage = [u for u, s in USAGE_TO_SPLIT.items() if s == name][0]
            raise DataError(
                f"{self.source}: has no {name!r} split (no {usage} rows); it holds {have}. "
                f"Pick another split or a file that has {usage} rows."
            )
        return self.images[mask], self.labels[mask]

    def has(self, name: str) -> bool:
        return bool((self.splits == SPLITS.index(name)).any())

    @staticmethod
    def split_index(name: str) -> int:
        """The value of `splits` for a split name (0 train, 1 val, 2 test)."""
        return SPLITS.index(name)


def find_data(path: str | os.PathLike | None = None) -> Path:
    """Resolve --data: the given path, else $FERKIT_DATA, else the shared copy, else an error."""
    candidates = [path] if path else [os.environ.get(DATA_ENV), SHARED_DATA, "fer2013.csv", "fer2013.csv.gz"]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    if path:
        raise DataError(f"{path}: no such file or folder. {DOWNLOAD_HINT}")
    raise DataError(f"no FER2013 data found (looked at ${DATA_ENV} and {SHARED_DATA}). {DOWNLOAD_HINT}")


def load_fer(
    path: str | os.PathLike | None = None, skip_bad_rows: bool = False, cache: bool = True
) -> FerData:
    """Read FER2013 from a CSV (.csv/.csv.gz) or an image folder, using the .npz cache."""
    p = find_data(path)
    _check_kind(p)
    cache_file = _cache_path(p, skip_bad_rows) if cache else None
    if cache_file is not None and cache_file.exists():
        try:
            with np.load(cache_file) as z:
                return FerData(z["images"], z["labels"], z["splits"], str(p), int(z["skipped"]))
        except (OSError, ValueError, KeyError):
            pass  # a broken cache file is rebuilt below
    log.info(f"reading {p}" + (" (parsed once, then cached)" if cache_file is not None else ""))
    data = _read_folder(p, skip_bad_rows) if p.is_dir() else _read_csv(p, skip_bad_rows)
    if cache_file is not None:
        try:
            atomic_write(cache_file, lambda f: np.savez(f, images=data.images, labels=data.labels, splits=data.splits,
                                                        skipped=data.skipped))
        except OSError as e:  # a read-only or full cache folder costs speed next time, not this run
            log.warning("cannot write the data cache %s (%s); set FERKIT_CACHE to a writable folder", cache_file, e.strerror or e)
    return data


def _check_kind(p: Path) -> None:
    """A DataError unless p is a folder or a regular file: a fifo or a device (/dev/zero) never
    ends, or blocks, and is no FER2013 file."""
    if p.is_dir() or p.is_file():
        return
    mode = p.stat().st_mode
    kind = next((k for test, k in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                                   (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")) if test(mode)),
                "not a regular file")
    raise DataError(f"{p}: is {kind}; --data must be a FER2013 CSV file (.csv, .csv.gz) or an image folder")


def _too_many_rows(p: Path) -> DataError:
    return DataError(f"{p}: holds more than {MAX_ROWS:,} rows or images, the most ferkit reads (FER2013 has 35,887); "
                     "is it the right file? If so, split it")


def cache_dir() -> Path:
    """Where parsed data and HOG features are cached: $FERKIT_CACHE, else ~/.cache/ferkit."""
    return Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))


def _cache_path(p: Path, skip_bad_rows: bool) -> Path:
    root = cache_dir()
    if p.is_dir():  # folder: key on every file's name, size and mtime
        stats = sorted((str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in p.rglob("*") if f.is_file())
    else:
        st = p.stat()
        stats = [st.st_size, st.st_mtime_ns]
    key = hashlib.sha1(repr((str(p.resolve()), stats, skip_bad_rows, 1)).encode()).hexdigest()[:16]
    return root / f"{p.name}-{key}.npz"


# ---------------------------------------------------------------- CSV


def _open_binary(p: Path):
    try:
        return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")
    except OSError as e:
        raise DataError(f"{p}: cannot open ({e.strerror or e})") from None


class _Damaged(Exception):
    """The file cannot be read on from line `lineno` (a damaged or truncated .gz)."""

    def __init__(self, lineno: int, reason: str):
        super().__init__(reason)
        self.lineno = lineno


def _skip_rest_of_line(f) -> None:
    """Read on to the end of an overlong line, a bounded chunk at a time."""
    while (chunk := f.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
        pass


def _csv_records(f):
    """(line number, fields, problem) of each CSV record of a binary file. Decoding line by line
    puts a line number on every problem: a line that is not UTF-8, one over MAX_LINE_BYTES (read
    past in bounded chunks, never held whole), a field over csv's size limit (problem is then a
    string) or, raised as _Damaged, a damaged or truncated compressed file.
    A UTF-8 byte-order mark (Excel, Notepad) is dropped."""
    bad_lines = {}

    def lines():
        n = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            n += 1
            if len(raw) > MAX_LINE_BYTES:
                _skip_rest_of_line(f)
                bad_lines[n] = f"the line is longer than {MAX_LINE_BYTES:,} bytes (a FER2013 row has ~9,000)"
                yield "\n"
                continue
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad_lines[n] = f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                yield raw.decode("utf-8", "replace")

    reader, last = csv.reader(lines()), 0
    while True:
        problem = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. "field larger than field limit (131072)"; the reader goes on after it
            row, problem = [], f"not a CSV record ({e})"
        except (EOFError, OSError, zlib.error) as e:
            raise _Damaged(last + 1, f"the file is damaged or ends early here ({e})") from None
        first, last = last + 1, reader.line_num
        problem = problem or next((bad_lines[n] for n in range(first, last + 1) if n in bad_lines), None)
        yield first, row, problem


def _read_csv(p: Path, skip_bad_rows: bool) -> FerData:
    images, labels, splits, problems = [], [], [], []
    name = p.name.lower()
    default_split = "test" if name.startswith("test") else "train"
    try:
        with _open_binary(p) as f:
            records = _csv_records(f)
            _, header, problem = next(records, (1, None, None))
            if header is None:
                raise DataError(f"{p}: the file is empty; expected a header line 'emotion,pixels,Usage'")
            if problem:
                raise DataError(f"{p}, line 1: {problem}; expected FER2013's header 'emotion,pixels,Usage'")
            cols = [h.strip().lower() for h in header]
            if "pixels" not in cols:
                raise DataError(
                    f"{p}, line 1: missing column 'pixels' (header is {','.join(header)!r}); "
                    "expected FER2013's 'emotion,pixels,Usage' header"
                )
            i_pix = cols.index("pixels")
            i_emo = cols.index("emotion") if "emotion" in cols else None
            i_use = cols.index("usage") if "usage" in cols else None
            for lineno, row, problem in records:
                if lineno > MAX_ROWS + 1:  # the header, then rows; skipped and blank ones count too
                    raise _too_many_rows(p)
                if not row and not problem:
                    continue
                try:
                    if problem:
                        raise ValueError(problem)
                    img, lab, spl = _parse_row(row, len(cols), i_pix, i_emo, i_use, default_split)
                except ValueError as e:
                    msg = f"{p}, line {lineno}: {e}"
                    if not skip_bad_rows:
                        raise DataError(f"{msg}. Fix or delete the row, or pass --skip-bad-rows to skip bad rows.") from None
                    problems.append(msg)
                    continue
                images.append(img)
                labels.append(lab)
                splits.append(spl)
    except _Damaged as e:
        msg = f"{p}, line {e.lineno}: {e}"
        if not skip_bad_rows or not images:
            raise DataError(f"{msg}. Download the file again, or pass --skip-bad-rows to use the {len(images)} rows before it.") from None
        problems.append(msg)
    except OSError as e:
        raise DataError(f"{p}: cannot read as a FER2013 CSV ({e})") from None
    if not images:
        raise DataError(f"{p}: holds no usable rows" + (f" ({len(problems)} bad rows skipped)" if problems else ""))
    return FerData(
        np.stack(images), np.asarray(labels, np.int64), np.asarray(splits, np.int8), str(p), len(problems), problems[:20]
    )


def _parse_row(row, ncols, i_pix, i_emo, i_use, default_split):
    if len(row) != ncols:
        raise ValueError(f"expected {ncols} fields, found {len(row)}")
    label = -1
    if i_emo is not None:
        text = row[i_emo].strip()
        if not text.lstrip("-").isdigit() or not 0 <= int(text) < len(FER2013):
            raise ValueError(f"field 'emotion' is {text!r}; expected an integer 0..{len(FER2013) - 1} ({', '.join(FER2013)})")
        label = int(text)
    split = default_split
    if i_use is not None:
        usage = row[i_use].strip()
        if usage not in USAGE_TO_SPLIT:
            raise ValueError(f"field 'Usage' is {usage!r}; expected Training, PublicTest or PrivateTest")
        split = USAGE_TO_SPLIT[usage]
    parts = row[i_pix].split()
    if len(parts) != SIZE * SIZE:
        raise ValueError(f"field 'pixels' has {len(parts)} values; expected {SIZE * SIZE} (48x48)")
    try:
        pix = np.array(parts, dtype=np.int32)
    except ValueError:
        bad = next(v for v in parts if not v.lstrip("-").isdigit())
        raise ValueError(f"field 'pixels' has a non-numeric value {bad!r}") from None
    if pix.min() < 0 or pix.max() > 255:
        raise ValueError("field 'pixels' has a value outside 0..255")
    return pix.astype(np.uint8).reshape(SIZE, SIZE), label, SPLITS.index(split)


# ---------------------------------------------------------------- image folders


def _read_folder(root: Path, skip_bad_rows: bool) -> FerData:
    from PIL import Image, UnidentifiedImageError

    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise DataError(
            f"{root}: the folder holds no images; expected ROOT/train/<emotion>/*.jpg and ROOT/test/<emotion>/*.jpg"
        )
    if len(files) > MAX_ROWS:
        raise _too_many_rows(root)
    images, labels, splits, problems = [], [], [], []
    for f in files:
        rel = f.relative_to(root)
        try:
            emotion = f.parent.name.lower()
            if emotion not in FER2013:
                raise ValueError(f"folder {f.parent.name!r} is not an emotion name ({', '.join(FER2013)})")
            split = _split_of(f.name, rel.parts[0] if len(rel.parts) > 2 else "")
            with Image.open(f) as im:
                im = im.convert("L")
                if im.size != (SIZE, SIZE):
                    im = im.resize((SIZE, SIZE), Image.BILINEAR)
                images.append(np.asarray(im, np.uint8))
            labels.append(FER2013.index(emotion))
            splits.append(SPLITS.index(split))
        except (ValueError, OSError, UnidentifiedImageError) as e:
            msg = f"{f}: {e}"
            if not skip_bad_rows:
                raise DataError(f"{msg}. Fix or remove the file, or pass --skip-bad-rows to skip bad images.") from None
            problems.append(msg)
    if not images:
        raise DataError(f"{root}: no readable images ({len(problems)} bad files skipped)")
    return FerData(
        np.stack(images), np.asarray(labels, np.int64), np.asarray(splits, np.int8), str(root), len(problems), problems[:20]
    )


def _split_of(filename: str, top: str) -> str:
    for usage, split in USAGE_TO_SPLIT.items():
        if filename.startswith(usage + "_"):
            return split
    top = top.lower()
    if top in ("train", "training"):
        return "train"
    if top in ("val", "valid", "validation", "publictest"):
        return "val"
    if top in ("test", "privatetest"):
        return "test"
    raise ValueError("cannot tell the split: name the file Training_*/PublicTest_*/PrivateTest_* or put it under train/ or test/")


def mean_image(images: np.ndarray) -> np.ndarray:
    """Per-pixel mean of uint8 images (N, H, W[, C]) as float32 (H, W[, C]) in 0..255 (paper, Section 4)."""
    return images.astype(np.float64).mean(axis=0).astype(np.float32)

