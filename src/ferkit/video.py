"""Videos: emotions of the faces in every Nth frame, with an id per face kept across frames by box
overlap (IoU), and a timeline and summary per face. Read and written with OpenCV, which the light
install leaves out: `pip install 'ferkit[opencv]'` (without it a video is one line naming that extra)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .config import problem
from .draw import annotate, no_copy
from .errors import FerkitError, ImageError, needs_extra, quoted
from .faces import MAX_JPEG_SCANS, MAX_PIXELS, is_url, jpeg_scans, no_such_file
from .files import atomic_path, check_regular_file, write_error
from .runs import is_whole
from .schema import Frame, Track, VideoResult

if TYPE_CHECKING:
    from .predict import Predictor

log = logging.getLogger(__name__)

# A video that ends before this share of the frames its header declares is said to (some containers,
# MKV and WebM, only estimate the count)
DECLARED_SHARE = 0.9
# The frame rates a header is believed within: outside them (a damaged AVI's 2147483647, or 4.7e-10) the
# frames' times were nonsense, all 0.0 or decades apart, and the annotated copy could not be written
FPS_RANGE = (1e-3, 1e4)
# What FFmpeg reads an AVI at whose header gives no rate (dwRate or dwScale 0, no dwMicroSecPerFrame either),
# and a raw stream (H.264, MPEG-4 part 2, ...) whatever it holds: said in its log alone, which is silenced, and
# OpenCV passes it on as the header's; every time was a guess
FFMPEG_GUESS = 25.0
# The boxes of an MP4 (MOV, 3GP) that hold its sample tables, walked into by _mp4_overclaim (ISO 14496-12): the
# moov's stbl, 4 deep, and each movie fragment's traf; the boxes a file may start with, by which one is known
MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf"}
MP4_DEPTH = 5  # (deeper is no real file's: moov in moov in ..., 8 bytes each, was a RecursionError)
MP4_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"moof", b"sidx", b"uuid"}
# The boxes _mp4_overclaim reads before it stops, a second's walk (a 10-hour fragmented video has ~150,000; a file
# of millions of 8-byte boxes would be walked for as many seconds)
MP4_MAX_BOXES = 1_000_000
# The free space an annotated copy leaves on its disk: below it, the copy is dropped (which frees what it took). A copy
# of a long video fills any disk (mp4v: 17-37 KB a 1080p frame, 18-40 GB for 10 hours at 30 a second), and a full disk
# then stopped the whole run with nothing written: --json's frames wait beside it, on the same disk as often as not
COPY_RESERVE = 64 * 2**20


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


class FaceTracker:
    """Face ids across sampled frames: a box continues the track it overlaps most (IoU >= min_iou)
    among those seen in the last `patience` sampled frames; otherwise it starts a new id."""

    def __init__(self, min_iou: float = 0.3, patience: int = 5):
        self.min_iou, self.patience = min_iou, patience
        # live id -> (last box, last step); one unseen for longer than patience is never matched again, and
        # is dropped (a long video's tracker kept every id it ever gave)
        self.tracks: dict[int, tuple[list[int], int]] = {}
        self.ids = self.step = 0  # ids given so far, sampled frames seen

    def assign(self, boxes: list) -> list[int]:
        self.tracks = {t: (b, s) for t, (b, s) in self.tracks.items() if self.step - s <= self.patience}
        live = {t: b for t, (b, _) in self.tracks.items()}
        pairs = sorted(((iou(b, tb), i, t) for i, b in enumerate(boxes) for t, tb in live.items()), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        used = set()
        for o, i, t in pairs:
            if o < self.min_iou:
                break
            if ids[i] is None and t not in used:
                ids[i] = t
                used.add(t)
        for i, b in enumerate(boxes):
            if ids[i] is None:
                self.ids += 1
                ids[i] = self.ids
            self.tracks[ids[i]] = (list(b), self.step)
        self.step += 1
        return ids


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) in the middle of a video; `result` is the video's result with the frames done."""

    def __init__(self, result: VideoResult):
        super().__init__()
        self.result = result


