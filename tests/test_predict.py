import csv
import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FullDisk, deep_folder, tiny_spec
from ferkit.checkpoint import Classifier, load_checkpoint
from ferkit.cli import main
from ferkit.config import FCSpec, ModelSpec
from ferkit.draw import annotate, save_rgb
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.predict import Predictor
from ferkit.video import FaceTracker, iou


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def two_faces(astronaut):
    from matplotlib.cbook import get_sample_data

    with get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    canvas = np.zeros((hopper.shape[0], astronaut.shape[1] + hopper.shape[1], 3), np.uint8)
    canvas[: astronaut.shape[0], : astronaut.shape[1]] = astronaut
    canvas[:, astronaut.shape[1]:] = hopper
    return canvas


def _check_record(r):
    assert list(r) == ["box", "label", "score", "probs"]
    assert len(r["box"]) == 4 and all(type(v) is int for v in r["box"])
    assert list(r["probs"]) == list(EMOTIONS) and all(type(p) is float for p in r["probs"].values())
    assert abs(sum(r["probs"].values()) - 1) < 1e-4
    assert r["label"] == max(r["probs"], key=r["probs"].get) and r["score"] == r["probs"][r["label"]]
    json.dumps(r)


def test_record_format_and_one_forward_pass(tiny_checkpoint, two_faces, monkeypatch):
    p = Predictor(tiny_checkpoint)
    calls = []
    real = p.classifier.predict_proba
    monkeypatch.setattr(p.classifier, "predict_proba", lambda faces, **kw: calls.append(len(faces)) or real(faces, **kw))
    recs = p.predict(two_faces)
    assert calls == [2] and len(recs) == 2  # both faces in one batch
    for r in recs:
        _check_record(r)
    assert recs[0]["box"][0] < recs[1]["box"][0]  # left to right, in the photo's pixels
    assert recs[1]["box"][0] >= 512
    assert p.predict(np.full((100, 100, 3), 255, np.uint8)) == []
    assert p.predict_faces(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_predictor_accepts_path_classifier_bytes(tiny_checkpoint, astronaut, tmp_path):
    clf = load_checkpoint(tiny_checkpoint)
    f = tmp_path / "a.png"
    Image.fromarray(astronaut).save(f)
    a = Predictor(clf).predict(f)
    b = Predictor(str(tiny_checkpoint), precision="fp32").predict(f.read_bytes())  # clf above is fp32
    assert len(a) == 1 and a[0]["box"] == b[0]["box"] and np.allclose(list(a[0]["probs"].values()), list(b[0]["probs"].values()))


def test_missing_bundled_model_is_a_clear_error(monkeypatch, tmp_path):
    import ferkit.predict as fp

    monkeypatch.setitem(fp.BUNDLED, fp.DEFAULT_MODEL, tmp_path / "nope.pt")
    with pytest.raises(FerkitError, match="bundled model .* not in this install .* is missing"):
        fp.load_model()
    with pytest.raises(FerkitError, match="not a bundled model"):
        fp.load_model("fer2014")
    with pytest.raises(FerkitError, match="backend 'tf'"):
        Predictor(backend="tf")


def test_a_path_is_a_file_never_a_bundled_model(tiny_checkpoint, tmp_path, monkeypatch):
    """(load_model(Path("ferplus-fast")) and Predictor(Path(...)) ran the bundled model, not the file ./ferplus-fast)"""
    import ferkit.predict as fp

    monkeypatch.chdir(tmp_path)
    name = fp.DEFAULT_MODEL
    with pytest.raises(FerkitError, match=re.escape(f"--model {name}: no such file or folder (a Path names one); give the "
                                                    f"bundled model as a str, {name!r}")):
        fp.load_model(Path(name))
    (tmp_path / name).write_bytes(tiny_checkpoint.read_bytes())  # a checkpoint named like the bundled model
    assert fp.model_path(Path(name)) == Path(name) and fp.model_path(name) == fp.BUNDLED[name]
    p = Predictor(Path(name))
    assert (p.bundled, p.backend, p.path) == (None, "torch", Path(name))


@pytest.mark.parametrize("tta", [False, True])
def test_onnx_agrees_with_torch(tiny_checkpoint, tta):
    clf = load_checkpoint(tiny_checkpoint)
    clf.tta = tta
    faces = np.random.default_rng(0).integers(0, 256, (9, 48, 48), dtype=np.uint8)
    torch_p = Predictor(clf).predict_faces(faces)
    onnx_p = Predictor(clf, backend="onnx").predict_faces(faces)
    assert onnx_p.shape == (9, 7) and np.allclose(torch_p, onnx_p, atol=1e-5)
    assert np.allclose(onnx_p[:1], Predictor(clf, backend="onnx").predict_faces(faces[:1]), atol=1e-5)  # dynamic batch


def test_onnx_graph_has_no_pixel_division_and_leaves_the_model_alone(tiny_checkpoint):
    """The 1/128 of the input goes into the graph's first conv (a Div over every pixel cost a
    small net 8% of its AVX2 instructions), on a copy: the checkpoint's model keeps its weights."""
    import io

    import onnx

    from ferkit.onnx_export import export_onnx

    clf = load_checkpoint(tiny_checkpoint)
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    buf = io.BytesIO()
    export_onnx(clf, buf)
    assert "Div" not in {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
    assert all(torch.equal(before[k], v) for k, v in clf.model.state_dict().items())


@pytest.mark.parametrize("fcs", [[FCSpec(16)], []])
def test_a_net_of_fc_layers_alone_exports_to_onnx(fcs):
    """Without a conv, the 1/128 of the input goes into the first linear layer (it crashed looking for a conv)."""
    from ferkit.model import create_model

    torch.manual_seed(0)
    clf = Classifier(create_model(ModelSpec(convs=[], fcs=fcs)), np.full((48, 48), 120, np.float32))
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    assert np.allclose(Predictor(clf).predict_faces(faces), Predictor(clf, backend="onnx").predict_faces(faces), atol=1e-5)


def test_export_cli_and_onnx_file(tiny_checkpoint, tmp_path, capsys, astronaut):
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    a = Predictor(out, backend="onnx").predict(astronaut)
    b = Predictor(tiny_checkpoint, precision="fp32").predict(astronaut)  # the ONNX graph is fp32
    assert a[0]["box"] == b[0]["box"] and abs(a[0]["score"] - b[0]["score"]) < 1e-5
    # the way to bf16 fits the command: a graph has no torch, and evaluate has no --backend (its hint named one)
    with pytest.raises(FerkitError, match=r"bf16 runs on the torch backend: run the checkpoint \(.pt\) the .onnx file was exported from"):
        Predictor(out, backend="onnx", precision="bf16")
    assert main(["evaluate", str(out), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "run the checkpoint (.pt) the .onnx file was exported from" in err and "--backend" not in err, err
    with pytest.raises(FerkitError, match=r"bf16 runs on the torch backend: --backend torch\)$"):  # a checkpoint: the flag
        Predictor(tiny_checkpoint, backend="onnx", precision="bf16")


def test_export_never_writes_through_a_link_into_its_input_or_run(tiny_run, tmp_path, capsys):
    """`--onnx g.onnx`, g.onnx a link to the checkpoint (or a link NAME.pt/.onnx to the run's last.pt or
    config.json): the write went through the link, the run's best.pt became a graph, last.pt a slim copy."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt", "config.json")}
    for link, target, flag, message in (("g.onnx", "best.pt", "--onnx", "the command's own input"),
                                        ("s.pt", "last.pt", "--pt", "a file of the run in"),
                                        ("c.onnx", "config.json", "--onnx", "a file of the run in")):
        (tmp_path / link).symlink_to(run / target)
        assert main(["export", str(run), flag, str(tmp_path / link)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} {tmp_path / link}: is ") and message in err, err
    assert {name: (run / name).read_bytes() for name in before} == before


def test_export_and_report_never_write_over_their_input(tiny_run, tmp_path, capsys):
    """`export RUN --onnx RUN/best.pt` wrote the graph over the checkpoint it read, `--pt X --half` over
    X its float32 weights, `report RUN --out RUN/best.pt` its page: each is refused, the file left whole."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "best.pt").read_bytes()
    for argv in (["export", str(run / "best.pt"), "--pt", str(run / "best.pt"), "--half"],
                 ["report", str(run), "--no-data", "--out", str(run / "best.pt")], ["report", str(run), "--no-data", "--out", str(run / "config.json")]):
        assert main(argv) == 2, argv
        assert "the command's own input; writing it would replace what it reads" in capsys.readouterr().err
    last = (run / "last.pt").read_bytes()
    assert main(["export", str(run), "--pt", str(run / "last.pt")]) == 2  # a slim copy there: the run could not resume
    assert f"last.pt: a file of the run in {run}, which 'ferkit train' wrote" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == last
    config = (run / "config.json").read_bytes()
    for name in ("config.json", "history.json"):  # metrics there: the run could not be resumed or plotted
        assert main(["evaluate", str(run), "--json", str(run / name)]) == 2
        assert f"--json {run / name}: a file of the run in {run}" in capsys.readouterr().err
    assert (run / "config.json").read_bytes() == config
    assert main(["export", str(run), "--onnx", str(run / "best.pt")]) == 2  # a graph is named .onnx, a checkpoint never
    assert "best.pt: name the graph NAME.onnx" in capsys.readouterr().err
    data = tmp_path / "fer.csv"
    shutil.copy(tiny_run.parent / "fer.csv", data)
    data_before = data.read_bytes()
    for argv, message in [(["--json", str(run / "best.pt")], "names a model file"),  # the run was lost to 900 bytes of JSON
                          (["--json", str(run / "last.pt")], "names a model file"),
                          (["--json", str(data)], "the command's own input")]:
        assert main(["evaluate", str(run), "--data", str(data), *argv]) == 2, argv
        assert message in capsys.readouterr().err
    assert (run / "best.pt").read_bytes() == before and data.read_bytes() == data_before
    # predict's results and report's page over a run's file, a model or a photo the command does not read
    slim, photo = tmp_path / "slim.pt", tmp_path / "photo.jpg"
    photo.write_bytes(b"a photo")
    for argv, message in [(["predict", str(data), "--json", str(run / "best.pt")], "names a model file; give the results a .json name"),
                          (["predict", str(data), "--csv", str(run / "history.csv")], f"--csv {run / 'history.csv'}: a file of the run"),
                          (["predict", str(data), "--csv", str(photo)], "names an image file; give the results a .csv name"),
                          (["predict", str(data), "--json", str(tmp_path / "new" / "m.pt")], "names a model file"),  # makes no folder
                          (["report", str(tiny_run), "--no-data", "--out", str(run / "last.pt")], "names a model file"),
                          (["report", str(tiny_run), "--no-data", "--out", str(photo)], "names an image file; give the report a .html name")]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert (run / "best.pt").read_bytes() == before and photo.read_bytes() == b"a photo" and not (tmp_path / "new").exists()
    # a slim copy under another name than .pt replaced that file: the run's training data, a photo, a spec
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    for other in (data, photo, spec):
        kept = other.read_bytes()
        assert main(["export", str(run), "--pt", str(other)]) == 2
        assert f"--pt {other}: name the checkpoint NAME.pt (or .pth)" in capsys.readouterr().err
        assert other.read_bytes() == kept
    assert main(["export", str(run), "--pt", str(tmp_path / "slim.pth")]) == 0
    assert main(["export", str(run), "--pt", str(slim)]) == 0  # another file: written
    assert main(["export", "ferplus-fast", "--pt", str(tmp_path / "bundled.pt")]) == 0  # a bundled model by name, as evaluate takes


def test_predict_never_writes_over_or_into_the_data_its_checkpoint_trained_on(tiny_run, tmp_path, capsys, astronaut):
    """--csv naming the data file the model trained on (which --precision int8 calibrates on) replaced it with the
    results; --annotate in its image folder put the annotated copies among its faces."""
    import shutil

    from conftest import write_image_folder
    from ferkit.checkpoint import read_checkpoint, save_checkpoint

    photo, own, folder = tmp_path / "a.jpg", tmp_path / "own.csv", write_image_folder(tmp_path / "faces")
    Image.fromarray(astronaut).save(photo)
    shutil.copy(tiny_run.parent / "fer.csv", own)
    before, faces = own.read_bytes(), sorted(folder.rglob("*"))
    best = read_checkpoint(tiny_run / "best.pt")
    for data, flag, out, message in [(own, "--csv", own, "is the command's own input"),
                                     (folder, "--annotate", folder / "happy", "lies inside the data folder"),
                                     (folder, "--annotate", folder / "a.png", "lies inside the data folder")]:
        save_checkpoint({**best, "config": {**best["config"], "data": str(data)}}, tmp_path / "m.pt")
        assert main(["predict", str(photo), "--model", str(tmp_path / "m.pt"), flag, str(out)]) == 2, out
        err = capsys.readouterr().err
        assert f"error: {flag} {out}: " in err and message in err, err
    assert own.read_bytes() == before and sorted(folder.rglob("*")) == faces


def test_predict_and_demo_never_write_over_a_photo_they_read(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    import ferkit.predict as fp

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "a.jpg")
    before = (photos / "a.jpg").read_bytes()
    for argv in (["--json", str(photos / "a.jpg")], ["--csv", str(photos / "a.jpg")]):
        assert main(["predict", str(photos), "--model", str(tiny_checkpoint), *argv]) == 2, argv  # a photo in a folder read
        assert "names an image file" in capsys.readouterr().err
    (photos / "b").write_bytes((photos / "a.jpg").read_bytes())  # a photo by any name, once it is read
    assert main(["predict", str(photos / "b"), "--model", str(tiny_checkpoint), "--csv", str(photos / "b")]) == 2
    assert "the command's own input" in capsys.readouterr().err
    assert main(["predict", str(photos), "--model", str(tiny_checkpoint), "--annotate", str(photos)]) == 2
    assert "is a folder being read, and its copies would take the photos' names" in capsys.readouterr().err  # was "nothing to process"
    assert main(["predict", str(photos / "a.jpg"), "--model", str(tiny_checkpoint), "--annotate", str(photos)]) == 2
    assert f"the copy of {photos / 'a.jpg'} would be written over" in capsys.readouterr().err  # was skipped unsaid
    assert main(["predict", str(photos / "a.jpg"), "--model", str(tiny_checkpoint), "--annotate", str(tmp_path)]) == 0
    assert (tmp_path / "a.jpg").exists()  # a photo named, inside the copies' folder: predicted (was "nothing to process")
    sample = tmp_path / "astronaut.jpg"  # stands in for ferkit's own sample
    Image.fromarray(astronaut).save(sample)
    monkeypatch.setattr(fp, "DEMO_PHOTO", sample)
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(sample)]) == 2
    assert "the command's own input" in capsys.readouterr().err
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(photos)]) == 2  # a folder: was "cannot encode ... extension"
    assert capsys.readouterr().err == f"error: --out {photos}: is a folder; give a file name\n"
    monkeypatch.setattr(fp, "Predictor", None)  # said before the model loads (it was said after the prediction)
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "d.xyz")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'd.xyz'}: cannot encode the image as .xyz; give .png or .jpg\n"
    assert (photos / "a.jpg").read_bytes() == before == (photos / "b").read_bytes() and Image.open(sample).size == (512, 512)


