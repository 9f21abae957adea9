"""Issue 24's teachers at full length on a lent GPU, in one prepared run of two device calls.

A lent GPU (the `device` tool: one NVIDIA H200 and 16 cores, 15 minutes a session with its start
and idle time) trains in minutes what takes this project's 2-core CPU a day: `vgg-wide` takes
200-600 s an epoch here. The working tree travels in 64 MiB and FER2013's pixels (74 MB) do not fit
beside it, so the data go in two halves, one a call; the first call also times an epoch of the jobs
running side by side, so that the second can size their length to the time left.

Here, once (writes .gpu/, which git ignores; FER2013 never goes into git):

    python tools/lent_gpu.py pack

Device call 1, carry [".gpu/part-a.npz"] (starts the machine; rows 0-16,148, Training only):

    python3 tools/lent_gpu.py calibrate

Device call 2 at once (the machine stays warm 30 s), carry [".gpu/part-b.npz"]:

    python3 tools/lent_gpu.py train --budget 420

The device's own Python has torch with CUDA and all that `ferkit train` imports; src/ is put on its
path. Its $OUT gets each job's best epoch as a float16 checkpoint (NAME.pt, safe to load:
`ferkit evaluate NAME.pt --split val`) and runs.tar.gz (each run's config, history and log).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the device has no ferkit installed: run it from this tree

from ferkit.data import SPLITS, USAGE_TO_SPLIT, load_fer  # noqa: E402
from ferkit.runs import HISTORY_JSON, summarize_history  # noqa: E402

log = logging.getLogger("lent_gpu")

PACKED = ROOT / ".gpu"  # the two halves, here and in the device's copy of the tree
WORK = Path("/tmp/ferkit-gpu")  # on the device: the rebuilt data, the runs, the timing (kept while warm)
HALF = 16_149  # rows in part a: half the file, so that either part and the tree fit in 64 MiB
PUBLIC_TEST_ROWS = 3_589  # PublicTest's size: calibration validates on as many faces
TRAINING_ROWS = 28_709  # FER2013's Training rows, what an epoch of the real run sees
SPLIT_TO_USAGE = {s: u for u, s in USAGE_TO_SPLIT.items()}
OVERHEAD_S = 75  # a train call's time outside epochs: unpacking, torch's start, the cache, exporting
MAX_EPOCHS = 300
MIN_EPOCHS = 10  # fewer: not worth the loan

# The jobs, run side by side: three seeds of the bundled models' net on each label set, at the
# preset's own recipe and a length the budget allows. They are teachers for distillation into the
# bundled models (issue 24), and candidates themselves.
JOBS = {f"{labels}-wide-s{seed}": ["--model", "vgg-wide", "--labels", labels, "--seed", str(seed)]
        for labels in ("fer2013", "ferplus") for seed in (11, 12, 13)}


def pack(data: str, ferplus: str, out: Path = PACKED) -> list[Path]:
    """FER2013's rows in two halves (pixels as row differences: they compress a sixth better) and
    FER+'s votes file, unchanged, in part a."""
    fer = load_fer(data)
    if fer.images.shape[1:] != (48, 48):
        raise SystemExit(f"{data}: expected FER2013's 48x48 grey faces, got images of shape {fer.images.shape[1:]}")
    diffs = np.diff(fer.images, axis=2, prepend=np.uint8(0))  # uint8 wraps: cumsum mod 256 undoes it
    out.mkdir(exist_ok=True)
    parts = []
    for name, rows in (("part-a", slice(0, HALF)), ("part-b", slice(HALF, None))):
        extra = {"ferplus": np.frombuffer(Path(ferplus).read_bytes(), np.uint8)} if name == "part-a" else {}
        path = out / f"{name}.npz"
        np.savez_compressed(path, diffs=diffs[rows], labels=fer.labels[rows], splits=fer.splits[rows], **extra)
        log.info("%s: %d rows, %.1f MB", path, len(fer.labels[rows]), path.stat().st_size / 1e6)
        parts.append(path)
    return parts