class Frames(Protocol):
    """Where predict_video puts each sampled frame once done: a list (the default) keeps them; the CLI's
    outputs.FrameSpool writes them out instead, so that a video of any length takes the same memory."""

    def append(self, frame: Frame) -> None: ...

    def __len__(self) -> int: ...


def predict_video(predictor: Predictor, path: str | Path, every: int = 1, annotate_to: str | Path | None = None,
                  frames: Frames | None = None) -> VideoResult:
    """Emotions of every face in every `every`-th frame, with face ids and a per-face summary.
    Interrupted after a frame, it raises Interrupted with what it has (the annotated copy is dropped).
    frames: where each frame goes once done, the result's "frames" (default: a new list, which keeps them all;
    `ferkit predict` gives outputs.FrameSpool, which writes them out)."""
    if not isinstance(path, (str, os.PathLike)):  # (None or 3 was os.fsdecode's TypeError)
        raise FerkitError(problem("path", "a video file's path (a str or pathlib.Path)", path))
    text, path = os.fsdecode(path), Path(path)
    if not path.exists():  # (a URL named as given: Path("https://x") prints https:/x)
        raise no_such_file(quoted(text) if is_url(text) else str(path), text)
    # a pipe or a device is never opened (FFmpeg waited forever on a pipe with no writer), a folder is said to be one
    check_regular_file(path, "a video file (MP4, AVI, ...)", lambda message: ImageError(message, "not_image"))
    if path.stat().st_size == 0:  # as an empty photo is said (was "a damaged file")
        raise ImageError(f"{path}: the file is empty; give an MP4, AVI or other video file", "not_image")
    if not (is_whole(every) and every >= 1):  # 2.5 sampled frames 0, 5, 10
        raise FerkitError(f"--every {every!r}: must be a whole number >= 1")
    # after the file's checks, which take any predictor; before the video is opened (None was an AttributeError at
    # the first frame). Anything with Predictor's predict(rgb) does.
    if not callable(getattr(predictor, "predict", None)):
        raise FerkitError(problem("predictor", "a ferkit Predictor (or anything with its predict(rgb) method)", predictor))
    # FFmpeg's own lines ("moov atom not found") would stand beside ferkit's message about the same
    # file; set OPENCV_FFMPEG_LOGLEVEL (e.g. 32) to see them. Read when OpenCV first opens a video.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    # Where FFmpeg cannot open a file, OpenCV tried its own MJPEG/AVI reader, which wrote "Unexpected element.
    # Expected: LIST. Got: ..." to stderr for an AVI cut short in its header, with 4 bytes of uninitialized
    # memory (garbage, on a terminal) and nothing to add: the FFmpeg that OpenCV's wheels ship reads every
    # MJPEG AVI. Read when OpenCV first opens a video, as above; OPENCV_VIDEOIO_PRIORITY_CV_MJPEG=1 has it back (last).
    os.environ.setdefault("OPENCV_VIDEOIO_PRIORITY_CV_MJPEG", "0")
    try:
        import cv2
    except ModuleNotFoundError as e:  # the light install: OpenCV is the [opencv] extra
        raise needs_extra(e, f"{path}: reading videos") from None
    if not _opencv_can_name(path):  # OpenCV's Python binding crashes the process on such a name (a segfault)
        raise ImageError(f"{path}: the file name is not valid UTF-8, which OpenCV cannot open; rename the file", "not_image")
    if (claimed := _mp4_overclaim(path)) is not None:  # before OpenCV opens it: FFmpeg indexes the samples there
        raise ImageError(f"{path}: its index claims {claimed:,} frames, more than its {path.stat().st_size:,} bytes can "
                         "hold (damaged, or made so: FFmpeg's index of them would take gigabytes); re-encode the video "
                         "from its source", "corrupt")
    if (bomb := _scan_bomb(cv2, path)) is not None:  # before a frame is decoded, as a photo's scans are counted
        raise ImageError(f"{path}: frame {bomb} is a JPEG of over {MAX_JPEG_SCANS} scans, which no camera or editor writes "
                         "(a few dozen at most) and which would take minutes to decode (each is a pass over the whole "
                         "frame); re-encode the video, e.g. as MP4 (H.264)", "corrupt")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageError(f"{path}: cannot open as a video (not a video, an unsupported codec or a damaged file); "
                         "convert it to MP4 (H.264) or pass the frames as images", "not_image")
    fps = _frame_rate(cv2, cap, path)  # the result's and the frames' times' (None: both unknown)
    declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))  # 0 where the container does not say
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > MAX_PIXELS:  # the photos' limit, from the header, before a frame is decoded
        cap.release()
        raise ImageError(f"{path}: frames of {w}x{h} pixels are too large (limit {MAX_PIXELS / 1e6:.0f} megapixels); "
                         "scale the video down first", "too_large")
    if annotate_to is not None and not _opencv_can_name(annotate_to):
        no_copy(annotate_to, path, "its name is not valid UTF-8, which OpenCV cannot write; give --annotate another name")
        annotate_to = None
    if annotate_to is not None and not _can_encode(cv2, w, h):  # known before the first frame: the predictions go on
        log.warning("%s: OpenCV cannot write a %dx%d video as MPEG-4 (mp4v), so no annotated copy of %s; its faces are "
                    "predicted all the same (scale the video down for a copy)", annotate_to, w, h, path.name)
        annotate_to = None
    frames = [] if frames is None else frames
    tracker, summary, clock, i, sampled = FaceTracker(), TrackSummary(), _Clock(fps), 0, 0
    copy = _VideoCopy(cv2, annotate_to, path, max(fps / every, 1.0) if fps else 5.0) if annotate_to is not None else None
    try:
        with contextlib.ExitStack() as stack:  # closed in reverse: the copy (dropped unless finished), the reader
            stack.callback(cap.release)
            if copy is not None:
                stack.callback(copy.drop)
            while True:
                if i % every:
                    if not cap.grab():
                        break
                    i += 1
                    continue
                ok, bgr = cap.read()
                if not ok:
                    break
                sampled = i
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                h, w = rgb.shape[:2]
                recs = predictor.predict(rgb)
                for r, fid in zip(recs, tracker.assign([r["box"] for r in recs])):
                    r["face_id"] = fid
                time = clock.time(i, cap.get(cv2.CAP_PROP_POS_MSEC))
                frame: Frame = {"frame": i, "time": time, "faces": recs}
                frames.append(frame)
                summary.add(frame)  # the frames themselves may not be kept
                if copy is not None and copy.writing:
                    copy.write(annotate(rgb, recs))
                i += 1
            if copy is not None:
                copy.finish()
    except KeyboardInterrupt:
        if not frames:
            raise
        raise Interrupted(_result(path, w, h, fps, i, every, frames, summary, complete=False)) from None
    if not frames:
        raise ImageError(f"{path}: no frame could be decoded (an empty, truncated or damaged video)", "corrupt")
    # A damaged or cut file ends early, silently, in OpenCV. A capture's dropped frames (empty chunks in an AVI) never
    # come either, but its header counts them and its frames' own times skip them: a whole capture that dropped a
    # tenth of its frames was said to be cut short. The frames the last one's time skipped count as come.
    skipped = max(0, round(clock.last * fps) - sampled) if fps else 0
    cut = i + skipped < DECLARED_SHARE * declared
    if cut:
        log.warning("%s: the video ended after %d of the %d frames its header declares (damaged or cut short?); "
                    "its results cover those %d, marked incomplete", path, i, declared, i)
    res = _result(path, w, h, fps, i, every, frames, summary, complete=not cut)  # (a JSON reader sees no warning)
    if copy is not None and copy.done:
        res["annotated"] = str(copy.path)
    return res


