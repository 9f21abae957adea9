"""Precision (fp32 / bf16 autocast) and knowledge distillation, on tiny data."""

import json

import numpy as np
import pytest
import torch

from conftest import tiny_spec, write_fer_csv
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.errors import ConfigError
from ferkit.preprocess import autocast, fast_bf16, resolve_precision
from ferkit.train import fit, resolve_config

CPU = torch.device("cpu")


def test_auto_picks_bf16_only_where_it_is_fast(monkeypatch):
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("auto", CPU) == ("bf16" if fast_bf16(CPU) else "fp32")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("auto", torch.device("meta")) == "fp32"
    with pytest.raises(ConfigError, match="--precision must be one of auto, fp32, bf16; got 'fp16'"):
        resolve_precision("fp16", CPU)


def test_autocast_runs_convolutions_in_bf16():
    conv = torch.nn.Conv2d(1, 4, 3)
    with autocast(CPU, "bf16"):
        assert conv(torch.randn(1, 1, 8, 8)).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert conv(torch.randn(1, 1, 8, 8)).dtype == torch.float32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    csv = write_fer_csv(root / "fer.csv", usages=("Training", "PublicTest"), n=84)
    spec = root / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    return root, csv, spec


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_in_each_precision_learns_and_records_it(files, precision):
    root, csv, spec = files
    out = root / precision
    cfg = resolve_config(str(spec), data=str(csv), epochs=4, batch_size=28, lr=3e-3, precision=precision)
    history = fit(cfg, out, progress=False)
    assert json.loads((out / "config.json").read_text())["precision"] == precision
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["val_acc"] > 0.5
    clf = load_checkpoint(out, precision=precision)
    assert clf.precision == precision
    p = clf.predict_proba(np.zeros((3, 48, 48), np.uint8))
    assert p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)


def test_auto_is_recorded_as_what_it_resolved_to(files):
    root, csv, spec = files
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28), root / "auto", progress=False)
    assert json.loads((root / "auto" / "config.json").read_text())["precision"] == resolve_precision("auto", CPU)


def test_distillation_learns_from_a_teacher(files, caplog):
    root, csv, spec = files
    teacher = root / "teacher"
    fit(resolve_config(str(spec), data=str(csv), epochs=4, batch_size=28, lr=3e-3, precision="fp32"), teacher, progress=False)
    cfg = resolve_config(str(spec), data=str(csv), epochs=3, batch_size=28, lr=3e-3, precision="fp32",
                         teacher=str(teacher / "best.pt"), distill=0.7, distill_temp=3.0, seed=1)
    history = fit(cfg, root / "student", progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    saved = read_checkpoint(root / "student" / "last.pt")["config"]
    assert saved["teacher"] == str((teacher / "best.pt").resolve()) and saved["distill"] == 0.7


def test_a_teacher_with_other_emotions_is_refused(files, tmp_path):
    from ferkit.errors import FerkitError
    from ferkit.train import Teacher

    root, csv, spec = files
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28), root / "t7", progress=False)
    with pytest.raises(FerkitError, match="predicts angry, .* the student needs .*contempt"):
        from ferkit.labels import FERPLUS

        Teacher(str(root / "t7" / "best.pt"), np.zeros((48, 48), np.float32), FERPLUS, CPU, "fp32")
