"""HOG features of 48x48 faces via scikit-image, cached per data set and spec."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .config import HogSpec


def _hog_one(img: np.ndarray, spec: HogSpec) -> np.ndarray:
    from skimage.feature import hog

    return hog(
        img,
        orientations=spec.orientations,
        pixels_per_cell=(spec.pixels_per_cell, spec.pixels_per_cell),
        cells_per_block=(spec.cells_per_block, spec.cells_per_block),
        block_norm="L2-Hys",
        feature_vector=True,
    ).astype(np.float32)


def hog_dim(spec: HogSpec, size: int = 48) -> int:
    """Length of the HOG vector of one size x size face."""
    return int(_hog_one(np.zeros((size, size), np.uint8), spec).shape[0])


def hog_features(images: np.ndarray, spec: HogSpec, cache: bool = True) -> np.ndarray:
    """HOG of each uint8 face (N, 48, 48) -> float32 (N, D), cached on disk by content and spec."""
    path = None
    if cache and len(images) >= 1000:  # small batches are cheaper to compute than to hash and load
        key = hashlib.sha1(images.tobytes()).hexdigest()[:16]
        spec_key = f"o{spec.orientations}p{spec.pixels_per_cell}c{spec.cells_per_block}"
        root = Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))
        path = root / f"hog-{key}-{spec_key}.npy"
        if path.exists():
            return np.load(path)
    out = np.stack([_hog_one(img, spec) for img in images]) if len(images) else np.zeros((0, hog_dim(spec)), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out