def _frame_rate(cv2, cap, path: Path) -> float | None:
    """The video's frames per second, the one its result gives and its frames' times are made with: None
    where it is unknown (said in a warning), and every time is null then. OpenCV's is the header's, or
    FFmpeg's guess where there is no header to give one."""
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if fps and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:  # (NaN included) taken as unknown, as a header without one
        log.warning("%s: its header gives %g frames per second, which no video has (damaged?); its frames' times "
                    "are left out (null)", path, fps)
        return None
    if fps != FFMPEG_GUESS:
        return fps or None
    if _avi_gives_no_rate(path):
        log.warning("%s: its header gives no frame rate (FFmpeg guesses %g frames per second); its frames' times are left "
                    "out (null)", path, FFMPEG_GUESS)
        return None
    if not _raw_stream(path):
        return fps
    # A raw stream is read at 25 a second whatever it holds, and OpenCV gives that: its frames' own times, where
    # they have them (MPEG-4 part 2 and MPEG-1/2 video do), tell the rate (a 10-a-second .m4v was "fps": 25 beside
    # times 0.1 s apart). H.264 gets none from FFmpeg, even with a rate in its SPS (and HEVC, by the same raw
    # reader, is taken to get none): every time was frame / 25, a guess
    step = _first_step(cv2, path)
    if step and FPS_RANGE[0] <= 1 / step <= FPS_RANGE[1]:
        return round(1 / step, 3)
    log.warning("%s: a raw video stream, which gives no frame rate (FFmpeg guesses %g frames per second); its frames' "
                "times are left out (null). For times, put it in a container at its rate, e.g. for 30 frames per second: "
                "ffmpeg -r 30 -i in.h264 -c copy out.mp4", path, FFMPEG_GUESS)
    return None


