"""--init-from: torchvision-named weights and ferkit checkpoints copied by name into a new model."""

import logging
import re

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


def test_a_head_of_other_emotions_is_not_copied_even_at_the_same_width(tiny_checkpoint, caplog):
    """FER2013's 7 outputs into a RAF-DB model's 7 (other order): copied, each output would name the wrong emotion."""
    rafdb = label_set("rafdb")
    model = create_model(tiny_spec(), rafdb)
    before = model.state_dict()["classifier.weight"].clone()
    with caplog.at_level(logging.INFO, "ferkit"):
        counts = init_from(model, tiny_checkpoint, emotions=rafdb.emotions)
    assert counts["head"] == ["classifier.weight", "classifier.bias"] and torch.equal(model.state_dict()["classifier.weight"], before)
    assert "a new head: classifier (the file's outputs are angry, disgust, fear, happy, sad, surprise, neutral; this model's" in caplog.text
    assert init_from(create_model(tiny_spec(), rafdb), tiny_checkpoint)["head"] == []  # emotions not given: by shape, as before


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
    config = tmp_path / "config.json"  # was torch's advice to load it with weights_only=False
    config.write_text('{"model": "shallow"}')
    with pytest.raises(FerkitError, match=r"config.json: not a readable weights file \(.*\); not a PyTorch file$"):
        init_from(create_model("resnet18"), config)
    with pytest.raises(FerkitError, match="a folder without best.pt or last.pt"):
        init_from(create_model("resnet18"), tmp_path)


def test_weights_of_another_width_are_an_error_not_eight_step_counters_loaded(tmp_path):
    """(--init-from fer2013 into --model tiny: the names fit, no shape did, and it said "loaded 8
    tensors" (batch norm's counters) and blamed the head's 7 outputs against 7)"""
    wide = tmp_path / "wide.pth"
    torch.save(create_model("vgg-wide").state_dict(), wide)
    with pytest.raises(FerkitError, match=r"the names fit but no weight's shape does \(first: features\.0\.0\.weight .* another network's width"):
        init_from(create_model("tiny"), wide)


def test_a_head_of_another_input_width_is_said_so(tiny_checkpoint, caplog):
    from dataclasses import replace

    from ferkit.config import FCSpec

    wider = create_model(replace(tiny_spec(), fcs=[FCSpec(64, batch_norm=True)]))  # the convs fit, the FC layer and head do not
    with caplog.at_level(logging.INFO, "ferkit"):
        assert init_from(wider, tiny_checkpoint)["head"] == ["classifier.weight"]
    assert "a new head: classifier (it takes 32 features in the file, 64 here)" in caplog.text  # was "7 outputs in the file, 7 here"


def test_a_run_folder_with_only_its_last_pt_initialises(tiny_run, tmp_path):
    """(a run stopped before it wrote best.pt was "no such file")"""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "last.pt", run / "last.pt")
    init_from(create_model(tiny_spec()), run)
    graph = tmp_path / "m.onnx"
    graph.write_bytes(b"an exported graph")  # was torch's UnpicklingError with its weights_only advice
    with pytest.raises(FerkitError, match=r"m.onnx: an ONNX graph, whose weights torch cannot load; give the checkpoint \(.pt\)"):
        init_from(create_model("resnet18"), graph)
    from ferkit.checkpoint import read_checkpoint

    with pytest.raises(FerkitError, match=r"m.onnx: an ONNX graph, not a checkpoint; give the .pt file it was exported from"):
        read_checkpoint(graph)  # `ferkit export m.onnx`, `visualize m.onnx`


@pytest.mark.parametrize("tensor,why", [
    (lambda w: torch.quantize_per_tensor(w, 0.1, 0, torch.qint8), "is quantized (dequantize() it)"),
    (lambda w: w.to_sparse(), "is sparse (to_dense() it)"),
    (lambda w: w.to("meta"), "is on the meta device"),
    (lambda w: torch.full_like(w, float("nan")), "is not finite (nan or inf)"),  # trained as a nan loss blamed on --lr
    (lambda w: (w * 100).to(torch.int8), "is int8 (whole numbers) where the model has float weights"),  # loaded as they were
])
def test_weights_load_state_dict_cannot_copy_or_should_not_are_one_line(tmp_path, tensor, why):
    model = create_model("resnet18")
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    weights["conv1.weight"] = tensor(weights["conv1.weight"])
    torch.save(weights, tmp_path / "odd.pth")
    with pytest.raises(FerkitError, match=re.escape(f"tensor 'conv1.weight' {why}")):
        init_from(model, tmp_path / "odd.pth")


