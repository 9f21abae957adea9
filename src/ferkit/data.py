"""Data readers (FER2013 and one's own image folders and lists), splits, the array cache and the mean image.

Every data set is read into one `FerData`: uint8 images (N, H, W) grey or (N, H, W, C) colour, at
the model's input size and channels (FER2013: (N, 48, 48)), int64 labels (N,) with the class
names they stand for, and the split of each row. Usage maps to splits: Training -> train,
PublicTest -> val, PrivateTest -> test.

Supported inputs:
  * the Kaggle CSV `emotion,pixels,Usage` (plain or .gz);
  * `icml_face_data.csv` (same columns, written ` Usage`, ` pixels` with a leading space);
  * the `train.csv` (`emotion,pixels`) / `test.csv` (`pixels`, unlabelled) pair: no Usage
    column, so the split comes from the file name (train* -> train, test* -> test);
  * an image folder, a folder per class: `ROOT/<class>/*` or `ROOT/{train,val,test}/<class>/*`
    (FER2013's image-folder release `ROOT/{train,test}/<emotion>/*` is one): the split comes from
    the file-name prefix (Training_, PublicTest_, PrivateTest_) where present, else the top folder;
  * an image list: a CSV or TSV (.tsv, or tabs in its first line) of `path,label[,split]` rows,
    paths relative to the file, labels class names or integer ids, with or without that header.
Images of any size and mode are read with Pillow as photos are (faces.pil_to_rgb: EXIF orientation
applied, 16-bit scaled to 8 bits, transparency flattened onto white), converted to the
model's channels (grey as Pillow's 'L', ITU-R 601, as ferkit's photo path; colour as RGB) and
resized (bilinear) to its in_size; a non-square image gives its centre square. FER2013's 48x48 grey rows are
resized and repeated over 3 channels likewise for a larger or colour model.

Class names: `names` (--label-names) or labels.txt (one a line) in the folder or beside the list,
in label order; else the folders' or the list's names, in the order of the first known label set
that holds them all (so FER2013's release reads with FER2013's ids), else alphabetically. Integer
ids without names leave `names` None: they are the label set's own ids (labels.class_ids).

Splits come from the data; data with none (a folder without train/ val/ test/, a list without
a split column) get a stratified split drawn with a seed (scikit-learn's train_test_split;
`split_seed`, `val_fraction`, `test_fraction`), which the log reports.

Parsed arrays are cached as .npz, keyed by path, size and mtime of what was read (every file of a
folder, a list and the images it names) and by the input size, channels and names asked for.

Limits, so that a wrong --data (a device, an endless stream, a decompression bomb) ends in a
message rather than in all of memory: the data must be a regular file or a folder; a CSV line may
hold at most MAX_LINE_BYTES bytes, a file or folder at most MAX_ROWS rows or images, and the images
at the model's input at most MAX_BYTES bytes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import DataError, quoted, shell_word
from .files import IMAGE_EXTS, atomic_write, is_hidden, kind_of_file, tree
from .labels import FER2013, LABEL_SETS, MAX_CLASSES, check_names, unprintable

log = logging.getLogger(__name__)

SIZE = 48  # FER2013 faces are 48x48 grey
SPLITS = ("train", "val", "test")
ALL = "all"  # evaluate --split all: every row, whatever its split (one's own photos, scored whole)
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
MAX_BYTES = 8 << 30  # images in memory at the model's input: AffectNet's 290k faces at 96x96 RGB are ~8 GB
NAMES_FILE = "labels.txt"  # the class names, one a line in label order, in an image folder or beside a list
# files of a folder that are no images and left out unsaid, as dot-files are (files.is_hidden): Windows' and the names
OS_FILES = {"thumbs.db", "desktop.ini", NAMES_FILE}
VAL_FRACTION = TEST_FRACTION = 0.1  # the drawn split's shares (TrainConfig's defaults)
NO_SPLIT = {"val_fraction": 0, "test_fraction": 0}  # load_fer's reading with no split drawn: every image a training one
OWN_SPLITS = "give data with splits of their own (train/ val/ test/ folders, or a split column)"  # the other way out of a split not drawn
RECORDED = ("label_names", "split_seed", "val_fraction", "test_fraction")  # the config fields recorded_reading reads
# Split names of folders and list columns (any case), FER2013's Usage values among them.
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "publictest": "val", "test": "test", "privatetest": "test"}
# Header names of an image list's columns (any case); a list without a header is path,label[,split].
LIST_COLUMNS = {"path": ("path", "file", "filename", "image", "image_path"),
                "label": ("label", "emotion", "class", "expression"),
                "split": ("split", "usage", "set", "subset", "partition")}


@dataclass
class FerData:
    """Images, labels and split of each row; labels are -1 where the file has none."""

    images: np.ndarray  # (N, H, W) grey or (N, H, W, C) colour uint8, at the model's input (FER2013: (N, 48, 48))
    labels: np.ndarray  # (N,) int64 index into names, -1 = unlabelled
    splits: np.ndarray  # (N,) int8 index into SPLITS
    source: str = ""
    skipped: int = 0  # rows skipped with skip_bad_rows
    problems: list[str] = field(default_factory=list)  # what was skipped, first few
    # what each label stands for (FER2013's files: its 7 emotions); None: integer ids of the label set (labels.class_ids)
    names: tuple[str, ...] | None = FER2013
    # "pixels": FER2013's CSV rows, which FER+'s vote file follows row by row; "folder" or "list": one's
    # own images, each labelled by its class
    kind: str = "pixels"
    # whether the splits are the data's own (Usage, a split column, train/ val/ test/ folders); False: drawn
    # with --split-seed, --val-fraction and --test-fraction, or none drawn (both 0: every row a training one)
    own_split: bool = True
    # each row's image file (one's own images, for messages); None: FER2013's rows, or not known (a cached reading
    # that skipped bad images: the cache keeps no paths)
    files: list[Path] | None = None

    def counts(self) -> dict[str, int]:
        return {s: int((self.splits == i).sum()) for i, s in enumerate(SPLITS)}

    def in_split(self, name: str) -> np.ndarray:
        """Which rows are in a split (N,) bool: train, val, test, or all (every row, whatever its split)."""
        if name == ALL:
            return np.ones(len(self.splits), bool)
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}, or {ALL}")
        return self.splits == SPLITS.index(name)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of one split; a clear error when the file has none of it."""
        mask = self.in_split(name)
        if not mask.any():
            have = ", ".join(f"{k} ({v})" for k, v in self.counts().items() if v) or "nothing"
            usage = [u for u, s in USAGE_TO_SPLIT.items() if s == name][0]
            raise DataError(
                f"{self.source}: has no {name!r} split (no {usage} rows, no {name}/ folder); it holds {have}. "
                + (f"Training needs data with {usage} rows (or a train/ folder)." if name == "train" else
                   f"Pick another split (--split) or data that have {usage} rows.")
            )
        return self.images[mask], self.labels[mask]

    def has(self, name: str) -> bool:
        return bool(self.in_split(name).any())


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
    path: str | os.PathLike | None = None, skip_bad_rows: bool = False, cache: bool = True, size: int = SIZE,
    channels: int = 1, names=None, split_seed: int = 0, val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION, split_fix: str | None = None,
) -> FerData:
    """Read a data set (FER2013's CSVs, an image folder or an image list: see the module's notes) at
    size x size with `channels`, using the .npz cache. names: the classes' names in label order
    (--label-names), else labels.txt or the data's own; split_*: the split drawn for data without one;
    split_fix: a command's advice where that split cannot be drawn (None: train's, its fraction flags)."""
    p = find_data(path)
    _check_kind(p)
    kind = "folder" if p.is_dir() else _file_kind(p)
    names_from = None  # where the class names come from, for messages
    names_file = (p if kind == "folder" else p.parent) / NAMES_FILE
    if kind == "pixels":  # FER2013's rows are its 7 emotions, whatever names are given
        if names is not None:
            log.warning(f"{p}: a FER2013 CSV's labels are FER2013's 7 emotions; --label-names is ignored for it")
        names = None
    elif names is not None:
        names, names_from = _checked_names(names, "--label-names"), "--label-names"
    elif names_file.is_file():
        names, names_from = read_names(str(names_file), NAMES_FILE), str(names_file)
    # (a folder's listing too, before the cache: what it leaves out is said on every read, not the first alone)
    listing = _read_list(p, skip_bad_rows) if kind == "list" else _folder_listing(p, skip_bad_rows) if kind == "folder" else None
    cache_file = _cache_path(p, skip_bad_rows, (size, channels, names), listing if kind == "list" else None) if cache else None
    data = _cached(cache_file, p) if cache_file is not None and cache_file.exists() else None
    if data is None:
        log.info(f"reading {p}" + (" (parsed once, then cached)" if cache_file is not None else ""))
        if kind == "pixels":
            data = _resized(_read_csv(p, skip_bad_rows), size, channels)
        else:
            data = _read_images(listing, names, size, channels, skip_bad_rows, str(p),
                                names_from)
        if cache_file is not None:
            _write_cache(cache_file, data)
    elif listing is not None and len(listing.files) == len(data.labels):  # cached: the listing's files, none skipped
        data = replace(data, files=listing.files)
    return _with_splits(replace(data, kind=kind), split_seed, val_fraction, test_fraction, split_fix)


