"""The paper's sanity checks (Section 5.1): initial loss ~ ln 7, and overfitting ~100 images.

Both train on the data's own labels, so the model has one output per class of the data: FER2013's
7 emotions for its files (ln 7), a folder's classes for an image folder (ln of their count)."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import MAX_STEPS, ModelSpec, bounded
from .data import mean_image
from .errors import FerkitError
from .labels import LabelSet, for_emotions, label_set
from .model import create_model
from .train import evaluate, make_batches

log = logging.getLogger(__name__)
BATCH = 100  # faces per forward pass (a fresh resnet18 at in_size 224 took 3.2 GB for 1000 faces in one)
FILE_LABELS = label_set("fer2013")  # the FER2013 file's own labels, which the checks train on there
LN7 = math.log(FILE_LABELS.num_classes)  # the loss of uniform guessing over them


def data_labels(data) -> tuple[LabelSet, np.ndarray]:
    """The label set of the data's own classes and every row's label in it (FER2013's files: FER2013's
    7; integer ids without names: FER2013's, as its files number them). Ids beyond FER2013's get sanity's way on:
    naming the classes (it has no --labels, which training's advice names)."""
    classes = for_emotions(data.names) if data.names is not None else FILE_LABELS
    return classes, classes.annotations(data, fix="name the data's classes (--label-names, or a labels.txt beside the "
                                                  "data, one name a line)")


def check_steps(steps: int) -> None:
    """The overfit check's steps: 1..config.MAX_STEPS (as DeepDream's), else the error naming --steps."""
    for p in bounded("--steps", steps, 1, MAX_STEPS):
        raise FerkitError(p)


def initial_loss(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, seed: int = 0, classes: LabelSet = FILE_LABELS) -> float:
    """Cross-entropy of a freshly initialised model (one output per class of `classes`) with
    regularisation off (dropout off, no L2); about ln of the class count."""
    torch.manual_seed(seed)
    model = create_model(spec, classes)  # evaluate's eval mode: no dropout; batch norm uses its initial statistics
    return evaluate(model, make_batches(images, labels, mean_image(images), spec), "cpu", BATCH)["loss"]


def overfit(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, steps: int = 200, lr: float = 1e-3,
            seed: int = 0, target: float = 0.99, classes: LabelSet = FILE_LABELS) -> dict:
    """Train on a small subset (no regularisation, no augmentation) until training accuracy
    reaches target; returns {"train_acc", "loss", "steps"}."""
    check_steps(steps)
    torch.manual_seed(seed)
    model = create_model(spec, classes)
    for m in model.modules():  # regularisation off: the point is to memorise
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    b = make_batches(images, labels, mean_image(images), spec)
    # each step is one step on the gradient of all the faces, summed over parts of at most BATCH (equal
    # parts, so none has the single face batch norm refuses), as one batch of them would take too much memory
    parts = torch.arange(len(b)).tensor_split(math.ceil(len(b) / BATCH))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    acc, loss, step = 0.0, float("nan"), 0
    for step in range(1, steps + 1):
        model.train()
        opt.zero_grad()
        for i in parts:
            part_loss = F.cross_entropy(model(b.x[i], None if b.hog is None else b.hog[i]), b.y[i])
            (part_loss * len(i) / len(b)).backward()
        opt.step()
        if step % 10 == 0 or step == steps:
            ev = evaluate(model, b, "cpu", BATCH)
            acc, loss = ev["acc"], ev["loss"]
            if step % 50 == 0:
                log.info(f"  step {step}/{steps}: accuracy {acc:.3f}, loss {loss:.4f}")
            if acc >= target:
                break
    return {"train_acc": acc, "loss": loss, "steps": step}
