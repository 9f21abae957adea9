import json
import re
from pathlib import Path

import pytest
import torch

from conftest import tiny_spec
from ferkit.config import ConvSpec, ModelSpec, TrainConfig
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


def test_labels_go_by_name_too():
    """(create_model("tiny", labels="ferplus") was AttributeError: 'str' object has no attribute 'num_classes')"""
    assert create_model("tiny", labels="ferplus").eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 8)
    with pytest.raises(ConfigError, match="labels must be one of fer2013, ferplus"):
        create_model("tiny", labels="fer+")


def test_create_model_names_a_bad_argument_and_takes_a_spec_file_as_a_path(tmp_path):
    """(labels=5 or a list of names was AttributeError: 'int' object has no attribute 'num_classes'; a list for
    the model dict's TypeError 'unhashable type'; a spec file given as a Path was 'unknown model PosixPath(...)')"""
    for labels in (5, ["happy", "sad"]):
        with pytest.raises(ConfigError, match=re.escape(f"labels must be None, a label set's name (fer2013, ferplus, "
                                                        f"rafdb, affectnet, data) or a LabelSet; got {labels!r}")):
            create_model("tiny", labels=labels)
    with pytest.raises(ConfigError, match=re.escape("unknown model ['tiny']; choose one of")):
        create_model(["tiny"])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    assert count_params(create_model(spec)) == count_params(create_model(str(spec)))


def test_a_path_is_always_a_spec_file(tmp_path, monkeypatch):
    """(create_model(Path("lite")) built the lite preset: the Path was read as its str, a preset's name)"""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as missing:  # `train --model missing.json`'s error
        create_model("missing.json")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing.value))}$"):
        create_model(Path("missing.json"))
    with pytest.raises(ConfigError, match=re.escape("lite: cannot read (No such file or directory); a Path names a spec "
                                                    "file: give the preset as a str, 'lite'")):
        create_model(Path("lite"))
    (tmp_path / "lite").write_text(json.dumps(tiny_spec().to_dict()))  # a spec file named like a preset, no suffix
    assert count_params(create_model(Path("lite"))) == count_params(create_model(tiny_spec()))
    assert count_params(create_model("lite")) == count_params(create_model(PRESETS["lite"].spec))  # a str: the preset


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
    with pytest.raises(ConfigError, match=r"--model must be a preset \(shallow, deep, .*resnet34, mobilenet_v2\) or a JSON/YAML model spec "
                                          r"file \(.json, .yaml, .yml\); got 'vgg-wdie'"):
        recipe("vgg-wdie")


def test_channels_and_input_size_build_the_net():
    spec = ModelSpec(convs=[ConvSpec(8, 3, pool=2), ConvSpec(16, 3, pool=2)], gap=True, channels=3, in_size=64, num_classes=7)
    m = create_model(spec).eval()
    assert m.features[0][0].in_channels == 3 and m.feature_shape == (16, 16, 16)
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 7)
    assert count_macs(m) == 64 * 64 * 8 * 9 * 3 + 32 * 32 * 16 * 9 * 8 + 16 * 7
    assert spec.parameters() == count_params(m)  # the spec counts the first conv over its 3 channels


def test_specs_without_channels_are_48_grey():
    d = PRESETS["shallow"].spec.to_dict()
    assert d["channels"] == 1 and d["in_size"] == 48 and d["backbone"] is None  # what checkpoints now record
    for key in ("channels", "backbone"):
        del d[key]  # a spec written before either existed
    spec = ModelSpec.from_dict(d)
    assert (spec.channels, spec.in_size, spec.backbone) == (1, 48, None)


def test_training_takes_any_input_size_and_channels():
    from ferkit.train import model_spec

    spec = model_spec(TrainConfig(model="shallow", overrides={"in_size": 64, "channels": 3}))
    assert (spec.face_shape, spec.num_classes) == ((64, 64, 3), 7)
    with pytest.raises(ConfigError, match=r"hog must be null with channels 3 \(HOG hybrids take grey faces"):
        model_spec(TrainConfig(model="shallow-hog", overrides={"channels": 3}))


