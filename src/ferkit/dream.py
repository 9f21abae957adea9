"""DeepDream (paper Figure 11): change a face by gradient ascent on one conv layer's activation.

    x <- x + step_size * g / mean|g|,   g = d objective(features[:layer](x)) / dx

over an image pyramid (octaves: the face shrunk by octave_scale each time, dreamed from the
smallest up, the detail carried to the next size), with random jitter (a roll of up to `jitter`
pixels before each step). The objective is the mean activation ("mean") or half the mean square
("l2", the L2 norm) of the layer's output. Works on any checkpoint; the model stays in eval mode
and its weights are not changed. Pixels stay in the valid 0..255 range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import Classifier
from .config import MAX_SEED, MAX_STEPS, bounded, problem
from .errors import FerkitError
from .preprocess import PIXEL_SCALE
from .runs import is_number, is_whole
from .visualize import check_layer_number, one_face

OBJECTIVES = ("l2", "mean")


@dataclass
class DreamSettings:
    layer: int | None = None  # block of model.features (a conv layer; a ResNet's stem or stage), 1-based; None = the middle one
    octaves: int = 3  # pyramid levels (1 = no pyramid)
    octave_scale: float = 1.4  # size ratio between levels
    steps: int = 20  # gradient steps per octave
    step_size: float = 0.01  # step length, relative to the gradient's mean magnitude
    jitter: int = 2  # random roll of up to this many pixels before each step
    objective: str = "l2"  # "l2" or "mean"
    seed: int = 0


def check_layer(clf: Classifier, layer: int | None) -> int:
    """The 1-based layer (default: the middle one); a clear error, naming each, when out of range."""
    if layer is None:
        return (len(clf.model.features) + 1) // 2
    return check_layer_number(clf, layer)


def _objective(acts: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, C, H, W) activations -> (B,) objective."""
    if kind == "mean":
        return acts.flatten(1).mean(1)
    return 0.5 * acts.flatten(1).pow(2).mean(1)


def layer_objective(clf: Classifier, faces: np.ndarray, layer: int, kind: str = "l2") -> np.ndarray:
    """The dream objective of conv layer `layer` (1-based) for uint8 faces (N, H, W[, C]), the model's input -> (N,)."""
    from .faces import face_batch

    if kind not in OBJECTIVES:
        raise FerkitError(f"objective {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    layer = check_layer(clf, layer)  # (features[:99] of 8 layers was the last one's objective, unsaid)
    x, _ = clf.inputs(face_batch(faces, clf.face_shape))
    with torch.no_grad():
        return _objective(clf.model.features[:layer](x), kind).cpu().numpy()


def check_settings(clf: Classifier, s: DreamSettings) -> int:
    """The conv layer `s` dreams on, once every setting is checked against the model: a clear error otherwise."""
    if s.objective not in OBJECTIVES:
        raise FerkitError(f"objective {s.objective!r}: choose one of {', '.join(OBJECTIVES)}")
    # counts are whole numbers and sizes real ones (steps=2.5, jitter=1.5 were TypeErrors of range and
    # torch.randint); numpy's are taken as Python's. The layer is check_layer's, last.
    for name, value, fits in [("--octaves", s.octaves, is_whole), ("--steps", s.steps, is_whole), ("--jitter", s.jitter, is_whole),
                              ("--octave-scale", s.octave_scale, is_number), ("--step-size", s.step_size, is_number),
                              ("seed", s.seed, is_whole)]:  # (seed: no flag; 'x', 1.5 were torch's RuntimeError)
        if not fits(value):
            raise FerkitError(problem(name, "a whole number" if fits is is_whole else "a number", value))
    for steps in bounded("--steps", s.steps, 0, MAX_STEPS):  # (steps of each octave; 0: the face itself)
        raise FerkitError(steps)
    for seed in bounded("seed", s.seed, 0, MAX_SEED):  # as TrainConfig's (2**70 was torch's OverflowError)
        raise FerkitError(seed)
    side = clf.spec.in_size
    if not (s.octaves >= 1 and s.octave_scale > 1 and 0 < s.step_size < math.inf and 0 <= s.jitter <= side):
        raise FerkitError(f"DeepDream settings: need --octaves >= 1, --octave-scale > 1, --step-size > 0 and "
                          f"finite, --jitter 0..{side} (the face's side); got {s.octaves}, {s.octave_scale}, "
                          f"{s.step_size}, {s.jitter}")
    # at most the face's side in pixels: past it the first octave shrinks the face to under a pixel, so only the
    # face itself is dreamed, whatever --octaves says (inf and 1e308 were taken and dreamed one octave, silently)
    if s.octave_scale > side:
        raise FerkitError(problem("--octave-scale", f"at most {side}, the face's side in pixels (a larger ratio shrinks "
                                  "it under a pixel: no octave but the face itself)", s.octave_scale))
    return check_layer(clf, s.layer)


def deep_dream(clf: Classifier, face: np.ndarray, settings: DreamSettings | None = None) -> np.ndarray:
    """The dreamed version of a uint8 face, the model's input (H, W) grey or (H, W, 3) colour, in its shape."""
    s = settings or DreamSettings()
    layer = check_settings(clf, s)
    jitter = int(s.jitter)  # (numpy's uint8 1 negated overflowed to 255)
    net = clf.model.features[:layer]
    clf.model.eval()
    gen = torch.Generator().manual_seed(int(s.seed))  # (numpy's int64 is no long to torch)
    base, _ = clf.inputs(one_face(clf, face)[None])  # (1, C, H, W), mean-subtracted, /128
    mean = torch.as_tensor(clf.mean, device=base.device)
    mean = mean.permute(2, 0, 1) if mean.dim() == 3 else mean[None]  # (C, H, W), as the inputs
    lo, hi = (0 - mean) / PIXEL_SCALE, (255 - mean) / PIXEL_SCALE  # valid pixel range in model units, per pixel

    size = base.shape[-1]
    min_size = _min_input(clf)
    sizes = [size]
    # a scale near 1 rounds back to the same size: such levels are no smaller, only the last one again
    # (--octave-scale 1.001 --octaves 100000000 filled the memory with them and never finished)
    while len(sizes) < s.octaves and min_size <= (smaller := round(sizes[-1] / s.octave_scale)) < sizes[-1]:
        sizes.append(smaller)
    detail = torch.zeros_like(base)
    x = base
    for n in reversed(sizes):  # smallest first
        octave = F.interpolate(base, size=(n, n), mode="bilinear", align_corners=False) if n != size else base
        detail = F.interpolate(detail, size=(n, n), mode="bilinear", align_corners=False)
        x = (octave + detail).detach()
        lo_n, hi_n = (F.interpolate(b[None], size=(n, n), mode="bilinear", align_corners=False) for b in (lo, hi))
        for _ in range(s.steps):
            dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen)) if jitter else (0, 0)
            xj = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
            (g,) = torch.autograd.grad(_objective(net(xj), s.objective).sum(), xj)
            g = torch.roll(g, (-dy, -dx), (2, 3))
            x = (x + s.step_size * g / g.abs().mean().clamp_min(1e-8)).clamp(lo_n, hi_n).detach()
        detail = x - octave
    out = x[0].permute(1, 2, 0).cpu().numpy().reshape(clf.mean.shape) * PIXEL_SCALE + clf.mean  # back to 0..255, (H, W[, C])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _min_input(clf: Classifier) -> int:
    """Smallest input side (at least 8) the conv stack turns into a feature map of at least 1x1."""
    return max(8, next(n for n in range(1, clf.spec.in_size + 1) if clf.spec.feature_size(n) >= 1))
