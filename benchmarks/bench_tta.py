"""Test-time augmentation beyond the mirror: what small shifts and a zoom add to each bundled
model's shipped int8 graph on PublicTest, and what they cost (one forward pass per view).

    python benchmarks/bench_tta.py [--models ferplus fer2013 ...] [--data FER2013.csv.gz]

Views, each averaged in probability space: the face, its mirror image, the four 1-pixel shifts
(edge pixels repeated) of both, a centre crop of 92% zoomed back to 48 px and its mirror. The
Predictor adds only the mirror, and only where it buys predict.MIN_TTA_GAIN points: a view
belongs there only if it gains as much for what it costs. FER+ models are scored on the faces'
majority emotion, FER2013 models on the file's labels.
"""

import argparse
from pathlib import Path

import numpy as np
from common import cpu_header
from PIL import Image

from ferkit import bundled
from ferkit.data import load_fer
from ferkit.metrics import split_labels
from ferkit.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser()
ap.add_argument("--models", nargs="*", default=list(bundled.MODELS))
ap.add_argument("--data", default=str(ROOT / "../shared/data/fer2013/fer2013.csv.gz"))
args = ap.parse_args()


def mirror(faces):
    return np.ascontiguousarray(faces[:, :, ::-1])


def shift(faces, dx, dy):
    padded = np.pad(faces, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return np.ascontiguousarray(padded[:, 1 + dy : 1 + dy + faces.shape[1], 1 + dx : 1 + dx + faces.shape[2]])


def zoom(faces, keep=0.92):
    side = faces.shape[1]
    c = round(side * keep)
    o = (side - c) // 2
    return np.stack([np.asarray(Image.fromarray(f[o : o + c, o : o + c]).resize((side, side), Image.BILINEAR)) for f in faces])


data = load_fer(args.data)
val = data.in_split("val")
faces = data.images[val]
print(cpu_header())
print(f"{len(faces)} PublicTest faces; accuracy of each set of views, and the passes it costs\n")
print(f"{'model':<14}{'face':>8}{'+ mirror':>10}{'+ shifts':>10}{'+ zoom':>9}{'all':>8}   passes 1 / 2 / 10 / 4 / 12")
for name in args.models:
    p = Predictor(name, tta=False)  # one view a pass; the views are averaged here
    y = split_labels(p.labels, data, "val")[0]

    def acc(*views):
        return 100 * float((np.sum(views, 0).argmax(1) == y)[y >= 0].mean())

    face, flipped = p.predict_proba(faces), p.predict_proba(mirror(faces))
    shifted = [p.predict_proba(v) for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1))
               for v in (shift(faces, dx, dy), mirror(shift(faces, dx, dy)))]
    zoomed = [p.predict_proba(zoom(faces)), p.predict_proba(mirror(zoom(faces)))]
    print(f"{name:<14}{acc(face):>7.2f}%{acc(face, flipped):>9.2f}%{acc(face, flipped, *shifted):>9.2f}%"
          f"{acc(face, flipped, *zoomed):>8.2f}%{acc(face, flipped, *shifted, *zoomed):>7.2f}%", flush=True)
