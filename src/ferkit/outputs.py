"""What predict writes: readable lines per result, the CSV rows, the JSON and CSV files (files.write_output).
The results are schema.py's."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .files import write_output
from .labels import EMOTIONS
from .schema import FileError, FileResult


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


def csv_rows(results: list[FileResult | FileError], labels=EMOTIONS):
    """One row per face (per sampled frame for videos): file, frame, time, face_id, box, label, score,
    the probability of each of the model's emotions (`labels`); a photo or sampled frame without a face gets one row with the face fields empty, so
    every processed input shows in the file."""
    yield ["file", "frame", "time", "face_id", "x", "y", "w", "h", "label", "score", *labels]
    for res in results:
        if "error" in res:
            continue
        groups = res["frames"] if res["type"] == "video" else [{"frame": "", "time": "", "faces": res["faces"]}]
        for fr in groups:
            if not fr["faces"]:
                yield [res["file"], fr["frame"], fr["time"]] + [""] * (7 + len(labels))  # face_id, x, y, w, h, label, score, probs
            for k, r in enumerate(fr["faces"], 1):
                yield [res["file"], fr["frame"], fr["time"], r.get("face_id", k), *r["box"], r["label"],
                       f"{r['score']:.6f}", *(f"{r['probs'][e]:.6f}" for e in labels)]


def write_results(results: list[FileResult | FileError], json_path: str | Path | None = None, csv_path: str | Path | None = None,
                  labels=EMOTIONS) -> None:
    """The JSON and CSV files, each written atomically: a full disk is one FerkitError, and an
    earlier file of that name stays whole instead of being replaced by a truncated one."""
    if json_path:
        write_output(json_path, json.dumps(results, indent=1))
    if csv_path:
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows(csv_rows(results, labels))
        write_output(csv_path, buf.getvalue())
