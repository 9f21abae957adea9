"""Tiny synthetic FER2013 data and a tiny trained checkpoint, shared by every test."""

from __future__ import annotations

import contextlib
import errno
import gzip
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.config import ConvSpec, FCSpec, ModelSpec

torch.set_num_threads(1)  # tests are tiny; one thread avoids oversubscribing a 2-core machine
SHARED = Path(__file__).resolve().parents[1] / "../shared/data/fer2013/fer2013.csv.gz"


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces (n, 48, 48) whose class is learnable: a bright bar at a class-dependent row."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 7
    images = rng.integers(0, 80, size=(n, 48, 48)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4 + 6 * c : 8 + 6 * c, 8:40] = 220
    return images, labels


def write_fer_csv(path: Path, usages=("Training", "PublicTest", "PrivateTest"), n: int = 42, gz: bool = False, header="emotion,pixels,Usage") -> Path:
    """A FER2013-format CSV with n rows per usage."""
    lines = [header]
    for k, usage in enumerate(usages):
        images, labels = synthetic_faces(n, seed=k)
        for img, lab in zip(images, labels):
            lines.append(f"{lab},{' '.join(map(str, img.ravel()))},{usage}")
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def write_image_folder(root: Path, classes=("happy", "sad"), n: int = 4) -> Path:
    """An image-folder data set ROOT/<class>/*.png of n synthetic 48x48 grey faces a class."""
    from PIL import Image

    faces, _ = synthetic_faces(n * len(classes))
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(faces[k * n + i]).save(root / cls / f"{cls}_{i}.png")
    return root


class FullDisk:
    """A file on a disk with room for `room` more bytes: each write stops where the room ends and
    raises ENOSPC, as a real full disk (torch.save's zip writer then raises a RuntimeError of its own)."""

    def __init__(self, f, room: int = 1000):
        self.f, self.room = f, room

    def write(self, data):
        n = min(len(data), self.room)
        self.f.write(bytes(data[:n]))
        self.room -= n
        if n < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return n

    def __getattr__(self, attr):
        return getattr(self.f, attr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@contextlib.contextmanager
def deep_folder(root: Path) -> Iterator[Path]:
    """root/a/a/.../a, nested deeper than Python's stack, removed again level by level afterwards: pathlib's
    mkdir(parents=True) and shutil.rmtree (pytest's cleanup of old tmp_paths) recurse once a level."""
    folders = [root]
    for _ in range(sys.getrecursionlimit() + 50):
        folders.append(folders[-1] / "a")
    for f in folders:
        f.mkdir()
    try:
        yield folders[-1]
    finally:
        shutil.rmtree(folders[-1])
        for f in reversed(folders[1:-1]):
            f.rmdir()


def tiny_spec(hog: bool = False) -> ModelSpec:
    """A model small enough to train in a second."""
    from ferkit.config import HogSpec

    return ModelSpec(convs=[ConvSpec(8, 3, pool=2), ConvSpec(16, 3, pool=2)], fcs=[FCSpec(32, batch_norm=True)],
                     hog=HogSpec(pixels_per_cell=12) if hog else None)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    """Keep the data/HOG caches of each test in its own temporary folder."""
    monkeypatch.setenv("FERKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    return write_fer_csv(tmp_path / "fer2013.csv")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder of a tiny model trained 3 epochs on synthetic data (best.pt, last.pt, history)."""
    import json

    from ferkit.train import fit, resolve_config

    root = tmp_path_factory.mktemp("tiny_run")
    csv = write_fer_csv(root / "fer.csv", n=84)
    spec_file = root / "tiny.json"
    spec_file.write_text(json.dumps(tiny_spec().to_dict()))
    cfg = resolve_config(str(spec_file), data=str(csv), epochs=3, batch_size=32, lr=3e-3)
    fit(cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run / "best.pt"


@pytest.fixture(scope="session")
def tiny_hog_run(tmp_path_factory) -> Path:
    """A run folder of a tiny CNN+HOG hybrid trained 1 epoch on synthetic data (what no ONNX graph can hold)."""
    import json

    from ferkit.train import fit, resolve_config

    root = tmp_path_factory.mktemp("tiny_hog_run")
    csv = write_fer_csv(root / "fer.csv", n=42)
    spec_file = root / "tiny-hog.json"
    spec_file.write_text(json.dumps(tiny_spec(hog=True).to_dict()))
    fit(resolve_config(str(spec_file), data=str(csv), epochs=1, batch_size=42, threads=1), root / "run", progress=False)
    return root / "run"
