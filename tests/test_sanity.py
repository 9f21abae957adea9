import pytest

from conftest import synthetic_faces, tiny_spec
from ferkit.model import resolve_spec
from ferkit.sanity import LN7, initial_loss, overfit


@pytest.mark.parametrize("name", ["shallow", "deep"])
def test_initial_loss_is_close_to_ln7(name):
    x, y = synthetic_faces(64)
    assert abs(initial_loss(resolve_spec(name), x, y) - LN7) < 0.25


def test_overfit_small_subset_tiny():
    x, y = synthetic_faces(100, seed=3)
    r = overfit(tiny_spec(), x, y, steps=300, lr=3e-3)
    assert r["train_acc"] >= 0.99


def test_overfit_shallow_preset():
    x, y = synthetic_faces(28, seed=4)
    x[:, :4] = (x[:, :4] + (y[:, None, None] * 37)).astype(x.dtype)  # more per-image signal to memorise
    r = overfit(resolve_spec("shallow"), x, y, steps=60)
    assert r["train_acc"] >= 0.99
