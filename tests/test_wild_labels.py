"""The real-photo dev set's labels (benchmarks/wild/labels.csv), edited by hand as photos are added:
every row well formed, and the counts its README publishes in step with it. A typo in an emotion
would otherwise drop a face from bench_wild's counts without a word."""

import csv
import re
from collections import Counter
from pathlib import Path

from ferkit.labels import FERPLUS

WILD = Path(__file__).resolve().parents[1] / "benchmarks" / "wild"


def row_problems(r: dict) -> list[tuple[str, str]]:
    """(field, what it must be) for each malformed field of one row."""
    out = []
    if not re.fullmatch(r"[\w.+-]+\.jpg", r["file"] or ""):
        out.append(("file", "a plain file name ending in .jpg"))
    if r["emotion"] not in FERPLUS:
        out.append(("emotion", f"one of {', '.join(FERPLUS)}"))
    if r["confidence"] not in ("clear", "ambiguous"):
        out.append(("confidence", "clear or ambiguous"))
    src = r["source"] or ""
    if src.startswith("github:"):
        if not re.fullmatch(r"github:[\w.-]+/[\w.-]+", src):
            out.append(("source", "github:OWNER/NAME"))
        if not re.fullmatch(r"[0-9a-f]{40}", r["commit"] or ""):
            out.append(("commit", "the source's commit, 40 hex digits"))
    elif src != "shared" and not re.fullmatch(r"pip:[\w.]+", src):
        out.append(("source", "github:OWNER/NAME, shared or pip:MODULE"))
    if not r["path"]:
        out.append(("path", "the file's path in its source"))
    if r["crop"] and not re.fullmatch(r"\d+ \d+ [1-9]\d* [1-9]\d*", r["crop"]):
        out.append(("crop", "empty or 'x y w h' in pixels"))
    out += [(field, "stated") for field in ("licence", "attribution") if not (r[field] or "").strip()]
    return out


def problems(rows: list[dict]) -> list[str]:
    """Every malformed field, as 'line N, field: must be ..., got ...' (line 1 is the header)."""
    files = Counter(r["file"] for r in rows)
    out = []
    for n, r in enumerate(rows, start=2):
        bad = row_problems(r) + ([("file", "unique")] if files[r["file"]] > 1 else [])
        out += [f"line {n}, {field}: must be {must}, got {r.get(field)!r}" for field, must in bad]
    return out


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_row_is_well_formed():
    assert problems(read(WILD / "labels.csv")) == []


def test_a_misspelt_row_is_named():
    rows = read(WILD / "labels.csv")
    rows[3] = {**rows[3], "emotion": "suprise", "commit": "fa8b78f", "crop": "10 10 0 5"}
    rows[9] = {**rows[9], "file": rows[8]["file"]}
    assert problems(rows) == [
        "line 5, emotion: must be one of angry, disgust, fear, happy, sad, surprise, neutral, contempt, got 'suprise'",
        "line 5, commit: must be the source's commit, 40 hex digits, got 'fa8b78f'",
        "line 5, crop: must be empty or 'x y w h' in pixels, got '10 10 0 5'",
        f"line 10, file: must be unique, got {rows[8]['file']!r}",
        f"line 11, file: must be unique, got {rows[8]['file']!r}",
    ]


def test_readme_counts_match_the_labels():
    """The README's table of faces per emotion, clear and ambiguous, counts labels.csv's rows."""
    rows = read(WILD / "labels.csv")
    readme = (WILD / "README.md").read_text()
    header = re.search(r"^\| \| (.+) \| all \|$", readme, re.M).group(1).split(" | ")
    assert set(header) == set(FERPLUS)
    for confidence in ("clear", "ambiguous"):
        published = [int(n) for n in re.search(rf"^\| {confidence} \| (.+) \|$", readme, re.M).group(1).split(" | ")]
        count = Counter(r["emotion"] for r in rows if r["confidence"] == confidence)
        assert published == [count[e] for e in header] + [sum(count.values())], confidence
    photos = int(re.search(r"^(\d+) photos", readme, re.M).group(1))
    assert photos == len(rows)