def _with_metadata(src, dst, key, value):
    import onnx

    graph = onnx.load(src)
    onnx.helper.set_model_props(graph, {**{p.key: p.value for p in graph.metadata_props}, key: value})
    onnx.save(graph, dst)
    return dst


def test_an_onnx_file_with_edited_metadata_is_one_error(tiny_checkpoint, tmp_path, astronaut):
    """A graph whose metadata was edited by hand: one error naming the key, not a JSONDecodeError or an
    IndexError mid-prediction (a TTA graph's output width is symbolic: counted on a blank face)."""
    src = tmp_path / "m.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(src), "--tta"]) == 0
    for key, value, message in [("labels", "{garbage", "metadata 'labels' must be a JSON list of emotion names; got '{garbage'"),
                                ("labels", "[1, 2]", "metadata 'labels' must be a JSON list of emotion names"),
                                # (predict printed it as it is: the terminal took the escape code)
                                ("labels", json.dumps(["angry\x1b[2J", *EMOTIONS[1:]]), "metadata 'labels' cannot name its "
                                 "outputs: the class name 'angry\\x1b[2J' holds a control character"),
                                # (json recursed through it: a RecursionError traceback in predict, evaluate and serve)
                                ("labels", "[" * 100_000, "metadata 'labels' must be a JSON list of emotion names; got '[[["),
                                ("labels", '["a", "b"]', "the ONNX model has 7 outputs but names 2 emotions"),
                                # (tta=yes was read as no and precision=int4 reported as such)
                                ("tta", "yes", "metadata 'tta' must be 0 or 1; got 'yes'"),
                                ("precision", "int4", "metadata 'precision' must be fp32 or int8; got 'int4'"),
                                # (read by serve's /version and evaluate's split: said without the file's name there)
                                ("training", "[1]", "metadata 'training' must be a JSON object; got '[1]'"),
                                ("reading", '{"split_seed": "x"}', "metadata 'reading' must be a JSON object of label_names")]:
        edited = tmp_path / "edited.onnx"  # (the file is named: tta's and trained_tta's errors did not name it)
        with pytest.raises(FerkitError, match=re.escape(f"{edited}: ") + ".*" + re.escape(message)):
            Predictor(_with_metadata(src, edited, key, value), backend="onnx").predict(astronaut)
    from ferkit.runtime import onnx_session, onnx_training  # what serve's /version reports

    with pytest.raises(FerkitError, match="metadata 'training' must be a JSON object; got '\\[1\\]'"):
        onnx_training(onnx_session(_with_metadata(src, tmp_path / "edited.onnx", "training", "[1]")))


def _graph(path, in_shape, in_name="faces", out_shape=("N", 7), extra_input=False, meta=None, logits=False, then=None):
    """An ONNX graph not from `ferkit export`: uint8 faces in, the softmax of their mean brightness out
    (logits: that brightness less 5, no softmax). `then`, before the softmax: "nan", brightness + sqrt(5 -
    brightness), NaN for faces brighter than 5; "reshape", to (5, 3), which fails on any face; "one-row", the
    mean over the faces, one row however many they are."""
    import onnx
    from onnx import TensorProto, helper

    k = 7
    tail = {None: [], "nan": [helper.make_node("Sub", ["five", "t"], ["d"]), helper.make_node("Sqrt", ["d"], ["s"]),
                              helper.make_node("Add", ["t", "s"], ["u"])],
            "reshape": [helper.make_node("Reshape", ["t", "shape"], ["u"])],
            "one-row": [helper.make_node("ReduceMean", ["t"], ["u"], axes=[0], keepdims=1)]}[then]
    nodes = [helper.make_node("Cast", [in_name], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=list(range(1, len(in_shape))), keepdims=0),
             helper.make_node("Unsqueeze", ["m", "axis"], ["m1"]), helper.make_node("Tile", ["m1", "reps"], ["t"]), *tail,
             helper.make_node("Sub", ["t", "five"], ["probs"]) if logits
             else helper.make_node("Softmax", ["u" if tail else "t"], ["probs"], axis=-1)]
    inits = [helper.make_tensor("axis", TensorProto.INT64, [1], [1]), helper.make_tensor("reps", TensorProto.INT64, [2], [1, k]),
             helper.make_tensor("five", TensorProto.FLOAT, [], [5.0]), helper.make_tensor("shape", TensorProto.INT64, [2], [5, 3])]
    inputs = [helper.make_tensor_value_info(in_name, TensorProto.UINT8, list(in_shape))]
    inputs += [helper.make_tensor_value_info("other", TensorProto.FLOAT, [1])] if extra_input else []
    graph = helper.make_model(helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("probs", TensorProto.FLOAT, list(out_shape))],
                                                inits), opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.helper.set_model_props(graph, meta or {})
    onnx.save(graph, path)
    return path


def test_an_onnx_graph_of_other_inputs_or_outputs_is_one_error(tmp_path, astronaut):
    """Graphs ferkit cannot feed faces to or read probabilities from: one error naming the file, where
    they were an onnxruntime traceback at the first face (another input's name, a second input, a
    (N, H, W, 1) input, a non-square one), a ZeroDivisionError (in_size 0), a 40 GB allocation, or
    an IndexError (an output not (N, C))."""
    assert Predictor(_graph(tmp_path / "ok.onnx", ["N", 48, 48]), backend="onnx").predict(astronaut, crops=True)
    for name, kwargs, message in [
            ("input", dict(in_shape=["N", 48, 48], in_name="input"), "inputs are input tensor(uint8)"),
            ("two", dict(in_shape=["N", 48, 48], extra_input=True), "other tensor(float) of shape [1], not one 'faces'"),
            ("grey4", dict(in_shape=["N", 48, 48, 1]), "shape ['N', 48, 48, 1] (in_size 48, channels 1), not square"),
            ("wide", dict(in_shape=["N", 48, 32]), "shape ['N', 48, 32]"),
            ("zero", dict(in_shape=["N", "H", "W"], meta={"in_size": "0"}), "(in_size 0, channels 1)"),
            ("huge", dict(in_shape=["N", "H", "W"], meta={"in_size": "100000"}), "(in_size 100000, channels 1)"),
            ("two-channels", dict(in_shape=["N", "H", "W", "C"], meta={"channels": "2"}), "(in_size 48, channels 2)"),
            ("rank3", dict(in_shape=["N", 48, 48], out_shape=["N", 1, 7]), "outputs are probs tensor(float) of shape"),
            # (one face at a time: a second face, or its mirror, was an onnxruntime traceback)
            ("batch1", dict(in_shape=[1, 48, 48]), "input 'faces' of shape [1, 48, 48] takes 1 face(s) at a time, not any "
                                                   "number (a dynamic batch axis)")]:
        path = _graph(tmp_path / f"{name}.onnx", **kwargs)
        with pytest.raises(FerkitError, match=re.escape(f"{path}: the ONNX model") + ".*" + re.escape(message)):
            Predictor(path, backend="onnx").predict(astronaut, crops=True)


def test_an_onnx_graph_that_ends_in_logits_is_refused(tmp_path, astronaut):
    """A graph whose outputs are not probabilities (no softmax at its end) was shown as "angry -5.00"
    and, as a --teacher, had its log taken: refused when it is opened, on one blank face."""
    path = _graph(tmp_path / "logits.onnx", ["N", 48, 48], logits=True)
    with pytest.raises(FerkitError, match=re.escape(f"{path}: the ONNX model's outputs for a blank face are not "
                                                    "probabilities (from -5 to -5, summing to -35)")):
        Predictor(path, backend="onnx")


def test_an_onnx_graph_that_fails_or_gives_no_probabilities_for_some_faces_is_one_error(tmp_path, astronaut):
    """A graph that onnxruntime fails to run (a Reshape to sizes of its own, an allocation of 40 GB) was its
    traceback; one that gives NaN for bright faces only (a blank face's outputs are probabilities) printed
    "angry nan" and was scored; one that gives one row for two faces left the second without a record."""
    path = _graph(tmp_path / "reshape.onnx", ["N", 48, 48], then="reshape")
    with pytest.raises(FerkitError, match=re.escape(f"{path}: the ONNX model fails on a blank face (Non-zero status code "
                                                    "returned while running Reshape node.") + r"[^\n]*; give an \.onnx file"):
        Predictor(path, backend="onnx")
    p = Predictor(_graph(tmp_path / "nan.onnx", ["N", 48, 48], then="nan"), backend="onnx")
    with pytest.raises(FerkitError, match=re.escape(f"{p.path}: the ONNX model's outputs for 1 face are not probabilities "
                                                    "(from nan to nan, summing to nan): NaN or infinite values")):
        p.predict(astronaut, crops=True)
    faces = np.zeros((3, 48, 48), np.uint8)
    faces[1] = 255  # the second face alone is bright
    with pytest.raises(FerkitError, match=re.escape("outputs for 3 faces are not probabilities (face 2 of 3: from nan")):
        p.predict_faces(faces)
    p = Predictor(_graph(tmp_path / "one-row.onnx", ["N", 48, 48], then="one-row"), backend="onnx")
    with pytest.raises(FerkitError, match=re.escape(f"{p.path}: the ONNX model's output for 2 faces is of shape [1, 7], "
                                                    "not one row of probabilities a face")):
        p.predict_faces(faces[:2])


# onnxruntime 1.32's words when its arena cannot allocate (a session run on 20,000 faces under ulimit -v 1.5 GB)
ORT_OUT_OF_MEMORY = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. Name:'/model/"
                     "features/features.0/features.0.2/Relu_output_0_nchwc' Status Message: /onnxruntime_src/onnxruntime/core/"
                     "framework/bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
                     "onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 4423680000\n")


def test_onnxruntime_out_of_memory_advises_fewer_faces_or_free_memory_not_another_graph(tmp_path, monkeypatch):
    """onnxruntime short of memory (a huge batch, a busy machine) was "the ONNX model fails on 20000 faces (...); give
    an .onnx file written by 'ferkit export'": the graph was not at fault."""
    import onnxruntime
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    from ferkit.runtime import onnx_session, run_faces

    class Session:  # (its run raises what onnxruntime raised)
        def run(self, outputs, feeds):
            raise Fail(ORT_OUT_OF_MEMORY)

    words = "(Non-zero status code returned while running Conv node. Name:'/model/features/features.0/features.0.2/" \
            "Relu_output_0_nchwc' Status Message: Failed to allocate memory for requested buffer of size 4423680000)"
    with pytest.raises(FerkitError) as e:
        run_faces(Session(), np.zeros((20000, 48, 48), np.uint8))
    assert str(e.value) == (f"out of memory running the ONNX model on 20000 faces {words}: give it fewer faces at once (a "
                            "smaller --batch-size, where the command has one) or free memory (close other programs)")
    with pytest.raises(FerkitError, match=re.escape("out of memory running the ONNX model on a blank face (Non-zero") +
                       ".*" + re.escape("4423680000): free memory (close other programs); a graph written by")):
        run_faces(Session(), np.zeros((1, 48, 48), np.uint8), "a blank face")
    path = _graph(tmp_path / "g.onnx", ["N", 48, 48])

    def no_memory(*args, **kwargs):
        raise Fail(ORT_OUT_OF_MEMORY)

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_memory)
    with pytest.raises(FerkitError, match=re.escape(f"out of memory opening {path} (Non-zero") + ".*" +
                       re.escape("4423680000): free memory (close other programs) or give a smaller model")):
        onnx_session(path)


