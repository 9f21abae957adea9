"""The default prediction path against the peer: face crops/s, one face, photo to emotions.

    python benchmarks/bench_predict.py [--model fer2013|CKPT] [--backend B --precision P] [--batch 128] [--repeat 20] [--threads N]

What `ferkit.Predictor()` does out of the box (ferkit.predict.default_path, the model's own TTA),
unless --backend/--precision pick another path; every path's accuracy beside its speed is
bench_paths.py. Figures are medians after a warm-up, beside the peer's on this machine (`fer`,
mini-Xception: 2,180 crops/s at batch 128, 0.45 ms per face, 39 ms from the astronaut photo to
its emotions); x peer > 1 is faster.
"""

import argparse

import numpy as np
import torch
from common import PEER, median_s
from skimage import data

from ferkit.faces import find_faces
from ferkit.predict import Predictor

ap = argparse.ArgumentParser()
ap.add_argument("--model", help="bundled model name or checkpoint (default: the bundled default model)")
ap.add_argument("--backend", help="torch | onnx (default: ferkit.predict.default_path's for the model)")
ap.add_argument("--precision", help="the backend's precision (default: as --backend's)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=20)
ap.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = their default)")
args = ap.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)


def median_ms(fn, repeat=args.repeat):
    return median_s(fn, repeat) * 1000


p = Predictor(args.model, backend=args.backend, precision=args.precision, threads=args.threads or None)
print(f"model {p.path}, backend {p.backend}, {p.precision}, tta {'as trained' if p.tta is None else p.tta}; "
      f"torch {torch.__version__}, {torch.get_num_threads()} threads")
faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
photo = data.astronaut()
rows = [(f"face crops/s at batch {args.batch}", args.batch * 1000 / median_ms(lambda: p.predict_faces(faces)), PEER["crops/s"], True),
        ("ms for one face", median_ms(lambda: p.predict_faces(faces[:1]), args.repeat * 10), PEER["ms/face"], False),
        ("ms astronaut photo -> emotions", median_ms(lambda: p.predict(photo)), PEER["ms/photo"], False)]
print(f"  (of which detection, alignment and crop: {median_ms(lambda: find_faces(photo)):.1f} ms)")
print(f"\n{'':<34}{'ferkit':>10}{'peer':>10}{'x peer':>9}")
for name, ours, peer, higher_is_better in rows:
    print(f"{name:<34}{ours:>10.2f}{peer:>10.2f}{(ours / peer if higher_is_better else peer / ours):>9.2f}")
