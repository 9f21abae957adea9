"""Knowledge distillation (`ferkit train --teacher`): the teachers and the loss they add.

A teacher is a trained model the student learns from: a checkpoint, run on torch beside the
student, or an ONNX graph from `ferkit export` (a bundled model's int8 graph), run on onnxruntime.
Several teachers teach as an ensemble: the average of their softened probabilities.

Why ONNX teachers: distilling a small net into a big one's answers, the teacher's forward pass is
most of an epoch. Where bf16 is emulated (AVX2 alone) the teacher runs in fp32, and the bundled
`ferplus`'s int8 graph does that work 2.4x as fast as torch (a `tiny` student's step 1.7x;
docs/training.md), within 0.2 points of its checkpoint's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .errors import FerkitError, shell_word
from .predict import is_onnx_file
from .preprocess import PIXEL_SCALE, autocast
from .runtime import run_faces


def load_teacher(path: str, student_mean: np.ndarray, labels: tuple[str, ...], device, precision: str):
    """The teacher that --teacher PATH means: an .onnx file on onnxruntime, anything else a checkpoint on torch."""
    return (OnnxTeacher if is_onnx_file(path) else Teacher)(path, student_mean, labels, device, precision)


def check_not_student(teachers: list[str], out) -> None:
    """A FerkitError for a teacher that is the student's own run folder (out) or a file in it: its
    checkpoints are the student itself, which on --resume taught itself from its own best.pt, a file
    the run then rewrites (the next resume's teacher another), and on a new run were missing."""
    out = Path(out).resolve()
    for t in teachers:
        if out == Path(t).resolve() or out in Path(t).resolve().parents:
            raise FerkitError(f"--teacher {t}: is{'' if out == Path(t).resolve() else ' in'} this run's own folder {out}, whose checkpoints are the student being "
                              "trained; give another run's checkpoint (to distil from this run, train a new one with "
                              f"--teacher {shell_word(out)})")


def _check(path: str, labels: tuple[str, ...], wanted: tuple[str, ...], mean_shape: tuple, student_mean: np.ndarray) -> None:
    """A teacher must name the student's emotions and take its faces (it sees the student's batches as they are)."""
    if tuple(labels) != tuple(wanted):
        raise FerkitError(f"--teacher {path} predicts {', '.join(labels)}; the student needs {', '.join(wanted)}")
    if tuple(mean_shape) != student_mean.shape:
        raise FerkitError(f"--teacher {path} takes {_input(mean_shape)} faces, the student {_input(student_mean.shape)}; "
                          "distil between models of one input size and channels")


def _input(shape: tuple) -> str:
    """(H, W) or (H, W, C), a mean image's shape -> '48x48 grey'."""
    return f"{shape[0]}x{shape[1]} {'colour' if len(shape) == 3 else 'grey'}"


def _chw(mean: np.ndarray, device) -> torch.Tensor:
    """A mean image in pixels, (H, W[, C]), laid out as preprocess.standardize lays inputs out, (C, H, W)."""
    m = torch.from_numpy(np.asarray(mean, np.float32))
    return (m.permute(2, 0, 1) if m.dim() == 3 else m.unsqueeze(0)).to(device)


class Teacher:
    """A checkpoint (or run folder) as a teacher, on torch, on the student's device and precision."""

    def __init__(self, path: str, student_mean: np.ndarray, labels: tuple[str, ...], device, precision: str):
        from .checkpoint import load_checkpoint

        self.clf = load_checkpoint(path, str(device))
        if self.clf.model.hog_dim:
            raise FerkitError(f"--teacher {path}: a HOG hybrid cannot teach (its HOG features are not in the batch); pick a CNN-only model")
        _check(path, self.clf.labels, labels, self.clf.mean.shape, student_mean)
        # Student inputs are centred on the student's mean image; shift them onto the teacher's.
        self.shift = (_chw(student_mean, device) - _chw(self.clf.mean, device)) / PIXEL_SCALE
        self.precision = precision

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.clf.model.eval()  # a teacher never trains: no dropout, batch norm on its running statistics
        with autocast(x.device, self.precision):
            return self.clf.model(x + self.shift).float()


class OnnxTeacher:
    """An ONNX graph from `ferkit export` as a teacher, on onnxruntime on the CPU (a GPU run's batches
    come to the CPU for it: give a GPU run checkpoints). The graph takes uint8 faces, so the
    student's augmented faces are rounded to whole pixels and clipped to 0-255 on their way in."""

    def __init__(self, path: str, student_mean: np.ndarray, labels: tuple[str, ...], device, precision: str):
        from .runtime import onnx_input, onnx_labels, onnx_session

        # torch's thread count in this process (--threads; 1 a rank under torchrun): onnxruntime's own
        # default, every core, would oversubscribe the CPU beside the student or the other ranks
        self.session, self.path = onnx_session(path, threads=torch.get_num_threads()), path
        try:
            size, channels = onnx_input(self.session)
            teaches = onnx_labels(self.session)
        except FerkitError as e:  # a graph not from `ferkit export` (a face detector, say): say which flag it came from
            raise FerkitError(f"--teacher {path}: {e}") from None
        _check(path, teaches, labels, (size, size) if channels == 1 else (size, size, channels), student_mean)
        self.mean = _chw(student_mean, device)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        faces = (x.float() * PIXEL_SCALE + self.mean).round_().clamp_(0, 255).to(torch.uint8)
        faces = faces[:, 0] if faces.shape[1] == 1 else faces.permute(0, 2, 3, 1)  # (N, H, W) grey, (N, H, W, C) colour
        try:
            probs = run_faces(self.session, np.ascontiguousarray(faces.cpu().numpy()))
        except FerkitError as e:  # NaN for some faces: it was "the training loss became nan; lower --lr"
            raise FerkitError(f"--teacher {self.path}: {e}") from None
        # The graph ends in a softmax; log-probabilities are the logits less a constant per face,
        # which the softmax at any temperature (teacher_probs) takes away again.
        return torch.from_numpy(np.log(np.maximum(probs, 1e-12))).to(x.device)


def teacher_probs(teachers: torch.Tensor | list[torch.Tensor], temp: float) -> torch.Tensor:
    """The teachers' softened probabilities, averaged: mean of softmax(logits / temp) over the teachers
    (an ensemble's vote, not the softmax of its mean logits). teachers: one's logits or a list of them."""
    logits = [teachers] if isinstance(teachers, torch.Tensor) else teachers
    return torch.stack([torch.softmax(z / temp, 1) for z in logits]).mean(0)


def distill_loss(student: torch.Tensor, teachers: torch.Tensor | list[torch.Tensor], temp: float) -> torch.Tensor:
    """Hinton et al.'s distillation term: KL(teachers' average || student) at temperature temp, times temp^2."""
    return F.kl_div(F.log_softmax(student / temp, 1), teacher_probs(teachers, temp), reduction="batchmean") * temp * temp


def with_teacher(loss: torch.Tensor, student: torch.Tensor, teachers: torch.Tensor | list[torch.Tensor],
                 cfg: TrainConfig) -> torch.Tensor:
    """The label loss and the distillation term mixed by cfg.distill (the teachers' weight)."""
    return (1 - cfg.distill) * loss + cfg.distill * distill_loss(student, teachers, cfg.distill_temp)
