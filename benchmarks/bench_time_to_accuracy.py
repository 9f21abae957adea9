"""Time to accuracy: wall-clock training time until PublicTest accuracy first reaches a target.

    python benchmarks/bench_time_to_accuracy.py [--model fast] [--target 0.64] [--out DIR] [--data PATH]

Trains the preset with its own recipe (ferkit train --model fast ...) on the full training split,
prints the per-epoch log, then the time until the target was reached: the sum of the epochs'
seconds (training plus the per-epoch PublicTest evaluation), data loading excluded (it is cached
after the first run). The paper's deep net reaches 64% on test after 35 epochs; its cost per epoch
on this machine is printed beside for comparison (see also bench_train.py).
"""

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from ferkit.data import SHARED_DATA, load_fer
from ferkit.train import fit, resolve_config

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="fast")
ap.add_argument("--target", type=float, default=0.64, help="PublicTest accuracy to reach (paper's deep net: 64%% test)")
ap.add_argument("--data", default=str(SHARED_DATA))
ap.add_argument("--out", help="run folder (default: a temporary one)")
args = ap.parse_args()
if not Path(args.data).exists():
    sys.exit(f"skipped: FER2013 not found at {args.data} (pass --data PATH)")
logging.basicConfig(level=logging.INFO, format="%(message)s")

data = load_fer(args.data)  # parse (or read the cache) before the clock starts
cfg = resolve_config(args.model, data=args.data)
out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ferkit-tta-"))
print(f"{args.model}: {cfg.epochs} epochs, {cfg.optimizer} lr {cfg.lr}, {cfg.schedule}, precision {cfg.precision}; -> {out}")
t0 = time.perf_counter()
history = fit(cfg, out, data=data, progress=False)
wall = time.perf_counter() - t0

elapsed, reached = 0.0, None
print(f"\n{'epoch':>5}{'val acc':>9}{'seconds':>9}{'cumulative':>12}")
for row in history:
    elapsed += row["seconds"]
    print(f"{row['epoch']:>5}{row['val_acc']:>9.4f}{row['seconds']:>9.0f}{elapsed:>11.0f}s")
    if reached is None and row["val_acc"] >= args.target:
        reached = (row["epoch"], elapsed)
best = max(history, key=lambda r: r["val_acc"])
print(f"\nwhole run {wall:.0f} s; best PublicTest accuracy {best['val_acc']:.4f} (epoch {best['epoch']})")
if reached:
    print(f"reached {args.target:.0%} at epoch {reached[0]} after {reached[1]:.0f} s = {reached[1] / 60:.1f} min of training")
else:
    print(f"did not reach {args.target:.0%} in {cfg.epochs} epochs ({elapsed / 60:.1f} min)")
    sys.exit(1)
