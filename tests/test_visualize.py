"""Activation maps, filters, faces from photos/rows (visualize.py) and DeepDream (dream.py)."""

import re

import numpy as np
import pytest
import torch

from conftest import synthetic_faces, write_fer_csv
from ferkit.checkpoint import load_checkpoint
from ferkit.cli import main
from ferkit.data import load_fer
from ferkit.dream import DreamSettings, check_layer, deep_dream, layer_objective
from ferkit.errors import FerkitError, ImageError
from ferkit.visualize import (
    activation_maps,
    face_from_data,
    face_from_image,
    first_layer_filters,
    layer_names,
    sample_faces,
    save_face,
)


@pytest.fixture(scope="module")
def clf(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def face():
    return synthetic_faces(3)[0][2]


def test_activation_maps(clf, face):
    maps = activation_maps(clf, face)
    assert len(maps) == len(clf.model.features) == 2 == len(layer_names(clf.model))
    assert maps[0].shape == (8, 24, 24) and maps[1].shape == (16, 12, 12)  # tiny_spec: 8 then 16 filters, 2x2 pools
    with torch.no_grad():
        feats = clf.model.forward_features(clf.inputs(face[None])[0])[0].numpy()
    assert np.allclose(maps[-1], feats, atol=1e-6) and (maps[0] >= 0).all()  # after ReLU
    assert layer_names(clf.model)[0] == "conv1 8@3x3 pool2"


def test_a_backbone_s_layers_go_by_its_module_names():
    """(a ResNet's stem and layer1-4 were named conv1-conv5, though conv2 is a conv in each of its blocks and
    --layer 3 dreamed on layer2; --layer 6 said 'this model has conv layers 1..5' of a net of 20 convs)"""
    from ferkit.checkpoint import Classifier
    from ferkit.model import create_model

    resnet = Classifier(create_model("resnet18"), np.full((48, 48), 120, np.float32))
    assert layer_names(resnet.model) == ["conv1 (stem)", "layer1", "layer2", "layer3", "layer4"]
    assert [m.shape[0] for m in activation_maps(resnet, synthetic_faces(1)[0][0])] == [64, 64, 128, 256, 512]
    with pytest.raises(FerkitError, match=re.escape("--layer 6: this model has layers 1..5 (1 conv1, 2 layer1, 3 layer2, "
                                                    "4 layer3, 5 layer4); give one of those numbers")):
        check_layer(resnet, 6)
    mobilenet = create_model("mobilenet_v2")
    assert layer_names(mobilenet) == [f"features.{i}" for i in range(19)] and len(mobilenet.features) == 19


def test_a_layer_number_is_checked_alike_everywhere(clf, face):
    """(layer_objective(clf, face, '1') was a TypeError in check_layer, layer_name(model, 0) silently the last layer,
    layer_name(model, 99) an IndexError; DreamSettings(layer='2') was refused)"""
    from ferkit.visualize import layer_name

    out_of_range = "this model has layers 1..2 (1 conv1, 2 conv2); give one of those numbers"
    for fn in (lambda k: layer_name(clf.model, k), lambda k: layer_name(clf, k), lambda k: check_layer(clf, k),
               lambda k: layer_objective(clf, face[None], k), lambda k: deep_dream(clf, face, DreamSettings(layer=k))):
        for bad in ("1", 1.0, True):
            with pytest.raises(FerkitError, match=f"^{re.escape(f'--layer must be a whole number; got {bad!r}')}$"):
                fn(bad)
        for bad in (0, -1, 3, 99):
            with pytest.raises(FerkitError, match=f"^{re.escape(f'--layer {bad}: {out_of_range}')}$"):
                fn(bad)
    assert [layer_name(clf.model, k) for k in (1, np.int64(2))] == ["conv1", "conv2"]



def test_a_model_s_layer_names_are_built_once(clf, face, tiny_checkpoint, tmp_path, monkeypatch):
    """(layer_name built the model's names twice a call, its check once more, and visualize named each layer's
    activation maps by it: twice a layer)"""
    import ferkit.visualize

    built, names = [], ferkit.visualize.layer_names
    monkeypatch.setattr(ferkit.visualize, "layer_names", lambda model: built.append(1) or names(model))
    assert ferkit.visualize.layer_name(clf.model, 2) == "conv2" and len(built) == 1
    built.clear()
    img = save_face(face, tmp_path / "face.png")
    assert main(["visualize", str(tiny_checkpoint), "--image", str(img), "--out", str(tmp_path / "viz"), "--what",
                 "activations"]) == 0
    assert len(built) == 2  # the plot's names and the .npz's, whatever the number of layers
    with np.load(tmp_path / "viz" / "activations.npz") as z:
        assert list(z) == ["conv1", "conv2"]

def test_first_layer_filters(clf):
    w = first_layer_filters(clf.model)
    assert w.shape == (8, 1, 3, 3) and np.allclose(w, clf.model.features[0][0].weight.detach().numpy())


def test_the_layer_functions_take_a_classifier_as_activation_maps_does(clf):
    """(first_layer_filters(ferkit.load_model()) was "'Classifier' object has no attribute 'features'", as
    layer_names(clf) was for a ResNet; anything else says what they take)"""
    from ferkit.checkpoint import Classifier
    from ferkit.model import create_model

    assert np.array_equal(first_layer_filters(clf), first_layer_filters(clf.model))
    resnet = Classifier(create_model("resnet18"), np.full((48, 48), 120, np.float32))
    assert layer_names(resnet) == layer_names(resnet.model) and first_layer_filters(resnet).shape == (64, 1, 7, 7)
    for f in (first_layer_filters, layer_names):
        with pytest.raises(FerkitError, match=r"^model must be a Classifier \(ferkit.load_model\) or its network .*; got ndarray$"):
            f(np.zeros((8, 1, 3, 3)))


def test_dream_changes_face_and_raises_objective(clf, face):
    for objective in ("l2", "mean"):
        s = DreamSettings(layer=2, octaves=2, steps=5, objective=objective)
        dream = deep_dream(clf, face, s)
        assert dream.shape == (48, 48) and dream.dtype == np.uint8
        assert np.abs(dream.astype(int) - face).mean() > 1
        before, after = layer_objective(clf, np.stack([face, dream]), 2, objective)
        assert after > before * 1.1
        assert np.array_equal(dream, deep_dream(clf, face, s))  # same seed, same dream
    assert not clf.model.training and all(p.grad is None for p in clf.model.parameters())


def test_faces_not_the_models_input_are_named(clf, face):
    """activation_maps, deep_dream and layer_objective take the model's faces as predict_proba does: a face of
    another size was torch's 'The size of tensor a (64) must match ...', 0..1 floats were cast to a black face"""
    for bad, said in [(np.zeros((64, 64), np.uint8), "takes uint8 grey faces (N, 48, 48); got an array of shape (64, 64)"),
                      (np.zeros((48, 48, 3), np.uint8), "got an array of shape (48, 48, 3)"),
                      (face / 255.0, "takes uint8 faces (0..255); got float64 values")]:
        for fn, more in [(activation_maps, ()), (deep_dream, (DreamSettings(steps=1),)), (layer_objective, (1,))]:
            with pytest.raises(FerkitError, match=re.escape(said)):
                fn(clf, bad, *more)
    with pytest.raises(FerkitError, match="one face"):
        activation_maps(clf, np.stack([face, face]))
    with pytest.raises(FerkitError, match=re.escape("--layer 3: this model has layers 1..2 (1 conv1, 2 conv2)")):
        layer_objective(clf, face[None], 3)  # (was the last layer's objective)
    assert len(activation_maps(clf, face.ravel())) == 2  # a face as one row of pixels, as predict_proba takes it


def test_dream_settings_are_checked(clf, face):
    assert check_layer(clf, None) == 1
    with pytest.raises(FerkitError, match=re.escape("--layer 3: this model has layers 1..2 (1 conv1, 2 conv2); give one of "
                                                    "those numbers")):
        deep_dream(clf, face, DreamSettings(layer=3))
    with pytest.raises(FerkitError, match="octave-scale"):
        deep_dream(clf, face, DreamSettings(octave_scale=1.0))
    for bad in (dict(octave_scale=float("nan")), dict(step_size=float("nan")), dict(step_size=float("inf")), dict(jitter=10**20)):
        with pytest.raises(FerkitError, match="DeepDream settings: need"):  # NaN passed the comparisons; jitter overflowed torch
            deep_dream(clf, face, DreamSettings(**bad))
    assert np.array_equal(deep_dream(clf, face, DreamSettings(steps=0)), face)  # no steps: the face itself
    # (TypeErrors of range, torch.randint and a slice; layer=True dreamed on layer 1)
    for field, value in [("steps", 2.5), ("jitter", 1.5), ("layer", 2.0), ("layer", "2"), ("layer", True), ("octaves", "3")]:
        with pytest.raises(FerkitError, match=re.escape(f"--{field} must be a whole number; got {value!r}")):
            deep_dream(clf, face, DreamSettings(**{field: value}))
    with pytest.raises(FerkitError, match=re.escape("--step-size must be a number; got '0.1'")):
        deep_dream(clf, face, DreamSettings(step_size="0.1"))
    assert deep_dream(clf, face, DreamSettings(steps=np.int64(1), layer=np.int32(2), jitter=np.uint8(1))).shape == face.shape
    # --octave-scale at most the face's side (inf and 1e308 were taken, and dreamed one octave)
    for scale in (float("inf"), 1e308, 10**400, 49.0):
        with pytest.raises(FerkitError, match=r"^--octave-scale must be at most 48, the face's side in pixels .*; got "):
            deep_dream(clf, face, DreamSettings(octave_scale=scale))
    assert deep_dream(clf, face, DreamSettings(octave_scale=48, steps=1)).shape == face.shape
    # --steps at most config.MAX_STEPS, as sanity's (10**9 steps an octave were taken: years on a CPU)
    for steps, said in [(10_001, "--steps must be at most 10,000; got 10001"), (-1, "--steps must be >= 0; got -1")]:
        with pytest.raises(FerkitError, match=f"^{said}$"):
            deep_dream(clf, face, DreamSettings(steps=steps))

    # the seed with them (torch's "manual_seed expected a long" and OverflowError); numpy's ints are taken
    for seed, said in [("x", "seed must be a whole number; got 'x'"), (1.5, "seed must be a whole number; got 1.5"),
                       (None, "seed must be a whole number; got None"), (True, "seed must be a whole number; got True"),
                       (2**70, f"seed must be at most {2**63 - 1:,}; got {2**70}"), (-1, "seed must be >= 0; got -1")]:
        with pytest.raises(FerkitError, match=f"^{re.escape(said)}$"):
            deep_dream(clf, face, DreamSettings(seed=seed))
    assert np.array_equal(deep_dream(clf, face, DreamSettings(steps=1, seed=np.int64(3))),
                          deep_dream(clf, face, DreamSettings(steps=1, seed=3)))


def test_dream_octaves_stop_where_the_face_shrinks_no_more(clf, face):
    # 48 / 1.001 rounds to 48: 200 octaves of 48x48 dreamed the face 200 times over (and 10**8 filled the memory)
    once = deep_dream(clf, face, DreamSettings(octaves=1, steps=2))
    assert np.array_equal(deep_dream(clf, face, DreamSettings(octaves=200, octave_scale=1.001, steps=2)), once)


def test_face_from_image(tmp_path, face):
    # a 48x48 crop has no detectable face: the whole picture is used, unchanged
    got, how = face_from_image(save_face(face, tmp_path / "face.png"))
    assert np.array_equal(got, face) and "whole picture" in how
    big = np.zeros((60, 100, 3), np.uint8)
    big[:, 20:80] = 200
    from PIL import Image

    Image.fromarray(big).save(tmp_path / "wide.jpg")
    got, _ = face_from_image(tmp_path / "wide.jpg")
    assert got.shape == (48, 48) and got.min() > 150  # the centre square
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError):
        face_from_image(tmp_path / "notes.txt")


