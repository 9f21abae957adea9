"""What a trained network sees (numbers only; plots.py draws them): activation maps of every conv
layer for a face (paper Figure 9) and the first-layer filters (Figure 10). DeepDream is in dream.py.

Faces come from a photo (`face_from_image`: the largest detected face, else the whole picture) or
a FER2013 row (`face_from_data`), always as uint8 (48, 48), the model's input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoint import Classifier
from .errors import FerkitError
from .files import write_output


def layer_names(model) -> list[str]:
    """'conv1 32@3x3 pool2' etc., one per conv layer (one per Sequential in model.features)."""
    names = []
    for k, c in enumerate(model.spec.convs, 1):
        names.append(f"conv{k} {c.filters}@{c.kernel}x{c.kernel}" + (f" pool{c.pool}" if c.pool else ""))
    return names


@torch.no_grad()
def activation_maps(clf: Classifier, face: np.ndarray) -> list[np.ndarray]:
    """The output of each conv layer (after ReLU[, pool]) for one uint8 face (48, 48): [(C_k, H_k, W_k)] float32."""
    x, _ = clf.inputs(np.asarray(face, np.uint8)[None])  # (1, 1, 48, 48)
    maps = []
    for block in clf.model.features:  # one Sequential per conv layer
        x = block(x)
        maps.append(x[0].float().cpu().numpy())
    return maps


def first_layer_filters(model) -> np.ndarray:
    """The first conv layer's weights (C, 1, k, k) float32 (before batch norm, as the paper shows them)."""
    conv = model.features[0][0]
    return conv.weight.detach().float().cpu().numpy()


def face_from_image(src) -> tuple[np.ndarray, str]:
    """(uint8 (48, 48) face, how it was found) from an image file: the largest detected face, else the
    whole picture (centre square, grey, 48x48) - so FER2013-style crops work as they are."""
    from .faces import find_faces, load_image, whole_face

    rgb = load_image(src)
    faces = find_faces(rgb)
    if faces:
        f = max(faces, key=lambda f: f.box[2] * f.box[3])
        return f.face, f"face at x={f.box[0]} y={f.box[1]} {f.box[2]}x{f.box[3]} (largest of {len(faces)})"
    return whole_face(rgb), "no face detected; using the whole picture"


def face_from_data(data, split: str, row: int) -> tuple[np.ndarray, int]:
    """(uint8 (48, 48) face, label) of row `row` (0-based) of a split of a FerData."""
    images, labels = data.split(split)
    if not 0 <= row < len(images):
        raise FerkitError(f"--row {row}: out of range; the {split} split of {data.source} has rows 0..{len(images) - 1}")
    return images[row], int(labels[row])


def sample_faces(data, split: str = "val", n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """n faces of a split, one per emotion in turn (the first face of each class), for reports."""
    images, labels = data.split(split)
    picks = []
    for c in np.unique(labels[labels >= 0]):  # each label present, in order
        picks.append(np.flatnonzero(labels == c)[0])
    picks = (picks + [i for i in range(len(images)) if i not in picks])[:n]
    return images[picks], labels[picks]


def demo_face() -> np.ndarray:
    """A face that ships with scikit-image (the astronaut photo), for when no data or photo is given."""
    from skimage import data

    face, _ = face_from_image(data.astronaut())
    return face


def save_face(face: np.ndarray, path: str | Path) -> Path:
    """A uint8 face as a PNG file (atomically; missing folders are created)."""
    from PIL import Image

    return write_output(path, lambda f: Image.fromarray(np.asarray(face, np.uint8)).save(f, format="PNG"))
