"""Assembles the real-photo dev set of benchmarks/bench_wild.py: every photo labels.csv names, read
from its source, cut to its crop, shrunk to 640 px on the longest side, saved as JPEG (quality 85)
under benchmarks/wild/photos/ (not in git: the photos stay with their sources, see README.md).

    python benchmarks/wild/assemble.py --clone debruine/webmorphR.stim=DIR \
        --clone GITenberg/The-Expression-of-the-Emotions-in-Man-and-Animals_1227=DIR [--shared ../shared] [--out DIR]

A source is `github:OWNER/NAME` (read from a clone of it, normal or bare: `git show COMMIT:PATH`
at the commit labels.csv names), `shared` (a path under the project's ../shared) or `pip:MODULE`
(a file inside an installed package). A photo whose source is not at hand is skipped with a note.
"""

import argparse
import csv
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
LONGEST, QUALITY = 640, 85


def source_bytes(row, clones: dict, shared: Path) -> bytes:
    src, path = row["source"], row["path"]
    if src.startswith("github:"):
        repo = src.removeprefix("github:")
        if repo not in clones:
            raise LookupError(f"no clone of {repo} (--clone {repo}=DIR)")
        run = subprocess.run(["git", "-C", str(clones[repo]), "show", f"{row['commit']}:{path}"], capture_output=True)
        if run.returncode:
            raise LookupError(f"{repo}: {run.stderr.decode().strip()}")
        return run.stdout
    if src == "shared":
        return (shared / path).read_bytes()
    if src.startswith("pip:"):
        spec = importlib.util.find_spec(src.removeprefix("pip:"))
        if spec is None or spec.origin is None:
            raise LookupError(f"{src} is not installed")
        return (Path(spec.origin).parent / path).read_bytes()
    raise LookupError(f"unknown source {src!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clone", action="append", default=[], metavar="OWNER/NAME=DIR", help="a clone of a github source")
    ap.add_argument("--shared", default=str(HERE.parents[1] / "../shared"))
    ap.add_argument("--labels", default=str(HERE / "labels.csv"))
    ap.add_argument("--out", default=str(HERE / "photos"))
    args = ap.parse_args()
    clones = dict(c.split("=", 1) for c in args.clone)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done, skipped = 0, []
    with open(args.labels, newline="") as f:
        for row in csv.DictReader(f):
            try:
                data = source_bytes(row, clones, Path(args.shared))
            except (LookupError, OSError) as e:
                skipped.append(f"{row['file']}: {e}")
                continue
            im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
            im = im.convert("L" if im.mode in ("L", "I;16", "1") else "RGB")
            if row["crop"]:
                x, y, w, h = map(int, row["crop"].split())
                im = im.crop((x, y, x + w, y + h))
            im.thumbnail((LONGEST, LONGEST), Image.LANCZOS)
            im.save(out / row["file"], "JPEG", quality=QUALITY)
            done += 1
    print(f"{done} photos written to {out}; {len(skipped)} skipped")
    for s in skipped:
        print("  skipped " + s)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
