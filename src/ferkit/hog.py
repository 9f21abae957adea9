"""HOG features of grey faces via scikit-image, computed in parallel and cached per data set and spec.

scikit-image's `hog` works on one image at a time (mostly Python overhead for a small face), so large sets are cut into chunks computed by worker processes (joblib), and the
result is cached on disk keyed by the images' content and the HOG spec.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from .config import HogSpec
from .data import cache_dir
from .errors import FerkitError
from .files import atomic_write

CACHE_MIN = 1000  # smaller sets are cheaper to compute than to hash, save and load
PARALLEL_MIN = 4000  # below this, starting worker processes costs more than it saves
MAX_JOBS = 256  # FERKIT_JOBS above this is a typo: each worker holds its share of the faces


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


def _hog_many(images: np.ndarray, spec: HogSpec) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, D), one image after the other."""
    if not len(images):
        return np.zeros((0, hog_dim(spec, images.shape[-1])), np.float32)
    return np.stack([_hog_one(img, spec) for img in images])


def hog_dim(spec: HogSpec, size: int = 48) -> int:
    """Length of the HOG vector of one size x size face."""
    return int(_hog_one(np.zeros((size, size), np.uint8), spec).shape[0])


def default_jobs() -> int:
    """Worker processes for large sets: $FERKIT_JOBS (1..MAX_JOBS), else the CPUs this process may use (at most 8)."""
    given = os.environ.get("FERKIT_JOBS", "").strip()
    if given:
        if not (given.isascii() and given.isdigit() and 1 <= int(given) <= MAX_JOBS):  # ("²".isdigit() is True)
            raise FerkitError(f"FERKIT_JOBS={given!r}: must be a whole number of processes in 1..{MAX_JOBS}; "
                              "unset it for one a CPU (at most 8)")
        return int(given)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8))


def compute_hog(images: np.ndarray, spec: HogSpec, n_jobs: int | None = None) -> np.ndarray:
    """HOG of each face, uint8 (N, H, W) -> float32 (N, D), in n_jobs processes for large sets.

    The result is identical to computing one image after the other (same scikit-image call)."""
    n_jobs = default_jobs() if n_jobs is None else max(1, n_jobs)
    if n_jobs == 1 or len(images) < PARALLEL_MIN:
        return _hog_many(images, spec)
    from joblib import Parallel, delayed

    chunks = np.array_split(images, n_jobs * 4)  # a few chunks per worker evens out their speeds
    return np.concatenate(Parallel(n_jobs=n_jobs)(delayed(_hog_many)(c, spec) for c in chunks))


def cache_path(images: np.ndarray, spec: HogSpec) -> Path:
    """Where the HOG of these images (by content) with this spec is cached ($FERKIT_CACHE or ~/.cache/ferkit)."""
    h = hashlib.sha1(repr(images.shape).encode())
    h.update(np.ascontiguousarray(images).data)
    spec_key = f"o{spec.orientations}p{spec.pixels_per_cell}c{spec.cells_per_block}"
    return cache_dir() / f"hog-{h.hexdigest()[:16]}-{spec_key}.npy"


def hog_features(images: np.ndarray, spec: HogSpec, cache: bool = True, n_jobs: int | None = None) -> np.ndarray:
    """HOG of each uint8 face (N, 48, 48) -> float32 (N, D), cached on disk by content and spec."""
    path = cache_path(images, spec) if cache and len(images) >= CACHE_MIN else None
    if path is not None and path.exists():
        try:
            out = np.load(path)
            if out.shape[0] == len(images):
                return out
        except (OSError, ValueError, EOFError):  # (EOFError: an empty file)
            pass  # a broken cache file is rebuilt below
    out = compute_hog(images, spec, n_jobs)
    if path is not None:
        try:  # atomic: several processes (e.g. search workers) may write the same entry at once
            atomic_write(path, lambda f: np.save(f, out))
        except OSError as e:  # a read-only or full cache folder costs speed next time, not this run
            logging.getLogger(__name__).warning("cannot write the HOG cache %s (%s)", path, e.strerror or e)
    return out