class _Clock:
    """Each sampled frame's time in seconds: the container's own for that frame (its timestamp) where it gives
    one that goes forward, else frame / fps. The header's rate alone was wrong for a variable-rate video
    (a phone's) and for a raw stream, which FFmpeg reads at 25 a second whatever its frames' own times say.
    None for every frame where the header's rate is unknown: the timestamps were made with the same nonsense."""

    # a timestamp this many times frame / fps (or more) is not believed: OpenCV's arithmetic on a stream with no
    # start time gives ~1e14 s
    BELIEVED = 100

    def __init__(self, fps: float | None):
        self.fps, self.last = fps, -1.0

    def time(self, i: int, msec: float) -> float | None:
        if not self.fps:
            return None
        t = msec / 1000
        if not (math.isfinite(t) and self.last < t <= self.BELIEVED * (i + 1) / self.fps):  # (0 for a frame without one)
            t = i / self.fps
        self.last = t
        return round(t, 3)


class _VideoCopy:
    """The annotated copy of a video, written frame by frame under a temporary name (with the .mp4 that
    OpenCV picks the container by) and renamed into place once finished and read back whole: an
    interrupted or failed copy never looks finished. A copy that cannot be written (a full disk, a
    folder gone read-only, a size OpenCV cannot encode) is a warning (draw.no_copy) and no copy, never
    the loss of the video's predictions. OpenCV's writer says nothing of a failed write (a full disk
    left a cut, unplayable file that was renamed into place as if whole), hence the reading back. Nor does it
    ever fill its disk: a copy that leaves under COPY_RESERVE free there is dropped, its space freed for the results."""

    def __init__(self, cv2, path: str | Path, source: Path, fps: float):
        self.cv2, self.path, self.source, self.fps = cv2, Path(path), source, fps
        self.writer, self.tmp, self.frames, self.writing, self.done = None, None, 0, True, False
        self._temp = contextlib.ExitStack()  # the temporary name (files.atomic_path): renamed, or removed

    def write(self, rgb: np.ndarray) -> None:
        try:
            if self.writer is None:
                self.tmp = self._temp.enter_context(atomic_path(self.path, keep_suffix=True))
                h, w = rgb.shape[:2]
                self.writer = self.cv2.VideoWriter(str(self.tmp), self.cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self.writer.isOpened():  # said at the first frame, not after every frame went nowhere
                    # (a full folder too: OpenCV's writer does not open where its header cannot be written, which
                    # was said as a size to scale down)
                    if (e := write_error(self.tmp.parent)) is not None:
                        return self._fail(f"cannot write it: {e.strerror or e}")
                    return self._fail(f"OpenCV cannot write a {w}x{h} video as MPEG-4 (mp4v); scale it down for a copy")
            self.writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))  # BGR, as OpenCV writes
            self.frames += 1
            if (free := shutil.disk_usage(self.tmp.parent).free) < COPY_RESERVE:
                n = self.frames
                self._fail(f"{free / 2**20:.0f} MB were left on its disk after {n} frame{'s' if n != 1 else ''}, so it was dropped, "
                           "and the space it took is free for the results; give --annotate a disk with room, or a larger --every")
        except OSError as e:  # the folder or the temporary name could not be made
            self._fail(f"cannot write it: {e.strerror or e}")

    def finish(self) -> None:
        """Close the copy and rename it into place if it reads back with every frame written."""
        if not self.writing or self.writer is None:
            return
        self.writer.release()
        check = self.cv2.VideoCapture(str(self.tmp))
        try:
            got = int(check.get(self.cv2.CAP_PROP_FRAME_COUNT)) if check.isOpened() else 0
        finally:
            check.release()
        if got < self.frames:
            try:
                free = f", with {shutil.disk_usage(self.tmp.parent).free / 2**20:.1f} MB free there"
            except OSError:
                free = ""
            return self._fail(f"OpenCV wrote {got} of its {self.frames} frames readably{free}: a full disk or a failed write")
        try:
            self._temp.close()  # the rename into place
            self.done = True
        except OSError as e:
            self._fail(f"cannot write it: {e.strerror or e}")
        self.writing = False

    def drop(self) -> None:
        """Remove an unfinished copy (interrupted, failed, or the video ended in an error)."""
        if self.writer is not None:
            self.writer.release()
        self.writing = False
        self._temp.pop_all()  # no rename into place (a second drop finds nothing to forget)
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def _fail(self, why: str) -> None:
        no_copy(self.path, self.source, why)
        self.drop()


