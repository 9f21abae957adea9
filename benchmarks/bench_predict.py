"""The default prediction path against the peer, measured in the same run: face crops/s, one
face, photo to emotions.

    python benchmarks/bench_predict.py [--model fer2013|CKPT] [--backend B --precision P] [--batch 128] [--repeat 20] [--threads N]

What `ferkit.Predictor()` does out of the box on this CPU (ferkit.predict.default_path and
default_tta), unless --backend/--precision pick another path; every path's accuracy beside its
speed is bench_paths.py. Figures are medians after a warm-up; the peer (`fer`'s int8
mini-Xception on LiteRT and its Haar photo path, ../shared/peers/fer_litert.py) runs right after
ferkit on the same CPU. "x peer" > 1 means ferkit is better; TARGETS are the project's.
"""

import argparse

import numpy as np
from common import TARGETS, cpu_header, measure_peer, median_s, ratio
from skimage import data

from ferkit.faces import find_faces
from ferkit.predict import Predictor

ap = argparse.ArgumentParser()
ap.add_argument("--model", help="bundled model name or checkpoint (default: the bundled default model)")
ap.add_argument("--backend", help="torch | onnx (default: ferkit.predict.default_path's for the model)")
ap.add_argument("--precision", help="the backend's precision (default: as --backend's)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=20)
ap.add_argument("--threads", type=int, default=0, help="onnxruntime/torch threads (0 = their default)")
ap.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="the mirror average (default: default_tta's for this CPU)")
args = ap.parse_args()


def median_ms(fn, repeat=args.repeat):
    return median_s(fn, repeat) * 1000


print(cpu_header())
p = Predictor(args.model, backend=args.backend, precision=args.precision, threads=args.threads or None, tta=args.tta)
print(f"model {p.path}, backend {p.backend}, {p.precision}, flip TTA {'as trained' if p.tta is None else 'on' if p.tta else 'off'}")
faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
photo = data.astronaut()
ours = {"crops": args.batch * 1000 / median_ms(lambda: p.predict_faces(faces)),
        "face": median_ms(lambda: p.predict_faces(faces[:1]), args.repeat * 10),
        "photo": median_ms(lambda: p.predict(photo))}
detect = median_ms(lambda: find_faces(photo))
peer = measure_peer(photo) or {}
rows = [("crops", f"face crops/s at batch {args.batch}", "crops_per_s", True),
        ("face", "ms for one face", "ms_per_face", False),
        ("photo", "ms astronaut photo -> emotions", "ms_per_photo", False)]
print(f"  (of which ferkit's detection, alignment and crop: {detect:.1f} ms; faces found: ferkit {len(p.predict(photo))}, "
      f"peer {peer.get('faces_in_photo', '-')})")
print(f"\n{'':<34}{'ferkit':>10}{'peer':>10}{'x peer':>9}{'target':>9}")
for key, name, peer_key, higher in rows:
    theirs = peer.get(peer_key)
    print(f"{name:<34}{ours[key]:>10.2f}{theirs if theirs is not None else '-':>10}{ratio(ours[key], theirs, higher):>9}"
          f"{f'{TARGETS[key]:.2f}x':>9}")
