"""The ablation table from run folders: one row per run, what it changed from the first (the
baseline), its seed, and its PublicTest accuracy at the best and the last epoch.

    python benchmarks/ablation_table.py ~/ferkit-runs/ablation/fast-base ~/ferkit-runs/ablation/fast-mixup ...

The runs' validation accuracy is what `ferkit train` measured each epoch (with the recipe's flip
TTA where it has it); rows compare at equal epochs only if the runs had them (checked).
"""

import argparse
from pathlib import Path

from ferkit.checkpoint import read_runs

TRICKS = ("mixup", "cutmix", "mixup_prob", "photo_aug", "zoom", "ema", "flip_consistency", "tta", "rotate", "erase", "crop_pad",
          "label_smoothing", "l2", "lr", "teacher", "distill", "distill_temp", "teacher_tta", "label_mode", "epochs", "model",
          "labels", "seed")

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs="+", help="run folders; the first is the baseline")
args = ap.parse_args()

def shown(v):
    return "+".join(Path(t).name for t in v) if isinstance(v, list) else v  # teachers by file name


runs = read_runs(args.runs)
base = runs[0].config
print("| run | change from the first | seed | epochs | PublicTest: best (epoch) | last | gain of the best |")
print("|---|---|---|---|---|---|---|")
first_best = None
for r in runs:
    c = r.config
    change = ", ".join(f"{k}={shown(c.get(k))}" for k in TRICKS if k != "seed" and c.get(k) != base.get(k)) or "(baseline)"
    acc = [h["val_acc"] for h in r.history]
    best = max(range(len(acc)), key=acc.__getitem__)
    first_best = acc[best] if first_best is None else first_best
    done = "" if len(acc) == c["epochs"] else f" (of {c['epochs']}: unfinished)"
    print(f"| {r.name} | {change} | {c['seed']} | {len(acc)}{done} | {100 * acc[best]:.2f}% ({best + 1}) | {100 * acc[-1]:.2f}% | "
          f"{100 * (acc[best] - first_best):+.2f} |")
