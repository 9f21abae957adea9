import json
import signal
import subprocess
import sys
import time

import torch

from conftest import tiny_spec, write_fer_csv
from ferkit import augment
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.train import fit, resolve_config


def test_resolve_config_layers_preset_file_and_flags():
    cfg = resolve_config("deep")
    assert (cfg.epochs, cfg.lr, cfg.l2, cfg.batch_size) == (35, 1e-2, 1e-7, 128)
    cfg = resolve_config(base={"model": "shallow", "epochs": 3, "lr": 0.5}, lr=0.1)
    assert (cfg.epochs, cfg.lr, cfg.l2) == (3, 0.1, 1e-6)


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


def test_fit_without_val_split_keeps_last_as_best(tmp_path):
    csv = write_fer_csv(tmp_path / "train_only.csv", usages=("Training",), n=28)
    logs = []
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=1, batch_size=14)
    fit(cfg, tmp_path / "run", progress=False, log=logs.append)
    assert any("no PublicTest" in m for m in logs) and (tmp_path / "run" / "best.pt").exists()


def _spec_file(tmp_path):
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(tiny_spec().to_dict()))
    return p


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


def test_resume_with_a_new_length_replans_the_schedule(tmp_path):
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    cfg = resolve_config(str(_spec_file(tmp_path)), data=str(csv), epochs=4, batch_size=21, schedule="onecycle")
    fit(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    logs = []
    history = fit(resolve_config(base=cfg.to_dict(), epochs=6), tmp_path / "run", resume=True, progress=False, log=logs.append)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert any("re-planned for 6 epochs (was 4)" in m for m in logs)
    assert history[4]["lr"] < cfg.lr  # past the one-cycle peak, annealing towards the new end
