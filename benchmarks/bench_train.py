"""Training and inference throughput (faces/s) of the presets, fp32 beside bf16 autocast.

    python benchmarks/bench_train.py [--models shallow deep vgg] [--batch 128] [--steps 5] [--compile]

Training = forward + backward + optimizer step on random 48x48 batches as train.fit runs them
(channels_last, preprocess.autocast); inference = eval-mode forward under torch.inference_mode.
--compile also measures torch.compile (ferkit adopts it only where it earns >= 1.2x).
"""

import argparse
import time

import torch
import torch.nn.functional as F

from ferkit.model import PRESETS, count_macs, count_params, create_model
from ferkit.preprocess import autocast, fast_bf16, prepare, resolve_precision

ap = argparse.ArgumentParser()
ap.add_argument("--models", nargs="+", default=list(PRESETS))
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
args = ap.parse_args()
cpu = torch.device("cpu")


def throughput(model, precision: str, train: bool) -> float:
    """Faces/s over args.steps timed steps after warm-up steps (two when compiling)."""
    x = torch.randn(args.batch, 1, 48, 48).to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (args.batch,))
    hog = torch.randn(args.batch, model_hog_dim) if model_hog_dim else None
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train(train)
    warm = 2
    with torch.enable_grad() if train else torch.inference_mode():
        for i in range(args.steps + warm):
            if i == warm:
                t = time.perf_counter()
            with autocast(cpu, precision):
                out = model(x, hog).float()
            if train:
                loss = F.cross_entropy(out, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return args.batch * args.steps / (time.perf_counter() - t)


precisions = ["fp32", "bf16"]
auto = resolve_precision("auto", cpu)  # what `ferkit train` uses here: the epoch column's precision
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
      f"native bf16 on this CPU: {fast_bf16(cpu)}")
print(f"{'model':<12}{'params':>12}{'MACs/face':>13}" + "".join(f"{'train ' + p:>12}" for p in precisions)
      + "".join(f"{'infer ' + p:>12}" for p in precisions) + f"{'bf16 x':>8}{'epoch ' + auto:>12}")
for name in args.models:
    model = prepare(create_model(name), cpu)
    model_hog_dim = model.hog_dim
    tr = {p: throughput(model, p, True) for p in precisions}
    inf = {p: throughput(model, p, False) for p in precisions}
    print(f"{name:<12}{count_params(model):>12,}{count_macs(model):>13,}" + "".join(f"{tr[p]:>12.0f}" for p in precisions)
          + "".join(f"{inf[p]:>12.0f}" for p in precisions) + f"{tr['bf16'] / tr['fp32']:>7.1f}x{28709 / tr[auto]:>10.0f} s", flush=True)
    if args.compile:
        torch._dynamo.reset()  # a fresh compile cache per model: they share FerNet.forward and its recompile limit
        compiled = torch.compile(model)
        c = {p: (throughput(compiled, p, True), throughput(compiled, p, False)) for p in precisions}
        print(f"{'  compiled':<37}" + "".join(f"{c[p][0]:>12.0f}" for p in precisions) + "".join(f"{c[p][1]:>12.0f}" for p in precisions)
              + "   vs eager: " + ", ".join(f"{p} train {c[p][0] / tr[p]:.2f}x infer {c[p][1] / inf[p]:.2f}x" for p in precisions), flush=True)
