"""Load test of `ferkit serve`: N concurrent clients post the demo photo for a fixed time.

    python benchmarks/bench_serve.py [--model PATH] [--clients 32] [--seconds 20] [--json FILE]

Starts the real server (`ferkit serve`, a subprocess) on a free 127.0.0.1 port, waits for /health,
then each client thread posts skimage's astronaut photo (512x512 PNG) to /predict in a loop.
Reports requests/s, p50/p99 latency, the error count (exit 1 if not 0) and the server's RSS
before the load and after it. Default model: the bundled one (src/ferkit/weights/ferkit.pt).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage.data import astronaut

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "weights" / "ferkit.pt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: str | None, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ferkit.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if model:
        cmd += ["--model", model]
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: the access log must never block the server
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit(f"server exited with {proc.returncode}: {log.read().strip()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("server did not answer /health within 120 s")


def client(url: str, photo: bytes, stop: float, latencies: list, errors: list) -> None:
    with httpx.Client(timeout=60) as c:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                r = c.post(url, files={"file": ("astronaut.png", photo, "image/png")})
                ok = r.status_code == 200 and r.json()["count"] >= 0
            except (httpx.HTTPError, ValueError, KeyError) as e:
                ok, r = False, e
            if ok:
                latencies.append(time.perf_counter() - t)
            else:
                errors.append(str(getattr(r, "status_code", r)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint for the server (default: the bundled model)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not args.model and not BUNDLED.exists():
        print(f"skipped: no bundled model at {BUNDLED}; pass --model PATH")
        return 0

    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, format="PNG")
    photo = buf.getvalue()
    port = free_port()
    server = start_server(args.model, port)
    try:
        url = f"http://127.0.0.1:{port}/predict"
        model = httpx.get(f"http://127.0.0.1:{port}/version").json()["model"]
        warm = httpx.post(url, files={"file": ("astronaut.png", photo, "image/png")}, timeout=60)
        assert warm.status_code == 200, warm.text
        rss_before = rss_mb(server.pid)
        latencies, errors, rss = [], [], []
        stop = time.perf_counter() + args.seconds
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(url, photo, stop, latencies, errors)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):  # RSS during the load: a plateau is a cache, a climb a leak
            rss.append(rss_mb(server.pid))
            time.sleep(0.5)
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    lat = np.array(latencies) * 1000
    out = {
        "model": model.get("name"), "model_path": model.get("path"), "clients": args.clients,
        "seconds": round(elapsed, 1), "requests": len(latencies), "errors": len(errors),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_after, 1),
        "rss_quarters_mb": [round(rss[min(len(rss) - 1, len(rss) * q // 4)], 1) for q in (1, 2, 3, 4)],
        "cpus": os.cpu_count(), "photo": "skimage astronaut 512x512 PNG",
    }
    print(f"ferkit serve, model {out['model']}, {args.clients} clients for {out['seconds']} s on {out['cpus']} CPUs")
    print(f"  {out['requests']} requests, {out['requests_per_s']} requests/s, errors {out['errors']}")
    print(f"  latency p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms")
    print(f"  server RSS {out['rss_before_mb']} MB before the load; at 1/4, 2/4, 3/4, end of it "
          f"{', '.join(map(str, out['rss_quarters_mb']))} MB; {out['rss_after_mb']} MB after")
    if errors:
        print(f"  error kinds: {sorted(set(errors))[:5]}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 1 if errors or not latencies else 0


if __name__ == "__main__":
    sys.exit(main())
