"""Checkpoints: saved atomically, loaded safely (weights_only=True) and checked, wrapped as a Classifier.

A checkpoint is a dict of plain data and tensors:
    {epoch, config, spec, labels, state_dict, optimizer, scheduler, best_acc, mean, history, iter_loss, rng, rng_states[, ema]}
best.pt has empty optimizer/scheduler states (it is for inference); last.pt keeps them for --resume,
and with --ema the weight average's state (best.pt's state_dict is then the average itself).
best_acc is best.pt's validation accuracy: the run's best (of the epochs whose weights remain, where a
resume found best.pt deleted or damaged); what a checkpoint's own weights scored is `weights_acc`, which a slim copy
(`ferkit export --pt`) records as val_acc.
`read_checkpoint` checks what it loads (the zip checksums torch.save writes but torch.load does not
verify, keys, the spec, weight shapes against the model the spec builds, finite weights and mean
image), so a damaged file is refused with one message naming it.
`Classifier` bundles what inference needs (model, mean image, HOG spec) so evaluation,
prediction and visualisation preprocess faces the same way training did.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ModelSpec
from .errors import CheckpointError, ConfigError, FerkitError, ResumeError, first_line, shell_word
from .faces import face_batch
from .files import atomic_write, check_regular_file
from .labels import FER2013, check_names, labels_of
from .model import FerNet, create_model
from .precisions import DEVICE_TEXT
from .preprocess import prepare, probabilities, resolve_precision, to_tensor
from .runs import (
    BEST,
    HISTORY_FIELDS,
    LAST,
    Run,
    check_history,
    check_iterations,
    folder_checkpoint,
    is_fraction,
    is_number,
    is_record,
    is_whole,
    misread_fields,
    read_run,
    run_names,
)

RESUME_KEYS = ("epoch", "config", "optimizer", "scheduler", "best_acc", "history", "iter_loss", "rng")  # what last.pt adds


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write atomically: a kill mid-write never leaves a broken checkpoint. torch.save writes into
    memory first: its zip writer turns a failed write (a full disk) into a RuntimeError, while
    atomic_write's own write raises the OSError that callers report as one line."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write(path, buf.getbuffer())


def inference_copy(ckpt: dict, half: bool = False) -> dict:
    """What prediction needs of a checkpoint, for sharing: no optimizer, schedule, random state or weight average;
    with half=True the weights in float16 (half the size; load_checkpoint restores float32). It records what its
    weights scored (val_acc): without the optimizer and weight average, a copy of last.pt looks like one of best.pt."""
    keep = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "iter_loss", "rng", "rng_states", "ema")}
    keep["val_acc"] = weights_acc(ckpt)
    if half:
        keep["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    return keep


def weights_acc(ckpt: dict) -> float | None:
    """The validation accuracy of the weights a checkpoint holds, or None where it cannot be known (no validation
    split; last.pt's weights with --ema, which were not the ones validated). best_acc is the run's best, and a
    last.pt holds its last epoch's weights, which may have scored less."""
    if "val_acc" in ckpt:  # a slim copy's (inference_copy): what tells below is not in it
        return ckpt["val_acc"]
    if ckpt.get("optimizer") == {}:  # best.pt: its weights are the ones that scored best_acc (with --ema, the average)
        return _best_acc(ckpt)
    if (ckpt.get("config") or {}).get("ema"):  # --ema validated the average: last.pt's own weights were never scored
        return None  # (and an older ferkit's slim copy may hold either)
    return validated_acc(ckpt)


def validated_acc(ckpt: dict) -> float | None:
    """What the weights validated in the checkpoint's epoch scored (with --ema the average, which a last.pt keeps
    beside its own weights), or None (no validation, no such history row)."""
    best, acc = _best_acc(ckpt), _epoch_acc(ckpt)
    return best if best is not None and acc == round(best, 5) else acc  # its epoch was the best: best_acc, unrounded


def _best_acc(ckpt: dict) -> float | None:
    best = ckpt.get("best_acc")
    return best if isinstance(best, float) and is_fraction(best) else None  # (an int: an older ferkit's epoch number)


def _epoch_acc(ckpt: dict) -> float | None:
    """The validation accuracy in the history row of the checkpoint's epoch, or None (no such row, NaN: no validation)."""
    history = ckpt.get("history")
    rows = [r for r in history if is_record(r)] if isinstance(history, list) else []
    row = next((r for r in reversed(rows) if r["epoch"] == ckpt.get("epoch")), None)
    return row["val_acc"] if row is not None and is_fraction(row["val_acc"]) else None


def read_checkpoint(path: str | Path, device="cpu", resume: bool = False) -> dict:
    """The checkpoint dict, loaded with weights_only=True and checked (see check_checkpoint);
    with resume=True also the training state that --resume needs. One clear error for a bad file."""
    path = Path(path)
    run = None  # the run folder given, whose last.pt a damaged best.pt's message offers
    # a run folder: its best.pt, else last.pt; not a best.pt or last.pt that is a folder (report gives the run's
    # checkpoint path: taken for a run folder, it read RUN/best.pt/best.pt), which check_regular_file names below
    if path.is_dir() and not resume and path.name not in (BEST, LAST):
        run, path = path, folder_checkpoint(path)
    if not path.exists():
        raise FerkitError(f"{path}: no such checkpoint; give a .pt file written by 'ferkit train' or its run folder")
    if path.suffix.lower() == ".onnx":  # (evaluate and predict take graphs; export, visualize and --resume need the weights)
        raise FerkitError(f"{path}: an ONNX graph, not a checkpoint; give the .pt file it was exported from")
    check_regular_file(path, "a .pt file written by 'ferkit train'")
    try:
        ckpt = _load_checked(path, device)
    except CheckpointError as e:
        raise CheckpointError(path, f"{e.problem}{_last_instead(run, path)}") from None
    if resume:
        missing = [k for k in RESUME_KEYS if k not in ckpt]
        if missing:
            raise ResumeError(f"{path}: cannot resume from it: no {', '.join(missing)} (best.pt files hold none; "
                              "resume from the last.pt of a ferkit train run)")
        check_resume_state(ckpt, path)
    return ckpt


def _load_checked(path: Path, device) -> dict:
    """read_checkpoint's load of a regular file, checked (check_checkpoint): a CheckpointError for a damaged one."""
    if path.stat().st_size == 0:  # (torch.load's "EOFError: " said nothing)
        raise CheckpointError(path, "the file is empty (a copy or a save cut off at its start); copy it again, or use another "
                              "checkpoint")
    damaged = _damaged_member(path)
    if damaged:
        raise CheckpointError(path, f"the file is damaged ({damaged}); copy or download it again, or use another checkpoint")
    try:
        with warnings.catch_warnings():  # torch's notes on the pickle protocol: the error below says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # pickle errors, truncated files, zip errors
        raise CheckpointError(path, f"not a readable ferkit checkpoint; the file is damaged or not one "
                              f"({load_failure(path, e)})") from None
    check_checkpoint(ckpt, path)
    return ckpt


def _last_instead(run: Path | None, path: Path) -> str:
    """The way on where a run folder's best.pt is damaged and its last.pt reads: giving last.pt, and the resume that
    writes best.pt again from it (train._best_gone); "" for any other file. Only last.pt's record is read (quick, as
    _with_best reads best.pt's): its weights are read where it is given."""
    last = path.with_name(LAST)
    if run is None or path.name != BEST or not last.is_file():
        return ""
    record = read_record(last, quick=True)
    if record.ckpt is None:  # (unreadable, damaged or not a checkpoint's dict: no way to offer)
        return ""
    resumable = all(k in record.ckpt for k in RESUME_KEYS) and record.ckpt["optimizer"] != {}
    weights = f" (epoch {record.epoch}'s weights)" if record.epoch is not None else ""
    again = f", or write {BEST} again from it with 'ferkit train --resume {shell_word(run)}'" if resumable else ""
    return f"; or give {last}{weights}{again}"


@dataclass
class Record:
    """A checkpoint file as read_record found it: its dict, or why there is none (`trouble`: "missing", a link to no
    file included; "unreadable": ferkit's user may not read it; "damaged": no regular file, or it loads as no usable
    checkpoint, or a quick read's as no dict) and the error that says so."""

    ckpt: dict | None = None
    trouble: str | None = None
    error: Exception | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch its weights come from, where it records one."""
        epoch = (self.ckpt or {}).get("epoch")
        return epoch if is_whole(epoch) else None

    @property
    def acc(self) -> float | None:
        """What its weights scored (weights_acc), where that can be known."""
        try:
            return weights_acc(self.ckpt) if self.ckpt is not None else None
        except Exception:  # (a quick read's dict is unchecked)
            return None


def read_record(path: Path, quick: bool = False) -> Record:
    """A checkpoint file's record (its dict: epoch, score, config) or why there is none, told by the read's own error
    (not its words): what the resume, its done line and the report read of a run's best.pt and last.pt. read_checkpoint
    reads it, checks and all; quick=True loads only its dict, tensors memory-mapped, for a figure or two: without the
    checks (the zip's checksums, the model built: ~0.5 s a vgg-wide run), a file it reads may yet be damaged."""
    try:
        if quick:
            with warnings.catch_warnings():  # (torch's notes on the pickle protocol)
                warnings.simplefilter("ignore")
                ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            ckpt = read_checkpoint(path)
    except CheckpointError as e:
        return Record(trouble="damaged", error=e)
    except (FerkitError, OSError) as e:  # refused before it was loaded: not there, not to be read, or no regular file
        return Record(trouble="unreadable" if path.is_file() else "damaged" if path.exists() else "missing", error=e)
    except Exception as e:  # (quick: torch's own errors on a damaged file)
        return Record(trouble="damaged", error=e)
    return Record(ckpt) if isinstance(ckpt, dict) else Record(trouble="damaged")


def load_failure(path: Path, e: Exception) -> str:
    """What to quote of a torch.load(weights_only=True) of `path` that raised `e`: its type and first
    line, or "not a PyTorch file" for junk (torch's own errors on it are internal: "KeyError: 105");
    a file of pickled objects raises ferkit's own message (PyTorch's advice, weights_only=False,
    would run the file's code)."""
    text = str(e)
    if "Weights only load failed" in text:
        if re.search(r"GLOBAL \S+", text) or _is_pickle(path):
            raise CheckpointError(path, _pickled_objects(text)) from None
        return "not a PyTorch file"
    with open(path, "rb") as f:
        if not f.read(2).startswith((b"PK", b"\x80")):  # neither a zip (torch.save's format, whole or cut off) nor a pickle
            return "not a PyTorch file"
    return f"{type(e).__name__}: {first_line(text)}"


def _is_pickle(path: Path) -> bool:
    """Whether a file starts like a pickle of protocol 2 or later (the PROTO opcode), as torch.save's
    legacy format and pickle.dump write them, or is a zip (torch.save's format)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or zipfile.is_zipfile(path)


def _pickled_objects(torch_message: str) -> str:
    """ferkit's words on a file of pickled Python objects (torch.save of a whole model, a plain
    pickle): what it is, why it is refused and how to convert it, never PyTorch's advice."""
    what = re.search(r"GLOBAL (\S+)", torch_message)
    return (f"holds pickled Python objects{f' ({what.group(1)})' if what else ''}, not a ferkit checkpoint of "
            "plain tensors and data; ferkit loads only weights, because unpickling objects can run any code. Only load "
            "checkpoints you trust; to convert one you trust, load it in your own Python session and torch.save a dict "
            "of plain tensors and data with the keys 'ferkit train' writes (spec, state_dict, mean, labels), or train "
            "the model again with 'ferkit train'")


RESUME_FIX = "restore the last.pt that training wrote, or start a new run with 'ferkit train --out NEW_FOLDER'"


def _state_problem(ckpt: dict) -> str | None:
    """What in last.pt's training state is not as 'ferkit train' writes it, or None."""
    opt, cfg, epoch = ckpt["optimizer"], ckpt["config"], ckpt["epoch"]
    if opt == {} and ckpt["scheduler"] == {}:
        return "it is a copy of a best.pt: it has no optimizer or schedule state"
    if not (isinstance(opt, dict) and isinstance(opt.get("param_groups"), list) and isinstance(opt.get("state"), dict)):
        return "'optimizer' is not an optimizer state (param_groups and state)"
    if not isinstance(ckpt["scheduler"], dict):
        return f"'scheduler' must be a mapping; got {type(ckpt['scheduler']).__name__}"
    if not (isinstance(cfg, dict) and is_whole(cfg.get("epochs")) and cfg["epochs"] >= 1):
        return "its 'config' has no epochs count (a positive integer)"
    if not is_whole(epoch) or not 1 <= epoch <= cfg["epochs"]:
        return f"'epoch' must be an integer in 1..{cfg['epochs']} (the epochs its config asks for); got {epoch!r}"
    hist = ckpt["history"]
    if not isinstance(hist, list):
        return f"'history' must be a list of per-epoch rows; got {type(hist).__name__}"
    bad_row = next((i for i, r in enumerate(hist, 1) if not is_record(r)), None)  # (resumed, it was written on, then
    if bad_row:  # the summary's r["val_acc"] was a KeyError)
        return f"'history' row {bad_row} is not an epoch's record (numbers for {', '.join(HISTORY_FIELDS)}); got {str(hist[bad_row - 1])[:80]}"
    losses = ckpt["iter_loss"]
    if not (isinstance(losses, list) and all(is_number(v) for v in losses)):
        return f"'iter_loss' must be a list of numbers; got {type(losses).__name__}"
    acc = ckpt["best_acc"]  # NaN or over 1: no later epoch beat it, and best.pt stayed an old epoch's while the run said otherwise
    if acc is not None and not (is_whole(acc) and acc >= 0 or is_number(acc) and 0 <= acc <= 1):  # (an int: an older ferkit's epoch number)
        return f"'best_acc' must be a validation accuracy in 0..1 or None; got {acc!r}"
    want = torch.Generator().get_state()
    rng = ckpt["rng"]
    if not (isinstance(rng, torch.Tensor) and rng.dtype == want.dtype and rng.shape == want.shape):
        return f"'rng' must be a random generator's state (a {tuple(want.shape)} uint8 tensor); got {_describe(rng)}"
    states = ckpt.get("rng_states", {"torch": want})
    if not (isinstance(states, dict) and isinstance(states.get("torch"), torch.Tensor) and states["torch"].dtype == want.dtype):
        return f"'rng_states' must map 'torch' to a random generator's state; got {_describe(states)}"
    if not is_whole(ckpt.get("world_size", 1)) or ckpt.get("world_size", 1) < 1:
        return f"'world_size' must be a positive integer; got {ckpt.get('world_size')!r}"
    return None


def _describe(v) -> str:
    return f"a {v.dtype} tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__


def check_resume_state(ckpt: dict, path: str | Path) -> None:
    """One FerkitError saying what in a last.pt's training state is wrong and what to do, before
    --resume hands it to the optimizer, schedule and random generators (their errors are tracebacks)."""
    problem = _state_problem(ckpt)
    if problem:
        raise ResumeError(f"{path}: cannot resume from it: {problem}; {RESUME_FIX}")


def _damaged_member(path: Path) -> str | None:
    """What is damaged in a zip-format checkpoint (a member whose CRC-32 does not match), or None."""
    if not zipfile.is_zipfile(path):
        return None  # torch's legacy format, or not a checkpoint at all: torch.load tells
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"unreadable zip structure: {e}"
    return f"the checksum of {bad} does not match" if bad else None


def check_checkpoint(ckpt, path: str | Path) -> ModelSpec:
    """The checkpoint's ModelSpec, or one FerkitError naming the file and what is wrong: missing keys,
    an invalid spec, weights that do not fit the model the spec builds, non-finite weights, a bad mean image."""

    def bad(problem: str):
        return CheckpointError(path, f"not a usable ferkit checkpoint: {problem}")

    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "spec" not in ckpt:
        raise CheckpointError(path, "not a ferkit checkpoint (no 'spec'/'state_dict'); train one with 'ferkit train'")
    if "mean" not in ckpt:
        raise bad("no 'mean' (the mean image of the training faces, needed to preprocess faces)")
    try:
        spec = ModelSpec.from_dict(ckpt["spec"])
    except ConfigError as e:
        raise bad(f"its model spec is invalid: {e}") from None
    names = ckpt.get("labels")
    if names is not None and not (isinstance(names, (list, tuple)) and all(isinstance(n, str) and n for n in names)):
        raise bad(f"'labels' must be a list of emotion names; got {type(names).__name__} {str(names)[:60]}")
    if names is not None and (why := check_names(tuple(names))):  # (printed as they are by predict, evaluate...)
        raise bad(f"its 'labels' cannot name the model's outputs: {why}")
    labels = labels_of(ckpt)  # the width is stored twice here (spec and labels), as ever: they must agree
    if spec.num_classes is not None and spec.num_classes != len(labels):
        raise bad(f"its model spec's num_classes is {spec.num_classes} but 'labels' names {len(labels)} emotions")
    state, mean = ckpt["state_dict"], ckpt["mean"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise bad("'state_dict' is not a non-empty mapping of tensors")
    with torch.device("meta"):  # the shapes of the model the spec builds, without allocating its weights
        model_state = create_model(spec).state_dict()
    want = {k: tuple(v.shape) for k, v in model_state.items()}
    problems = [f"missing {k}" for k in want if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in want]
    problems += [f"{k} has shape {tuple(state[k].shape)}, the spec needs {want[k]}" for k in want
                 if k in state and tuple(state[k].shape) != want[k]]
    # (load_state_dict copies integers into float weights: the net ran on its weights cut to whole numbers)
    problems += [f"{k} holds {state[k].dtype} values, the spec needs floating-point weights" for k, v in model_state.items()
                 if k in state and v.is_floating_point() and not state[k].is_floating_point()
                 and not tensor_problem(state[k])]  # (a quantized or complex tensor is named below)
    if problems:
        raise bad(f"the weights do not fit its model spec ({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''})")
    odd = [f"{k} is {why}" for k, v in state.items() if (why := tensor_problem(v))]
    if odd:
        raise bad(f"{'; '.join(odd[:3])}; save plain float weights")
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    nonfinite += [k for k, v in state.items() if k.endswith("running_var") and (v < 0).any()]
    if nonfinite:
        raise bad(f"{', '.join(nonfinite[:3])} hold NaN, infinite or impossible values (a damaged file?)")
    size = spec.face_shape  # (H, W) grey, (H, W, C) colour
    if not isinstance(mean, torch.Tensor) or tuple(mean.shape) != size:
        raise bad(f"'mean' must be a {'x'.join(map(str, size))} image; "
                  f"got {tuple(mean.shape) if isinstance(mean, torch.Tensor) else type(mean).__name__}")
    if tensor_problem(mean) or not (torch.isfinite(mean).all() and mean.min() >= 0 and mean.max() <= 255):
        raise bad("'mean' must hold pixel values in 0..255 (a damaged file?)")
    config = ckpt.get("config", {})
    if not isinstance(config, dict):
        raise bad("'config' is not a mapping")
    acc = ckpt.get("val_acc")  # what serve's /version and an ONNX export report of the weights
    if acc is not None and not is_fraction(acc):
        raise bad(f"'val_acc' must be a validation accuracy in 0..1 or None; got {str(acc)[:60]} (a damaged file? export it again)")
    if wrong := misread_fields(config, "config."):  # what reading its data anew (evaluate, visualize, export --int8) and tta take
        raise bad(f"{'; '.join(wrong)} (a damaged file?)")
    return spec


def tensor_problem(t: torch.Tensor) -> str | None:
    """What makes a saved tensor no plain dense weight (load_state_dict cannot copy it into a float model, or
    the checks cannot read it), or None."""
    return ("quantized (dequantize() it)" if t.is_quantized else "sparse (to_dense() it)" if t.layout != torch.strided
            else "on the meta device (it holds no values)" if t.is_meta else "complex" if t.is_complex() else None)


def device_of(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
        if isinstance(name, str) and re.fullmatch(r"cuda:\d+", name):  # cuda:N with an N too large for torch to hold
            if not torch.cuda.is_available():
                raise FerkitError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto") from None
            raise FerkitError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)") from None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise FerkitError(f"--device must be {DEVICE_TEXT}; got {name!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FerkitError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise FerkitError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise FerkitError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu or auto")
    return dev


class Classifier:
    """A trained model with its preprocessing: uint8 faces (N, 48, 48) -> probabilities (N, C) over
    `labels`, the model's own emotion names (7 for FER2013, 8 for FER+). A model with another input
    takes faces of its face_shape: (N, in_size, in_size) grey or (N, in_size, in_size, 3) colour."""

    def __init__(self, model: FerNet, mean: np.ndarray, meta: dict | None = None, device="cpu",
                 labels: tuple[str, ...] = FER2013, precision: str = "fp32"):
        self.device = torch.device(device)
        self.model = prepare(model, self.device).eval()
        self.mean = np.asarray(mean, np.float32)
        self.meta = meta or {}
        self.labels = tuple(labels)
        self.precision = resolve_precision(precision, self.device)
        config = self.meta.get("config") or {}
        if wrong := misread_fields(config, "config."):  # (a meta not from load_checkpoint, whose check named the file)
            raise FerkitError(f"the checkpoint's {'; '.join(wrong)}")
        self.tta = config.get("tta", False)  # (missing: an older checkpoint, which predicts without the mirror)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    @property
    def face_shape(self) -> tuple[int, ...]:
        """One face as this model takes it: (48, 48) for FER2013's grey faces, (H, W, 3) for colour."""
        return self.spec.face_shape

    @property
    def training(self) -> dict:
        """What the training that made these weights says of them (for /version and ONNX metadata)."""
        cfg = self.meta.get("config") or {}
        return {"name": Path(str(cfg.get("model", "unknown"))).stem,  # the preset, or the spec file's name
                "epoch": self.meta.get("epoch"),  # the epoch these weights come from
                "epochs": cfg.get("epochs"),  # the epochs the training was set to run
                "val_acc": self.meta.get("val_acc")}  # the validation accuracy of these weights (weights_acc)

    def inputs(self, faces: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model inputs for uint8 faces (N, *face_shape): mean-subtracted images and, for hybrids, HOG."""
        x = to_tensor(faces, self.mean).to(self.device)
        hog = None
        if self.model.hog_dim:
            from .hog import hog_features

            hog = torch.from_numpy(hog_features(faces, self.spec.hog)).to(self.device)
        return x, hog

    @torch.no_grad()
    def predict_proba(self, faces: np.ndarray, batch_size: int = 256, tta: bool | None = None) -> np.ndarray:
        """Softmax probabilities (N, C); with tta, averaged with the mirrored face."""
        tta = self.tta if tta is None else tta
        faces = face_batch(faces, self.face_shape)
        out = []
        for i in range(0, len(faces), batch_size):
            chunk = faces[i : i + batch_size]
            x, hog = self.inputs(chunk)
            hog_f = self.inputs(chunk[:, :, ::-1])[1] if tta and hog is not None else None
            out.append(probabilities(self.model, x, hog, tta, hog_f, self.precision).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)


def load_checkpoint(path: str | Path, device: str = "cpu", precision: str = "fp32") -> Classifier:
    """A Classifier from a checkpoint file (or a run folder, which means its best.pt)."""
    ckpt = read_checkpoint(path, "cpu")
    model = create_model(ModelSpec.from_dict(ckpt["spec"]))
    model.load_state_dict(ckpt["state_dict"])  # read_checkpoint checked that it fits
    meta = {**{k: ckpt.get(k) for k in ("epoch", "config", "history")}, "val_acc": weights_acc(ckpt)}  # (not best_acc: the run's)
    return Classifier(model, ckpt["mean"].float().numpy(), meta, device_of(device), labels_of(ckpt), precision)


def checkpoint_run(path: str | Path, name: str) -> Run:
    """A Run of a checkpoint file alone (a bundled model, a best.pt whose run folder is gone): the
    config and history that every checkpoint of `ferkit train` carries, loaded safely."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    config = {**ckpt["config"], "spec": ckpt["spec"]} if ckpt.get("config") else None
    def kept(key: str):  # (not `or []`: the truth of a tensor of several values is a RuntimeError)
        return [] if ckpt.get(key) is None else ckpt[key]

    # a last.pt's; best.pt and exports keep none
    iterations = check_iterations(kept("iter_loss"), f"{path}: its 'iter_loss'", "the training loss of each iteration")
    return Run(path.parent, name, config, check_history(kept("history"), f"{path}: its 'history'"), iterations, file=path)


def _with_best(run: Run) -> Run:
    """A run folder's Run with its best.pt's epoch and score (Run.best), which a resume that found best.pt deleted or
    damaged wrote from a later epoch than the history's best; without a best.pt that reads, or a score, none (the
    history's best is shown, and the report says why best.pt cannot be loaded). Only its record is read: read_checkpoint's
    checks (the zip's checksums, the model built) cost ~0.5 s a vgg-wide run, for two numbers, and report loads it again."""
    best = read_record(run.path / BEST, quick=True)  # (missing, unreadable or damaged: no best.pt's figures to give)
    run.best = (best.epoch, best.acc) if best.epoch is not None and best.acc is not None else None
    return run


def read_runs(paths: list[str | Path], notes: list[str] | None = None) -> list[Run]:
    """The runs of run folders (runs.read_run) and of checkpoint files alone (checkpoint_run), named
    by runs.run_names: what `ferkit report` and `ferkit plot` read. With `notes` (the report's), a run
    whose files are damaged is left out and its error noted while another run remains: one damaged
    file must not cost the page of the other runs."""
    runs, damaged = [], []
    for p, n in zip(paths, run_names(paths)):
        try:
            runs.append(checkpoint_run(p, n) if Path(p).is_file() else _with_best(read_run(p, n)))
        except FerkitError as e:
            if notes is None or not Path(p).exists():  # a path that is not there is a typo: said at once
                raise
            damaged.append(e)
    if damaged and not runs:
        raise damaged[0]
    if damaged:
        notes.extend(f"{e}; left out of the report" for e in damaged)
    return runs