def _opencv_can_name(path: str | Path) -> bool:
    """Whether OpenCV can be given this path: its Python binding takes text as UTF-8, and a file name
    that is not (bytes Python keeps as lone surrogates) crashed the whole process, results and all."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scan_bomb(cv2, path: Path) -> int | None:
    """The number of the first frame of a Motion JPEG video (AVI, MOV, MKV) that is a JPEG of over MAX_JPEG_SCANS
    scans, or None. Each scan is a pass over the whole frame, and one of a blank frame is a few bytes: FFmpeg took 35 s
    for one 33 MP frame of 10,000 (725 KB), and a clip of them held `ferkit predict` for hours, as such a photo did
    (faces.MAX_JPEG_SCANS). Its packets are read as they are, undecoded, by a capture of their own, all of them before
    the first frame is decoded: the decoder consumes packets ahead of the frames it gives (a packet that gives none, or
    its threads'), so a check beside it would come after; and before the video is opened for its frames, so that
    the two captures' indexes are never held at once (FFmpeg's for a 1 KB MP4 that claims 50 million frames took
    1.8 GB). Reading the packets costs little (0.04 s for 54 MB of 1080p frames); a video whose first packet is not a
    JPEG, and is not tagged MJPEG, is not read on."""
    raw = cv2.VideoCapture(str(path))
    try:
        if not (raw.isOpened() and raw.set(cv2.CAP_PROP_FORMAT, -1)):  # (-1: packets, not frames; FFmpeg's reader only)
            return None
        mjpeg = raw.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"MJPG")  # (whatever its first packet)
        frame = 0
        while (got := raw.read())[0]:
            data = got[1].tobytes()
            if frame == 0 and not (mjpeg or data.startswith(b"\xff\xd8")):  # (SOI) another codec's packets
                return None
            if jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
                return frame
            frame += 1
        return None
    finally:
        raw.release()


def _mp4_overclaim(path: Path) -> int | None:
    """The samples (frames) that an MP4's sample table claims where the file cannot hold them, else None. FFmpeg
    makes an index entry (24 bytes) per sample its tables claim when it opens the file, and a table can claim millions
    in a few bytes: an stsz of one size for all (20 bytes), or a movie fragment's trun without per-sample fields. A
    1 KB MP4 claiming 89 million frames took 3.2 GB and 4 s to open, a 2 KB fragmented one claiming 50 million 1.8 GB.
    A real file holds every sample's bytes (one at least), but for uncompressed audio, which FFmpeg indexes by chunk
    (and old QuickTime audio, ima4, has more samples than bytes). Its boxes are walked by their sizes, little else read."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            if f.read(8)[4:8] not in MP4_FIRST:
                return None
            return _walk_mp4(f, 0, size, size, [MP4_MAX_BOXES], 0, {})
    except OSError:  # (unreadable: OpenCV says it cannot open it)
        return None