def test_a_graph_with_external_data_is_refused_where_onnxruntime_reads_them_from_anywhere(tmp_path, monkeypatch):
    """onnxruntime before 1.24.1 read a graph's external data files where their location said (1.20.1 and 1.23.2 took
    ../../etc/passwd's bytes as weights); later ones refuse a location outside the graph's folder."""
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    graph = onnx.load(_graph(tmp_path / "g.onnx", ["N", 48, 48], then="nan"))  # (a float weight: "five")
    for tensor in graph.graph.initializer:  # as raw bytes, which onnx writes to external data (shapes stay inside)
        if tensor.data_type == onnx.TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    (tmp_path / "inside").mkdir()
    beside = tmp_path / "inside" / "beside.onnx"
    onnx.save(graph, beside, save_as_external_data=True, location="beside.bin", size_threshold=0)
    outside = onnx.load(beside, load_external_data=False)
    (tensor,) = [t for t in outside.graph.initializer if t.external_data]
    tensor.external_data[0].value = "../g.onnx"  # (any file outside the folder)
    onnx.save(outside, tmp_path / "inside" / "outside.onnx")
    assert Predictor(beside, backend="onnx").predict_faces(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
    with pytest.raises(FerkitError, match=re.escape(f"{tmp_path / 'inside' / 'outside.onnx'}: not a usable ONNX model (")
                       + ".*escapes model directory"):
        Predictor(tmp_path / "inside" / "outside.onnx", backend="onnx")
    monkeypatch.setattr(onnxruntime, "__version__", "1.23.2")
    for path in (beside, tmp_path / "inside" / "outside.onnx"):
        with pytest.raises(FerkitError, match=re.escape(f"{path}: its weights are in external data files, which onnxruntime "
                                                        "1.23.2 reads from wherever the graph says (../../etc/passwd); "
                                                        "install onnxruntime 1.24.1 or later")):
            Predictor(path, backend="onnx")
    assert Predictor(tmp_path / "g.onnx", backend="onnx").predict_faces(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)


def test_a_graph_onnxruntime_cannot_open_is_one_line(tmp_path, capfd):
    """onnxruntime's errors span lines and name the C++ function that raised them, and it logged them in red
    before ferkit said them: one line naming the file and the way on."""
    import onnx
    from onnx import helper

    empty = tmp_path / "empty-graph.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "g", [], [])), empty)
    newer = _graph(tmp_path / "opset-99.onnx", ["N", 48, 48])
    graph = onnx.load(newer)
    graph.opset_import[0].version = 99
    onnx.save(graph, newer)
    for path, why in [(empty, "OrtValue indexes should have been populated"), (newer, "Opset 99 is under development")]:
        with pytest.raises(FerkitError) as e:
            Predictor(path, backend="onnx")
        assert str(e.value).startswith(f"{path}: not a usable ONNX model (") and why in str(e.value)
        assert str(e.value).endswith("); give an .onnx file written by 'ferkit export'")
        assert "\n" not in str(e.value) and "onnxruntime_src" not in str(e.value) and "ONNXRuntimeError" not in str(e.value)
        assert capfd.readouterr().err == ""


def test_an_onnx_graph_naming_one_emotion_twice_is_refused(tmp_path, astronaut):
    """Labels metadata with two names of one class: predict's JSON, keyed by name, lost one output's
    probability (and its top label's score was not the one listed under its name)."""
    for labels, why in [(["angry", "angry", "fear", "happy", "sad", "surprise", "neutral"], "'angry' and 'angry' name one class"),
                        (["angry", "disgust", "fear", "happy", "sad", "happiness", "neutral"], "'happy' and 'happiness' name one class")]:
        path = _graph(tmp_path / "twice.onnx", ["N", 48, 48], meta={"labels": json.dumps(labels)})
        with pytest.raises(FerkitError, match=re.escape(f"{path}: the ONNX model's metadata 'labels' cannot name its outputs: {why}")):
            Predictor(path, backend="onnx")


def test_hog_models_are_refused_for_onnx():
    from ferkit.model import create_model
    from ferkit.onnx_export import export_onnx

    clf = Classifier(create_model(tiny_spec(hog=True)), np.zeros((48, 48), np.float32))
    with pytest.raises(FerkitError, match="HOG hybrid"):
        export_onnx(clf, "unused.onnx")


def test_a_hog_model_on_the_onnx_backend_is_told_to_run_on_torch(tiny_hog_run, monkeypatch):
    """The onnx backend answered a HOG hybrid with export's message (export a CNN-only model), not the backend
    it runs on; for int8 it first read the calibration faces."""
    import ferkit.predict

    monkeypatch.setattr(ferkit.predict, "_calibration", lambda *a, **k: pytest.fail("calibration faces read for a HOG model"))
    for precision, fix in [(None, "(--backend torch, or leave --backend onnx out)"),
                           ("int8", "(--backend torch, or leave --backend onnx out, and --precision int8: torch runs fp32 or bf16)")]:
        with pytest.raises(FerkitError) as e:
            Predictor(tiny_hog_run, backend="onnx", precision=precision)
        assert str(e.value) == (f"{tiny_hog_run} is a HOG hybrid model, whose HOG features scikit-image computes outside the "
                                f"network: no ONNX graph can hold it, and the onnx backend runs ONNX graphs; run it on torch: "
                                f"backend='torch' {fix}")
    assert Predictor(tiny_hog_run, backend="torch", precision="fp32").predict_faces(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)


def test_int8_of_a_hog_model_is_told_the_way_that_works(tiny_hog_run, tiny_checkpoint):
    """--precision int8 advised --backend onnx, which then refused the HOG hybrid: two errors to learn that int8
    is not to be had for it. Other models keep the way to the onnx backend."""
    for backend in (None, "torch"):
        with pytest.raises(FerkitError) as e:
            Predictor(tiny_hog_run, backend=backend, precision="int8")
        assert str(e.value) == (f"{tiny_hog_run} is a HOG hybrid model, whose HOG features scikit-image computes outside the "
                                "network: no ONNX graph can hold it, and int8 models are ONNX graphs; run it on torch in fp32 "
                                "or bf16: precision='fp32' (--precision fp32 or bf16, or leave --precision out)")
    with pytest.raises(FerkitError, match=r"\(int8 runs on the onnx backend: --backend onnx\)$"):
        Predictor(tiny_checkpoint, backend="torch", precision="int8")


def test_annotate_draws_on_a_copy(astronaut):
    rec = {"box": [177, 67, 93, 93], "label": "happy", "score": 0.9,
           "probs": dict(zip(EMOTIONS, [0.02, 0.01, 0.01, 0.9, 0.02, 0.02, 0.02]))}
    out = annotate(astronaut, [rec])
    assert out.shape == astronaut.shape and not np.array_equal(out, astronaut)
    assert tuple(out[120, 177]) == (255, 191, 0)  # the box edge in happy's colour
    assert np.array_equal(annotate(astronaut, []), astronaut)


def test_annotate_draws_non_latin_emotion_names_in_a_font_that_has_their_letters(astronaut, monkeypatch):
    """An image folder's classes named in Cyrillic (or é, Greek) were drawn as boxes: Pillow's built-in
    font has ASCII only. Such text takes a font found on the machine that has its letters (DejaVu Sans,
    shipped with matplotlib); where none has them (CJK on most machines), boxes, and no crash."""
    from ferkit import draw

    assert draw._has(None, "a") and not draw._has(None, "р")  # the built-in font: ASCII, no Cyrillic
    assert draw._font(30, "happy 0.90") is draw._face(None, 30)  # FER's names keep the built-in font
    names = ["радость", "грусть", "colère", "λύπη", "a much longer name than surprise"]
    rec = {"box": [177, 67, 93, 93], "label": names[0], "score": 0.9, "probs": dict.fromkeys(names, 0.2)}
    if draw._font_file("matplotlib:DejaVuSans.ttf"):  # the training extra (these tests') has it
        for text in names[:4]:  # (the last is ASCII: the built-in font)
            font = draw._font(30, text)
            file = next(f for f in draw._faces() if draw._face(f, 30) is font)
            assert file is not None and all(draw._has(file, c) for c in text), (text, file)
    width, name_w, _ = draw._panel_size(tuple(names), 30)
    assert name_w > draw._panel_size(tuple(EMOTIONS), 30)[1]  # the bars start after the longest name
    with_fonts = annotate(astronaut, [rec])
    for cache in (draw._faces, draw._has, draw._panel_size):
        cache.cache_clear()
    monkeypatch.setattr(draw, "FALLBACK_FONTS", ())
    try:  # no font has the letters: boxes, as before, and no crash (CJK too)
        without = annotate(astronaut, [{**rec, "label": "高兴", "probs": {"高兴": 0.5, "悲伤": 0.5}}, rec])
    finally:
        for cache in (draw._faces, draw._has, draw._panel_size):
            cache.cache_clear()
    assert without.shape == with_fonts.shape == astronaut.shape


def test_save_rgb_writes_the_format_its_extension_names(astronaut, tmp_path):
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP"), (".tif", "TIFF")):
        with Image.open(save_rgb(astronaut, tmp_path / f"a{ext}")) as im:
            assert im.format == fmt and im.size == (512, 512) and im.mode == "RGB"
            if fmt != "JPEG" and fmt != "WEBP":  # lossless: the same pixels
                assert np.array_equal(np.asarray(im), astronaut)
    with Image.open(tmp_path / "a.jpg") as im:  # JPEG at quality 95: close to the photo
        assert np.abs(np.asarray(im).astype(int) - astronaut).mean() < 3
    for bad in ("a.xyz", "noext"):
        with pytest.raises(FerkitError, match="cannot encode the image as .*; give .png or .jpg"):
            save_rgb(astronaut, tmp_path / bad)
        assert not (tmp_path / bad).exists()


def test_tracker_keeps_ids_by_overlap():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1 and iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    t = FaceTracker()
    assert t.assign([(0, 0, 10, 10)]) == [1]
    assert t.assign([(100, 0, 10, 10), (1, 1, 10, 10)]) == [2, 1]
    assert t.assign([(2, 1, 10, 10), (101, 0, 10, 10)]) == [1, 2]


def test_tracker_forgets_faces_gone_for_good_and_never_gives_an_id_twice():
    """(a long video's tracker kept every id it had ever given)"""
    t = FaceTracker(patience=2)
    assert t.assign([(0, 0, 10, 10)]) == [1]
    for _ in range(3):
        t.assign([])
    assert t.tracks == {} and t.assign([(0, 0, 10, 10)]) == [2]


def test_predict_cli_folder_with_good_and_bad_files(tiny_checkpoint, tmp_path, capsys, astronaut):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(astronaut).save(d / "astronaut.png")
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(d / "sub" / "blank.jpg")
    (d / "notes.jpg").write_text("not a picture")
    (d / "trunc.png").write_bytes((d / "astronaut.png").read_bytes()[:5000])
    (d / "readme.txt").write_text("ignored: not an image extension")
    empty = tmp_path / "empty"
    empty.mkdir()
    js, cs, ann = tmp_path / "out.json", tmp_path / "out.csv", tmp_path / "ann"
    rc = main(["predict", str(d), str(empty), str(tmp_path / "missing.png"), "--model", str(tiny_checkpoint),
               "--json", str(js), "--csv", str(cs), "--annotate", str(ann)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "astronaut.png  512x512, 1 face" in out and "blank.jpg  80x60, no face found" in out
    assert "2 file(s) processed, 4 failed" in out
    assert "notes.jpg: not an image" in err and "trunc.png: the image is corrupt or truncated" in err
    assert "empty: the folder holds no images" in err and "missing.png: no such file" in err
    assert "Traceback" not in err
    results = json.loads(js.read_text())
    assert {r["file"].split("/")[-1]: r.get("reason") for r in results if "error" in r} == {"notes.jpg": "not_image", "trunc.png": "corrupt"}
    rows = list(csv.DictReader(cs.open()))  # one row per face, and one with empty face fields per photo without
    assert [r["file"].split("/")[-1] for r in rows] == ["astronaut.png", "blank.jpg"]
    assert rows[0]["label"] in EMOTIONS and rows[1]["label"] == rows[1]["x"] == rows[1]["angry"] == ""
    assert (ann / "photos" / "astronaut.png").exists() and (ann / "photos" / "sub" / "blank.jpg").exists()


def test_a_closed_stdout_stops_quietly_and_keeps_the_results_file(tmp_path):
    """`ferkit models | head -3` and `ferkit predict DIR --json out.json | head`: the reader gone, a command
    stopped with a BrokenPipeError traceback (and predict dropped its --json file); now it stops as tools
    stopped by SIGPIPE do, with 141, keeping the file with what was done (here nothing: the first line failed)."""
    from ferkit.predict import DEMO_PHOTO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    js = tmp_path / "out.json"
    for argv in (["models"], ["predict", str(DEMO_PHOTO), "--json", str(js)]):
        proc = subprocess.Popen([sys.executable, "-m", "ferkit", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        proc.stdout.close()  # the reader gone before the first line
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141 and err == "", err
    assert json.loads(js.read_text()) == []


def test_annotated_copies_in_an_input_folder_are_not_read_again(tiny_checkpoint, tmp_path, capsys, astronaut):
    d = tmp_path / "ph"
    d.mkdir()
    Image.fromarray(astronaut).save(d / "a.png")
    for _ in range(2):  # the second run finds the first's copy under d/ann: not an input (it nested ann/ph/ann/... before)
        assert main(["predict", str(d), "--model", str(tiny_checkpoint), "--annotate", str(d / "ann")]) == 0
        assert "1 file(s) processed" in capsys.readouterr().out
    assert (d / "ann" / "ph" / "a.png").exists() and not (d / "ann" / "ph" / "ann").exists()


def test_a_refused_predict_takes_back_the_output_folders_it_made(tiny_checkpoint, tmp_path, capsys, astronaut):
    """(nothing to process, a copy over an input, a --model that is not there: nd/a/b/, nd/c/, nd/d/ stayed)"""
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    nd = tmp_path / "nd"
    assert main(["predict", str(tmp_path / "none.jpg"), "--json", str(nd / "a" / "b" / "r.json")]) == 2
    assert "nothing to process" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "a.png"), "--json", str(nd / "c" / "r.json"), "--annotate", str(tmp_path / "a.png"),
                 "--model", str(tiny_checkpoint)]) == 2
    assert "would be written over" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "a.png"), "--model", str(tmp_path / "nope.pt"), "--json", str(nd / "c" / "r.json"),
                 "--annotate", str(nd / "d" / "x.png")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert not nd.exists()
    (tmp_path / "kept").mkdir()  # a folder that was there stays
    assert main(["predict", str(tmp_path / "none.jpg"), "--json", str(tmp_path / "kept" / "r.json")]) == 2
    assert (tmp_path / "kept").is_dir()


def test_annotated_copies_of_a_parent_folder_stay_under_annotate(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """`predict .. --annotate out/` wrote the copies into out/.., the folder it reads, as out/../a.png."""
    (tmp_path / "ph" / "work").mkdir(parents=True)
    Image.fromarray(astronaut).save(tmp_path / "ph" / "a.png")
    monkeypatch.chdir(tmp_path / "ph" / "work")
    assert main(["predict", "..", "--model", str(tiny_checkpoint), "--annotate", "out/"]) == 0
    assert (tmp_path / "ph" / "work" / "out" / "ph" / "a.png").exists() and not (tmp_path / "ph" / "work" / "a.png").exists()


def test_a_copy_beside_its_input_never_replaces_a_file_there(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """`predict talk.mov --annotate .` wrote its copy over the user's own talk.mp4 beside it, without a word
    (a.gif's copy over a.png the same); a copy in another folder replaces an earlier run's, as it did."""
    video = _clip(tmp_path, astronaut)
    (tmp_path / "clip.mp4").write_bytes(b"the user's own recording")
    Image.fromarray(astronaut).save(tmp_path / "a.gif")
    (tmp_path / "a.png").write_bytes(b"the user's own photo")
    monkeypatch.chdir(tmp_path)
    model = ["--model", str(tiny_checkpoint)]
    for name, beside in ((video.name, "clip.mp4"), ("a.gif", "a.png")):
        assert main(["predict", name, *model, "--annotate", "."]) == 2
        assert f"--annotate .: the copy of {name} would be written over {beside}, a file beside it; give another folder" in capsys.readouterr().err
    assert (tmp_path / "clip.mp4").read_bytes() == b"the user's own recording" and (tmp_path / "a.png").read_bytes() == b"the user's own photo"
    for _ in range(2):  # into another folder: the second run replaces the first's copies
        assert main(["predict", "a.gif", video.name, *model, "--annotate", "out"]) == 0
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "clip.mp4").is_file()


def test_a_copy_too_big_for_its_format_is_a_warning_and_the_faces_stay(tiny_checkpoint, tmp_path, capsys, astronaut):
    wide = np.zeros((64, 17000, 3), np.uint8)  # WebP holds 16,383 pixels a side
    wide[:, :512] = np.asarray(Image.fromarray(astronaut).resize((512, 64)))
    Image.fromarray(wide).save(tmp_path / "wide.png")
    js = tmp_path / "r.json"
    assert main(["predict", str(tmp_path / "wide.png"), "--model", str(tiny_checkpoint), "--annotate", str(tmp_path / "c.webp"),
                 "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "c.webp: no annotated copy of wide.png (cannot encode this 17000x64 image as .webp" in out and "give .png" in out
    assert "error" not in json.loads(js.read_text())[0]


def test_annotate_names_one_copy_for_one_photo_or_video(tiny_checkpoint, tmp_path, capsys, astronaut):
    """`--annotate out.jpg` wrote a folder named out.jpg; for one input it is now the copy itself, in the
    format its name gives, and every case it cannot honour is refused before the model loads."""
    photo = tmp_path / "a.png"
    Image.fromarray(astronaut).save(photo)
    model = ["--model", str(tiny_checkpoint)]
    assert main(["predict", str(photo), *model, "--annotate", str(tmp_path / "out.jpg")]) == 0
    assert "wrote the annotated copy" in capsys.readouterr().out
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG" and im.size == (512, 512)
    video = _clip(tmp_path, astronaut)
    assert main(["predict", str(video), *model, "--annotate", str(tmp_path / "out.mp4")]) == 0
    assert (tmp_path / "out.mp4").is_file()
    for inputs, out, message in (([photo, video], "two.jpg", "names one file, but 2 photos or videos"),
                                 ([photo], "x.gif", r"written as \.jpg, \.jpeg, \.png, \.bmp, \.webp"),
                                 ([photo], "a.png", "the copy of .*a.png would be written over .*a.png, an input")):
        assert main(["predict", *map(str, inputs), *model, "--annotate", str(tmp_path / out)]) == 2
        assert re.search(message, capsys.readouterr().err)
    assert main(["predict", str(video), *model, "--annotate", str(tmp_path / "v.png")]) == 2
    assert "a video's annotated copy is an MPEG-4 video; name it .mp4" in capsys.readouterr().err
    assert not (tmp_path / "two.jpg").exists() and not (tmp_path / "x.gif").exists()
    # a trailing slash, or a folder that exists, is still a folder of copies
    assert main(["predict", str(photo), *model, "--annotate", str(tmp_path / "dir.jpg") + "/"]) == 0
    assert (tmp_path / "dir.jpg" / "a.png").is_file()


def test_a_damaged_video_gets_ferkits_message_alone(tmp_path, astronaut):
    """FFmpeg printed its own line ("moov atom not found") to the terminal beside ferkit's message
    about the same file; it is silenced unless OPENCV_FFMPEG_LOGLEVEL asks for it. An AVI cut short in
    its header got OpenCV's own reader's "Unexpected element. Expected: LIST. Got: " and four bytes of
    garbage; that reader is off unless OPENCV_VIDEOIO_PRIORITY_CV_MJPEG asks for it. A child process,
    because OpenCV and FFmpeg read the variables once, when OpenCV first opens a video."""
    import subprocess
    import sys

    (tmp_path / "cut.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    (tmp_path / "cut.avi").write_bytes(_clip(tmp_path, astronaut).read_bytes()[:300])  # in its hdrl list
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path / "cut.mp4"), str(tmp_path / "cut.avi")],
                       capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_FFMPEG", "OPENCV_VIDEOIO"))})
    assert r.returncode == 2 and "cut.mp4: cannot open as a video" in r.stderr and "cut.avi: cannot open as a video" in r.stderr
    assert [line for line in r.stderr.splitlines() if not line.startswith("error:") and line.strip()] == []


def test_predict_cli_fails_when_nothing_could_be_processed(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a.jpg").write_text("text")
    (tmp_path / "b.mp4").write_text("not a video")
    (tmp_path / "c.avi").touch()  # empty, as an empty photo is said (was "a damaged file")
    assert main(["predict", *(str(tmp_path / f) for f in ("a.jpg", "b.mp4", "c.avi")), "--model", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "a.jpg: not an image" in err and "b.mp4: cannot open as a video" in err
    assert "c.avi: the file is empty; give an MP4, AVI or other video file" in err
    assert "error: none of the inputs could be processed" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty)]) == 2
    assert "holds no images or videos" in capsys.readouterr().err


def _clip(folder, astronaut):
    """A 6-frame video of the astronaut, her face drifting right by a pixel a frame."""
    import cv2

    video = folder / "clip.avi"
    small = cv2.resize(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), (256, 256))
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    assert w.isOpened()
    for i in range(6):
        w.write(np.roll(small, i, axis=1))
    w.release()
    return video


def test_predict_cli_video_timeline(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    import cv2

    video = _clip(tmp_path, astronaut)
    js, cs, ann = tmp_path / "v.json", tmp_path / "v.csv", tmp_path / "ann"
    assert main(["predict", str(video), "--every", "2", "--model", str(tiny_checkpoint), "--json", str(js), "--csv", str(cs),
                 "--annotate", str(ann)]) == 0
    assert [p.name for p in ann.iterdir()] == ["clip.mp4"]  # written under a temporary name, then renamed
    assert cv2.VideoCapture(str(ann / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3
    out = capsys.readouterr().out
    assert "3 frames sampled (every 2 of 6), 1 face(s)" in out and "face 1: frames 0-4 (3 sightings)" in out
    (res,) = json.loads(js.read_text())
    assert [f["frame"] for f in res["frames"]] == [0, 2, 4] and res["frames"][1]["time"] == 0.2
    assert all(f["faces"][0]["face_id"] == 1 for f in res["frames"])
    rows = list(csv.DictReader(cs.open()))
    assert [r["frame"] for r in rows] == ["0", "2", "4"] and {r["face_id"] for r in rows} == {"1"}
    # Ctrl-C in the middle of a video leaves no half-written annotated copy (nor its temporary file)
    calls = []

    def stop_at_the_third_frame(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(Predictor, "predict", stop_at_the_third_frame)
    assert res["complete"] is True
    assert main(["predict", str(video), "--model", str(tiny_checkpoint), "--annotate", str(tmp_path / "ann2"), "--json", str(js)]) == 130
    assert not (tmp_path / "ann2").exists()  # (nor the folder its first frame made, left empty)
    # ... and keeps the frames it had done (a long video stopped halfway lost them all)
    (res,) = json.loads(js.read_text())
    assert res["complete"] is False and [f["frame"] for f in res["frames"]] == [0, 1]
    assert "2 frames sampled (every 1 of 2, stopped before the end)" in capsys.readouterr().out


def test_predict_writes_a_videos_frames_as_they_come_and_keeps_none(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """A long video's frames were all kept until its end (a 10-hour video took gigabytes): each now goes to
    the files' writer once done, and nothing holds it after."""
    import gc
    import weakref

    import ferkit.outputs as outputs

    video = _clip(tmp_path, astronaut)
    events, refs = [], []
    real_predict, real_append = Predictor.predict, outputs.FrameSpool.append

    class Faces(list):  # a list that can be referred to weakly
        pass

    def predict(self, *a, **k):
        gc.collect()
        events.append(("predict", sum(r() is not None for r in refs)))  # how many earlier frames' faces are still held
        faces = Faces(real_predict(self, *a, **k))
        refs.append(weakref.ref(faces))
        return faces

    monkeypatch.setattr(Predictor, "predict", predict)
    monkeypatch.setattr(outputs.FrameSpool, "append", lambda self, frame: events.append(("wrote", frame["frame"])) or real_append(self, frame))
    js, cs = tmp_path / "v.json", tmp_path / "v.csv"
    assert main(["predict", str(video), "--model", str(tiny_checkpoint), "--json", str(js), "--csv", str(cs)]) == 0
    # one by one, and at most the frame before still held (the loop's last frame)
    assert events == [("predict", 0)] + [e for i in range(1, 6) for e in (("wrote", i - 1), ("predict", 1))] + [("wrote", 5)]
    (res,) = json.loads(js.read_text())
    assert [f["frame"] for f in res["frames"]] == list(range(6)) and res["faces"][0]["count"] == 6
    assert [r["frame"] for r in csv.DictReader(cs.open())] == [str(i) for i in range(6)]


def test_predict_ctrl_c_in_a_video_writes_the_files_done_and_its_frames(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """The same bytes as the results kept whole gave: a photo, then the video's first 3 frames (complete: false)."""
    from ferkit.jobs import predict_file
    from ferkit.outputs import csv_rows, csv_text
    from ferkit.video import Interrupted, predict_video

    Image.fromarray(astronaut).save(tmp_path / "a.png")
    video = _clip(tmp_path, astronaut)
    real, calls = Predictor.predict, []

    def stop_at_the_videos_fourth_frame(self, *a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Predictor, "predict", stop_at_the_videos_fourth_frame)
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    assert main(["predict", str(tmp_path / "a.png"), str(video), "--model", str(tiny_checkpoint), "--json", str(js), "--csv", str(cs)]) == 130
    out, err = capsys.readouterr()
    assert f"interrupted after 2 of 2 files: wrote {js}, {cs} with those" in err and "Traceback" not in err
    assert "3 frames sampled (every 1 of 3, stopped before the end)" in out
    calls.clear()
    p = Predictor(tiny_checkpoint)
    results = [predict_file(p, tmp_path / "a.png")]
    with pytest.raises(Interrupted) as e:
        predict_video(p, video)
    results.append(e.value.result)
    assert [f["frame"] for f in results[1]["frames"]] == [0, 1, 2] and results[1]["complete"] is False
    assert js.read_bytes() == json.dumps(results, indent=1).encode()
    assert cs.read_bytes() == csv_text(csv_rows(results, p.labels)).encode()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.png", "clip.avi", "out.csv", "out.json"]  # no temporary file


def test_predict_full_disk_in_a_video_stops_the_command_and_keeps_the_earlier_file(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """A video's rows go to the CSV as its frames are done: a full disk then is the command's one error (not
    the video's, with the other files carrying on), and the earlier file stays."""
    import ferkit.files as files

    video = _clip(tmp_path, astronaut)
    photos = _photos(tmp_path / "photos", 2)
    cs = tmp_path / "out.csv"
    cs.write_text("file\nearlier\n")
    monkeypatch.setattr(files, "open", lambda *a, **k: FullDisk(open(*a, **k), room=700), raising=False)  # the header, 2 rows
    assert main(["predict", str(video), str(photos), "--model", str(tiny_checkpoint), "--csv", str(cs)]) == 2
    out, err = capsys.readouterr()
    assert err == f"error: {cs}: cannot write it (No space left on device); free some space or choose another location and run again (an earlier file there is left as it was)\n"
    assert "processed" not in out and "00.png" not in out  # stopped in the video
    assert cs.read_text() == "file\nearlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "out.csv", "photos"]  # no temporary files left


@pytest.mark.skipif(not hasattr(os, "fork"), reason="limits the file size of a child process (RLIMIT_FSIZE)")
def test_a_full_disk_under_a_videos_frames_is_one_error_not_a_traceback(tiny_checkpoint, tmp_path, astronaut):
    """A video's frames wait for its result in a temporary file beside --json. On a full disk, reading them back
    failed (the OutputError naming --json), and then closing that file flushed it again and failed once more: an
    OSError traceback in its place, and --json's new folder left behind. The child process may write files of
    1,000 bytes at most (a full disk, as Python sees it: EFBIG)."""
    import resource

    video, js = _clip(tmp_path, astronaut), tmp_path / "new" / "out.json"
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(video), "--model", str(tiny_checkpoint), "--json", str(js)],
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard)))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"error: {js}: cannot write it (File too large); raise the file-size limit (ulimit -f) or the file "
                        "system's or choose another location and run again (an earlier file there is left as it was)\n")
    assert not js.parent.exists()  # no temporary file, no empty folder


def test_predict_stopped_by_sigterm_writes_what_was_done(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """kill, timeout, docker stop and systemd send SIGTERM: it must keep the results as Ctrl-C does."""
    import signal

    import ferkit.jobs as jobs

    photos = _photos(tmp_path / "photos", 5)
    js = tmp_path / "out.json"
    real, calls = jobs.predict_file, []

    def terminated_at_the_fourth(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(jobs, "predict_file", terminated_at_the_fourth)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["predict", str(photos), "--model", str(tiny_checkpoint), "--json", str(js)]) == 130
    assert f"interrupted after 3 of 5 files: wrote {js} with those" in capsys.readouterr().err
    assert len(json.loads(js.read_text())) == 3
    assert signal.getsignal(signal.SIGTERM) is before  # put back when the command ends


def test_a_video_cut_short_says_so(tiny_checkpoint, tmp_path, astronaut, caplog):
    """(a damaged or cut video ended early in OpenCV without a word: its results looked whole)"""
    import logging

    from ferkit.video import predict_video

    video = _clip(tmp_path, astronaut)
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the header still declares 6 frames
    with caplog.at_level(logging.WARNING, "ferkit"):
        whole = predict_video(Predictor(tiny_checkpoint), video)
        assert whole["frames_read"] == 6 and whole["complete"] is True
        assert caplog.text == ""
        res = predict_video(Predictor(tiny_checkpoint), cut)
    assert res["frames_read"] < 6 and f"{cut}: the video ended after {res['frames_read']} of the 6 frames its header declares" in caplog.text
    assert res["complete"] is False  # (was True: the JSON said a cut video was whole; only the terminal heard otherwise)


def _capture(folder, real, dropped):
    """An AVI as a capture (a webcam's, OBS's, VirtualDub's) writes one that dropped frames: `real` frames, and
    after the first an empty (zero-length) chunk, in movi and in idx1, for each of the `dropped` frames, which
    its header counts (dwTotalFrames, dwLength)."""
    import struct

    import cv2

    video = folder / "capture.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(real):
        w.write(np.full((24, 32, 3), 40 * i, np.uint8))
    w.release()
    data = bytearray(video.read_bytes())
    movi, idx1 = data.find(b"movi"), data.find(b"idx1")
    first = movi + 4 + 8 + struct.unpack_from("<I", data, movi + 8)[0]  # after the first frame's chunk
    first += first & 1
    entries = [list(struct.unpack_from("<4sIII", data, idx1 + 8 + 16 * k)) for k in range(real)]
    for e in entries[1:]:
        e[2] += 8 * dropped  # (offsets from movi) the frames after the empty chunks move
    entries[1:1] = [[b"00dc", 0, first - movi + 8 * k, 0] for k in range(dropped)]
    index = b"idx1" + struct.pack("<I", 16 * len(entries)) + b"".join(struct.pack("<4sIII", *e) for e in entries)
    data[idx1:] = index
    data[first:first] = b"00dc\0\0\0\0" * dropped
    for at, more in ((4, 24 * dropped), (movi - 4, 8 * dropped)):  # the RIFF's size and movi's
        struct.pack_into("<I", data, at, struct.unpack_from("<I", data, at)[0] + more)
    struct.pack_into("<I", data, data.find(b"avih") + 8 + 16, real + dropped)  # dwTotalFrames
    struct.pack_into("<I", data, data.find(b"strh") + 8 + 32, real + dropped)  # dwLength
    video.write_bytes(data)
    return video


def test_a_capture_with_dropped_frames_is_whole(tmp_path, caplog):
    """A capture AVI marks each frame it dropped with an empty chunk in its index, which FFmpeg skips and OpenCV's
    frame count includes: a whole capture that dropped 2 of its 5 frames was said to be "damaged or cut short?",
    incomplete. The same capture cut short still is."""
    import logging

    import cv2

    from ferkit.video import predict_video

    class NoFaces:
        def predict(self, rgb):
            return []

    video = _capture(tmp_path, 3, 2)
    assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT) == 5  # what OpenCV says
    with caplog.at_level(logging.WARNING, "ferkit"):
        res = predict_video(NoFaces(), video)
        assert caplog.text == "" and res["frames_read"] == 3 and res["complete"] is True
        assert [f["time"] for f in res["frames"]] == [0.0, 0.3, 0.4]  # (FFmpeg's own: the dropped frames' times skipped)
        cut = tmp_path / "cut.avi"
        data = video.read_bytes()
        cut.write_bytes(data[: data.find(b"idx1") - 100])  # in its last frame: idx1 gone, as a cut file's
        res = predict_video(NoFaces(), cut)
    assert f"{cut}: the video ended after {res['frames_read']} of the 5 frames its header declares" in caplog.text
    assert res["complete"] is False


def test_a_video_of_frames_over_the_pixel_limit_is_refused_before_decoding(tiny_checkpoint, tmp_path, astronaut, monkeypatch):
    """(a 9000x9000 video passed where the same picture as a PNG is refused: 1.5 GB for three frames)"""
    import ferkit.video
    from ferkit.errors import ImageError
    from ferkit.video import predict_video

    monkeypatch.setattr(ferkit.video, "MAX_PIXELS", 256 * 256 - 1)
    with pytest.raises(ImageError, match="frames of 256x256 pixels are too large") as e:
        predict_video(Predictor(tiny_checkpoint), _clip(tmp_path, astronaut))
    assert e.value.reason == "too_large"


def test_a_motion_jpeg_video_of_a_frame_of_too_many_scans_is_refused_before_decoding(tmp_path, astronaut):
    """(photos of over faces.MAX_JPEG_SCANS scans were refused, but a video's frames went to FFmpeg as they were:
    one 33 MP frame of 10,000 scans, 725 KB, took 35 s to decode, and a clip of them held predict for hours)"""
    import io
    import struct

    from ferkit.errors import ImageError
    from ferkit.faces import MAX_JPEG_SCANS
    from ferkit.video import predict_video

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 90, 160)).save(buf, format="JPEG", progressive=True)
    jpg = buf.getvalue()
    last, end = jpg.rindex(b"\xff\xda"), jpg.rindex(b"\xff\xd9")

    def with_frame_4(scans: int) -> Path:  # the clip's frame 4 a progressive JPEG, its last scan repeated
        data = bytearray(_clip(tmp_path, astronaut).read_bytes())
        frame = jpg[:end] + jpg[last:end] * (scans - 10) + jpg[end:]
        pos, chunks = data.find(b"movi") + 4, []  # the frames' chunks: (where, size)
        while data[pos:pos + 4] == b"00dc":
            chunks.append((pos, struct.unpack_from("<I", data, pos + 4)[0]))
            pos += 8 + chunks[-1][1] + (chunks[-1][1] & 1)
        pos, size = chunks[4]
        assert len(chunks) == 6 and len(frame) <= size
        data[pos + 8:pos + 8 + size] = frame + bytes(size - len(frame))  # (after its EOI: nothing the decoder reads)
        video = tmp_path / f"scans{scans}.avi"
        video.write_bytes(data)
        return video

    class Counted:
        calls = 0

        def predict(self, rgb):
            self.calls += 1
            return []

    assert predict_video(Counted(), with_frame_4(MAX_JPEG_SCANS))["frames_read"] == 6
    predictor = Counted()
    with pytest.raises(ImageError) as e:
        predict_video(predictor, with_frame_4(MAX_JPEG_SCANS + 1))
    assert str(e.value).startswith(f"{tmp_path / f'scans{MAX_JPEG_SCANS + 1}.avi'}: frame 4 is a JPEG of over {MAX_JPEG_SCANS} scans")
    assert e.value.reason == "corrupt" and predictor.calls == 0  # before the first frame


def test_an_mp4_whose_index_claims_more_frames_than_it_holds_is_refused_before_opencv_opens_it(tmp_path):
    """(FFmpeg makes a 24-byte index entry per sample an MP4's tables claim when it opens the file: a 1 KB MP4 whose
    stsz claimed 89 million frames of one size took 3.2 GB and 4 s to open, a 2 KB fragmented one whose trun claimed
    50 million 1.8 GB; then one frame, or none, was read)"""
    import struct

    import cv2

    from ferkit.errors import ImageError
    from ferkit.video import _mp4_overclaim, predict_video

    video = tmp_path / "claims.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        w.write(np.full((48, 64, 3), 90, np.uint8))
    w.release()

    class NoFaces:
        def predict(self, rgb):
            return []

    assert predict_video(NoFaces(), video)["frames_read"] == 3  # a real one is read
    data = bytearray(video.read_bytes())
    k = data.find(b"stsz") + 4
    assert struct.unpack_from(">II", data, k + 4) == (0, 3)  # each frame's own size, 3 of them
    struct.pack_into(">II", data, k + 4, 400, 1_000_000)  # one size for all: 8 bytes claim any number (84 MB of index here)
    video.write_bytes(data)
    with pytest.raises(ImageError, match=rf"claims.mp4: its index claims 1,000,000 frames, more than its {len(data):,} bytes "
                                         r"can hold \(damaged, or made so") as e:
        predict_video(NoFaces(), video)
    assert e.value.reason == "corrupt"

    def box(kind, body):
        return struct.pack(">I4s", 8 + len(body), kind) + body

    fragment = box(b"moof", box(b"mfhd", bytes(8)) + box(b"traf", box(b"tfhd", bytes(8)) + box(b"trun", struct.pack(">II", 0, 50_000_000))))
    (tmp_path / "frag.mp4").write_bytes(box(b"ftyp", b"isom" + bytes(4)) + fragment + box(b"mdat", bytes(1000)))
    assert _mp4_overclaim(tmp_path / "frag.mp4") == 50_000_000  # a fragment's samples, without a field each
    (tmp_path / "frag.mp4").write_bytes(box(b"ftyp", b"isom" + bytes(4)) + fragment.replace(struct.pack(">I", 50_000_000), struct.pack(">I", 900))
                                        + box(b"mdat", bytes(1000)))
    assert _mp4_overclaim(tmp_path / "frag.mp4") is None
    for duration, claimed in ((1, None), (1024, 50_000_000)):  # uncompressed audio, indexed by chunk; any other track
        stbl = box(b"stbl", box(b"stts", struct.pack(">IIII", 0, 1, 50_000_000, duration)) + box(b"stsz", struct.pack(">III", 0, 1, 50_000_000)))
        sound = box(b"trak", box(b"mdia", box(b"hdlr", struct.pack(">II4s", 0, 0, b"soun")) + box(b"minf", stbl)))
        (tmp_path / "sound.mov").write_bytes(box(b"ftyp", b"qt  " + bytes(4)) + box(b"moov", sound) + box(b"mdat", bytes(1000)))
        assert _mp4_overclaim(tmp_path / "sound.mov") == claimed


def test_a_video_opencv_cannot_encode_is_said_before_its_first_frame_and_still_predicted(tiny_checkpoint, tmp_path, capsys, astronaut, monkeypatch):
    """(e.g. 8200x64 frames: mp4v would not open, every frame was predicted and written nowhere, and the
    error came at the end as a failed rename; then an error at the first frame lost the predictions)"""
    import cv2

    video = _clip(tmp_path, astronaut)
    calls = []
    real = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))

    class Closed:  # what cv2.VideoWriter gives for a size or codec it cannot write
        def __init__(self, *a):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Closed)
    ann, js = tmp_path / "ann", tmp_path / "v.json"
    assert main(["predict", str(video), "--model", str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert f"warning: {ann / 'clip.mp4'}: OpenCV cannot write a 256x256 video as MPEG-4 (mp4v), so no annotated copy" in out
    assert calls == [1] * 6 and not ann.exists() and len(json.loads(js.read_text())[0]["frames"]) == 6


def test_a_videos_copy_that_would_fill_its_disk_is_dropped_and_the_results_kept(tiny_checkpoint, tmp_path, capsys, astronaut,
                                                                                monkeypatch):
    """A long video's copy filled any disk (17-37 KB a 1080p frame: 18-40 GB for 10 hours), and a full disk then stopped
    the run with nothing written, --json's frames waiting on the same disk. The copy is dropped once its disk has under
    video.COPY_RESERVE free, and the space it took is free again for the results."""
    import shutil
    from collections import namedtuple

    import ferkit.video as video

    clip, ann, js = _clip(tmp_path, astronaut), tmp_path / "ann", tmp_path / "v.json"
    real, sizes = shutil.disk_usage, []

    def filling(folder):  # under the reserve once the copy holds 3 frames
        if Path(folder) == ann:
            sizes.append(sum(f.stat().st_size for f in ann.iterdir()))
            return namedtuple("usage", "total used free")(10**9, 0, video.COPY_RESERVE - (len(sizes) >= 3))
        return real(folder)

    monkeypatch.setattr(video.shutil, "disk_usage", filling)
    assert main(["predict", str(clip), "--model", str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert f"warning: {ann / 'clip.mp4'}: no annotated copy of clip.avi (64 MB were left on its disk after 3 frames, so it was " \
           "dropped, and the space it took is free for the results; give --annotate a disk with room, or a larger --every)" in out
    assert len(sizes) == 3 and not ann.exists()  # (the copy's temporary file and the folder made for it gone)
    (res,) = json.loads(js.read_text())
    assert res["complete"] is True and len(res["frames"]) == 6 and "annotated" not in res


def test_a_temporary_folder_that_cannot_be_written_is_not_said_as_a_size_opencv_cannot_encode(tiny_checkpoint, tmp_path, capsys,
                                                                                                astronaut, monkeypatch):
    """The frame size is tried in the temporary folder (TMPDIR) before a video's first frame. There, a full
    folder kept OpenCV's writer from opening, said as "OpenCV cannot write a 256x256 video as MPEG-4 (mp4v)",
    with no copy; a folder gone (or none usable: the whole disk full) was an OSError traceback that lost
    every prediction of the run. Neither tells of the size: the copy is written in its own folder."""
    import tempfile

    import cv2

    video, temp = _clip(tmp_path, astronaut), tmp_path / "tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # gone since tempfile found it
    ann, js = tmp_path / "ann", tmp_path / "v.json"
    assert main(["predict", str(video), "--model", str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)]) == 0
    assert "warning" not in capsys.readouterr().out and json.loads(js.read_text())[0]["annotated"] == str(ann / "clip.mp4")
    temp.mkdir()  # ... and full: no file there takes a byte, and OpenCV's writer does not open
    real_file, real_writer = tempfile.TemporaryFile, cv2.VideoWriter

    def full(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).is_relative_to(temp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_file(*args, dir=dir, **kwargs)

    def writer(name, *args):
        return _Closed() if Path(name).is_relative_to(temp) else real_writer(name, *args)

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    monkeypatch.setattr(cv2, "VideoWriter", writer)
    (ann / "clip.mp4").unlink()
    assert main(["predict", str(video), "--model", str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)]) == 0
    assert "warning" not in capsys.readouterr().out and (ann / "clip.mp4").stat().st_size > 1000
    assert list(temp.iterdir()) == []


class _Closed:
    """What cv2.VideoWriter gives where it cannot write: a writer that never opened."""

    def isOpened(self):
        return False

    def release(self):
        pass


def test_a_video_whose_name_is_not_utf8_is_one_error_not_a_crash(tiny_checkpoint, tmp_path, astronaut):
    """(OpenCV's binding segfaulted on such a name: the whole run died, with no --json; an --annotate
    folder of such a name did the same at the first frame's copy). A child process: the crash was one."""
    if sys.platform != "linux":
        pytest.skip("file names of any bytes")
    bad = _clip(tmp_path, astronaut).rename(tmp_path / os.fsdecode(b"x\xff.avi"))
    good = _clip(tmp_path, astronaut)
    js, ann = tmp_path / "out.json", tmp_path / os.fsdecode(b"ann\xff")
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(bad), str(good), "--model", str(tiny_checkpoint),
                        "--json", str(js), "--annotate", str(ann)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"x\\udcff.avi: the file name is not valid UTF-8, which OpenCV cannot open; rename the file" in r.stderr
    assert b"its name is not valid UTF-8, which OpenCV cannot write; give --annotate another name" in r.stdout + r.stderr
    bad_res, good_res = json.loads(js.read_text())
    assert bad_res["reason"] == "not_image" and len(good_res["frames"]) == 6 and "annotated" not in good_res


def test_predict_video_refuses_a_pipe_and_a_folder_without_opening_them(tmp_path):
    """(predict_video gave a pipe to FFmpeg, which waited forever for a writer; a folder was "cannot open as
    a video (not a video, an unsupported codec or a damaged file)"). The CLI never passed either."""
    import threading

    from ferkit.errors import ImageError
    from ferkit.video import predict_video

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes")
    pipe = tmp_path / "pipe.mp4"
    os.mkfifo(pipe)

    done = threading.Event()

    def writer_hangs_up():  # were the pipe opened (OpenCV tries it more than once), each open gets an end of file
        while not done.wait(0.5):
            try:
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader: nothing waits
                pass

    threading.Thread(target=writer_hangs_up, daemon=True).start()
    try:
        with pytest.raises(ImageError, match=r"pipe.mp4: not a regular file \(a device, pipe or socket\); give a video file"):
            predict_video(None, pipe)
    finally:
        done.set()
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(ImageError, match=r"dir.mp4: a folder; give a video file"):
        predict_video(None, tmp_path / "dir.mp4")


@pytest.mark.parametrize("every", [0, 2.5, "2", True])
def test_predict_video_takes_every_as_a_whole_number_only(tmp_path, astronaut, every):
    """(every=2.5 sampled frames 0, 5, 10 without a word; "2" was a TypeError)"""
    from ferkit.video import predict_video

    with pytest.raises(FerkitError, match=r"must be a whole number >= 1"):
        predict_video(None, _clip(tmp_path, astronaut), every=every)


def test_predict_video_names_a_bad_predictor_or_path(tmp_path, astronaut):
    """(predict_video(None, path) was an AttributeError at the first frame; a None or int path os.fsdecode's TypeError)"""
    from ferkit.video import predict_video

    for bad in (None, 3, b"clip.mp4"):
        with pytest.raises(FerkitError, match=f"^path must be a video file's path \\(a str or pathlib.Path\\); got {re.escape(repr(bad))}$"):
            predict_video(None, bad)
    for bad in (None, "model.pt"):
        with pytest.raises(FerkitError, match=f"^predictor must be a ferkit Predictor \\(.*\\); got {re.escape(repr(bad))}$"):
            predict_video(bad, _clip(tmp_path, astronaut))


@pytest.mark.parametrize("scale, rate", [(1, 4_000_000_000), (4_000_000_000, 1)])
def test_a_video_whose_header_gives_no_real_frame_rate_has_no_times(tmp_path, astronaut, caplog, scale, rate):
    """(FFmpeg read these AVI headers as 2147483647 and 4.7e-10 frames per second: every frame's time was 0.0,
    or 68 years apart, without a word, and the annotated copy failed as if the frames were too large)"""
    import logging
    import struct

    import cv2

    from ferkit.video import predict_video

    data = bytearray(_clip(tmp_path, astronaut).read_bytes())
    struct.pack_into("<II", data, data.find(b"strh") + 28, scale, rate)  # the stream's dwScale, dwRate
    video, ann = tmp_path / "odd.avi", tmp_path / "odd.mp4"
    video.write_bytes(data)

    class NoFaces:
        def predict(self, rgb):
            return []

    with caplog.at_level(logging.WARNING, "ferkit"):
        res = predict_video(NoFaces(), video, annotate_to=ann)
    assert "frames per second, which no video has (damaged?); its frames' times are left out (null)" in caplog.text
    assert res["fps"] is None and [f["time"] for f in res["frames"]] == [None] * 6
    assert res["annotated"] == str(ann) and cv2.VideoCapture(str(ann)).get(cv2.CAP_PROP_FRAME_COUNT) == 6


@pytest.mark.parametrize("scale, rate, period, times", [(1, 0, 0, None), (0, 10, 0, None), (1, 0, 100_000, [0.0, 0.2, 0.4])])
def test_an_avi_whose_header_gives_no_frame_rate_has_no_times(tmp_path, astronaut, caplog, scale, rate, period, times):
    """(FFmpeg reads an AVI with dwRate or dwScale 0 at 25 frames per second, a guess said only in its silenced
    log: a 10-frame-a-second video's times were 0.04 s apart, without a word). With dwMicroSecPerFrame it is right."""
    import logging
    import struct

    from ferkit.video import predict_video

    data = bytearray(_clip(tmp_path, astronaut).read_bytes())
    struct.pack_into("<II", data, data.find(b"strh") + 28, scale, rate)  # the stream's dwScale, dwRate
    struct.pack_into("<I", data, data.find(b"avih") + 8, period)  # dwMicroSecPerFrame
    video = tmp_path / "norate.avi"
    video.write_bytes(data)

    class NoFaces:
        def predict(self, rgb):
            return []

    with caplog.at_level(logging.WARNING, "ferkit"):
        res = predict_video(NoFaces(), video, every=2)
    if times is None:
        assert f"{video}: its header gives no frame rate (FFmpeg guesses 25 frames per second); its frames' times are left out (null)" in caplog.text
        assert res["fps"] is None and [f["time"] for f in res["frames"]] == [None] * 3
    else:
        assert caplog.text == "" and res["fps"] == 10.0 and [f["time"] for f in res["frames"]] == times


def test_a_videos_times_are_its_frames_own(tmp_path):
    """A variable-rate MP4 (a phone's): frames 0.05 s apart, then 0.2 s apart. Its times were frame / fps by the
    header's 10 a second, 0.0, 0.1, ..., 0.5, which no frame of it has; they are the container's own."""
    import struct

    import cv2

    from ferkit.video import predict_video

    video = tmp_path / "vfr.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()
    data = bytearray(video.read_bytes())
    assert data.find(b"moov") > data.find(b"mdat")  # the index after the frames: growing it moves no frame
    k = data.find(b"stts") - 4
    assert struct.unpack_from(">III", data, k + 12) == (1, 6, 1024)  # one run: 6 frames, 1024 ticks each
    data[k:k + 24] = struct.pack(">I4sIIIIII", 32, b"stts", 0, 2, 4, 512, 2, 2048)  # 4 frames of 512 ticks, 2 of 2048
    for box in (b"stbl", b"minf", b"mdia", b"trak", b"moov"):  # each holds the stts, 8 bytes longer
        j = data.find(box) - 4
        struct.pack_into(">I", data, j, struct.unpack_from(">I", data, j)[0] + 8)
    video.write_bytes(data)

    class NoFaces:
        def predict(self, rgb):
            return []

    res = predict_video(NoFaces(), video)
    assert res["fps"] == 10.0 and [f["time"] for f in res["frames"]] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.4]
    assert [f["time"] for f in predict_video(NoFaces(), video, every=2)["frames"]] == [0.0, 0.1, 0.2]


def _raw_h264(frames) -> bytes:
    """Raw H.264 (Annex B: no container, no timing) of grey frames whose sides are multiples of 16: a sequence and
    a picture parameter set, then each frame an IDR slice of I_PCM macroblocks (its samples as they are). Made by
    hand: the FFmpeg in OpenCV's wheel has no H.264 encoder (its 'avc1' and 'H264' writers do not open)."""
    def ue(v):  # Exp-Golomb
        return f"{v + 1:b}".zfill(2 * (v + 1).bit_length() - 1)

    def nal(header, bits):
        bits += "1" + "0" * (-(len(bits) + 1) % 8)  # the stop bit, then zeros to a byte
        data = int(bits, 2).to_bytes(len(bits) // 8, "big")
        return b"\0\0\0\1" + bytes([header]) + re.sub(rb"\0\0(?=[\0-\3])", b"\0\0\3", data)  # no start code inside

    h, w = frames[0].shape
    # Baseline, level 3; ids 0, frame_num in 4 bits, picture order = decoding order, 1 reference frame; frames only
    sps = f"{66:08b}{0:08b}{30:08b}" + ue(0) + ue(0) + ue(2) + ue(1) + "0" + ue(w // 16 - 1) + ue(h // 16 - 1) + "1100"
    pps = ue(0) + ue(0) + "00" + ue(0) + ue(0) + ue(0) + "000" + ue(0) * 3 + "000"  # CAVLC, qp 26, offsets 0
    out = nal(0x67, sps) + nal(0x68, pps)
    for i, grey in enumerate(frames):
        bits = ue(0) + ue(7) + ue(0) + "0000" + ue(i % 2) + "00" + ue(0)  # an I slice from macroblock 0, frame_num 0, idr_pic_id
        for y in range(0, h, 16):
            for x in range(0, w, 16):
                bits += ue(25)  # I_PCM, then its samples from a byte boundary: 256 luma, 128 chroma
                bits += "0" * (-len(bits) % 8) + "".join(f"{v:08b}" for v in grey[y:y + 16, x:x + 16].flat) + f"{128:08b}" * 128
        out += nal(0x65, bits)
    return out


@pytest.mark.parametrize("name", ["clip.h264", "clip.264"])
def test_a_raw_h264_stream_has_no_times(tmp_path, caplog, name):
    """(FFmpeg reads a raw stream at 25 frames per second, said in its silenced log alone, and gives H.264's frames no
    timestamps: every time was frame / 25 without a word, whatever the video's real rate)"""
    import logging

    from ferkit.video import predict_video

    video = tmp_path / name
    video.write_bytes(_raw_h264([np.full((32, 48), 40 + 20 * i, np.uint8) for i in range(6)]))

    class NoFaces:
        def predict(self, rgb):
            return []

    with caplog.at_level(logging.WARNING, "ferkit"):
        res = predict_video(NoFaces(), video, every=2)
    assert res["frames_read"] == 6  # read, and read whole
    assert caplog.text.count("\n") == 1 and (
        f"{video}: a raw video stream, which gives no frame rate (FFmpeg guesses 25 frames per second); its frames' times are "
        "left out (null). For times, put it in a container at its rate, e.g. for 30 frames per second: "
        "ffmpeg -r 30 -i in.h264 -c copy out.mp4") in caplog.text
    assert res["fps"] is None and [f["time"] for f in res["frames"]] == [None] * 3
    # and `ferkit predict` reads it as a video (it said "not an image" of a .h264 file)
    js = tmp_path / "out.json"
    assert main(["predict", str(video), "--json", str(js)]) == 0
    [res] = json.loads(js.read_text())
    assert res["type"] == "video" and res["fps"] is None and res["frames_read"] == 6


def _raw_m4v(folder, fps):
    """A raw MPEG-4 part 2 stream (.m4v, no container) of 12 frames at `fps`: OpenCV writes it in an AVI, whose
    frames' chunks, one after another, are the stream (a .m4v OpenCV writes is an MP4, its 'M4V ' brand)."""
    import struct

    import cv2

    avi = folder / "mp4v.avi"
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(12):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    data, chunks = avi.read_bytes(), []
    pos = data.find(b"movi") + 4
    while data[pos:pos + 4] != b"idx1":
        size = struct.unpack_from("<I", data, pos + 4)[0]
        chunks.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)
    video = folder / "clip.m4v"
    video.write_bytes(b"".join(chunks))
    assert video.read_bytes()[:4] == b"\0\0\1\xb0"  # the stream's first start code: no container
    return video


def test_a_raw_stream_with_its_own_times_gives_their_rate(tiny_checkpoint, tmp_path, caplog):
    """A raw .m4v at 10 frames per second: FFmpeg reads it at 25, as any raw stream, and its frames' times are
    their own, 0.1 s apart; the result said "fps": 25 beside them (and the annotated copy ran 2.5 times fast).
    So does raw MPEG-2 video (.m2v), its own rate in every frame too."""
    import logging

    import cv2

    from ferkit.video import predict_video

    class NoFaces:
        def predict(self, rgb):
            return []

    m2v = tmp_path / "clip.m2v"
    w = cv2.VideoWriter(str(m2v), cv2.VideoWriter_fourcc(*"MPEG"), 10, (64, 48))
    for i in range(12):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    assert m2v.read_bytes()[:4] == b"\0\0\1\xb3"  # a sequence header: no container
    for video in (_raw_m4v(tmp_path, 10), m2v):
        assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) == 25.0  # what OpenCV says
        ann = tmp_path / f"{video.stem}-ann.mp4"
        with caplog.at_level(logging.WARNING, "ferkit"):
            res = predict_video(NoFaces(), video, every=2, annotate_to=ann)
        times = [f["time"] for f in res["frames"]]
        assert caplog.text == "" and res["fps"] == 10.0 and np.allclose(np.diff(times), 0.2), (video, times)
        assert cv2.VideoCapture(str(ann)).get(cv2.CAP_PROP_FPS) == 5.0  # the copy at the same pace: 10 / 2
    assert times[0] == 0.1  # (FFmpeg's own for MPEG-2's first frame)
    js = tmp_path / "out.json"  # the reported result, the same
    assert main(["predict", str(tmp_path / "clip.m4v"), "--model", str(tiny_checkpoint), "--json", str(js)]) == 0
    (res,) = json.loads(js.read_text())
    assert res["fps"] == 10.0 and [f["time"] for f in res["frames"]] == [round(0.1 * i, 1) for i in range(12)]


@pytest.mark.parametrize("ext, fourcc", [("mp4", "mp4v"), ("mkv", "mp4v"), ("avi", "MJPG"), ("webm", "VP80"), ("mpg", "MPEG")])
def test_a_video_at_25_frames_per_second_in_a_container_keeps_its_rate_and_times(tmp_path, caplog, ext, fourcc):
    """25 a second is also FFmpeg's guess for a raw stream: a container's own is kept, without a word (an MPEG
    program stream starts with a start code too, its pack header's)."""
    import logging

    import cv2

    from ferkit.video import predict_video

    video = tmp_path / f"clip.{ext}"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*fourcc), 25, (64, 48))
    assert w.isOpened()
    for i in range(6):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()

    class NoFaces:
        def predict(self, rgb):
            return []

    with caplog.at_level(logging.WARNING, "ferkit"):
        res = predict_video(NoFaces(), video)
    assert caplog.text == "" and res["fps"] == 25.0 and [f["time"] for f in res["frames"]] == [0.0, 0.04, 0.08, 0.12, 0.16, 0.2]


