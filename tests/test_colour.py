"""Colour and larger-input models through export, prediction and serving (issue #25): a tiny RGB
model with in_size 64 and random weights, saved as a ferkit checkpoint."""

import csv
import json
import logging
import time

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from conftest import write_fer_csv
from ferkit.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from ferkit.cli import main
from ferkit.config import ConvSpec, FCSpec, ModelSpec
from ferkit.errors import FerkitError
from ferkit.faces import crop_face, find_faces, to_grey, whole_face
from ferkit.labels import FER2013
from ferkit.model import create_model
from ferkit.onnx_export import calibration_faces, export_onnx
from ferkit.predict import DEMO_PHOTO, Predictor
from ferkit.runtime import onnx_input, onnx_session

SIZE = 64


@pytest.fixture(scope="module")
def rgb_checkpoint(tmp_path_factory):
    """A colour model (3 channels, 64x64) with random weights and a colour mean image."""
    torch.manual_seed(0)
    spec = ModelSpec(convs=[ConvSpec(8, 3, pool=2), ConvSpec(16, 3, pool=2)], fcs=[FCSpec(32, batch_norm=True)],
                     in_size=SIZE, channels=3, num_classes=len(FER2013))
    model = create_model(spec)
    with torch.no_grad():  # BatchNorm statistics of a trained model, so that the outputs differ between faces
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_var.fill_(0.05)
    mean = np.random.default_rng(0).uniform(60, 180, (SIZE, SIZE, 3)).astype(np.float32)
    # left-right symmetric, as a real mean face nearly is: torch's TTA mirrors the mean-subtracted face,
    # the Predictor mirrors the face before the graph subtracts the mean; with this mean they agree
    mean = torch.from_numpy((mean + mean[:, ::-1]) / 2)
    path = tmp_path_factory.mktemp("rgb") / "rgb.pt"
    save_checkpoint({"spec": spec.to_dict(), "state_dict": model.state_dict(), "mean": mean, "labels": list(FER2013),
                     "epoch": 1, "config": {"model": "rgb", "epochs": 1}}, path)
    return path


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """An image-folder data set in colour: reddish training faces, bluish test faces (other sizes than 64)."""
    root = tmp_path_factory.mktemp("rgbdata")
    rng = np.random.default_rng(1)
    for split, channel in (("train", 0), ("test", 2)):
        for emotion in ("happy", "sad"):
            (root / split / emotion).mkdir(parents=True)
            for i in range(5):
                img = rng.integers(0, 60, (90, 80, 3), dtype=np.uint8)
                img[:, :, channel] = 230
                Image.fromarray(img).save(root / split / emotion / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def astronaut():
    from ferkit.faces import load_image

    return load_image(DEMO_PHOTO)


def colour_faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_checkpoint_holds_a_colour_mean_image(rgb_checkpoint, tmp_path):
    clf = load_checkpoint(rgb_checkpoint)
    assert clf.face_shape == (SIZE, SIZE, 3)
    ck = read_checkpoint(rgb_checkpoint)
    ck["mean"] = torch.zeros(SIZE, SIZE)  # a grey mean image for a colour model
    save_checkpoint(ck, tmp_path / "bad.pt")
    with pytest.raises(FerkitError, match=r"'mean' must be a 64x64x3 image; got \(64, 64\)"):
        read_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize("tta", [False, True])
def test_fp32_graph_takes_colour_faces_and_agrees_with_torch(rgb_checkpoint, tmp_path, tta):
    clf = load_checkpoint(rgb_checkpoint)
    out = tmp_path / "rgb.onnx"
    export_onnx(clf, out, tta=tta)
    inp = onnx.load(out).graph.input[0]
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", SIZE, SIZE, 3] and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    session = onnx_session(out)
    assert onnx_input(session) == (SIZE, 3)
    meta = session.get_modelmeta().custom_metadata_map
    assert (meta["in_size"], meta["channels"]) == ("64", "3")
    faces = colour_faces(9)
    want = clf.predict_proba(faces, tta=tta)
    got = session.run(None, {"faces": faces})[0]
    assert got.shape == (9, 7) and np.abs(got - want).max() < 1e-5
    assert np.abs(want - want.mean(0)).max() > 1e-3  # the faces get different answers: the check means something
    # the Predictor mirrors colour faces along their width, as the graph does inside
    if not tta:
        p = Predictor(out)
        p.mirror = True
        assert np.abs(p.predict_faces(faces) - clf.predict_proba(faces, tta=True)).max() < 1e-5


def test_int8_graph_calibrated_on_a_colour_folder(rgb_checkpoint, colour_folder, tmp_path):
    clf = load_checkpoint(rgb_checkpoint)
    calib = calibration_faces(colour_folder, size=SIZE, channels=3)
    # the training split only (reddish), each image's centre square at the model's size, in colour
    assert calib.shape == (10, SIZE, SIZE, 3)
    assert (calib[..., 0].mean((1, 2)) > calib[..., 2].mean((1, 2)) + 100).all()
    out = tmp_path / "rgb8.onnx"
    export_onnx(clf, out, calibration=calib)
    graph = onnx.load(out)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.graph.node}
    session = onnx_session(out)
    assert onnx_input(session) == (SIZE, 3)
    faces = np.concatenate([calib, colour_faces(6)])
    got, want = session.run(None, {"faces": faces})[0], clf.predict_proba(faces)
    assert np.abs(got - want).max() < 0.03  # int8 rounding, not another model
    with pytest.raises(FerkitError, match=r"calibration faces of shape \(48, 48\) for a model that takes \(64, 64, 3\)"):
        export_onnx(clf, tmp_path / "x.onnx", calibration=np.zeros((4, 48, 48), np.uint8))


