"""int8 ONNX (onnxruntime static quantization) and the precision of each backend, on a tiny model."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from conftest import SHARED, synthetic_faces, write_fer_csv
from ferkit.checkpoint import load_checkpoint
from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.files import sha256_of
from ferkit.onnx_export import export_onnx
from ferkit.predict import Predictor
from ferkit.preprocess import probabilities, to_tensor
from ferkit.runtime import onnx_session


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
    assert len(int8_weights) == 1  # the second conv; the first, with its ReLU and pool, is the fp32 stem
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
    assert Predictor(out, precision="int8").backend == "onnx"  # a precision alone kept an .onnx file on torch (refused)
    with pytest.raises(FerkitError, match=r"'int8' with the torch backend.*--backend onnx"):
        Predictor(tiny_checkpoint, precision="int8")
    assert Predictor("ferplus", precision="int8").backend == "onnx"  # a bundled model's shipped graph (was refused)
    # --device names a GPU: the onnx backend exports its graph from the checkpoint on the CPU (it was loaded on the GPU)
    assert Predictor(tiny_checkpoint, backend="onnx", device="cuda").backend == "onnx"
    with pytest.raises(FerkitError, match=r"'bf16' with the onnx backend.*--backend torch"):
        Predictor(tiny_checkpoint, backend="onnx", precision="bf16")
    with pytest.raises(FerkitError, match="int8 needs FER2013 training faces.*--data FILE"):
        Predictor(tiny_checkpoint, backend="onnx", precision="int8", calibration=tmp_path / "missing.csv")


def test_int8_calibrates_on_the_runs_data_and_without_data_names_the_variable(tiny_checkpoint, tmp_path, monkeypatch):
    """ferkit predict and serve have no --data: the default data's "pass --data" sent users to a flag they lack."""
    import ferkit.runs

    monkeypatch.delenv("FERKIT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    # the run's own training data, where they still are, as `ferkit export --int8` reads them
    assert Predictor(tiny_checkpoint, backend="onnx", precision="int8").precision == "int8"
    monkeypatch.setattr(ferkit.runs, "trained_on", lambda config: None)  # they moved
    with pytest.raises(FerkitError, match="none found; set FERKIT_DATA=PATH") as e:
        Predictor(tiny_checkpoint, backend="onnx", precision="int8")
    assert "pass --data" not in str(e.value)


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


def test_a_temporary_folder_without_room_for_int8_is_named(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """int8 quantization writes copies of the graph to the temporary folder: where it had too little room,
    onnxruntime's shape inference wrote a cut-off copy and read it back (a protobuf DecodeError traceback), and
    a failed write of ours was said of the --onnx file, whose folder had room."""
    import errno
    import tempfile

    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    out = tmp_path / "m.onnx"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'tmp'}: 0.1 MB free for the int8 quantization's temporary files, which need "
                          "about ") and err.endswith("; free some space there, or set TMPDIR to a folder with room, and run again\n")
    monkeypatch.setattr(shutil, "disk_usage", real)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full)
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(csv)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'tmp'}: cannot write the int8 quantization's temporary files there "
                                       "(No space left on device); free some space there, or set TMPDIR to another folder, "
                                       "and run again\n")
    assert not out.exists() and not list((tmp_path / "tmp").iterdir())


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
    assert "no training faces to calibrate int8" in capsys.readouterr().err
    # a folder of a few faces a class, not what the model trained on: all calibrate (drawing a split it does not need
    # failed, naming --val-fraction, which export has not)
    from PIL import Image

    for i, cls in enumerate(("happy", "happy", "sad", "sad", "angry")):
        (tmp_path / "few" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).save(tmp_path / "few" / cls / f"{i}.png")
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(tmp_path / "few")]) == 0
    assert "int8, calibrated on 5 training faces" in (printed := capsys.readouterr().out) and "on 5 training faces: max" in printed


