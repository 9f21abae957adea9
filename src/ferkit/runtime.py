"""ONNX graphs on onnxruntime: opening one and reading what `ferkit export` wrote in its metadata.

The inference core's engine. No torch here (nor in anything this imports): a light install
(`pip install ferkit`, no extras) runs bundled models and exported .onnx files through this
module alone; onnx_export.py writes the graphs and needs the training extra.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .errors import FerkitError, first_line, is_out_of_memory, out_of_memory
from .files import check_regular_file

# the graph's input, uint8 faces (N, 48, 48) grey or (N, H, W, 3) colour (the model's in_size and
# channels), and its output, probabilities (N, C)
INPUT, OUTPUT = "faces", "probs"
FACE_SIZE = 48  # graphs whose input shape says nothing (no fixed sizes, no metadata): FER2013's 48x48 grey
# An int8 graph's fp32 stem ends in a max-pool (onnx_export.fp32_stem). QDQ propagation would move
# the Quantize after it above it: a uint8 pool on 4x the values, converted to the other layout
# first, the work the stem exists to save (docs/speed.md). ferkit's graphs put every Quantize where
# it belongs, so nothing else moves.
DISABLED_OPTIMIZERS = ["QDQPropagationTransformer"]
# A graph's weights may lie in files beside it ("external data"), read from where their location says:
# onnxruntime before 1.24.1 read any file there (1.20.1 and 1.23.2 took ../../etc/passwd's bytes as weights; a
# FIFO or /dev/zero, once), 1.24.1 refuses a location outside the graph's folder. It has no wheel for Python
# 3.10, which ferkit runs on: the older ones stay allowed (pyproject.toml) and refuse graphs with external data.
SAFE_EXTERNAL_DATA = (1, 24, 1)
EXTERNAL_DATA = b"\n\x08location\x12"  # an external_data entry of a TensorProto: key (field 1) "location", its value (2)
# what a run out of memory advises (--batch-size: evaluate's, distill's; predict and serve give a photo's faces)
MEMORY_FIX = "give it fewer faces at once (a smaller --batch-size, where the command has one) or free memory (close other programs)"
ONE_FACE_MEMORY_FIX = "free memory (close other programs); a graph written by 'ferkit export' takes little for one face"


def onnx_session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime session (CPU, full graph optimisation) from an .onnx path or its bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads spin between the graph's operators (one face: 0.41 ms instead of 0.53 with the `fast`
    # preset) but stop the moment a run returns: left spinning, they took the CPU from the face
    # detection of the next photo (astronaut photo to emotions 48 ms instead of 27).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    if threads:
        opts.intra_op_num_threads = threads
    # onnxruntime also logged a graph it could not open, in red with a time stamp, before the error below said it
    opts.log_severity_level = 4  # (fatal only)
    src = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        if not Path(model).exists():
            raise FerkitError(f"{model}: no such ONNX file; write one with 'ferkit export CHECKPOINT --onnx OUT.onnx'")
        check_regular_file(Path(model), "an .onnx file from 'ferkit export'")
        _check_external_data(Path(model), ort.__version__)
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS)
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        if is_out_of_memory(e):  # (the file is not at fault)
            raise out_of_memory(f"opening {model if not isinstance(model, bytes) else 'the ONNX graph'}", ort_message(e),
                                "free memory (close other programs) or give a smaller model") from None
        raise FerkitError(f"{model if not isinstance(model, bytes) else 'the ONNX graph'}: not a usable ONNX model "
                          f"({ort_message(e)}); give an .onnx file written by 'ferkit export'") from None


def _check_external_data(path: Path, version: str) -> None:
    """A FerkitError for a graph with external data where onnxruntime `version` reads them from any folder."""
    if tuple(int(n) for n in re.findall(r"\d+", version)[:3]) >= SAFE_EXTERNAL_DATA:
        return
    try:
        found = EXTERNAL_DATA in path.read_bytes()  # (onnxruntime reads the whole graph next)
    except OSError:  # (onnxruntime's own error says it)
        return
    if found:
        raise FerkitError(f"{path}: its weights are in external data files, which onnxruntime {version} reads from "
                          "wherever the graph says (../../etc/passwd); install onnxruntime 1.24.1 or later (Python 3.11+), "
                          "which keeps them to the graph's folder, or give a graph in one file, as 'ferkit export' writes")


def ort_message(e: Exception) -> str:
    """onnxruntime's error as one line for a FerkitError: its messages span lines and carry its framing
    ("[ONNXRuntimeError] : 1 : FAIL :"), the file already named ("Load model from X failed:") and the C++
    source file and function that raised (an opset it does not know: 600 characters, the reason last)."""
    text = " ".join(str(e).split())
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : |Load model from .*? failed: ?", "", text)
    text = re.sub(r"\S+\.(?:cc|h):\d+ (?:[\w:<>,&* ]*::\w+\([^()]*\) )?", "", text)
    return first_line(text, 300)


def _meta(session) -> dict:
    return session.get_modelmeta().custom_metadata_map


def _meta_value(session, key: str, parse, what: str, default):
    """A metadata value of an ONNX model parsed (`parse` raises ValueError/TypeError on a bad one: a
    file edited by hand; json's RecursionError on one nested past Python's stack), `default` where the key is
    missing; else one FerkitError naming it."""
    meta = _meta(session)
    if key not in meta:
        return default
    try:
        return parse(meta[key])
    except (ValueError, TypeError, RecursionError):
        raise FerkitError(f"the ONNX model's metadata {key!r} must be {what}; got {meta[key][:60]!r}; re-export the "
                          "model with 'ferkit export'") from None


def _names(text: str) -> tuple[str, ...]:
    names = json.loads(text)  # (what the names may hold, a terminal's escape codes not, is check_names' to say)
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise ValueError(text)
    return tuple(names)


def onnx_labels(session) -> tuple[str, ...]:
    """The emotion names of an ONNX model from `ferkit export` (FER2013's 7 for files without them),
    as many as its outputs, which must be probabilities (both seen on one blank face)."""
    from .labels import FER2013, check_names

    labels = _meta_value(session, "labels", _names, "a JSON list of emotion names", FER2013)
    # results are keyed by name: two of one meaning ("angry" twice) lost one's probability in
    # predict's JSON and serve's answers, while the top label kept the other's score
    why = check_names(labels)
    if why:
        raise FerkitError(f"the ONNX model's metadata 'labels' cannot name its outputs: {why}; re-export the model "
                          "with 'ferkit export'")
    outputs = session.get_outputs()
    # ferkit's graphs have one output, probabilities (N, C); another graph's first output (a
    # detector's boxes, a (N,) score) was indexed as if it were that, an IndexError mid-prediction
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].type != "tensor(float)":
        found = ", ".join(f"{o.name} {o.type} of shape {list(o.shape)}" for o in outputs)
        raise FerkitError(f"the ONNX model's outputs are {found}, not one float (N, C) of probabilities; give an .onnx "
                          "file written by 'ferkit export'")
    (size, channels), inp = onnx_input(session), session.get_inputs()[0]
    blank = np.zeros((1, size, size) + ((channels,) if len(inp.shape) == 4 else ()), np.uint8)
    n = run_faces(session, blank, "a blank face").shape[-1]
    if n != len(labels):
        raise FerkitError(f"the ONNX model has {n} outputs but names {len(labels)} emotions; re-export it with 'ferkit export'")
    return labels


def run_faces(session, faces: np.ndarray, what: str | None = None) -> np.ndarray:
    """The probabilities (N, C) an ONNX model gives uint8 faces, or one FerkitError, which the caller prefixes
    with the file's name, where onnxruntime fails on them or what they give is not probabilities. `what`: the
    faces in the message (default: "N faces")."""
    what = what or f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
    try:
        probs = session.run(None, {INPUT: faces})[0]
    except Exception as e:  # onnxruntime's own types: a graph that reshapes to sizes of its own, allocates 40 GB...
        if is_out_of_memory(e):  # a huge batch, a machine short of memory: a new graph would not help
            raise out_of_memory(f"running the ONNX model on {what}", ort_message(e),
                                MEMORY_FIX if len(faces) > 1 else ONE_FACE_MEMORY_FIX) from None
        raise FerkitError(f"the ONNX model fails on {what} ({ort_message(e)}); give an .onnx file written by "
                          "'ferkit export'") from None
    if probs.ndim != 2 or len(probs) != len(faces):  # (records are zipped with the faces: a second face had none)
        raise FerkitError(f"the ONNX model's output for {what} is of shape {list(probs.shape)}, not one row of "
                          "probabilities a face; give an .onnx file written by 'ferkit export'")
    # Its outputs are shown as probabilities and a teacher takes their log: a graph that ends in
    # logits, not a softmax, showed "angry -50.34" and taught a student nothing, unsaid; one that gives
    # NaN for some faces (bright ones) showed "angry nan" and was scored as if it had answered.
    # (checked on every prediction: two reductions first, NaN failing both comparisons; the rows only to name one)
    if len(probs) and not (probs.min() >= 0 and np.abs(probs.sum(axis=-1) - 1).max() < 1e-3):
        good = np.isfinite(probs).all(axis=-1) & (probs >= 0).all(axis=-1) & (np.abs(probs.sum(axis=-1) - 1) < 1e-3)
        i = int(np.argmin(good))  # the first face that is not
        row, which = probs[i], f"face {i + 1} of {len(probs)}: " if len(probs) > 1 else ""
        why = "its graph does not end in a softmax" if np.isfinite(row).all() else "NaN or infinite values"
        raise FerkitError(f"the ONNX model's outputs for {what} are not probabilities ({which}from {row.min():.3g} to "
                          f"{row.max():.3g}, summing to {row.sum():.3g}): {why}; give an .onnx file written by "
                          "'ferkit export'")
    return probs


def onnx_input(session) -> tuple[int, int]:
    """(size, channels) of the faces an ONNX model takes: its input (N, H, W) is grey, channels 1;
    (N, H, W, C) colour. The fixed sizes of the input shape rule; where it has none, the in_size and
    channels keys `ferkit export` writes; FER2013's 48x48 grey where neither says."""
    from .config import MAX_IN_SIZE, MIN_IN_SIZE

    inputs = session.get_inputs()
    inp = inputs[0]
    shape = list(inp.shape)
    # the Predictor and a teacher feed one array by the name ferkit's graphs give it (INPUT): a graph
    # with another name or more inputs was an onnxruntime traceback at the first face
    if len(inputs) != 1 or inp.name != INPUT or len(shape) not in (3, 4) or inp.type != "tensor(uint8)":
        found = ", ".join(f"{i.name} {i.type} of shape {list(i.shape)}" for i in inputs)
        raise FerkitError(f"the ONNX model's inputs are {found}, not one {INPUT!r} of uint8 faces (N, H, W) or (N, H, W, C); "
                          "give an .onnx file written by 'ferkit export'")
    if isinstance(shape[0], int):  # ferkit feeds a photo's faces, the mirrored ones too, batches of 256: any number
        raise FerkitError(f"the ONNX model's input {INPUT!r} of shape {shape} takes {shape[0]} face(s) at a time, not any "
                          "number (a dynamic batch axis); give an .onnx file written by 'ferkit export'")
    fixed = [d for d in shape[1:3] if isinstance(d, int)]
    size = fixed[0] if fixed else _meta_value(session, "in_size", int, "an integer", FACE_SIZE)
    channels = 1 if len(shape) == 3 else shape[3] if isinstance(shape[3], int) else _meta_value(session, "channels", int, "an integer", 3)
    # faces are cropped square, of ferkit's sizes, grey as (N, H, W) and colour as (N, H, W, 3): any
    # other input was a traceback at the first face (or a division by zero, an allocation of 40 GB)
    if (len(set(fixed)) > 1 or not MIN_IN_SIZE <= size <= MAX_IN_SIZE
            or len(shape) == 4 and channels != 3):
        raise FerkitError(f"the ONNX model takes faces of shape {shape} (in_size {size}, channels {channels}), not square "
                          f"faces {MIN_IN_SIZE}-{MAX_IN_SIZE} pixels wide, grey (N, H, W) or colour (N, H, W, 3); give an "
                          ".onnx file written by 'ferkit export'")
    return size, channels


def onnx_training(session) -> dict:
    """Classifier.training of the checkpoint an ONNX model was exported from ({} for older files)."""
    return _meta_value(session, "training", _mapping, "a JSON object", {})


def onnx_reading(session) -> dict:
    """How the training of an ONNX model from `ferkit export` read its data (its config's label_names,
    split_seed, val_fraction and test_fraction: data.recorded_reading's config); {} for files without
    them (older exports, the bundled graphs), which read data with the defaults."""
    return _meta_value(session, "reading", _reading, "a JSON object of label_names (text or null), split_seed "
                       "(an integer), val_fraction and test_fraction (numbers)", {})


def _reading(text: str) -> dict:
    from .runs import misread_fields  # the types a run's config.json must give them

    d = _mapping(text)
    if misread_fields(d):
        raise ValueError(text)
    return d


def _mapping(text: str) -> dict:
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(text)
    return d


def _one_of(*values: str):
    """A _meta_value parser taking one of values as it is (tta=yes was read as no, precision=int4 shown as such)."""

    def parse(text: str) -> str:
        if text not in values:
            raise ValueError(text)
        return text

    return parse


def onnx_tta(session) -> tuple[bool, bool]:
    """(the mirror average is inside the graph, the model was trained for it) of an ONNX model from
    `ferkit export`; files from before trained_tta was recorded: trained as they were exported."""
    inside = _meta_value(session, "tta", _one_of("0", "1"), "0 or 1", "0") == "1"
    return inside, _meta_value(session, "trained_tta", _one_of("0", "1"), "0 or 1", "1" if inside else "0") == "1"


def onnx_precision(session) -> str:
    """'int8' or 'fp32': how an ONNX model from `ferkit export` computes (files without the key are fp32)."""
    return _meta_value(session, "precision", _one_of("fp32", "int8"), "fp32 or int8", "fp32")