def _walk_mp4(f, pos: int, end: int, size: int, left: list[int], depth: int, track: dict) -> int | None:
    """_mp4_overclaim for the boxes from pos to end, `depth` boxes deep; left: how many boxes may still be read
    (shared, counted down); track: what the boxes of the track they are in said of it so far."""
    while pos + 8 <= end and left[0] > 0:
        left[0] -= 1
        f.seek(pos)
        head = f.read(16)
        length, kind, body = int.from_bytes(head[:4], "big"), head[4:8], pos + 8
        if length == 1:  # a 64-bit size follows the type
            length, body = int.from_bytes(head[8:16], "big"), pos + 16
        elif length == 0:  # to the end of the file
            length = size - pos
        if len(head) < 8 or length < body - pos:  # damaged: FFmpeg says so itself
            return None
        if kind in MP4_CONTAINERS and depth < MP4_DEPTH:
            inner = {} if kind == b"trak" else track
            if (found := _walk_mp4(f, body, min(pos + length, end), size, left, depth + 1, inner)) is not None:
                return found
        elif kind in (b"hdlr", b"stts", b"stsz", b"trun"):
            f.seek(body)
            fields = f.read(16)  # after the version and flags: hdlr: 0, the track's kind; stts: its runs, the first's
            # frames and their duration; stsz: the size of every sample (0: each its own), their count; trun: their count
            if kind == b"hdlr":
                track["sound"] = fields[8:12] == b"soun"
            elif kind == b"stts":  # (FFmpeg's test for audio it indexes by chunk: one run of duration 1)
                track["by_chunk"] = int.from_bytes(fields[4:8], "big") == 1 and int.from_bytes(fields[12:16], "big") == 1
            elif not (kind == b"stsz" and track.get("sound") and track.get("by_chunk")):
                each, count = (fields[4:8], fields[8:12]) if kind == b"stsz" else (b"", fields[4:8])
                each, count = max(int.from_bytes(each, "big"), 1), int.from_bytes(count, "big")
                if count * each > size:
                    return count
        pos += length
    return None


def _avi_gives_no_rate(path: Path) -> bool:
    """Whether path is an AVI whose header gives no frame rate: its first video stream's dwScale or dwRate
    is 0 and its dwMicroSecPerFrame too (FFmpeg goes by that where it is there, rightly)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)  # the header comes first, a few KB (the frames come after it)
    except OSError:
        return False
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return False
    period, pos = 0, 12
    while pos + 8 <= len(head):
        fourcc, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if fourcc == b"LIST" and head[pos + 8:pos + 12] in (b"hdrl", b"strl"):
            pos += 12  # into the list: its chunks follow
            continue
        body = head[pos + 8:pos + 8 + size]
        if fourcc == b"avih" and len(body) >= 4:
            period = int.from_bytes(body[:4], "little")
        elif fourcc == b"strh" and body[:4] == b"vids" and len(body) >= 28:
            scale, rate = int.from_bytes(body[20:24], "little"), int.from_bytes(body[24:28], "little")
            return not (scale and rate) and not period
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def _raw_stream(path: Path) -> bool:
    """Whether path is a raw video stream, in no container (H.264 or HEVC as .h264/.264/.hevc, MPEG-4 part 2 as
    .m4v, MPEG-1/2 video): it starts with a start code (00 00 01, or 00 00 00 01) and a byte of the stream's own
    (under 0xB9), not an MPEG program stream's (0xBA, its pack header), nor an MP4's first box with a 64-bit
    size (00 00 00 01, then its name: "ftyp")."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return False
    start = 3 if head[:3] == b"\0\0\1" else 4 if head[:4] == b"\0\0\0\1" and not head[4:8].isalpha() else 0
    return 0 < start < len(head) and head[start] < 0xB9