def test_a_raw_stream_is_known_by_its_first_bytes(tmp_path):
    from ferkit.video import _raw_stream

    heads = {b"\0\0\0\1\x67\x42\xc0\x1e": True, b"\0\0\0\1\x09\xf0\0\0": True,  # H.264: its sequence parameter set, a delimiter
             b"\0\0\0\1\x40\x01\x0c\x01": True, b"\0\0\1\xb0\x01\0\0\1": True,  # HEVC's video parameter set; MPEG-4 part 2
             b"\0\0\1\xb3\x04\0\x30\x23": True, b"\0\0\1\xba\x21\0\1\0": False,  # MPEG-1/2 video; a program stream's pack
             b"\0\0\0\1ftypisom": False, b"\0\0\0\x1cftyp": False,  # MP4, its first box's size 64 bits long or 32
             b"\x1a\x45\xdf\xa3\x9f": False, b"RIFF\0\0\0\0AVI ": False, b"\0\0\1": False, b"": False}
    for k, (head, raw) in enumerate(heads.items()):
        (tmp_path / f"{k}.bin").write_bytes(head)
        assert _raw_stream(tmp_path / f"{k}.bin") is raw, head


def test_a_frame_without_a_believable_timestamp_gets_frame_over_fps():
    from ferkit.video import _Clock

    clock = _Clock(10.0)
    assert [clock.time(0, 0.0), clock.time(1, 0.0), clock.time(2, 250.0), clock.time(3, 9.2e17), clock.time(4, float("nan"))] == \
        [0.0, 0.1, 0.25, 0.3, 0.4]  # none (0), its own, OpenCV's arithmetic on a stream with no start time, NaN
    assert _Clock(0.0).time(0, 0.0) is None  # the header's rate unknown: no times


