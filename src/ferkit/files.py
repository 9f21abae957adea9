"""Writing outputs: check a destination before the work starts, then write it atomically.

    check_output(path, "--json")   at the start of a command, the one check every command uses:
                                   the folder is created and a block really written there, so a
                                   bad --out/--json/--onnx or a full disk fails in a second with a
                                   clear message, not after an hour of work
    atomic_write(path, data)       a temporary file in the same folder, then os.replace: a kill
                                   mid-write never leaves a half-written file, and readers (other
                                   workers, the web page) never see one; the temporary files that
                                   killed writers left in that folder are removed at the process's
                                   first write there (remove_stale_temps)
    atomic_path(path)              the same for writers that take a file name (OpenCV's VideoWriter)
    atomic_file(path)              the same for writers that write in pieces (predict's results as they come)
    write_output(path, data)       atomic_write for a command's result: a full disk or a folder
                                   that became unwritable is one OutputError, and the earlier file stays

A path that is a symbolic link writes the file it points to (write_target), as a shell's `>` does: the
link stays a link, and a link whose target's folder is missing is refused by the check, naming it.

The check creates missing parent folders (as the README says): creating them is the only test
that they can be created (a read-only file system, /proc, a file where a folder should be).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import FerkitError, OutputError, quoted

MODEL_SUFFIXES = (".pt", ".pth", ".onnx")  # checkpoints, state dicts and exported graphs: never data, never a text output
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}  # what PIL reads
# what OpenCV's FFmpeg reads: containers, camcorders' MPEG transport streams (.mts) and raw streams (.h264 ...)
VIDEO_EXTS = {".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp", ".mts", ".m2ts",
              ".h264", ".264", ".h265", ".265", ".hevc", ".m2v"}


def kind_of_file(path: str | os.PathLike) -> str | None:
    """ "a model", "an image" or "a video" by the file's extension (None: none of them), for messages
    that refuse such a file where another is due (--data, a text output)."""
    suffix = Path(path).suffix.lower()
    return ("a model" if suffix in MODEL_SUFFIXES else "an image" if suffix in IMAGE_EXTS
            else "a video" if suffix in VIDEO_EXTS else None)


def same_path(a: str | os.PathLike | None, b: str | os.PathLike | None) -> bool:
    """Whether two recorded paths name one file (links and relative parts resolved); None is no file:
    a run's data against the data given now, a metrics file's data against a run's."""
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()

NAME_MAX = 255  # bytes in a file name on Linux, macOS and Windows file systems

# atomic_write's temporary files: .NAME.<pid>-<hex>.tmp, or .NAME.<pid>-<hex>.tmp.EXT where NAME ends
# in .EXT (atomic_path keeps the extension: OpenCV picks a video's container by it)
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp(?P<ext>\.[^.]+)?")


def check_output(path: str | os.PathLike, flag: str, folder: bool = False, fix: str = "choose another location") -> Path:
    """`path` as a Path if ferkit can write it (a file, or with folder=True a folder), else a
    FerkitError naming the flag, the path, why and what to do. A file's missing parent folders are
    created; a folder (a run's --out) is not, so a command refused later leaves nothing behind:
    a temporary file is written and removed in the nearest folder that exists (room_error). `fix`, the
    way out of a location ferkit cannot write (another one; a resumed run cannot move: it is told otherwise),
    ends the message, after the fix for the cause (write_fix: free some space, make the folder writable)."""
    if not str(path).strip():  # Path("") is the current folder
        raise FerkitError(f"{flag}: an empty path; give a {'folder' if folder else 'file'}")
    if str(path) == "-":  # the Unix habit for standard output: ferkit would write a file named "-"
        raise FerkitError(f"{flag} -: ferkit writes {'folders' if folder else 'files'}, not standard output; give a "
                          f"{'folder' if folder else 'file'} name (./- for a file of that name)")
    try:
        # a trailing slash names a folder; Path() drops it, and the file would take the folder's name
        return _check_output(Path(path), flag, folder, str(path).endswith(("/", os.sep)), fix)
    except OSError as e:  # what the checks' own stat calls raise: a name too long, a loop of links
        raise FerkitError(f"{flag} {quoted(path)}: cannot use it ({e.strerror or e}); {fix}") from None