def test_a_video_for_visualize_is_told_to_save_a_frame(tmp_path, monkeypatch):
    """(`visualize --image clip.mp4` said "`ferkit predict` reads videos", no fix for visualize, which draws one face)"""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    with pytest.raises(ImageError, match=r"an MP4 video, not an image; visualize reads one face image: save a frame of it "
                                         rf"as an image \(e\.g\. `ffmpeg -i {re.escape(str(clip))} -frames:v 1 frame\.png`\)") as e:
        face_from_image(clip)
    assert "ferkit predict" not in str(e.value)
    monkeypatch.chdir(tmp_path)
    clip.rename("-my clip.mp4")  # quoted for the shell, and not taken by ffmpeg for an option
    with pytest.raises(ImageError, match=re.escape("`ffmpeg -i './-my clip.mp4' -frames:v 1 frame.png`")):
        face_from_image("-my clip.mp4")


def test_face_from_data(fer_csv):
    data = load_fer(fer_csv)
    f, label = face_from_data(data, "val", 3)
    assert np.array_equal(f, data.split("val")[0][3]) and label == 3
    with pytest.raises(FerkitError, match="rows 0..41"):
        face_from_data(data, "val", 42)
    faces, labels = sample_faces(data, "val", 4)
    assert faces.shape == (4, 48, 48) and list(labels) == [0, 1, 2, 3]


