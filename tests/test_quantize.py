"""int8 ONNX (onnxruntime static quantization) and the precision of each backend, on a tiny model."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from conftest import synthetic_faces, write_fer_csv
from ferkit.checkpoint import load_checkpoint
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.files import sha256_of
from ferkit.onnx_export import export_onnx, onnx_session
from ferkit.predict import Predictor
from ferkit.preprocess import probabilities, to_tensor


@pytest.fixture(scope="module")
def calib():
    return synthetic_faces(64, seed=3)[0]


@pytest.fixture(scope="module")
def test_faces():
    faces, labels = synthetic_faces(70, seed=11)
    return faces, labels


@pytest.mark.parametrize("tta", [False, True])
def test_int8_export_keeps_labels_and_stays_close_to_fp32(tiny_checkpoint, tmp_path, calib, test_faces, tta):
    clf = load_checkpoint(tiny_checkpoint)
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(clf, fp32, tta=tta)
    export_onnx(clf, int8, tta=tta, calibration=calib)
    graph = onnx.load(int8)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["labels"]) == list(clf.labels) and meta["precision"] == "int8" and meta["tta"] == str(int(tta))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == 2  # both convs, the first (one input channel) included
    assert int8.stat().st_size < fp32.stat().st_size

    faces, labels = test_faces
    want = clf.predict_proba(faces, tta=tta)
    got = onnx_session(int8).run(None, {"faces": faces})[0]
    assert got.shape == want.shape and np.allclose(got.sum(1), 1, atol=1e-5)
    assert np.abs(got - want).max() < 0.02  # int8 rounding (about 0.002 here), not a different model
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    assert (got.argmax(1) == labels).mean() >= (want.argmax(1) == labels).mean() - 0.05


def test_tta_as_one_batch_gives_the_same_numbers(tiny_checkpoint, test_faces):
    clf = load_checkpoint(tiny_checkpoint)
    x = to_tensor(test_faces[0], clf.mean)
    with torch.no_grad():
        two_passes = (torch.softmax(clf.model(x), 1) + torch.softmax(clf.model(x.flip(-1)), 1)) / 2
        torch.testing.assert_close(probabilities(clf.model, x, tta=True, one_batch=True), two_passes, rtol=0, atol=1e-6)


def test_predictor_precisions_per_backend(tiny_checkpoint, tmp_path, calib, test_faces):
    faces = test_faces[0]
    want = Predictor(tiny_checkpoint, precision="fp32").predict_faces(faces)
    mem = Predictor(tiny_checkpoint, backend="onnx", precision="int8", calibration=calib)
    assert mem.precision == "int8" and mem.labels == load_checkpoint(tiny_checkpoint).labels
    assert np.abs(mem.predict_faces(faces) - want).max() < 0.02
    assert Predictor(tiny_checkpoint, backend="onnx").precision == "fp32"  # auto = fp32 for onnx

    out = tmp_path / "m.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), out, calibration=calib)
    f = Predictor(out, backend="onnx")
    assert f.precision == "int8" and np.allclose(f.predict_faces(faces), mem.predict_faces(faces), atol=1e-6)
    with pytest.raises(FerkitError, match="is an int8 graph, not fp32"):
        Predictor(out, backend="onnx", precision="fp32")
    with pytest.raises(FerkitError, match=r"'int8' with the torch backend.*--backend onnx"):
        Predictor(tiny_checkpoint, precision="int8")
    with pytest.raises(FerkitError, match=r"'bf16' with the onnx backend.*--backend torch"):
        Predictor(tiny_checkpoint, backend="onnx", precision="bf16")
    with pytest.raises(FerkitError, match="int8 needs FER2013 training faces.*--data FILE"):
        Predictor(tiny_checkpoint, backend="onnx", precision="int8", calibration=tmp_path / "missing.csv")


def test_default_path_is_torch_for_a_checkpoint(tiny_checkpoint, tmp_path, monkeypatch):
    import ferkit.onnx_export

    fp32 = tmp_path / "fp32.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), fp32)
    monkeypatch.setattr(ferkit.onnx_export, "calibration_faces", lambda *a: pytest.fail("no calibration by default"))
    p = Predictor(tiny_checkpoint)  # no shipped int8 graph: torch, its own auto precision
    assert (p.backend, p.precision) == ("torch", load_checkpoint(tiny_checkpoint, precision="auto").precision)
    assert Predictor(fp32, backend="onnx").precision == "fp32"  # a file runs as exported
    assert (Predictor(fp32).backend, Predictor(fp32).precision) == ("onnx", "fp32")  # no backend needed for .onnx
    with pytest.raises(FerkitError, match="an ONNX model runs with backend='onnx'"):
        Predictor(fp32, backend="torch")


def test_export_cli_int8(tiny_checkpoint, tmp_path, capsys):
    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "int8, calibrated on 21 training faces" in printed
    assert float(printed.rsplit("max |diff| ", 1)[1]) < 0.02
    meta = onnx_session(out).get_modelmeta().custom_metadata_map
    assert meta["precision"] == "int8" and meta["checkpoint_sha256"] == sha256_of(tiny_checkpoint)
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--data", str(csv)]) == 2
    assert "add --int8" in capsys.readouterr().err
    no_train = write_fer_csv(tmp_path / "val.csv", usages=("PublicTest",))
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(no_train)]) == 2
    assert "no Training rows to calibrate int8" in capsys.readouterr().err


def test_bundled_model_uses_its_shipped_int8_graph(tiny_run, tmp_path, monkeypatch, calib):
    import ferkit.onnx_export
    import ferkit.predict as fp

    ckpt = shutil.copy(tiny_run / "best.pt", tmp_path / "fer2013.pt")
    monkeypatch.setitem(fp.BUNDLED, "fer2013", tmp_path / "fer2013.pt")
    monkeypatch.setattr(fp, "DEFAULT_MODEL", "fer2013")
    shipped = fp.int8_file("fer2013")
    assert shipped == tmp_path / "fer2013.int8.onnx"
    export_onnx(load_checkpoint(ckpt), shipped, calibration=calib, meta={"checkpoint_sha256": sha256_of(ckpt)})
    monkeypatch.setattr(ferkit.onnx_export, "calibration_faces", lambda *a: pytest.fail("the shipped graph needs no calibration"))
    p = Predictor()  # the default path of a bundled model with its int8 graph shipped
    assert (p.backend, p.precision, p.path) == ("onnx", "int8", shipped)
    assert Predictor(backend="onnx", precision="int8").path == shipped
    assert Predictor(tta=False).backend == "torch"  # the graph's TTA is baked in: another choice runs on torch
    shutil.copy(tiny_run / "last.pt", ckpt)  # other weights: the shipped graph is stale
    with pytest.raises(FerkitError, match="exported from other weights.*re-export it with 'ferkit export"):
        Predictor("fer2013", backend="onnx", precision="int8")


def test_serve_reports_int8(tiny_checkpoint, tmp_path, calib):
    from fastapi.testclient import TestClient

    from ferkit.serve import create_app

    out = tmp_path / "m.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), out, calibration=calib)
    with TestClient(create_app(str(out), backend="onnx")) as c:
        model = c.get("/version").json()["model"]
        assert model["backend"] == "onnx" and model["precision"] == "int8"
        # what the training said of the weights travels in the file's metadata
        assert model["name"] == "tiny" and model["epochs"] == 3 and 0 <= model["val_acc"] <= 1 and model["file"] == "m.onnx"


def test_evaluate_an_onnx_file_as_users_run_it(tiny_checkpoint, tmp_path, capsys):
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("PublicTest",), n=28)
    fp32 = tmp_path / "m.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), fp32)
    assert main(["evaluate", str(tiny_checkpoint), "--data", str(csv), "--precision", "fp32", "--json", str(tmp_path / "pt.json")]) == 0
    assert main(["evaluate", str(fp32), "--data", str(csv)]) == 0
    assert "(fp32)" in capsys.readouterr().out
    pt, ox = (json.loads((tmp_path / f).read_text()) for f in ("pt.json", "metrics-val.json"))
    assert ox["n"] == pt["n"] == 28 and ox["confusion_matrix"] == pt["confusion_matrix"]
    assert main(["evaluate", str(fp32), "--data", str(csv), "--tta"]) == 2
    assert "an .onnx file has it built in" in capsys.readouterr().err