def reading_for(spec, config: dict | None = None, label_names: str | None = None) -> dict:
    """load_fer's keyword arguments to read data as a model's training did: its spec's input size and
    channels, and its training config's class names and drawn split (label_names: given anew)."""
    return dict(size=spec.in_size, channels=spec.channels, **recorded_reading(config, label_names))


def recorded_reading(config: dict | None, label_names: str | None = None) -> dict:
    """load_fer's class names and drawn split as a training recorded them (config: a checkpoint's
    training config, or an exported graph's metadata of its RECORDED fields); the defaults where it
    records none (label_names: given anew)."""
    cfg = config or {}
    names = label_names or cfg.get("label_names")
    return dict(names=read_names(names) if names else None, split_seed=cfg.get("split_seed", 0),
                val_fraction=cfg.get("val_fraction", VAL_FRACTION), test_fraction=cfg.get("test_fraction", TEST_FRACTION))


def read_names(spec: str, where: str = "--label-names") -> tuple[str, ...]:
    """Class names, in label order, from a text file (one a line; blank lines and # comments left
    out) or a comma list ("happy,sad,neutral"); lower case."""
    p = Path(spec)
    if p.is_file():
        try:
            if p.stat().st_size > MAX_LINE_BYTES:
                raise DataError(f"{where} {p}: {p.stat().st_size:,} bytes is too big for a list of class names")
            lines = p.read_text(encoding="utf-8-sig").splitlines()
        except OSError as e:
            raise DataError(f"{where} {p}: cannot read ({e.strerror or e})") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{where} {p}: not a text file (byte {e.start} is not UTF-8); give one class name a line") from None
        return _checked_names([t.strip() for t in lines if t.strip() and not t.strip().startswith("#")], f"{where} {p}")
    if "," not in spec and (p.suffix or os.sep in spec or p.is_dir()):  # a folder named like a class: not a name
        what = "not a regular file (a folder, pipe or device)" if p.exists() else "no such file"
        raise DataError(f"{where} {spec}: {what}; give a file of class names (one a line) or a comma list (a,b,c)")
    return _checked_names(spec.split(","), where)


