"""The paper's sanity checks (Section 5.1): initial loss ~ ln 7, and overfitting ~100 images.

Both train on the data's own labels, so the model has one output per class of the data: FER2013's
7 emotions for its files (ln 7), a folder's classes for an image folder (ln of their count)."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import ModelSpec
from .data import mean_image
from .labels import LabelSet, for_emotions, label_set
from .model import create_model
from .train import make_batches

log = logging.getLogger(__name__)
FILE_LABELS = label_set("fer2013")  # the FER2013 file's own labels, which the checks train on there
LN7 = math.log(FILE_LABELS.num_classes)  # the loss of uniform guessing over them


def data_labels(data) -> tuple[LabelSet, np.ndarray]:
    """The label set of the data's own classes and every row's label in it (FER2013's files: FER2013's
    7; integer ids without names: FER2013's, as its files number them)."""
    classes = for_emotions(data.names) if data.names is not None else FILE_LABELS
    return classes, classes.annotations(data)


def initial_loss(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, seed: int = 0, classes: LabelSet = FILE_LABELS) -> float:
    """Cross-entropy of a freshly initialised model (one output per class of `classes`) with
    regularisation off (dropout off, no L2); about ln of the class count."""
    torch.manual_seed(seed)
    model = create_model(spec, classes).eval()  # eval: no dropout; batch norm uses its initial statistics
    b = make_batches(images, labels, mean_image(images), spec)
    with torch.no_grad():
        return F.cross_entropy(model(b.x, b.hog), b.y).item()


def overfit(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, steps: int = 200, lr: float = 1e-3,
            seed: int = 0, target: float = 0.99, classes: LabelSet = FILE_LABELS) -> dict:
    """Train on a small subset (no regularisation, no augmentation) until training accuracy
    reaches target; returns {"train_acc", "loss", "steps"}."""
    torch.manual_seed(seed)
    model = create_model(spec, classes)
    for m in model.modules():  # regularisation off: the point is to memorise
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    b = make_batches(images, labels, mean_image(images), spec)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    acc, loss, step = 0.0, float("nan"), 0
    for step in range(1, steps + 1):
        model.train()
        loss_t = F.cross_entropy(model(b.x, b.hog), b.y)
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        if step % 10 == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                logits = model(b.x, b.hog)
            acc, loss = (logits.argmax(1) == b.y).float().mean().item(), F.cross_entropy(logits, b.y).item()
            if step % 50 == 0:
                log.info(f"  step {step}/{steps}: accuracy {acc:.3f}, loss {loss:.4f}")
            if acc >= target:
                break
    return {"train_acc": acc, "loss": loss, "steps": step}