def test_calibration_from_fer2013_grey_faces(tmp_path, caplog):
    fer = write_fer_csv(tmp_path / "fer.csv", n=14)
    grey = calibration_faces(fer)
    assert grey.shape == (14, 48, 48)  # 48x48 grey: FER2013's faces as they are
    with caplog.at_level(logging.WARNING, "ferkit"):
        faces = calibration_faces(fer, size=SIZE, channels=3)
    assert faces.shape == (14, SIZE, SIZE, 3) and (faces[..., 0] == faces[..., 2]).all()
    assert np.abs(faces[..., 0].astype(int) - np.stack([whole_face(g, SIZE) for g in grey])).max() == 0
    assert "grey faces" in caplog.text and "--data FOLDER" in caplog.text
    assert "int8 ranges from 14 training face(s) of" in caplog.text  # too few for ranges to trust: said
    caplog.clear()
    with caplog.at_level(logging.WARNING, "ferkit"):
        assert calibration_faces(fer, n=10).shape == (10, 48, 48)  # as many as asked for: nothing to say
    assert caplog.text == ""
    assert calibration_faces(fer, size=SIZE).shape == (14, SIZE, SIZE)  # a larger grey model
    with pytest.raises(FerkitError, match="the folder holds no images"):
        (tmp_path / "empty").mkdir()
        calibration_faces(tmp_path / "empty", size=SIZE, channels=3)


def test_colour_crops_keep_colour_and_framing(astronaut):
    (grey,) = find_faces(astronaut)
    (colour,) = find_faces(astronaut, size=SIZE, channels=3)
    assert grey.face.shape == (48, 48) and colour.face.shape == (SIZE, SIZE, 3)
    assert grey.box == colour.box and grey.angle == colour.angle
    # the colour crop is each channel cropped alike: framed as the grey one, colour kept
    for c in range(3):
        assert (crop_face(astronaut[:, :, c], (100, 50, 200, 160), size=SIZE, angle=10)
                == crop_face(astronaut, (100, 50, 200, 160), size=SIZE, angle=10)[:, :, c]).all()
    assert np.abs(colour.face[..., 0].astype(int) - colour.face[..., 2]).mean() > 10  # not grey
    big = find_faces(astronaut, size=SIZE)[0].face  # a larger grey model
    assert big.shape == (SIZE, SIZE) and np.abs(big.astype(int) - to_grey(colour.face)).max() <= 2
    assert whole_face(astronaut, SIZE, 3).shape == (SIZE, SIZE, 3)
    assert whole_face(astronaut[:, :, 0], SIZE, 3).shape == (SIZE, SIZE, 3)  # a grey photo for a colour model