def _checked_names(names, where: str) -> tuple[str, ...]:
    names = tuple(_nfc(str(n)) for n in names)
    problem = check_names(names)
    if problem:
        raise DataError(f"{where}: {problem} ({quoted(', '.join(names)) or 'none'})")
    return names


def _cached(cache_file: Path, p: Path) -> FerData | None:
    """The FerData in a cache file, or None if it cannot be read (it is then rebuilt)."""
    try:
        with np.load(cache_file) as z:
            # files cached before names were stored are FER2013's; an empty array stands for None (integer ids)
            names = tuple(str(n) for n in z["names"]) or None if "names" in z else FER2013
            problems = [str(m) for m in z["problems"]] if "problems" in z else []  # (older caches kept the count alone)
            return FerData(z["images"], z["labels"], z["splits"], str(p), int(z["skipped"]), problems, names)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a damaged .npz (a bad CRC, cut short, empty):
        return None  # (BadZipFile and EOFError went out as tracebacks on every later read of that data)


def _write_cache(cache_file: Path, data: FerData) -> None:
    try:
        atomic_write(cache_file, lambda f: np.savez(f, images=data.images, labels=data.labels, splits=data.splits,
                                                    skipped=data.skipped, problems=np.array(data.problems, dtype=str),
                                                    names=np.array(data.names or (), dtype=str)))
    except OSError as e:  # a read-only or full cache folder costs speed next time, not this run
        log.warning("cannot write the data cache %s (%s); set FERKIT_CACHE to a writable folder", cache_file, e.strerror or e)


def _check_kind(p: Path) -> None:
    """A DataError unless p is a folder or a regular file: a fifo or a device (/dev/zero) never
    ends, or blocks, and is no FER2013 file."""
    if p.is_file() and (kind := kind_of_file(p)):  # (was "line 1: not UTF-8 text")
        raise DataError(f"{p}: is {kind}, not a data set; --data takes a FER2013 CSV file (.csv, .csv.gz), an image list "
                        "(path,label rows) or an image folder"
                        + (f" (to name the emotions in it: ferkit predict {shell_word(p)})" if kind != "a model" else ""))
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
    given = os.environ.get("FERKIT_CACHE", "").strip()  # set but empty: the default, not the current folder
    return Path(given).expanduser() if given else Path.home() / ".cache" / "ferkit"


def _cache_path(p: Path, skip_bad_rows: bool, reading: tuple, listing=None) -> Path:
    """The cache file of p read as reading (size, channels, names); a list's key holds its images' stats too."""
    root = cache_dir()
    if p.is_dir():  # folder: key on every file's name, size and mtime
        stats = sorted((str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in tree(p) if f.is_file())
    else:
        st = p.stat()
        stats = [st.st_size, st.st_mtime_ns]
    if listing is not None:
        stats.append([_stat(f) for f in listing.files])
    # FER2013 at its own 48x48 grey keeps the key it had before sizes were asked for (no re-parse)
    extra = () if reading == (SIZE, 1, None) else (reading,)
    # 2: images decoded as photos are (faces.pil_to_rgb); 1 made 16-bit greys near white and transparency black
    version = 2 if p.is_dir() or listing is not None else 1
    key = hashlib.sha1(repr((str(p.resolve()), stats, skip_bad_rows, version) + extra).encode()).hexdigest()[:16]
    return root / f"{p.name}-{key}.npz"


def _stat(f: Path) -> tuple:
    try:
        st = f.stat()
    except OSError:
        return (str(f),)  # gone since it was listed: its read will say so
    return str(f), st.st_size, st.st_mtime_ns


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


def _text_lines(f) -> io.TextIOWrapper:
    """A binary file as text with universal newlines: "\n", "\r\n" and an old Mac's bare "\r" each end a
    line (split at "\n" alone, a bare-"\r" file was one line, which csv refused: "new-line character seen
    in unquoted field"). Bytes that are not UTF-8 stay as surrogates (surrogateescape), for the reader to
    name with their line (_undecodable, _replaced); readline(n) reads at most n characters, so an overlong
    line is never held whole. A UTF-8 byte-order mark (Excel, Notepad) is dropped (utf-8-sig)."""
    return io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline=None)


def _skip_rest_of_line(text) -> None:
    """Read on to the end of an overlong line, a bounded chunk at a time."""
    while (chunk := text.readline(MAX_LINE_BYTES)) and not chunk.endswith("\n"):
        pass


def _undecodable(line: str) -> str | None:
    """What is wrong with a line of _text_lines that held bytes that are not UTF-8 (None: nothing)."""
    if line.isascii():  # nearly every line, at once
        return None
    try:
        line.encode("utf-8")  # the surrogates that stand for bad bytes cannot be encoded
    except UnicodeEncodeError as e:
        byte, column = ord(line[e.start]) - 0xDC00, len(line[:e.start].encode("utf-8")) + 1
        return f"not UTF-8 text (byte 0x{byte:02x} at column {column})"
    return None


