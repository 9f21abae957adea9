"""The light install (`pip install ferkit`, no extras) against the full one (this interpreter's):
cold start of `ferkit predict PHOTO` (process start to exit), its CPU time and peak memory, the
size of each environment, and whether both predict the same for every bundled model.

    python benchmarks/bench_light.py LIGHT_VENV [--photo PATH] [--runs N] [--before SRC]

--before SRC: also time the full install running an older ferkit's source folder (e.g. the
src/ of a checkout from before the light install, which imported torch for every prediction).

LIGHT_VENV: a virtual environment with ferkit's wheel installed without extras, e.g. as
.ci/light-install.sh makes one:
    python -m pip wheel --no-deps -w /tmp/dist . && python -m venv /tmp/light && /tmp/light/bin/pip install /tmp/dist/ferkit-*.whl

Each run is a fresh process running what the `ferkit` console script runs (ferkit.cli.main), so
the full install runs this checkout's code under this interpreter. Wall time is the median of
--runs after one untimed run (the disk cache); CPU time (user + system) and peak memory
(ru_maxrss) come from the child's own resource usage (os.wait4), so they are not the
benchmark's. On a busy machine wall time varies with the load; CPU time much less.
Targets (issue 23): light cold predict <= 0.5 s and <= 150 MB, light environment <= 300 MB.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_header

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "../shared/data/photos/happy-baby.jpeg"
CLI = "import sys; from ferkit.cli import main; sys.exit(main())"  # what the console script does
TARGETS = {"wall_s": 0.5, "peak_mb": 150, "env_mb": 300}
# every bundled model on every shared photo (and the demo photo), as JSON: the light-vs-full check
PREDICT_ALL = """
import json, sys
from pathlib import Path
from ferkit.faces import load_image
from ferkit.predict import BUNDLED, DEMO_PHOTO, Predictor
photos = sorted(p for p in Path(sys.argv[1]).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) + [DEMO_PHOTO]
images = [load_image(p) for p in photos]
print(json.dumps({name: [Predictor(name).predict(im) for im in images] for name in BUNDLED}))
heavy = [m for m in ("torch", "sklearn", "skimage", "matplotlib", "optuna", "onnx") if m in sys.modules]
print(json.dumps(heavy))
"""


def cold_predict(python: str, photo: Path, runs: int, env: dict) -> dict:
    """Median wall and CPU seconds and the largest peak memory of `ferkit predict photo` in fresh processes."""
    walls, cpus, peaks = [], [], []
    for i in range(runs + 1):
        t = time.perf_counter()
        p = subprocess.Popen([python, "-c", CLI, "predict", str(photo)], stdout=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"{python}: ferkit predict {photo} failed (exit {p.returncode})")
        if i:  # the first run fills the disk cache
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
            peaks.append(usage.ru_maxrss / 1024)  # KB on Linux
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "peak_mb": max(peaks),
            "wall_range": (min(walls), max(walls))}


def env_mb(prefix: Path) -> float:
    out = subprocess.run(["du", "-sk", str(prefix)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def predictions(python: str, env: dict, photos: Path) -> tuple[dict, list]:
    out = subprocess.run([python, "-c", PREDICT_ALL, str(photos)], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])


def compare(light: dict, full: dict) -> list[str]:
    """One line per bundled model: identical or not, and the largest probability difference."""
    lines = []
    for name in full:
        a, b = light[name], full[name]
        same_faces = [[(f["box"], f["label"]) for f in p] for p in a] == [[(f["box"], f["label"]) for f in p] for p in b]
        diff = max((abs(fa["probs"][e] - fb["probs"][e]) for pa, pb in zip(a, b) for fa, fb in zip(pa, pb) for e in fa["probs"]),
                   default=0.0)
        faces = sum(len(p) for p in a)
        lines.append(f"  {name:<13} {faces} faces: {'identical' if a == b else 'same boxes and labels' if same_faces else 'DIFFERENT'}"
                     f" (max |prob diff| {diff:.1e})")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("light", type=Path, help="the light install's virtual environment")
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", type=Path, help="an older ferkit's src/ folder, timed under this interpreter")
    args = ap.parse_args()
    light_py = str(args.light / "bin" / "python")
    light_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed wheel
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    torch_there = subprocess.run([light_py, "-c", "import importlib.util; print(importlib.util.find_spec('torch') is not None)"],
                                 capture_output=True, text=True, env=light_env).stdout.strip()
    print(cpu_header())
    print(f"`ferkit predict {args.photo.name}` from a cold process: median of {args.runs} runs after one untimed")
    rows = {}
    runs = [("light", light_py, light_env, args.light), ("full", sys.executable, full_env, Path(sys.prefix))]
    if args.before:
        runs.append(("before", sys.executable, {**os.environ, "PYTHONPATH": str(args.before)}, Path(sys.prefix)))
    for name, py, env, prefix in runs:
        r = cold_predict(py, args.photo, args.runs, env)
        r["env_mb"] = env_mb(prefix)
        rows[name] = r
        print(f"  {name:<6} wall {r['wall_s']:.2f} s ({r['wall_range'][0]:.2f}-{r['wall_range'][1]:.2f}), CPU {r['cpu_s']:.2f} s, "
              f"peak {r['peak_mb']:.0f} MB, environment {r['env_mb']:.0f} MB ({prefix})")
    lt, fl = rows["light"], rows.get("before", rows["full"])
    print(f"  light/{'before' if args.before else 'full'}: wall {fl['wall_s'] / lt['wall_s']:.1f}x faster, CPU {fl['cpu_s'] / lt['cpu_s']:.1f}x less, "
          f"memory {fl['peak_mb'] / lt['peak_mb']:.1f}x less, disk {fl['env_mb'] / lt['env_mb']:.1f}x less")
    print("targets (light): " + ", ".join(f"{k} {lt[k]:.2f} <= {v}: {'met' if lt[k] <= v else 'MISSED'}" for k, v in TARGETS.items())
          + f"; torch installed in the light environment: {torch_there}")
    photos = args.photo.parent
    light, heavy = predictions(light_py, light_env, photos)
    full, _ = predictions(sys.executable, full_env, photos)
    print(f"predictions of every bundled model on {photos}/*.jp*g and the demo photo, light vs full"
          f" (light imported {heavy or 'nothing of the training extra'}):")
    print("\n".join(compare(light, full)))


if __name__ == "__main__":
    main()