def _check_output(p: Path, flag: str, folder: bool, slash: bool, fix: str) -> Path:
    if folder and p.is_symlink() and not p.exists():  # the run's mkdir would fail on it, after the data are read
        raise FerkitError(f"{flag} {p}: a symbolic link to nothing (a missing target or a loop of links); "
                          "give another location, or remove or fix the link")
    if (p.is_dir() or slash) and not folder:
        ext = {"--json": ".json", "--csv": ".csv", "--onnx": ".onnx", "--pt": ".pt", "--out": ""}.get(flag, "")
        raise FerkitError(f"{flag} {p}{'/' if slash else ''}: {'is' if p.is_dir() else 'names'} a folder; give a file name"
                          + (f", e.g. {p / ('results' + ext)}" if ext else ""))
    if p.exists() and not p.is_dir() and folder:
        raise FerkitError(f"{flag} {p}: is a file, not a folder; give a folder")
    if p.exists() and not folder and not p.is_file():  # replacing /dev/null or a pipe would be wrong
        raise FerkitError(f"{flag} {p}: not a regular file (a device, pipe or socket); give a file name")
    if p.is_file() and not os.access(p, os.W_OK):  # os.replace would overwrite it all the same
        raise FerkitError(f"{flag} {p}: the file is read-only; make it writable or write elsewhere")
    base = p if folder else write_target(p).parent  # where atomic_path's temporary file will be written
    try:
        if not folder:
            base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        found = next(a for a in (base, *base.parents) if a.exists())  # the folder it failed in, or a file in the way
        if not found.is_dir():
            raise FerkitError(f"{flag} {p}: {found} is a file, not a folder; {fix}") from None
        raise FerkitError(f"{flag} {p}: cannot write in {found} ({e.strerror or e}); {write_fix(e)}, or {fix}") from None
    if folder:
        base = next(a for a in (base, *base.parents) if a.exists())
        if not base.is_dir():
            raise FerkitError(f"{flag} {p}: {base} is a file, not a folder; {fix}")
    if (e := room_error(base)) is not None:
        raise FerkitError(f"{flag} {p}: cannot write in {base} ({e.strerror or e}); {write_fix(e)}, or {fix}")
    return p


def missing_folders(paths: list[Path]) -> list[Path]:
    """The folders among `paths` and their parents that do not exist now, the deepest first: what a command
    that then creates them (check_output, a run's mkdir) removes again with remove_empty if it is refused."""
    # (os.path.exists: a name too long for the file system is missing, for check_output to refuse, not an OSError here)
    return sorted({a for p in paths for a in (p, *p.parents) if not os.path.exists(a)}, key=lambda a: len(a.parts), reverse=True)


def remove_empty(folders: list[Path]) -> None:
    """Remove those of `folders` (missing_folders' list) that are empty: a refused command leaves nothing behind."""
    for folder in folders:  # one that holds anything stays, and so do its parents
        with contextlib.suppress(OSError):
            folder.rmdir()


def check_default_folder(folder: Path, what: str, flag: str) -> None:
    """A FerkitError where `what` (e.g. "the metrics") cannot be written in `folder`, the place a command writes
    it when its `flag` (e.g. "--json") was not given: the message names the folder and says to choose another
    place with that flag; check_output's begin with a flag and its value, as if the user had given them."""
    if (e := room_error(folder)) is not None:
        name = Path.cwd() if folder == Path(".") else folder
        raise FerkitError(f"{name}: cannot write {what} in this folder ({e.strerror or e}); {write_fix(e)}, or choose "
                          f"another place with {flag} FILE")


def check_outputs(*outputs: tuple[str, str | os.PathLike | None, bool]) -> list[Path | None]:
    """check_output for each (flag, path or None, folder) of a command, and no file named twice."""
    checked = [check_output(path, flag, folder) if path else None for flag, path, folder in outputs]
    seen: dict[Path, str] = {}
    for (flag, path, _), p in zip(outputs, checked):
        if p is not None and p.resolve() in seen:
            raise FerkitError(f"{seen[p.resolve()]} and {flag} both name {path}; give two files")
        if p is not None:
            seen[p.resolve()] = flag
    return checked


