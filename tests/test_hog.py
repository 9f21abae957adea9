import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from skimage.feature import hog as skimage_hog

from conftest import synthetic_faces, tiny_spec, write_fer_csv
from ferkit import hog
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.config import HogSpec, TrainConfig
from ferkit.data import mean_image
from ferkit.model import create_model
from ferkit.train import _optimizer, _scheduler, fit, make_batches, resolve_config, train_one_epoch


@pytest.mark.parametrize("spec", [HogSpec(), HogSpec(orientations=6, pixels_per_cell=12, cells_per_block=3)])
def test_hog_dim_matches_features_and_model(spec):
    faces, _ = synthetic_faces(5)
    f = hog.hog_features(faces, spec)
    cells = 48 // spec.pixels_per_cell
    blocks = cells - spec.cells_per_block + 1
    assert f.shape == (5, blocks * blocks * spec.cells_per_block ** 2 * spec.orientations) == (5, hog.hog_dim(spec))
    assert f.dtype == np.float32
    direct = skimage_hog(faces[3], orientations=spec.orientations, pixels_per_cell=(spec.pixels_per_cell,) * 2,
                         cells_per_block=(spec.cells_per_block,) * 2, block_norm="L2-Hys")
    assert np.allclose(f[3], direct, atol=1e-6)
    model = create_model(replace(tiny_spec(), hog=spec))
    assert model.hog_dim == f.shape[1]
    assert model(torch.zeros(5, 1, 48, 48), torch.from_numpy(f)).shape == (5, 7)


def test_parallel_hog_equals_serial(monkeypatch):
    monkeypatch.setattr(hog, "PARALLEL_MIN", 10)
    faces, _ = synthetic_faces(40, seed=3)
    spec = HogSpec(pixels_per_cell=12)
    assert np.array_equal(hog.compute_hog(faces, spec, n_jobs=2), hog.compute_hog(faces, spec, n_jobs=1))


def test_hog_cache_is_used_on_second_call(monkeypatch):
    monkeypatch.setattr(hog, "CACHE_MIN", 10)
    faces, _ = synthetic_faces(30, seed=1)
    spec = HogSpec(pixels_per_cell=12)
    first = hog.hog_features(faces, spec)
    assert hog.cache_path(faces, spec).exists()

    def fail(*a, **k):
        raise AssertionError("computed again instead of read from the cache")

    compute = hog.compute_hog
    monkeypatch.setattr(hog, "compute_hog", fail)
    assert np.array_equal(hog.hog_features(faces, spec), first)
    with pytest.raises(AssertionError):  # the key holds the spec and the content
        hog.hog_features(faces, HogSpec(pixels_per_cell=16))
    with pytest.raises(AssertionError):
        hog.hog_features(faces[:, :, ::-1].copy(), spec)
    monkeypatch.setattr(hog, "compute_hog", compute)
    for broken in (b"broken", b""):  # a broken or empty cache file is recomputed, not trusted
        hog.cache_path(faces, spec).write_bytes(broken)
        assert np.array_equal(hog.hog_features(faces, spec), first)


def test_flipped_samples_get_the_hog_of_the_flipped_face():
    faces, labels = synthetic_faces(28, seed=2)
    spec = tiny_spec(hog=True)
    data = make_batches(faces, labels, mean_image(faces), spec, flips=True)
    assert np.array_equal(data.hog_flip.numpy(), hog.hog_features(faces[:, :, ::-1].copy(), spec.hog))
    assert not torch.equal(data.hog, data.hog_flip)
    model = create_model(spec)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((args[0].clone(), args[1].clone())))
    cfg = TrainConfig(batch_size=7, lr=1e-3, l2=0.0, flip=True)
    opt = _optimizer(model, cfg)
    train_one_epoch(model, data, opt, _scheduler(opt, cfg, 4), cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    flipped = plain = 0
    for x, h in seen:
        for xi, hi in zip(x, h):
            j = next(j for j in range(len(data)) if torch.equal(xi, data.x[j]) or torch.equal(xi, data.x[j].flip(-1)))
            if torch.equal(xi, data.x[j]):
                assert torch.equal(hi, data.hog[j])
                plain += 1
            else:
                assert torch.equal(hi, data.hog_flip[j])
                flipped += 1
    assert flipped > 3 and plain > 3 and flipped + plain == 28


def test_hybrid_trains_and_its_checkpoint_predicts(tmp_path):
    csv_file = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=84)
    spec_file = tmp_path / "tiny-hog.json"
    spec_file.write_text(json.dumps(tiny_spec(hog=True).to_dict()))
    cfg = resolve_config(str(spec_file), data=str(csv_file), epochs=3, batch_size=28, lr=3e-3, threads=1)
    history = fit(cfg, tmp_path / "run", progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    clf = load_checkpoint(tmp_path / "run")
    assert clf.model.hog_dim == hog.hog_dim(tiny_spec(hog=True).hog) > 0
    faces, labels = synthetic_faces(84, seed=1)  # the PublicTest rows
    probs = clf.predict_proba(faces)
    assert probs.shape == (84, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # predict_proba computes HOG the way training did: it reproduces the checkpoint's validation accuracy
    best_epoch = read_checkpoint(tmp_path / "run" / "best.pt")["epoch"]
    assert (probs.argmax(1) == labels).mean() == pytest.approx(history[best_epoch - 1]["val_acc"], abs=1.5 / 84)
    with pytest.raises(ValueError, match="HOG hybrid"):
        clf.model(torch.zeros(1, 1, 48, 48))


def test_the_environment_variables_are_read_as_a_user_means_them(monkeypatch, tmp_path):
    from pathlib import Path

    from ferkit.data import cache_dir
    from ferkit.errors import FerkitError

    monkeypatch.setenv("FERKIT_CACHE", "")  # set but empty: the default (it was the current folder)
    assert cache_dir() == Path.home() / ".cache" / "ferkit"
    monkeypatch.setenv("FERKIT_CACHE", "~/c")  # a literal ./~ folder before
    assert cache_dir() == Path.home() / "c"
    for value, jobs in (("3", 3), (" 4 ", 4)):
        monkeypatch.setenv("FERKIT_JOBS", value)
        assert hog.default_jobs() == jobs
    monkeypatch.setenv("FERKIT_JOBS", "")  # unset in effect: one a CPU, at most 8
    assert 1 <= hog.default_jobs() <= 8
    for value in ("²", "0", "-1", "100000", "two"):  # "²".isdigit() is True: int() raised; 100000 workers were started
        monkeypatch.setenv("FERKIT_JOBS", value)
        with pytest.raises(FerkitError, match=f"FERKIT_JOBS={value!r}: must be a whole number of processes in 1..256"):
            hog.default_jobs()
