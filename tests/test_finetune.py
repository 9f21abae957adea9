"""--init-from: torchvision-named weights and ferkit checkpoints copied by name into a new model."""

import logging

import pytest
import torch

from conftest import tiny_spec, write_fer_csv
from ferkit.checkpoint import read_checkpoint
from ferkit.config import ModelSpec, TrainConfig
from ferkit.errors import ConfigError, FerkitError
from ferkit.finetune import init_from
from ferkit.labels import label_set
from ferkit.model import create_model
from ferkit.train import fit, resolve_config


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """What torchvision's resnet18(weights=...).state_dict() saved with torch.save looks like: RGB
    conv1, 1000 ImageNet classes, torchvision's names; random values, so every copy can be seen."""
    gen = torch.Generator().manual_seed(1)
    sd = create_model(ModelSpec(backbone="resnet18", channels=3, in_size=224, num_classes=8)).state_dict()
    sd = {k: (torch.rand(v.shape, generator=gen) + 0.5 if v.is_floating_point() else v + 3) for k, v in sd.items()}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512, generator=gen), torch.randn(1000, generator=gen)
    path = tmp_path_factory.mktemp("weights") / "resnet18-imagenet.pth"
    torch.save(sd, path)
    return path, sd


def test_torchvision_weights_fill_a_grey_48px_resnet_with_a_new_head(torchvision_file, caplog):
    path, sd = torchvision_file
    model = create_model("resnet18")  # 48x48 grey, 7 classes
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("fc.")}
    with caplog.at_level(logging.INFO, "ferkit"):
        counts = init_from(model, path)
    got = model.state_dict()
    assert counts["loaded"] == 120 and counts["skipped"] == 2 and counts["missing"] == 0  # 122 tensors less fc's 2
    assert torch.allclose(got["conv1.weight"], sd["conv1.weight"].sum(1, keepdim=True))  # RGB summed for grey
    assert got["conv1.weight"].shape == (64, 1, 7, 7)
    for k in sd:
        if not k.startswith(("fc.", "conv1.")):
            assert torch.equal(got[k], sd[k]), k
    assert all(torch.equal(got[k], v) for k, v in head.items())  # the head is left at its initialisation
    assert "loaded 120 tensors, skipped 2 of the file's, 0 of the model's missing" in caplog.text
    assert "a new head: fc (1000 outputs in the file, 7 here) is left at its initialisation" in caplog.text
    assert "conv1.weight converted from 3 -> 1 input channels (summed over the colour channels)" in caplog.text


def test_train_init_from_torchvision_weights_runs_a_step(torchvision_file, tmp_path, caplog):
    path, sd = torchvision_file
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=8)
    cfg = resolve_config("resnet18", data=str(csv), epochs=1, batch_size=8, lr=1e-9, init_from=str(path), tta=False)
    with caplog.at_level(logging.INFO, "ferkit"):
        history = fit(cfg, tmp_path / "run", progress=False)
    assert len(history) == 1 and history[0]["train_loss"] > 0
    assert "loaded 120 tensors" in caplog.text
    state = read_checkpoint(tmp_path / "run" / "best.pt")["state_dict"]
    # one step at lr 1e-9: the weights are the file's (the first conv summed over its channels)
    assert torch.allclose(state["conv1.weight"], sd["conv1.weight"].sum(1, keepdim=True), atol=1e-5)
    assert torch.allclose(state["layer3.1.conv2.weight"], sd["layer3.1.conv2.weight"], atol=1e-5)
    assert state["fc.weight"].shape == (7, 512)


def test_a_ferkit_checkpoint_initialises_a_model_of_another_label_set(tiny_checkpoint, caplog):
    src = read_checkpoint(tiny_checkpoint)["state_dict"]
    model = create_model(tiny_spec(), label_set("ferplus"))  # 8 classes: a new classifier
    with caplog.at_level(logging.INFO, "ferkit"):
        counts = init_from(model, tiny_checkpoint)
    got = model.state_dict()
    assert counts["loaded"] == len(src) - 2 and counts["missing"] == 0 and counts["head"] == ["classifier.weight", "classifier.bias"]
    assert all(torch.equal(got[k], src[k]) for k in src if not k.startswith("classifier."))
    assert got["classifier.weight"].shape == (8, 32)
    assert "(ferkit checkpoint)" in caplog.text and "a new head: classifier (7 outputs in the file, 8 here)" in caplog.text


def test_train_init_from_a_ferkit_checkpoint(tiny_checkpoint, tmp_path, caplog):
    import json

    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(json.dumps(tiny_spec().to_dict()))
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=8)
    cfg = resolve_config(str(spec_file), data=str(csv), epochs=1, batch_size=8, lr=1e-9, init_from=str(tiny_checkpoint))
    with caplog.at_level(logging.INFO, "ferkit"):
        fit(cfg, tmp_path / "run", progress=False)
    src = read_checkpoint(tiny_checkpoint)["state_dict"]
    state = read_checkpoint(tmp_path / "run" / "best.pt")["state_dict"]
    assert f"loaded {len(src)} tensors, skipped 0 of the file's, 0 of the model's missing" in caplog.text
    assert torch.allclose(state["classifier.weight"], src["classifier.weight"], atol=1e-5)  # same 7 classes: head kept
    assert json.loads((tmp_path / "run" / "config.json").read_text())["init_from"] == str(tiny_checkpoint)


def test_a_file_with_no_matching_names_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.stem.weight": torch.zeros(3), "encoder.head.bias": torch.zeros(2)}, path)
    with pytest.raises(FerkitError, match=r"none of its 2 tensor names fit this model \(encoder.stem.weight, "):
        init_from(create_model("resnet18"), path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not weights")
    with pytest.raises(FerkitError, match="not a readable weights file"):
        init_from(create_model("resnet18"), junk)


def test_init_from_is_checked_before_any_work(tmp_path):
    with pytest.raises(FerkitError, match="--init-from missing.pth: no such file"):
        fit(resolve_config("shallow", data="nowhere.csv", init_from="missing.pth"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="--init-from must be a weights file"):
        TrainConfig(init_from=" ")
