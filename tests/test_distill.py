"""Teachers for knowledge distillation: checkpoints on torch and ONNX graphs on onnxruntime."""

import json

import numpy as np
import pytest
import torch

from conftest import synthetic_faces
from ferkit.checkpoint import load_checkpoint
from ferkit.distill import OnnxTeacher, Teacher, load_teacher, teacher_probs
from ferkit.errors import FerkitError
from ferkit.labels import FER2013
from ferkit.onnx_export import export_onnx
from ferkit.predict import int8_file
from ferkit.preprocess import to_tensor
from ferkit.train import fit, resolve_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def graph(tiny_checkpoint, tmp_path_factory):
    """The tiny run's best.pt as an fp32 graph without the mirror: what the checkpoint computes."""
    out = tmp_path_factory.mktemp("distill") / "teacher.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), out, tta=False)
    return out


def test_an_onnx_teacher_teaches_what_its_checkpoint_teaches(tiny_checkpoint, graph):
    mean = load_checkpoint(tiny_checkpoint).mean + 3.0  # a student's mean image is its own: the shift is the teacher's to undo
    faces, _ = synthetic_faces(40, seed=4)
    x = to_tensor(faces, mean)
    onnx_t, torch_t = load_teacher(str(graph), mean, FER2013, CPU, "fp32"), load_teacher(str(tiny_checkpoint), mean, FER2013, CPU, "fp32")
    assert isinstance(onnx_t, OnnxTeacher) and isinstance(torch_t, Teacher)
    for temp in (1.0, 2.0):
        torch.testing.assert_close(teacher_probs(onnx_t.logits(x), temp), teacher_probs(torch_t.logits(x), temp), atol=1e-4, rtol=0)


def test_a_run_distilled_from_the_graph_trains_as_one_distilled_from_the_checkpoint(tiny_run, tiny_checkpoint, graph, tmp_path):
    csv = json.loads((tiny_run / "config.json").read_text())["data"]
    spec = tiny_run.parent / "tiny.json"
    # no augmentation but the mirror: the faces stay whole pixels, which the graph's uint8 input keeps exactly
    runs = {}
    for name, teacher in (("ckpt", tiny_checkpoint), ("onnx", graph)):
        cfg = resolve_config(str(spec), data=csv, epochs=2, batch_size=28, lr=3e-3, crop_pad=0, rotate=0.0, erase=0.0,
                             precision="fp32", teacher=[str(teacher)], distill=0.9)
        runs[name] = fit(cfg, tmp_path / name, progress=False)
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["teacher"] == [str(graph)]
    for a, b in zip(runs["ckpt"], runs["onnx"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3) and a["val_acc"] == b["val_acc"]


def test_a_bundled_models_name_teaches_with_its_graph(tiny_run, tmp_path, monkeypatch):
    """--teacher fer2013-fast (a name, as evaluate and predict take) means its shipped int8 graph; --init-from
    NAME its checkpoint, as --model's names do: ./NAME is a file of that name; a bundled file missing is one line."""
    from ferkit import bundled

    csv = json.loads((tiny_run / "config.json").read_text())["data"]
    cfg = resolve_config(str(tiny_run.parent / "tiny.json"), data=csv, epochs=1, batch_size=28, teacher=["fer2013-fast"], distill=0.5)
    fit(cfg, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["teacher"] == [str(int8_file("fer2013-fast"))]
    assert bundled.file_of("ferplus", "checkpoint") == str(bundled.MODELS["ferplus"].path("checkpoint"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ferplus").write_text("a file of that name")
    assert bundled.file_of("ferplus", "checkpoint") == str(bundled.MODELS["ferplus"].path("checkpoint"))
    assert bundled.file_of("./ferplus", "checkpoint") == "./ferplus" and bundled.file_of("x.pt", "int8") == "x.pt"
    monkeypatch.setattr(bundled, "WEIGHTS", tmp_path / "elsewhere")
    with pytest.raises(FerkitError, match="'ferplus' is not in this install"):
        bundled.file_of("ferplus", "int8")


def test_a_graph_with_other_emotions_or_faces_is_refused_by_name(tiny_checkpoint):
    ferplus = int8_file("ferplus-fast")  # 8 emotions
    with pytest.raises(FerkitError, match=f"--teacher {ferplus} predicts angry, .*contempt; the student needs angry, .*neutral$"):
        OnnxTeacher(str(ferplus), np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")
    with pytest.raises(FerkitError, match="takes 48x48 grey faces, the student 64x64 colour; distil between models of one input size"):
        OnnxTeacher(str(int8_file("fer2013-fast")), np.zeros((64, 64, 3), np.float32), FER2013, CPU, "fp32")
    yunet = str(int8_file("fer2013").parent / "yunet_s.onnx")  # a graph, but of a face detector
    with pytest.raises(FerkitError, match=rf"^--teacher {yunet}: the ONNX model's inputs are input tensor\(float\) .* not one 'faces' of uint8 faces"):
        load_teacher(yunet, np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")
    with pytest.raises(FerkitError, match="no such ONNX file"):
        load_teacher("missing.onnx", np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")


def test_a_graph_teacher_that_gives_no_probabilities_for_some_faces_is_named(graph, monkeypatch):
    """A graph whose outputs are NaN for some faces (probabilities for the blank face it was opened with) stopped
    training with "the training loss became nan; lower --lr (now ...) or check the data"."""
    teacher = OnnxTeacher(str(graph), np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")
    monkeypatch.setattr(teacher.session, "run", lambda names, feed: [np.full((len(feed["faces"]), 7), np.nan, np.float32)])
    with pytest.raises(FerkitError, match=rf"^--teacher {graph}: the ONNX model's outputs for 2 faces are not probabilities "
                                          r"\(face 1 of 2: from nan to nan, summing to nan\): NaN or infinite values"):
        teacher.logits(torch.zeros(2, 1, 48, 48))


def test_a_graph_teacher_keeps_to_torchs_threads(graph, monkeypatch):
    """Under torchrun each rank has 1 torch thread; the teacher's onnxruntime must not take every core."""
    import ferkit.runtime

    seen, real = [], ferkit.runtime.onnx_session
    monkeypatch.setattr(ferkit.runtime, "onnx_session", lambda path, threads=None: seen.append(threads) or real(path, threads))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    OnnxTeacher(str(graph), np.zeros((48, 48), np.float32), FER2013, CPU, "fp32")
    assert seen == [1]


def test_a_run_is_no_teacher_of_itself(tiny_run, tmp_path):
    """--teacher naming the run's own folder, or a checkpoint in it: refused before anything is read.
    On --resume the student taught itself from its own best.pt, a file it then rewrote; on a new run
    it was "no such checkpoint" after the data were read."""
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    csv = json.loads((run / "config.json").read_text())["data"]
    for teacher, resume in [(run, True), (run / "best.pt", True), (tmp_path / "new", False)]:
        out = run if resume else tmp_path / "new"
        cfg = resolve_config(str(tiny_run.parent / "tiny.json"), data=csv, epochs=4, batch_size=32, lr=3e-3,
                             teacher=[str(teacher)])  # as tiny_run trained, but for --teacher
        with pytest.raises(FerkitError, match=f"^--teacher {teacher}: is{' in' if teacher.name == 'best.pt' else ''} this "
                                              f"run's own folder {out}, whose checkpoints are the student being trained"):
            fit(cfg, out, resume=resume, progress=False)
    assert (run / "last.pt").read_bytes() == (tiny_run / "last.pt").read_bytes()