def _first_step(cv2, path: Path) -> float:
    """Seconds between the video's first two frames by their own timestamps; 0.0 where it has no two frames
    or they have none (OpenCV gives 0.0 for a frame without one). Read by a capture of its own: the one
    predict_video reads with starts at the first frame."""
    cap = cv2.VideoCapture(str(path))
    try:
        times = [cap.get(cv2.CAP_PROP_POS_MSEC) for _ in range(2) if cap.grab()]
    finally:
        cap.release()
    step = (times[1] - times[0]) / 1000 if len(times) == 2 else 0.0
    return step if math.isfinite(step) and step > 0 else 0.0


def _can_encode(cv2, w: int, h: int) -> bool:
    """Whether OpenCV opens an MPEG-4 (mp4v) writer for w x h frames (some sizes it cannot; an
    unknown size, 0x0 in the header, is left to the writer itself). Tried in the temporary folder
    (TMPDIR): one that is full or gone tells nothing of the size, which is left to the writer too, in
    the copy's own folder (it said a size to scale down, and a folder gone was an OSError traceback
    that lost every prediction of the run)."""
    if not w or not h:
        return True
    try:
        with tempfile.TemporaryDirectory(prefix="ferkit-") as tmp:
            writer = cv2.VideoWriter(str(Path(tmp) / "probe.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (w, h))
            try:
                return writer.isOpened() or write_error(tmp) is not None
            finally:
                writer.release()
    except OSError:  # (no temporary folder: none could be made, or it went)
        return True


def _result(path: Path, w: int, h: int, fps: float | None, frames_read: int, every: int, frames: Frames, summary: TrackSummary,
            complete: bool) -> VideoResult:
    return {"file": str(path), "type": "video", "width": w, "height": h, "fps": fps, "frames_read": frames_read,
            "every": every, "frames": frames, "faces": summary.tracks(), "complete": complete}


class TrackSummary:
    """Per face id: first/last frame, how often seen, the label counts, the mean probabilities and the
    label of each sighting, kept up frame by frame (add) so that the frames need not be kept. A
    sighting costs 2 bytes (its label's number in the timeline); the mean is the probabilities' sum
    in frame order over the count, as numpy's mean over the frames gave it, to the last bit."""

    def __init__(self):
        self._faces: dict[int, _Sightings] = {}

    def add(self, frame: Frame) -> None:
        for r in frame["faces"]:
            seen = self._faces.get(r["face_id"])
            if seen is None:
                seen = self._faces[r["face_id"]] = _Sightings(frame["frame"], list(r["probs"]))  # the model's own emotions
            seen.add(frame["frame"], r)

    def tracks(self) -> list[Track]:
        return [seen.track(fid) for fid, seen in sorted(self._faces.items())]


class _Sightings:
    """One face id's part of TrackSummary."""

    def __init__(self, first: int, emotions: list[str]):
        self.first = self.last = first
        self.emotions, self.sums = emotions, [0.0] * len(emotions)
        self.labels: dict[str, int] = {}  # label -> sightings, in the order first seen
        self.numbers: dict[str, int] = {}  # label -> its number in the timeline
        self.timeline = array("H")

    def add(self, frame: int, r) -> None:
        self.last = frame
        self.labels[r["label"]] = self.labels.get(r["label"], 0) + 1
        self.timeline.append(self.numbers.setdefault(r["label"], len(self.numbers)))
        for k, e in enumerate(self.emotions):
            self.sums[k] += r["probs"][e]

    def track(self, fid: int) -> Track:
        count, names = len(self.timeline), list(self.numbers)
        mean = [s / count for s in self.sums]
        return {"face_id": fid, "first_frame": self.first, "last_frame": self.last, "count": count,
                "labels": dict(self.labels), "mean_probs": dict(zip(self.emotions, mean)),
                "label": self.emotions[int(np.argmax(mean))], "timeline": [names[n] for n in self.timeline]}


def summarize_tracks(frames: list[Frame]) -> list[Track]:
    """Per face id: first/last frame, how often seen, the label counts and the mean probabilities (TrackSummary)."""
    summary = TrackSummary()
    for fr in frames:
        summary.add(fr)
    return summary.tracks()
