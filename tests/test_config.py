import json

import pytest

from ferkit.config import ConvSpec, ModelSpec, TrainConfig, override_spec
from ferkit.errors import ConfigError


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as e:
        TrainConfig(batch_size=0, lr=-1, optimizer="rmsprop", label_smoothing=2)
    msg = str(e.value)
    for flag in ("--batch-size=0", "--lr=-1", "--optimizer='rmsprop'", "--label-smoothing=2"):
        assert flag in msg


def test_spec_problems_name_the_layer_and_field():
    with pytest.raises(ConfigError) as e:
        ModelSpec(convs=[{"filters": 0}, {"dropout": 1.5, "pool": 1}], fcs=[{"units": 0}])
    msg = str(e.value)
    assert "convs[0].filters=0" in msg and "convs[1].dropout=1.5" in msg and "convs[1].pool=1" in msg and "fcs[0].units=0" in msg


def test_spec_that_shrinks_to_nothing():
    with pytest.raises(ConfigError, match="shrinks to nothing"):
        ModelSpec(convs=[ConvSpec(8, 3, pool=2)] * 7)


def test_unknown_field_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown field.*filterz.*known fields"):
        ModelSpec.from_dict({"convs": [{"filterz": 3}]})


def test_from_file_json_and_yaml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"model": "deep", "epochs": 3}))
    (tmp_path / "c.yaml").write_text("model: deep\nepochs: 3\n")
    assert TrainConfig.from_file(tmp_path / "c.json") == TrainConfig.from_file(tmp_path / "c.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        TrainConfig.from_file(tmp_path / "bad.yaml")


def test_spec_round_trip_and_overrides():
    spec = ModelSpec(convs=[ConvSpec(8)], fcs=[{"units": 16}])
    d = override_spec(spec.to_dict(), {"fcs.0.units": 64, "convs.0.dropout": 0.3})
    again = ModelSpec.from_dict(d)
    assert again.fcs[0].units == 64 and again.convs[0].dropout == 0.3
    with pytest.raises(ConfigError, match="--set fcs.3.units"):
        override_spec(spec.to_dict(), {"fcs.3.units": 1})
