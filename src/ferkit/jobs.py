"""Files to results: which inputs to read (collect_inputs) and one photo or video to its result
(predict_file), for `ferkit predict`. The Predictor (predict.py) knows nothing of files; videos
go through video.py, which knows nothing of how the Predictor is made.
"""

from __future__ import annotations

from pathlib import Path

from .data import IMAGE_EXTS
from .draw import annotate, encode_rgb, no_copy
from .errors import ImageError
from .faces import load_image
from .files import atomic_write, is_hidden
from .schema import FileResult
from .video import predict_video

VIDEO_EXTS = {".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp"}  # what OpenCV's FFmpeg reads
COPY_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # photos' annotated copies keep these formats (others: .png)


def copy_suffix(path: Path) -> str:
    """The extension of `path`'s annotated copy: MPEG-4 for a video (what video.py writes), the
    photo's own where it is one of COPY_EXTS, else .png (a GIF or TIFF copy would lose colours)."""
    if path.suffix.lower() in VIDEO_EXTS:
        return ".mp4"
    return path.suffix.lower() if path.suffix.lower() in COPY_EXTS else ".png"


def collect_inputs(paths: list[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files to process as (file, folder it was found in or None) and one message per bad input.
    Folders are searched recursively for image and video files (by extension). What is not a
    regular file is never opened (reading a pipe could wait forever): given, or found in a folder
    under an image or video name, it gets a message saying what it is (_unusable)."""
    files, problems = [], []
    exts = IMAGE_EXTS | VIDEO_EXTS
    for p in map(Path, paths):
        if p.is_dir():
            found, skipped = [], []
            # rglob lists links to folders but does not enter them
            for f in sorted(f for f in p.rglob("*") if not is_hidden(f.relative_to(p))):
                # (a link to a folder, whatever its name, is said: the photos in it would go unseen)
                why = _unusable(f) if f.suffix.lower() in exts or (f.is_symlink() and f.is_dir()) else None
                if why:
                    skipped.append(f"{f}: {why}; skipped")
                elif f.suffix.lower() in exts and f.is_file():
                    found.append(f)
            if not found and not skipped:
                problems.append(f"{p}: the folder holds no images or videos ({', '.join(sorted(exts))})")
            files += [(f, p) for f in found]
            problems += skipped
        elif p.is_file():
            files.append((p, None))
        elif str(p) == "-":  # the Unix habit for standard input: a pipe, which is never read (see above)
            problems.append("-: photos are not read from standard input; save the photo to a file and give its path")
        else:
            why = _unusable(p)
            problems.append(f"{p}: {why}; skipped" if why else f"{p}: no such file or folder; check the path")
    return files, problems


def _unusable(path: Path) -> str | None:
    """Why an entry is no file to read (a pipe, device or socket, a dangling link, a link loop,
    a link to a folder inside a scanned folder), or None for a regular file or a real folder.
    Only stat/lstat: nothing is opened."""
    import errno
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself); fix or remove the link"
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist; fix or remove the link"
        if e.errno == errno.ENOENT:
            return None
        return f"cannot be read ({e.strerror or e}); check its permissions"
    if stat.S_ISDIR(st.st_mode):
        # a real folder named like a photo is searched like any folder; a link to one is not followed
        return "a link to a folder, which a folder search does not follow; give it on its own" if path.is_symlink() else None
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def predict_file(predictor, path: Path, every: int = 1, annotate_to: Path | None = None, crops: bool = False) -> FileResult:
    """One image or video -> its result dict with a Predictor (or anything with .predict(rgb, crops=)); raises ImageError
    for a bad file. annotate_to: where its annotated copy goes, extension included (copy_suffix: .mp4 for a video)."""
    if path.suffix.lower() in VIDEO_EXTS:
        if crops:
            raise ImageError(f"{path}: a video is not a face crop; run videos without --crops", "not_image")
        return predict_video(predictor, path, every, annotate_to)
    rgb = load_image(path)
    recs = predictor.predict(rgb, crops=crops)
    if annotate_to is not None:
        try:
            atomic_write(annotate_to, encode_rgb(annotate(rgb, recs), annotate_to))
        except OSError as e:  # a full disk, a folder gone read-only: the predictions stay in the results
            no_copy(annotate_to, path, f"cannot write it: {e.strerror or e}")
    return {"file": str(path), "type": "image", "width": rgb.shape[1], "height": rgb.shape[0], "faces": recs}
