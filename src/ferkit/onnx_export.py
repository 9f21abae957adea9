"""ONNX export of a Classifier: a self-contained graph from uint8 faces to probabilities.

    faces uint8 (N, H, W) grey or (N, H, W, C) colour, the model's input -> [cast, - mean image]
    -> CNN (its first conv's weights / 128) -> softmax [-> average with the mirrored face] -> probs float32 (N, C), C the model's emotions

The input is the model's own (its spec's in_size and channels): (N, 48, 48) for FER2013's grey
faces, (N, H, W, 3) RGB for a colour model; its fixed sizes and the metadata keys in_size and
channels tell runtime.onnx_input, so the Predictor crops faces to fit.

Preprocessing, softmax and test-time augmentation live inside the graph, so an .onnx file needs
nothing but onnxruntime and gives the same numbers as `Classifier.predict_proba`. The batch axis
is dynamic. HOG hybrids are refused: their HOG features come from scikit-image, outside the graph.

int8 (`precision="int8"`): onnxruntime's static quantization, calibrated on a few hundred
training faces (of the model's input shape) fed to the graph's uint8 input. Convolutions, max-pools and matmuls run in int8
(QDQ format, per-channel weight scales); the preprocessing, softmax and the TTA average stay
fp32, and so does the stem (fp32_stem) where the first conv's ReLU goes straight into a max-pool
(`tiny`, `lite`). With one input channel that conv misses onnxruntime's direct int8 conv kernels
(they take input channels in fours): its im2col (9 one-byte taps a pixel), small GEMM and
requantisation cost `tiny` a fifth of its instructions a face on AVX2. In fp32, conv, ReLU and
pool run as direct kernels and 4x fewer values are converted to int8 (benchmarks/bench_avx2.py,
docs/speed.md), provided the session keeps the pool fp32 (runtime.DISABLED_OPTIMIZERS).

Weights are 7-bit (reduce_range: -64..64). On x86 CPUs without VNNI (AVX2 only) onnxruntime's
uint8 x int8 kernels add pairs of products in 16 bits (vpmaddubsw), which saturates when
255 x (|w1| + |w2|) > 32767: full-range weights cost the default model points of accuracy there
(docs/speed.md). 7-bit weights can never saturate (255 x 128 = 32640) and cost nothing
measurable (bench_paths.py); uint8 weights avoid it too but ran at fp32's speed on AVX512-VNNI.
int8_problems() checks a graph for weights that could saturate.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import Classifier
from .errors import FerkitError, OutputError
from .files import atomic_write, temp_folder, write_fix
from .preprocess import PIXEL_SCALE, probabilities, standardize
from .runtime import INPUT, OUTPUT, onnx_session

log = logging.getLogger(__name__)

CALIBRATION_FACES = 512  # training faces for int8 calibration: enough for stable ranges, a few seconds
FEW_CALIBRATION_FACES = 64  # under this, the ranges may miss other faces' activations: said, not refused
CHECK_FACES = 16  # faces an export is checked on against the checkpoint it came from
# What is quantized: the ops onnxruntime runs fast in int8. Everything else (Cast, Sub, Div, Concat,
# Slice, Softmax, ReduceMean, ...) stays fp32 between Dequantize/Quantize nodes.
INT8_OPS = ["Conv", "MatMul", "Gemm", "MaxPool", "Relu", "Flatten"]
SAFE_INT8 = 64  # largest int8 weight magnitude that cannot saturate on AVX2 (see the module docstring)


def onnx_refusal(clf: Classifier) -> str | None:
    """Why clf cannot become an ONNX graph ("is ...", said of the model's name), else None: the one answer for
    export, the onnx backend and int8 (evaluate, predict, serve), asked before anything is read for one (int8's
    calibration faces). Each caller adds the way on from its own flags: export's led predict's --backend onnx nowhere."""
    if clf.model.hog_dim:
        return ("is a HOG hybrid model, whose HOG features scikit-image computes outside the network: no ONNX graph "
                "can hold it")
    return None


def check_exportable(clf: Classifier, name: str | Path | None = None) -> None:
    """export's refusal of a model no ONNX graph can hold (onnx_refusal), naming its checkpoint where given."""
    if why := onnx_refusal(clf):
        raise FerkitError(f"{name or 'the model'} {why}; run it on torch as it is (fp32 or bf16), "
                          "or export a CNN-only model such as vgg, shallow or deep")


class FacesToProbs(nn.Module):
    """uint8 faces (N, *clf.face_shape) -> probabilities (N, C), exactly as Classifier.predict_proba."""

    def __init__(self, clf: Classifier, tta: bool | None = None):
        super().__init__()
        check_exportable(clf)
        # The input's 1/PIXEL_SCALE goes into the first layer's weights (a conv, or a linear), which see nothing else:
        # conv(w, x / 128) = conv(w / 128, x), exactly (a power of two). The Div over every pixel
        # it saves cost onnxruntime's AVX2 path ~0.35 M instructions a face, 8% of a small net's
        # (benchmarks/bench_avx2.py); int8 graphs keep the same integers, their input scale x128.
        self.model = copy.deepcopy(clf.model).cpu()
        self.model.get_submodule(self.model.first_layer).weight.data /= PIXEL_SCALE
        self.tta = clf.tta if tta is None else bool(tta)
        self.register_buffer("mean", torch.from_numpy(np.asarray(clf.mean, np.float32)))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = standardize(faces, self.mean, scale=1)  # (N, C, H, W), as preprocess.to_tensor but x PIXEL_SCALE
        return probabilities(self.model, x, tta=self.tta, one_batch=True)


def export_onnx(clf: Classifier, out: str | Path | io.BytesIO, tta: bool | None = None, opset: int = 17,
                calibration: np.ndarray | None = None, meta: dict | None = None) -> None:
    """Write the ONNX graph of `clf` to a path (atomically) or a binary file object, with the model's
    emotion names in its metadata (key "labels", a JSON list), its precision ("fp32" or "int8"), what
    its training says of it ("training", JSON: Classifier.training), its input ("in_size", "channels"),
    how its training read its data ("reading", JSON: its config's data.RECORDED fields, where it has a
    config) and `meta`. With `calibration` (uint8 training faces (N, *clf.face_shape)) the graph is quantized to int8."""
    import json

    import onnx

    from .data import RECORDED

    wrapper = FacesToProbs(clf, tta).eval()
    dummy = torch.zeros(2, *clf.face_shape, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript-based exporter needs no extra package (onnxscript)
        torch.onnx.export(wrapper, (dummy,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    graph = onnx.load_from_string(buf.getvalue())
    if calibration is not None:
        calibration = np.asarray(calibration)
        if calibration.shape[1:] != clf.face_shape:
            raise FerkitError(f"int8 calibration faces of shape {calibration.shape[1:]} for a model that takes "
                              f"{clf.face_shape}; give training faces of the model's own size and channels")
        graph = quantize_int8(graph, calibration)
    del graph.metadata_props[:]
    # tta: the mirror average is inside the graph; trained_tta: the model was trained for it (a graph
    # without it in gets it from the Predictor, so one file serves both choices: predict.default_path)
    props = {"labels": json.dumps(list(clf.labels)), "precision": "fp32" if calibration is None else "int8",
             "tta": str(int(wrapper.tta)), "trained_tta": str(int(bool(clf.tta))), "training": json.dumps(clf.training),
             "in_size": str(clf.spec.in_size), "channels": str(clf.spec.channels), **(meta or {})}
    config = clf.meta.get("config")
    if isinstance(config, dict):  # so that evaluating the graph on its own images draws its training's split, not seed 0's
        props["reading"] = json.dumps({k: config[k] for k in RECORDED if k in config})
    for k, v in props.items():
        graph.metadata_props.add(key=k, value=str(v))
    data = graph.SerializeToString()
    if isinstance(out, (str, Path)):
        atomic_write(out, data)
    else:
        out.write(data)


def quantize_int8(graph, faces: np.ndarray, batch: int = 64, fmt: str = "qdq"):
    """The int8 version of an fp32 ModelProto from export_onnx: onnxruntime's static quantization
    (per-channel int8 weights, uint8 activations with MinMax ranges) calibrated on uint8 faces.
    fmt "qdq" (Quantize/DequantizeLinear pairs, which onnxruntime fuses into int8 kernels when it
    loads the graph) or "qoperator" (the int8 operators written out): measured alike on AVX512-VNNI
    (benchmarks/bench_paths.py --variants); QDQ is onnxruntime's recommended, portable form."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    faces = np.ascontiguousarray(np.asarray(faces, np.uint8))
    if faces.ndim not in (3, 4) or len(faces) == 0:
        raise FerkitError(f"int8 calibration needs uint8 faces (N, H, W) or (N, H, W, C) with N >= 1; got shape {faces.shape}")

    class Faces(CalibrationDataReader):  # feeds the graph's own uint8 input: the preprocessing runs as in use
        def __init__(self):
            self.batches = iter([faces[i : i + batch] for i in range(0, len(faces), batch)])

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {INPUT: b}

    try:
        with tempfile.TemporaryDirectory() as tmp, logging_quiet():
            _check_room(Path(tmp), graph.ByteSize())
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save(graph, src)
            quantize_static(src, dst, Faces(), quant_format={"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[fmt],
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                            op_types_to_quantize=INT8_OPS, nodes_to_exclude=fp32_stem(graph))
            out = onnx.load(dst)
    except OSError as e:  # (it was said of the --onnx file, which is written later and elsewhere)
        where = temp_folder() or "the temporary folder"  # (None: no folder could be used at all, TMPDIR's nor /tmp)
        raise OutputError(f"{where}: cannot write the int8 quantization's temporary files there "
                          f"({e.strerror or e}); {write_fix(e)} there, or set TMPDIR to another folder, and run again") from None
    problems = int8_problems(out)
    if problems:  # onnxruntime changed what reduce_range means: refuse rather than ship a graph wrong on AVX2
        raise FerkitError("the int8 graph could saturate on CPUs without VNNI: " + "; ".join(problems[:3]))
    return out


# The room int8 quantization's temporary files take, in copies of the graph (ours and onnxruntime's shape-inferred
# one; measured: a 0.31 MB graph needed 0.60-0.64 MB free, a 1.18 MB one 2.30-2.45 MB)
TEMP_COPIES = 2.2


def _check_room(folder: Path, graph_bytes: int) -> None:
    """An OutputError, before quantizing, where the temporary folder has no room for TEMP_COPIES of the graph:
    onnxruntime's shape inference wrote a cut-off copy there without a word and read it back as a protobuf
    DecodeError (a traceback); a failed write of ours was said of the --onnx file, whose folder had room."""
    import shutil

    need, free = int(TEMP_COPIES * graph_bytes), shutil.disk_usage(folder).free
    if free < need:
        raise OutputError(f"{folder.parent}: {free / 1e6:.1f} MB free for the int8 quantization's temporary files, which "
                          f"need about {need / 1e6:.1f} MB; free some space there, or set TMPDIR to a folder with room, "
                          "and run again")


def fp32_stem(graph) -> list[str]:
    """The names of the nodes an int8 export keeps in fp32 (module docstring): the graph's first Conv,
    the Relu that alone reads it and the MaxPool that alone reads that Relu; [] where the first conv
    is not followed so (vgg-wide, fast): there the conv's whole full-size output would be converted
    to int8, the work the stem exists to shrink."""
    readers: dict[str, list] = {}
    for node in graph.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    node = next((n for n in graph.graph.node if n.op_type == "Conv"), None)  # nodes are in topological order
    stem = [node] if node is not None else []
    for op in ("Relu", "MaxPool"):
        after = readers.get(stem[-1].output[0], []) if stem else []
        if len(after) != 1 or after[0].op_type != op:
            break
        stem.append(after[0])
    return [n.name for n in stem] if len(stem) == 3 else []


def int8_problems(graph) -> list[str]:
    """What in an int8 ModelProto could saturate onnxruntime's uint8 x int8 kernels on a CPU without
    VNNI: int8 weights beyond +-SAFE_INT8 (7 bits), one line each; [] for a safe graph (or an fp32 one)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in graph.graph.initializer}
    problems = []
    for node in graph.graph.node:
        w = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if w is None or w.data_type != TensorProto.INT8:
            continue
        top = int(np.abs(numpy_helper.to_array(w).astype(np.int16)).max(initial=0))
        if top > SAFE_INT8:
            problems.append(f"{w.name}: int8 weights up to {top}, more than {SAFE_INT8}")
    return problems


@contextlib.contextmanager
def logging_quiet():
    """Silence onnxruntime.quantization's advice, which it logs on the root logger as WARNING."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_reading(spec, config: dict | None, data: str | Path | None) -> dict:
    """How int8 calibration reads `data` for a model of `spec` trained with `config` (export's --int8, predict's and
    serve's int8): the run's own data (None, or their path given) as it read them, the split it drew and all; other data
    with no split drawn, all their images calibrating (a few a class could not be split)."""
    from .data import NO_SPLIT, reading_for
    from .files import same_path
    from .runs import trained_on

    reading = reading_for(spec, config)
    return {**reading, **NO_SPLIT} if data and not same_path(data, trained_on(config)) else reading


def calibration_faces(data: str | Path | None = None, n: int = CALIBRATION_FACES, seed: int = 0, **reading) -> np.ndarray:
    """n training faces drawn at random for int8 calibration, read as the model takes them (data.load_fer
    with `reading`, data.reading_for's: its size and channels, and the split its training drew; FER2013's
    file, or the model's own image folder or list; --data, else $FERKIT_DATA or the shared FER2013):
    (n, size, size) grey, or (n, size, size, 3) for a colour model."""
    from .data import load_fer

    channels = reading.get("channels", 1)
    fer = load_fer(data, **reading)
    if not fer.has("train"):
        raise FerkitError(f"{fer.source}: no training faces to calibrate int8 with; give the model's training data (--data)")
    images, _ = fer.split("train")
    faces = images[np.sort(np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False))]
    if len(faces) < min(n, FEW_CALIBRATION_FACES):
        log.warning("int8 ranges from %d training face(s) of %s may clip other faces' activations (accuracy lost); "
                    "give more of the model's training images with --data (%d are drawn where there are as many)",
                    len(faces), fer.source, n)
    if channels != 1 and (faces == faces[..., :1]).all():
        log.warning("calibrating a colour model's int8 ranges on grey faces of %s (grey in all 3 channels); give its "
                    "own colour training images with --data FOLDER for ranges of its colours", fer.source)
    return faces


def export_checked(clf: Classifier, out: str | Path, tta: bool | None = None, n: int = CHECK_FACES,
                   calibration: np.ndarray | None = None, meta: dict | None = None) -> float:
    """Export to out (atomically) and return the largest |onnxruntime - torch| probability difference
    on n faces (random ones; for int8 the first n calibration faces, real faces): the check that the
    file computes what the checkpoint does (exactly for fp32, approximately for int8)."""
    export_onnx(clf, out, tta, calibration=calibration, meta=meta)
    faces = (np.random.default_rng(0).integers(0, 256, (n, *clf.face_shape), dtype=np.uint8) if calibration is None
             else np.asarray(calibration[:n], np.uint8))
    onnx_probs = onnx_session(out).run(None, {INPUT: faces})[0]
    return float(np.abs(onnx_probs - clf.predict_proba(faces, tta=tta)).max())


def session_from_classifier(clf: Classifier, threads: int | None = None, tta: bool | None = None,
                            calibration: np.ndarray | None = None):
    """Export `clf` in memory (int8 when given calibration faces) and open it with onnxruntime."""
    buf = io.BytesIO()
    export_onnx(clf, buf, tta, calibration=calibration)
    return onnx_session(buf.getvalue(), threads)
