"""int8 graphs on this CPU's kernels: the accuracy of every shipped int8 graph (and of any --graph
file) on the first N PublicTest faces, torch-free, so that it also runs under an emulated CPU.

    python benchmarks/bench_int8.py [--faces 3589] [--graph OTHER.onnx ...] [--average] [--data FER2013.csv.gz]
    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/bench_int8.py --faces 640 --models ferplus-fast    # AVX2's kernels

onnxruntime picks its int8 kernels by CPU: with VNNI (AVX-512 or AVX) or AMX the products are
summed in 32 bits; on AVX2 alone, pairs of products are summed in 16 bits first, which saturates
for full-range int8 weights (the reason ferkit's are 7-bit: onnx_export.SAFE_INT8). Debian's
qemu-user runs this script with an AVX2-only CPU on any x86 machine (slowly: minutes per graph).
A graph from before the change: `git show cd9da56:src/ferkit/weights/ferplus-fast.int8.onnx > old.onnx`.
FER2013 models are scored on the file's labels, FER+ models on the faces' majority emotion.
"""

import argparse
import time
from pathlib import Path

from common import cpu_header

from ferkit.data import load_fer
from ferkit.metrics import split_labels
from ferkit.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser()
ap.add_argument("--faces", type=int, default=3589, help="the first N PublicTest faces (3589: all)")
ap.add_argument("--models", nargs="*", help="the bundled models whose shipped int8 graphs to score (default: all)")
ap.add_argument("--graph", nargs="*", default=[], help="other .onnx files to score beside the shipped int8 graphs")
ap.add_argument("--data", default=str(ROOT / "../shared/data/fer2013/fer2013.csv.gz"))
ap.add_argument("--average", action="store_true", help="also score the average of the graphs' probabilities with the mirror "
                                                         "(an ensemble; the graphs must share their emotions)")
args = ap.parse_args()

data = load_fer(args.data)
faces = data.split("val")[0][: args.faces]
print(cpu_header())
print(f"{len(faces)} PublicTest faces of {args.data}\n")
print(f"{'graph':<44}{'accuracy':>10}{'+ mirror':>10}{'gain':>8}{'seconds':>9}")

shipped = sorted((ROOT / "src/ferkit/weights").glob("*.int8.onnx"))
if args.models is not None:
    shipped = [f for f in shipped if f.name.removesuffix(".int8.onnx") in args.models]
ensemble = []  # (emotions, probabilities with the mirror) of each graph, for --average
for path in shipped + [Path(g).resolve() for g in args.graph]:
    t = time.perf_counter()
    plain = Predictor(path)  # torch-free: the graph as Predictor runs it, here with the mirror as the file says
    y = split_labels(plain.labels, data, "val")[0][: args.faces]
    scored = y >= 0

    def accuracy(probs):
        return 100 * (probs.argmax(1) == y)[scored].mean()

    name = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    if plain.tta and not plain.mirror:  # the mirror is inside the graph: one figure
        mirrored = plain.predict_proba(faces)
        print(f"{name:<44}{accuracy(mirrored):>9.2f}%{'inside':>10}{'':>8}", end="")
    else:  # the mirror as the Predictor adds it (predict.TTA_GAIN is the gain)
        without, mirrored = Predictor(path, tta=False).predict_proba(faces), Predictor(path, tta=True).predict_proba(faces)
        a0, a1 = accuracy(without), accuracy(mirrored)
        print(f"{name:<44}{a0:>9.2f}%{a1:>9.2f}%{a1 - a0:>+8.2f}", end="")
    print(f"{time.perf_counter() - t:>9.1f}", flush=True)
    ensemble.append((plain.labels, mirrored))

if args.average and ensemble:
    if len({labels for labels, _ in ensemble}) > 1:
        raise SystemExit("--average: the graphs predict different emotions; average graphs of one label set")
    print(f"{'average of the above, + mirror':<44}{'':>10}{accuracy(sum(p for _, p in ensemble) / len(ensemble)):>9.2f}%")
