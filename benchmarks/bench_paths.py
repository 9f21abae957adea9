"""Every prediction path's accuracy beside its speed: which one should be the default.

    python benchmarks/bench_paths.py [--model fer2013|CKPT] [--data FILE] [--threads N] [--variants]

For each path (torch fp32, torch bf16 autocast, onnx fp32, onnx int8), with and without TTA (the
mirrored-face average): PublicTest accuracy (FER+ models: their majority-vote labels, as `ferkit
evaluate`), the change in points against torch fp32 with the same TTA, face crops/s at batch 128,
ms for one face (medians), and both beside the peer's, measured in the same run on the same CPU
(`fer`'s int8 mini-Xception on LiteRT, ../shared/peers/fer_litert.py; x peer > 1 is faster).
Every path runs through ferkit.Predictor.predict_faces, as users get it; a bundled model whose
int8 graph ships beside it (ferkit.predict.int8_file) gets rows for that file too, with and
without the mirror (their difference is the model's predict.TTA_GAIN). int8 is calibrated on 512 training
faces of --data (never the PublicTest rows it is scored on). The last line names the fastest path
within 0.3 points of torch fp32 with the model's own TTA setting: the candidate for the default
(ferkit.predict.DEFAULT_PATH).

--variants adds speed-only rows for what was tried and not adopted: int8 in QOperator format,
onnxruntime on 1 thread, without thread spinning or with threads left spinning after each run,
torch.jit.trace + freeze (oneDNN fusion), torch.compile.
"""

import argparse
import copy
import io
import time

import numpy as np
import torch
from common import cpu_header, measure_peer, median_s, ratio

from ferkit.checkpoint import load_checkpoint
from ferkit.data import load_fer
from ferkit.metrics import evaluate_split
from ferkit.onnx_export import calibration_faces, export_onnx, quantize_int8
from ferkit.predict import BUNDLED, DEFAULT_MODEL, Predictor, int8_file, model_path
from ferkit.preprocess import probabilities, to_tensor
from ferkit.runtime import DISABLED_OPTIMIZERS, onnx_session

MAX_LOSS = 0.3  # points of PublicTest accuracy a faster default may lose against torch fp32

ap = argparse.ArgumentParser()
ap.add_argument("--model", help="bundled model name or checkpoint (default: the bundled default model)")
ap.add_argument("--data", help="FER2013 file: PublicTest rows to score, Training rows to calibrate int8 (default: ferkit's)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--repeat", type=int, default=20, help="timed runs per figure (one face: 10x as many)")
ap.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0 = their default: all cores)")
ap.add_argument("--variants", action="store_true", help="also time the alternatives that were not adopted")
args = ap.parse_args()
threads = args.threads or None
if threads:
    torch.set_num_threads(threads)


def speed(fn):
    """(crops/s at --batch, ms for one face) of fn(uint8 faces) -> probabilities."""
    return args.batch / median_s(lambda: fn(faces), args.repeat), median_s(lambda: fn(faces[:1]), args.repeat * 10) * 1000


path = model_path(args.model)
clf = load_checkpoint(path, precision="fp32")
data = load_fer(args.data)
calib = calibration_faces(args.data)
faces = np.random.default_rng(0).integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
peer = measure_peer() or {}
print(cpu_header())
print(f"model {path} ({clf.spec.in_size}x{clf.spec.in_size}, trained tta={clf.tta}); data {data.source}; "
      f"torch {torch.__version__}, {torch.get_num_threads()} threads; onnxruntime threads {threads or 'default'}")
print(f"\n{'path':<12}{'tta':<5}{'PublicTest':>11}{'vs fp32':>9}{'crops/s @' + str(args.batch):>15}{'x peer':>8}"
      f"{'ms/face':>9}{'x peer':>8}")
rows, ref = [], {}


def add_row(name, tta, acc, fps, ms):
    rows.append((name, tta, acc, fps, ms))
    print(f"{name:<12}{'on' if tta else 'off':<5}{acc:>11.4f}{100 * (acc - ref[tta]):>+9.2f}{fps:>15.0f}"
          f"{ratio(fps, peer.get('crops_per_s'), True):>8}{ms:>9.3f}{ratio(ms, peer.get('ms_per_face'), False):>8}", flush=True)


