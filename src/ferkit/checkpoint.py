"""Checkpoints: saved atomically, loaded safely (weights_only=True), wrapped as a Classifier.

A checkpoint is a dict of plain data and tensors:
    {epoch, config, spec, labels, state_dict, optimizer, scheduler, best_acc, mean, history, iter_loss, rng}
`Classifier` bundles what inference needs (model, mean image, HOG spec) so evaluation,
prediction and visualisation preprocess faces the same way training did.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .config import ModelSpec
from .labels import FER2013, labels_of
from .errors import FerkitError
from .model import FerNet, create_model
from .preprocess import prepare, probabilities, resolve_precision, to_tensor


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write to a temporary file, then rename: a kill mid-write never leaves a broken checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path, device="cpu") -> dict:
    """The checkpoint dict, loaded with weights_only=True; a clear error for a bad file."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise FerkitError(f"{path}: no such checkpoint; give a .pt file written by 'ferkit train' or its run folder")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # pickle errors, truncated files, zip errors
        raise FerkitError(f"{path}: not a readable ferkit checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "spec" not in ckpt:
        raise FerkitError(f"{path}: not a ferkit checkpoint (no 'spec'/'state_dict'); train one with 'ferkit train'")
    return ckpt


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
    except RuntimeError:
        raise FerkitError(f"--device {name!r}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FerkitError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return dev


class Classifier:
    """A trained model with its preprocessing: uint8 faces (N, 48, 48) -> probabilities (N, C) over
    `labels`, the model's own emotion names (7 for FER2013, 8 for FER+)."""

    def __init__(self, model: FerNet, mean: np.ndarray, meta: dict | None = None, device="cpu",
                 labels: tuple[str, ...] = FER2013, precision: str = "fp32"):
        self.device = torch.device(device)
        self.model = prepare(model, self.device).eval()
        self.mean = np.asarray(mean, np.float32)
        self.meta = meta or {}
        self.labels = tuple(labels)
        self.precision = resolve_precision(precision, self.device)
        self.tta = bool(self.meta.get("config", {}).get("tta", False))

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    def inputs(self, faces: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model inputs for uint8 faces (N, 48, 48): mean-subtracted images and, for hybrids, HOG."""
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
        faces = np.asarray(faces, np.uint8).reshape(-1, self.spec.in_size, self.spec.in_size)
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
    model.load_state_dict(ckpt["state_dict"])
    meta = {k: ckpt.get(k) for k in ("epoch", "config", "best_acc", "history")}
    return Classifier(model, ckpt["mean"].numpy(), meta, device_of(device), labels_of(ckpt), precision)
