"""Files to results, for `ferkit predict`: which inputs to read (collect_inputs), where their
annotated copies go (copy_paths) and one photo or video to its result (predict_file). The
Predictor (predict.py) knows nothing of files; videos go through video.py, which knows nothing of
how the Predictor is made.
"""

from __future__ import annotations

import os
from pathlib import Path

from .draw import annotate, encode_rgb, no_copy
from .errors import FerkitError, ImageError, quoted
from .faces import NOT_URLS, is_url, load_image
from .files import IMAGE_EXTS, VIDEO_EXTS, atomic_write, is_hidden, tree
from .schema import FileResult, ImageResult
from .video import Frames, predict_video

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
    for given in paths:
        p = Path(given)
        if isinstance(given, str) and is_url(given) and not p.exists():  # (as a Path, https://x is https:/x)
            problems.append(f"{quoted(given)}: {NOT_URLS}")
            continue
        try:
            _collect(p, exts, files, problems)
        except OSError as e:  # a name too long, a loop of links
            problems.append(f"{quoted(p)}: cannot use it ({e.strerror or e}); check the path")
    # a file given twice, or also inside a folder given, is predicted once: twice, its results counted
    # twice, and copy_paths gave both the second copy's name, so the first copy was never written
    unique = {}
    for f, root in files:
        unique.setdefault(f.absolute(), (f, root))
    return list(unique.values()), problems


def _collect(p: Path, exts: set[str], files: list, problems: list[str]) -> None:
    """collect_inputs for one path given."""
    if p.is_dir():
        found, skipped = [], []
        # tree lists links to folders but does not enter them
        for f in sorted(f for f in tree(p) if not is_hidden(f.relative_to(p))):
            # (a link to a folder, whatever its name, is said: the photos in it would go unseen)
            why = _unusable(f) if f.suffix.lower() in exts or (f.is_symlink() and f.is_dir()) else None
            if why:
                skipped.append(f"{f}: {why}; skipped")
            elif f.suffix.lower() in exts and f.is_file():
                found.append(f)
        if not found and not skipped:
            problems.append(f"{p}: the folder holds no images or videos ({', '.join(sorted(exts))})")
        files.extend((f, p) for f in found)
        problems.extend(skipped)
    elif p.is_file():
        files.append((p, None))
    elif str(p) == "-":  # the Unix habit for standard input: a pipe, which is never read (see above)
        problems.append("-: photos are not read from standard input; save the photo to a file and give its path")
    else:
        why = _unusable(p)
        problems.append(f"{quoted(p)}: {why}; skipped" if why else f"{quoted(p)}: no such file or folder; check the path")


def _unusable(path: Path) -> str | None:
    """Why an entry is no file to read (a pipe, device or socket, a dangling link, a link loop,
    a link to a folder inside a scanned folder), or None for a regular file or a real folder.
    Only stat/lstat: nothing is opened."""
    import errno
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


def names_one_copy(annotate: str | None) -> bool:
    """--annotate names one photo or video to write (out.jpg, out.mp4), not a folder of copies."""
    return bool(annotate) and Path(annotate).suffix.lower() in IMAGE_EXTS | VIDEO_EXTS and not Path(annotate).is_dir() \
        and not annotate.endswith(("/", os.sep))


def _check_one_copy(annotate: str, files: list) -> None:
    """A FerkitError unless --annotate FILE can hold the copy: one input, and a format it is written in."""
    if len(files) > 1:
        raise FerkitError(f"--annotate {annotate}: names one file, but {len(files)} photos or videos were found; "
                          f"give a folder for their copies, e.g. --annotate {Path(annotate).with_suffix('')}/")
    want, got = copy_suffix(files[0][0]), Path(annotate).suffix.lower()
    if want == ".mp4" and got != ".mp4":
        raise FerkitError(f"--annotate {annotate}: a video's annotated copy is an MPEG-4 video; name it .mp4")
    if want != ".mp4" and got not in COPY_EXTS:
        raise FerkitError(f"--annotate {annotate}: a photo's annotated copy is written as {', '.join(COPY_EXTS)}; "
                          "give one of those")


def copy_paths(annotate: str | None, files: list) -> dict[Path, Path]:
    """Where --annotate writes each input's annotated copy, extension included: the one file it
    names (a FerkitError unless it can hold the copy), or in its folder (a file found in a folder
    under that folder's name, any other by its own name), each name used once."""
    if not annotate:
        return {}
    if names_one_copy(annotate):
        if files:
            _check_one_copy(annotate, files)
        return {f: Path(annotate) for f, _ in files}
    copies, used = {}, set()
    for f, root in files:
        folder = "" if root is None else root.resolve().name if root.name == ".." else root.name  # (.. would climb out)
        out = Path(annotate) / folder / (f.relative_to(root) if root is not None else f.name)
        out = out.with_suffix(copy_suffix(f))
        while out in used:  # two inputs with the same name (or a.gif beside a.png)
            out = out.with_name(out.stem + "_" + out.suffix)
        used.add(out)
        copies[f] = out
    return copies


def predict_file(predictor, path: Path, every: int = 1, annotate_to: Path | None = None, crops: bool = False,
                 frames: Frames | None = None) -> FileResult:
    """One image or video -> its result dict with a Predictor (or anything with .predict(rgb, crops=)); raises ImageError
    for a bad file. annotate_to: where its annotated copy goes, extension included (copy_suffix: .mp4 for a video).
    frames: where a video's frames go as they are done (video.predict_video; default: kept in its result)."""
    if path.suffix.lower() in VIDEO_EXTS:
        if crops:
            raise ImageError(f"{path}: a video is not a face crop; run videos without --crops", "not_image")
        return predict_video(predictor, path, every, annotate_to, frames)
    rgb = load_image(path)
    recs = predictor.predict(rgb, crops=crops)
    res: ImageResult = {"file": str(path), "type": "image", "width": rgb.shape[1], "height": rgb.shape[0], "faces": recs}
    if annotate_to is not None:
        try:
            atomic_write(annotate_to, encode_rgb(annotate(rgb, recs), annotate_to))
            res["annotated"] = str(annotate_to)
        except OSError as e:  # a full disk, a folder gone read-only: the predictions stay in the results
            no_copy(annotate_to, path, f"cannot write it: {e.strerror or e}")
        except FerkitError as e:  # a size its format cannot hold
            no_copy(annotate_to, path, str(e).removeprefix(f"{annotate_to}: "))
    return res