for backend, precision in (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8")):
    for tta in (True, False):
        p = Predictor(copy.deepcopy(clf) if backend == "torch" else clf, backend=backend, precision=precision,
                      threads=threads, tta=tta, calibration=calib)
        if backend == "torch":
            p.classifier.precision = precision  # a Classifier passed in keeps its own precision
        acc = evaluate_split(p, data, "val")["accuracy"]
        ref.setdefault(tta, acc)  # the first path, torch fp32, is the reference
        add_row(f"{backend} {precision}", tta, acc, *speed(p.predict_faces))
name = str(args.model or DEFAULT_MODEL)
if name in BUNDLED and int8_file(name).exists():  # the int8 graph that ships with a bundled model, as users get it
    for tta in (True, False):
        p = Predictor(name, backend="onnx", precision="int8", threads=threads, tta=tta)
        add_row("int8 file", tta, evaluate_split(p, data, "val")["accuracy"], *speed(p.predict_faces))
print(f"{'peer':<17}{'':>11}{'':>9}{peer.get('crops_per_s', '-'):>15}{'':>8}{peer.get('ms_per_face', '-'):>9}")

base = ref[clf.tta]
ok = [r for r in rows if 100 * (base - r[2]) <= MAX_LOSS]
best = max(ok, key=lambda r: (r[3], -r[4]))
print(f"\nfastest within {MAX_LOSS} points of torch fp32 (tta {'on' if clf.tta else 'off'}, as trained; {base:.4f}): "
      f"{best[0]} tta {'on' if best[1] else 'off'}: {best[2]:.4f}, {best[3]:.0f} crops/s ({ratio(best[3], peer.get('crops_per_s'), True)} peer), "
      f"{best[4]:.3f} ms/face ({ratio(best[4], peer.get('ms_per_face'), False)} peer)")

if args.variants:
    print(f"\nvariants, speed only, tta as trained ({'on' if clf.tta else 'off'}):")

    def show(name, fn):
        fps, ms = speed(fn)
        print(f"  {name:<46}{fps:>8.0f} crops/s{ms:>9.3f} ms/face", flush=True)

    buf = io.BytesIO()
    export_onnx(clf, buf)
    import onnx

    for fmt in ("qdq", "qoperator"):
        sess = onnx_session(quantize_int8(onnx.load_from_string(buf.getvalue()), calib, fmt=fmt).SerializeToString(), threads)
        show(f"onnx int8 {fmt}", lambda f, s=sess: s.run(None, {"faces": f})[0])
    import onnxruntime as ort

    # ferkit's sessions (runtime.onnx_session) spin during a run and stop when it returns.
    q = quantize_int8(onnx.load_from_string(buf.getvalue()), calib).SerializeToString()
    for n in (1, 2):
        for spin, stop, how in (("0", "0", "no spinning"), ("1", "0", "spinning left on after a run"),
                                ("1", "1", "spinning stopped after a run (ferkit's)")):
            o = ort.SessionOptions()
            o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            o.intra_op_num_threads = n
            o.add_session_config_entry("session.intra_op.allow_spinning", spin)
            o.add_session_config_entry("session.force_spinning_stop", stop)
            sess = ort.InferenceSession(q, o, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS)
            show(f"onnx int8 qdq, {n} thread(s), {how}", lambda f, s=sess: s.run(None, {"faces": f})[0])
    # ferkit's sessions keep an fp32 stem's max-pool before its Quantize (runtime.DISABLED_OPTIMIZERS)
    sess = ort.InferenceSession(q, ort.SessionOptions(), providers=["CPUExecutionProvider"])
    show("onnx int8 qdq, onnxruntime's QDQ propagation left on", lambda f, s=sess: s.run(None, {"faces": f})[0])

    class Wrapped(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return probabilities(self.model, x, tta=clf.tta)

    # bf16 runs with the weights in bf16: autocast does not survive torch.jit.freeze
    for dtype in (torch.float32, torch.bfloat16):
        model = copy.deepcopy(clf.model).to(dtype).eval()
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(Wrapped(model).eval(), to_tensor(faces, clf.mean).to(dtype)))

        def run(f, traced=traced, dtype=dtype):
            with torch.no_grad():
                return traced(to_tensor(f, clf.mean).to(dtype)).float().numpy()

        show(f"torch jit.trace + freeze, {str(dtype)[6:]} weights", run)
    for precision in ("fp32", "bf16"):
        compiled = torch.compile(Wrapped(clf.model).eval())

        def run(f, compiled=compiled, precision=precision):
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                return compiled(to_tensor(f, clf.mean)).float().numpy()

        t = time.perf_counter()
        run(faces), run(faces[:1])
        show(f"torch.compile {precision} (compiling took {time.perf_counter() - t:.0f} s)", run)
