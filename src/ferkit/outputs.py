"""What predict writes: readable lines per result, the CSV rows, and the JSON and CSV files, written
as the results come (ResultsWriter). The results are schema.py's."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .files import atomic_file, output_errors
from .labels import EMOTIONS
from .schema import FileError, FileResult, Frame


def format_result(res: FileResult) -> str:
    """A readable block of lines for one result."""
    if res["type"] == "video":
        lines = [f"{res['file']}  video {res['width']}x{res['height']}, {len(res['frames'])} frames sampled "
                 f"(every {res['every']} of {res['frames_read']}{'' if res['complete'] else ', stopped before the end'}), "
                 f"{len(res['faces'])} face(s)"]
        for t in res["faces"]:
            share = ", ".join(f"{k} {v / t['count']:.0%}" for k, v in sorted(t["labels"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  face {t['face_id']}: frames {t['first_frame']}-{t['last_frame']} ({t['count']} sightings)  "
                         f"mostly {t['label']}  [{share}]")
            lines.append(f"    timeline: {' '.join(t['timeline'][:40])}{' ...' if len(t['timeline']) > 40 else ''}")
        return "\n".join(lines)
    n = len(res["faces"])
    lines = [f"{res['file']}  {res['width']}x{res['height']}, " + (f"{n} face{'s' if n != 1 else ''}" if n else "no face found")]
    for i, r in enumerate(res["faces"], 1):
        x, y, w, h = r["box"]
        rest = sorted(((p, e) for e, p in r["probs"].items() if e != r["label"]), reverse=True)[:2]
        lines.append(f"  #{i}  box x={x} y={y} w={w} h={h}   {r['label']:<8} {r['score']:.2f}   "
                     f"(then {', '.join(f'{e} {p:.2f}' for p, e in rest)})")
    return "\n".join(lines)


CSV_HEADER = ["file", "frame", "time", "face_id", "x", "y", "w", "h", "label", "score"]  # then the model's emotions


def csv_rows(results: Iterable[FileResult | FileError], labels=EMOTIONS):
    """One row per face (per sampled frame for videos): file, frame, time, face_id, box, label, score,
    the probability of each of the model's emotions (`labels`); a photo or sampled frame without a face gets one row with the face fields empty, so
    every processed input shows in the file."""
    yield CSV_HEADER + list(labels)
    for res in results:
        yield from _result_rows(res, labels)


def _result_rows(res: FileResult | FileError, labels):
    """csv_rows for one result (none for a file that failed)."""
    if "error" in res:
        return
    if res["type"] == "video":
        for fr in res["frames"]:
            yield from _frame_rows(res["file"], fr, labels)
    else:
        yield from _frame_rows(res["file"], {"frame": "", "time": "", "faces": res["faces"]}, labels)


def _frame_rows(file: str, fr, labels):
    """The rows of one photo or sampled frame."""
    if not fr["faces"]:
        yield [file, fr["frame"], fr["time"]] + [""] * (7 + len(labels))  # face_id, x, y, w, h, label, score, probs
    for k, r in enumerate(fr["faces"], 1):
        yield [file, fr["frame"], fr["time"], r.get("face_id", k), *r["box"], r["label"],
               f"{r['score']:.6f}", *(f"{r['probs'][e]:.6f}" for e in labels)]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # (text as ferkit formats a number: "-0.5", "1e-05")


def csv_cell(value):
    """`value` as a CSV cell that a spreadsheet shows but never runs: text starting with = + - @, a tab or
    a carriage return (a file named `=HYPERLINK(...).jpg`, an own-data class folder, a search's word)
    gets a leading ' (OWASP's advice on CSV injection), so Excel, LibreOffice and Sheets show it as
    text. Numbers stay as they are, and so does text that is one number: a negative number stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """A cell ferkit wrote through csv_cell as it was before: its leading ' taken off again, for ferkit's
    own readers of its files (report's table of a search.csv). (Text that began with ' itself, then
    a formula start, reads back without it: that is all the quoting loses.)"""
    rest = cell[1:]
    return rest if cell.startswith("'") and rest.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(rest) else cell


def csv_text(rows, lineterminator: str = "\r\n") -> str:
    """Rows as the csv module writes them (Excel's dialect: \r\n line ends unless told), every cell
    through csv_cell: every CSV file ferkit writes for people to open (predict's, search.csv, history.csv)."""
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=lineterminator).writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def _json_at(value, level: int) -> str:
    """json.dumps(value, indent=1) as it reads `level` deep inside a larger document: its lines after the
    first indented by `level` (JSON strings hold no line breaks: json escapes them)."""
    if not isinstance(value, (dict, list, tuple)):  # a number, string or null: one line (and json's fast path)
        return json.dumps(value)
    return json.dumps(value, indent=1).replace("\n", "\n" + " " * level)


