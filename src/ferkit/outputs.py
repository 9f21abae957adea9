"""What predict writes: readable lines per result, the CSV rows, the JSON and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .errors import FerkitError
from .labels import EMOTIONS


def format_result(res: dict) -> str:
    """A readable block of lines for one result."""
    if res["type"] == "video":
        lines = [f"{res['file']}  video {res['width']}x{res['height']}, {len(res['frames'])} frames sampled "
                 f"(every {res['every']} of {res['frames_read']}), {len(res['faces'])} face(s)"]
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


def csv_rows(results: list[dict]):
    """One row per face (per sampled frame for videos): file, frame, time, face_id, box, label, score,
    7 probs; a photo or sampled frame without a face gets one row with the face fields empty, so
    every processed input shows in the file."""
    yield ["file", "frame", "time", "face_id", "x", "y", "w", "h", "label", "score", *EMOTIONS]
    for res in results:
        if "error" in res:
            continue
        groups = res["frames"] if res["type"] == "video" else [{"frame": "", "time": "", "faces": res["faces"]}]
        for fr in groups:
            if not fr["faces"]:
                yield [res["file"], fr["frame"], fr["time"]] + [""] * (7 + len(EMOTIONS))
            for k, r in enumerate(fr["faces"], 1):
                yield [res["file"], fr["frame"], fr["time"], r.get("face_id", k), *r["box"], r["label"],
                       f"{r['score']:.6f}", *(f"{r['probs'][e]:.6f}" for e in EMOTIONS)]


def write_results(results: list[dict], json_path: str | Path | None = None, csv_path: str | Path | None = None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerows(csv_rows(results))


def check_outputs(json_path=None, csv_path=None, annotate_dir=None) -> None:
    """Fail before any work when an output cannot be written: --json/--csv need an existing,
    writable folder and must not name a folder; --annotate must be (or be creatable as) a folder."""
    import os

    for flag, path in (("--json", json_path), ("--csv", csv_path)):
        if not path:
            continue
        p = Path(path)
        parent = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise FerkitError(f"{flag} {path}: is a folder; give a file name, e.g. {p / ('results' + ('.json' if flag == '--json' else '.csv'))}")
        if not parent.is_dir():
            raise FerkitError(f"{flag} {path}: the folder {parent} does not exist; create it first or write elsewhere")
        if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise FerkitError(f"{flag} {path}: cannot write there (permission denied); write elsewhere")
    if json_path and csv_path and Path(json_path).resolve() == Path(csv_path).resolve():
        raise FerkitError(f"--json and --csv both name {json_path}; give two files")
    if annotate_dir:
        d = Path(annotate_dir)
        if d.exists() and not d.is_dir():
            raise FerkitError(f"--annotate {annotate_dir}: is a file, not a folder; give a folder for the annotated copies")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FerkitError(f"--annotate {annotate_dir}: cannot make the folder ({e.strerror or e}); give a folder that can be written") from None
        if not os.access(d, os.W_OK | os.X_OK):
            raise FerkitError(f"--annotate {annotate_dir}: cannot write into the folder (permission denied)")