def is_hidden(relative: Path) -> bool:
    """Whether a path found in a searched folder lies in a hidden part of it: a dot-file or dot-folder
    (.ipynb_checkpoints, .git) or the __MACOSX folder a zip from a Mac unpacks (copies, not photos)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def tree(root: Path) -> Iterator[Path]:
    """Everything under the folder root, as root.rglob("*") lists it (a link to a folder is listed, not
    entered; an unreadable folder is passed over), but with a stack of its own: rglob recurses once a
    level, and a tree nested about 1,000 levels deep (a hostile archive) was a RecursionError."""
    folders = [root]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                found = list(entries)
        except PermissionError:
            continue
        for entry in found:
            yield Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)


def is_null_device(path: str | os.PathLike) -> bool:
    """Whether path is (or links to) /dev/null, the usual stand-in for an empty file."""
    try:
        st, null = os.stat(path), os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


def check_regular_file(path: Path, what: str, error: Callable[[str], FerkitError] = FerkitError) -> None:
    """An `error` (an error class, or a function of the message that makes one) when an existing path is
    a pipe, device or socket (a FIFO would block its reader forever) or a folder, where a file is read:
    `what` says which file to give instead; or a file ferkit's user may not read (another user's, chmod 000),
    which torch, zipfile and json readers each reported their own way (a PermissionError traceback, "damaged")."""
    if path.exists() and not path.is_file():
        kind = ("a folder" if path.is_dir() else "empty (the null device, not a file)"
                if is_null_device(path) else "not a regular file (a device, pipe or socket)")
        raise error(f"{path}: {kind}; give {what}")
    try:
        os.close(os.open(path, os.O_RDONLY))  # (a regular file: opening it does not block)
    except PermissionError as e:
        raise error(f"{path}: cannot read it ({e.strerror}); give ferkit's user read access to it (chmod a+r)") from None
    except OSError:  # missing, or a name too long: each reader's own message says so
        pass


def check_not_input(out: Path, flag: str, inputs) -> None:
    """A FerkitError when the output `out` (a file, or the folder a command writes into) is one of the command's
    input files (the checkpoint being exported, a file of a run being reported), or is or lies inside an input
    folder, an image-folder data set: its next reading took a figure written there for a face (of a class named
    after its folder) or a bad entry, and left a page or a run's files out with a warning. The one check of an
    output against what its command reads (or, a run's own data, would read); None: no input."""
    target = out.stat() if out.is_file() else None
    where = None  # out resolved, found for the first input folder
    for i in inputs:  # one stat an input (predict gives every photo of its folders)
        if i is None:
            continue
        try:
            st = os.stat(i)
        except OSError:
            continue
        if target is not None and (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):  # os.path.samefile's test
            raise FerkitError(f"{flag} {out}: is {'' if Path(i) == out else f'{i}, '}the command's own input; writing it "
                              "would replace what it reads; give another file name")
        if stat.S_ISDIR(st.st_mode):
            where, folder = where or out.resolve(), Path(i).resolve()
            if where == folder or folder in where.parents:
                raise FerkitError(f"{flag} {out}: {'is' if where == folder else 'lies inside'} the data folder {i}, and what "
                                  f"it writes there would be read with the data (an image as a face); choose another {flag} "
                                  "outside it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of atomic_write in `folder` whose writing process is gone (killed
    mid-write: os.replace never ran, and nothing else would ever delete them); returns them.
    Live writers' files stay: other processes (search workers, serve's) may be writing now.
    The process is looked up on this machine: a folder shared with another machine keeps the
    files its writers left (their pids mean nothing here, but may be alive there)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_NAME.fullmatch(entry.name)
        if not m or (m["ext"] and not m["name"].endswith(m["ext"])):
            continue
        if int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            with contextlib.suppress(OSError):  # another writer may have removed it first
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


# The folders this process has swept of dead writers' temporary files: once each, as a folder of 20,000
# annotated copies took a scan of all of them for every copy written
_swept: set[Path] = set()