def test_cli_visualize_image(tiny_checkpoint, tmp_path, face, capsys):
    img = save_face(face, tmp_path / "face.png")
    out = tmp_path / "viz"
    assert main(["visualize", str(tiny_checkpoint), "--image", str(img), "--out", str(out), "--steps", "3", "--layer", "2"]) == 0
    text = capsys.readouterr().out
    assert "DeepDream from conv2 (--layer 2)" in text and "objective" in text
    for f in ("face.png", "activations.png", "activations.npz", "filters.png", "dream.png", "dream-face.png"):
        assert (out / f).stat().st_size > 100, f
    with np.load(out / "activations.npz") as z:
        assert z["conv1"].shape == (8, 24, 24) and z["conv2"].shape == (16, 12, 12)
    before = img.read_bytes()  # --out its own folder: face.png would replace it with its 48x48 crop
    assert main(["visualize", str(tiny_checkpoint), "--image", str(img), "--out", str(tmp_path), "--what", "filters"]) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path}: visualize writes face.png there, and that is --image "
                                       f"{img}; give another folder\n")
    assert img.read_bytes() == before


def test_cli_visualize_refuses_an_output_name_taken_by_a_folder(tiny_checkpoint, tmp_path, capsys):
    """(found when written: dream.png after the dream had run, face.png and the activations written)"""
    out = tmp_path / "viz"
    (out / "dream.png").mkdir(parents=True)
    assert main(["visualize", str(tiny_checkpoint), "--steps", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: --out {out}: its dream.png is a folder, and visualize writes dream.png there; move it "
                            "away or give another --out\n")
    assert "DeepDream" not in captured.out and sorted(p.name for p in out.iterdir()) == ["dream.png"]
    assert main(["visualize", str(tiny_checkpoint), "--what", "filters", "--out", str(out)]) == 0  # not written: no matter


def test_cli_visualize_says_a_dream_has_begun(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """(a large --steps ran for minutes with nothing on the screen: it looked like a hang)"""
    import ferkit.dream
    from ferkit.errors import FerkitError

    def stopped(*args, **kwargs):
        raise FerkitError("stopped")

    monkeypatch.setattr(ferkit.dream, "deep_dream", stopped)
    assert main(["visualize", str(tiny_checkpoint), "--what", "dream", "--steps", "10000", "--layer", "2", "--out", str(tmp_path)]) == 2
    assert "DeepDream from conv2 (--layer 2): up to 3 octaves x 10000 steps ..." in capsys.readouterr().out


def test_cli_visualize_row(tiny_checkpoint, tmp_path):
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=14)
    out = tmp_path / "viz"
    assert main(["visualize", str(tiny_checkpoint), "--row", "2", "--data", str(csv), "--what", "filters", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"face.png", "filters.png"}


def test_cli_visualize_row_without_data_reads_the_data_the_run_trained_on(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """(as evaluate does, and its --help said: it looked for $FERKIT_DATA or the shared FER2013 alone, and a run
    trained on other data, a FER+ run's say, was 'no FER2013 data found')"""
    monkeypatch.delenv("FERKIT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    out = tmp_path / "viz"
    assert main(["visualize", str(tiny_checkpoint), "--row", "2", "--what", "filters", "--out", str(out)]) == 0
    assert "val row 2 (label: " in capsys.readouterr().out and (out / "filters.png").exists()


def test_cli_visualize_never_writes_into_an_image_folder_it_reads_or_the_run_trained_on(tiny_run, tmp_path, capsys):
    """--out in an image-folder data set put face.png, filters.png ... among its faces: the next training read
    them as a class of their own (--out DATA/viz), as faces of a class (DATA/happy) or failed (DATA itself)."""
    import shutil

    from conftest import write_image_folder
    from ferkit.checkpoint import read_checkpoint, save_checkpoint

    data = write_image_folder(tmp_path / "faces")
    faces = sorted(data.rglob("*"))
    run = shutil.copytree(tiny_run, tmp_path / "run")  # one that trained on the folder: its own data, read or not
    best = read_checkpoint(run / "best.pt")
    best["config"]["data"] = str(data)
    save_checkpoint(best, run / "best.pt")
    for extra, out, how in [(["--row", "0", "--split", "all", "--data", str(data)], data / "viz", "lies inside"),
                            (["--row", "0", "--split", "all", "--data", str(data)], data, "is"),
                            ([], data / "happy", "lies inside")]:
        argv = ["visualize", str(tiny_run if extra else run), "--what", "filters", "--out", str(out), *extra]
        assert main(argv) == 2, argv
        assert f"error: --out {out}: {how} the data folder {data}, " in capsys.readouterr().err, argv
        assert sorted(data.rglob("*")) == faces, argv
    out = tmp_path / "viz"  # outside it, as ever
    assert main(["visualize", str(run), "--what", "filters", "--row", "0", "--split", "all", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"face.png", "filters.png"}


def test_cli_visualize_on_a_full_disk_leaves_no_empty_folder(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """(as plot's: face.png's write made --out, and a full disk left it empty)"""
    import errno

    from ferkit import files

    def full(path, data):
        with files.atomic_file(path):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "atomic_write", full)
    out = tmp_path / "new" / "viz"
    assert main(["visualize", str(tiny_checkpoint), "--what", "filters", "--out", str(out)]) == 2
    assert f"error: {out / 'face.png'}: cannot write it (No space left on device)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_visualize_bad_inputs(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["visualize", str(tiny_checkpoint), "--image", str(tmp_path / "notes.txt"), "--out", str(tmp_path)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert main(["visualize", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    out = tmp_path / "viz"  # bad DeepDream settings fail before face.png is written
    assert main(["visualize", str(tiny_checkpoint), "--what", "dream", "--layer", "9", "--out", str(out)]) == 2
    assert "--layer 9" in capsys.readouterr().err
    assert main(["visualize", str(tiny_checkpoint), "--octaves", "0", "--out", str(out)]) == 2
    assert "--octaves >= 1" in capsys.readouterr().err
    assert main(["visualize", str(tiny_checkpoint), "--octave-scale", "inf", "--out", str(out)]) == 2
    assert "--octave-scale must be at most 48" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