def test_export_int8_skips_bad_rows_as_its_message_says(tiny_checkpoint, tmp_path, capsys):
    """A bad row of the calibration data said 'pass --skip-bad-rows', which export had not: a run trained with it
    on data with a bad image could not be exported to int8 ('unrecognized arguments: --skip-bad-rows')."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    with open(csv, "a") as f:
        f.write("3,1 2 3,Training\n")  # 3 pixels, not 48x48
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(csv)]) == 2
    assert "--skip-bad-rows" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(csv), "--skip-bad-rows"]) == 0
    assert "int8, calibrated on 21 training faces" in capsys.readouterr().out
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--skip-bad-rows"]) == 2  # no calibration to skip in
    assert "--skip-bad-rows is for the faces that calibrate --int8" in capsys.readouterr().err
    assert main(["export", str(tiny_checkpoint), "--pt", str(tmp_path / "m.pt"), "--skip-bad-rows"]) == 2
    assert "--skip-bad-rows and --tta are for --onnx" in capsys.readouterr().err


def test_predict_int8_on_bad_rows_points_to_export_not_a_flag_it_lacks(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """predict and serve calibrating int8 on data with a bad row said 'pass --skip-bad-rows', a flag they do not
    have: the way is an int8 graph made by export, which has it, given as the model."""
    import ferkit.runs
    from ferkit.predict import DEMO_PHOTO

    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    with open(csv, "a") as f:
        f.write("3,1 2 3,Training\n")  # 3 pixels, not 48x48
    monkeypatch.setattr(ferkit.runs, "trained_on", lambda config: str(csv))  # the data the run trained on
    args = ["--model", str(tiny_checkpoint), "--backend", "onnx", "--precision", "int8"]
    assert main(["predict", str(DEMO_PHOTO), *args]) == 2
    err = capsys.readouterr().err
    assert "line 65: field 'pixels' has 3 values" in err and "Fix or delete the row. Or export the int8 graph once with " \
        "'ferkit export CHECKPOINT --onnx OUT.onnx --int8 --skip-bad-rows' and run OUT.onnx (--model OUT.onnx)" in err, err
    assert "pass --skip-bad-rows" not in err
    out = tmp_path / "m.onnx"  # the way it gives works
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--skip-bad-rows"]) == 0
    assert main(["predict", str(DEMO_PHOTO), "--model", str(out), "--json", str(tmp_path / "r.json")]) == 0
    with pytest.raises(FerkitError, match=r"--int8 --data FILE --skip-bad-rows'"):  # data given: export needs them too
        Predictor(tiny_checkpoint, backend="onnx", precision="int8", calibration=csv)


def test_int8_calibration_skips_the_bad_rows_its_run_skipped(tiny_checkpoint, tmp_path, monkeypatch):
    """A run trained with --skip-bad-rows: its own data, read again to calibrate int8, stopped at the bad row
    training skipped (predict and serve have no such flag; export needed it given again)."""
    import torch

    import ferkit.runs
    from ferkit.predict import DEMO_PHOTO

    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    with open(csv, "a") as f:
        f.write("3,1 2 3,Training\n")  # 3 pixels, not 48x48
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["config"] = {**ckpt["config"], "skip_bad_rows": True}
    skipped = tmp_path / "skipped.pt"
    torch.save(ckpt, skipped)
    monkeypatch.setattr(ferkit.runs, "trained_on", lambda config: str(csv))  # the data the run trained on
    assert Predictor(skipped, backend="onnx", precision="int8").predict(str(DEMO_PHOTO)) is not None
    assert main(["export", str(skipped), "--onnx", str(tmp_path / "m.onnx"), "--int8"]) == 0
    # its own data given by path: skipped as export skips them for --data (predict stopped at the bad row)
    assert Predictor(skipped, backend="onnx", precision="int8", calibration=str(csv)).predict(str(DEMO_PHOTO)) is not None
    assert main(["export", str(skipped), "--onnx", str(tmp_path / "m.onnx"), "--int8", "--data", str(csv)]) == 0
    with pytest.raises(FerkitError, match="line 65"):  # a run that did not skip them: as before
        Predictor(tiny_checkpoint, backend="onnx", precision="int8")


def test_bundled_model_uses_its_shipped_int8_graph(tiny_run, tmp_path, monkeypatch, calib):
    import ferkit.onnx_export
    import ferkit.predict as fp

    ckpt = shutil.copy(tiny_run / "best.pt", tmp_path / "fer2013-fast.pt")
    monkeypatch.setitem(fp.BUNDLED, "fer2013-fast", tmp_path / "fer2013-fast.pt")
    monkeypatch.setattr(fp, "DEFAULT_MODEL", "fer2013-fast")
    shipped = fp.int8_file("fer2013-fast")
    assert shipped == tmp_path / "fer2013-fast.int8.onnx"
    clf = load_checkpoint(ckpt)
    clf.tta = True  # as the bundled models were trained; the shipped graph leaves the mirror to the Predictor
    export_onnx(clf, shipped, tta=False, calibration=calib, meta={"checkpoint_sha256": sha256_of(ckpt)})
    monkeypatch.setattr(ferkit.onnx_export, "calibration_faces", lambda *a: pytest.fail("the shipped graph needs no calibration"))
    p = Predictor()  # the default path of a bundled model with its int8 graph shipped (the mirror: its gain >= 0.2)
    assert (p.backend, p.precision, p.path, p.tta) == ("onnx", "int8", shipped, True)
    assert Predictor(backend="onnx", precision="int8").path == shipped
    off = Predictor(tta=False)  # the same graph without the mirror: no torch, no second file
    assert (off.backend, off.path, off.tta) == ("onnx", shipped, False)
    faces = calib[:8]
    mirrored = (off.predict_faces(faces) + off.predict_faces(faces[:, :, ::-1])) / 2
    np.testing.assert_allclose(p.predict_faces(faces), mirrored, atol=1e-6)
    assert np.abs(p.predict_faces(faces) - clf.predict_proba(faces, tta=True)).max() < 0.02
    shutil.copy(tiny_run / "last.pt", ckpt)  # other weights: the shipped graph is stale
    with pytest.raises(FerkitError, match="exported from other weights.*re-export it with 'ferkit export"):
        Predictor("fer2013-fast", backend="onnx", precision="int8")


def test_on_zen_the_default_runs_its_shipped_fp32_graph(monkeypatch, calib):
    """AVX2 on 128-bit units (cpu.narrow_avx2): the default model's fp32 graph, the checkpoint's own numbers,
    with no export at load (no torch); elsewhere, and for a model without one, the int8 graph."""
    import ferkit.onnx_export
    import ferkit.predict as fp
    from ferkit.cpu import parse_cpuinfo

    zen = parse_cpuinfo("vendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\nflags\t\t: avx2 fma\n")
    rome = parse_cpuinfo("vendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\nflags\t\t: avx2 fma\n")
    assert fp.default_path("ferplus-fast", cpu=zen) == ("onnx", "fp32") == fp.NARROW_PATH
    assert fp.default_path("fer2013-fast", cpu=zen) == fp.NARROW_PATH
    assert fp.default_path("ferplus-fast", cpu=rome) == fp.default_path("fer2013", cpu=zen) == fp.DEFAULT_PATH
    assert "onnx fp32" in fp.describe_default(zen) and "onnx int8" in fp.describe_default(rome)
    monkeypatch.setattr(ferkit.onnx_export, "session_from_classifier", lambda *a: pytest.fail("the graph ships: no export"))
    p = Predictor("ferplus-fast", backend="onnx", precision="fp32")
    assert (p.path, p.precision, p.tta) == (fp.shipped_graph("ferplus-fast", "fp32"), "fp32", False)
    clf = load_checkpoint(fp.BUNDLED["ferplus-fast"], precision="fp32")
    np.testing.assert_allclose(p.predict_faces(calib[:16]), clf.predict_proba(calib[:16], tta=False), atol=1e-5)


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
    pt, ox = (json.loads((tmp_path / f).read_text()) for f in ("pt.json", "metrics-m.onnx-val.json"))
    assert ox["n"] == pt["n"] == 28 and ox["confusion_matrix"] == pt["confusion_matrix"]
    # a graph without the mirror inside gets it from the Predictor: scored as the checkpoint with --tta
    assert main(["evaluate", str(tiny_checkpoint), "--data", str(csv), "--precision", "fp32", "--tta", "--json", str(tmp_path / "pt-tta.json")]) == 0
    assert main(["evaluate", str(fp32), "--data", str(csv), "--tta", "--json", str(tmp_path / "ox-tta.json")]) == 0
    pt, ox = (json.loads((tmp_path / f).read_text()) for f in ("pt-tta.json", "ox-tta.json"))
    assert ox["confusion_matrix"] == pt["confusion_matrix"]
    inside = tmp_path / "inside.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), inside, tta=True)
    assert main(["evaluate", str(inside), "--data", str(csv), "--no-tta"]) == 2
    assert "has TTA built in at export" in capsys.readouterr().err


# ---------------------------------------------------------------- int8 that is right on every x86 CPU


def test_exported_int8_weights_cannot_saturate_and_full_range_ones_are_caught(tiny_checkpoint, tmp_path, calib):
    from onnx import numpy_helper

    from ferkit.onnx_export import SAFE_INT8, int8_problems

    out = tmp_path / "int8.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), out, calibration=calib)
    graph = onnx.load(out)
    weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and max(np.abs(numpy_helper.to_array(t).astype(int)).max() for t in weights) == SAFE_INT8
    assert int8_problems(graph) == []
    # the same graph with one weight at full int8 range, as onnxruntime writes it without reduce_range
    w = max(weights, key=lambda t: np.prod(t.dims))  # a conv's weights, not a zero point
    w.CopyFrom(numpy_helper.from_array(np.clip(numpy_helper.to_array(w).astype(int) * 2, -127, 127).astype(np.int8), w.name))
    assert len(int8_problems(graph)) == 1 and w.name in int8_problems(graph)[0]


def test_int8_stem_stays_fp32_and_its_pool_runs_before_the_quantize(tiny_checkpoint, tmp_path, calib, monkeypatch):
    """The first conv, its ReLU and the max-pool after them stay fp32 in an int8 graph, and the session
    keeps the Quantize after the pool (otherwise onnxruntime converts the conv's full-size output
    for a uint8 pool: slower on every CPU; docs/speed.md)."""
    import onnxruntime as ort

    from ferkit.onnx_export import fp32_stem

    out = tmp_path / "int8.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), out, calibration=calib)
    graph = onnx.load(out)
    stem = next(n for n in graph.graph.node if n.op_type == "Conv")
    assert {t.name: t for t in graph.graph.initializer}[stem.input[1]].data_type == onnx.TensorProto.FLOAT
    optimized, make_options = tmp_path / "optimized.onnx", ort.SessionOptions

    def options():  # the graph onnxruntime runs, as onnx_session opens it
        opts = make_options()
        opts.optimized_model_filepath = str(optimized)
        return opts

    monkeypatch.setattr(ort, "SessionOptions", options)
    onnx_session(out)
    ops = [n.op_type for n in onnx.load(optimized).graph.node]
    assert ops.index("MaxPool") < ops.index("QuantizeLinear"), ops
    # no stem where the first conv's output is not pooled: converting it whole would cost what the stem saves
    relu_conv = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["x", "w"], ["c"], name="c1"), onnx.helper.make_node("Relu", ["c"], ["r"], name="r1"),
         onnx.helper.make_node("Conv", ["r", "w2"], ["y"], name="c2")], "g", [], [])
    assert fp32_stem(onnx.helper.make_model(relu_conv)) == []


def _bundled_with_int8():
    from ferkit.predict import BUNDLED, int8_file

    return [n for n in BUNDLED if int8_file(n).exists()]


@pytest.mark.parametrize("name", _bundled_with_int8())
def test_shipped_int8_graphs_cannot_saturate_on_any_cpu(name):
    """onnxruntime's uint8 x int8 kernels saturate on CPUs without VNNI (AVX2) when weights use the
    full int8 range: whatever CPU runs this test, the shipped files must hold 7-bit weights only."""
    from ferkit.onnx_export import int8_problems
    from ferkit.predict import int8_file

    graph = onnx.load(int8_file(name))
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in graph.graph.initializer) >= 4  # an int8 graph indeed
    assert int8_problems(graph) == []


PARITY_FACES = 600


@pytest.fixture(scope="module")
def public_test_faces():
    """The first PARITY_FACES PublicTest faces of the shared FER2013 file with their FER2013 labels
    and their FER+ majority emotions (the vote file is aligned by row)."""
    import gzip

    from ferkit import ferplus

    if not SHARED.exists():
        pytest.skip(f"the shared FER2013 file is not at {SHARED}")
    splits, rows, faces, labels = [], [], [], []
    with gzip.open(SHARED, "rt") as f:
        next(f)
        for i, line in enumerate(f):
            public = line.rstrip().endswith(",PublicTest")
            splits.append(int(public))  # this file holds Training (0) and PublicTest (1) rows only
            if public and len(faces) < PARITY_FACES:
                emotion, pixels, _ = line.split(",")
                faces.append(np.array(pixels.split(), np.uint8).reshape(48, 48))
                labels.append(int(emotion))
                rows.append(i)
    votes = ferplus.read_votes(SHARED.parent / "fer2013new.csv", np.array(splits, np.int8))
    return np.stack(faces), np.array(labels), ferplus.majority_labels(votes[rows])


@pytest.mark.parametrize("name", _bundled_with_int8())
def test_shipped_int8_graph_agrees_with_its_float_checkpoint(name, public_test_faces):
    """On 600 real PublicTest faces, the int8 graph as users run it names the same emotion as the float
    checkpoint (fp32) for nearly every face, and scores within a point of it."""
    from ferkit.labels import FERPLUS
    from ferkit.predict import BUNDLED

    faces, fer2013, fer_plus = public_test_faces
    clf = load_checkpoint(BUNDLED[name], precision="fp32")
    int8 = Predictor(name, backend="onnx", precision="int8", tta=clf.tta).predict_faces(faces).argmax(1)  # the mirror as trained
    fp32 = clf.predict_proba(faces).argmax(1)
    y = fer_plus if tuple(clf.labels) == FERPLUS else fer2013
    scored = y >= 0
    assert (int8 == fp32).mean() >= 0.97
    assert abs((int8 == y)[scored].mean() - (fp32 == y)[scored].mean()) <= 0.01


def test_the_mirror_is_left_out_where_it_buys_little():
    from ferkit.cpu import CpuInfo
    from ferkit.predict import BUNDLED, TTA_GAIN, default_tta, describe_default

    off, why = default_tta(True, 0.1)
    assert not off and "+0.10 points, under 0.2" in why
    assert default_tta(True, 0.3)[0] and default_tta(True, None)[0]  # worth it, or not measured
    assert not default_tta(False, None)[0]  # never for a model trained without it
    assert set(TTA_GAIN) == set(BUNDLED)  # every bundled model's gain is measured
    avx2 = CpuInfo("AMD EPYC 7B13", frozenset({"avx2", "fma"}))
    assert "AMD EPYC 7B13" in describe_default(avx2) and "no int8 dot products" in describe_default(avx2)


def test_calibration_reads_other_data_than_the_runs_own_with_no_split_drawn(tiny_checkpoint, tmp_path):
    """export --int8 and predict's int8 share this rule (onnx_export.calibration_reading): the run's own data (none
    given, or their path) are read with the split it drew, other data with none drawn, every image calibrating."""
    from ferkit.data import NO_SPLIT
    from ferkit.onnx_export import calibration_reading

    clf = load_checkpoint(tiny_checkpoint)
    config = clf.meta["config"]
    own = calibration_reading(clf.spec, config, None)
    assert calibration_reading(clf.spec, config, config["data"]) == own and own["val_fraction"] != 0
    other = write_fer_csv(tmp_path / "other.csv", n=14)
    assert calibration_reading(clf.spec, config, str(other)) == {**own, **NO_SPLIT}
