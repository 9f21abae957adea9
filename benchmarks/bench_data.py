"""Time to load the full FER2013 CSV cold (parse) and from the .npz cache.

    python benchmarks/bench_data.py [--data PATH]
"""

import argparse
import os
import sys
import tempfile
import time

from ferkit.data import SHARED_DATA, load_fer

ap = argparse.ArgumentParser()
ap.add_argument("--data", default=str(SHARED_DATA))
args = ap.parse_args()
if not os.path.exists(args.data):
    sys.exit(f"skipped: FER2013 not found at {args.data} (pass --data PATH)")

with tempfile.TemporaryDirectory() as cache:
    os.environ["FERKIT_CACHE"] = cache
    t = time.perf_counter()
    d = load_fer(args.data)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    load_fer(args.data)
    warm = time.perf_counter() - t
n = sum(d.counts().values())
print(f"load {args.data}: {n} images")
print(f"  cold (parse CSV): {cold:6.2f} s  ({n / cold:,.0f} images/s)")
print(f"  cached (.npz):    {warm:6.2f} s  ({cold / warm:.0f}x faster)")
