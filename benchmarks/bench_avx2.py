"""The default path against the peer on a CPU with AVX2 alone (no AVX-512, VNNI or AMX), counted
in instructions: what runs on such a CPU, measured on any x86 machine.

    python benchmarks/bench_avx2.py [--model NAME|FILE] [--no-tta] [--batch 128] [--repeat 3]

valgrind shows the programs it runs a CPU with AVX2 and FMA but no AVX-512, VNNI or AMX (its
CPUID; the header prints what numpy's own CPU check sees under it), so onnxruntime, LiteRT's
XNNPACK and OpenCV pick the kernels they would pick on such a CPU (the int8 ones without dot
products among them). Callgrind counts every instruction executed: each figure is the count of a
run that does the work `--repeat` times minus that of a run that loads everything and warms up
the same way but does it no time, divided by the work done. Each side runs on one thread (a
spinning pool thread would count instructions that do no work).

Instructions are not seconds: they leave out memory stalls and how many instructions a core
retires per cycle, which differ between the two runtimes' kernels. They are exact and repeatable,
and where no such CPU is at hand they are the closest reading of one; a time measured on one
is better (bench_predict.py). "x peer" > 1 means ferkit executes fewer instructions; the
targets are bench_predict's (common.TARGETS). The counts depend on an int8 graph's quantisation
parameters too (an untrained net's graph counted ~40% more than the same net trained): compare
trained models. Needs valgrind (Debian: apt install valgrind) and the peer (pip install
'ferkit[bench]'); about 10 minutes on 2 cores.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import TARGETS, cpu_header, peer_photo_probs, peer_probs

WORK = ("crops", "face", "photo")  # a batch of faces (counted per face), one face, the astronaut photo


def worker(side: str, work: str, repeat: int, batch: int, model: str | None, tta: bool | None) -> None:
    """Load `side` (ferkit's `model` on its default path, or the peer), warm up, then do `work`
    `repeat` times."""
    from ferkit.faces import load_image
    from ferkit.predict import DEMO_PHOTO, Predictor

    faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    photo = load_image(DEMO_PHOTO)
    if side == "ferkit":
        p = Predictor(model, threads=1, tta=tta)
        do = {"crops": lambda: p.predict_faces(faces), "face": lambda: p.predict_faces(faces[:1]),
              "photo": lambda: p.predict(photo)}[work]
    else:
        do = {"crops": lambda: peer_probs(faces, threads=1), "face": lambda: peer_probs(faces[:1], threads=1),
              "photo": lambda: peer_photo_probs(photo, threads=1)}[work]
    for _ in range(2 + repeat):  # two warm-up calls, as common.median_s: first calls allocate and pick kernels
        do()


def instructions(side: str, work: str, repeat: int, batch: int, model: str | None, tta: bool | None) -> int:
    """Instructions callgrind counts in a worker process doing `work` `repeat` times."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--worker", side, work, str(repeat), "--batch", str(batch), *(["--model", model] if model else []),
               *(["--no-tta"] if tta is False else [])]
        run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if run.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
        return int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1))


def features_under_valgrind() -> str:
    """What numpy's CPU check (CPUID) sees under valgrind: the proof that AVX2 kernels run."""
    code = "import numpy as np; f = np._core._multiarray_umath.__cpu_features__; print(' '.join(k for k in ('AVX2', 'FMA3', 'AVX512F', 'AVX512VNNI', 'AVX512_SPR') if f.get(k)))"
    run = subprocess.run(["valgrind", "-q", sys.executable, "-c", code], capture_output=True, text=True)
    return run.stdout.strip() or run.stderr.strip()[-300:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="bundled model name, checkpoint or .onnx file (default: the bundled default model)")
    ap.add_argument("--no-tta", dest="tta", action="store_false", default=None,
                    help="without the mirror (the default: as the Predictor chooses; a file trained with it gets it)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="batches and photos counted (one face: 20x as many; the runs are ~50x slower under valgrind)")
    ap.add_argument("--worker", nargs=3, metavar=("SIDE", "WORK", "REPEAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        side, work, repeat = args.worker
        return worker(side, work, int(repeat), args.batch, args.model, args.tta)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is missing: apt install valgrind")
    from ferkit.errors import FerkitError
    from ferkit.predict import Predictor

    try:
        p = Predictor(args.model, tta=args.tta)
    except FerkitError as e:  # a bad --model: its message, not a traceback
        sys.exit(str(e))
    print(cpu_header())
    print(f"under valgrind the programs see: {features_under_valgrind()}")
    print(f"ferkit: {args.model or 'the default model'}: {p.backend} {p.precision}, mirror {'on' if p.tta else 'off'}\n")
    # one face is counted 20x as often: a face is cheap, and the two runs differ by a few million
    # instructions of the interpreter's own (its start-up is not the same twice)
    repeat = {"crops": args.repeat, "face": 20 * args.repeat, "photo": args.repeat}
    count = {}
    for side in ("ferkit", "peer"):
        for work in WORK:
            done = (instructions(side, work, repeat[work], args.batch, args.model, args.tta)
                    - instructions(side, work, 0, args.batch, args.model, args.tta))
            count[side, work] = done / (repeat[work] * (args.batch if work == "crops" else 1))
    names = {"crops": f"instructions a face in a batch of {args.batch}", "face": "instructions for one face",
             "photo": "instructions astronaut photo -> emotions"}
    print(f"{'':42}{'ferkit':>14}{'peer':>14}{'x peer':>9}{'target':>9}")
    for work in WORK:
        ours, theirs = count["ferkit", work], count["peer", work]
        print(f"{names[work]:42}{ours:14,.0f}{theirs:14,.0f}{theirs / ours:8.2f}x{TARGETS[work]:8.2f}x")


if __name__ == "__main__":
    main()