def unpack(parts: list[Path], out: Path, calibration: bool = False) -> Path:
    """Rebuild fer2013.csv (and fer2013new.csv beside it) from the parts, in the file's row order.
    calibration: part a alone, its last PUBLIC_TEST_ROWS rows standing in for PublicTest."""
    out.mkdir(parents=True, exist_ok=True)
    zs = [np.load(p) for p in parts]
    images = np.cumsum(np.concatenate([z["diffs"] for z in zs]), axis=2, dtype=np.uint8)
    labels = np.concatenate([z["labels"] for z in zs])
    splits = np.concatenate([z["splits"] for z in zs])
    if calibration:
        splits = np.where(np.arange(len(splits)) >= len(splits) - PUBLIC_TEST_ROWS, SPLITS.index("val"), splits)
    csv = out / "fer2013.csv"
    with open(csv, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for im, y, s in zip(images.reshape(len(images), -1), labels, splits):
            f.write(f"{y},{' '.join(map(str, im.tolist()))},{SPLIT_TO_USAGE[SPLITS[s]]}\n")
    if not calibration:
        (out / "fer2013new.csv").write_bytes(zs[0]["ferplus"].tobytes())
    return csv


def ferkit(*args: str) -> list[str]:
    """A ferkit command run from this tree (main() puts src/ on the children's path)."""
    return [sys.executable, "-m", "ferkit", *args]


def launch(name: str, flags: list[str], csv: Path, runs: Path, epochs: int, threads: int) -> subprocess.Popen:
    """One `ferkit train` in the background; its output goes to RUN/train.log."""
    run = runs / name
    run.mkdir(parents=True, exist_ok=True)
    cmd = ferkit("train", *flags, "--epochs", str(epochs), "--threads", str(threads), "--data", str(csv),
                 "--out", str(run), "--quiet")
    log.info("%s: %s", name, " ".join(cmd[2:]))
    return subprocess.Popen(cmd, stdout=open(run / "train.log", "w"), stderr=subprocess.STDOUT)


def run_all(jobs: dict, csv: Path, runs: Path, epochs: int, deadline: float) -> dict[str, int]:
    """The jobs side by side, in fresh run folders; any still running at the deadline is stopped
    (its best.pt stays)."""
    shutil.rmtree(runs, ignore_errors=True)  # a second try on a warm machine starts over
    load_fer(csv)  # parse the CSV once, into the cache the jobs then read
    threads = max(1, (os.cpu_count() or 2) // len(jobs))
    procs = {name: launch(name, flags, csv, runs, epochs, threads) for name, flags in jobs.items()}
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(2)
    for name, p in procs.items():
        if p.poll() is None:
            log.warning("%s: still running at the deadline; stopped (its best epoch so far is kept)", name)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return {name: p.wait() for name, p in procs.items()}


def history(run: Path) -> list[dict]:
    """A job's epochs so far ([] for one that stopped before its first)."""
    path = run / HISTORY_JSON
    return json.loads(path.read_text()) if path.exists() else []


def calibrate(args) -> None:
    """Two epochs of every job side by side on part a; the second's time, scaled to all of
    Training, is a full epoch's (its evaluation scaled too: an overestimate, on the safe side)."""
    csv = unpack([PACKED / "part-a.npz"], WORK / "calib", calibration=True)
    # part a has no FER+ file; the net and its cost are the same with FER2013's labels
    jobs = {name: [f if f != "ferplus" else "fer2013" for f in flags] + args.extra for name, flags in JOBS.items()}
    runs = WORK / "calib-runs"
    codes = run_all(jobs, csv, runs, epochs=2, deadline=time.time() + args.limit)
    seconds = [h[1]["seconds"] for name in jobs if len(h := history(runs / name)) >= 2]
    if not seconds:
        for name in jobs:
            log.error("%s (exit %s):\n%s", name, codes[name], (runs / name / "train.log").read_text()[-2000:])
        raise SystemExit("calibration: no job finished two epochs")
    train_rows = HALF - PUBLIC_TEST_ROWS
    epoch_s = max(seconds) * TRAINING_ROWS / train_rows
    (WORK / "epoch.json").write_text(json.dumps({"epoch_s": epoch_s}))
    log.info("an epoch of %d jobs side by side: %.1f s on %d faces, so ~%.1f s on all of Training",
             len(jobs), max(seconds), train_rows, epoch_s)


def train(args) -> None:
    """Every job at the length the budget allows (or --epochs), then its best epoch exported."""
    start = time.time()
    out = Path(args.out or os.environ.get("OUT", "gpu-out"))
    parts = [PACKED / "part-a.npz", PACKED / "part-b.npz"]
    if missing := [str(p) for p in parts if not p.exists()]:
        raise SystemExit(f"missing {', '.join(missing)}: carry part a in the first call and part b in this one")
    epochs = args.epochs
    if not epochs:
        timing = WORK / "epoch.json"
        if not timing.exists():
            raise SystemExit(f"no {timing}: run `calibrate` first on this machine, or give --epochs")
        epoch_s = json.loads(timing.read_text())["epoch_s"]
        epochs = min(MAX_EPOCHS, math.floor((args.budget - OVERHEAD_S) / epoch_s))
        log.info("~%.1f s an epoch: %d epochs fit in %d s", epoch_s, epochs, args.budget)
        if epochs < MIN_EPOCHS:
            raise SystemExit(f"only {epochs} epochs fit in --budget {args.budget}: not worth a run")
    csv = unpack(parts, WORK / "data")
    runs = WORK / "runs"
    jobs = {name: flags + args.extra for name, flags in JOBS.items()}
    codes = run_all(jobs, csv, runs, epochs, deadline=start + args.budget - 30)
    out.mkdir(parents=True, exist_ok=True)
    for name in JOBS:
        run = runs / name
        s = summarize_history(history(run))
        log.info("%s: exit %s, %d/%d epochs, best %s", name, codes[name], s["epochs"] if s else 0, epochs,
                 f"{s['best_val_acc']:.4f} (epoch {s['best_epoch']})" if s else "none")
        if (run / "best.pt").exists():
            subprocess.run(ferkit("export", str(run / "best.pt"), "--pt", str(out / f"{name}.pt"), "--half"), check=False)
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for name in JOBS:
            for f in ("config.json", "history.csv", "history.json", "train.log"):
                if (runs / name / f).exists():
                    tar.add(runs / name / f, arcname=f"{name}/{f}")
    log.info("done in %.0f s; $OUT: %s", time.time() - start, ", ".join(sorted(p.name for p in out.iterdir())))


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="here: FER2013 and FER+ into .gpu/part-a.npz and .gpu/part-b.npz")
    pk.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    pk.add_argument("--ferplus", default=None, help="FER+'s votes file (default: fer2013new.csv beside --data)")
    c = sub.add_parser("calibrate", help="device call 1: time an epoch of the jobs side by side on part a")
    c.add_argument("--limit", type=int, default=240, help="seconds before the timing jobs are stopped")
    t = sub.add_parser("train", help="device call 2: the jobs at the length that fits --budget; exports to $OUT")
    t.add_argument("--budget", type=int, default=420, help="seconds for the whole call (the device allows 600)")
    t.add_argument("--epochs", type=int, default=0, help="a fixed length instead of the calibrated one")
    t.add_argument("--out", default=None, help="default $OUT")
    for s in (c, t):
        s.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                       help="flags added to every job's `ferkit train` (last, so they win), e.g. for a dry run "
                            "on a CPU: --extra --model tiny --train-subset 500")
    args = p.parse_args(argv)
    if args.command == "pack":
        return pack(args.data, args.ferplus or str(Path(args.data).with_name("fer2013new.csv")))
    # the jobs run ferkit from this tree and share one data cache (their parent fills it first); a
    # PYTHONPATH already set stays behind src/ (the device's README puts carried wheels there)
    path = os.pathsep.join(d for d in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if d)
    os.environ.update(PYTHONPATH=path, FERKIT_CACHE=str(WORK / "cache"))
    if args.command == "calibrate":
        calibrate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
