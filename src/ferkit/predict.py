"""From photos to emotions: the Predictor, the inference core.

    Predictor(model).predict(load_image(src)) -> [{"box": [x, y, w, h], "label": "happy",
                                                   "score": p, "probs": {"angry": p, ..., "neutral": p}}]

`model` is a bundled model's name (BUNDLED: "fer2013" and "fer2013-fast", 7 emotions; "ferplus" and
"ferplus-fast", 8; None means DEFAULT_MODEL), a checkpoint path, a Classifier or an .onnx file from
`ferkit export`. Records name the model's own emotions. Faces are found by
`detector` (yunet, or haar) and turned upright by their eye landmarks (`align`); with
crops=True each photo is taken as one face, already cropped. Faces are cropped as the model takes
them (`face_shape`, read from the checkpoint's spec or the ONNX graph's input): 48x48 grey for
FER2013's models, in_size and in colour for a colour model. All faces of a photo go through
one forward pass. Files and folders to results live in jobs.py, videos in video.py, drawing in
draw.py, the output files in outputs.py.

No torch at import, nor on the default path: a bundled model's shipped int8 graph and .onnx files
run on onnxruntime (runtime.py). torch loads only for a checkpoint (a .pt, a run folder, a
Classifier, --backend torch), and a light install without it says which extra to add.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import numpy as np

from . import bundled
from .config import MAX_THREADS, check_args
from .errors import FerkitError, needs_extra, shell_word
from .faces import DETECTOR, MIN_FACE, SIZE, as_photo, face_batch, find_faces, min_face_fits, whole_face
from .labels import EMOTIONS
from .precisions import DEVICE, DEVICE_TEXT
from .runs import is_whole
from .schema import Face

WEIGHTS = bundled.WEIGHTS  # where the bundled models and the face detector ship
# The models that ship inside ferkit: their one home is weights/manifest.json (bundled.py). These
# names are derived from it and kept for the callers (tests, benchmarks) that use them; tests patch
# BUNDLED and DEFAULT_MODEL, so the functions below read these, not the manifest.
# NAME (vgg-wide) is the most accurate on its labels; NAME-fast, distilled from it, is several times
# faster. Figures: README, "The bundled models".
BUNDLED = {name: m.path("checkpoint") for name, m in bundled.MODELS.items()}
# The default for photos: FER+'s labels name the real photos right where both FER2013 models read
# the surprised face as fear (benchmarks/bench_photos.py), and of the FER+ models the fast one is
# the one faster than the peer on every speed figure (benchmarks/bench_predict.py).
DEFAULT_MODEL = bundled.DEFAULT
# A photo that ships inside ferkit, for `ferkit demo` and serve's warm-up (no download, no scikit-image):
# scikit-image's astronaut (Eileen Collins; NASA, public domain), saved as a JPEG.
DEMO_PHOTO = Path(__file__).resolve().parent / "samples" / "astronaut.jpg"

log = logging.getLogger(__name__)


def bundled_name(model) -> str | None:
    """The bundled model a model argument names (None: the default one), else None. A Path always names a
    file or folder, whatever its name: Path("ferplus-fast") ran the bundled model, not ./ferplus-fast."""
    if isinstance(model, os.PathLike):
        return None
    name = str(DEFAULT_MODEL if model is None else model)  # (None alone: model=0 or "" ran the default model)
    return name if name in BUNDLED else None


def model_path(model: str | Path | None = None) -> Path:
    """The checkpoint a model argument means: a bundled model's name (None = the default one) or a path."""
    name = bundled_name(model)
    if name is not None:
        if not BUNDLED[name].exists():
            raise FerkitError(f"the bundled model {name!r} is not in this install ({BUNDLED[name]} is missing); "
                              "pass a checkpoint written by 'ferkit train' with --model PATH")
        return BUNDLED[name]
    path = os.fsdecode(model) if isinstance(model, os.PathLike) else str(model)
    if not path or not Path(path).exists():  # (Path("") is the current folder)
        if path in BUNDLED:  # a Path named like a bundled model
            raise FerkitError(f"--model {path}: no such file or folder (a Path names one); give the bundled model as a str, {path!r}")
        raise FerkitError(f"--model {path or repr(path)}: no such file or folder, and not a bundled model ({', '.join(BUNDLED)})")
    return Path(path)