def test_predictor_feeds_the_model_its_own_faces(rgb_checkpoint, astronaut, tmp_path, monkeypatch):
    clf = load_checkpoint(rgb_checkpoint)
    onnx_file = tmp_path / "rgb.onnx"
    export_onnx(clf, onnx_file)
    for model in (rgb_checkpoint, onnx_file):
        p = Predictor(model, precision="fp32" if model == rgb_checkpoint else None)
        assert p.face_shape == (SIZE, SIZE, 3)
        seen = []
        real = p.predict_faces
        monkeypatch.setattr(p, "predict_faces", lambda faces, real=real, seen=seen: seen.append(np.array(faces)) or real(faces))
        (r,) = p.predict(astronaut)
        assert (seen[0] == find_faces(astronaut, size=SIZE, channels=3)[0].face[None]).all()
        (c,) = p.predict(astronaut, crops=True)
        assert (seen[1] == whole_face(astronaut, SIZE, 3)[None]).all() and c["box"] == [0, 0, 512, 512]
        assert p.predict(np.full((100, 100, 3), 255, np.uint8)) == []
        if model == rgb_checkpoint:
            want = r
    assert r["box"] == want["box"] and np.allclose(list(r["probs"].values()), list(want["probs"].values()), atol=1e-5)


def test_faces_of_another_shape_are_refused(rgb_checkpoint):
    p = Predictor(rgb_checkpoint)
    with pytest.raises(FerkitError, match=r"takes uint8 colour faces \(N, 64, 64, 3\); got an array of shape \(16, 48, 48\)"):
        p.predict_faces(np.zeros((16, 48, 48), np.uint8))  # as many pixels as 3 colour faces: never regrouped
    assert p.predict_faces(colour_faces(2).reshape(2, -1)).shape == (2, 7)  # rows of flattened faces still go
    with pytest.raises(FerkitError, match=r"takes uint8 colour faces \(N, 64, 64, 3\)"):
        p.classifier.predict_proba(np.zeros((16, 48, 48), np.uint8))  # the Classifier too (evaluation, export's checks)
    # values a uint8 cast would change (0..1 floats went black, 300 wrapped to 44): refused; integers in range are taken
    for faces, got in [(np.random.default_rng(0).random((2, 64, 64, 3)), "got float64 values from 3.25754e-05 to 0.999997;"), (np.full((2, 64, 64, 3), 300),
                       "got int64 values from 300 to 300"), ([["a"]], "got <U1 values;"), (None, "got object values;")]:
        with pytest.raises(FerkitError, match=r"takes uint8 faces \(0\.\.255\); " + got):
            p.predict_faces(faces)
    assert np.allclose(p.predict_faces(colour_faces(2).astype(np.int64)), p.predict_faces(colour_faces(2)))