def test_init_from_is_checked_before_any_work(tmp_path):
    with pytest.raises(FerkitError, match="--init-from missing.pth: no such file"):
        fit(resolve_config("shallow", data="nowhere.csv", init_from="missing.pth"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="--init-from must be a weights file"):
        TrainConfig(init_from=" ")


# ---------------------------------------------------------------- MobileNetV2 from torchvision's file


def test_train_init_from_torchvision_mobilenet_v2_weights(tmp_path, caplog):
    """mobilenet_v2-b0353104.pth as torchvision saves it: RGB features.0.0, 1000 classes in
    classifier.1; here our own net's state_dict (torchvision's names) with random values."""
    gen = torch.Generator().manual_seed(2)
    sd = create_model(ModelSpec(backbone="mobilenet_v2", channels=3, in_size=224, num_classes=1000)).state_dict()
    sd = {k: (torch.rand(v.shape, generator=gen) + 0.5 if v.is_floating_point() else v + 3) for k, v in sd.items()}
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(sd, path)
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=8)
    cfg = resolve_config("mobilenet_v2", data=str(csv), epochs=1, batch_size=8, lr=1e-9, init_from=str(path), tta=False)
    with caplog.at_level(logging.INFO, "ferkit"):
        history = fit(cfg, tmp_path / "run", progress=False)
    assert len(history) == 1 and history[0]["train_loss"] > 0
    assert "loaded 312 tensors, skipped 2 of the file's, 0 of the model's missing" in caplog.text
    assert "a new head: classifier.1 (1000 outputs in the file, 7 here)" in caplog.text
    assert "features.0.0.weight converted from 3 -> 1 input channels" in caplog.text
    state = read_checkpoint(tmp_path / "run" / "best.pt")["state_dict"]
    assert torch.allclose(state["features.0.0.weight"], sd["features.0.0.weight"].sum(1, keepdim=True), atol=1e-5)
    assert torch.allclose(state["features.9.conv.1.0.weight"], sd["features.9.conv.1.0.weight"], atol=1e-5)
    assert state["classifier.1.weight"].shape == (7, 1280)


# ---------------------------------------------------------------- --freeze and --backbone-lr


def _one_epoch(model, cfg):
    """A training epoch of 8 random faces (one step at batch 8) through train.py's own loop and optimizer."""
    from ferkit.train import Batches, _optimizer, _scheduler, train_one_epoch

    gen = torch.Generator().manual_seed(0)
    size = model.spec.in_size
    data = Batches(torch.randn(8, 1, size, size, generator=gen), torch.arange(8) % 7)
    opt = _optimizer(model, cfg)
    train_one_epoch(model, data, opt, _scheduler(opt, cfg, 1), cfg, gen, torch.device("cpu"))
    return opt


@pytest.mark.parametrize("model,n,frozen,trained", [
    ("resnet18", 2, ("conv1.", "bn1.", "layer1."), ("layer2.", "layer4.")),
    ("mobilenet_v2", 4, ("features.0.", "features.1.", "features.2.", "features.3."), ("features.4.", "features.18.")),
    ("tiny", 1, ("features.0.",), ("features.1.", "fc.")),
    ("tiny", -1, ("features.", "fc."), ()),
])
def test_freeze_keeps_frozen_layers_and_their_batch_norms_while_the_rest_trains(model, n, frozen, trained):
    from ferkit.finetune import freeze

    torch.manual_seed(0)
    net = create_model(tiny_spec() if model == "tiny" else model)
    names = freeze(net, n)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = TrainConfig(model="shallow", lr=0.1, l2=0.01, optimizer="sgd", batch_size=8, flip=False, freeze=n)
    opt = _one_epoch(net, cfg)
    after = net.state_dict()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for k, p in net.named_parameters():
        assert p.requires_grad == (not k.startswith(frozen)) and (id(p) in in_opt) == p.requires_grad, k
    assert names and all(k.startswith(frozen) for k in names)
    for k in after:
        if k.startswith(frozen):  # weights, batch norms' scale and shift, and their running statistics
            assert torch.equal(after[k], before[k]), k
        elif k.startswith(trained + (net.head + ".",)) and not k.endswith("num_batches_tracked"):
            assert not torch.equal(after[k], before[k]), k
    assert net.training  # the model trains; only the frozen batch norms were put in eval mode
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               and all(not p.requires_grad for p in m.parameters()))