def load_model(model: str | Path | None = None, device: str = "cpu", precision: str = "fp32"):
    """A Classifier (torch) from a bundled model's name (None = the default), a checkpoint or a run folder."""
    return _load_checkpoint(model_path(model), device, precision)


def _load_checkpoint(path: Path, device: str, precision: str):
    """checkpoint.load_checkpoint, imported only now: it needs torch (the training extra)."""
    try:
        from .checkpoint import load_checkpoint
    except ModuleNotFoundError as e:
        raise needs_extra(e, f"running the checkpoint {path} (torch)") from None
    return load_checkpoint(path, device, precision)


def _is_classifier(model) -> bool:
    # a Classifier exists only once checkpoint.py (and torch) was imported: no need to import them to ask
    ckpt = sys.modules.get(f"{__package__}.checkpoint")
    return ckpt is not None and isinstance(model, ckpt.Classifier)


def record(box, probs: np.ndarray, labels=EMOTIONS) -> Face:
    """One face's result with plain Python numbers (JSON-ready), over the model's emotions `labels`."""
    k = int(np.argmax(probs))
    return {"box": [int(v) for v in box], "label": labels[k], "score": float(probs[k]),
            "probs": {e: float(p) for e, p in zip(labels, probs)}}


# The default prediction path of Predictor() and `ferkit predict/demo/serve`, as (backend, precision),
# for a bundled model whose int8 graph ships beside it (int8_file): twice torch bf16's speed at the
# same PublicTest accuracy (benchmarks/bench_paths.py), and right on every x86 CPU since its weights
# are 7-bit (onnx_export.SAFE_INT8). Every other model runs on torch with its automatic precision:
# int8 from a checkpoint would first need calibration faces.
DEFAULT_PATH = ("onnx", "int8")
# On AMD's Zen and Zen+ (cpu.narrow_avx2) int8 does not pay: a model's shipped fp32 graph, where it has
# one, is faster there on every figure and as accurate as its checkpoint (docs/speed.md)
NARROW_PATH = ("onnx", "fp32")


def default_path(model=None, cpu=None) -> tuple[str, str]:
    """The (backend, precision) Predictor takes when given neither: DEFAULT_PATH for a bundled
    model whose int8 graph ships (NARROW_PATH where the CPU runs AVX2 on 128-bit units and the model
    ships an fp32 graph too), onnx's auto for an .onnx file (the precision it was exported in),
    else torch's auto. cpu: a cpu.CpuInfo (default: this machine's)."""
    from .cpu import cpu_info

    name = bundled_name(model)
    if shipped_graph(name, "int8"):
        return NARROW_PATH if (cpu or cpu_info()).narrow_avx2 and shipped_graph(name, "fp32") else DEFAULT_PATH
    if is_onnx_file(model):
        return "onnx", "auto"
    return "torch", "auto"


# PublicTest points each bundled model's shipped int8 graph gains from the mirror average
# (benchmarks/bench_int8.py, the graph with minus without it; the manifest's tta_gain).
TTA_GAIN = {name: m.tta_gain for name, m in bundled.MODELS.items()}
# points the mirror must buy to be worth its cost: it doubles a face's time on every CPU
# (docs/speed.md: the default with and without it)
MIN_TTA_GAIN = 0.2


def default_tta(trained: bool, gain: float | None = None) -> tuple[bool, str]:
    """Whether to average with the mirrored face when the caller does not say, and why: as trained,
    except for a model whose measured `gain` from the mirror is under MIN_TTA_GAIN points."""
    if not trained:
        return False, "the model was trained without it"
    if gain is not None and gain < MIN_TTA_GAIN:
        return False, f"it buys {gain:+.2f} points, under {MIN_TTA_GAIN}, for twice a face's time"
    return True, "as trained" + (f": it buys {gain:+.2f} points" if gain is not None else "")