def _json_pieces(value, level: int, depth: int = 4) -> Iterator[str]:
    """_json_at(value, level) in pieces: dicts field by field and lists item by item, `depth` levels down
    (a result, its fields, their items, and theirs: a face's timeline in a video's summary) and deeper
    values whole, so that a video's long lists never stand whole in memory as text; a FrameSpool's
    frames are read back from its file. (Dicts have str keys, as results do.)"""
    if isinstance(value, FrameSpool):
        yield from value.json_pieces(level)
    elif depth == 0 or not value or not isinstance(value, (dict, list)):
        yield _json_at(value, level)
    else:
        pad, is_dict = "\n" + " " * (level + 1), isinstance(value, dict)
        for n, (k, v) in enumerate(value.items() if is_dict else enumerate(value)):
            yield ("," if n else "{" if is_dict else "[") + pad + (json.dumps(k) + ": " if is_dict else "")
            yield from _json_pieces(v, level + 1, depth - 1)
        yield "\n" + " " * level + ("}" if is_dict else "]")


def escaped_utf8(text: str) -> bytes:
    """Text as UTF-8, a file name's bytes that are not UTF-8 (kept by Python as lone surrogates: a photo named
    in Latin-1) written as the JSON escapes them, \\udce9: the CSV stays UTF-8 text. (Encoded strictly, the
    CSV row of such a photo was a UnicodeEncodeError traceback, and the results so far were lost.)"""
    return text.encode("utf-8", "backslashreplace")


class _Part:
    """One of the files of a ResultsWriter, under its temporary name (files.atomic_file) until finished.
    `kept` is where its last whole result ends: what follows (a write that Ctrl-C cut in two, the rows of
    a video that then failed) is cut off again by rewind. An OSError is files.output_errors' OutputError."""

    def __init__(self, path: str | Path, start: str):
        self.path, self._file = Path(path), contextlib.ExitStack()
        try:
            with output_errors(self.path):
                self.f: BinaryIO = self._file.enter_context(atomic_file(self.path))
                self.f.write(escaped_utf8(start))
        except BaseException:
            self.drop()
            raise
        self.kept = len(escaped_utf8(start))

    def write(self, text: str) -> None:
        with output_errors(self.path):
            self.f.write(escaped_utf8(text))

    def tell(self) -> int:
        with output_errors(self.path):
            return self.f.tell()

    def keep(self, end: int | None = None) -> None:
        """What is written up to `end` (default: all of it) is whole results, and stays; the rest goes."""
        if end is not None:
            self.rewind(end)
        self.kept = self.tell()

    def rewind(self, end: int | None = None) -> None:
        end = self.kept if end is None else end
        if self.tell() != end:
            with output_errors(self.path):
                self.f.seek(end)
                self.f.truncate()

    def finish(self, end: str = "") -> None:
        """Cut off what is not whole, write `end`, and rename the file into place."""
        self.rewind()
        self.write(end)
        with output_errors(self.path):
            self._file.close()

    def drop(self) -> None:
        """Remove the temporary file (an earlier file at path stays as it was); after finish, nothing."""
        with contextlib.suppress(OSError):  # (closing flushes, which fails on a full disk: the file goes all the same)
            self._file.__exit__(_Dropped, _Dropped(), None)  # atomic_path removes it on an exception


class _Dropped(Exception):
    """The exception that a dropped _Part's files.atomic_file ends with: its temporary file is removed."""