@pytest.mark.parametrize("name,tensors,params", [("resnet18", 122, 11_689_512), ("resnet34", 218, 21_797_672)])
def test_resnets_have_torchvisions_names_and_shapes(name, tensors, params):
    # torchvision's resnet18/resnet34 (1000 ImageNet classes): 122/218 state_dict entries and
    # 11,689,512/21,797,672 parameters; here with RGB input and 7 classes in place of 1000
    m = create_model(ModelSpec(backbone=name, channels=3, in_size=224, num_classes=7))
    sd = m.state_dict()
    assert len(sd) == tensors and count_params(m) == params - 1000 * 513 + 7 * 513
    assert m.spec.parameters() == count_params(m)
    shapes = {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
              "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.weight": (128,),
              "layer4.1.bn2.num_batches_tracked": (), "fc.weight": (7, 512), "fc.bias": (7,)}
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    assert "layer1.0.downsample.0.weight" not in sd and not any(k.startswith("features") for k in sd)
    assert m.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 7, 7)  # torchvision's geometry at 224
    assert m.features[0][0] is m.conv1  # the stem and stages as a Sequential, for activation maps


def test_mobilenet_v2_has_torchvisions_names_and_shapes():
    # torchvision's mobilenet_v2() (width 1.0, 1000 classes): 314 state_dict entries (52 conv +
    # batch norm pairs, the classifier's linear) and 3,504,872 parameters
    m = create_model(ModelSpec(backbone="mobilenet_v2", channels=3, in_size=224, num_classes=1000))
    sd = m.state_dict()
    assert len(sd) == 314 and count_params(m) == 3_504_872 == m.spec.parameters()
    assert create_model("mobilenet_v2").spec.parameters() == count_params(create_model("mobilenet_v2"))  # grey, 7
    shapes = {"features.0.0.weight": (32, 3, 3, 3), "features.0.1.running_mean": (32,),
              "features.1.conv.0.0.weight": (32, 1, 3, 3), "features.1.conv.1.weight": (16, 32, 1, 1),
              "features.1.conv.2.weight": (16,), "features.2.conv.0.0.weight": (96, 16, 1, 1),
              "features.2.conv.1.0.weight": (96, 1, 3, 3), "features.2.conv.2.weight": (24, 96, 1, 1),
              "features.2.conv.3.num_batches_tracked": (), "features.14.conv.0.0.weight": (576, 96, 1, 1),
              "features.17.conv.2.weight": (320, 960, 1, 1), "features.18.0.weight": (1280, 320, 1, 1),
              "features.18.1.bias": (1280,), "classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    assert list(sd)[:2] == ["features.0.0.weight", "features.0.1.weight"] and list(sd)[-2:] == ["classifier.1.weight", "classifier.1.bias"]
    assert not any(k.startswith("features.19") or k.startswith("features.1.conv.3") for k in sd)
    assert m.features[0][0].stride == (2, 2) and isinstance(m.classifier[0], torch.nn.Dropout) and m.classifier[0].p == 0.2
    assert isinstance(m.features[0][2], torch.nn.ReLU6)
    assert m.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 1280, 7, 7)  # torchvision's geometry at 224
    # residuals where torchvision has them (stride 1, same width): features.3, not features.2 or 4
    assert [i for i in range(1, 18) if m.features[i].use_res_connect] == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


def test_a_small_input_mobilenet_keeps_its_first_conv_at_stride_1():
    m = create_model("mobilenet_v2").eval()  # 48x48 grey: 48 -> 48 -> 24 -> 12 -> 6 -> 3
    assert m.features[0][0].in_channels == 1 and m.features[0][0].stride == (1, 1)
    assert m.forward_features(torch.zeros(1, 1, 48, 48)).shape == (1, 1280, 3, 3) == (1, *m.feature_shape)
    assert m(torch.zeros(2, 1, 48, 48)).shape == (2, 7) and m.spec.feature_size(48) == 3
    assert len(m.stages()) == m.spec.stages() == 19


def test_a_small_input_resnet_skips_the_stem_pool():
    m = create_model("resnet18").eval()  # 48x48 grey: no max pool after conv1, 48 -> 24 -> 24 -> 12 -> 6 -> 3
    assert m.conv1.in_channels == 1 and isinstance(m.maxpool, torch.nn.Identity)
    assert m.forward_features(torch.zeros(1, 1, 48, 48)).shape == (1, 512, 3, 3) == (1, *m.feature_shape)
    assert m.spec.feature_size(48) == 3
