import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import FullDisk, tiny_spec, write_fer_csv
from ferkit import augment, train
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.errors import FerkitError
from ferkit.train import Batches, evaluate, fit, make_batches, resolve_config


def test_resolve_config_layers_preset_file_and_flags():
    cfg = resolve_config("deep")
    assert (cfg.epochs, cfg.lr, cfg.l2, cfg.batch_size) == (35, 1e-2, 1e-7, 128)
    cfg = resolve_config(base={"model": "shallow", "epochs": 3, "lr": 0.5}, lr=0.1)
    assert (cfg.epochs, cfg.lr, cfg.l2) == (3, 0.1, 1e-6)
    cfg = resolve_config("deep", base={"model": "shallow", "epochs": 3})  # a model given wins over base's, as a flag does
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.l2) == ("deep", 3, 1e-2, 1e-7)


def test_a_spec_file_gets_the_shallow_recipe_and_an_unknown_preset_none():
    for spec in ("my-net.yaml", "nets/my-net.JSON", "deep.yml"):  # a file named like a preset is still a file
        cfg = resolve_config(spec)
        assert (cfg.model, cfg.epochs, cfg.lr, cfg.l2, cfg.optimizer) == (spec, 30, 1e-3, 1e-6, "adam")
    for name in ("vgg-wdie", "my-net.txt", ""):
        with pytest.raises(FerkitError, match=f"--model must be a preset .*; got '{name}'"):
            resolve_config(name)
        with pytest.raises(FerkitError, match=f"got '{name}'"):
            resolve_config(base={"model": name, "epochs": 3})
    with pytest.raises(FerkitError, match=r"--model must be a preset .*; got \{'convs': \[\]\}"):  # a config file's mapping
        resolve_config(base={"model": {"convs": []}})


def test_fit_writes_history_and_checkpoints(tiny_run):
    history = json.loads((tiny_run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (tiny_run / "history.csv").read_text().startswith("epoch,train_loss")
    assert len((tiny_run / "iterations.csv").read_text().splitlines()) == 1 + 3 * 3  # 84 images / 32 = 3 per epoch
    ck = read_checkpoint(tiny_run / "last.pt")
    assert {"epoch", "config", "spec", "state_dict", "optimizer", "best_acc", "mean", "history"} <= set(ck)
    assert ck["mean"].shape == (48, 48)
    clf = load_checkpoint(tiny_run)
    assert clf.predict_proba(torch.zeros(5, 48, 48, dtype=torch.uint8).numpy()).shape == (5, 7)


def test_resume_after_sigkill(tmp_path):
    csv = write_fer_csv(tmp_path / "fer.csv", n=280)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ferkit.cli", "train", "--model", str(spec), "--data", str(csv), "--epochs", "40",
           "--batch-size", "16", "--out", str(out), "--quiet", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "last.pt").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= done < 40
    r = subprocess.run([sys.executable, "-m", "ferkit.cli", "train", "--resume", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming {out} at epoch {done + 1}/40" in r.stdout + r.stderr
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 41))


def test_fit_without_val_split_keeps_last_as_best(tmp_path, caplog):
    csv = write_fer_csv(tmp_path / "train_only.csv", usages=("Training",), n=28)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=2, batch_size=14)
    with caplog.at_level(logging.INFO, "ferkit"):
        fit(cfg, tmp_path / "run", progress=False)
    assert "no PublicTest" in caplog.text
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 2 and best["best_acc"] is None  # the last epoch, and no epoch number posing as an accuracy
    with caplog.at_level(logging.INFO, "ferkit"):
        fit(resolve_config(base=cfg.to_dict(), epochs=3), tmp_path / "run", resume=True, progress=False)
    assert "(no validation split)" in caplog.text and read_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 3
    (tmp_path / "run" / "best.pt").unlink()  # a resume that trains no more epochs ended with none
    with caplog.at_level(logging.INFO, "ferkit"):
        fit(resolve_config(base=cfg.to_dict(), epochs=3), tmp_path / "run", resume=True, progress=False)
    assert f"{tmp_path / 'run' / 'best.pt'}: missing; written again from last.pt, epoch 3 (without validation" in caplog.text
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 3 and best["best_acc"] is None and best["optimizer"] == {}


def test_an_epoch_is_timed_by_a_clock_that_does_not_step_back(tmp_path, monkeypatch):
    """Epochs were timed by the wall clock: one set back during an epoch (NTP, a VM resumed) wrote a negative
    seconds to the history, and plot and report summed the run's time short."""
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training",), n=28)
    clock = iter(range(10**9, 0, -3600))  # the wall clock an hour back at each reading
    monkeypatch.setattr(train.time, "time", lambda: float(next(clock)))
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=14)
    assert 0 <= fit(cfg, tmp_path / "run", progress=False)[0]["seconds"] < 600


def _spec_file(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny_spec().to_dict()))
    return p


def test_a_num_classes_that_disagrees_with_the_label_set_names_the_spec_file_or_set(tmp_path, capsys):
    """A spec file's num_classes that is not the label set's, or (--labels data) the data's class count, was
    "invalid model spec: num_classes must be 7 ..." naming neither the spec file nor --set."""
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    five = tmp_path / "five.json"
    five.write_text(json.dumps({**tiny_spec().to_dict(), "num_classes": 5}))
    wrong = "num_classes must be 7 (the emotions of label set fer2013) or left out; got 5\n"
    for labels in ([], ["--labels", "data"]):  # before the data are read, and after (their classes decide)
        assert main(["train", "--model", str(five), "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "run"),
                     "--quiet", *labels]) == 2
        assert capsys.readouterr().err == f"error: {five}: invalid model spec:\n  - {wrong}"
        assert not (tmp_path / "run").exists()
    assert main(["train", "--model", str(_spec_file(tmp_path)), "--set", "num_classes=5", "--data", str(csv), "--epochs",
                 "1", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: invalid model spec:\n  - --set {wrong}"


def test_augmentations_keep_shape_and_change_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 48, 48)
    m = torch.tensor([True, False] * 4)
    flipped = augment.flip(x, m)
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    y = augment.augment(x, g, crop_pad=4, rotate=10, erase_p=1.0)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert (augment.erase(torch.ones(4, 1, 48, 48), g, p=1.0) == 0).any(dim=(1, 2, 3)).all()
    assert torch.equal(augment.augment(x, g), x)  # everything off = identity


def test_zoom_scales_the_face_both_ways_and_leaves_other_draws_alone():
    x = torch.zeros(64, 1, 48, 48)
    x[:, :, 16:32, 16:32] = 1  # a 16x16 square about the centre
    area = augment.shift_rotate(x, torch.Generator().manual_seed(0), max_zoom=0.5).sum(dim=(1, 2, 3))
    assert area.min() < 256 * 0.8 and area.max() > 256 * 1.25  # smaller and larger faces, from 1/1.5 to 1.5 a side
    assert area.min() > 256 / 1.5**2 * 0.9 and area.max() < 256 * 1.5**2 * 1.1
    # off: the shift and rotation draw what they did before zoom existed (old runs resume alike)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    augment.augment(x, g1, crop_pad=4, rotate=10, zoom=0)
    torch.rand(64, generator=g2), torch.randint(-4, 5, (64, 2), generator=g2)  # the angles, the shifts
    assert torch.equal(g1.get_state(), g2.get_state())


def test_resume_with_a_new_length_replans_the_schedule(tmp_path, caplog):
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=4, batch_size=21, schedule="onecycle")
    fit(cfg, tmp_path / "run", progress=False)
    with caplog.at_level(logging.INFO, "ferkit"):
        history = fit(resolve_config(base=cfg.to_dict(), epochs=6), tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert "re-planned for 6 epochs (was 4)" in caplog.text
    assert history[4]["lr"] < cfg.lr  # past the one-cycle peak, annealing towards the new end


@pytest.mark.parametrize("schedule", ["cosine", "step", "onecycle"])
def test_a_lengthened_run_follows_the_longer_schedule(tmp_path, schedule):
    """2 epochs resumed to 4 train the last two at the rates of a 4-epoch run (cosine and step multiply the
    current rate: replayed from the old run's last rate, they fell to 0); 43 training faces in batches of 21
    leave a lone face, dropped, so 2 steps an epoch, not 3."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=43)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=4, batch_size=21, schedule=schedule)
    straight = fit(cfg, tmp_path / "straight", progress=False)
    fit(replace(cfg, epochs=2), tmp_path / "run", progress=False)
    resumed = fit(resolve_config(base=cfg.to_dict(), epochs=4), tmp_path / "run", resume=True, progress=False)
    assert [h["lr"] for h in resumed[2:]] == pytest.approx([h["lr"] for h in straight[2:]])
    assert train.batch_starts(21, 10) == range(0, 20, 10) and train.batch_starts(22, 10) == range(0, 22, 10)


@pytest.mark.parametrize("epochs, n", [(5, 14), (1, 70)])
def test_a_one_cycle_of_five_steps_trains(tmp_path, epochs, n):
    """5 steps in all (5 epochs of one batch, 1 epoch of 5) leave torch's OneCycleLR a warm-up of zero steps, by
    whose width it divided: `ferkit train --epochs 5` on a small data set (and `ferkit search`'s every trial) was
    a ZeroDivisionError traceback. The schedule is the one it tends to: its peak first, then annealing."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=n)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=epochs, batch_size=14, schedule="onecycle")
    history = fit(cfg, tmp_path / "run", progress=False)
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    opt = train._optimizer(torch.nn.Linear(2, 2), cfg)
    sched = train._scheduler(opt, cfg, 5)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(cfg.lr, rel=1e-3) and lrs == sorted(lrs, reverse=True), lrs


class _Killed(Exception):
    pass


def _kill_after_checkpoint(monkeypatch, epoch: int, name: str = "last.pt"):
    """Make fit stop as a SIGKILL would, right after it saved `name` of `epoch`."""
    real = train.save_checkpoint

    def save(ckpt, path):
        real(ckpt, path)
        if path.name == name and ckpt["epoch"] == epoch:
            raise _Killed

    monkeypatch.setattr(train, "save_checkpoint", save)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_is_exact(tmp_path, monkeypatch, ema):
    """2 epochs straight == killed after epoch 1 and resumed: same weights, losses and history,
    with dropout (global RNG) and every augmentation (data generator) on, photo degradations and
    mixup/CutMix (drawn through numpy, seeded from the data generator) included; with --ema, the
    weight average (and so the validation) carries on too."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    spec = tiny_spec()
    spec.convs[0].dropout, spec.fcs[0].dropout = 0.3, 0.5
    (tmp_path / "drop.json").write_text(json.dumps(spec.to_dict()))
    cfg = resolve_config(str(tmp_path / "drop.json"), data=str(csv), epochs=2, batch_size=16, crop_pad=2, rotate=10,
                         erase=0.5, photo_aug=0.5, mixup=0.2, cutmix=1.0, schedule="cosine", seed=3, ema=ema)
    straight = fit(cfg, tmp_path / "a", progress=False)
    _kill_after_checkpoint(monkeypatch, 1)
    with pytest.raises(_Killed):
        fit(cfg, tmp_path / "b", progress=False)
    monkeypatch.undo()
    torch.manual_seed(12345)  # whatever the global RNG did in between must not matter
    resumed = fit(cfg, tmp_path / "b", resume=True, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed) == strip(straight)
    assert (tmp_path / "a" / "iterations.csv").read_text() == (tmp_path / "b" / "iterations.csv").read_text()
    a, b = read_checkpoint(tmp_path / "a" / "last.pt"), read_checkpoint(tmp_path / "b" / "last.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k in a.get("ema", {}):
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert ("ema" in a) == bool(ema)


def test_a_learning_rate_and_l2_edited_into_config_json_are_what_the_resumed_run_trains_with(tmp_path, monkeypatch, caplog):
    """--resume continues with config.json: an lr edited there was recorded but replaced by last.pt's schedule (unless
    --epochs re-planned it), and an l2 was recorded and never applied (last.pt's optimizer state kept the old one)."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=2, batch_size=21, schedule="cosine", lr=3e-3)
    straight = fit(replace(cfg, lr=1e-3), tmp_path / "straight", progress=False)
    _kill_after_checkpoint(monkeypatch, 1)
    with pytest.raises(_Killed):
        fit(cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config, "lr": 1e-3, "l2": 0.01}))
    with caplog.at_level(logging.INFO, "ferkit"):
        resumed = fit(train.resume_config(tmp_path / "run"), tmp_path / "run", resume=True, progress=False)
    assert "schedule re-planned for lr 0.001 (was 0.003)" in caplog.text
    assert resumed[1]["lr"] == pytest.approx(straight[1]["lr"])  # the cosine of a run at 1e-3, where it stopped
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert [g["weight_decay"] for g in last["optimizer"]["param_groups"]] == [0.01, 0.0]  # (biases and batch norm: none)
    assert last["config"]["l2"] == 0.01 and last["config"]["lr"] == 1e-3


