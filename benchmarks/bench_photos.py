"""The bundled models on real photos: which emotion each finds on faces whose expression is known.

    python benchmarks/bench_photos.py [--models fer2013 ferplus PATH ...] [--photos ../shared/data/photos]

The labelled photos are the shared ones (their README names each expression) and scikit-image's
astronaut (a broad smile). A handful of faces: a smoke test of the obvious expressions and of
which model to use by default for photos, not an accuracy figure.
"""

import argparse
from pathlib import Path

from skimage import data as skdata

from ferkit.predict import BUNDLED, Predictor

EXPECTED = {"angry.jpg": "angry", "happy-baby.jpeg": "happy", "neutral.jpeg": "neutral", "sad-baby.jpeg": "sad",
            "surprised.jpeg": "surprise", "astronaut": "happy"}

ap = argparse.ArgumentParser()
ap.add_argument("--models", nargs="+", default=[m for m, p in BUNDLED.items() if p.exists()])
ap.add_argument("--photos", default=str(Path(__file__).resolve().parents[1] / "../shared/data/photos"))
args = ap.parse_args()

photos = {"astronaut": skdata.astronaut()}
photos.update({n: Path(args.photos) / n for n in EXPECTED if (Path(args.photos) / n).exists()})
print(f"{'photo':<18}{'expected':<10}" + "".join(f"{m[-28:]:>30}" for m in args.models))
right = dict.fromkeys(args.models, 0)
rows = {n: [] for n in photos}
for m in args.models:
    p = Predictor(m)
    for name, src in photos.items():
        faces = p.predict(src)
        if not faces:
            rows[name].append("no face")
            continue
        f = max(faces, key=lambda r: r["box"][2] * r["box"][3])  # the main face
        ok = f["label"] == EXPECTED[name]
        right[m] += ok
        rows[name].append(f"{'+' if ok else '-'} {f['label']} {f['score']:.2f} ({EXPECTED[name]} {f['probs'][EXPECTED[name]]:.2f})")
for name, cells in rows.items():
    print(f"{name:<18}{EXPECTED[name]:<10}" + "".join(f"{c:>30}" for c in cells))
print(f"{'right':<28}" + "".join(f"{right[m]:>28}/{len(photos)}" for m in args.models))
