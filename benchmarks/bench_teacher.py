"""Distillation's teachers: each bundled model as a teacher on torch (its float16 checkpoint, in the
precision `ferkit train` picks on this CPU) beside its shipped int8 graph on onnxruntime
(`--teacher src/ferkit/weights/NAME.int8.onnx`), and a student's distilled training step with each.

    python benchmarks/bench_teacher.py [--teachers ferplus fer2013] [--student tiny] [--batch 128] [--steps 5]

teacher: faces/s of the teacher's forward pass alone; step: faces/s of the student's whole step
(its forward, the teacher's, the loss, backward, the optimizer) as train.fit runs it; epoch: a
FER2013 training split (28,709 faces) at that rate. Each graph's accuracy beside its checkpoint's
is in the README's model table (`python benchmarks/bench_int8.py`). No peer: it trains nothing.
"""

import argparse
import time

import numpy as np
import torch
from common import cpu_header

from ferkit.bundled import MODELS
from ferkit.config import TrainConfig
from ferkit.distill import load_teacher, with_teacher
from ferkit.labels import LABEL_SETS
from ferkit.model import create_model
from ferkit.predict import BUNDLED, int8_file
from ferkit.preprocess import autocast, prepare, resolve_precision, to_tensor

ap = argparse.ArgumentParser()
ap.add_argument("--teachers", nargs="+", default=["ferplus", "fer2013"], choices=list(BUNDLED))
ap.add_argument("--student", default="tiny", help="the preset distilled (default tiny, ferplus-fast's net)")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=5)
args = ap.parse_args()
cpu = torch.device("cpu")
precision = resolve_precision("auto", cpu)
RECIPE = TrainConfig(distill=0.7)  # ferplus-fast's weight of the teachers; their temperature the default 2


def rate(fn) -> float:
    """Faces/s of fn() over args.steps calls after two warm-up calls."""
    for _ in range(2):
        fn()
    t = time.perf_counter()
    for _ in range(args.steps):
        fn()
    return args.batch * args.steps / (time.perf_counter() - t)


def student_step(student, opt, x, y, teacher):
    with autocast(cpu, precision):
        logits = student(x).float()
    loss = with_teacher(torch.nn.functional.cross_entropy(logits, y), logits, teacher.logits(x), RECIPE)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


print(cpu_header())
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, the student ({args.student}) "
      f"and the torch teacher in {precision}")
print(f"{'teacher':<10}{'as':<26}{'teacher faces/s':>16}{'step faces/s':>14}{'epoch':>9}")
rng = np.random.default_rng(0)
faces = rng.integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)  # whole pixels, as a graph teacher sees them
for name in args.teachers:
    labels = MODELS[name].emotions
    label_set = LABEL_SETS[MODELS[name].labels]
    mean = np.full((48, 48), 128.0, np.float32)
    x = to_tensor(faces, mean).to(memory_format=torch.channels_last)
    y = torch.from_numpy(rng.integers(0, len(labels), args.batch))
    student = prepare(create_model(args.student, label_set), cpu).train()
    opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    results = {}
    for kind, path in (("checkpoint (torch)", BUNDLED[name]), ("int8 graph (onnxruntime)", int8_file(name))):
        teacher = load_teacher(str(path), mean, labels, cpu, precision)
        t = rate(lambda: teacher.logits(x))
        s = rate(lambda: student_step(student, opt, x, y, teacher))
        results[kind] = s
        print(f"{name:<10}{kind:<26}{t:>16.0f}{s:>14.0f}{28709 / s:>8.0f}s", flush=True)
    print(f"{'':<10}the graph's step: {results['int8 graph (onnxruntime)'] / results['checkpoint (torch)']:.2f}x the checkpoint's")
