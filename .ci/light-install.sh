#!/usr/bin/env bash
# CI: the light install (`pip install ferkit`, no extras). Builds ferkit's wheel, installs it into
# a fresh virtual environment (its dependencies from PyPI) and runs there what a user who only
# predicts runs: `ferkit demo`, `ferkit predict` on the shared photos (JSON, CSV, annotated copies)
# and a `ferkit serve` smoke test; the environment must stay within 300 MB (issue 23), torch and
# OpenCV must be neither installed nor imported, and a command that needs the training or the
# OpenCV extra must say so in one line. Then the OpenCV extra is added and the Haar cascade and a
# video run.
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
WHEEL=$(ls "$TMP"/dist/ferkit-*.whl)
"$V/pip" install -q --disable-pip-version-check "$WHEEL"
size=$(du -sm "$TMP/venv" | cut -f1)  # everything in it: pip and setuptools, and the bytecode pip compiled
echo "light install: wheel built and installed in $((SECONDS - start))s ($size MB)"
[ "$size" -le 300 ] || fail "the light environment is $size MB, over the 300 MB target (issue 23)"
cd "$TMP"  # away from the checkout: only the installed ferkit can be imported

if "$V/pip" show -q torch 2>/dev/null; then fail "torch was installed without the training extra"; fi
if "$V/pip" show -q opencv-python-headless 2>/dev/null; then fail "OpenCV was installed without the opencv extra"; fi
"$V/ferkit" demo --out demo.png
"$V/ferkit" predict "$PHOTOS" --json predict.json --csv predict.csv --annotate annotated
# the same in one process, with the check that nothing of the training stack was imported
"$V/python" - "$PHOTOS" <<'PY'
import json, sys
from ferkit.cli import main
from ferkit.serve import create_app
assert main(["predict", sys.argv[1], "--json", "again.json"]) == 0
create_app()
heavy = {"torch", "sklearn", "skimage", "matplotlib", "optuna", "onnx", "tqdm", "cv2"} & set(sys.modules)
assert not heavy, f"the light install imported {heavy}"
first, again = json.load(open("predict.json")), json.load(open("again.json"))
copies = [r.pop("annotated", None) for r in first]  # where --annotate drew each; the run without it names none
assert first == again and all("faces" in r for r in first), "predict.json: missing or failed results"
assert sum(1 for _ in open("predict.csv")) > len(first), "predict.csv: fewer rows than files"
from pathlib import Path
from PIL import Image
drawn = {str(p): Image.open(p).size for p in Path("annotated").rglob("*.*")}  # drawn with Pillow
assert drawn == {c: (r["width"], r["height"]) for c, r in zip(copies, first)}, drawn
PY
# a command of an extra: one line naming it, exit status 2, no traceback
needs() {  # EXTRA COMMAND...
    local extra=$1 rc
    shift
    set +e
    "$@" >out.txt 2>err.txt
    rc=$?
    set -e
    [ "$rc" = 2 ] && [ "$(wc -l <err.txt)" = 1 ] && grep -q "pip install 'ferkit\[$extra\]'" err.txt \
        || fail "$* without the $extra extra: exit $rc, $(cat err.txt)"
}
needs train "$V/ferkit" train --model fast
needs opencv "$V/ferkit" predict "$PHOTOS" --detector haar

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

# the OpenCV extra: the Haar cascade, and a video (written here with OpenCV, from the demo photo)
"$V/pip" install -q --disable-pip-version-check "$WHEEL[opencv]"
"$V/ferkit" predict "$PHOTOS" --detector haar --json haar.json
"$V/python" - <<'PY'
import cv2, numpy as np
from ferkit.faces import load_image
from ferkit.predict import DEMO_PHOTO
bgr = np.ascontiguousarray(load_image(DEMO_PHOTO)[:, :, ::-1])
w = cv2.VideoWriter("clip.avi", cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
for i in range(4):
    w.write(np.roll(bgr, 2 * i, axis=1))  # the face drifts right
w.release()
PY
"$V/ferkit" predict clip.avi --json video.json --annotate annotated-video
"$V/python" - <<'PY'
import json
import cv2
(haar,) = [r for r in json.load(open("haar.json")) if r["file"].endswith("happy-baby.jpeg")]
assert len(haar["faces"]) == 1, haar
(v,) = json.load(open("video.json"))
assert [len(f["faces"]) for f in v["frames"]] == [1] * 4 and v["faces"][0]["count"] == 4, v
assert cv2.VideoCapture("annotated-video/clip.mp4").get(cv2.CAP_PROP_FRAME_COUNT) == 4
PY

echo "light install: demo, predict (JSON, CSV, annotated), serve and the extras' messages pass without torch and OpenCV in $size MB;" \
    "the OpenCV extra's Haar cascade and video pass; $((SECONDS - start))s"
