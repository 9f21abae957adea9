"""Training and inference throughput (images/s) of the presets on this machine's CPU.

    python benchmarks/bench_train.py [--models shallow deep vgg] [--batch 128] [--steps 5]

Training = forward + backward + AdamW step on random 48x48 batches, as train.fit runs them
(channels_last); inference = eval-mode forward under torch.inference_mode.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from ferkit.model import count_macs, count_params, create_model

ap = argparse.ArgumentParser()
ap.add_argument("--models", nargs="+", default=["shallow", "deep", "vgg"])
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=5)
args = ap.parse_args()

print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
print(f"{'model':<10}{'params':>12}{'MACs/img':>14}{'train img/s':>13}{'infer img/s':>13}{'epoch (28,709)':>16}")
for name in args.models:
    model = create_model(name).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 1, 48, 48)
    y = torch.randint(0, 7, (args.batch,))
    hog = torch.randn(args.batch, model.hog_dim) if model.hog_dim else None
    opt = torch.optim.AdamW(model.parameters())
    model.train()
    for i in range(args.steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss = F.cross_entropy(model(x, hog), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_ips = args.batch * args.steps / (time.perf_counter() - t)
    model.eval()
    with torch.inference_mode():
        for i in range(args.steps + 1):
            if i == 1:
                t = time.perf_counter()
            model(x, hog)
    infer_ips = args.batch * args.steps / (time.perf_counter() - t)
    print(f"{name:<10}{count_params(model):>12,}{count_macs(model):>14,}{train_ips:>13.0f}{infer_ips:>13.0f}{28709 / train_ips:>14.0f} s")
