"""Load test of `ferkit serve`: concurrent clients post the demo photo, with 1 and N worker processes.

    python benchmarks/bench_serve.py [--model PATH] [--workers 1 4] [--clients 32 128] [--seconds 20]
                                     [--no-big] [--json FILE]

For each --workers value, starts the real server (`ferkit serve --workers W`, a subprocess) on a
free 127.0.0.1 port and waits for /health to say ready; then, for each --clients value, that many
client threads post skimage's astronaut photo (512x512 PNG) to /predict in a loop for --seconds.
Reports requests/s, p50/p99 latency, errors (exit 1 if any) and the RSS of all the server's
processes together (parent, workers) before, during (peak) and after the load. Default workers:
1 and the number of CPUs. The clients run in this process and take CPU from the server: on a
small machine the figures are a lower bound.

Then (unless --no-big), with 1 worker: the memory a big photo costs and whether it comes back.
6 clients at once post a 16-megapixel JPEG (4000x4000, at the default --max-upload-pixels) and
then the probe's all-black 6300x6300 PNG (refused with 413 from its header, before decoding).
Default model: the bundled default (ferkit.predict.DEFAULT_MODEL), on its default path.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage.data import astronaut

from ferkit.predict import BUNDLED, DEFAULT_MODEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:  # the process ended meanwhile
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB."""
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo += _children(p)
    return total / 1024


class RssSampler:
    """The server tree's RSS every 0.25 s in a thread, for the peak during a load."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def __enter__(self):
        self.peak = tree_rss_mb(self.pid)  # a load shorter than one period still has a figure
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def png(rgb_or_image) -> bytes:
    buf = io.BytesIO()
    (rgb_or_image if isinstance(rgb_or_image, Image.Image) else Image.fromarray(rgb_or_image)).save(buf, format="PNG")
    return buf.getvalue()


def start_server(model: str | None, port: int, workers: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ferkit.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, text=True)  # a file, not a pipe: never blocks the server
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit(f"server exited with {proc.returncode}: {log.read().strip()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("server did not say ready on /health within 180 s")


def client(url: str, photo: bytes, stop: float, latencies: list, errors: list) -> None:
    with httpx.Client(timeout=120) as c:
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


def load(server: subprocess.Popen, url: str, photo: bytes, clients: int, seconds: float) -> dict:
    latencies, errors = [], []
    rss_before = tree_rss_mb(server.pid)
    stop = time.perf_counter() + seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(url, photo, stop, latencies, errors)) for _ in range(clients)]
    with RssSampler(server.pid) as rss:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies), "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5], "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "rss_before_mb": round(rss_before, 1), "rss_peak_mb": round(rss.peak, 1),
        "rss_after_mb": round(tree_rss_mb(server.pid), 1),
    }


def big_photos(server: subprocess.Popen, url: str) -> dict:
    """6 concurrent 16 MP uploads (accepted), then 6 of the probe's 40 MP black PNG (refused): RSS."""
    out = {"rss_start_mb": round(tree_rss_mb(server.pid), 1)}
    photo = io.BytesIO()  # a phone-like photo: the astronaut enlarged to 4000x4000, a ~2 MB JPEG
    Image.fromarray(astronaut()).resize((4000, 4000), Image.BICUBIC).save(photo, format="JPEG", quality=90)
    cases = [("16mp", photo.getvalue(), 200), ("black-6300", png(Image.new("1", (6300, 6300))), 413)]
    for name, data, want in cases:
        with RssSampler(server.pid) as rss, ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: httpx.post(url, files={"file": (f"{name}.png", data, "image/png")},
                                                       timeout=300).status_code, range(6)))
        time.sleep(0.5)
        out[name] = {"upload_kb": len(data) // 1024, "codes": sorted(set(codes)), "ok": codes == [want] * 6,
                     "rss_peak_mb": round(rss.peak, 1), "rss_after_mb": round(tree_rss_mb(server.pid), 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint for the server (default: the bundled model)")
    ap.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--clients", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--seconds", type=float, default=20, help="length of each load run")
    ap.add_argument("--no-big", action="store_true", help="skip the big-photo memory check")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not args.model and not BUNDLED[DEFAULT_MODEL].exists():
        print(f"skipped: no bundled model at {BUNDLED[DEFAULT_MODEL]}; pass --model PATH")
        return 0

    photo = png(astronaut())
    results, big, model = [], None, None
    print(f"ferkit serve under load on {os.cpu_count()} CPUs, {args.seconds:g} s a run, photo: skimage astronaut 512x512 PNG")
    print(f"{'workers':>7} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   RSS of all server processes (MB): before, peak, after")
    for workers in args.workers:
        port = free_port()
        url = f"http://127.0.0.1:{port}/predict"
        with tempfile.TemporaryFile("w+") as log:
            server = start_server(args.model, port, workers, log)
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/version").json()["model"]
                for clients in args.clients:
                    r = {"workers": workers, **load(server, url, photo, clients, args.seconds)}
                    results.append(r)
                    print(f"{workers:>7} {clients:>7} {r['requests_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6}"
                          f"   {r['rss_before_mb']}, {r['rss_peak_mb']}, {r['rss_after_mb']}"
                          + (f"  errors: {r['error_kinds']}" if r["errors"] else ""))
                if workers == 1 and not args.no_big:
                    big = big_photos(server, url)
            finally:
                server.terminate()
                server.wait(60)
    for w in args.workers[1:]:
        for c in args.clients:
            one = next(r for r in results if r["workers"] == args.workers[0] and r["clients"] == c)
            n = next(r for r in results if r["workers"] == w and r["clients"] == c)
            print(f"  {w} workers vs {args.workers[0]} at {c} clients: {n['requests_per_s'] / max(one['requests_per_s'], 1e-9):.2f}x "
                  f"the requests/s, {n['rss_after_mb'] / max(one['rss_after_mb'], 1e-9):.2f}x the RSS")
    if big:
        print(f"big photos, 1 worker, 6 at once (server RSS {big['rss_start_mb']} MB at the start):")
        for name in ("16mp", "black-6300"):
            b = big[name]
            print(f"  {name}: {b['upload_kb']} KB upload, answers {b['codes']}, RSS peak {b['rss_peak_mb']} MB, "
                  f"after {b['rss_after_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, "cpus": os.cpu_count(), "runs": results, "big": big}, indent=1))
    failed = any(r["errors"] or not r["requests"] for r in results) or (big and not all(big[k]["ok"] for k in ("16mp", "black-6300")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