def write_target(path: Path) -> Path:
    """The file that writing `path` updates: path itself, or, where path is a symbolic link, the file it
    points to (through links to links), as a shell's `>` does. os.replace on the link would replace the
    link itself with a file, cutting it from what it named. An OSError where the link leads nowhere a
    file can be written: a loop of links, or a target whose folder does not exist (not ours to create)."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if target.is_symlink():  # realpath stops inside a loop of links
        raise OSError(errno.ELOOP, "a loop of symbolic links; remove or fix the link", str(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"a symbolic link to {target}, whose folder {target.parent} does not exist; "
                                "create that folder or fix the link", str(path))
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary name in path's folder to write by name; renamed to path when the block ends
    without an error, removed when it raises. keep_suffix: the name ends in path's extension.
    A symbolic link at path is followed (write_target): the file it points to is replaced, the link stays."""
    path = write_target(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:  # a killed writer's leftovers (a 0-byte .last.pt...tmp, say) go now
        remove_stale_temps(path.parent)
        _swept.add(path.parent)
    # a unique hidden name: several processes may write the same file at once (search workers,
    # caches), and globs such as metrics-*.json never see it
    # counted in the file system's bytes (os.fsencode): a name that is not UTF-8 (Latin-1 'caf\xe9.json', a lone
    # surrogate to Python) was a UnicodeEncodeError traceback of str.encode, for every output and data cache
    name = path.name
    suffix = path.suffix if len(os.fsencode(path.suffix)) <= 16 else ""  # (an extension that long names no format)
    if len(os.fsencode(name)) > NAME_MAX - 40 - len(os.fsencode(suffix)):  # its temporary name is ~30 bytes and the suffix longer
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:16] + suffix
    tmp = path.with_name(f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix if keep_suffix else ''}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and (e.filename in (None, str(tmp)) or e.filename2 == str(path)):
            e.filename, e.filename2 = str(path), None  # for messages: the file being written, not its temporary name
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A new file under a temporary name in path's folder, open for writing (atomic_path): closed and
    renamed to path when the block ends without an error, removed when it raises."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:  # "xb" keeps the umask's permissions
        yield f


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write bytes, UTF-8 text, or whatever data(file) writes, to path atomically; returns path."""
    with atomic_file(path) as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def write_error(folder: str | os.PathLike, room: int = 4096, sync: bool = True) -> OSError | None:
    """The OSError that creating a file in `folder` and writing `room` bytes into it raises now (a full disk,
    a folder gone or made read-only), or None where it can; a temporary file, removed again. A real write:
    os.access says yes to root even on a read-only file system. room=0 asks only for a file, which a full
    disk still gives; a block tells whether the folder is why a library that says only that it failed
    (OpenCV's video writer, which opens no file on a full disk) failed. sync=False leaves out the fsync."""
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            if room:
                f.write(bytes(room))
                f.flush()
                if sync:
                    os.fsync(f.fileno())  # (a file system that allocates late says so only here)
    except OSError as e:
        return e
    return None


def room_error(folder: str | os.PathLike) -> OSError | None:
    """write_error for the checks before a command's work (check_output, check_default_folder): a block, not an
    empty file, which a full disk still gives (the check passed, and the command failed at its write, after all
    its work). No fsync: ext4 and tmpfs refuse the write itself when full (tried on full ones), a network file
    system the close, and the fsync cost each check 6-12 ms on ext4. A file-size limit under a block (EFBIG:
    ulimit -f) passes: it limits each file, not the room, and the command's files may fit."""
    e = write_error(folder, sync=False)
    return None if e is not None and e.errno == errno.EFBIG else e


def temp_folder() -> str | None:
    """The folder temporary files go to (TMPDIR's, else /tmp ...), or None where none takes a file (the whole
    disk full): for messages that name it, which asking tempfile again would turn into its own error."""
    try:
        return tempfile.gettempdir()
    except OSError:
        return None


def write_fix(e: OSError) -> str:
    """What to do about a failed write, by its cause: room for a full disk, a higher limit for a
    file-size limit (EFBIG, which frees no space would cure), permission for a folder that refuses
    (or a read-only file system), else the folder itself."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space"
    if e.errno == errno.EFBIG:
        return "raise the file-size limit (ulimit -f) or the file system's"
    if e.errno == errno.EROFS:
        return "write to a file system that is not read-only"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "make the folder writable"
    return "fix the folder"


@contextlib.contextmanager
def output_errors(path: str | os.PathLike) -> Iterator[None]:
    """An OSError while writing a command's output (a full disk, a folder made read-only since the
    check) as one OutputError; the writes are atomic, so an earlier file at path is left whole."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"{path}: cannot write it ({e.strerror or e}); {write_fix(e)} or choose another location "
                          "and run again (an earlier file there is left as it was)") from None


def write_output(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """atomic_write for what a command was asked to write: a failure is one line, never a traceback."""
    with output_errors(path):
        return atomic_write(path, data)


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex): ties a file derived from another to its source."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
