"""int8 graphs on this CPU's kernels: the accuracy of every shipped int8 graph (and of any --graph
file) on the first N PublicTest faces, torch-free, so that it also runs under an emulated CPU.

    python benchmarks/bench_int8.py [--faces 3589] [--graph OTHER.onnx ...] [--data FER2013.csv.gz]
    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/bench_int8.py --faces 640 --models ferplus-fast    # AVX2's kernels

onnxruntime picks its int8 kernels by CPU: with VNNI (AVX-512 or AVX) or AMX the products are
summed in 32 bits; on AVX2 alone, pairs of products are summed in 16 bits first, which saturates
for full-range int8 weights (the reason ferkit's are 7-bit: onnx_export.SAFE_INT8). Debian's
qemu-user runs this script with an AVX2-only CPU on any x86 machine (slowly: minutes per graph).
A graph from before the change: `git show cd9da56:src/ferkit/weights/ferplus-fast.int8.onnx > old.onnx`.
FER2013 models are scored on the file's labels, FER+ models on the faces' majority emotion.
"""

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from common import cpu_header

from ferkit import ferplus
from ferkit.labels import FERPLUS

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser()
ap.add_argument("--faces", type=int, default=3589, help="the first N PublicTest faces (3589: all)")
ap.add_argument("--models", nargs="*", help="the bundled models whose shipped int8 graphs to score (default: all)")
ap.add_argument("--graph", nargs="*", default=[], help="other .onnx files to score beside the shipped int8 graphs")
ap.add_argument("--data", default=str(ROOT / "../shared/data/fer2013/fer2013.csv.gz"))
args = ap.parse_args()

splits, rows, faces, labels = [], [], [], []
with gzip.open(args.data, "rt") as f:
    next(f)
    for i, line in enumerate(f):
        public = line.rstrip().endswith(",PublicTest")
        splits.append(int(public))
        if public and len(faces) < args.faces:
            emotion, pixels, _ = line.split(",")
            faces.append(np.array(pixels.split(), np.uint8).reshape(48, 48))
            labels.append(int(emotion))
            rows.append(i)
faces, fer2013 = np.stack(faces), np.array(labels)
votes = ferplus.read_votes(ferplus.find_votes(args.data), np.array(splits, np.int8))
fer_plus = ferplus.majority_labels(votes[rows])

print(cpu_header())
print(f"{len(faces)} PublicTest faces of {args.data}\n")
print(f"{'graph':<44}{'accuracy':>10}{'+ mirror':>10}{'gain':>8}{'seconds':>9}")


def run(session, x):
    return np.concatenate([session.run(None, {"faces": x[i : i + 64]})[0] for i in range(0, len(x), 64)])


shipped = sorted((ROOT / "src/ferkit/weights").glob("*.int8.onnx"))
if args.models is not None:
    shipped = [f for f in shipped if f.name.removesuffix(".int8.onnx") in args.models]
for path in shipped + [Path(g).resolve() for g in args.graph]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # torch-free: no ferkit.predict
    meta = session.get_modelmeta().custom_metadata_map
    y = fer_plus if tuple(json.loads(meta["labels"])) == FERPLUS else fer2013
    scored = y >= 0
    t = time.perf_counter()
    probs = run(session, faces)
    acc = 100 * (probs.argmax(1) == y)[scored].mean()
    line = f"{str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path):<44}{acc:>9.2f}%"
    if meta.get("tta") != "1":  # the mirror average as the Predictor adds it (predict.TTA_GAIN is the gain)
        mirrored = 100 * (((probs + run(session, faces[:, :, ::-1].copy())) / 2).argmax(1) == y)[scored].mean()
        line += f"{mirrored:>9.2f}%{mirrored - acc:>+8.2f}"
    else:
        line += f"{'inside':>10}{'':>8}"
    print(f"{line}{time.perf_counter() - t:>9.1f}", flush=True)