def test_freeze_counts_layers_and_refuses_too_many(tmp_path):
    from ferkit.finetune import freeze

    for name, stages in (("resnet18", 5), ("resnet34", 5), ("mobilenet_v2", 19), ("deep", 6), ("vgg", 8)):
        net = create_model(name)
        assert len(net.stages()) == net.spec.stages() == stages, name
        params = {k for k, _ in net.named_parameters()}
        staged = {k for k in params if k.startswith(tuple(p for s in net.stages() for p in s))}
        assert staged == {k for k in params if not k.startswith(net.head + ".")}, name  # every layer but the head
    with pytest.raises(ConfigError, match=r"--freeze 6: this model has 5 layers before its head"):
        freeze(create_model("resnet18"), 6)
    with pytest.raises(ConfigError, match=r"--freeze 6: resnet18 has 5 layers before its head to freeze"):
        fit(resolve_config("resnet18", data="nowhere.csv", freeze=6), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match=r"--freeze must be >= -1"):
        TrainConfig(freeze=-2)
    with pytest.raises(ConfigError, match=r"--backbone-lr must be > 0"):
        TrainConfig(backbone_lr=0.0)


def test_a_backbone_lr_with_every_layer_frozen_is_said_to_do_nothing(tmp_path, caplog):
    """It was taken without a word: no backbone parameter trains, so it changed nothing."""
    for freeze, said in ((-1, True), (5, True), (2, False)):
        caplog.clear()
        with pytest.raises(FerkitError, match="nowhere.csv"), caplog.at_level(logging.WARNING):  # (said before the data)
            fit(resolve_config("resnet18", data=str(tmp_path / "nowhere.csv"), freeze=freeze, backbone_lr=0.1), tmp_path / "run",
                progress=False)
        assert (f"--backbone-lr 0.1: ignored with --freeze {freeze}, which freezes every layer before the head" in caplog.text) == said


@pytest.mark.parametrize("model,head", [("resnet18", "fc."), ("mobilenet_v2", "classifier.1."), ("tiny", "classifier.")])
def test_backbone_lr_gives_the_head_and_the_backbone_their_own_learning_rates(model, head):
    from ferkit.train import _optimizer, _scheduler

    net = create_model(tiny_spec() if model == "tiny" else model)
    cfg = TrainConfig(lr=0.05, l2=1e-4, optimizer="sgd", backbone_lr=0.1)
    opt = _optimizer(net, cfg)
    names = {id(p): k for k, p in net.named_parameters()}
    groups = [(g["lr"], g["weight_decay"], {names[id(p)] for p in g["params"]}) for g in opt.param_groups]
    assert [(lr, wd) for lr, wd, _ in groups] == [(0.05, 1e-4), (0.05, 0.0), (pytest.approx(0.005), 1e-4),
                                                  (pytest.approx(0.005), 0.0)]
    assert groups[0][2] | groups[1][2] == {k for k in names.values() if k.startswith(head)}
    assert groups[2][2] | groups[3][2] == {k for k in names.values() if not k.startswith(head)}
    # a one-cycle schedule peaks each group at its own rate
    opt = _optimizer(net, TrainConfig(lr=0.05, optimizer="sgd", backbone_lr=0.1, schedule="onecycle"))
    sched = _scheduler(opt, TrainConfig(lr=0.05, schedule="onecycle"), 10)
    for _ in range(2):
        opt.step()
        sched.step()
    head_lr, body_lr = opt.param_groups[0]["lr"], opt.param_groups[2]["lr"]
    assert body_lr == pytest.approx(head_lr * 0.1) and head_lr > 0.05 / 25
    # without it: the two groups runs have always had, one learning rate
    opt = _optimizer(net, TrainConfig(lr=0.05, optimizer="sgd"))
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]


def test_a_frozen_run_with_a_backbone_lr_resumes_exactly(tmp_path, monkeypatch):
    import json

    from test_train import _kill_after_checkpoint, _Killed

    (tmp_path / "tiny.json").write_text(json.dumps(tiny_spec().to_dict()))
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=24)
    cfg = resolve_config(str(tmp_path / "tiny.json"), data=str(csv), epochs=2, batch_size=8, optimizer="sgd",
                         schedule="onecycle", lr=0.05, freeze=1, backbone_lr=0.1, seed=4)
    straight = fit(cfg, tmp_path / "a", progress=False)
    _kill_after_checkpoint(monkeypatch, 1)
    with pytest.raises(_Killed):
        fit(cfg, tmp_path / "b", progress=False)
    monkeypatch.undo()
    resumed = fit(cfg, tmp_path / "b", resume=True, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed) == strip(straight)
    a, b = read_checkpoint(tmp_path / "a" / "last.pt"), read_checkpoint(tmp_path / "b" / "last.pt")
    assert [g["lr"] for g in a["optimizer"]["param_groups"]] == [g["lr"] for g in b["optimizer"]["param_groups"]]
    assert len(a["optimizer"]["param_groups"]) == 4
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    first = read_checkpoint(tmp_path / "a" / "best.pt")["state_dict"]
    assert torch.equal(first["features.0.0.weight"], a["state_dict"]["features.0.0.weight"])  # frozen throughout
