"""Face detection: faces found, false alarms and ms per photo of each detector (yunet, haar, and
the peer's: `fer`'s Haar cascade with its own parameters, in the same run) on real photos with
hand-drawn face boxes, upright, rotated (+-15, +-30 degrees), downscaled (50%, 25%) and framed
(the photo in the middle of a canvas 4x its width and height, tiled with scikit-image's coffee and
cat: its faces keep their pixels in a photo 4x larger, as a group photo's small faces); then the
YuNet score threshold, and what eye alignment does on rotated faces.

    python benchmarks/bench_detect.py [--photos DIR] [--detectors yunet haar peer] [--side N] [--no-align]

Photos: ../shared/data/photos/ (6 photos, 9 whole faces) when present, plus those that ship
inside installed packages: scikit-image's astronaut, cameraman, coffee and cat (no face) and
matplotlib's Grace Hopper. A detection is correct when its box overlaps a hand-drawn one by
IoU >= 0.3; each drawn face counts once; a detection on a face cut by the photo's edge (PARTIAL)
counts neither way; every other detection is a false alarm. Rotated photos keep their whole
content (the canvas grows); the drawn boxes move with their centres.

The alignment part runs the bundled model on every face found in both the upright and the
rotated photo (yunet) and counts how often the emotion stays the one predicted upright, with
and without turning the crop by the eye landmarks; it also reports how much of the rotation
the eye landmarks see.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from common import cpu_header, peer_boxes
from PIL import Image

from ferkit.detectors import DETECTORS, YuNet
from ferkit.faces import detect_faces, eye_angle, load_image
from ferkit.video import iou

# hand-drawn face boxes (x, y, w, h) in each photo's pixels, from the forehead to the chin
FACES = {
    "angry.jpg": [(355, 636, 573, 698)],
    "group.jpeg": [(313, 11, 113, 145), (164, 243, 128, 171), (948, 289, 137, 168), (617, 68, 132, 153)],
    "happy-baby.jpeg": [(492, 126, 259, 332)],
    "neutral.jpeg": [(270, 320, 428, 560)],
    "sad-baby.jpeg": [(420, 0, 680, 850)],
    "surprised.jpeg": [(684, 304, 304, 380)],
    "astronaut": [(178, 63, 89, 112)],
    "cameraman": [(195, 113, 60, 80)],
    "grace_hopper": [(182, 121, 171, 211)],
    "coffee": [],
    "cat": [],
}
PARTIAL = {"group.jpeg": [(966, 0, 102, 64)]}  # the top right face, cut at the eyes by the photo's edge
ROTATIONS, SCALES, FRAME = (15, -15, 30, -30), (0.5, 0.25), 4
MIN_IOU = 0.3


def packaged_photos() -> dict:
    from matplotlib.cbook import get_sample_data
    from skimage import data

    out = {"astronaut": data.astronaut(), "cameraman": np.repeat(data.camera()[:, :, None], 3, axis=2),
           "coffee": data.coffee(), "cat": data.chelsea()}
    with get_sample_data("grace_hopper.jpg") as f:
        out["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    return out


def rotate(rgb, boxes, degrees):
    """The photo turned counter-clockwise by `degrees` on a grown canvas, and its boxes moved along."""
    im = Image.fromarray(rgb).rotate(degrees, resample=Image.BILINEAR, expand=True)
    h, w = rgb.shape[:2]
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    moved = []
    for x, y, bw, bh in boxes:
        dx, dy = x + bw / 2 - w / 2, y + bh / 2 - h / 2
        nx, ny = c * dx + s * dy + im.width / 2, -s * dx + c * dy + im.height / 2
        moved.append((nx - bw / 2, ny - bh / 2, bw, bh))
    return np.asarray(im), moved


def framed(rgb, boxes, background):
    """The photo in the middle of a canvas FRAME times its width and height, tiled with `background`
    (photos without a face), and its boxes moved along."""
    h, w = rgb.shape[:2]
    bh, bw = background.shape[:2]
    canvas = np.tile(background, (-(-FRAME * h // bh), -(-FRAME * w // bw), 1))[: FRAME * h, : FRAME * w].copy()
    y0, x0 = (FRAME * h - h) // 2, (FRAME * w - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = rgb
    return canvas, [(x + x0, y + y0, bw_, bh_) for x, y, bw_, bh_ in boxes]


def variants(photos, background):
    """(variant name, photo name, rgb, faces, partial faces) for every photo and variant."""
    for name, (rgb, faces, partial) in photos.items():
        yield "upright", name, rgb, faces, partial
        for d in ROTATIONS:
            r, f = rotate(rgb, faces, d)
            yield f"rotated {d:+d}", name, r, f, rotate(rgb, partial, d)[1]
        for k in SCALES:
            small = np.asarray(Image.fromarray(rgb).resize((round(rgb.shape[1] * k), round(rgb.shape[0] * k)), Image.LANCZOS))
            yield f"scaled {k:.0%}", name, small, [tuple(v * k for v in b) for b in faces], [tuple(v * k for v in b) for b in partial]
        big, f = framed(rgb, faces, background)
        yield f"framed {FRAME}x", name, big, f, framed(rgb, partial, background)[1]


def score(boxes, faces, partial):
    """(correct, false alarms, index of the face each box found or None)."""
    pairs = sorted(((iou(b, f), i, j) for i, b in enumerate(boxes) for j, f in enumerate(faces)), reverse=True)
    hit, used = {}, set()
    for o, i, j in pairs:
        if o >= MIN_IOU and i not in hit and j not in used:
            hit[i] = j
            used.add(j)
    false = sum(1 for i, b in enumerate(boxes) if i not in hit and not any(iou(b, p) >= MIN_IOU for p in partial))
    return len(hit), false, [hit.get(i) for i in range(len(boxes))]


def boxes_of(det, rgb):
    return peer_boxes(rgb) if det == "peer" else [d.box for d in detect_faces(rgb, det)]


def detection_table(cases, detectors):
    rows = {}
    for det in detectors:
        boxes_of(det, cases[0][2])  # warm-up: load the detector
        for variant, _name, rgb, faces, partial in cases:
            t = time.perf_counter()
            found = boxes_of(det, rgb)
            ms = (time.perf_counter() - t) * 1000
            ok, false, _ = score(found, faces, partial)
            r = rows.setdefault(variant, {}).setdefault(det, [0, 0, 0, [], 0])
            r[0] += ok
            r[1] += len(faces)
            r[2] += false
            r[3].append(ms)
            r[4] += 1
    head = f"{'':<13}{'photos':>7}{'faces':>6}" + "".join(f"  | {d + ' found':>12}{'false':>6}{'ms/photo':>9}" for d in detectors)
    print(head + "\n" + "-" * len(head))
    totals = {d: [0, 0, 0, []] for d in detectors}
    for variant, per in rows.items():
        first = per[detectors[0]]
        line = f"{variant:<13}{first[4]:>7}{first[1]:>6}"
        for d in detectors:
            ok, n, false, ms, _ = per[d]
            line += f"  | {f'{ok}/{n}':>12}{false:>6}{statistics.mean(ms):>9.1f}"
            t = totals[d]
            t[0], t[1], t[2] = t[0] + ok, t[1] + n, t[2] + false
            t[3] += ms
        print(line)
    line = f"{'all':<13}{len(cases):>7}{totals[detectors[0]][1]:>6}"
    for d in detectors:
        ok, n, false, ms = totals[d]
        line += f"  | {f'{ok}/{n}':>12}{false:>6}{statistics.mean(ms):>9.1f}"
    print("-" * len(head) + "\n" + line)


def threshold_table(cases):
    """YuNet without its score threshold: the scores of true faces and of false alarms."""
    import ferkit.detectors as fd

    true, false = [], []
    raw = YuNet(min_score=0.0)
    saved = fd._made.get("yunet")
    fd._made["yunet"] = raw
    try:
        for _, _name, rgb, faces, partial in cases:
            found = detect_faces(rgb, "yunet")
            _, _, hits = score([d.box for d in found], faces, partial)
            for d, h in zip(found, hits):
                if h is not None:
                    true.append(d.score)
                elif not any(iou(d.box, p) >= MIN_IOU for p in partial):
                    false.append(d.score)
    finally:
        fd._made["yunet"] = saved if saved is not None else fd._made.pop("yunet")
    n = sum(len(c[3]) for c in cases)
    print(f"\nyunet scores without a threshold: {len(true)} true faces (lowest {min(true):.2f}), "
          f"{len(false)} false alarms (highest {max(false, default=0):.2f})")
    print("  threshold  " + "  ".join(f"{t:>9.2f}" for t in (0.3, 0.5, 0.6, 0.7, 0.75, 0.8)))
    print("  found      " + "  ".join(f"{f'{sum(s >= t for s in true)}/{n}':>9}" for t in (0.3, 0.5, 0.6, 0.7, 0.75, 0.8)))
    print("  false      " + "  ".join(f"{sum(s >= t for s in false):>9}" for t in (0.3, 0.5, 0.6, 0.7, 0.75, 0.8)))


def alignment_table(cases):
    """On yunet's faces: does the emotion stay the upright one when the photo is rotated?"""
    from ferkit.predict import Predictor

    pred = Predictor()
    upright = {}
    stats = {}
    for variant, name, rgb, faces, partial in cases:
        if not faces or variant.startswith("scaled"):
            continue
        found = detect_faces(rgb, "yunet")
        _, _, hits = score([d.box for d in found], faces, partial)
        for d, j in zip(found, hits):
            if j is None:
                continue
            labels = {a: pred.predict(rgb, align=a) for a in (True, False)}
            lab = {a: next(r["label"] for r in recs if iou(r["box"], d.box) > 0.9) for a, recs in labels.items()}
            if variant == "upright":
                upright[name, j] = (lab, eye_angle(d.landmarks))
                continue
            if (name, j) not in upright:
                continue
            (up, up_angle), turn = upright[name, j], -float(variant.split()[1])
            s = stats.setdefault(variant, {"n": 0, True: 0, False: 0, "seen": []})
            s["n"] += 1
            s[True] += lab[True] == up[True]
            s[False] += lab[False] == up[False]
            s["seen"].append((eye_angle(d.landmarks) - up_angle) / turn)
    print("\nalignment (yunet faces found upright and rotated; bundled model): same emotion as upright")
    print(f"  {'':<13}{'faces':>6}{'aligned':>10}{'not aligned':>13}{'rotation seen by the eyes':>28}")
    for variant, s in stats.items():
        n = s["n"]
        print(f"  {variant:<13}{n:>6}{f'{s[True]}/{n}':>10}{f'{s[False]}/{n}':>13}{np.median(s['seen']):>27.0%} (median)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", default=str(Path(__file__).resolve().parents[1] / "../shared/data/photos"))
    ap.add_argument("--detectors", nargs="+", default=[*DETECTORS, "peer"], choices=[*DETECTORS, "peer"])
    ap.add_argument("--side", type=int, help="yunet's working size (longest side; default detectors.YuNet.side)")
    ap.add_argument("--no-align", action="store_true", help="skip the alignment part (it loads the bundled model)")
    args = ap.parse_args()
    if args.side:
        YuNet.side = args.side
    photos = {}
    for f in sorted(Path(args.photos).glob("*")):
        if f.name in FACES:
            photos[f.name] = (load_image(f), FACES[f.name], PARTIAL.get(f.name, []))
    if not photos:
        print(f"note: no photos of {', '.join(n for n in FACES if '.' in n)} in {args.photos}; only the packaged ones")
    packaged = packaged_photos()
    for name, rgb in packaged.items():
        photos[name] = (rgb, FACES[name], PARTIAL.get(name, []))
    coffee, cat = packaged["coffee"], packaged["cat"]
    background = np.hstack([coffee[: cat.shape[0]], cat])  # both without a face
    cases = list(variants(photos, background))
    print(cpu_header())
    print(f"{len(photos)} photos x {len(cases) // len(photos)} variants; yunet at {YuNet.side} px, haar at "
          f"{DETECTORS['haar'].side} px (longest side), the peer on the whole photo; correct = IoU >= {MIN_IOU} with a drawn face\n")
    detection_table(cases, args.detectors)
    if "yunet" in args.detectors:
        threshold_table(cases)
        if not args.no_align:
            alignment_table(cases)


if __name__ == "__main__":
    main()