def test_a_video_named_as_a_photo_is_said_to_be_a_video(tmp_path, astronaut):
    """(a clip.avi renamed .jpg was "not an image ... give a JPEG, PNG, ..." with no word that it is a video)"""
    from ferkit.errors import ImageError
    from ferkit.faces import load_image

    data = _clip(tmp_path, astronaut).read_bytes()
    with pytest.raises(ImageError, match=r"clip.jpg: an AVI video, not an image; name it .avi for `ferkit predict` to read it as a video"):
        load_image(data, name="clip.jpg")
    for name in ("clip.avi", "clip.MP4"):  # a video's name already: renaming it was no fix (Predictor.predict("clip.avi"))
        with pytest.raises(ImageError, match=rf"^{name}: an AVI video, not an image; `ferkit predict` reads videos \(from Python: "
                                             r"ferkit.video.predict_video\(predictor, path\)\)$"):
            load_image(data, name=name)
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(3000)
    with pytest.raises(ImageError, match=r"an MP4 video, not an image; name it .mp4"):
        load_image(mp4, name="clip.png")
    with pytest.raises(ImageError, match=r"not an image, or a format ferkit does not read"):  # an HEIF photo's box is no video
        load_image(b"\x00\x00\x00\x18ftypheic" + bytes(3000), name="x.heic")