def _replaced(line: str) -> str:
    """A line of _text_lines with each byte that is not UTF-8 as U+FFFD (the surrogates cannot be printed)."""
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _csv_records(f, delimiter: str = ","):
    """(line number, fields, problem) of each CSV record of a binary file. Decoding line by line
    puts a line number on every problem: a line that is not UTF-8, one over MAX_LINE_BYTES (read
    past in bounded chunks, never held whole), a field over csv's size limit (problem is then a
    string) or, raised as _Damaged, a damaged or truncated compressed file.
    Lines may end in "\n", "\r\n" or a bare "\r", and a UTF-8 byte-order mark is dropped (_text_lines)."""
    bad_lines = {}

    def lines():
        n, text = 0, _text_lines(f)
        while line := text.readline(MAX_LINE_BYTES + 1):
            n += 1
            if len(line) > MAX_LINE_BYTES:  # characters: at least as many bytes
                _skip_rest_of_line(text)
                bad_lines[n] = f"the line is longer than {MAX_LINE_BYTES:,} bytes (a FER2013 row has ~9,000)"
                yield "\n"
                continue
            if problem := _undecodable(line):
                bad_lines[n] = problem
                line = _replaced(line)
            yield line

    reader, last = csv.reader(lines(), delimiter=delimiter), 0
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
                    "expected FER2013's 'emotion,pixels,Usage' header, or an image list's 'path,label[,split]'"
                )
            if twice := sorted({c for c in ("emotion", "pixels", "usage") if cols.count(c) > 1}):  # which one is meant?
                raise DataError(f"{p}, line 1: column(s) {', '.join(twice)} appear more than once (header is "
                                f"{','.join(header)!r}); keep one of each")
            i_pix = cols.index("pixels")
            i_emo = cols.index("emotion") if "emotion" in cols else None
            i_use = cols.index("usage") if "usage" in cols else None
            other = next((header[i].strip() for i, c in enumerate(cols) if c in LIST_COLUMNS["label"]), None)
            if i_emo is None and other:  # its rows were read unlabelled: "train on a labelled file", of a labelled file
                raise DataError(f"{p}, line 1: no column 'emotion', but a column {other!r} (header is {','.join(header)!r}); "
                                f"FER2013's labels are its 'emotion' column, ids 0..{len(FER2013) - 1} ({', '.join(FER2013)}): "
                                f"if {other!r} holds those ids, rename it 'emotion'")
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
                        raise bad_row(msg, "Fix or delete the row", "to skip bad rows") from None
                    problems.append(msg)
                    continue
                images.append(img)
                labels.append(lab)
                splits.append(spl)
    except _Damaged as e:
        msg = f"{p}, line {e.lineno}: {e}"
        if not skip_bad_rows or not images:
            raise bad_row(msg, "Download the file again", f"to use the {len(images)} rows before it") from None
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
        if not text.lstrip("-").isdecimal() or not 0 <= int(text) < len(FER2013):  # (isdigit passes '²', which int() refuses)
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
    except (ValueError, OverflowError):  # OverflowError: a number past int32; both were tracebacks
        bad = next((v for v in parts if not v.lstrip("-").isdecimal()), None)
        if bad is None:
            raise ValueError("field 'pixels' has a value outside 0..255") from None
        raise ValueError(f"field 'pixels' has a non-numeric value {bad!r}") from None
    if pix.min() < 0 or pix.max() > 255:
        raise ValueError("field 'pixels' has a value outside 0..255")
    return pix.astype(np.uint8).reshape(SIZE, SIZE), label, SPLITS.index(split)


# ---------------------------------------------------------------- image folders and lists


def _resized(data: FerData, size: int, channels: int) -> FerData:
    """FER2013's 48x48 grey faces at another input: resized as images read from files are, grey repeated over RGB."""
    if (size, channels) == (SIZE, 1):
        return data
    from PIL import Image

    return replace(data, images=np.stack([_fit(Image.fromarray(img), size, channels) for img in data.images]))


def _fit(im, size: int, channels: int) -> np.ndarray:
    """A PIL image of one face as the model's input: what `ferkit predict --crops` makes of it
    (faces.pil_to_rgb: upright, 16-bit scaled, alpha on white; faces.whole_face: the centre square,
    grey or RGB, resized), so training, evaluation, int8 calibration and prediction see a face crop alike."""
    from .faces import pil_to_rgb, whole_face

    return whole_face(pil_to_rgb(im), size, channels)


@dataclass
class _Listing:
    """What an image folder or list holds, before any image is decoded: one entry per image."""

    files: list[Path] = field(default_factory=list)
    classes: list = field(default_factory=list)  # a class name (str), an integer id (int) or None: unlabelled
    splits: list[int] = field(default_factory=list)  # index into SPLITS; -1: the data give none
    where: list[str] = field(default_factory=list)  # how problems name it: the file, or the list's line
    problems: list[str] = field(default_factory=list)  # entries skipped with skip_bad_rows
    fix: tuple[str, str] = ("Fix or remove the file", "to skip bad images")  # bad_row's fix and skip

    def add(self, f: Path, cls, split: int, where: str) -> None:
        self.files.append(f)
        self.classes.append(cls)
        self.splits.append(split)
        self.where.append(where)

    def bad(self, msg: str, skip_bad_rows: bool) -> None:
        if not skip_bad_rows:
            raise bad_row(msg, *self.fix)
        self.problems.append(msg)


