"""Photo degradations (--photo-aug): each moves a face the way it should, and the option is seeded."""

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from ferkit import augment
from ferkit.data import mean_image
from ferkit.preprocess import PIXEL_SCALE, to_tensor


def high_frequency(face: np.ndarray) -> float:
    """Energy of the differences between neighbouring pixels: what fine detail and noise are made of."""
    return float((np.diff(face, axis=0) ** 2).mean() + (np.diff(face, axis=1) ** 2).mean())


def noisy_face(seed: int = 0) -> np.ndarray:
    return synthetic_faces(1, seed)[0][0].astype(np.float32)  # noise 0-80 with a bright bar


def test_gamma_above_one_darkens_mid_greys_and_keeps_black_and_white():
    grey = np.array([[0.0, 64.0, 128.0, 192.0, 255.0]], np.float32)
    dark, light = augment.tone(grey, gamma=1.5), augment.tone(grey, gamma=0.7)
    assert (dark[0, 1:4] < grey[0, 1:4] - 5).all() and (light[0, 1:4] > grey[0, 1:4] + 5).all()
    assert dark[0, 0] == light[0, 0] == 0 and dark[0, 4] == light[0, 4] == 255


def test_brightness_shifts_and_contrast_scales_about_mid_grey():
    face = np.linspace(60, 200, 48 * 48, dtype=np.float32).reshape(48, 48)
    assert augment.tone(face, brightness=20).mean() == pytest.approx(face.mean() + 20, abs=1e-3)
    low = augment.tone(face, contrast=0.5)
    assert low.std() == pytest.approx(face.std() * 0.5, rel=1e-4)
    assert low.mean() == pytest.approx(128 + (face.mean() - 128) * 0.5, abs=1e-3)


def test_blur_and_downscale_upscale_remove_high_frequencies_and_keep_the_face():
    face = noisy_face()
    for out in (augment.blur(face, 1.0), augment.rescale(face, 0.5)):
        assert out.shape == face.shape and out.dtype == np.float32
        assert high_frequency(out) < 0.25 * high_frequency(face)
        assert abs(out.mean() - face.mean()) < 2  # the low frequencies (overall brightness, the bar) stay
        assert out[4:8, 12:36].mean() > 150  # the bright bar of class 0 survives
    checker = (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.float32)  # the finest detail there is
    assert augment.rescale(checker, 0.5).std() < 0.1 * checker.std()


def test_jpeg_loses_more_at_lower_quality():
    face = noisy_face()
    err = {q: np.abs(augment.jpeg(face, q) - face).mean() for q in (30, 90)}
    assert 0 < err[90] < err[30]
    out = augment.jpeg(face, 30)
    assert out.shape == face.shape and (out == out.round()).all() and 0 <= out.min() and out.max() <= 255
    assert high_frequency(out) < high_frequency(face)  # JPEG drops fine detail first


def _batch(n=16):
    faces, _ = synthetic_faces(n)
    mean = mean_image(faces)
    return to_tensor(faces, mean), mean


def test_photo_aug_is_seeded_and_changes_about_p_of_the_faces():
    x, mean = _batch(64)
    one = augment.photo(x, torch.Generator().manual_seed(7), 0.5, mean)
    assert torch.equal(one, augment.photo(x, torch.Generator().manual_seed(7), 0.5, mean))
    assert not torch.equal(one, augment.photo(x, torch.Generator().manual_seed(8), 0.5, mean))
    changed = (one - x).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 20 <= changed.sum() <= 44  # binomial(64, 0.5): mean 32, sd 4
    assert torch.equal(augment.photo(x, torch.Generator().manual_seed(7), 0.0, mean), x)  # off = identity
    every = augment.photo(x, torch.Generator().manual_seed(7), 1.0, mean)
    assert ((every - x).abs().amax(dim=(1, 2, 3)) > 1e-4).all() and torch.isfinite(every).all()


def test_photo_aug_works_in_pixels_not_on_centred_values():
    # A mean-subtracted face is about -1..1; degraded as if it were 0..255 pixels (mean and scale
    # forgotten), JPEG would crush it to black. In pixels, the face keeps its brightness.
    x, mean = _batch(8)
    g = torch.Generator().manual_seed(0)
    out = augment.photo(x, g, 1.0, mean)
    pixels_in, pixels_out = (t * PIXEL_SCALE + torch.from_numpy(mean) for t in (x, out))
    assert (pixels_out.mean(dim=(1, 2, 3)) - pixels_in.mean(dim=(1, 2, 3))).abs().max() < 40