def test_demo_writes_the_annotated_astronaut(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(out)]) == 0
    assert "astronaut.jpg  512x512, 1 face" in capsys.readouterr().out
    assert Image.open(out).size == (512, 512)


def test_demo_on_a_full_disk_leaves_no_empty_folder(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """(check_output made --out's missing folders, and a write that failed there left them behind, empty)"""
    from ferkit import files

    def full(path, data):  # a full disk: the temporary file is made, its bytes cannot be written
        with files.atomic_file(path):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "atomic_write", full)
    out = tmp_path / "new" / "demo.png"
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: {out}: cannot write it (No space left on device); free some space or choose "
                                       "another location and run again (an earlier file there is left as it was)\n")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_symbolic_link_writes_the_file_it_points_to(tiny_checkpoint, tmp_path, capsys):
    """The atomic write's os.replace replaced a link given as --out with a file, cutting it from what it named;
    a link whose target's folder is missing was replaced too, and is refused before the work, naming that folder."""
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "demo.png").write_text("old")
    link, dangling = tmp_path / "demo.png", tmp_path / "lost.png"
    link.symlink_to("kept/demo.png")
    dangling.symlink_to("nowhere/demo.png")
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(link)]) == 0
    assert link.is_symlink() and Image.open(tmp_path / "kept" / "demo.png").size == (512, 512)
    assert os.listdir(tmp_path / "kept") == ["demo.png"]  # no temporary file left beside it
    capsys.readouterr()
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(dangling)]) == 2
    err = capsys.readouterr().err
    assert (f"--out {dangling}: cannot use it (a symbolic link to {tmp_path / 'nowhere' / 'demo.png'}, whose folder "
            f"{tmp_path / 'nowhere'} does not exist; create that folder or fix the link)") in err, err
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_bundled_model_sees_a_smile(astronaut):
    """The shipped weights (src/ferkit/weights/fer2013.pt): the astronaut smiles broadly."""
    (r,) = Predictor().predict(astronaut)
    assert r["label"] == "happy" and r["score"] > 0.5