def _folder_listing(root: Path, skip_bad_rows: bool) -> _Listing:
    """ROOT/<class>/* or ROOT/<split>/<class>/*: each image's class (its folder) and split. An image
    file that cannot be read as one (a dangling link, a pipe), a link to a folder (not followed) and an
    image nested deeper than ROOT/<split>/<class>/ are bad entries; other files and folders with no
    image are left out with a warning (a class of .heic photos, an empty class folder, went unsaid)."""
    out, files, others, folders, bad = _Listing(), [], {}, [], []
    for f in tree(root):  # (not sorted whole: a wrong --data, a home folder, holds millions of other files)
        if is_hidden(f.relative_to(root)):
            continue
        if f.is_symlink() and f.is_dir():  # tree does not enter it: its images would go unseen
            bad.append(f"{f}: a link to a folder, which ferkit does not follow in --data; put the folder itself there "
                       "(or copies of its images)")
        elif f.is_dir():
            folders.append(f)
            if not os.access(f, os.R_OK | os.X_OK):  # tree passes over it: a class missing, unsaid
                bad.append(f"{f}: the folder cannot be read (permission denied); give ferkit's user read access to it")
        elif f.suffix.lower() not in IMAGE_EXTS:
            if (f.is_file() or f.is_symlink()) and f.name.lower() not in OS_FILES:
                kind = f.suffix.lower() or "no extension"
                others[kind] = others.get(kind, 0) + 1
        elif f.is_file():
            files.append(f)
            if len(files) > MAX_ROWS:
                raise _too_many_rows(root)
        else:
            bad.append(f"{f}: " + ("a link to nothing (it is dangling, or a loop)" if not f.exists() else
                                   "not a regular file (a pipe, socket or device)"))
    if not files:
        raise DataError(f"{root}: the folder holds no images; expected ROOT/<class>/*.jpg, or ROOT/train/<class>/*.jpg, "
                        "ROOT/val/<class>/*.jpg and ROOT/test/<class>/*.jpg")
    for msg in sorted(bad):
        out.bad(msg, skip_bad_rows)
    files.sort()
    full = {d for f in files for d in f.parents}
    empty = sorted(str(d.relative_to(root)) for d in folders if d not in full)
    left_out = []
    if empty:
        left_out.append(f"{len(empty)} folder(s) holding no image, so no class ({', '.join(empty[:10])}{', ...' if len(empty) > 10 else ''})")
    if others:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:10])
        left_out.append(f"{sum(others.values())} file(s) that are not images ferkit reads ({kinds})")
    if left_out:
        log.warning(f"{root}: left out {'; '.join(left_out)}; images are {', '.join(sorted(IMAGE_EXTS))}")
    for f in files:
        rel = f.relative_to(root)
        try:
            if len(rel.parts) < 2:
                raise ValueError("not in a class folder; put each image in ROOT/<class>/ (or ROOT/<split>/<class>/)")
            if len(rel.parts) == 2 and rel.parts[0].lower() in SPLIT_NAMES:  # trained as a class 'train' against 'val'
                raise ValueError(f"is right in the split folder {rel.parts[0]!r}, in no class folder; put it in "
                                 f"ROOT/{rel.parts[0]}/<class>/")
            if len(rel.parts) > 3:  # its class would be its innermost folder's name (train/happy/2019/: a class '2019')
                raise ValueError(f"is {len(rel.parts) - 1} folders deep; expected ROOT/<class>/<image> or "
                                 "ROOT/<split>/<class>/<image>: move it up, or give --data the folder that holds the class "
                                 "(or split) folders")
            out.add(f, _class_name(f.parent.name, "class folder's name"), _split_of(f.name, rel.parts[0] if len(rel.parts) > 2 else ""),
                    str(f))
        except ValueError as e:
            out.bad(f"{f}: {e}", skip_bad_rows)
    return out


def looks_like_image_folder(root: str | os.PathLike, limit: int = 100) -> bool:
    """Whether folder root looks like image-folder data, ROOT/<class>/*.jpg or ROOT/<split>/<class>/*.jpg: an image in
    one of its subfolders (or in a subfolder of one named as a split), among the first `limit` entries of each folder
    looked into. A cheap guess for advice (image data given to --model), not _folder_listing's walk of the whole tree."""
    def entries(folder) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as found:
                return [e for _, e in zip(range(limit), found) if not is_hidden(Path(e.name))]
        except OSError:  # (unreadable: no guess)
            return []

    def has_image(folder) -> bool:
        return any(Path(e.name).suffix.lower() in IMAGE_EXTS and e.is_file() for e in entries(folder))

    return any(e.is_dir() and (has_image(e.path) or e.name.lower() in SPLIT_NAMES and any(s.is_dir() and has_image(s.path)
                                                                                           for s in entries(e.path)))
               for e in entries(root))


def _split_of(filename: str, top: str) -> int:
    """The split (index into SPLITS) of an image: its FER2013 prefix, else its top folder; -1 for an
    image right in its class folder (ROOT/<class>/*), which has none."""
    for usage, split in USAGE_TO_SPLIT.items():
        if filename.startswith(usage + "_"):
            return SPLITS.index(split)
    if not top:
        return -1
    if top.lower() in SPLIT_NAMES:
        return SPLITS.index(SPLIT_NAMES[top.lower()])
    raise ValueError(f"cannot tell the split: the top folder {top!r} is not train, val or test; put images in "
                     "ROOT/<class>/, or ROOT/{train,val,test}/<class>/, or name them Training_*/PublicTest_*/PrivateTest_*")


def _first_line(p: Path) -> str:
    with _open_binary(p) as f:
        try:
            return _replaced(_text_lines(f).readline(MAX_LINE_BYTES))
        except (EOFError, OSError, zlib.error):
            return ""  # a damaged file: the FER2013 reader names the problem and its line


