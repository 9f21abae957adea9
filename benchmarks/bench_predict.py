"""Prediction speed: face-crop throughput, single-face latency and photo-to-emotions latency,
torch vs onnxruntime, beside the peer's figures on this machine (2,180 faces/s, 0.45 ms per face, 39 ms per photo).

    python benchmarks/bench_predict.py [--model CKPT] [--batch 128] [--repeat 10] [--threads N]

Uses the bundled model unless --model is given. Figures are medians of --repeat runs after a
warm-up. "tta on" averages with the mirrored face (two forward passes), as the bundled model
runs by default; "plain Classifier" is Classifier.predict_proba without the Predictor's
channels_last layout and inference_mode.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from ferkit.checkpoint import load_checkpoint
from ferkit.faces import find_faces
from ferkit.predict import Predictor, model_path

PEER = {"faces/s": 2180.0, "ms/face": 0.45, "ms/photo": 39.0}  # `fer` (mini-Xception), measured on this machine

ap = argparse.ArgumentParser()
ap.add_argument("--model", help="checkpoint (default: the bundled model)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=10)
ap.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = their default)")
args = ap.parse_args()
threads = args.threads or None
if threads:
    torch.set_num_threads(threads)


def median_s(fn, repeat=args.repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


path = model_path(args.model)
plain = load_checkpoint(path)
print(f"model {path} (trained tta={plain.tta}); torch {torch.__version__}, {torch.get_num_threads()} threads")
faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
runs = {"plain Classifier, tta on": lambda f: plain.predict_proba(f, batch_size=len(f), tta=True)}
for backend in ("torch", "onnx"):
    for tta in (True, False):
        p = Predictor(load_checkpoint(path), backend=backend, threads=threads, tta=tta)
        runs[f"Predictor {backend}, tta {'on' if tta else 'off'}"] = p.predict_faces

print(f"\n{'':<28}{'faces/s @' + str(args.batch):>14}{'x peer':>8}{'ms/face @1':>12}{'x peer':>8}")
for name, fn in runs.items():
    fps = args.batch / median_s(lambda: fn(faces))
    lat = median_s(lambda: fn(faces[:1]), repeat=args.repeat * 3) * 1000
    print(f"{name:<28}{fps:>14.0f}{fps / PEER['faces/s']:>8.2f}{lat:>12.2f}{PEER['ms/face'] / lat:>8.2f}")
print(f"{'peer':<28}{PEER['faces/s']:>14.0f}{'':>8}{PEER['ms/face']:>12.2f}   (x peer > 1: faster than the peer)")

from skimage import data  # noqa: E402

photo = data.astronaut()
det = median_s(lambda: find_faces(photo)) * 1000
print(f"\nastronaut photo (512x512, 1 face): detection + crop alone {det:.1f} ms")
for backend in ("torch", "onnx"):
    pred = Predictor(load_checkpoint(path), backend=backend, threads=threads)
    ms = median_s(lambda: pred.predict(photo)) * 1000
    print(f"  photo -> emotions, {backend:<5} (tta as trained) {ms:7.1f} ms   peer {PEER['ms/photo']:.0f} ms   x peer {PEER['ms/photo'] / ms:.2f}")