def describe_default(cpu=None) -> str:
    """What Predictor() runs on this CPU and why (`ferkit --version`, `ferkit models`)."""
    from .cpu import cpu_info

    cpu = cpu or cpu_info()
    backend, precision = default_path(cpu=cpu)
    tta, why = default_tta(True, TTA_GAIN.get(DEFAULT_MODEL))
    if precision == "fp32":
        speed = "AVX2 on 128-bit units (AMD Zen, Zen+) and no int8 dot products: its fp32 graph is faster than int8 here"
    else:
        speed = ("int8 dot products: int8 runs at full speed" if cpu.int8_dot else "no int8 dot products (VNNI/AMX): int8 "
                 "runs at about half speed, still faster than fp32") + "; 7-bit weights, right on every x86 CPU"
    return (f"CPU {cpu.summary()}\ndefault path: {DEFAULT_MODEL}, {backend} {precision} ({speed}), "
            f"flip TTA {'on' if tta else 'off'} ({why})")


def is_onnx_file(model) -> bool:
    """Whether a model argument names an .onnx file (from `ferkit export`)."""
    return isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx"


def shipped_graph(name: str | None, precision: str) -> Path | None:
    """A bundled model's shipped ONNX graph of `precision` (int8 | fp32, the manifest's file kinds),
    None where it ships none (or a light install lacks it)."""
    files = bundled.MODELS[name].files if name in BUNDLED else {}
    if precision not in ("int8", "fp32") or precision not in files:
        return None
    path = BUNDLED[name].with_name(files[precision]["file"])
    return path if path.exists() else None


def int8_file(name: str) -> Path:
    """Where a bundled model's int8 ONNX graph ships: beside its checkpoint, under the manifest's name
    (written by `ferkit export src/ferkit/weights/NAME.pt --onnx src/ferkit/weights/NAME.int8.onnx --int8`)."""
    return BUNDLED[name].with_name(bundled.MODELS[name].files["int8"]["file"])