def test_weight_average_moves_by_one_minus_decay_weights_and_batch_norm_statistics_alike():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = train.weight_average(net, 0.9)
    ema.update_parameters(net)  # the first update copies
    old = [t.clone() for t in (net[0].weight, net[1].running_mean)]
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.add_(2.0)
    ema.update_parameters(net)
    torch.testing.assert_close(ema.module[0].weight, old[0] + 0.1)
    torch.testing.assert_close(ema.module[1].running_mean, old[1] + 0.2)
    assert train.weight_average(net, 0.0) is None


def test_ema_validates_and_saves_the_weight_average(tmp_path):
    """--ema: best.pt holds the average, not the last step's weights (last.pt keeps both to resume),
    and the validation loss in the history is the average's."""
    from conftest import synthetic_faces
    from ferkit.model import create_model

    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=16, ema=0.5, precision="fp32")
    history = fit(cfg, tmp_path / "run", progress=False)
    best, last = read_checkpoint(tmp_path / "run" / "best.pt"), read_checkpoint(tmp_path / "run" / "last.pt")
    torch.manual_seed(cfg.seed)
    start = create_model(tiny_spec()).state_dict()  # the weights fit starts from
    weights = [k for k in best["state_dict"] if k.endswith("weight")]
    for k in weights:
        assert torch.equal(best["state_dict"][k], last["ema"]["module." + k]), k
    assert any(not torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in weights)  # the average lags
    assert any(not torch.equal(best["state_dict"][k], start[k]) for k in weights)  # it moved with every step
    assert "ema" not in best
    clf = load_checkpoint(tmp_path / "run" / "best.pt")
    faces, labels = synthetic_faces(42, seed=1)  # write_fer_csv's PublicTest rows
    ev = evaluate(clf.model, make_batches(faces, labels.astype("int64"), clf.mean, clf.spec), clf.device)
    assert ev["loss"] == pytest.approx(history[0]["val_loss"], abs=2e-5)


def test_a_kill_between_the_checkpoint_and_the_history_loses_nothing(tmp_path, monkeypatch):
    """last.pt is written before the history that claims its epoch: a kill in between leaves the
    history one epoch behind (never ahead of last.pt), and --resume rewrites it from last.pt."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=3, batch_size=21)
    _kill_after_checkpoint(monkeypatch, 2)
    with pytest.raises(_Killed):
        fit(cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    fit(cfg, tmp_path / "run", resume=True, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len((tmp_path / "run" / "iterations.csv").read_text().splitlines()) == 1 + 3 * 2
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 4


def _disk_full_at(monkeypatch, name: str, epoch: int):
    """The disk fills while fit writes `name` of `epoch` (its `epoch`-th write of that file)."""
    import ferkit.files as files

    opened = 0

    def fake_open(file, *a, **k):
        nonlocal opened
        f = open(file, *a, **k)
        if Path(file).name.startswith(f".{name}."):
            opened += 1
            if opened == epoch:
                return FullDisk(f)
        return f

    monkeypatch.setattr(files, "open", fake_open, raising=False)


def test_a_full_disk_is_one_line_and_the_run_stays_resumable(tmp_path, monkeypatch, capsys):
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    run = tmp_path / "run"
    args = ["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--epochs", "3", "--batch-size", "21",
            "--out", str(run), "--quiet"]
    _disk_full_at(monkeypatch, "last.pt", 2)
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {run / 'last.pt'}: cannot write it (No space left on device); free some "
                                       f"space, then continue with 'ferkit train --resume {run}'\n")
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1]  # claims only what last.pt holds
    assert read_checkpoint(run / "last.pt")["epoch"] == 1 and not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3]


def test_a_disk_full_before_the_first_last_pt_says_start_again(tmp_path, monkeypatch, capsys):
    """The first epoch's best.pt is written, its last.pt is not: every way on that the errors name works (they said
    "start the run again" and, on --resume, 'ferkit train --out RUN', both refused for the best.pt in the folder)."""
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    run = tmp_path / "run"
    start = ["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--epochs", "2", "--batch-size", "21",
             "--out", str(run), "--quiet"]
    _disk_full_at(monkeypatch, "last.pt", 1)
    assert main(start) == 2
    command = (f"its best.pt is whole (epoch 1): start a new run from its weights with 'ferkit train --config "
               f"{run / 'config.json'} --init-from {run / 'best.pt'} --out NEW_FOLDER'")
    assert capsys.readouterr().err.endswith("then start the run again with another --out (it had not saved an epoch to "
                                            f"resume from); {command}\n")
    assert not (run / "history.json").exists()  # no history claims an epoch that no last.pt holds
    monkeypatch.undo()
    assert main(start) == 2  # the same --out again: refused, it would replace that best.pt
    assert capsys.readouterr().err.endswith(f"(delete the folder to start it over); {command}\n")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: --resume {run}: no last.pt there (deleted, or the run stopped while saving "
                                       f"it), so nothing to resume; {command}\n")
    new = tmp_path / "new"
    assert main(command.split("'")[1].replace("NEW_FOLDER", str(new)).split()[1:] + ["--quiet"]) == 0
    assert read_checkpoint(new / "last.pt")["epoch"] == 2


def test_a_last_pt_linked_to_nothing_is_named_not_called_a_first_epoch(tiny_run, tmp_path, capsys):
    """A run of 3 epochs whose last.pt is a link to a moved file (and whose best.pt is gone): --resume said the run
    "stopped before its first epoch ended" and to start it again with --out RUN, which was refused for its history,
    and where none was left trained an epoch into the folder, then failed to save last.pt through the link."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "best.pt").unlink()
    (run / "last.pt").unlink()
    (run / "last.pt").symlink_to(tmp_path / "moved" / "last.pt")
    broken = f"its last.pt is a symbolic link to {tmp_path / 'moved' / 'last.pt'}, which does not exist"
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: --resume {run}: {broken}; point the link at the run's last.pt to resume, "
                                       "or start a new run with --out NEW_FOLDER\n")
    config = (run / "config.json").read_text()
    for f in ("history.json", "history.csv"):
        (run / f).unlink()
    start = ["train", "--model", str(_spec_file(tmp_path)), "--data", str(write_fer_csv(tmp_path / "fer.csv")),
             "--epochs", "1", "--out", str(run), "--quiet"]
    assert main(start) == 2  # refused before an epoch is trained and config.json written anew
    assert capsys.readouterr().err.startswith(f"error: --out {run}: {broken}; point the link")
    assert (run / "config.json").read_text() == config and not (run / "best.pt").exists()
    (run / "last.pt").unlink()
    (run / "history.json").write_text("[]")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2  # no link, no best.pt, a history: not a first epoch
    assert capsys.readouterr().err.endswith("start a new run with --out NEW_FOLDER (one there would replace its history.json)\n")


