"""Precision (fp32 / bf16 autocast) and knowledge distillation, on tiny data."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_faces, tiny_spec, write_fer_csv
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.config import TrainConfig
from ferkit.data import mean_image
from ferkit.errors import ConfigError
from ferkit.labels import FER2013
from ferkit.model import create_model
from ferkit.preprocess import autocast, resolve_precision
from ferkit.train import _optimizer, _scheduler, fit, make_batches, resolve_config, train_one_epoch

CPU = torch.device("cpu")


def _native_bf16(monkeypatch, native: bool):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


def test_auto_picks_bf16_only_where_it_is_fast(monkeypatch):
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    _native_bf16(monkeypatch, False)
    assert resolve_precision("auto", CPU) == "fp32"
    _native_bf16(monkeypatch, True)
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("auto", torch.device("meta")) == "fp32"
    with pytest.raises(ConfigError, match="--precision must be one of auto, fp32, bf16; got 'fp16'"):
        resolve_precision("fp16", CPU)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_asked_for_where_it_is_emulated_is_kept_with_a_warning(monkeypatch, caplog, native):
    _native_bf16(monkeypatch, native)
    with caplog.at_level("WARNING", "ferkit"):
        assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp32", CPU) == "fp32"
    assert ("no native bf16, so it is emulated here" in caplog.text) is not native


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


@pytest.mark.parametrize("native_bf16,expected", [(False, "fp32"), (True, "bf16")])
def test_auto_is_recorded_as_what_it_resolved_to(files, monkeypatch, native_bf16, expected):
    # The CPU's bf16 support is set here, so the expected value does not depend on this machine.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    root, csv, spec = files
    out = root / f"auto-{expected}"
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28, device="cpu"), out, progress=False)
    assert json.loads((out / "config.json").read_text())["precision"] == expected
    assert read_checkpoint(out / "last.pt")["config"]["precision"] == expected


def first_loss(run) -> float:
    return float((run / "iterations.csv").read_text().splitlines()[1].split(",")[1])


def test_distillation_learns_from_a_teacher(files, caplog):
    root, csv, spec = files
    teacher = root / "teacher"
    fit(resolve_config(str(spec), data=str(csv), epochs=4, batch_size=28, lr=3e-3, precision="fp32"), teacher, progress=False)
    cfg = resolve_config(str(spec), data=str(csv), epochs=3, batch_size=28, lr=3e-3, precision="fp32",
                         teacher=str(teacher / "best.pt"), distill=0.7, distill_temp=3.0, seed=1)
    history = fit(cfg, root / "student", progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    saved = read_checkpoint(root / "student" / "last.pt")["config"]
    assert saved["teacher"] == [str((teacher / "best.pt").resolve())] and saved["distill"] == 0.7
    # The same run without the teacher starts from the same weights on the same first batch, so its
    # first loss is the label loss L; the student's is 0.3 L + 0.7 D, D > 0 the teacher's term.
    fit(resolve_config(base={**cfg.to_dict(), "teacher": None}, epochs=1), root / "no-teacher", progress=False)
    label_loss, student_loss = first_loss(root / "no-teacher"), first_loss(root / "student")
    assert abs(student_loss - label_loss) > 1e-3, "the teacher changed nothing"
    assert (student_loss - 0.3 * label_loss) / 0.7 > 1e-3, "no distillation term beside the weighted label loss"
    # a second teacher (another seed, fewer epochs) is averaged in: the same first batch, another loss
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28, lr=3e-3, precision="fp32", seed=5), root / "teacher2",
        progress=False)
    both = [str(teacher / "best.pt"), str(root / "teacher2" / "best.pt")]
    fit(resolve_config(base={**cfg.to_dict(), "teacher": both}, epochs=1), root / "two-teachers", progress=False)
    assert abs(first_loss(root / "two-teachers") - student_loss) > 1e-3, "the second teacher changed nothing"
    assert read_checkpoint(root / "two-teachers" / "last.pt")["config"]["teacher"] == [str(Path(t).resolve()) for t in both]


class FixedTeacher:
    """A teacher that gives every face the same logits, whatever the image, so its pull is plain to see."""

    def __init__(self, row):
        self.row = torch.tensor(row)

    def logits(self, x):
        return self.row.expand(len(x), -1)


def _train(teacher, cfg, epochs=1):
    """A tiny model trained on 14 faces (one batch per epoch); returns it and its per-step losses."""
    faces, labels = synthetic_faces(14)
    data = make_batches(faces, labels, mean_image(faces), tiny_spec())
    torch.manual_seed(0)
    model = create_model(tiny_spec())
    opt = _optimizer(model, cfg)
    sched, gen, losses = _scheduler(opt, cfg, epochs), torch.Generator().manual_seed(0), []
    for _ in range(epochs):
        losses += train_one_epoch(model, data, opt, sched, cfg, gen, CPU, teachers=[teacher] if teacher else [])[2]
    return model, data, losses


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_a_fixed_teacher_adds_its_term_to_the_training_loss():
    temp, w = 2.0, 0.6
    cfg = TrainConfig(batch_size=14, lr=1e-2, l2=0.0, flip=False, precision="fp32", distill=w, distill_temp=temp)
    row = [3.0, 0, 0, 0, 0, 0, -1.0]
    faces, labels = synthetic_faces(14)
    data = make_batches(faces, labels, mean_image(faces), tiny_spec())
    torch.manual_seed(0)  # the weights _train starts from; one batch of every face, no augmentation, no dropout
    with torch.no_grad():
        z = copy.deepcopy(create_model(tiny_spec())).train()(data.x).double().numpy()
    ce = -_log_softmax(z)[np.arange(14), labels].mean()
    q, log_p = np.exp(_log_softmax(np.array([row]) / temp)), _log_softmax(z / temp)
    kl = (q * (np.log(q) - log_p)).sum(1).mean() * temp**2
    taught, _, with_t = _train(FixedTeacher(row), cfg)
    plain, _, without = _train(None, cfg)
    assert without[0] == pytest.approx(ce, rel=1e-5)
    assert with_t[0] == pytest.approx((1 - w) * ce + w * kl, rel=1e-5)
    assert not torch.allclose(taught.classifier.weight, plain.classifier.weight)


class MirrorSensitiveTeacher:
    """A teacher whose logits follow the face's left-minus-right brightness: a face and its mirror
    image get opposite answers."""

    def logits(self, x):
        half = x.shape[-1] // 2
        s = 50 * (x[..., :half].mean((1, 2, 3)) - x[..., half:].mean((1, 2, 3)))
        return torch.stack([s, -s] + [torch.zeros_like(s)] * 5, 1)


def test_teacher_tta_averages_each_teacher_over_the_face_and_its_mirror_image():
    temp, w = 2.0, 0.6
    cfg = TrainConfig(batch_size=14, lr=1e-2, l2=0.0, flip=False, precision="fp32", distill=w, distill_temp=temp,
                      teacher_tta=True)
    faces, labels = synthetic_faces(14)
    data = make_batches(faces, labels, mean_image(faces), tiny_spec())
    torch.manual_seed(0)  # the weights _train starts from
    with torch.no_grad():
        z = copy.deepcopy(create_model(tiny_spec())).train()(data.x).double().numpy()
    teacher = MirrorSensitiveTeacher()
    views = [teacher.logits(data.x).double().numpy(), teacher.logits(data.x.flip(-1)).double().numpy()]
    assert np.abs(views[0] - views[1]).max() > 1, "the synthetic faces are symmetric: the test could not see the mirror"
    q = np.mean([np.exp(_log_softmax(v / temp)) for v in views], 0)
    ce = -_log_softmax(z)[np.arange(14), labels].mean()
    kl = (q * (np.log(q) - _log_softmax(z / temp))).sum(1).mean() * temp**2
    assert _train(teacher, cfg)[2][0] == pytest.approx((1 - w) * ce + w * kl, rel=1e-5)
    cfg.teacher_tta = False  # the face's view alone: another target
    assert _train(teacher, cfg)[2][0] != pytest.approx((1 - w) * ce + w * kl, rel=1e-3)


def test_pure_distillation_pulls_the_student_to_the_teacher():
    # distill=1: the labels (2 of 14 faces are class 5) have no say; a teacher sure of class 5
    # (p 0.9 for every face) makes the student predict it.
    cfg = TrainConfig(batch_size=14, lr=1e-2, l2=0.0, flip=False, precision="fp32", distill=1.0, distill_temp=1.0)
    row = [0.0] * 7
    row[5] = 4.0
    for teacher, check in ((FixedTeacher(row), lambda p5: p5 > 0.6), (None, lambda p5: p5 < 0.3)):
        model, data, _ = _train(teacher, cfg, epochs=15)
        with torch.no_grad():
            p5 = torch.softmax(model.eval()(data.x), 1)[:, 5].mean().item()
        assert check(p5), (teacher, p5)


def test_a_teacher_with_other_emotions_is_refused(files, tmp_path):
    from ferkit.distill import Teacher
    from ferkit.errors import FerkitError

    root, csv, spec = files
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28), root / "t7", progress=False)
    with pytest.raises(FerkitError, match="predicts angry, .* the student needs .*contempt"):
        from ferkit.labels import FERPLUS

        Teacher(str(root / "t7" / "best.pt"), np.zeros((48, 48), np.float32), FERPLUS, CPU, "fp32")


def test_a_second_teacher_with_other_emotions_is_refused_by_name(files, tmp_path):
    from ferkit.errors import FerkitError
    from ferkit.predict import BUNDLED

    root, csv, spec = files
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28), root / "t7b", progress=False)
    ferplus = BUNDLED["ferplus-fast"]  # 8 emotions; the student trains on FER2013's 7
    cfg = resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28, teacher=[str(root / "t7b" / "best.pt"), str(ferplus)])
    with pytest.raises(FerkitError, match=f"--teacher {ferplus} predicts angry, .*contempt; the student needs angry, .*neutral$"):
        fit(cfg, tmp_path / "student", progress=False)


def test_a_teacher_runs_in_eval_mode_without_gradients(files):
    from ferkit.distill import Teacher

    root, csv, spec = files
    fit(resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28), root / "t-eval", progress=False)
    teacher = Teacher(str(root / "t-eval" / "best.pt"), np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")
    x = torch.randn(6, 1, 48, 48)
    expected = teacher.logits(x)
    teacher.clf.model.train()  # as if something had switched it: batch norm would use this batch's statistics
    z = teacher.logits(x)
    assert not teacher.clf.model.training and not z.requires_grad
    torch.testing.assert_close(z, expected)


@pytest.mark.parametrize("native", [False, True])
def test_a_bf16_run_resumed_where_bf16_is_emulated_goes_on_in_fp32(files, tmp_path, monkeypatch, caplog, native):
    """A run begun on a CPU with native bf16 and resumed on one without would train ~10x slower in bf16."""
    _, csv, spec = files
    cfg = resolve_config(str(spec), data=str(csv), epochs=1, batch_size=28, precision="bf16")
    fit(cfg, tmp_path / "run", progress=False)
    _native_bf16(monkeypatch, native)
    with caplog.at_level("INFO", "ferkit"):
        history = fit(resolve_config(base=cfg.to_dict(), epochs=2), tmp_path / "run", resume=True, progress=False)
    assert len(history) == 2
    resumed = json.loads((tmp_path / "run" / "config.json").read_text())["precision"]
    assert resumed == ("bf16" if native else "fp32")
    assert ("it goes on in fp32" in caplog.text) is not native
