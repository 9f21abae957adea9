#!/usr/bin/env bash
# CI: the light install (`pip install ferkit`, no extras). Builds ferkit's wheel, installs it into
# a fresh virtual environment (its dependencies from PyPI) and runs there what a user who only
# predicts runs: `ferkit demo`, `ferkit predict` on the shared photos (JSON and CSV) and a
# `ferkit serve` smoke test; torch must be neither installed nor imported, and a command that
# needs the training extra must say so in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-python3}  # builds the wheel and makes the fresh environment
PHOTOS=${FERKIT_PHOTOS:-$ROOT/../shared/data/photos}
TMP=$(mktemp -d /tmp/ferkit-light.XXXXXX)
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "light install: $*" >&2; exit 1; }
start=$SECONDS

"$PY" -m pip wheel -q --no-deps -w "$TMP/dist" . >/dev/null
"$PY" -m venv "$TMP/venv"
V=$TMP/venv/bin
"$V/pip" install -q --disable-pip-version-check "$TMP"/dist/ferkit-*.whl
echo "light install: wheel built and installed in $((SECONDS - start))s ($(du -sm "$TMP/venv" | cut -f1) MB)"
cd "$TMP"  # away from the checkout: only the installed ferkit can be imported

if "$V/pip" show -q torch 2>/dev/null; then fail "torch was installed without the training extra"; fi
"$V/ferkit" demo --out demo.png
"$V/ferkit" predict "$PHOTOS" --json predict.json --csv predict.csv
# the same in one process, with the check that nothing of the training stack was imported
"$V/python" - "$PHOTOS" <<'PY'
import json, sys
from ferkit.cli import main
from ferkit.serve import create_app
assert main(["predict", sys.argv[1], "--json", "again.json"]) == 0
create_app()
heavy = {"torch", "sklearn", "skimage", "matplotlib", "optuna", "onnx", "tqdm"} & set(sys.modules)
assert not heavy, f"the light install imported {heavy}"
first, again = json.load(open("predict.json")), json.load(open("again.json"))
assert first == again and all("faces" in r for r in first), "predict.json: missing or failed results"
assert sum(1 for _ in open("predict.csv")) > len(first), "predict.csv: fewer rows than files"
PY
# a command of the training extra: one line naming it, exit status 2, no traceback
set +e
"$V/ferkit" train --model fast >out.txt 2>err.txt
rc=$?
set -e
[ "$rc" = 2 ] && [ "$(wc -l <err.txt)" = 1 ] && grep -q "pip install 'ferkit\[train\]'" err.txt \
    || fail "ferkit train without the training extra: exit $rc, $(cat err.txt)"

# serve: start on a free loopback port, wait for /health, post a photo, stop
PORT=$("$V/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$V/ferkit" serve --port "$PORT" --log-level warning >serve.log 2>&1 &
SERVER=$!
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || fail "ferkit serve exited: $(cat serve.log)"
    sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || fail "ferkit serve not healthy after 60 s: $(cat serve.log)"
photo=$(ls "$PHOTOS"/*.jp*g | head -1)
curl -sf -F "file=@$photo" "http://127.0.0.1:$PORT/predict" >served.json || fail "POST /predict failed: $(cat serve.log)"
"$V/python" -c 'import json, sys; r = json.load(open("served.json")); assert r["count"] == len(r["faces"]) >= 1, r'
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
SERVER=

echo "light install: demo, predict (JSON, CSV), serve and the extra's message pass without torch in $((SECONDS - start))s"