def test_detector_choice_and_crops(tiny_checkpoint, astronaut, tmp_path):
    yunet = Predictor(tiny_checkpoint).predict(astronaut)
    haar = Predictor(tiny_checkpoint, detector="haar").predict(astronaut)
    assert len(yunet) == len(haar) == 1 and iou(yunet[0]["box"], haar[0]["box"]) > 0.5
    with pytest.raises(FerkitError, match="detector 'mtcnn': choose one of yunet, haar"):
        Predictor(tiny_checkpoint, detector="mtcnn")
    # crops: the whole picture is the face, grey and 48x48, no detection (a blank picture still gets a record)
    p = Predictor(tiny_checkpoint)
    x, y, w, h = yunet[0]["box"]
    face = astronaut[y : y + h, x : x + w]
    (r,) = p.predict(face, crops=True)
    _check_record(r)
    assert r["box"] == [0, 0, w, h]
    from ferkit.faces import whole_face

    assert np.allclose(list(r["probs"].values()), p.predict_faces(whole_face(face))[0], atol=1e-6)
    assert len(p.predict(np.full((30, 30, 3), 255, np.uint8), crops=True)) == 1



def test_predict_takes_a_photo_as_find_faces_takes_it(tiny_checkpoint, two_faces, monkeypatch):
    """(Predictor.predict had its own check of a photo ready to use beside faces.as_photo's, one that sent a grey uint8
    array through load_image to be copied to RGB, which find_faces and whole_face then turned grey again)"""
    import ferkit.faces

    p = Predictor(tiny_checkpoint)
    grey = ferkit.faces.to_grey(two_faces)
    as_rgb = np.repeat(grey[:, :, None], 3, axis=2)
    faces, crop = p.predict(as_rgb), p.predict(as_rgb, crops=True)

    def copied(*args):
        raise AssertionError("a photo ready to use was copied by load_image")

    monkeypatch.setattr(ferkit.faces, "_from_array", copied)
    assert len(faces) == 2 and p.predict(grey) == faces and p.predict(grey, crops=True) == crop
    assert len(p.predict(two_faces)) == 2
    monkeypatch.undo()  # any other array is still load_image's: a view or an RGBA one
    view = np.broadcast_to(as_rgb[:1, :1], (100_000, 100_000, 3))
    with pytest.raises(FerkitError, match=r"100000x100000 pixels is too large"):
        p.predict(view)
    rgba = np.concatenate([as_rgb, np.full(grey.shape + (1,), 255, np.uint8)], axis=2)
    assert p.predict(rgba) == faces

def test_predict_cli_crops(tiny_checkpoint, tmp_path, capsys):
    from conftest import synthetic_faces

    d = tmp_path / "crops"
    d.mkdir()
    faces, _ = synthetic_faces(3)
    for i, f in enumerate(faces):
        Image.fromarray(f).save(d / f"{i}.png")
    cs = tmp_path / "c.csv"
    assert main(["predict", str(d), "--crops", "--model", str(tiny_checkpoint), "--csv", str(cs)]) == 0
    assert capsys.readouterr().out.count("48x48, 1 face") == 3
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == 3 and all(r["label"] in EMOTIONS and (r["w"], r["h"]) == ("48", "48") for r in rows)


def test_predict_cli_checks_outputs_before_any_work(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import os

    import ferkit.predict as fp

    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img)
    monkeypatch.setattr(fp.Predictor, "__init__", lambda *a, **k: pytest.fail("the model was loaded before the outputs were checked"))
    (tmp_path / "file").write_text("x")
    cases = [(["--json", str(tmp_path / "file" / "x.json")], "--json .*file/x.json: .*file is a file, not a folder"),
             (["--csv", str(tmp_path)], "--csv .*: is a folder; give a file name, e.g. .*results.csv"),
             (["--json", os.devnull], "--json /dev/null: not a regular file"),
             (["--annotate", str(tmp_path / "file")], "--annotate .*file: is a file, not a folder"),
             (["--annotate", str(tmp_path / "file" / "sub")], "--annotate .*sub: .*file is a file, not a folder"),
             (["--json", str(tmp_path / "o"), "--csv", str(tmp_path / "o")], "--json and --csv both name")]
    if os.path.isdir("/proc/self"):  # a folder that exists but takes no files: only a real write tells
        cases.append((["--json", "/proc/x.json"], "--json /proc/x.json: cannot write in /proc"))
    for flags, message in cases:
        assert main(["predict", str(img), *flags]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert "Traceback" not in err
    # a missing folder is created by the check, as the README says, before the model is loaded
    with pytest.raises(pytest.fail.Exception, match="the model was loaded"):
        main(["predict", str(img), "--json", str(tmp_path / "new" / "dir" / "x.json")])
    assert (tmp_path / "new" / "dir").is_dir()


def test_predict_cli_skips_a_fifo(tiny_checkpoint, tmp_path, capsys):
    import os

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert main(["predict", str(fifo), str(tmp_path), "--model", str(tiny_checkpoint)]) == 0  # would block on read
    out, err = capsys.readouterr()
    # named twice (given, and found in the folder): a message each time, neither opened
    assert err.count("pipe.png: not a regular file") == 2 and "1 file(s) processed, 2 failed" in out
    from ferkit.errors import ImageError
    from ferkit.faces import load_image

    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)


def test_export_slim_half_checkpoint(tiny_checkpoint, tmp_path, capsys):
    from ferkit.checkpoint import read_checkpoint

    out = tmp_path / "slim.pt"
    assert main(["export", str(tiny_checkpoint), "--pt", str(out), "--half"]) == 0
    assert "float16 weights" in capsys.readouterr().out
    ck = read_checkpoint(out)
    assert all(v.dtype == torch.float16 for v in ck["state_dict"].values() if v.is_floating_point())
    assert "optimizer" not in ck and "iter_loss" not in ck
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    assert np.abs(load_checkpoint(out).predict_proba(faces) - load_checkpoint(tiny_checkpoint).predict_proba(faces)).max() < 1e-2
    assert main(["export", str(tiny_checkpoint), "--pt", str(out), "--int8"]) == 2
    assert main(["export", str(tiny_checkpoint)]) == 2


def _photos(folder, n: int):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((30, 40, 3), 10 * i % 256, np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_predict_full_disk_is_one_line_and_keeps_the_earlier_files(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import ferkit.files as files

    photos = _photos(tmp_path / "photos", 2)
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    js.write_text('[{"file": "earlier"}]')
    cs.write_text("file\nearlier\n")

    monkeypatch.setattr(files, "open", lambda *a, **k: FullDisk(open(*a, **k), room=10), raising=False)
    for flag, path in (("--json", js), ("--csv", cs)):
        assert main(["predict", str(photos), "--model", str(tiny_checkpoint), flag, str(path)]) == 2
        err = capsys.readouterr().err
        assert f"error: {path}: cannot write it (No space left on device)" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert js.read_text() == '[{"file": "earlier"}]' and cs.read_text() == "file\nearlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.json", "photos"]  # no temporary files left
    # the fix fits the cause: a folder that refuses is no full disk (it said "free some space" for every failure)
    def refused(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files, "open", refused, raising=False)
    assert main(["predict", str(photos), "--model", str(tiny_checkpoint), "--json", str(js)]) == 2
    assert f"error: {js}: cannot write it (Permission denied); make the folder writable or choose another location" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="limits the file size of a child process (RLIMIT_FSIZE)")