def _delimiter(p: Path, first: str) -> str:
    """An image list's delimiter: tab for .tsv or a tab in its first line, else comma, else (RAF-DB's
    lists) spaces."""
    if p.name.lower().endswith((".tsv", ".tsv.gz")) or "\t" in first:
        return "\t"
    return "," if "," in first or " " not in first.strip() else " "


def _file_kind(p: Path) -> str:
    """'pixels' (a FER2013 CSV) or 'list' (an image list: a path column, or a first field naming an image)."""
    first = _first_line(p)
    cols = [c.strip().lower() for c in first.split(_delimiter(p, first))]
    if "pixels" in cols:
        return "pixels"
    if set(cols) & set(LIST_COLUMNS["path"]) or Path(cols[0]).suffix.lower() in IMAGE_EXTS:
        return "list"
    return "pixels"  # whose reader explains what the header lacks


def _read_list(p: Path, skip_bad_rows: bool) -> _Listing:
    """An image list's rows: path,label[,split], by header names or (without a header) by position."""
    delimiter = _delimiter(p, _first_line(p))
    out = _Listing(fix=("Fix or delete the row", "to skip bad rows"))
    kinds = {}  # the kind of label (str or int) the first labelled row has, and that row's line
    seen = {}  # each image (resolved: ./a.png and a.png are one) -> the line that lists it
    try:
        with _open_binary(p) as f:
            cols = None
            for lineno, row, problem in _csv_records(f, delimiter):
                if lineno > MAX_ROWS + 1:
                    raise _too_many_rows(p)
                row = [c for c in row if c] if delimiter == " " else row  # runs of spaces are one delimiter
                if not row and not problem:
                    continue
                if cols is None:  # the first record: a header, or the first row
                    cols = _list_columns(row, p)
                    if cols["header"]:
                        continue
                try:
                    if problem:
                        raise ValueError(problem)
                    image, cls, split = _list_row(row, cols, p.parent)
                    # an image listed twice was read twice: in two splits, scored on a face it trained on
                    if (twice := seen.setdefault(image.resolve(), lineno)) != lineno:
                        raise ValueError(f"{row[cols['path']].strip()} is listed on line {twice} too; list each image once")
                    kind, first = kinds.setdefault("first", (type(cls), lineno)) if cls is not None else (None, 0)
                    if kind is not None and kind is not type(cls):
                        what = {str: "a class name", int: "an integer id"}
                        raise ValueError(f"label {cls!r} is {what[type(cls)]}, but line {first}'s is {what[kind]}; "
                                         "give every label one way")
                except ValueError as e:
                    out.bad(f"{p}, line {lineno}: {e}", skip_bad_rows)
                    continue
                out.add(image, cls, split, f"{p}, line {lineno}: {row[cols['path']].strip()}")
    except _Damaged as e:
        raise DataError(f"{p}, line {e.lineno}: {e}. Download or write the file again.") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read as an image list ({e})") from None
    if not out.files:
        raise DataError(f"{p}: lists no usable images" + (f" ({len(out.problems)} bad rows skipped)" if out.problems else
                        "; expected rows path,label[,split] (a header naming those columns is optional)"))
    return out


def _list_columns(row: list[str], p: Path) -> dict:
    """{'header': bool, 'path': i, 'label': i or None, 'split': i or None, 'n': fields a row has}."""
    cols = [c.strip().lower() for c in row]
    found = {k: next((i for i, c in enumerate(cols) if c in names), None) for k, names in LIST_COLUMNS.items()}
    if Path(cols[0]).suffix.lower() in IMAGE_EXTS or not any(v is not None for v in found.values()):  # a first row
        return {"header": False, "n": len(row), "path": 0, "label": 1 if len(row) > 1 else None, "split": 2 if len(row) > 2 else None}
    if found["path"] is None:
        raise DataError(f"{p}, line 1: no path column (header is {','.join(row)!r}); name one path, file or image")
    return {"header": True, "n": len(row), **found}


def _list_row(row: list[str], cols: dict, base: Path) -> tuple[Path, str | int | None, int]:
    """(image file, class name / integer id / None, split or -1) of one row of an image list."""
    if len(row) != cols["n"]:
        raise ValueError(f"expected {cols['n']} fields, found {len(row)}")
    text = row[cols["path"]].strip()
    if not text:
        raise ValueError("the path is empty")
    image = Path(text) if Path(text).is_absolute() else base / text
    if not image.is_file():
        raise ValueError(f"no such image file {image}" if not image.exists() else f"{image} is not a regular file")
    label = row[cols["label"]].strip() if cols["label"] is not None else ""
    cls = None
    if label.lstrip("-").isdecimal():  # (isdigit passes '²', which int() refuses)
        cls = int(label)
        if not 0 <= cls < MAX_CLASSES:  # (a huge id overflowed int64 in a traceback)
            raise ValueError(f"label {label!r} is not a class id 0..{MAX_CLASSES - 1}; give a class name or an id "
                             "(or nothing: unlabelled)")
    elif _is_number(label):  # "3.0" (pandas's ids in a column with an empty cell) or "nan" was trained as a class so named
        raise ValueError(f"label {label!r} is a number but no integer id; write ids as 0, 1, 2 (pandas writes 3.0 for 3 "
                         "in a column with an empty cell), or give class names")
    elif label:
        cls = _class_name(label, "label")
    split = row[cols["split"]].strip() if cols["split"] is not None else ""
    if split and split.lower() not in SPLIT_NAMES:
        raise ValueError(f"split {split!r} is not train, val or test (nor Training, PublicTest, PrivateTest)")
    return image, cls, SPLITS.index(SPLIT_NAMES[split.lower()]) if split else -1


