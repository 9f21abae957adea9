"""Prediction speed: face-crop throughput, single-face latency and photo-to-emotions latency,
torch vs onnxruntime, beside the peer figures (2,200 faces/s, 0.45 ms per face, 96 ms per photo).

    python benchmarks/bench_predict.py [--model CKPT] [--batch 128] [--repeat 20] [--threads N]

Uses the bundled model unless --model is given. Figures are medians of --repeat runs after a
warm-up; "tta" = averaged with the mirrored face (two forward passes), as the bundled model runs.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from ferkit.faces import find_faces
from ferkit.onnx_export import session_from_classifier
from ferkit.predict import Predictor, load_model

PEER = {"faces/s": 2200.0, "ms/face": 0.45, "ms/photo": 96.0}

ap = argparse.ArgumentParser()
ap.add_argument("--model", help="checkpoint (default: the bundled model)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=10)
ap.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads (0 = their default)")
args = ap.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)


def median_s(fn, repeat=args.repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


clf = load_model(args.model)
print(f"model {args.model or 'bundled'} (trained tta={clf.tta}); torch {torch.__version__}, {torch.get_num_threads()} threads")
faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
one = faces[:1]

backends = {}
for tta in (True, False):
    sess = session_from_classifier(clf, threads=args.threads or None, tta=tta)
    backends[f"torch  tta={'on ' if tta else 'off'}"] = (lambda f, tta=tta: torch_predict(f, tta))
    backends[f"onnx   tta={'on ' if tta else 'off'}"] = (lambda f, s=sess: s.run(None, {"faces": f})[0])


def torch_predict(f, tta):
    with torch.inference_mode():
        return clf.predict_proba(f, batch_size=len(f), tta=tta)


def torch_no_grad(f):
    return clf.predict_proba(f, batch_size=len(f))  # no_grad only, as Classifier runs it


print(f"\n{'backend':<28}{'faces/s @' + str(args.batch):>14}{'x peer':>8}{'ms/face @1':>12}{'x peer':>8}")
for name, fn in [*backends.items(), ("torch  tta=on  no_grad", torch_no_grad)]:
    fps = args.batch / median_s(lambda: fn(faces))
    lat = median_s(lambda: fn(one), repeat=args.repeat * 3) * 1000
    print(f"{name:<28}{fps:>14.0f}{fps / PEER['faces/s']:>8.2f}{lat:>12.2f}{PEER['ms/face'] / lat:>8.2f}")
print(f"{'peer':<28}{PEER['faces/s']:>14.0f}{'':>8}{PEER['ms/face']:>12.2f}   (x peer > 1 = faster than the peer)")

from skimage import data  # noqa: E402

photo = data.astronaut()
det = median_s(lambda: find_faces(photo)) * 1000
print(f"\nastronaut photo (512x512, 1 face): detection + crop alone {det:.1f} ms")
for backend in ("torch", "onnx"):
    pred = Predictor(clf, backend=backend, threads=args.threads or None)
    ms = median_s(lambda: pred.predict(photo)) * 1000
    print(f"  photo -> emotions, {backend:<5} {ms:7.1f} ms   peer {PEER['ms/photo']:.0f} ms   x peer {PEER['ms/photo'] / ms:.2f}")
