
import pytest
import torch

from conftest import tiny_spec
from ferkit.config import TrainConfig
from ferkit.errors import ConfigError
from ferkit.model import PRESETS, count_macs, count_params, create_model, is_spec_file, list_models
from ferkit.recipes import RECIPES, recipe


def test_presets_follow_the_paper():
    shallow, deep = PRESETS["shallow"].spec, PRESETS["deep"].spec
    assert [(c.filters, c.kernel, c.pool) for c in shallow.convs] == [(32, 3, 0), (64, 3, 2)]
    assert all(c.batch_norm and c.dropout > 0 for c in shallow.convs) and [f.units for f in shallow.fcs] == [512]
    assert [(c.filters, c.kernel, c.stride, c.pool) for c in deep.convs] == [(64, 3, 1, 2), (128, 5, 1, 2), (512, 3, 1, 2), (512, 3, 1, 2)]
    assert all(c.batch_norm and c.dropout > 0 for c in deep.convs)
    assert [(f.units, f.batch_norm, f.dropout > 0) for f in deep.fcs] == [(256, True, True), (512, True, True)]
    assert {k: recipe("shallow")[k] for k in ("epochs", "lr", "l2")} == dict(epochs=30, lr=1e-3, l2=1e-6)
    assert {k: recipe("deep")[k] for k in ("epochs", "lr", "l2")} == dict(epochs=35, lr=1e-2, l2=1e-7)


@pytest.mark.parametrize("name", list_models())
def test_every_preset_builds_and_runs(name):
    m = create_model(name).eval()
    x = torch.zeros(2, 1, 48, 48)
    hog = torch.zeros(2, m.hog_dim) if m.hog_dim else None
    feats = m.forward_features(x)
    assert feats.shape[1:] == m.feature_shape
    assert m.forward_head(feats, hog).shape == (2, 7)
    assert count_macs(m) > 0 and count_params(m) > 0


def test_macs_of_a_known_layer():
    m = create_model(tiny_spec())
    # conv 8 3x3 on 48x48 + conv 16 3x3x8 on 24x24 + fc 16*12*12->32 + fc 32->7
    assert count_macs(m) == 48 * 48 * 8 * 9 + 24 * 24 * 16 * 9 * 8 + 16 * 12 * 12 * 32 + 32 * 7


def test_hybrid_needs_hog():
    m = create_model(tiny_spec(hog=True)).eval()
    with pytest.raises(ValueError, match="pass hog features"):
        m(torch.zeros(1, 1, 48, 48))


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'resnet'; choose one of shallow, deep"):
        create_model("resnet")


def test_every_preset_has_a_recipe_and_every_recipe_a_preset():
    assert list(RECIPES) == list(PRESETS)
    for name in PRESETS:
        cfg = TrainConfig.from_dict({**recipe(name), "model": name})  # each recipe is a valid config
        assert cfg.epochs and cfg.lr and cfg.l2 is not None, name
        assert not is_spec_file(name), f"preset {name!r} would be read as a spec file"


def test_an_unknown_preset_has_no_recipe():
    with pytest.raises(ConfigError, match=r"--model must be a preset \(shallow, deep, .*lite\) or a JSON/YAML model spec "
                                          r"file \(.json, .yaml, .yml\); got 'vgg-wdie'"):
        recipe("vgg-wdie")