def test_a_best_pt_that_cannot_be_written_is_refused_before_resume_trains(tiny_run, tmp_path, capsys):
    """A folder (or a link to one) in place of a run's best.pt, or a link to it that leads nowhere a file can be
    written: --resume trained an epoch, then failed to save it as best.pt, and that epoch was lost."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    last = (run / "last.pt").read_bytes()
    (run / "best.pt").unlink()
    (tmp_path / "folder").mkdir()
    cases = [(lambda b: b.mkdir(), "a folder, where the run saves its best.pt; move it out of the way, then resume"),
             (lambda b: b.symlink_to(tmp_path / "folder"),
              f"a symbolic link to the folder {tmp_path / 'folder'}, where the run saves its best.pt; move it out of the way"),
             (lambda b: b.symlink_to(tmp_path / "moved" / "best.pt"),
              f"a symbolic link to {tmp_path / 'moved' / 'best.pt'}, whose folder {tmp_path / 'moved'} does not exist; "
              "create that folder or fix the link, then resume (the run writes its best.pt through it)"),
             (lambda b: b.symlink_to("best.pt"), "a loop of symbolic links; remove or fix the link, then resume")]
    for make, message in cases:
        make(run / "best.pt")
        assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"error: --resume {run}: {run / 'best.pt'}: {message}"), captured.err
        assert captured.err.count("\n") == 1 and "training" not in captured.out  # refused before the data are read
        assert (run / "last.pt").read_bytes() == last  # no epoch trained
        shutil.rmtree(run / "best.pt") if (run / "best.pt").is_dir() and not (run / "best.pt").is_symlink() else (run / "best.pt").unlink()
    (tmp_path / "moved").mkdir()  # a link to a missing file in a folder that exists is written through, as before
    (run / "best.pt").symlink_to(tmp_path / "moved" / "best.pt")
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    assert read_checkpoint(run / "last.pt")["epoch"] == 4


@pytest.mark.parametrize("ema", [0.0, 0.5])
def test_a_resume_without_its_best_pt_writes_it_from_the_epochs_whose_weights_remain(tmp_path, capsys, caplog, ema):
    """A deleted best.pt was written again only by a resumed epoch that beat the run's recorded best: a run whose
    later epochs scored less (or that trained none) ended with no best.pt, and last.pt's best_acc, the done line and
    every later resume still claimed the score of weights that were gone."""
    from conftest import synthetic_faces
    from ferkit.checkpoint import save_checkpoint, weights_acc
    from ferkit.cli import main

    csv, run = write_fer_csv(tmp_path / "fer.csv", n=42), tmp_path / "run"
    fit(resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=2, batch_size=16, lr=1e-5, ema=ema, precision="fp32"),
        run, progress=False)  # (a rate too low to learn the faces: no epoch scores 1.0)
    last = read_checkpoint(run / "last.pt")
    last["history"][0]["val_acc"] = last["best_acc"] = 1.0  # epoch 1 scored what no later epoch can beat
    save_checkpoint(last, run / "last.pt")
    (run / "best.pt").unlink()
    with caplog.at_level("WARNING", "ferkit"):
        assert main(["train", "--resume", str(run), "--quiet"]) == 0  # it has trained all its epochs: it trains none
    scored = f"{last['history'][1]['val_acc']:.4f}"
    assert (f"{run / 'best.pt'}: missing, so epoch 1's weights, which scored 1.0000, are gone; written again from last.pt, epoch 2 "
            f"({scored}), the best of the epochs whose weights remain; a resumed epoch that scores higher replaces it") in caplog.text
    best = read_checkpoint(run / "best.pt")
    assert best["epoch"] == 2 and best["best_acc"] == weights_acc(best) == read_checkpoint(run / "last.pt")["best_acc"]
    clf = load_checkpoint(run / "best.pt")  # with --ema the average, which is what scored
    faces, labels = synthetic_faces(42, seed=1)  # write_fer_csv's PublicTest rows
    assert round(evaluate(clf.model, make_batches(faces, labels.astype("int64"), clf.mean, clf.spec), clf.device)["acc"], 5) == (
        round(best["best_acc"], 5))
    assert f"done: best val acc {scored} at epoch 2 (epoch 1 scored 1.0000; its best.pt was deleted or damaged); " in capsys.readouterr().out

    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0  # then the usual rule: a higher score
    history = json.loads((run / "history.json").read_text())
    assert [r["val_acc"] for r in history[:2]] == [1.0, last["history"][1]["val_acc"]]  # every epoch as it was
    kept = max(history[1:], key=lambda r: r["val_acc"])  # epoch 2's best.pt, or epoch 3's where it scored higher
    best = read_checkpoint(run / "best.pt")
    assert best["epoch"] == kept["epoch"] and round(best["best_acc"], 5) == kept["val_acc"]
    assert read_checkpoint(run / "last.pt")["best_acc"] == best["best_acc"]
    assert f"done: best val acc {kept['val_acc']:.4f} at epoch {kept['epoch']} (epoch 1 " in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["cut off", "not a checkpoint"])
def test_a_resume_with_a_damaged_best_pt_writes_it_again_as_a_missing_one(tiny_run, tmp_path, capsys, caplog, damage):
    """A best.pt that read_checkpoint refuses was kept as it was: a run whose resumed epochs scored less than the
    recorded best (here: none left to train) did all its work, then its done line raised the "damaged" error (exit 2),
    and the run still had no usable best.pt."""
    import shutil

    from ferkit.checkpoint import save_checkpoint, weights_acc
    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    last = read_checkpoint(run / "last.pt")
    last["history"][0]["val_acc"] = last["best_acc"] = 1.0  # epoch 1 scored what no later epoch can beat
    last["history"][2]["val_acc"] = 0.5  # (the tiny run scores 1.0 in every epoch)
    save_checkpoint(last, run / "last.pt")
    whole = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(whole[: len(whole) // 2] if damage == "cut off" else b'{"not": "a checkpoint"}')
    with caplog.at_level("WARNING", "ferkit"):
        assert main(["train", "--resume", str(run), "--quiet"]) == 0  # it has trained all its 3 epochs: it trains none
    scored = "0.5000"
    assert f"{run / 'best.pt'}: damaged (" in caplog.text
    assert (f"), so epoch 1's weights, which scored 1.0000, are gone; replaced from last.pt, epoch 3 ({scored}), the best of the "
            "epochs whose weights remain") in caplog.text
    best = read_checkpoint(run / "best.pt")
    assert best["epoch"] == 3 and best["best_acc"] == weights_acc(best) == read_checkpoint(run / "last.pt")["best_acc"]
    assert f"done: best val acc {scored} at epoch 3 (epoch 1 scored 1.0000; its best.pt was deleted or damaged); " in (
        capsys.readouterr().out)


def test_the_warning_of_a_gone_best_pt_names_the_epoch_whose_weights_it_held(tiny_run, tmp_path, caplog):
    """The warning named only the lost score (and, where last.pt's epoch tied it, no lost epoch). The epoch is the one
    that scored best_acc, not the history's best: after an earlier resume that found best.pt gone, best.pt held a later,
    lower-scoring epoch (here 2, epoch 1's weights lost before). A best_acc that no row scored (a history edited by hand)
    is said by its score alone."""
    import shutil

    from ferkit.checkpoint import save_checkpoint
    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    lower = "missing, so {} are gone; written again from last.pt, epoch 3 (0.5000), the best of the epochs whose weights remain"
    cases = [((1.0, 0.75, 0.5), 0.75, lower.format("epoch 2's weights, which scored 0.7500,")),
             ((1.0, 0.75, 0.5), 0.9, lower.format("the weights that scored 0.9000")),
             ((1.0, 0.5, 0.5), 0.5, "missing; written again from last.pt, whose epoch 3 scored the run's best, 0.5000 (epoch "
                                    "2's weights, which it held, scored as much)")]
    for scores, best_acc, warning in cases:
        last = read_checkpoint(run / "last.pt")
        for row, acc in zip(last["history"], scores):
            row["val_acc"] = acc
        last["best_acc"] = best_acc
        save_checkpoint(last, run / "last.pt")
        (run / "best.pt").unlink()
        caplog.clear()
        with caplog.at_level("WARNING", "ferkit"):
            assert main(["train", "--resume", str(run), "--quiet"]) == 0  # it has trained all its 3 epochs: it trains none
        assert f"{run / 'best.pt'}: {warning}" in caplog.text


def test_the_done_line_says_a_best_pt_it_cannot_read_rather_than_fail_after_training(tiny_run, tmp_path, capsys, monkeypatch):
    """The done line read best.pt with read_checkpoint, whose error made a run that had trained every epoch exit 2."""
    import shutil

    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    history = json.loads((run / "history.json").read_text())

    def trained(cfg, out, resume, progress):  # its best.pt damaged by the time the line is written (a full disk, another process)
        (out / "best.pt").write_bytes(b"junk")
        return history

    monkeypatch.setattr(train, "fit", trained)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    top = max(history, key=lambda r: r["val_acc"])
    assert (f"done: the history's best val acc is {top['val_acc']:.4f} at epoch {top['epoch']}, but {run / 'best.pt'}: not a "
            f"readable ferkit checkpoint; the file is damaged or not one (not a PyTorch file) (a damaged one is written again "
            f"from last.pt's epoch by 'ferkit train --resume {run}'); the last epoch is in {run / 'last.pt'}") in capsys.readouterr().out


def test_the_done_line_of_a_run_whose_best_pt_is_missing_says_a_resume_writes_it_again(tiny_run, tmp_path, capsys,
                                                                                        monkeypatch):
    """A best.pt deleted by the time the done line is written was said to be "damaged" ("a damaged one is written
    again"): a resume writes a missing one again too, from last.pt's epoch (train._best_gone)."""
    import shutil

    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    history = json.loads((run / "history.json").read_text())

    def trained(cfg, out, resume, progress):  # its best.pt deleted by the time the line is written (another process)
        (out / "best.pt").unlink()
        return history

    monkeypatch.setattr(train, "fit", trained)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (f"but {run / 'best.pt'} is missing (it is written again from last.pt's epoch by 'ferkit train --resume {run}'); "
            f"the last epoch is in {run / 'last.pt'}") in out, out
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # as it says
    assert read_checkpoint(run / "best.pt")["epoch"] == 3


def test_a_resume_leaves_a_best_pt_ferkits_user_may_not_read(tiny_run, tmp_path, capsys, monkeypatch):
    """Whether a resume's best.pt was damaged (replaced) or unreadable (kept: its weights may be whole) was asked of
    os.access after read_checkpoint refused it, not told by the read: where the two disagree (root, whom os.access
    always answers yes), a best.pt whose read was refused was replaced. os.open refuses it here as another user's."""
    import shutil

    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    whole, real_open = (run / "best.pt").read_bytes(), os.open

    def refusing(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == run / "best.pt":
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # it has trained all its 3 epochs: it trains none
    assert (run / "best.pt").read_bytes() == whole
    # (the done line advised the resume, which keeps this best.pt, as for a damaged one)
    assert (f"but {run / 'best.pt'}: cannot read it (Permission denied); give ferkit's user read access to it (chmod a+r) "
            f"(a resume keeps it: its weights may be whole); the last epoch is in {run / 'last.pt'}") in capsys.readouterr().out


def test_ctrl_c_in_training_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    import ferkit.train
    from ferkit.cli import main

    epochs, real = [], ferkit.train.train_one_epoch

    def second_epoch_interrupted(*args, **kwargs):
        epochs.append(1)
        if len(epochs) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ferkit.train, "train_one_epoch", second_epoch_interrupted)
    run = tmp_path / "run"
    assert main(["train", "--model", str(_spec_file(tmp_path)), "--data", str(write_fer_csv(tmp_path / "fer.csv", n=42)),
                 "--epochs", "3", "--batch-size", "21", "--out", str(run), "--quiet"]) == 130
    assert capsys.readouterr().err == f"interrupted (continue from its last whole epoch with 'ferkit train --resume {run}')\n"
    assert read_checkpoint(run / "last.pt")["epoch"] == 1


def test_a_killed_writers_temp_files_go_at_the_next_write(tmp_path):
    """atomic_write's temporary files whose process is gone (a kill mid-write) are removed by the
    next write to their folder (a new epoch, or the next run's config.json); live writers' stay."""
    import os

    from ferkit.files import atomic_write

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".last.pt.{dead.pid}-0badf00d.tmp"
    stale.write_bytes(b"")  # what a kill during torch.save leaves
    stale_video = tmp_path / f".clip.mp4.{dead.pid}-0badf00d.tmp.mp4"  # atomic_path keeps the extension
    stale_video.write_bytes(b"")
    live = [tmp_path / f".best.pt.{os.getppid()}-12345678.tmp", tmp_path / f".history.json.{os.getpid()}-abcdef01.tmp"]
    other = tmp_path / f".notes.{dead.pid}-0badf00d.tmp.bak"  # not one of atomic_write's names
    for f in live + [other]:
        f.write_bytes(b"x")
    atomic_write(tmp_path / "config.json", "{}")
    assert not stale.exists() and not stale_video.exists() and all(f.exists() for f in live) and other.exists()


def test_a_folder_is_swept_of_dead_writers_files_once_a_process(tmp_path, monkeypatch):
    """(every write scanned its whole folder: 20,000 annotated copies, 20,000 scans of up to 20,000 files)"""
    from ferkit import files

    sweeps = []
    monkeypatch.setattr(files, "remove_stale_temps", lambda folder: sweeps.append(folder) or [])
    for k in range(3):
        files.atomic_write(tmp_path / f"{k}.json", "{}")
    assert sweeps == [tmp_path]


def test_the_longest_file_name_is_written_atomically(tmp_path):
    """A 245-character name passed check_output, then its temporary name (30 bytes longer) was too long
    for the file system: the error came after all the work."""
    from ferkit.files import atomic_path, atomic_write

    path = tmp_path / ("r" * 245 + ".json")
    assert atomic_write(path, "[]").read_text() == "[]"
    with atomic_path(path, keep_suffix=True) as tmp:
        assert tmp.suffix == ".json" and len(tmp.name) < 60
        tmp.write_text("{}")
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == [path.name]
    long_ext = tmp_path / ("x." + "j" * 245)  # (a 247-character name, all but 2 of it its extension, was too long still)
    for keep in (False, True):
        with atomic_path(long_ext, keep_suffix=keep) as tmp:
            assert len(tmp.name) < 60
            tmp.write_text(str(keep))
        assert long_ext.read_text() == str(keep)


def test_a_file_name_that_is_not_utf8_is_written_atomically(tmp_path):
    """A name whose bytes are not UTF-8 (Latin-1 'caf\\xe9', a lone surrogate to Python) was a UnicodeEncodeError
    traceback in atomic_path (str.encode of the name): export --pt/--onnx, evaluate --json, report --out, and the
    data cache of such a --data file (evaluate, sanity, report, export --int8) all stopped there."""
    from ferkit.files import atomic_path, atomic_write

    path = tmp_path / os.fsdecode(b"caf\xe9.json")
    assert atomic_write(path, "[]").read_text() == "[]"
    long = tmp_path / os.fsdecode(b"\xe9" * 240 + b".mp4")  # (hashed: its temporary name would be too long)
    with atomic_path(long, keep_suffix=True) as tmp:
        tmp.write_text("v")
    assert long.read_text() == "v"
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"caf\xe9.json", b"\xe9" * 240 + b".mp4"]  # no temporary file left


def test_an_atomic_write_through_links_updates_the_file_they_point_to(tmp_path):
    """Every writer (checkpoints, history, --json) goes through atomic_path: a link to a link is followed
    to the file, which is replaced beside itself; a link to a file not there yet creates it."""
    from ferkit.files import atomic_write

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.json").write_text("old")
    (tmp_path / "m.json").symlink_to("real/m.json")
    (tmp_path / "chain.json").symlink_to("m.json")
    (tmp_path / "new.json").symlink_to(tmp_path / "real" / "new.json")
    atomic_write(tmp_path / "chain.json", "new")
    atomic_write(tmp_path / "new.json", "created")
    assert all((tmp_path / n).is_symlink() for n in ("m.json", "chain.json", "new.json"))
    assert (tmp_path / "real" / "m.json").read_text() == "new" and (tmp_path / "real" / "new.json").read_text() == "created"
    assert sorted(os.listdir(tmp_path / "real")) == ["m.json", "new.json"]


def test_resume_rebuilds_the_history_from_last_pt(tmp_path):
    """Files lost or behind (e.g. a run of an older ferkit killed between its two writes) are rewritten from last.pt."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=2, batch_size=21)
    fit(cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / "history.csv").unlink()
    (tmp_path / "run" / "history.json").write_text("[]")
    fit(cfg, tmp_path / "run", resume=True, progress=False)  # nothing left to train
    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [1, 2]
    assert (tmp_path / "run" / "history.csv").exists()


def test_old_checkpoint_without_random_states_still_resumes(tmp_path, caplog):
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=21)
    fit(cfg, tmp_path / "run", progress=False)
    ck = read_checkpoint(tmp_path / "run" / "last.pt")
    del ck["rng_states"]
    torch.save(ck, tmp_path / "run" / "last.pt")
    with caplog.at_level(logging.INFO, "ferkit"):
        history = fit(resolve_config(base=cfg.to_dict(), epochs=2), tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in history] == [1, 2] and "predates saved random states" in caplog.text


def test_best_pt_has_no_optimizer_state(tiny_run):
    best, last = read_checkpoint(tiny_run / "best.pt"), read_checkpoint(tiny_run / "last.pt")
    assert best["optimizer"] == {} and best["scheduler"] == {} and last["optimizer"]["state"]
    assert (tiny_run / "best.pt").stat().st_size < (tiny_run / "last.pt").stat().st_size / 2  # Adam keeps 2 moments per weight


def test_failed_run_leaves_no_folder_and_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_fer_csv(tmp_path / "fer.csv", n=42)
    _spec_file(tmp_path)
    with pytest.raises(FerkitError, match="no such file"):
        fit(resolve_config("tiny.json", data="missing.csv", epochs=1), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    fit(resolve_config("tiny.json", data="fer.csv", epochs=1, batch_size=21), "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == str(tmp_path / "fer.csv") and saved["model"] == str(tmp_path / "tiny.json")
    with pytest.raises(FerkitError, match="nothing to resume"):
        fit(resolve_config("tiny.json", data="fer.csv", epochs=1), tmp_path / "other", resume=True, progress=False)


def test_training_and_inference_paths_give_the_same_probabilities(tiny_run):
    """train.evaluate on Batches (what validation reports) == Classifier.predict_proba on uint8 faces (what users get)."""
    from conftest import synthetic_faces

    clf = load_checkpoint(tiny_run)
    faces, labels = synthetic_faces(50, seed=7)
    for tta in (False, True):
        batches = make_batches(faces, labels.astype("int64"), clf.mean, clf.spec, flips=tta)
        assert isinstance(batches, Batches)
        ev = evaluate(clf.model, batches, clf.device, tta=tta)["probs"]
        torch.testing.assert_close(torch.from_numpy(ev), torch.from_numpy(clf.predict_proba(faces, tta=tta)), rtol=0, atol=1e-6)


def test_absolute_paths_keep_a_preset_name(tmp_path, monkeypatch):
    # a search run from ~/ferkit-runs, which holds a run folder called `shallow`, once wrote
    # that folder's path into best.yaml as the model
    from ferkit.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shallow").mkdir()
    (tmp_path / "faces.csv").write_text("emotion,pixels,Usage\n")
    (tmp_path / "t.pt").write_bytes(b"")
    cfg = train.absolute_paths(TrainConfig(model="shallow", data="faces.csv", teacher=["t.pt", "missing.pt"]))
    assert cfg.model == "shallow" and cfg.data == str(tmp_path / "faces.csv")
    assert cfg.teacher == [str(tmp_path / "t.pt"), "missing.pt"]


def test_a_config_with_one_teacher_or_none_still_loads(tmp_path):
    """Configs (and the config.json of runs to resume) written when --teacher took one checkpoint."""
    from ferkit.config import TrainConfig
    from ferkit.errors import ConfigError

    assert TrainConfig.from_dict({"teacher": "a.pt"}).teacher == ["a.pt"]
    assert TrainConfig.from_dict({"teacher": None}).teacher == [] and TrainConfig().teacher == []
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "shallow", "epochs": 2, "lr": 0.1, "l2": 0.0, "teacher": "old.pt"}))
    (run / "last.pt").write_bytes(b"")
    assert train.resume_config(run).teacher == ["old.pt"]
    with pytest.raises(ConfigError, match=r"--teacher must be a list of checkpoint or .onnx paths; got \['a.pt', 3\]"):
        TrainConfig(teacher=["a.pt", 3])


def _optimizer_state(key, change):
    def mutate(ck):
        first = ck["optimizer"]["state"][0]
        first[key] = change(first[key])
    return mutate


def _drop_a_param_group(ck):
    ck["optimizer"]["param_groups"] = ck["optimizer"]["param_groups"][:1]  # an optimizer of another model


@pytest.mark.parametrize("mutate,message", [
    (lambda ck: ck.update(optimizer={}, scheduler={}), "it is a copy of a best.pt: it has no optimizer or schedule state"),
    (lambda ck: ck.update(epoch=5), "'epoch' must be an integer in 1..3 (the epochs its config asks for); got 5"),
    (lambda ck: ck.update(epoch=0), "'epoch' must be an integer in 1..3"),
    (lambda ck: ck.update(history="1,2,3"), "'history' must be a list of per-epoch rows; got str"),
    # resumed, the run wrote on and saved the bad row into best.pt, last.pt and history.json, then a traceback
    (lambda ck: ck.update(history=[{"epoch": "x"}]), "'history' row 1 is not an epoch's record (numbers for epoch, train_loss"),
    # no later epoch beat NaN or 2.0: best.pt stayed an old epoch's while the run said "best ... at epoch N"
    (lambda ck: ck.update(best_acc=float("nan")), "'best_acc' must be a validation accuracy in 0..1 or None; got nan"),
    (lambda ck: ck.update(best_acc=2.0), "'best_acc' must be a validation accuracy in 0..1 or None; got 2.0"),
    (lambda ck: ck.update(iter_loss={"a": 1}), "'iter_loss' must be a list of numbers; got dict"),
    (lambda ck: ck.update(rng=[1, 2]), "'rng' must be a random generator's state (a (5056,) uint8 tensor); got list"),
    (lambda ck: ck.update(rng_states={"torch": 3}), "'rng_states' must map 'torch' to a random generator's state"),
    (lambda ck: ck.update(scheduler=[1]), "'scheduler' must be a mapping; got list"),
    (_drop_a_param_group, "its optimizer state does not fit this run (ValueError: loaded state dict has a different number"),
    # torch loads any tensors as Adam's moments: a traceback at the first step, or a NaN loss ("lower --lr")
    (_optimizer_state("exp_avg", lambda t: t[:1]), "its optimizer state does not fit this run (ValueError: exp_avg of weight 0 has shape"),
    (_optimizer_state("exp_avg_sq", lambda t: t * float("nan")), "its optimizer state does not fit this run (ValueError: exp_avg_sq of weight 0 holds NaN or infinite values)"),
])
def test_resume_from_a_wrong_last_pt_is_one_line(tiny_run, tmp_path, capsys, mutate, message):
    """A readable last.pt that training did not write as it is: one error line naming it, what is
    wrong and the fix, not a traceback from the optimizer, schedule or random generator."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ck = torch.load(run / "last.pt", weights_only=True)
    mutate(ck)
    torch.save(ck, run / "last.pt")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'last.pt'}: cannot resume from it: {message}") and err.count("\n") == 1, err
    assert err.rstrip().endswith("restore the last.pt that training wrote, or start a new run with 'ferkit train --out NEW_FOLDER'")


def test_resume_with_fewer_epochs_than_done_is_one_line(tiny_run, tmp_path, capsys):
    import shutil

    from ferkit.cli import main

    shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: --epochs 2: the run in {tmp_path / 'run'} has already trained 3 epochs; "
                                       "give --epochs 3 or more, or leave it out\n")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "0", "--quiet"]) == 2  # was taken for "not given"
    assert "--epochs must be >= 1; got 0" in capsys.readouterr().err