def test_annotated_copies_that_cannot_be_written_are_warnings_and_the_predictions_stay(tiny_checkpoint, tmp_path, astronaut):
    """A disk that fills up while --annotate writes: a photo's copy failed as the photo's error (its faces
    were dropped from --json), and OpenCV's video writer failed without a word (a cut, unplayable copy
    was renamed into place as finished). Each is now a warning with no copy, and the faces stay.
    The child process may write files of 8 kB at most (a full disk, as Python sees it: EFBIG)."""
    import resource
    import subprocess
    import sys

    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    video, ann, js = _clip(tmp_path, astronaut), tmp_path / "ann", tmp_path / "out.json"
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path / "astronaut.png"), str(video), "--model",
                        str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)], capture_output=True, text=True,
                       timeout=300, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (8000, hard)))
    assert r.returncode == 0, r.stderr
    assert f"warning: {ann / 'astronaut.png'}: no annotated copy of astronaut.png (cannot write it: File too large)" in r.stdout
    assert f"warning: {ann / 'clip.mp4'}: no annotated copy of clip.avi (OpenCV wrote 0 of its 6 frames readably" in r.stdout
    assert "2 file(s) processed, 0 failed; wrote " + str(js) + "\n" in r.stdout and "Traceback" not in r.stderr  # no copies said
    results = json.loads(js.read_text())
    assert [len(x["faces"]) for x in results] == [1, 1] and len(results[1]["frames"]) == 6  # the faces, not an error
    assert not any("annotated" in x for x in results)
    assert not ann.exists()  # no cut copy, no temporary file, and no empty folder (it was left behind)
    # with room, both copies are written, and the video's reads back whole
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path / "astronaut.png"), str(video), "--model",
                        str(tiny_checkpoint), "--annotate", str(ann), "--json", str(js)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "warning" not in r.stdout, r.stdout
    assert f"wrote {js}, 2 annotated copies in {ann}" in r.stdout
    assert sorted(p.name for p in ann.iterdir()) == ["astronaut.png", "clip.mp4"]
    assert [x["annotated"] for x in json.loads(js.read_text())] == [str(ann / "astronaut.png"), str(ann / "clip.mp4")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="limits the file size of a child process (RLIMIT_FSIZE)")
def test_a_video_copy_into_a_folder_that_takes_no_byte_says_so_not_a_size(tiny_checkpoint, tmp_path, astronaut):
    """On a disk with no room at all, OpenCV's writer does not open (its header cannot be written), and that
    was said as "OpenCV cannot write a 256x256 video as MPEG-4 (mp4v); scale it down for a copy". The child
    process may write no byte anywhere (EFBIG, as Python sees it: the --annotate folder and TMPDIR alike)."""
    import resource

    video, ann = _clip(tmp_path, astronaut), tmp_path / "ann"
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(video), "--model", str(tiny_checkpoint), "--annotate",
                        str(ann)], capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard)))
    assert r.returncode == 0, r.stderr
    assert (f"warning: {ann / 'clip.mp4'}: no annotated copy of clip.avi (cannot write it: File too large); its faces are "
            "predicted all the same\n") in r.stdout
    assert "6 frames sampled" in r.stdout and "1 file(s) processed, 0 failed" in r.stdout and "Traceback" not in r.stderr
    assert not ann.exists()  # (the copy's first write made it, and it was left behind, empty)


def test_predict_ctrl_c_writes_what_was_done(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import ferkit.jobs as jobs

    photos = _photos(tmp_path / "photos", 5)
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    real, calls = jobs.predict_file, []

    def stop_at_the_fourth(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(jobs, "predict_file", stop_at_the_fourth)
    assert main(["predict", str(photos), "--model", str(tiny_checkpoint), "--json", str(js), "--csv", str(cs)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted after 3 of 5 files: wrote {js}, {cs} with those" in err and "Traceback" not in err
    assert [r["file"].split("/")[-1] for r in json.loads(js.read_text())] == ["00.png", "01.png", "02.png"]
    assert [r["file"].split("/")[-1] for r in csv.DictReader(cs.open())] == ["00.png", "01.png", "02.png"]


def test_a_folder_nested_deeper_than_pythons_stack_is_searched(tmp_path):
    from ferkit.jobs import collect_inputs

    with deep_folder(tmp_path / "d") as deep:  # rglob recursed once a level: a RecursionError
        _photos(deep / "b", 1)
        files, problems = collect_inputs([tmp_path / "d"])
        assert [f for f, _ in files] == [deep / "b" / "00.png"] and problems == []


def test_a_photo_given_twice_or_in_a_folder_given_too_is_predicted_once(tiny_checkpoint, tmp_path, capsys):
    d = _photos(tmp_path / "photos", 2)
    js, copies = tmp_path / "r.json", tmp_path / "copies"
    assert main(["predict", str(d / "00.png"), str(d / "00.png"), str(d), "--model", str(tiny_checkpoint), "--json", str(js),
                 "--annotate", f"{copies}/"]) == 0
    assert [r["file"] for r in json.loads(js.read_text())] == [str(d / "00.png"), str(d / "01.png")]
    assert sorted(str(f.relative_to(copies)) for f in copies.rglob("*.png")) == ["00.png", "photos/01.png"]  # was only 00_.png
    assert "2 file(s) processed, 0 failed" in capsys.readouterr().out


def test_collect_inputs_names_what_it_cannot_read(tmp_path):
    import os
    import signal

    from ferkit.jobs import collect_inputs

    d = _photos(tmp_path / "photos", 1)  # 00.png
    os.mkfifo(d / "pipe.png")
    os.symlink("loop.jpg", d / "loop.jpg")
    os.symlink("gone.png", d / "dangling.png")
    other = _photos(tmp_path / "other", 1)
    os.symlink(other, d / "linked.jpg")  # a link to a folder: not followed in a scan
    os.symlink(other, d / "more")  # the same without a photo's name: it went unsaid
    _photos(d / "album.jpg", 1)  # a real folder named like a photo: searched like any folder
    (d / "notes.txt").write_text("not an image name: ignored")
    _photos(d / ".ipynb_checkpoints", 1)  # hidden: a notebook's copies, not more photos
    _photos(d / "__MACOSX", 1)
    (d / "clip.m4v").write_bytes(b"")  # a video by its name, read as one
    os.mkfifo(d / "fifo")  # nor this
    signal.alarm(20)  # opening a fifo would block: fail instead of hanging
    try:
        files, problems = collect_inputs([d, d / "pipe.png", d / "loop.jpg", d / "dangling.png", d / "album.jpg", "-",
                                          "https://example.com/a.jpg"])
    finally:
        signal.alarm(0)
    rel = [str(f.relative_to(tmp_path)) for f, _ in files]
    assert rel == ["photos/00.png", "photos/album.jpg/00.png", "photos/clip.m4v"]  # album.jpg given again: found once
    text = "\n".join(problems)
    for name, why in [("pipe.png", "not a regular file (a pipe, socket or device); skipped"),
                      ("loop.jpg", "a symbolic link loop"), ("dangling.png", "a symbolic link to gone.png, which does not exist"),
                      ("linked.jpg", "a link to a folder, which a folder search does not follow"),
                      ("more", "a link to a folder, which a folder search does not follow")]:
        assert f"{d / name}: {why}" in text, (name, text)
    assert "-: photos are not read from standard input; save the photo to a file" in text  # not "no such file"
    # a URL said to be one, as given ("https:/example.com/a.jpg: no such file or folder")
    assert "https://example.com/a.jpg: a URL; ferkit reads local files, not URLs: download it and give the file's path" in text
    assert len(problems) == 10  # five found in the scan, five given


@pytest.mark.parametrize("backend", [[], ["--backend", "torch"]])  # the default model's shipped graph, and its checkpoint on torch
def test_predict_cli_tta_averages_each_face_with_its_mirror(backend, tmp_path):
    from conftest import synthetic_faces

    face = synthetic_faces(1)[0][0]
    face[:, :20] = 0  # a face unlike its mirror image
    Image.fromarray(face).save(tmp_path / "face.png")
    Image.fromarray(np.ascontiguousarray(face[:, ::-1])).save(tmp_path / "mirror.png")

    def probs(*flags) -> dict:
        out = tmp_path / "out.json"
        args = ["predict", str(tmp_path / "face.png"), str(tmp_path / "mirror.png"), "--crops", "--json", str(out), *backend, *flags]
        assert main(args) == 0
        return {Path(r["file"]).stem: np.array(list(r["faces"][0]["probs"].values())) for r in json.loads(out.read_text())}

    plain, mirrored = probs("--no-tta"), probs("--tta")
    assert np.abs(plain["face"] - plain["mirror"]).max() > 0.01
    for p in mirrored.values():
        np.testing.assert_allclose(p, (plain["face"] + plain["mirror"]) / 2, atol=2e-3)


def test_a_library_callers_bad_arguments_are_named_not_numpys_or_torchs_errors():
    """tta="no" (a true string) turned the mirror on, batch_size=0 was range()'s error and -1 returned
    no probabilities, min_face="0.1" a TypeError from inside the detector, threads="2" onnxruntime's."""
    for kwargs, message in [(dict(tta="no"), "tta must be True, False or None (as the model says); got 'no'"),
                            (dict(align="no"), "align must be True or False; got 'no'"),
                            (dict(threads="2"), "threads must be None (the runtime's default) or 1..1024; got '2'"),
                            (dict(threads=0, tta=1), "tta must be True, False or None (as the model says); got 1; threads must")]:
        with pytest.raises(FerkitError, match=re.escape(message)):
            Predictor(**kwargs)
    p, faces = Predictor(), np.zeros((3, 48, 48), np.uint8)
    for batch_size in (0, -1, 1.5):
        with pytest.raises(FerkitError, match=f"batch_size must be an integer >= 1; got {batch_size}"):
            p.predict_proba(faces, batch_size=batch_size)
    assert p.predict_proba(faces, batch_size=np.int64(2)).shape == (3, 8)
    # taken as predict_faces takes them (one face flattened was cut into rows of batch_size pixels; a scalar or
    # a generator was len()'s TypeError)
    assert p.predict_proba(faces[0].ravel()).shape == p.predict_proba(faces[0]).shape == (1, 8)
    for bad, got in ((np.uint8(3), "got an array of shape \\(\\)"), ((f for f in faces), "got object values")):
        with pytest.raises(FerkitError, match=got):
            p.predict_proba(bad)
    for min_face in ("0.1", float("nan"), 0, 2):
        with pytest.raises(FerkitError, match="min_face must be None .* or a fraction of the photo's shorter side in"):
            p.predict(np.zeros((64, 64, 3), np.uint8), min_face=min_face)
    with pytest.raises(FerkitError, match="crops must be True or False; got 'yes'"):
        p.predict(np.zeros((64, 64, 3), np.uint8), crops="yes")


def test_faces_of_different_sizes_in_a_list_are_named_not_numpys_error():
    """(predict_faces and predict_proba of a list of a 48x48 face and a 64x64 one were numpy's 'setting an
    array element with a sequence. The requested array has an inhomogeneous shape ...' ValueError)"""
    p = Predictor()
    ragged = [np.zeros((48, 48), np.uint8), np.zeros((64, 64), np.uint8)]
    for call in (p.predict_faces, p.predict_proba):
        with pytest.raises(FerkitError, match=r"takes uint8 faces as one array \(N, 48, 48\); got a list numpy cannot make one "
                                              r"array of \(setting an array element with a sequence\): faces of different sizes\?"):
            call(ragged)
    assert p.predict_faces(ragged[:1]).shape == (1, 8)
    for call in (p.predict_faces, p.predict_proba):  # no faces: no probabilities (it was "got float64 values")
        assert call([]).shape == call(()).shape == (0, 8)


def test_a_false_model_backend_or_precision_is_refused_not_taken_for_the_default():
    """(model=0, False or "" ran the bundled default model, backend="" the torch backend and precision=""
    auto, all without a word; a detector given as a list was dict's TypeError 'unhashable type: list')"""
    from ferkit.predict import load_model

    for kwargs, message in [(dict(model=0), "--model 0: no such file or folder"), (dict(model=False), "--model False: no such file"),
                            (dict(model=""), "--model '': no such file or folder"), (dict(backend=""), "backend '': choose torch or onnx"),
                            (dict(precision=""), "precision '' with the torch backend: choose auto, fp32, bf16"),
                            (dict(detector=["yunet"]), re.escape("detector ['yunet']: choose one of yunet, haar"))]:
        with pytest.raises(FerkitError, match=message):
            Predictor(**kwargs)
    with pytest.raises(FerkitError, match="--model '': no such file or folder"):
        load_model("")


def test_a_misspelt_device_is_refused_on_the_onnx_backend_too(capsys, caplog):
    """(onnxruntime runs on the CPU whatever --device says: `--device foo` was ignored without a word,
    and `--device cuda` is said to run on the CPU)"""
    with pytest.raises(FerkitError, match="--device must be auto, cpu, cuda, cuda:N or mps; got 'foo'"):
        Predictor(device="foo")
    with caplog.at_level("WARNING", logger="ferkit.predict"):
        assert Predictor(device="cuda:1").backend == "onnx"  # a real name: onnxruntime runs on the CPU as before
    assert "--device cuda:1: the onnx backend runs on the CPU; for cuda:1, give --backend torch" in caplog.text
    with caplog.at_level("WARNING", logger="ferkit.predict"):
        Predictor("ferplus", backend="onnx", precision="int8", calibration="/nope")  # (ignored without a word)
    assert "calibration /nope: not used; the shipped graph is calibrated already" in caplog.text


def test_a_cuda_index_too_large_for_torch_is_said_as_such():
    """(torch.device cannot hold cuda:99999999999999999999: it was 'must be ... cuda:N', which it is)"""
    from ferkit.checkpoint import device_of

    why = "this machine has \\d+ CUDA device" if torch.cuda.is_available() else "CUDA is not available on this machine"
    with pytest.raises(FerkitError, match=f"^--device cuda:99999999999999999999: {why}"):
        device_of("cuda:99999999999999999999")


def test_a_path_of_100000_characters_is_quoted_by_its_start_and_length(tiny_checkpoint, tmp_path, capsys):
    """(predict's messages and the --json error quoted a path given of any length whole: 100 KB lines)"""
    long = "p" * 100_000
    assert main(["predict", long, "--model", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    start = f"{'p' * 200}... (100,000 characters)"
    assert err == (f"error: {start}: cannot use it (File name too long); check the path\n"
                   f"error: nothing to process in {start}; give image files, folders of images or videos\n"), err[:500]
    assert main(["predict", str(tmp_path), "--model", str(tiny_checkpoint), "--json", str(tmp_path / long)]) == 2
    given = str(tmp_path / long)
    err = capsys.readouterr().err
    assert err == (f"error: --json {given[:200]}... ({len(given):,} characters): cannot use it (File name too long); "
                   "choose another location\n"), err[:500]