class ResultsWriter:
    """predict's --json and --csv (either or both, or neither: then it only counts), written as the results
    come (add), so that the memory they take stays the same however many files or frames there are; a
    video's frames come one by one through its frames() spool. The files stay under temporary names
    beside their own (files.atomic_file) until close() ends them with the results added so far and
    renames them into place, so an earlier file of that name stays whole until then; drop() removes
    them instead. The JSON and CSV are byte for byte json.dumps(results, indent=1) and csv_rows. A
    write that fails (a full disk) is one OutputError naming the file."""

    def __init__(self, json_path: str | Path | None = None, csv_path: str | Path | None = None, labels=EMOTIONS):
        self.labels, self.count = list(labels), 0  # count: the results added
        self.json = self.csv = None
        self._spool: FrameSpool | None = None
        try:
            self.json = _Part(json_path, "[") if json_path else None
            self.csv = _Part(csv_path, csv_text([CSV_HEADER + self.labels])) if csv_path else None
        except BaseException:
            self.drop()
            raise

    def frames(self, file: str | Path) -> FrameSpool:
        """Where the video `file`'s frames go as they are done (video.predict_video's `frames`), before its result is added."""
        self._end_spool()
        if self.csv:
            self.csv.rewind()  # its rows start after the last whole result
        self._spool = FrameSpool(self, str(file))
        return self._spool

    def add(self, res: FileResult | FileError) -> None:
        """Append one result (a file's, or its error); a video's frames are in its spool (frames()), or a list."""
        spool = self._spool if res.get("type") == "video" and res["frames"] is self._spool else None
        if self.json:
            self.json.rewind()
            self.json.write(",\n " if self.count else "\n ")
            with output_errors(self.json.path):  # (a video's frames read back from their temporary file included)
                for piece in _json_pieces(res, 1):
                    self.json.write(piece)
        if self.csv:
            if spool is None:
                self.csv.rewind()  # (the rows of a video that failed after some frames)
                self.csv.write(csv_text(_result_rows(res, self.labels)))
            self.csv.keep(None if spool is None else spool.csv_end)
        if self.json:
            self.json.keep()
        self.count += 1
        self._end_spool()

    def close(self) -> None:
        """End the files with the results added so far and rename them into place."""
        self._end_spool()
        try:
            for part, end in ((self.json, "\n]" if self.count else "]"), (self.csv, "")):
                if part:
                    part.finish(end)
        except BaseException:
            self.drop()
            raise

    def drop(self) -> None:
        """Remove the files not yet renamed into place: earlier files of those names stay as they were."""
        self._end_spool()
        for part in (self.json, self.csv):
            if part:
                part.drop()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, kind, e, tb) -> None:
        """Closed with what was done at the end, at Ctrl-C (or SIGTERM) and when the reader of the printed results
        went away (`ferkit predict DIR --json out.json | head`); dropped on any other error."""
        if kind is None or issubclass(kind, (KeyboardInterrupt, BrokenPipeError)):
            self.close()
        else:
            self.drop()

    def _end_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


FRAMES_LEVEL = 2  # the depth of a video's frames in predict's JSON: a list of results, each with its "frames"


class FrameSpool:
    """One video's frames as predict_video gives them (ResultsWriter.frames): each frame's CSV rows go into
    the CSV file at once (kept once the video's result is added, cut off if it fails), its JSON into a
    temporary file beside the JSON until the video's result is written (whose fields before "frames" are
    known only at its end). Only how many frames is kept in memory."""

    def __init__(self, writer: ResultsWriter, file: str):
        self.writer, self.file, self._file, self.count = writer, file, None, 0  # file: the video's, as its result names it
        self.json_end = 0  # where the last whole frame ends in the temporary file
        self.csv_end = writer.csv.tell() if writer.csv else 0  # ... and in the CSV file

    def __len__(self) -> int:
        return self.count

    def append(self, frame: Frame) -> None:
        json_end = csv_end = 0
        if self.writer.json:
            with output_errors(self.writer.json.path):
                if self._file is None:  # beside the JSON: the system's temporary folder may be memory (tmpfs)
                    self._file = tempfile.TemporaryFile(dir=self.writer.json.path.parent, prefix=".ferkit-frames-")
                pad = "\n" + " " * (FRAMES_LEVEL + 1)
                self._file.write((("," if self.count else "") + pad + _json_at(frame, FRAMES_LEVEL + 1)).encode())
                json_end = self._file.tell()
        if self.writer.csv:
            self.writer.csv.write(csv_text(_frame_rows(self.file, frame, self.writer.labels)))
            csv_end = self.writer.csv.tell()
        # the frame counts once all of it is written: a Ctrl-C in between leaves the last whole frame the end
        self.count, self.json_end, self.csv_end = self.count + 1, json_end, csv_end

    def json_pieces(self, level: int) -> Iterator[str]:
        """The frames' list, as _json_pieces writes it `level` deep: FRAMES_LEVEL, a result's fields in predict's list."""
        assert level == FRAMES_LEVEL, level  # (the frames' text was written for that depth)
        if not self.count:
            yield "[]"
            return
        self._file.truncate(self.json_end)  # (a frame that Ctrl-C cut in two)
        self._file.seek(0)
        yield "["
        while block := self._file.read(1 << 20):
            yield block.decode()  # (json's text is ASCII: a block never ends inside a character)
        yield "\n" + " " * level + "]"

    def close(self) -> None:
        """Remove the temporary file: its frames were read back into the JSON, or are dropped with it."""
        if self._file is not None:
            file, self._file = self._file, None
            # (closing flushes, which fails on a full disk: the file, which has no name, goes all the same. Raised
            # here, that OSError was a traceback in place of the OutputError the same write had raised first)
            with contextlib.suppress(OSError):
                file.close()