def test_resume_refuses_a_config_json_that_no_longer_matches_last_pt(tiny_run, tmp_path, capsys, monkeypatch):
    """last.pt's weights and optimizer state are of the net, optimizer, seed and faces it was trained with: a
    config.json edited (or a last.pt copied from another run) is one error naming each field, its value in
    config.json and the run's, and the fix, before any data are read. An edit of the seed, of the spec recorded
    there or of init_from was ignored unsaid; one of the split was refused after the data were read, naming none."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = json.loads((run / "config.json").read_text())
    spec = json.loads(json.dumps(saved["spec"]))
    spec["convs"][0]["filters"], spec["gap"], spec["fcs"] = 12, True, spec["fcs"] * 2
    (run / "config.json").write_text(json.dumps({**saved, "optimizer": "sgd", "schedule": "onecycle", "seed": 3,
                                                 "val_fraction": 0.2, "init_from": "other.pt", "spec": spec}))
    with monkeypatch.context() as m:
        m.setattr(train, "load_data", lambda *a: pytest.fail("the data were read before the check"))
        assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: --resume {run}: {run / 'config.json'} was edited in fields a resumed run cannot change (last.pt holds "
        "the weights and state they made):\n"
        "  - optimizer is 'sgd' in config.json; the run trained with 'adam'\n"
        "  - schedule is 'onecycle' in config.json; the run trained with 'none'\n"
        "  - seed is 3 in config.json; the run trained with 0\n"
        "  - init_from is 'other.pt' in config.json; the run trained with None\n"
        "  - val_fraction is 0.2 in config.json; the run trained with 0.1\n"
        "  - spec.convs.0.filters is 12 in config.json; the run trained with 8\n"
        "  - spec.fcs has 2 layers in config.json; the run trained with 1\n"
        "  - spec.gap is True in config.json; the run trained with False\n"
        "  put them back as the run wrote them to resume it (--epochs may grow), or train them in a new run: "
        f"'ferkit train --config {run / 'config.json'} --out NEW_FOLDER' (the edited spec saved as a JSON file and "
        "given with --model FILE)\n")
    assert read_checkpoint(run / "last.pt")["epoch"] == 3
    # what a resume may change goes on: more epochs, another lr (re-planned), where the data are now
    shutil.copy(saved["data"], tmp_path / "moved.csv")
    (run / "config.json").write_text(json.dumps({**saved, "lr": 1e-3, "data": str(tmp_path / "moved.csv")}))
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    assert read_checkpoint(run / "last.pt")["epoch"] == 4


def test_resume_names_every_problem_in_one_error(tiny_run, tmp_path, capsys, monkeypatch):
    """label_mode edited in config.json is refused by name: with FER+ votes it changes which faces train (majority
    keeps only those with one), which was refused only after the data were read, as a mean image naming no field. An
    --epochs below those done and a --teacher more are lines of the same error (each was an error of its own, one
    after the other fixed)."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "label_mode": "majority"}))
    with monkeypatch.context() as m:
        m.setattr(train, "load_data", lambda *a: pytest.fail("the data were read before the check"))
        assert main(["train", "--resume", str(run), "--epochs", "2", "--teacher", str(tiny_run), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: --resume {run}: {run / 'config.json'} was edited in fields a resumed run cannot change (last.pt holds "
        "the weights and state they made):\n"
        "  - label_mode is 'majority' in config.json; the run trained with 'crossentropy'\n"
        "  put them back as the run wrote them to resume it (--epochs may grow), or train them in a new run: "
        f"'ferkit train --config {run / 'config.json'} --out NEW_FOLDER'\n"
        f"  --epochs 2: the run in {run} has already trained 3 epochs; give --epochs 3 or more, or leave it out\n"
        f"  --teacher: the run in {run} trained with no teacher; --resume takes --teacher for where the run's teachers are "
        "now (moved), not to add or remove any; leave it out to resume, or start a new run with the teachers you want\n")
    assert read_checkpoint(run / "last.pt")["epoch"] == 3


def test_resume_says_the_spec_file_changed_since_the_run_began(tiny_run, tmp_path, caplog):
    """The resumed run builds the net last.pt holds: a spec file edited since (to train another net) went unsaid."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    spec = tmp_path / "tiny.json"
    shutil.copy(tiny_run.parent / "tiny.json", spec)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "model": str(spec)}))
    ck = torch.load(run / "last.pt", weights_only=True)
    ck["config"]["model"] = str(spec)  # as if it trained from this copy
    torch.save(ck, run / "last.pt")
    fit(train.resume_config(run, epochs=4), run, resume=True, progress=False)
    assert "changed since" not in caplog.text  # as it was (without num_classes: the run's, 7)
    edited = json.loads(spec.read_text())
    edited["convs"][1]["filters"] = 12
    spec.write_text(json.dumps(edited))
    fit(train.resume_config(run, epochs=5), run, resume=True, progress=False)
    assert (f"{spec}: changed since the run began (spec.convs.1.filters); the resumed run goes on with the net it trained, "
            "recorded in last.pt; to train the changed net, start a new run with --out NEW_FOLDER") in caplog.text
    assert read_checkpoint(run / "last.pt")["spec"]["convs"][1]["filters"] == 16
    caplog.clear()
    spec.unlink()  # gone: last.pt holds the net
    fit(train.resume_config(run, epochs=6), run, resume=True, progress=False)
    assert "changed since" not in caplog.text and read_checkpoint(run / "last.pt")["epoch"] == 6


def test_resume_with_config_json_damaged_or_gone_takes_last_pt_s_config(tiny_run, tmp_path, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text('{"model": "tin')  # a full disk's half-written file
    cfg = train.resume_config(run, epochs=4)
    assert cfg.epochs == 4 and cfg.lr == json.loads((tiny_run / "config.json").read_text())["lr"]
    assert "config.json: not valid JSON" in caplog.text and "resuming with the config saved in last.pt" in caplog.text
    fit(cfg, run, resume=True, progress=False)
    assert json.loads((run / "config.json").read_text())["epochs"] == 4  # written anew
    (run / "config.json").unlink()
    assert train.resume_config(run).epochs == 4
    (run / "config.json").mkdir()  # it could not be written anew: said at once (it was, after the data load)
    with pytest.raises(FerkitError, match=rf"^--resume {run}: {run / 'config.json'} is not a file; remove it \(last.pt"):
        train.resume_config(run)


def test_a_resume_with_config_json_damaged_reads_last_pt_in_full_once(tiny_run, tmp_path, monkeypatch):
    """(resume_config read last.pt in full, checks and all, for its config, then fit read it in full again)"""
    import shutil

    from ferkit import checkpoint
    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text('{"model": "tin')
    reads, real = [], checkpoint.read_checkpoint

    def counted(path, *args, **kwargs):
        reads.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(train, "read_checkpoint", counted)
    monkeypatch.setattr(checkpoint, "read_checkpoint", counted)
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    assert reads.count(run / "last.pt") == 1 and read_checkpoint(run / "last.pt")["epoch"] == 4
    assert json.loads((run / "config.json").read_text())["epochs"] == 4  # written anew, from last.pt's config


def test_resume_of_a_damaged_last_pt_names_the_command_that_starts_again_from_best_pt(tiny_run, tmp_path, capsys):
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    whole = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(whole[: len(whole) // 2])  # a copy cut off half-way
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    command = f"ferkit train --config {run / 'config.json'} --init-from {run / 'best.pt'} --out NEW_FOLDER"
    assert f"{run / 'last.pt'}: not a readable ferkit checkpoint" in err and "Its best.pt is whole (epoch " in err, err
    assert command in err and err.count("\n") == 1, err
    # the command runs as given: a run's config.json (its resolved spec included) is a --config
    new = tmp_path / "new"
    assert main(command.replace("NEW_FOLDER", str(new)).split()[1:] + ["--epochs", "1", "--quiet"]) == 0
    assert read_checkpoint(new / "last.pt")["epoch"] == 1
    (run / "best.pt").write_bytes(b"")  # no whole best.pt either: the plain message
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "best.pt" not in capsys.readouterr().err


def test_resume_of_a_run_whose_config_json_and_last_pt_are_damaged_names_no_damaged_file(tiny_run, tmp_path, capsys):
    """With config.json damaged too, the way on from best.pt was 'ferkit train --config RUN/config.json ...', a file
    that fails to read: it now names the model and data best.pt recorded, and the command runs as given."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    whole = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(whole[: len(whole) // 2])  # a copy cut off half-way
    (run / "config.json").write_text('{"model": ')  # and its config.json
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    command = (f"ferkit train --model {config['model']} --data {config['data']} --init-from {run / 'best.pt'} "
               f"--out NEW_FOLDER")
    assert command in err and "--config" not in err, err
    assert err.endswith("--out NEW_FOLDER' (its config.json does not read: add the other flags the run trained with)\n"), err
    new = tmp_path / "new"
    assert main(command.replace("NEW_FOLDER", str(new)).split()[1:] + ["--epochs", "1", "--quiet"]) == 0
    assert read_checkpoint(new / "last.pt")["epoch"] == 1


def test_the_command_from_best_pt_of_a_run_whose_spec_file_is_gone_names_the_recorded_spec(tiny_run, tmp_path, capsys):
    """A run trained from a spec file that has since moved: the command that starts again from its best.pt failed
    with "spec.json: cannot read", though the run's config.json records the net; it now says how to use that."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    gone = tmp_path / "moved" / "tiny.json"
    (run / "config.json").write_text(json.dumps({**config, "model": str(gone)}))  # as the run wrote it, from there
    (run / "last.pt").unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    command = f"ferkit train --config {run / 'config.json'} --init-from {run / 'best.pt'} --out NEW_FOLDER"
    assert command in capsys.readouterr().err
    new = tmp_path / "new"
    argv = command.replace("NEW_FOLDER", str(new)).split()[1:] + ["--epochs", "1", "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"error: --config {run / 'config.json'}: its model {gone}: cannot read (No such file or "
                                       f"directory); the net the run trained is recorded there as its \"spec\": save that as "
                                       "a JSON file and give it with --model FILE (or put the spec file back)\n")
    assert not new.exists()
    (tmp_path / "spec.json").write_text(json.dumps(config["spec"]))  # the way it names works
    assert main(argv + ["--model", str(tmp_path / "spec.json")]) == 0
    assert "note:" not in capsys.readouterr().out  # the same net as recorded
    assert read_checkpoint(new / "best.pt")["spec"] == config["spec"]
    assert main(["train", "--config", str(run / "config.json"), "--model", str(gone), "--out", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err == f"error: {gone}: cannot read (No such file or directory)\n"  # a --model given: its own


def test_resume_takes_the_machine_settings_and_names_the_file_it_cannot_write(tiny_run, tmp_path, capsys):
    """A run begun with --device cuda goes on with --resume --device cpu (the flag was ignored, and the
    error said to use it); a history.json that cannot be written is named (config.json was blamed)."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "device": "cuda", "threads": 1}))
    (run / "history.json").unlink()
    (run / "history.json").mkdir()
    assert main(["train", "--resume", str(run), "--epochs", "4", "--device", "cpu", "--threads", "2", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "ignoring" not in out and err.startswith(f"error: {run / 'history.json'}: cannot write it ("), err
    (run / "history.json").rmdir()
    assert main(["train", "--resume", str(run), "--epochs", "4", "--device", "cpu", "--threads", "2", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["threads"] == 2 and read_checkpoint(run / "last.pt")["epoch"] == 4


def test_resume_takes_where_the_teacher_is_now(tiny_run, tmp_path, capsys):
    """A teacher moved after the run began: --resume --teacher NEW goes on (the flag was ignored, and the
    error named the old path)."""
    import shutil

    from ferkit.cli import main

    config = json.loads((tiny_run / "config.json").read_text())
    shutil.copy(tiny_run / "best.pt", tmp_path / "teach.pt")
    run = tmp_path / "run"
    assert main(["train", "--model", config["model"], "--data", config["data"], "--epochs", "1", "--teacher",
                 str(tmp_path / "teach.pt"), "--out", str(run), "--quiet"]) == 0
    (tmp_path / "teach.pt").rename(tmp_path / "moved.pt")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--teacher", str(tmp_path / "moved.pt"), "--quiet"]) == 0
    assert "ignoring" not in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["teacher"] == [str(tmp_path / "moved.pt")]
    # a teacher more is no move: it distilled the rest of the run, and config.json said the run was distilled throughout
    assert main(["train", "--resume", str(run), "--epochs", "3", "--teacher", f"{tmp_path / 'moved.pt'},{tiny_run}",
                 "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: --teacher: the run in {run} trained with 1 teacher ({tmp_path / 'moved.pt'}); "
                                       "--resume takes --teacher for where the run's teachers are now (moved), not to add or "
                                       "remove any; leave it out to resume, or start a new run with the teachers you want\n")
    plain = tmp_path / "plain"
    shutil.copytree(tiny_run, plain)
    assert main(["train", "--resume", str(plain), "--epochs", "4", "--teacher", str(tmp_path / "moved.pt"), "--quiet"]) == 2
    assert f"the run in {plain} trained with no teacher; " in capsys.readouterr().err
    assert read_checkpoint(plain / "last.pt")["epoch"] == 3


def test_resuming_a_folder_it_cannot_write_says_how_to_go_on(tiny_run, tmp_path, monkeypatch, capsys):
    """A resumed run cannot move: the fix is a writable folder or a copy of the run, not "choose
    another location". (As root a read-only folder is writable, so the write itself is refused.)"""
    import shutil

    from ferkit import files
    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "TemporaryFile", refused)
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: --resume {run}: cannot write in {run} (Permission denied); make the folder writable, "
                                       "or copy the run folder and resume the copy\n")


def test_a_bad_value_edited_into_config_json_is_named_there_on_resume(tiny_run, tmp_path, capsys):
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "lr": "fast"}))
    assert main(["train", "--resume", str(run), "--epochs", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: invalid training config:\n  - {run / 'config.json'}: lr must be a finite "
                                       "number or null; got 'fast'\n  - --epochs must be >= 1; got 0\n")


def test_resume_takes_a_setting_deleted_from_config_json_from_the_recipe(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = json.loads((run / "config.json").read_text())
    del saved["lr"]
    (run / "config.json").write_text(json.dumps({**saved, "l2": None}))
    cfg = train.resume_config(run, epochs=4)
    assert (cfg.lr, cfg.l2, cfg.epochs) == (1e-3, 1e-6, 4)  # a spec file's recipe: the paper's shallow net's
    fit(cfg, run, resume=True, progress=False)
    assert read_checkpoint(run / "last.pt")["epoch"] == 4


def test_resume_of_a_finished_run_says_so(tiny_run, tmp_path, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with caplog.at_level(logging.INFO, logger="ferkit.train"):
        fit(train.resume_config(run), run, resume=True, progress=False)
    assert f"{run}: the run has trained all its 3 epochs" in caplog.text and "resuming" not in caplog.text


def test_a_full_disk_at_the_config_is_one_line(tmp_path, monkeypatch, capsys):
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    run = tmp_path / "run"
    _disk_full_at(monkeypatch, "config.json", 1)
    assert main(["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--epochs", "1", "--out", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {run / 'config.json'}: cannot write it (No space left on device); free some "
                                       "space, then start the run again (it had not saved an epoch to resume from)\n")


def test_a_fresh_start_into_a_run_folder_is_refused_and_leaves_the_run_whole(tiny_run, tmp_path, capsys):
    """Rerunning the command that started a run (after a kill, say) must not train over its checkpoints."""
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert main(["train", "--model", config["model"], "--data", config["data"], "--epochs", "1", "--out", str(run), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: --out {run}: it holds a run already (its last.pt); continue it with "
                            f"'ferkit train --resume {run}', or give another --out (delete the folder to start it over)\n")
    assert "training" not in captured.out  # a refused start announces no training
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "last.pt").unlink()  # a finished run whose last.pt was deleted to save space: its best.pt is still the model
    before.pop("last.pt")
    assert main(["train", "--model", config["model"], "--data", config["data"], "--epochs", "1", "--out", str(run), "--quiet"]) == 2
    assert "holds a run's best.pt and history.json and history.csv but no last.pt" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_the_resume_advised_for_a_run_folder_with_a_space_or_quote_is_one_argument(tiny_run, tmp_path, capsys):
    """'ferkit train --resume /tmp/my runs/a', pasted into a shell, resumed /tmp/my (and a quote or $ in the name broke
    the command): the advised command names the run folder as one shell word, and it runs as advised."""
    import shlex
    import shutil

    from ferkit.cli import main

    run = tmp_path / "my runs" / "it's $HOME;x"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    assert main(["train", "--model", config["model"], "--data", config["data"], "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    command = err.partition("continue it with '")[2].rpartition("', or give another --out")[0]
    assert shlex.split(command) == ["ferkit", "train", "--resume", str(run)], err
    assert main([*shlex.split(command)[1:], "--quiet"]) == 0  # it has trained all its 3 epochs: it trains none


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_run_folder_takes_one_training_at_a_time(tiny_run, tmp_path, capsys):
    """A second training into a folder another one writes (two runs started in the same second share the
    default --out; a resume of a run still training) is refused, and leaves the run as it was."""
    import fcntl
    import os
    import shutil

    from ferkit.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    fd = os.open(run, os.O_RDONLY)  # as the training that writes it holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 2
        assert "another 'ferkit train' is writing this run now" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    finally:
        os.close(fd)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0  # the lock went with its holder


def test_a_refused_start_leaves_no_folder(tmp_path):
    from ferkit.cli import main

    out = tmp_path / "new" / "run"
    assert main(["train", "--model", "fast", "--data", str(tmp_path / "none.csv"), "--out", str(out), "--quiet"]) == 2
    assert not (tmp_path / "new").exists()


def test_mixup_and_cutmix_images_by_hand():
    x = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), -1.0)])  # two flat faces
    swap = torch.tensor([1, 0])
    up = augment.Mix(0.7, swap).images(x)
    torch.testing.assert_close(up, torch.stack([torch.full((1, 4, 4), 0.4), torch.full((1, 4, 4), -0.4)]))
    cut = augment.Mix(1 - 6 / 16, swap, box=(1, 3, 0, 3)).images(x)  # rows 1-2, columns 0-2 from the partner
    expected = x.clone()
    expected[0, 0, 1:3, 0:3], expected[1, 0, 1:3, 0:3] = -1.0, 1.0
    assert torch.equal(cut, expected)
    hog = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(augment.Mix(0.7, swap).features(hog), torch.tensor([[0.7, 0.3], [0.3, 0.7]]))


def test_draw_mix_is_seeded_and_cutmix_shares_are_the_box_area():
    def draw(seed, **kw):
        return augment.draw_mix(16, (48, 48), torch.Generator().manual_seed(seed), **kw)

    assert draw(0) is None
    a, b = draw(3, cutmix=1.0), draw(3, cutmix=1.0)
    assert a.box == b.box and a.lam == b.lam and torch.equal(a.perm, b.perm) and draw(4, cutmix=1.0).box != a.box
    for seed in range(20):
        m = draw(seed, cutmix=1.0)
        top, bottom, left, right = m.box
        assert m.lam == pytest.approx(1 - (bottom - top) * (right - left) / 48**2) and 0 <= top <= bottom <= 48
        assert draw(seed, mixup=0.4).box is None and 0 < draw(seed, mixup=0.4).lam < 1
    picks = [draw(s, mixup=0.4, cutmix=1.0, mixup_prob=0.25).box is None for s in range(200)]
    assert 30 < sum(picks) < 70  # mixup a quarter of the time
    assert all(draw(s, mixup=0.4, cutmix=1.0, mixup_prob=1.0).box is None for s in range(20))


def test_mix_options_are_validated_together():
    from ferkit.config import TrainConfig
    from ferkit.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        TrainConfig(mixup=-0.2, cutmix=-1, mixup_prob=1.5)
    assert all(m in str(e.value) for m in ("--mixup must be >= 0; got -0.2", "--cutmix must be >= 0; got -1.0",
                                           "--mixup-prob must be in [0, 1]; got 1.5"))


class _RecordingTeacher:
    """A teacher that remembers the faces it was shown."""

    def __init__(self):
        self.seen = []

    def logits(self, x):
        self.seen.append(x.clone())
        return torch.zeros(len(x), 7)


@pytest.mark.parametrize("mode", ["majority", "probability", "crossentropy", "multi_target"])
@pytest.mark.parametrize("mixing", [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}])
def test_a_training_step_runs_with_mixing_in_every_label_mode(mode, mixing):
    import numpy as np

    from conftest import synthetic_faces
    from ferkit.config import TrainConfig
    from ferkit.data import mean_image
    from ferkit.model import create_model

    faces, labels = synthetic_faces(14)
    votes = np.random.default_rng(0).dirichlet(np.ones(7), 14).astype("float32")
    targets = {"majority": None, "multi_target": (votes > 0.15).astype("float32")}.get(mode, votes)
    spec = tiny_spec(hog=mode == "crossentropy")  # the HOG features are mixed along
    data = make_batches(faces, labels, mean_image(faces), spec, flips=True, targets=targets)
    cfg = TrainConfig(batch_size=14, lr=1e-3, l2=0.0, label_mode=mode, precision="fp32", **mixing)
    model = create_model(spec)
    opt = train._optimizer(model, cfg)
    teacher, student_saw = _RecordingTeacher(), []
    model.register_forward_pre_hook(lambda m, args: student_saw.append(args[0].clone()))
    _, _, losses = train.train_one_epoch(model, data, opt, train._scheduler(opt, cfg, 1), cfg, torch.Generator().manual_seed(1),
                                         torch.device("cpu"), teachers=[teacher])
    assert len(losses) == 1 and losses[0] == losses[0] and losses[0] > 0
    shown = teacher.seen[0]  # the student's faces, mixed: (a face paired with itself stays as it was)
    assert torch.equal(shown, student_saw[0])
    as_they_were = torch.cat([data.x, data.x.flip(-1)])
    assert sum(any(torch.equal(s, d) for d in as_they_were) for s in shown) < len(shown) // 2


def _lopsided_faces(n: int):
    """Faces whose class shows on the left half only, so a net can answer a face and its mirror image apart."""
    from conftest import synthetic_faces

    faces, labels = synthetic_faces(n)
    faces[:, :, 24:] = faces[:, :, :24].mean().astype("uint8")  # the bars (cols 8-40) keep their left part
    return faces, labels


def test_flip_consistency_adds_the_mirror_disagreement_to_the_loss():
    """One pass over the faces and their mirror images (a HOG net gets each view's own features); the
    loss is the label loss of the faces plus W times the symmetric KL between the two views' predictions."""
    import torch.nn.functional as F

    from ferkit.config import TrainConfig
    from ferkit.data import mean_image
    from ferkit.model import create_model

    faces, labels = _lopsided_faces(14)
    spec = tiny_spec(hog=True)
    data = make_batches(faces, labels, mean_image(faces), spec, flips=True)
    cfg = TrainConfig(batch_size=14, lr=1e-3, l2=0.0, precision="fp32", flip_consistency=0.7)
    torch.manual_seed(0)
    model, seen = create_model(spec), []
    model.register_forward_hook(lambda m, args, out: seen.append((args, out.detach())))
    opt = train._optimizer(model, cfg)
    loss = train.train_one_epoch(model, data, opt, train._scheduler(opt, cfg, 1), cfg, torch.Generator().manual_seed(1),
                                 torch.device("cpu"))[2][0]
    ((x, hog), out), = seen
    faces_x, mirror_x = x.chunk(2)
    assert torch.equal(mirror_x, faces_x.flip(-1))
    order = torch.randperm(14, generator=torch.Generator().manual_seed(1))  # the epoch's order: its first draw
    hog_x, hog_m = hog.chunk(2)
    flipped = 0
    for r, k in enumerate(order):  # each view's HOG is the one of its own orientation (flips: random, per face)
        turned = not torch.equal(faces_x[r], data.x[k])
        assert torch.equal(faces_x[r], data.x[k].flip(-1) if turned else data.x[k])
        assert torch.equal(hog_x[r], data.hog_flip[k] if turned else data.hog[k])
        assert torch.equal(hog_m[r], data.hog[k] if turned else data.hog_flip[k])
        flipped += turned
    assert 0 < flipped < 14
    y = data.y[order]
    a, b = (F.log_softmax(z, 1).double() for z in out.chunk(2))
    kl = ((a.exp() * (a - b)).sum(1).mean() + (b.exp() * (b - a)).sum(1).mean()) / 2
    assert kl > 1e-3, "the two views agree already: the test could not see the term"
    assert loss == pytest.approx(F.cross_entropy(out.chunk(2)[0], y).item() + 0.7 * kl.item(), rel=1e-5)


def test_flip_consistency_teaches_the_net_to_answer_a_face_and_its_mirror_image_alike():
    from ferkit.config import TrainConfig
    from ferkit.data import mean_image
    from ferkit.model import create_model

    faces, labels = _lopsided_faces(14)
    data = make_batches(faces, labels, mean_image(faces), tiny_spec())
    disagreement = {}
    for w in (0.0, 5.0):
        cfg = TrainConfig(batch_size=14, lr=1e-2, l2=0.0, flip=False, precision="fp32", flip_consistency=w)
        torch.manual_seed(0)
        model = create_model(tiny_spec())
        opt, gen = train._optimizer(model, cfg), torch.Generator().manual_seed(0)
        sched = train._scheduler(opt, cfg, 30)
        for _ in range(30):
            train.train_one_epoch(model, data, opt, sched, cfg, gen, torch.device("cpu"))
        with torch.no_grad():
            model.eval()
            disagreement[w] = train.mirror_disagreement(model(data.x), model(data.x.flip(-1))).item()
    assert disagreement[5.0] < disagreement[0.0] / 10, disagreement


def test_validation_batches_are_no_larger_than_training_batches(tmp_path, monkeypatch):
    """Validation once ran in batches of 512 whatever --batch-size said: a model that trained in
    batches of 8 could run out of memory at the end of its first epoch."""
    sizes = []
    real = train.evaluate
    monkeypatch.setattr(train, "evaluate", lambda model, data, device, batch_size=512, **kw:
                        sizes.append(batch_size) or real(model, data, device, batch_size, **kw))
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=42)
    fit(resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=8), tmp_path / "run", progress=False)
    assert sizes == [8]


def test_out_of_memory_in_an_epoch_is_one_line_that_says_what_to_lower(tmp_path, monkeypatch, capsys):
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=42)
    run = tmp_path / "run"
    args = ["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--epochs", "2", "--batch-size", "21",
            "--out", str(run), "--quiet"]
    real, calls = train.evaluate, []

    def evaluate(*a, **kw):  # the second epoch's validation asks for more memory than there is
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes. Error code 12")
        return real(*a, **kw)

    monkeypatch.setattr(train, "evaluate", evaluate)
    assert main(args) == 2
    assert capsys.readouterr().err == ("error: out of memory in epoch 2 (DefaultCPUAllocator: can't allocate memory: you "
                                       "tried to allocate 8589934592 bytes. Error code 12): lower --batch-size (now 21) or the model's "
                                       f"size (in_size, filters); then continue with 'ferkit train --resume {run}'\n")
    assert read_checkpoint(run / "last.pt")["epoch"] == 1
    monkeypatch.setattr(train, "evaluate", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not dressed up as memory
        main(["train", "--resume", str(run), "--quiet"])


@pytest.mark.parametrize("n,extra", [(14, ["--train-subset", "1"]), (1, [])])
def test_training_on_fewer_than_two_faces_is_one_line(tmp_path, capsys, n, extra):
    """(batch norm's traceback, "Expected more than 1 value per channel", before)"""
    from ferkit.cli import main

    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=n)
    assert main(["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--epochs", "1", "--out",
                 str(tmp_path / "run"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert "training face(s) with a label" in err and "training needs at least 2" in err


def test_a_model_and_batch_whose_activations_cannot_fit_are_refused_before_the_data(tmp_path, monkeypatch, capsys):
    """(a 4096-filter conv at in_size 512 went on to ask the allocator for 172 GB; smaller excesses
    end in the kernel's out-of-memory killer, which names nothing)"""
    from ferkit.cli import main
    from ferkit.config import ConvSpec, ModelSpec

    spec = ModelSpec(convs=[ConvSpec(8, 3, pool=2), ConvSpec(16, 3, stride=2)], in_size=48)
    assert spec.activations() == 2 * (8 * 48 * 48 + 16 * 12 * 12)  # each conv's map (before its pool), twice
    monkeypatch.setattr(train, "available_memory", lambda: 2**30)
    (tmp_path / "big.json").write_text('{"convs": [{"filters": 4096}], "in_size": 512, "gap": true}')
    assert main(["train", "--model", str(tmp_path / "big.json"), "--data", str(tmp_path / "none.csv"), "--batch-size", "8",
                 "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ("error: this model's activations at --batch-size 8 need at least 64.0 GiB, over the "
                                       "1.0 GiB of memory free; lower --batch-size or the model's size (in_size, filters, "
                                       "or pool earlier)\n")  # said before the (missing) data are looked for
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training",), n=14)
    fit(resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=7), tmp_path / "ok", progress=False)


def test_a_model_whose_weights_cannot_fit_is_refused_and_one_the_allocator_refuses_is_one_line(tmp_path, monkeypatch, capsys):
    """A spec within ferkit's bounds (~184 M weights) on a machine without the memory for them and their training
    state: only the activations were checked, and the run went on to the kernel's out-of-memory killer; under a
    memory limit (ulimit -v) building the model was the allocator's RuntimeError, a traceback."""
    from ferkit.cli import main

    big = tmp_path / "big.json"
    big.write_text('{"convs": [{"filters": 1}], "fcs": [{"units": 65536}, {"units": 500}]}')
    monkeypatch.setattr(train, "available_memory", lambda: 2**30)
    args = ["train", "--model", str(big), "--data", str(tmp_path / "none.csv"), "--batch-size", "8", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert capsys.readouterr().err == ("error: this model's ~183,898,534 weights need at least 2.7 GiB in training (with their "
                                       "gradients and adam's state), over the 1.0 GiB of memory free; use fewer filters, "
                                       "units or layers, or pool more before the FC layers\n")  # before the (missing) data
    assert main(args + ["--freeze", "-1"]) == 2  # frozen weights have no gradients or optimizer state: they fit
    assert "none.csv: no such file" in capsys.readouterr().err
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training",), n=14)
    monkeypatch.setattr(train, "available_memory", lambda: None)

    def refused(spec):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 603979776 bytes. Error code 12")

    monkeypatch.setattr(train, "create_model", refused)
    assert main(["train", "--model", str(_spec_file(tmp_path)), "--data", str(csv), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("error: out of memory building the model (DefaultCPUAllocator: can't allocate "
                                              "memory: you tried to allocate 603979776 bytes. Error code 12): use fewer "
                                              "filters, units or layers (it has ~")
    assert not (tmp_path / "run").exists()


def test_available_memory_reads_meminfo(tmp_path):
    from ferkit.cpu import available_memory

    (tmp_path / "meminfo").write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n")
    assert available_memory(tmp_path / "meminfo") == 20000000 * 1024
    assert available_memory(tmp_path / "nothing") is None


def test_train_given_a_run_a_checkpoint_or_an_onnx_graph_as_model_says_how_to_go_on_from_it(tiny_run, tmp_path, capsys):
    """train --model RUN_DIR (its best.pt, an exported .onnx: what a user who means to continue or fine-tune gives)
    said "--model must be a preset (...) or a JSON/YAML model spec file; got 'runs/x'", and TrainConfig(model="runs/x")
    was taken until fit's "unknown model": neither what it was nor --resume / --init-from."""
    from ferkit.cli import main
    from ferkit.config import TrainConfig
    from ferkit.errors import ConfigError

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    takes = "train builds a new model from a preset name (shallow, "
    resume = f"to continue that run: ferkit train --resume {tiny_run}; "
    init = (f"to start a new run from its weights: ferkit train --config {tiny_run / 'config.json'} --init-from "
            f"{tiny_run / 'best.pt'} --out NEW_FOLDER")
    for model, what, advice in ((tiny_run, "a run folder", resume + init),
                                (tiny_run / "best.pt", "a checkpoint", resume.replace("that", "its") + init),
                                (onnx, "an ONNX graph", "--init-from CHECKPOINT --out NEW_FOLDER, with the checkpoint (.pt) "
                                                        "it was exported from"),
                                (tmp_path, "a folder", "")):
        # (the data, missing, are not looked for: the model is refused first)
        assert main(["train", "--model", str(model), "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert f"--model {model}: is {what}; {takes}" in err and "or a JSON/YAML spec file" in err and advice in err
        assert ("--resume" in err) == (what in ("a run folder", "a checkpoint")), err  # (no last.pt beside the .onnx)
        with pytest.raises(ConfigError, match=f"--model {model}: is {what}; "):  # the Python API, before fit
            TrainConfig(model=str(model))
    assert not (tmp_path / "run").exists()
    assert main(["train", "--model", "nosuch", "--out", str(tmp_path / "run")]) == 2
    assert "--model must be a preset (shallow, " in capsys.readouterr().err  # (as it was)


def test_train_given_image_data_or_a_config_file_s_checkpoint_as_model_gives_ways_that_work(tiny_run, tmp_path, capsys):
    """train --model FACES (class folders of images: the data, given to the wrong flag) said only "is a folder", not
    that --data takes it; a config file's model naming a checkpoint with no config.json beside it advised
    "ferkit train c.yaml: model (the preset or spec it trained) --init-from ...": the file's key in place of the
    flag inside the command, not only where the problem names its field."""
    from ferkit.cli import main

    (tmp_path / "faces" / "happy").mkdir(parents=True)
    (tmp_path / "faces" / "happy" / "1.png").write_bytes(b"")
    assert main(["train", "--model", str(tmp_path / "faces"), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.endswith(f"or a JSON/YAML spec file; it holds images in class folders, as image data "
                                            f"do: give it with --data {tmp_path / 'faces'}\n")
    assert main(["train", "--model", str(tmp_path), "--out", str(tmp_path / "run")]) == 2  # no images in class folders
    assert capsys.readouterr().err.endswith("or a JSON/YAML spec file\n")  # (as it was)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())
    (tmp_path / "c.yaml").write_text(f"model: {tmp_path / 'bare' / 'best.pt'}\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"  - {tmp_path / 'c.yaml'}: model {tmp_path / 'bare' / 'best.pt'}: is a checkpoint; " in err
    assert err.endswith(f"; to start a new run from its weights: ferkit train --model (the preset or spec it trained) "
                        f"--init-from {tmp_path / 'bare' / 'best.pt'} --out NEW_FOLDER\n"), err
    assert not (tmp_path / "run").exists()