class Predictor:
    """Faces in a photo -> emotion records, with the torch or onnxruntime backend.

    precision: torch auto | fp32 | bf16 (auto = bf16 where the device runs it fast); onnx auto |
    fp32 | int8 (auto = fp32, or what an .onnx file was exported as). Neither given: default_path's.
    int8 from a checkpoint is calibrated on `calibration` (uint8 training faces, or a data file;
    default ferkit.data's: $FERKIT_DATA or the shared FER2013), except for a bundled model
    whose int8 graph ships beside it."""

    def __init__(self, model=None, backend: str | None = None, device: str = "cpu", threads: int | None = None,
                 tta: bool | None = None, detector: str = DETECTOR, align: bool = True, precision: str | None = None,
                 calibration=None):
        from .detectors import get_detector

        check_args(("tta", tta, "True, False or None (as the model says)", tta is None or isinstance(tta, bool)),
                    ("align", align, "True or False", isinstance(align, bool)),
                    ("threads", threads, f"None (the runtime's default) or 1..{MAX_THREADS}",
                     threads is None or is_whole(threads) and 1 <= threads <= MAX_THREADS))
        if not re.fullmatch(DEVICE, str(device)):  # checked on every backend: onnxruntime's ignored a misspelt one
            raise FerkitError(f"--device must be {DEVICE_TEXT}; got {device!r}")
        onnx_file = is_onnx_file(model)
        if backend is None and precision is None:
            backend, precision = default_path(model)
        name = bundled_name(model)  # (None where the model is no bundled one's name)
        # a precision alone: onnxruntime for an .onnx file or a bundled model's shipped int8 graph, else torch
        if backend is None:
            backend = "onnx" if onnx_file or precision == "int8" and shipped_graph(name, "int8") else "torch"
        precision = "auto" if precision is None else precision
        if backend not in ("torch", "onnx"):
            raise FerkitError(f"backend {backend!r}: choose torch or onnx")
        try:
            _check_precision(backend, precision, onnx_file)
        except FerkitError:
            if precision == "int8" and not onnx_file:  # (its way, --backend onnx, is refused in turn for a HOG hybrid)
                _no_int8(model)
            raise
        get_detector(detector)  # an unknown name or a missing package fails here, not on the first photo
        self.detector, self.align = detector, align
        self.backend, self.tta, self.session, self.classifier, self.path = backend, tta, None, None, None
        self.mirror = False  # average with the mirrored face outside an ONNX graph (_open_onnx)
        self.size, self.channels = SIZE, 1  # the model's input, read from the model below
        if onnx_file and backend != "onnx":
            raise FerkitError(f"{model}: an ONNX model runs with backend='onnx' (--backend onnx)")
        if backend == "onnx" and device not in ("cpu", "auto"):  # onnxruntime's CPU provider alone (runtime.py)
            log.warning(f"--device {device}: the onnx backend runs on the CPU; for {device}, "
                        + ("run the checkpoint (.pt) the .onnx file was exported from" if onnx_file else "give --backend torch"))
        self.bundled = name  # the bundled model's name (serve's /health and /version say it)
        # a bundled model's shipped graph of this precision (int8, or fp32 for some), made for it: no calibration,
        # no export at load (the fp32 one's mirror gain is taken as its int8 graph's: both under MIN_TTA_GAIN)
        shipped = shipped_graph(name, precision) if backend == "onnx" and not onnx_file else None
        if onnx_file or shipped:
            if calibration is not None:  # (ignored without a word)
                log.warning(f"calibration {str(calibration)[:200]}: not used; {'the shipped' if shipped else 'an .onnx'} graph is "
                            "calibrated already (calibration makes an int8 graph from a checkpoint)")
            self._open_onnx(shipped or model, threads, precision, tta, TTA_GAIN.get(name) if shipped else None)
            if shipped:
                _check_made_from(self.session, shipped, BUNDLED[name], precision)
            return
        if _is_classifier(model):
            self.classifier = model
        else:
            self.path = model_path(model)
            # (for the onnx backend, on the CPU: the graph is exported from it there, whatever --device says)
            self.classifier = _load_checkpoint(self.path, device if backend == "torch" else "cpu",
                                               precision if backend == "torch" else "fp32")
        self.labels, self.precision = self.classifier.labels, self.classifier.precision
        self.size, self.channels = self.classifier.spec.in_size, self.classifier.spec.channels
        if threads:
            import torch

            torch.set_num_threads(threads)
        if backend == "onnx":
            from .onnx_export import onnx_refusal, session_from_classifier
            from .runtime import onnx_precision

            if why := onnx_refusal(self.classifier):  # before int8's calibration faces are read; export's advice led nowhere
                raise FerkitError(f"{self.path or 'this model'} {why}, and the onnx backend runs ONNX graphs; run it on "
                                  "torch: backend='torch' (--backend torch, or leave --backend onnx out"
                                  + (", and --precision int8: torch runs fp32 or bf16)" if precision == "int8" else ")"))
            faces = None
            if precision == "int8":
                faces = calibration if isinstance(calibration, np.ndarray) else _calibration(calibration, self.classifier)
            self.session = session_from_classifier(self.classifier, threads, tta, faces)
            self.precision = onnx_precision(self.session)

    def _open_onnx(self, path, threads, precision, tta, tta_gain=None):
        from .runtime import onnx_input, onnx_labels, onnx_precision, onnx_reading, onnx_session, onnx_training, onnx_tta

        self.session, self.path = onnx_session(path, threads), Path(path)
        try:
            self.labels, self.precision = onnx_labels(self.session), onnx_precision(self.session)
            self.size, self.channels = onnx_input(self.session)
            inside, trained = onnx_tta(self.session)
            # read later by serve (/version) and evaluate (the split), which said a bad one without the file's name
            onnx_training(self.session)
            onnx_reading(self.session)
        except FerkitError as e:  # a graph not from `ferkit export`, or edited: say which file
            raise FerkitError(f"{path}: {e}") from None
        if inside and tta is False:
            raise FerkitError(f"{path} has TTA built in at export; export it again with 'ferkit export CHECKPOINT "
                              "--onnx OUT.onnx --no-tta' to choose at run time")
        # a graph without the mirror inside gets it here, on the same batch (as Classifier.predict_proba)
        self.mirror = not inside and (default_tta(trained, tta_gain)[0] if tta is None else tta)
        self.tta = inside or self.mirror
        if precision != "auto" and precision != self.precision:
            raise FerkitError(f"{path} is an {self.precision} graph, not {precision}; run it with --precision auto, "
                              f"or export the {precision} one with 'ferkit export CHECKPOINT --onnx OUT.onnx"
                              f"{' --int8' if precision == 'int8' else ''}'")

    @property
    def face_shape(self) -> tuple[int, ...]:
        """One face as the model takes it: (48, 48) grey for FER2013's models, (size, size, 3) colour."""
        return (self.size, self.size) if self.channels == 1 else (self.size, self.size, self.channels)

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, *face_shape) -> probabilities (N, C) over self.labels, one forward pass."""
        faces = np.ascontiguousarray(face_batch(faces, self.face_shape, self.path or "this model"))
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.session is not None:
            from .runtime import run_faces

            # axis 2 is the faces' width, grey (N, H, W) or colour (N, H, W, C)
            both = np.concatenate([faces, faces[:, :, ::-1]]) if self.mirror else faces
            try:
                probs = run_faces(self.session, both)
            except FerkitError as e:  # a graph not from `ferkit export`: say which file
                raise FerkitError(f"{self.path or 'the ONNX graph'}: {e}") from None
            return (probs[: len(faces)] + probs[len(faces) :]) / 2 if self.mirror else probs
        import torch

        with torch.inference_mode():
            return self.classifier.predict_proba(faces, batch_size=max(len(faces), 1), tta=self.tta)

    def predict_proba(self, faces: np.ndarray, tta: bool | None = None, batch_size: int = 256) -> np.ndarray:
        """Many faces in batches: the interface metrics.evaluate_split scores (TTA was set when the
        Predictor was made; an .onnx graph has it built in)."""
        check_args(("batch_size", batch_size, "an integer >= 1", is_whole(batch_size) and batch_size >= 1))
        if tta is not None and tta != self.tta:
            raise FerkitError(f"{self.path or 'this model'}: TTA is set when the Predictor is made (tta=...), "
                              "and an .onnx file has it built in at export (ferkit export --tta/--no-tta)")
        # as predict_faces takes them (one face, rows, a list) before they are cut: one flattened face was cut into
        # rows of batch_size pixels ("got an array of shape (256,)"), a scalar or a generator was len()'s TypeError
        faces = face_batch(faces, self.face_shape, self.path or "this model")
        return np.concatenate([self.predict_faces(faces[i : i + batch_size]) for i in range(0, len(faces), batch_size)]
                              or [np.zeros((0, len(self.labels)), np.float32)])

    def predict(self, image, min_face: float | None = None, crops: bool = False, align: bool | None = None) -> list[dict]:
        """Every face in a photo (RGB array, or anything load_image reads) with its emotion; [] if none.
        crops=True: the photo is one face already cropped (its box is the whole photo)."""
        check_args(("min_face", min_face, MIN_FACE, min_face_fits(min_face)),
                    ("crops", crops, "True or False", isinstance(crops, bool)),
                    ("align", align, "True, False or None (as the Predictor was made)", align is None or isinstance(align, bool)))
        # A uint8 RGB (or grey) array in memory is used as it is, whatever its size (serve's uploads, decoded under
        # their own limit); any other goes through load_image: its ImageError for an empty array, or one over its
        # pixel limit (a np.broadcast_to view of 10**10 pixels holds none of them until the detector copies it)
        rgb = as_photo(image)
        if crops:
            h, w = rgb.shape[:2]
            return [record((0, 0, w, h), self.predict_faces(whole_face(rgb, self.size, self.channels)[None])[0], self.labels)]
        faces = find_faces(rgb, min_face, detector=self.detector, align=self.align if align is None else align,
                           size=self.size, channels=self.channels)
        probs = self.predict_faces(np.stack([f.face for f in faces]) if faces else np.zeros((0, *self.face_shape), np.uint8))
        return [record(f.box, p, self.labels) for f, p in zip(faces, probs)]


def _check_precision(backend: str, precision: str, onnx_file: bool = False) -> None:
    """A FerkitError for a precision the backend has not, with the way to the backend that has it.
    The way fits every command that can get here: an .onnx file runs on onnx only (predict, evaluate,
    serve), so its way to torch is the checkpoint it came from; otherwise the backend was given
    (--backend: predict, demo, serve), so the way is the other --backend."""
    from .precisions import ONNX, TORCH

    ok = TORCH if backend == "torch" else ONNX
    if precision not in ok:
        other = "onnx" if precision in ONNX else "torch" if precision in TORCH else None
        how = ("run the checkpoint (.pt) the .onnx file was exported from instead" if onnx_file and other == "torch"
               else f"--backend {other}")
        hint = f" ({precision} runs on the {other} backend: {how})" if other else ""
        raise FerkitError(f"precision {precision!r} with the {backend} backend: choose {', '.join(ok)}{hint}")


def _no_int8(model) -> None:
    """A FerkitError for int8 asked of a checkpoint no ONNX graph can hold (a HOG hybrid), with the way that works:
    _check_precision's way, --backend onnx, led to a second refusal. Else nothing, as for a model that cannot be
    read (which is told so where it is read)."""
    try:
        path = None if _is_classifier(model) else model_path(model)
        clf = model if path is None else _load_checkpoint(path, "cpu", "fp32")
    except FerkitError:
        return
    from .onnx_export import onnx_refusal

    if why := onnx_refusal(clf):
        raise FerkitError(f"{path or 'this model'} {why}, and int8 models are ONNX graphs; run it on torch in fp32 or bf16: "
                          "precision='fp32' (--precision fp32 or bf16, or leave --precision out)")


def _calibration(data, clf) -> np.ndarray:
    """int8 calibration faces for the Classifier clf from a data file (None: the data its run trained
    on where they still exist, as `ferkit export --int8` reads, else ferkit.data's default), or one clear error."""
    from .onnx_export import calibration_faces, calibration_reading
    from .runs import skipped_bad_rows, trained_on

    size, channels = clf.spec.in_size, clf.spec.channels
    what = "FER2013 training faces" if (size, channels) == (SIZE, 1) else "its own training images (an image folder)"
    config = clf.meta.get("config")
    own = trained_on(config)
    given, data = data, data or own
    reading = calibration_reading(clf.spec, config, given)  # other images: all calibrate, as export's --data
    try:
        # data that cannot hold the split the run drew: predict and serve have no flag for it (the export below is the way)
        changed = "the data have changed since it trained." if own else "they are not the data it trained on."
        return calibration_faces(data, skip_bad_rows=skipped_bad_rows(config, given), split_fix=changed, **reading)
    except FerkitError as e:
        from .data import DATA_ENV, BadRowError

        # e says "pass --data", which predict and serve do not have: there, the variable is the way
        why = (f"none found; set {DATA_ENV}=PATH to them." if data is None and not os.environ.get(DATA_ENV) else str(e))
        export = "--int8 --data FILE"
        if isinstance(e, BadRowError):  # its way, --skip-bad-rows, is a flag predict and serve lack, and export has
            why = e.unskipped
            export = f"--int8{' --data FILE' if given else ''} --skip-bad-rows"
        raise FerkitError(f"int8 needs {what} to calibrate on: {why} Or export the int8 graph once "
                          f"with 'ferkit export CHECKPOINT --onnx OUT.onnx {export}' and run OUT.onnx (--model OUT.onnx)") from None


def _check_made_from(session, path: Path, checkpoint: Path, precision: str) -> None:
    """Refuse a shipped graph (int8 or fp32) exported from other weights than the bundled checkpoint's."""
    from .files import sha256_of

    if session.get_modelmeta().custom_metadata_map.get("checkpoint_sha256") != sha256_of(checkpoint):
        int8 = " --int8" if precision == "int8" else ""
        raise FerkitError(f"{path} was exported from other weights than {checkpoint}; re-export it with "
                          f"'ferkit export {shell_word(checkpoint)} --onnx {shell_word(path)}{int8} --no-tta'")