def _class_name(text: str, what: str) -> str:
    """A class name as ferkit compares it (stripped, lower case); a ValueError for one holding a line break or
    other character a terminal acts on (labels.unprintable: an escape code, a bidi override),
    which split every table and one-line message that names the class, or bytes
    that are not UTF-8 (a folder named in Latin-1, which Python keeps as lone surrogates): such a name
    trained into the model's labels and then failed every writer of them (predict --csv, plot, report)."""
    if problem := _undecodable(text):  # (first: its lone surrogates are not printable either)
        raise ValueError(f"the {what} {_replaced(text)!r} is {problem}; rename it in UTF-8 (convmv -f latin1 -t utf-8 "
                         "--notest -r FOLDER renames a tree named in Latin-1)")
    if unprintable(text):
        raise ValueError(f"the {what} {text!r} holds a line break or other control character (an escape code, a bidi "
                         "override); rename it")
    return _nfc(text)


def _nfc(name: str) -> str:
    """A class name as compared: stripped, lower case, in Unicode's composed form (NFC): a Mac writes a
    folder 'überrascht' decomposed (NFD), which did not match the same name in labels.txt, and said so bafflingly."""
    return unicodedata.normalize("NFC", name.strip().lower())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _class_order(present: set[str]) -> tuple[str, ...]:
    """Class names in label order: the first known label set's order where it holds them all, else alphabetical."""
    for s in LABEL_SETS.values():
        if present <= set(s.emotions):
            return tuple(e for e in s.emotions if e in present)
    return tuple(sorted(present))


def _label_ids(listing: _Listing, names, skip_bad_rows: bool, names_from: str | None = None) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """(labels (N,) int64, names) of a listing: classes looked up in names (ids index them from 0);
    without names, named classes are numbered in _class_order, integer ids kept as they are (names None).
    An entry whose class is not among the names is a bad row (dropped from the listing with skip_bad_rows);
    names_from: where given names came from (--label-names, a labels.txt), named in its message."""
    given = names is not None
    of = f" of {names_from}" if names_from else ""
    if not given:
        named = {c for c in listing.classes if isinstance(c, str)}
        names = _class_order(named) if named else None
    ids, keep = [], []
    index = {n: i for i, n in enumerate(names or ())}
    for cls, where in zip(listing.classes, listing.where):
        try:
            if cls is None:
                ids.append(-1)
            elif isinstance(cls, str):
                if cls not in index:
                    raise ValueError(f"class {cls!r} is not one of the class names{of} ({', '.join(names)})")
                ids.append(index[cls])
            elif given and not cls < len(names):
                raise ValueError(f"label {cls} is not an index of the {len(names)} class names{of} (0 {names[0]} .. "
                                 f"{len(names) - 1} {names[-1]})")
            else:
                ids.append(cls)
            keep.append(True)
        except ValueError as e:
            listing.bad(f"{where}: {e}", skip_bad_rows)
            keep.append(False)
    for name in ("files", "classes", "splits", "where"):
        setattr(listing, name, [v for v, k in zip(getattr(listing, name), keep) if k])
    return np.asarray(ids, np.int64), names


