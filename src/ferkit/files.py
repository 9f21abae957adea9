"""Writing outputs: check a destination before the work starts, then write it atomically.

    check_output(path, "--json")   at the start of a command: a bad --out/--json/--onnx fails in
                                   a second with a clear message, not after an hour of work
    atomic_write(path, data)       a temporary file in the same folder, then os.replace: a kill
                                   mid-write never leaves a half-written file, and readers (other
                                   workers, the web page) never see one; the temporary files that
                                   killed writers left in that folder are removed (remove_stale_temps)

Missing parent folders are not created by the check (a failed command leaves no empty folders);
atomic_write creates them when the output is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import FerkitError

TEMP_NAME = re.compile(r"\..+\.(\d+)-[0-9a-f]{8}\.tmp")  # atomic_write's temporary files: .NAME.<pid>-<hex>.tmp


def check_output(path: str | os.PathLike, flag: str, folder: bool = False) -> Path:
    """`path` as a Path if ferkit can write it (a file, or with folder=True a folder), else a
    FerkitError naming the flag, the path and why. Missing parent folders are fine (they are
    created when the output is written) as long as the nearest existing one is writable."""
    p = Path(path)
    if p.is_dir() and not folder:
        raise FerkitError(f"{flag} {p}: is a folder; give a file name")
    if p.exists() and folder and not p.is_dir():
        raise FerkitError(f"{flag} {p}: is a file, not a folder; give a folder")
    base = p if folder and p.is_dir() else p.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise FerkitError(f"{flag} {p}: {base} is a file, not a folder; choose another location")
    try:  # a real write: os.access says yes to root even on a read-only file system
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        raise FerkitError(f"{flag} {p}: cannot write in {base} ({e.strerror or e}); choose another location") from None
    return p


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
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):  # another writer may have removed it first
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write bytes, UTF-8 text, or whatever data(file) writes, to path atomically; returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)  # a killed writer's leftovers (a 0-byte .last.pt...tmp, say) go now
    # a unique hidden name: several processes may write the same file at once (search workers,
    # caches), and globs such as metrics-*.json never see it; "xb" keeps the umask's permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex): ties a file derived from another to its source."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