def test_cli_export_and_predict_with_a_colour_model(rgb_checkpoint, colour_folder, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(DEMO_PHOTO).save(photos / "astronaut.png")
    Image.open(DEMO_PHOTO).crop((150, 40, 300, 200)).save(photos / "crop.jpg")
    fp32, int8 = tmp_path / "rgb-fp32.onnx", tmp_path / "rgb-int8.onnx"
    assert main(["export", str(rgb_checkpoint), "--onnx", str(fp32)]) == 0
    out = capsys.readouterr().out
    assert "faces in: uint8 (N, 64, 64, 3)" in out and float(out.rsplit("max |diff| ", 1)[1]) < 1e-5
    assert main(["export", str(rgb_checkpoint), "--onnx", str(int8), "--int8", "--data", str(colour_folder)]) == 0
    out = capsys.readouterr().out
    assert "int8, calibrated on 10 training faces" in out and float(out.rsplit("max |diff| ", 1)[1]) < 0.03
    assert main(["export", str(rgb_checkpoint), "--pt", str(tmp_path / "slim.pt"), "--half"]) == 0
    assert float(capsys.readouterr().out.rsplit("max |diff| of its probabilities on 16 random faces: ", 1)[1]) < 0.01

    results = {}
    for model in (rgb_checkpoint, fp32, int8):
        js, cs, ann = tmp_path / f"{model.stem}.json", tmp_path / f"{model.stem}.csv", tmp_path / f"ann-{model.stem}"
        fp32_torch = ["--precision", "fp32"] if model == rgb_checkpoint else []  # auto is bf16 on some CPUs
        assert main(["predict", str(photos), "--model", str(model), "--json", str(js), "--csv", str(cs),
                     "--annotate", str(ann), *fp32_torch]) == 0
        res = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(js.read_text())}
        assert len(res["astronaut.png"]["faces"]) == 1 and list(res["astronaut.png"]["faces"][0]["probs"]) == list(FER2013)
        assert len(list(csv.DictReader(cs.open()))) >= 2
        assert (ann / "photos" / "astronaut.png").exists()
        results[model.stem] = res["astronaut.png"]["faces"][0]
        assert main(["predict", str(photos / "crop.jpg"), "--crops", "--model", str(model)]) == 0
        assert "150x160, 1 face" in capsys.readouterr().out
    a, b, q = results["rgb"], results["rgb-fp32"], results["rgb-int8"]  # the checkpoint, its fp32 and int8 graphs
    assert a["box"] == b["box"] == q["box"]
    assert max(abs(a["probs"][e] - b["probs"][e]) for e in FER2013) < 1e-5
    assert max(abs(a["probs"][e] - q["probs"][e]) for e in FER2013) < 0.03
    # evaluate reads the data at the model's own input (64x64 colour) for its graph as for its checkpoint
    scores = []
    for model in (rgb_checkpoint, fp32):
        metrics = tmp_path / f"metrics-{model.stem}.json"
        assert main(["evaluate", str(model), "--data", str(colour_folder), "--split", "test", "--json", str(metrics),
                     "--precision", "fp32"]) == 0
        scores.append(json.loads(metrics.read_text())["confusion_matrix"])
    assert scores[0] == scores[1] and sum(map(sum, scores[0])) == 10


def test_serve_a_colour_onnx_model(rgb_checkpoint, tmp_path, astronaut):
    import io

    from fastapi.testclient import TestClient

    from ferkit.serve import create_app

    out = tmp_path / "rgb.onnx"
    export_onnx(load_checkpoint(rgb_checkpoint), out)
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "PNG")
    with TestClient(create_app(str(out))) as c:
        deadline = time.monotonic() + 120
        while c.get("/health").json()["status"] == "starting" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/health").json()["status"] == "ready"
        model = c.get("/version").json()["model"]
        assert model["backend"] == "onnx" and model["input"] == {"size": SIZE, "channels": 3}
        r = c.post("/predict", files={"file": ("a.png", buf.getvalue(), "image/png")}).json()
    want = Predictor(out).predict(astronaut)
    assert r["count"] == 1 and r["faces"][0]["box"] == want[0]["box"]
    assert abs(r["faces"][0]["score"] - want[0]["score"]) < 1e-6


def test_colour_onnx_predicts_without_torch(rgb_checkpoint, tmp_path):
    from test_light import imports_nothing_heavy

    out = tmp_path / "rgb.onnx"
    export_onnx(load_checkpoint(rgb_checkpoint), out)
    r = imports_nothing_heavy(f"from ferkit.cli import main\nfrom ferkit.predict import DEMO_PHOTO, Predictor\n"
                              f"p = Predictor({str(out)!r})\nprint(p.face_shape, len(p.predict(DEMO_PHOTO)))\n"
                              f"assert main(['predict', str(DEMO_PHOTO), '--model', {str(out)!r}, '--crops']) == 0\n"
                              f"from ferkit.serve import create_app\ncreate_app({str(out)!r})", tmp_path)
    assert r.stdout.splitlines()[0] == "(64, 64, 3) 1"