def _read_images(listing: _Listing, names, size: int, channels: int, skip_bad_rows: bool, source: str,
                 names_from: str | None = None) -> FerData:
    """Decode a listing's images at the model's input (see _fit)."""
    from PIL import Image, UnidentifiedImageError

    labels, names = _label_ids(listing, names, skip_bad_rows, names_from)
    n, shape = len(listing.files), (size, size) + ((channels,) if channels > 1 else ())
    need = n * int(np.prod(shape))
    if need > MAX_BYTES:
        raise DataError(f"{source}: {n:,} images at {'x'.join(map(str, shape))} take {need / 1e9:.1f} GB, over the "
                        f"{MAX_BYTES / 1e9:.1f} GB ferkit holds in memory; train at a smaller in_size or in grey, or on part of the data")
    images, keep = np.empty((n, *shape), np.uint8), np.ones(n, bool)
    for i, (f, where) in enumerate(zip(listing.files, listing.where)):
        try:
            with Image.open(f) as im:
                im.draft(im.mode, (size, size))  # a large JPEG is decoded at a reduced scale, still >= size
                images[i] = _fit(im, size, channels)
        except (ValueError, OSError, SyntaxError, EOFError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            listing.bad(f"{where}: {e}" if where == str(f) else f"{where}: cannot read the image ({e})", skip_bad_rows)
            keep[i] = False
    if not keep.any():
        raise DataError(f"{source}: no readable images ({len(listing.problems)} bad files skipped)")
    pick = (lambda a: a) if keep.all() else (lambda a: a[keep])
    return FerData(pick(images), pick(labels), pick(np.asarray(listing.splits, np.int8)), source, len(listing.problems),
                   listing.problems[:20], names, files=[f for f, k in zip(listing.files, keep) if k])


class BadRowError(DataError):
    """A bad row or image that --skip-bad-rows would skip (bad_row makes it): `unskipped` is its message without
    that way, for a command that has no such flag (predict and serve calibrating int8)."""

    def __init__(self, message: str, unskipped: str | None = None):
        super().__init__(message)
        self.unskipped = unskipped or message


def bad_row(problem: str, fix: str, skip: str) -> BadRowError:
    """The error of a bad row or image: its problem, the fix, and what --skip-bad-rows does instead."""
    return BadRowError(f"{problem}. {fix}, or pass --skip-bad-rows {skip}.", unskipped=f"{problem}. {fix}.")


class SplitError(DataError):
    """Data without a split of their own that are too few (a class of a few images) for the split asked for.
    unsplit: the data as read, with no split drawn (as NO_SPLIT reads them), for a command that goes on without one."""

    def __init__(self, message: str, unsplit: FerData | None = None):
        super().__init__(message)
        self.unsplit = unsplit


def _with_splits(data: FerData, seed: int, val_fraction: float, test_fraction: float, fix: str | None = None) -> FerData:
    """data with every row in a split: as the data give them, or, where they give none, a stratified
    split drawn with `seed` (the log says so). Some rows with a split and some without is an error.
    fix: what a command other than train advises where the split cannot be drawn (its fractions are then
    a training's, recorded in its checkpoint, not flags of that command)."""
    none = data.splits < 0
    if not none.any():
        return data
    unsplit = replace(data, splits=np.zeros(len(none), np.int8), own_split=False)  # every image a training one
    if none.all() and not val_fraction and not test_fraction:  # nothing to draw (and no "drew a stratified one" to log)
        return unsplit
    if not none.all():
        k = int(none.sum())
        raise DataError(f"{data.source}: {k} images have no split (right in ROOT/<class>/, or no split in their row) and "
                        f"{len(none) - k} have one; give every image a split, or none (then ferkit draws a stratified one)")
    from sklearn.model_selection import train_test_split

    idx, y = np.arange(len(data.labels)), data.labels
    try:
        rest, test = (idx, idx[:0]) if not test_fraction else train_test_split(idx, test_size=test_fraction, stratify=y,
                                                                                random_state=seed)
        train, val = (rest, rest[:0]) if not val_fraction else train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest], random_state=seed)
    except ValueError as e:
        counts = ", ".join(f"{data.names[c] if data.names and c >= 0 else c}: {k}" for c, k in zip(*np.unique(y, return_counts=True)))
        if fix is None:  # train: its own flags
            what = f"a stratified split with --val-fraction {val_fraction} and --test-fraction {test_fraction}"
            fix = "give each class more images, smaller or zero fractions, or splits in the data (train/ val/ test/ folders, or a split column)"
        else:
            what = f"the stratified split the model's training drew (val fraction {val_fraction}, test fraction {test_fraction})"
        raise SplitError(f"{data.source}: cannot draw {what} ({e}; images per class: {counts}); {fix}", unsplit) from None
    splits = np.zeros(len(idx), np.int8)
    splits[val], splits[test] = SPLITS.index("val"), SPLITS.index("test")
    log.info(f"{data.source}: the data give no split; drew a stratified one (--split-seed {seed}): train {len(train)}, "
             f"val {len(val)}, test {len(test)}")
    return replace(data, splits=splits, own_split=False)


def say_leaked(data: FerData) -> None:
    """A warning when one's own images hold the same face (the same pixels, as read) in the training split
    and in val or test: copied files, or one photo under two names, score the model on faces it trained on.
    FER2013's rows (kind "pixels") are left alone: its duplicates are part of the benchmarks defined on it."""
    train = data.in_split("train")
    if data.kind == "pixels" or train.all() or not train.any():
        return
    digests = [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in data.images]
    first = {}
    for i in np.flatnonzero(train):
        first.setdefault(digests[i], i)
    pairs = [(first[digests[i]], i) for i in np.flatnonzero(~train) if digests[i] in first]
    if not pairs:
        return
    n = np.bincount(data.splits[[i for _, i in pairs]], minlength=len(SPLITS))
    held = ", ".join(f"{n[k]} {s}" for k, s in enumerate(SPLITS) if k and n[k])
    eg = f" (e.g. {'; '.join(f'{data.files[a]} = {data.files[b]}' for a, b in pairs[:3])})" if data.files is not None else ""
    fix = ("move each copy into the split of its original, or remove it" if data.own_split else
           "remove the copies (the split is drawn: a copy may land in any split)")
    log.warning(f"{data.source}: {len(pairs)} val/test image(s) ({held}) are the same as training images{eg}: the model is "
                f"scored on faces it trained on, so its val/test accuracy is inflated; {fix}")


def subset_rows(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """--train-subset N's rows of a training split: the indices (in the split's order) of N of them drawn
    with `seed`, stratified by `labels` so that each class keeps its share (an image folder lists its
    classes one after another: its first N images were one class). All rows when N is 0 or at least their
    number. Where sklearn cannot stratify (a class of one image, fewer images drawn, or left, than
    classes), a plain random sample with the same seed. train.fit and search's folds both cut with it."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    if not n or n >= len(rows):
        return rows
    # sklearn takes a 32-bit seed, --seed one of up to 63 bits: its two 32-bit words seed the generator
    state = np.random.RandomState([seed & 0xFFFFFFFF, seed >> 32])
    try:
        pick, _ = train_test_split(rows, train_size=n, stratify=labels, random_state=state)
    except ValueError:
        pick = state.permutation(rows)[:n]
    return np.sort(pick)


def mean_image(images: np.ndarray) -> np.ndarray:
    """Per-pixel mean of uint8 images (N, H, W[, C]) as float32 (H, W[, C]) in 0..255 (paper, Section 4)."""
    return images.astype(np.float64).mean(axis=0).astype(np.float32)

