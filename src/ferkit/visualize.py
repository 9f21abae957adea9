"""What a trained network sees (numbers only; plots.py draws them): activation maps of every conv
layer for a face (paper Figure 9) and the first-layer filters (Figure 10). DeepDream is in dream.py.

Faces come from a photo (`face_from_image`: the largest detected face, else the whole picture) or
a data set's row (`face_from_data`), always as the model's input: uint8 (in_size, in_size) grey or
(in_size, in_size, 3) colour (48x48 grey for FER2013's models).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Classifier
from .config import problem
from .errors import FerkitError, quoted, shell_word
from .files import write_output
from .runs import is_whole


def _network(model):
    """The network of a Classifier (what ferkit.load_model returns and activation_maps takes), or a network
    itself (Classifier.model, ferkit.create_model's); else a FerkitError. first_layer_filters(clf) was
    "'Classifier' object has no attribute 'features'", as layer_names(clf) was for a ResNet."""
    if isinstance(model, Classifier):
        return model.model
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "features") and hasattr(model, "spec")):
        raise FerkitError(f"model must be a Classifier (ferkit.load_model) or its network (Classifier.model, "
                          f"ferkit.create_model); got {quoted(type(model).__name__)}")
    return model


def layer_names(model) -> list[str]:
    """One name per block of model.features (a row of the activation maps; DeepDream's --layer counts them), its
    first word the block's own: 'conv1 32@3x3 pool2' etc. for the paper's CNN, a ResNet's stem and stages by
    their module names (conv1, layer1-4) and MobileNetV2's blocks by theirs (features.0-18). A ResNet's were
    called conv1-conv5, and conv2 is the name of a conv in each of its blocks, not of layer1. model: a
    Classifier or its network."""
    model = _network(model)
    if model.spec.backbone == "mobilenet_v2":
        return [f"features.{i}" for i in range(len(model.features))]
    if model.spec.backbone is not None:  # a ResNet: model.ResNet.features is the stem and layer1-4
        return ["conv1 (stem)"] + [f"layer{i}" for i in range(1, len(model.features))]
    names = []
    for k, c in enumerate(model.spec.convs, 1):
        names.append(f"conv{k} {c.filters}@{c.kernel}x{c.kernel}" + (f" pool{c.pool}" if c.pool else ""))
    return names


def short_names(model) -> list[str]:
    """layer_names' first words, the blocks' own names: conv3, layer2, features.7 (for each layer of a model at
    once: layer_name builds them all for one)."""
    return [name.split(" ", 1)[0] for name in layer_names(model)]


def layer_name(model, layer: int) -> str:
    """The short name of block `layer` (1-based) of model.features: conv3, layer2, features.7."""
    names = short_names(model)  # (once: the check had them built again)
    return names[check_layer_number(model, layer, names) - 1]


def check_layer_number(model, layer, names: list[str] | None = None) -> int:
    """Block `layer` (1-based) of model.features (a Classifier's or its network's) as an int, else a FerkitError naming
    each block. The one check of a layer number (layer_name, dream.check_layer): layer_name(model, 0) was the last
    layer's name, unsaid, 99 an IndexError, and layer_objective(clf, face, '1') a TypeError. names: the model's
    short_names, where the caller has them."""
    if not is_whole(layer):  # (True was layer 1; numpy's ints are taken)
        raise FerkitError(problem("--layer", "a whole number", layer))
    names = short_names(model) if names is None else names
    if not 1 <= layer <= len(names):  # (a ResNet's 1..5 were 'conv layers', though it has 20 convs: its stem and 4 stages)
        listed = ", ".join(f"{k} {name}" for k, name in enumerate(names, 1))
        raise FerkitError(f"--layer {layer}: this model has layers 1..{len(names)} ({listed}); give one of those numbers")
    return int(layer)


def one_face(clf: Classifier, face) -> np.ndarray:
    """The one uint8 face of the model's input shape that `face` is, else an error naming the shape (as
    predict_proba's faces.face_batch names it): a cast turned 0..1 floats black without a word, and a face of
    another size (a whole photo, a grey face for a colour model) was torch's 'The size of tensor a ...'."""
    from .faces import face_batch

    faces = face_batch(face, clf.face_shape)
    if len(faces) != 1:
        raise FerkitError(f"this model's visualisations take one face ({', '.join(map(str, clf.face_shape))}); "
                          f"got {len(faces)} faces; give them one at a time")
    return faces[0]


@torch.no_grad()
def activation_maps(clf: Classifier, face: np.ndarray) -> list[np.ndarray]:
    """The output of each conv layer (after ReLU[, pool]) for one uint8 face (the model's input): [(C_k, H_k, W_k)] float32."""
    x, _ = clf.inputs(one_face(clf, face)[None])  # (1, C, H, W)
    maps = []
    for block in clf.model.features:  # one Sequential per conv layer
        x = block(x)
        maps.append(x[0].float().cpu().numpy())
    return maps


def first_layer_filters(model) -> np.ndarray:
    """The first conv layer's weights (C, channels, k, k) float32 (before batch norm, as the paper shows them) of a
    Classifier or its network."""
    conv = _network(model).features[0][0]
    return conv.weight.detach().float().cpu().numpy()


def face_from_image(src, spec=None) -> tuple[np.ndarray, str]:
    """(uint8 face, how it was found) from an image file: the largest detected face, else the whole
    picture (centre square) - so crops of face data sets work as they are. The face is the input of
    spec (a ModelSpec: its in_size and channels; None: 48x48 grey), framed as ferkit frames faces."""
    from .faces import find_faces, load_image

    # a video here is one face too many: `ferkit predict` reads videos (what load_image says of one), visualize does not
    clip = os.fsdecode(src) if isinstance(src, (str, os.PathLike)) else "clip.mp4"
    clip = shell_word(clip)  # (a name in -... is an option to ffmpeg: shell_word gives it ./)
    rgb = load_image(src, video_fix=f"visualize reads one face image: save a frame of it as an image "
                                    f"(e.g. `ffmpeg -i {clip} -frames:v 1 frame.png`) and give that")
    faces = find_faces(rgb)
    if faces:
        f = max(faces, key=lambda f: f.box[2] * f.box[3])
        how = f"face at x={f.box[0]} y={f.box[1]} {f.box[2]}x{f.box[3]} (largest of {len(faces)})"
        return (f.face if _grey48(spec) else _crop(rgb, f, spec)), how
    return _whole(rgb, spec), "no face detected; using the whole picture"


def _grey48(spec) -> bool:
    return spec is None or (spec.in_size, spec.channels) == (48, 1)


def _crop(rgb: np.ndarray, face, spec) -> np.ndarray:
    """A detected face at spec's input, framed as faces.find_faces frames its 48x48 grey crops."""
    from .detectors import get_detector
    from .faces import DETECTOR, MARGIN, crop_face, to_grey

    x, y, w, h = face.box
    s = max(w, h) * get_detector(DETECTOR).box_to_square
    square = (x + w / 2 - s / 2, y + h / 2 - s / 2, s, s)
    return crop_face(rgb if spec.channels == 3 else to_grey(rgb), square, MARGIN, spec.in_size, face.angle)


def _whole(rgb: np.ndarray, spec) -> np.ndarray:
    """The centre square of a picture at spec's input (faces.whole_face, in colour where the model is)."""
    from .faces import whole_face

    if spec is None or spec.channels == 1:
        return whole_face(rgb, spec.in_size if spec is not None else 48)
    import cv2

    h, w = rgb.shape[:2]
    n, size = min(h, w), spec.in_size
    sq = rgb[(h - n) // 2 : (h - n) // 2 + n, (w - n) // 2 : (w - n) // 2 + n]
    return cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA if n > size else cv2.INTER_LINEAR)


def face_from_data(data, split: str, row: int) -> tuple[np.ndarray, int]:
    """(uint8 face, label) of row `row` (0-based) of a split of a FerData."""
    images, labels = data.split(split)
    if not 0 <= row < len(images):
        rows = f"the {split} split of {data.source} has" if split != "all" else f"{data.source} has"
        raise FerkitError(f"--row {row}: out of range; {rows} rows 0..{len(images) - 1}")
    return images[row], int(labels[row])


def sample_faces(data, split: str = "val", n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """n faces of a split, one per emotion in turn (the first face of each class), for reports."""
    images, labels = data.split(split)
    picks = []
    for c in np.unique(labels[labels >= 0]):  # each label present, in order
        picks.append(np.flatnonzero(labels == c)[0])
    picks = (picks + [i for i in range(len(images)) if i not in picks])[:n]
    return images[picks], labels[picks]


def demo_face(spec=None) -> np.ndarray:
    """A face that ships with scikit-image (the astronaut photo), for when no data or photo is given,
    as spec's input (None: 48x48 grey)."""
    from skimage import data

    face, _ = face_from_image(data.astronaut(), spec)
    return face


def save_face(face: np.ndarray, path: str | Path) -> Path:
    """A uint8 face, grey (H, W) or RGB (H, W, 3), as a PNG file (atomically; missing folders are created)."""
    from PIL import Image

    return write_output(path, lambda f: Image.fromarray(np.asarray(face, np.uint8)).save(f, format="PNG"))
