"""One's own data sets: image folders and image lists in colour or grey at any size, their class names
and label sets (data-declared, known, mapped by name), drawn stratified splits, and colour or larger
models through train, evaluate, fine-tuning, distillation, sanity, visualize, report and torchrun."""

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import deep_folder, tiny_spec, write_fer_csv
from ferkit import augment, plots
from ferkit import data as fdata
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.cli import main
from ferkit.config import TrainConfig
from ferkit.data import FerData, load_fer
from ferkit.dream import DreamSettings
from ferkit.errors import ConfigError, DataError, FerkitError
from ferkit.faces import load_image, whole_face
from ferkit.labels import FER2013, class_ids, describe_mapping, for_emotions, label_set
from ferkit.report import build_report
from ferkit.train import fit, resolve_config, split_batches
from ferkit.visualize import activation_maps, demo_face, first_layer_filters

CLASSES = ("sad", "happy", "surprise")  # FER2013 names, out of its order: read in FER2013's (happy, sad, surprise)
COLOUR = {"sad": (40, 60, 200), "happy": (230, 200, 40), "surprise": (60, 200, 90)}  # a class's colour: learnable


def write_images(folder, cls: str, n: int, size=(20, 20), colour: bool = True, start: int = 0) -> list:
    """n PNGs of one class: its colour plus noise, a bright bar at a class-dependent row (grey: the bar only)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start + len(cls))
    k = sorted(COLOUR).index(cls) if cls in COLOUR else 0
    files = []
    for i in range(start, start + n):
        img = np.clip(np.array(COLOUR.get(cls, (128, 128, 128))) + rng.integers(-30, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        img[2 + 5 * k: 5 + 5 * k, 2:-2] = 255
        f = folder / f"{cls}_{i}.png"
        Image.fromarray(img if colour else img.mean(2).astype(np.uint8)).save(f)
        files.append(f)
    return files


def class_folder(root, n: int = 6, size=(20, 20), colour: bool = True, classes=CLASSES):
    for c in classes:
        write_images(root / c, c, n, size, colour)
    return root


def colour_spec(tmp_path, in_size: int = 32):
    f = tmp_path / f"colour{in_size}.json"
    f.write_text(json.dumps({**tiny_spec().to_dict(), "in_size": in_size, "channels": 3}))
    return f


SPLIT = ["--val-fraction", "0.2", "--test-fraction", "0.2"]  # 6 images a class: 4 val and 4 test faces of 18


# ---------------------------------------------------------------- readers


def test_a_class_folder_reads_in_colour_or_grey_at_the_models_size(tmp_path):
    root = class_folder(tmp_path / "faces", size=(20, 24))  # not square, not the model's size
    d = load_fer(root, size=32, channels=3, val_fraction=0.2, test_fraction=0.2)
    assert d.images.shape == (18, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.names == ("happy", "sad", "surprise")  # FER2013 names keep FER2013's order
    assert np.bincount(d.labels).tolist() == [6, 6, 6]
    happy = d.images[d.labels == 0]
    assert np.allclose(happy[:, 20:, :, :].reshape(-1, 3).mean(0), COLOUR["happy"], atol=8)  # RGB, in RGB order
    grey = load_fer(root, size=24, channels=1, val_fraction=0.2, test_fraction=0.2)
    assert grey.images.shape == (18, 24, 24)
    # each image as `ferkit predict --crops` sees a face crop: its centre square, grey as Pillow's 'L'
    # (ITU-R 601), resized; not the whole picture squeezed to a square
    f = sorted((root / "happy").glob("*.png"))[0]
    rgb = np.asarray(Image.open(f).convert("RGB"))
    i = [k for k in range(18) if grey.labels[k] == 0][0]
    assert np.array_equal(grey.images[i], whole_face(rgb, 24))
    top = (rgb.shape[0] - rgb.shape[1]) // 2  # 24 high, 20 wide: the middle 20 rows
    want = np.asarray(Image.fromarray(rgb[top : top + 20]).convert("L").resize((24, 24), Image.BILINEAR))
    assert np.abs(grey.images[i].astype(int) - want).max() <= 2


def test_a_class_folder_nested_deeper_than_pythons_stack_is_one_line(tmp_path):
    with deep_folder(tmp_path / "faces") as deep:  # rglob recursed once a level: a RecursionError
        (deep / "notes.txt").write_text("no image")
        with pytest.raises(DataError, match="the folder holds no images"):
            load_fer(tmp_path / "faces")


def test_what_a_class_folder_leaves_out_is_said(tmp_path, caplog, monkeypatch):
    root = class_folder(tmp_path / "faces", n=2, classes=("happy", "sad"))
    (root / "calm").mkdir()  # a class of photos ferkit does not read, and an empty one: no class, said
    (root / "calm" / "a.heic").write_bytes(b"x")
    (root / "contempt").mkdir()
    (root / "happy" / "Thumbs.db").write_bytes(b"x")  # Windows' litter, as dot-files: unsaid
    with caplog.at_level(logging.WARNING):
        assert load_fer(root, val_fraction=0, test_fraction=0).names == ("happy", "sad")
    assert "left out 2 folder(s) holding no image, so no class (calm, contempt); 1 file(s) that are not images " \
           "ferkit reads (.heic 1)" in caplog.text
    (tmp_path / "elsewhere").mkdir()
    (root / "surprise").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # was a class silently missing
    with pytest.raises(DataError, match=r"faces/surprise: a link to a folder, which ferkit does not follow"):
        load_fer(root, val_fraction=0, test_fraction=0)
    (root / "surprise").unlink()
    (root / "sad" / "gone.png").symlink_to(tmp_path / "nothing.png")
    with pytest.raises(DataError, match=r"sad/gone.png: a link to nothing"):
        load_fer(root, val_fraction=0, test_fraction=0)
    assert load_fer(root, val_fraction=0, test_fraction=0, skip_bad_rows=True).skipped == 1
    (root / "sad" / "gone.png").unlink()
    real = fdata.os.access  # a folder ferkit's user cannot read (as root, every folder is readable: the check is faked)
    monkeypatch.setattr(fdata.os, "access", lambda f, mode: Path(f).name != "sad" and real(f, mode))
    with pytest.raises(DataError, match=r"faces/sad: the folder cannot be read \(permission denied\)"):
        load_fer(root, val_fraction=0, test_fraction=0)


def test_an_image_deeper_than_split_and_class_folders_is_a_bad_entry(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val"):
        class_folder(root / split, n=2, classes=("happy", "sad"))
    write_images(root / "train" / "happy" / "sad", "sad", 2)  # was trained as 'sad', its innermost folder
    with pytest.raises(DataError, match=r"train/happy/sad/sad_0.png: is 3 folders deep; expected ROOT/<class>/<image> or "
                                        r"ROOT/<split>/<class>/<image>"):
        load_fer(root)
    assert load_fer(root, skip_bad_rows=True).counts() == {"train": 4, "val": 4, "test": 0}
    split_only = tmp_path / "split-only"  # images right in train/ and val/: was a class 'train' against a class 'val'
    write_images(split_only / "train", "happy", 2)
    write_images(split_only / "val", "sad", 2)
    with pytest.raises(DataError, match=r"happy_0.png: is right in the split folder 'train', in no class folder; put it in "
                                        r"ROOT/train/<class>/"):
        load_fer(split_only)


def test_a_class_name_with_a_line_break_is_a_bad_entry(tmp_path):
    # it broke evaluate's table and every one-line message naming the class
    root = class_folder(tmp_path / "faces", n=2, classes=("happy", "sad"))
    (root / "sad").rename(root / "s\nad")
    with pytest.raises(DataError, match=r"sad_0.png: the class folder's name 's\\nad' holds a line break or other control "
                                        r"character \(an escape code, a bidi override\); rename it"):
        load_fer(root)
    (root / "s\nad").rename(root / "\u202esad")  # a bidi override: not a control character, yet it rewrote the line
    with pytest.raises(DataError, match=r"sad_0.png: the class folder's name '\\u202esad' holds a line break or other"):
        load_fer(root)
    (tmp_path / "list.csv").write_text('path,label\nfaces/happy/happy_0.png,"ha\nppy"\nfaces/happy/happy_1.png,happy\n')
    with pytest.raises(DataError, match=r"list.csv, line 2: the label 'ha\\nppy' holds a line break"):
        load_fer(tmp_path / "list.csv")


def test_a_class_folder_named_in_latin1_is_a_bad_entry(tmp_path):
    # 'café' in Latin-1 (an old zip's names) was read as the class 'caf\udce9' and trained into the model's
    # labels, which predict --csv, plot and report then failed to write (UnicodeEncodeError tracebacks)
    import os

    root = class_folder(tmp_path / "faces", n=2, classes=CLASSES)
    os.rename(os.fsencode(root / "surprise"), os.fsencode(root) + b"/caf\xe9")
    with pytest.raises(DataError, match=r"surprise_0.png: the class folder's name 'caf\ufffd' is not UTF-8 text \(byte 0xe9 "
                                        r"at column 4\); rename it in UTF-8 \(convmv"):
        load_fer(root)
    d = load_fer(root, skip_bad_rows=True, val_fraction=0, test_fraction=0)  # its images left out, the rest read
    assert d.names == ("happy", "sad") and d.skipped == 2


def test_a_class_name_matches_its_labels_txt_in_either_unicode_form(tmp_path):
    # a Mac writes folder names decomposed (NFD): 'class 'überrascht' is not one of the class names (happy, überrascht)'
    import unicodedata

    root = class_folder(tmp_path / "faces", n=2, classes=("happy", "sad"))
    (root / "sad").rename(root / unicodedata.normalize("NFD", "überrascht"))
    (root / "labels.txt").write_text(unicodedata.normalize("NFC", "Überrascht\nhappy\n"))
    d = load_fer(root, val_fraction=0, test_fraction=0)
    assert d.names == (unicodedata.normalize("NFC", "überrascht"), "happy") and d.labels.tolist() == [1, 1, 0, 0]


def test_split_folders_labels_txt_and_the_fer2013_release_layout(tmp_path):
    root = tmp_path / "faces"
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        for c in ("anger", "joy"):
            write_images(root / split / c, c, n, start=10 * n)
    # hidden folders are no class nor split: a notebook's .ipynb_checkpoints, a Mac zip's __MACOSX
    write_images(root / "train" / "joy" / ".ipynb_checkpoints", "joy", 1)
    write_images(root / "__MACOSX" / "train" / "joy", "joy", 1)
    d = load_fer(root, size=20, channels=3)
    assert d.counts() == {"train": 8, "val": 4, "test": 2} and d.names == ("anger", "joy")  # alphabetical: no known set
    (root / "labels.txt").write_text("# in label order\njoy\nanger\n")
    d = load_fer(root, size=20, channels=3)
    assert d.names == ("joy", "anger") and d.split("val")[1].tolist() == [1, 1, 0, 0]
    assert load_fer(root, size=20, channels=3, names=["anger", "joy", "calm"]).names == ("anger", "joy", "calm")
    with pytest.raises(DataError, match=r"anger_.*\.png: class 'anger' is not one of the class names of --label-names "
                                        r"\(joy, calm\)\. Fix or remove the file, or pass --skip-bad-rows"):
        load_fer(root, size=20, channels=3, names="joy,calm".split(","), cache=False)
    (root / "labels.txt").write_text("joy\ncalm\n")  # a stray labels.txt is named: nothing else said where the names came from
    with pytest.raises(DataError, match=r"class 'anger' is not one of the class names of .*faces/labels\.txt \(joy, calm\)"):
        load_fer(root, size=20, channels=3, cache=False)
    (root / "labels.txt").write_text("joy\nanger\n")
    (root / "val" / "joy" / "note.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"note.png: cannot identify image file"):
        load_fer(root, size=20, channels=3, cache=False)
    assert load_fer(root, skip_bad_rows=True, size=20, channels=3, cache=False).skipped == 1


def test_image_lists_csv_and_tsv_with_names_or_ids(tmp_path):
    write_images(tmp_path / "img", "happy", 4)
    write_images(tmp_path / "img", "sad", 4)
    rows = [(f"img/{c}_{i}.png", c, "train" if i < 3 else "val") for c in ("happy", "sad") for i in range(4)]
    (tmp_path / "faces.csv").write_text("path,label,split\n" + "".join(",".join(r) + "\n" for r in rows))
    d = load_fer(tmp_path / "faces.csv", size=16, channels=3)
    assert d.images.shape == (8, 16, 16, 3) and d.names == ("happy", "sad") and d.counts() == {"train": 6, "val": 2, "test": 0}
    # a TSV of RAF-DB-style 1-based ids, no header, no split: ids stay ids (names None), the split is drawn
    (tmp_path / "ids.tsv").write_text("".join(f"{p}\t{4 if c == 'happy' else 5}\n" for p, c, _ in rows))
    d = load_fer(tmp_path / "ids.tsv", size=16, channels=1, val_fraction=0.25, test_fraction=0.25)
    assert d.names is None and sorted(set(d.labels.tolist())) == [4, 5] and d.counts() == {"train": 4, "val": 2, "test": 2}
    assert class_ids(d.labels, d.names, label_set("rafdb"), "x").tolist() == (d.labels - 1).tolist()  # 4 happiness, 5 sadness
    # with names (labels.txt beside the list) the ids index them from 0
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\nhappy\nsad\n")
    assert load_fer(tmp_path / "ids.tsv", size=16, val_fraction=0.25, test_fraction=0.25).names == ("a", "b", "c", "d", "happy", "sad")
    # bad rows name the list, its line and the problem
    (tmp_path / "bad.csv").write_text("path,label,split\nimg/happy_0.png,happy,train\nimg/none.png,happy,train\n"
                                      "img/sad_0.png,sad,holdout\nimg/sad_1.png,1,train\n")
    for line, message in ((3, "no such image file"), (4, "split 'holdout' is not train, val or test"),
                          (5, "label 1 is an integer id, but line 2's is a class name")):
        with pytest.raises(DataError, match=rf"one.csv, line 3: {message}"):
            text = (tmp_path / "bad.csv").read_text().splitlines()
            (tmp_path / "one.csv").write_text("\n".join(text[:2] + [text[line - 1]]) + "\n")
            load_fer(tmp_path / "one.csv", cache=False)
    d = load_fer(tmp_path / "bad.csv", skip_bad_rows=True, cache=False, val_fraction=0, test_fraction=0)
    assert d.skipped == 3 and len(d.labels) == 1


@pytest.mark.parametrize("label,message", [("\u00b2", "is a class name, but line 1's is an integer id"),
                                           (str(10**30), "is not a class id 0..999"), ("1000", "is not a class id 0..999")])
def test_an_image_list_id_that_is_no_class_id_is_a_bad_row(tmp_path, label, message):
    # ('\u00b2' passed isdigit but not int(): "invalid literal for int()"; 10**30 overflowed int64 in a traceback)
    write_images(tmp_path / "img", "happy", 2)
    (tmp_path / "ids.csv").write_text(f"img/happy_0.png,1\nimg/happy_1.png,{label}\n")
    with pytest.raises(DataError, match=rf"ids.csv, line 2: label '{label}' {message}"):
        load_fer(tmp_path / "ids.csv", cache=False)


@pytest.mark.parametrize("label", ["1.0", "nan", "2e0"])
def test_an_image_list_label_that_is_a_number_but_no_id_is_a_bad_row(tmp_path, label):
    write_images(tmp_path / "img", "happy", 3)  # was trained as a class named '1.0' (or 'nan') beside 'happy'
    (tmp_path / "list.csv").write_text(f"path,label\nimg/happy_0.png,{label}\nimg/happy_1.png,happy\nimg/happy_2.png,happy\n")
    with pytest.raises(DataError, match=rf"list.csv, line 2: label '{label}' is a number but no integer id; write ids as 0, 1, 2"):
        load_fer(tmp_path / "list.csv", cache=False)


def test_an_image_listed_twice_is_a_bad_row(tmp_path):
    # it was read twice: in train and test, the model was scored on a face it trained on
    write_images(tmp_path / "img", "happy", 2)
    (tmp_path / "l.csv").write_text("img/happy_0.png,happy,train\nimg/happy_1.png,happy,train\n./img/happy_0.png,happy,test\n")
    with pytest.raises(DataError, match="l.csv, line 3: ./img/happy_0.png is listed on line 1 too; list each image once"):
        load_fer(tmp_path / "l.csv", cache=False)
    assert load_fer(tmp_path / "l.csv", cache=False, skip_bad_rows=True).counts() == {"train": 2, "val": 0, "test": 0}



def leak_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "same as training images" in r.getMessage()]


def test_an_image_both_in_training_and_test_is_named_when_training(tmp_path, caplog):
    # a photo copied into test/ under another name: the model was scored on a face it trained on, unsaid
    root = tmp_path / "faces"
    for c in ("happy", "sad"):
        write_images(root / "train" / c, c, 3)
        write_images(root / "test" / c, c, 2, start=10)
    copy = root / "test" / "happy" / "copy.png"
    copy.write_bytes((root / "train" / "happy" / "happy_1.png").read_bytes())
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    cfg = resolve_config(str(spec), data=str(root), epochs=1, batch_size=6, threads=1)
    with caplog.at_level(logging.WARNING, "ferkit"):
        fit(cfg, tmp_path / "run", progress=False)
    assert leak_warnings(caplog) == [
        f"{root}: 1 val/test image(s) (1 test) are the same as training images (e.g. {root / 'train' / 'happy' / 'happy_1.png'} "
        f"= {copy}): the model is scored on faces it trained on, so its val/test accuracy is inflated; move each copy into "
        "the split of its original, or remove it"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, "ferkit"):  # read from the cache, which keeps no paths: the listing's
        fdata.say_leaked(load_fer(root))
    assert len(leak_warnings(caplog)) == 1 and f"= {copy})" in caplog.text


def test_no_leak_warning_without_copies_nor_for_fer2013s_own_duplicates(tmp_path, caplog):
    root = tmp_path / "faces"
    for split, start in (("train", 0), ("val", 10), ("test", 20)):
        for c in ("happy", "sad"):
            write_images(root / split / c, c, 3, start=start)
    fer = write_fer_csv(tmp_path / "fer.csv", n=4)
    lines = fer.read_text().splitlines()
    fer.write_text("\n".join(lines + [lines[1].replace("Training", "PublicTest")]) + "\n")  # a training face in val too
    with caplog.at_level(logging.WARNING, "ferkit"):
        fdata.say_leaked(load_fer(root))
        fdata.say_leaked(load_fer(fer))  # FER2013's known duplicates are part of its benchmarks: left alone
        fdata.say_leaked(load_fer(root / "train", val_fraction=0.5, test_fraction=0))  # a drawn split of distinct images
    assert leak_warnings(caplog) == []

def test_limits_and_the_cache_keyed_by_size_and_channels(tmp_path, monkeypatch):
    root = class_folder(tmp_path / "faces", n=3)
    a = load_fer(root, size=24, channels=3, val_fraction=0, test_fraction=0)
    b = load_fer(root, size=20, channels=1, val_fraction=0, test_fraction=0)  # another input: not the first one's cache
    assert a.images.shape == (9, 24, 24, 3) and b.images.shape == (9, 20, 20)
    monkeypatch.setattr(fdata, "_read_images", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    c = load_fer(root, size=24, channels=3, val_fraction=0, test_fraction=0)
    assert np.array_equal(a.images, c.images) and c.names == a.names
    monkeypatch.undo()
    monkeypatch.setattr(fdata, "MAX_BYTES", 9 * 24 * 24 * 3 - 1)
    with pytest.raises(DataError, match=r"9 images at 24x24x3 take .* GB, over the .* GB ferkit holds in memory; train at a smaller"):
        load_fer(root, size=24, channels=3, cache=False, val_fraction=0, test_fraction=0)
    # FER2013's rows at a colour model's input: resized, grey repeated over RGB
    fer = load_fer(write_fer_csv(tmp_path / "fer.csv", n=7), size=32, channels=3)
    assert fer.images.shape == (21, 32, 32, 3) and (fer.images[..., 0] == fer.images[..., 2]).all() and fer.names == FER2013


def test_images_are_decoded_as_predict_decodes_a_photo(tmp_path, monkeypatch):
    """(data read a 16-bit grey PNG almost white and a transparent background black, where predict scales
    the one to 8 bits and flattens the other onto white; a cache of that decoding stayed in use)"""
    import hashlib

    root = tmp_path / "faces"
    files = [root / "happy" / "grey16.png", root / "sad" / "cutout.png"]  # (read in this order)
    for f in files:
        f.parent.mkdir(parents=True)
    Image.fromarray(np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)).save(files[0])  # mode I;16
    cutout = np.zeros((40, 40, 4), np.uint8)
    cutout[10:30, 10:30] = (200, 120, 60, 255)  # a face on a transparent ground (stored black)
    Image.fromarray(cutout).save(files[1])
    # a cache the earlier decoding wrote (its key: version 1) is not what the images read as now
    stats = sorted((str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = hashlib.sha1(repr((str(root.resolve()), stats, False, 1)).encode()).hexdigest()[:16]
    stale = FerData(np.full((2, 48, 48), 254, np.uint8), np.array([0, 1]), np.full(2, -1, np.int8), str(root), names=("happy", "sad"))
    fdata._write_cache(fdata.cache_dir() / f"{root.name}-{key}.npz", stale)
    for channels in (1, 3):
        data = load_fer(root, channels=channels, **fdata.NO_SPLIT)
        assert np.array_equal(data.images, np.stack([whole_face(load_image(f), 48, channels) for f in files]))
    grey = load_fer(root, **fdata.NO_SPLIT).images
    assert 120 < grey[0].mean() < 135 and grey[1][0, 0] == 255  # not 254 (near white), not 0 (black)


# ---------------------------------------------------------------- label sets and splits


def test_class_names_map_onto_a_known_set_by_meaning_and_say_which_do_not():
    names = ("happiness", "sadness", "contempt")
    labels = np.array([0, 1, 0, -1])
    assert class_ids(labels, names, label_set("fer2013"), "x").tolist() == [3, 4, 3, -1]  # happy, sad; -1 unlabelled
    assert class_ids(labels, names, label_set("affectnet"), "x").tolist() == [1, 2, 1, -1]
    with pytest.raises(DataError, match=r"^faces: its class\(es\) contempt are not emotions of FER2013 \(angry, .*neutral\); "
                                        r"affectnet has them all \(--labels affectnet\); rename or leave out those classes, "
                                        r"or train on the data's own classes \(--labels data\)$"):
        class_ids(np.array([0, 2]), names, label_set("fer2013"), "faces")
    with pytest.raises(DataError, match=r"^faces: its class\(es\) contempt are not emotions of FER2013 \(angry, .*neutral\)$"):
        class_ids(np.array([0, 2]), names, label_set("fer2013"), "faces", fix="")  # report's: no flag of its own to advise
    with pytest.raises(DataError, match=r"label 8 is not an id of RAF-DB \(1..7: 1 surprise, .*, 7 neutral\)"):
        class_ids(np.array([1, 8]), None, label_set("rafdb"), "x")
    data_set = label_set("data", names)
    assert data_set.emotions == names and for_emotions(names).emotions == names  # a checkpoint finds it again
    assert label_set("data", FER2013).name == "fer2013"  # the data's names are exactly a known set's
    with pytest.raises(ConfigError, match=r"'happy' and 'happiness' name one class"):
        label_set("data", ("happy", "happiness"))
    with pytest.raises(ConfigError, match=r"--labels data: the data's labels are integer ids without names; name the classes"):
        label_set("data", None)
    # a file with no labels (a CSV without 'emotion') is not "no faces of angry, disgust, ..., neutral" before its error
    assert describe_mapping(FER2013, label_set("fer2013"), np.full(3, -1)) is None
    assert describe_mapping(("happy",), label_set("fer2013"), np.zeros(3, np.int64)).startswith("labels (fer2013): no faces of angry")


def test_evaluate_advises_its_own_flags_for_classes_the_model_lacks(tiny_checkpoint, tmp_path, capsys):
    # it advised train's --labels affectnet / --labels data, which evaluate does not have
    folder = class_folder(tmp_path / "faces", n=2, colour=False, classes=("happy", "sad", "contempt"))
    argv = ["evaluate", str(tiny_checkpoint), "--data", str(folder), "--split", "all", "--json", str(tmp_path / "m.json")]
    assert main(argv) == 2
    names = ",".join(FER2013)
    assert capsys.readouterr().err.endswith("; to score the faces of the model's classes alone, name them "
                                            f"(--label-names {names}) and leave out the others (--skip-bad-rows)\n")
    assert main(argv + ["--label-names", names, "--skip-bad-rows"]) == 0  # what it advises works
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 4


def test_evaluate_on_a_fer2013_csv_advises_what_works_for_it(tmp_path, capsys):
    """A run of one's own classes scored on a FER2013 CSV was told to name them (--label-names happy,sad), which
    is ignored for a FER2013 CSV (its rows are FER2013's 7 emotions): the same error again."""
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_spec().to_dict()))
    folder = class_folder(tmp_path / "faces", n=6, colour=False, classes=("happy", "sad"))
    run, fer = tmp_path / "run", write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=14)
    assert main(["train", "--model", str(tmp_path / "tiny.json"), "--data", str(folder), "--labels", "data", "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(fer), "--json", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.endswith("evaluate a copy of the file that keeps its header and only the rows of emotion 3 (happy) or 4 (sad)\n")
    assert "(--label-names happy,sad)" not in err
    lines = fer.read_text().splitlines()
    kept = tmp_path / "fer-happy-sad.csv"
    kept.write_text("\n".join([lines[0]] + [r for r in lines[1:] if r.split(",")[0] in ("3", "4")]) + "\n")
    assert main(["evaluate", str(run), "--data", str(kept), "--json", str(tmp_path / "m.json")]) == 0  # what it advises works
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 4


def test_train_warns_of_split_and_teacher_options_it_ignores(tmp_path, caplog):
    # accepted and silently ignored: the split options on data with their own split, the teacher's without one
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    fer = write_fer_csv(tmp_path / "fer.csv", n=14)  # its Usage column is its split
    folder = class_folder(tmp_path / "faces", n=4, colour=False)  # no split of its own

    def warned(data, **options):
        caplog.clear()
        cfg = resolve_config(str(spec), data=str(data), epochs=1, batch_size=14, threads=1, **options)
        with caplog.at_level(logging.WARNING, "ferkit"):
            fit(cfg, tmp_path / f"run{len(list(tmp_path.glob('run*')))}", progress=False)
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    split = dict(split_seed=9, val_fraction=0.5, test_fraction=0.25)
    assert warned(fer, **split) == [f"--split-seed, --val-fraction, --test-fraction: ignored; {fer} gives its own split "
                                    "(they draw one for data that give none)"]
    assert warned(fer, distill=0.9, teacher_tta=True) == ["--distill, --teacher-tta: ignored without --teacher (they set how a "
                                                          "teacher's answers are distilled)"]
    assert warned(fer) == [] and warned(folder, **split) == []  # the defaults; a split drawn with them
    assert warned(folder, split_seed=9, val_fraction=0, test_fraction=0) == [
        f"--split-seed: ignored; {folder} gets no split drawn with --val-fraction 0 and --test-fraction 0 (every face trains)"]


def test_a_drawn_split_is_stratified_reproducible_and_logged(tmp_path, caplog):
    root = class_folder(tmp_path / "faces", n=10)
    with caplog.at_level(logging.INFO, "ferkit"):
        a = load_fer(root, size=16, split_seed=3, val_fraction=0.2, test_fraction=0.1)
    assert "the data give no split; drew a stratified one (--split-seed 3): train 21, val 6, test 3" in caplog.text
    for s, n in ((1, 2), (2, 1)):  # every class alike in val and test
        assert np.bincount(a.labels[a.splits == s]).tolist() == [n, n, n]
    b = load_fer(root, size=16, split_seed=3, val_fraction=0.2, test_fraction=0.1, cache=False)
    assert np.array_equal(a.splits, b.splits)  # the same seed, the same split
    assert not np.array_equal(a.splits, load_fer(root, size=16, split_seed=4, val_fraction=0.2, test_fraction=0.1).splits)
    with pytest.raises(DataError, match=r"cannot draw a stratified split with --val-fraction 0.1 and --test-fraction 0.05 .*"
                                        r"images per class: happy: 10, sad: 10, surprise: 10\); give each class more images"):
        load_fer(root, size=16, val_fraction=0.1, test_fraction=0.05)
    write_images(root / "train" / "happy", "happy", 2)  # some images with a split, the others without
    with pytest.raises(DataError, match=r"30 images have no split .* and 2 have one; give every image a split, or none"):
        load_fer(root, size=16)


# ---------------------------------------------------------------- training and the tools


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A colour 32x32 tiny model trained 2 epochs through `ferkit train` on a class folder of 20x20 PNGs
    (FER2013's names, so --labels fer2013), every augmentation on."""
    root = tmp_path_factory.mktemp("colour")
    folder, run = class_folder(root / "faces"), root / "run"
    argv = ["train", "--model", str(colour_spec(root)), "--data", str(folder), "--epochs", "2", "--batch-size", "6",
            "--out", str(run), "--quiet", "--threads", "1", "--crop-pad", "2", "--rotate", "10", "--erase", "0.5",
            "--photo-aug", "0.5", "--mixup", "0.2", "--cutmix", "1", "--tta", *SPLIT]
    assert main(argv) == 0
    return folder, run


def test_classes_with_faces_but_no_training_faces_are_named(tmp_path, caplog):
    # split folders with fear in val/ alone, and --train-subset drawing fewer faces than classes: outputs
    # that never learn, trained unsaid
    labels = label_set("data", ("angry", "fear", "happy", "sad"))
    data = FerData(np.zeros((9, 48, 48), np.uint8), np.array([0, 0, 2, 2, 2, 2, 3, 0, 1]), np.array([0] * 7 + [1, 1], np.int8),
                   "faces", names=labels.emotions, kind="folder")
    spec = tiny_spec().for_labels(labels)
    with caplog.at_level(logging.WARNING):
        split_batches(data, TrainConfig(), spec, None, labels, labels.annotations(data))
        assert "faces: no training faces of fear, only val/test ones: the model cannot learn it" in caplog.text
        assert "--train-subset" not in caplog.text
        split_batches(data, TrainConfig(train_subset=2), spec, None, labels, labels.annotations(data))
    assert "among the 2 drawn (--train-subset): the model cannot learn it; give a larger --train-subset, or none" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # one too large trained on them all, as its config did not say
        train, _, _ = split_batches(data, TrainConfig(train_subset=7), spec, None, labels, labels.annotations(data))
    assert "faces: --train-subset 7 is not under its 7 training faces: training on all of them" in caplog.text
    assert len(train.x) == 7


def test_train_subset_of_a_class_folder_draws_every_class_as_search_does(caplog):
    """A folder lists its images class by class: --train-subset took the first N, one class alone (unsaid
    where that class filled N); now a stratified sample drawn with --seed, the same images in search's --cv."""
    from ferkit.search import train_images

    labels = label_set("data", ("angry", "happy", "sad"))
    y = np.repeat([0, 1, 2], [40, 30, 20])  # in the folder's order
    images = np.arange(len(y), dtype=np.uint8)[:, None, None] * np.ones((1, 48, 48), np.uint8)  # each face its own grey
    data = FerData(images, y, np.zeros(len(y), np.int8), "faces", names=labels.emotions, kind="folder")
    spec = tiny_spec().for_labels(labels)
    cfg = TrainConfig(train_subset=18, seed=3)
    with caplog.at_level(logging.WARNING):
        train, _, mean = split_batches(data, cfg, spec, None, labels, labels.annotations(data))
    assert np.bincount(train.y.numpy()).tolist() == [8, 6, 4] and "--train-subset" not in caplog.text  # each class its share
    x, sub_y = train_images(data, cfg)
    assert np.bincount(sub_y).tolist() == [8, 6, 4] and np.allclose(mean, x.mean(0))  # search's folds: the same faces
    again, _, _ = split_batches(data, cfg, spec, None, labels, labels.annotations(data))
    other, _, _ = split_batches(data, replace(cfg, seed=4), spec, None, labels, labels.annotations(data))
    assert torch.equal(again.x, train.x) and not torch.equal(other.x, train.x)  # the seed's draw, the same each time


def test_train_and_evaluate_a_colour_model_on_a_class_folder(colour_run, tmp_path, capsys):
    folder, run = colour_run
    ck = read_checkpoint(run / "best.pt")
    assert (ck["spec"]["in_size"], ck["spec"]["channels"]) == (32, 3) and tuple(ck["mean"].shape) == (32, 32, 3)
    assert ck["labels"] == list(FER2013) and ck["config"]["val_fraction"] == 0.2
    clf = load_checkpoint(run)
    assert clf.predict_proba(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 7)
    assert main(["evaluate", str(run), "--data", str(folder), "--device", "cpu", "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["split"] == "test" and m["n"] == 4 and sum(m["support"].values()) == 4  # the drawn split, as trained
    assert m["support"]["angry"] == 0 and m["labels"] == list(FER2013)
    # without --data: the data it trained on (FER2013's default location was read before, and refused)
    assert main(["evaluate", str(run), "--device", "cpu", "--json", str(tmp_path / "own.json")]) == 0
    assert json.loads((tmp_path / "own.json").read_text())["confusion_matrix"] == m["confusion_matrix"]
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.int8.onnx"), "--int8"]) == 0  # calibrated on them



def test_an_exported_graph_is_scored_on_the_split_its_training_drew(colour_run, tmp_path, capsys):
    """(evaluating the run's .onnx on its own folder drew seed 0's default split: other test faces, training faces among them)"""
    import onnx

    folder, run = colour_run
    graph = tmp_path / "m.onnx"
    assert main(["export", str(run), "--onnx", str(graph)]) == 0

    def score(model):
        out = tmp_path / "m.json"
        assert main(["evaluate", str(model), "--data", str(folder), "--split", "test", "--precision", "fp32", "--device", "cpu",
                     "--json", str(out)]) == 0
        return json.loads(out.read_text())

    pt, ox = score(run), score(graph)
    assert ox["n"] == pt["n"] == 4 and ox["confusion_matrix"] == pt["confusion_matrix"]  # the run's 20% test split
    m = onnx.load(graph)
    reading = next(p for p in m.metadata_props if p.key == "reading")
    m.metadata_props.remove(reading)  # a graph exported before the split was recorded: the defaults, as before
    onnx.save(m, graph)
    capsys.readouterr()
    assert main(["evaluate", str(graph), "--data", str(folder), "--split", "test", "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err  # (evaluate's own way out: it has no --val-fraction)
    assert "cannot draw the stratified split the model's training drew (val fraction 0.1, test fraction 0.1)" in err
    assert "score every image with --split all" in err
    m.metadata_props.add(key="reading", value='{"split_seed": "0"}')  # edited by hand: one line naming the key
    onnx.save(m, graph)
    assert main(["evaluate", str(graph), "--data", str(folder), "--split", "test", "--json", str(tmp_path / "x.json")]) == 2
    assert "the ONNX model's metadata 'reading' must be a JSON object of label_names" in capsys.readouterr().err

def test_the_data_own_classes_train_and_evaluate(tmp_path):
    folder = class_folder(tmp_path / "faces", classes=("cat", "dog", "owl"))
    run = tmp_path / "run"
    assert main(["train", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--epochs", "1", "--batch-size", "6",
                 "--out", str(run), "--quiet", "--threads", "1", "--split-seed", "1", *SPLIT]) == 2  # FER2013 has no cat
    assert not run.exists()
    assert main(["train", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--epochs", "1", "--batch-size", "6",
                 "--out", str(run), "--quiet", "--threads", "1", "--labels", "data", "--split-seed", "1", *SPLIT]) == 0
    clf = load_checkpoint(run)
    assert clf.labels == ("cat", "dog", "owl") and clf.spec.num_classes == 3
    assert main(["evaluate", str(run), "--data", str(folder), "--split", "val", "--device", "cpu"]) == 0
    m = json.loads((run / "metrics-val.json").read_text())
    assert m["labels"] == ["cat", "dog", "owl"] and m["n"] == 4 and len(m["confusion_matrix"]) == 3


def test_fine_tune_from_a_local_file_on_colour_data(colour_run, tiny_checkpoint, tmp_path, caplog):
    folder, run = colour_run
    # a grey FER2013 checkpoint into a colour model of its spec: the first conv is repeated over RGB
    cfg = resolve_config(str(colour_spec(tmp_path, 48)), data=str(folder), epochs=1, batch_size=6, lr=1e-9, l2=0.0,
                         init_from=str(tiny_checkpoint), val_fraction=0.2, test_fraction=0.2, threads=1)
    with caplog.at_level(logging.INFO, "ferkit"):
        fit(cfg, tmp_path / "from-grey", progress=False)
    assert "features.0.0.weight converted from 1 -> 3 input channels (repeated, divided by 3)" in caplog.text
    grey = read_checkpoint(tiny_checkpoint)["state_dict"]["features.0.0.weight"]
    now = read_checkpoint(tmp_path / "from-grey" / "best.pt")["state_dict"]["features.0.0.weight"]
    assert now.shape == (8, 3, 3, 3) and torch.allclose(now, grey.repeat(1, 3, 1, 1) / 3, atol=1e-5)
    # a state_dict file (.pth) of a colour net: every tensor loaded
    pth = tmp_path / "pretrained.pth"
    torch.save(read_checkpoint(run / "best.pt")["state_dict"], pth)
    caplog.clear()
    with caplog.at_level(logging.INFO, "ferkit"):
        assert main(["train", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--epochs", "1", "--batch-size", "6",
                     "--lr", "1e-9", "--init-from", str(pth), "--out", str(tmp_path / "ft"), "--quiet", "--threads", "1", *SPLIT]) == 0
    assert f"--init-from {pth} (state_dict): loaded 20 tensors, skipped 0 of the file's, 0 of the model's missing" in caplog.text


def test_distillation_between_colour_models_and_a_mismatched_teacher(colour_run, tmp_path):
    folder, run = colour_run
    cfg = resolve_config(str(colour_spec(tmp_path)), data=str(folder), epochs=1, batch_size=6, teacher=[str(run)],
                         val_fraction=0.2, test_fraction=0.2, threads=1)
    assert len(fit(cfg, tmp_path / "student", progress=False)) == 1
    grey = replace(cfg, overrides={"channels": 1})
    with pytest.raises(FerkitError, match=r"--teacher .* takes 32x32 colour faces, the student 32x32 grey; distil between models"):
        fit(grey, tmp_path / "grey-student", progress=False)
    with pytest.raises(ConfigError, match=r"its faces are 48x48, but the model takes 32x32x3 \(in_size 32, channels 3\)"):
        fit(cfg, tmp_path / "other", data=load_fer(write_fer_csv(tmp_path / "fer.csv", n=7)), progress=False)


def test_colour_batches_through_every_augmentation():
    gen = torch.Generator().manual_seed(0)
    mean = np.full((24, 32, 3), 100, np.float32)  # not square: height 24, width 32
    x = torch.zeros(6, 3, 24, 32)
    x[:, 0] = 1.0  # red faces (pixels 228, 100, 100)
    out = augment.photo(x, gen, 1.0, mean)
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)
    pixels = out.permute(0, 2, 3, 1).numpy() * 128 + mean
    assert (pixels[..., 0].mean((1, 2)) > pixels[..., 2].mean((1, 2)) + 50).all()  # still red, not turned blue (RGB kept)
    red = np.zeros((24, 32, 3), np.float32)
    red[..., 0] = 220
    assert augment.jpeg(red, 90)[..., 0].mean() > 200 and augment.jpeg(red, 90)[..., 2].mean() < 20
    out = augment.augment(x, gen, crop_pad=3, rotate=15, erase_p=1.0, photo_p=0.5, mean=mean)
    assert out.shape == x.shape
    mix = augment.draw_mix(6, (24, 32), gen, cutmix=1.0)
    assert mix.images(torch.randn(6, 3, 24, 32)).shape == (6, 3, 24, 32) and mix.box[1] <= 24 and mix.box[3] <= 32


def test_sanity_visualize_and_report_on_a_colour_net(colour_run, tmp_path, capsys):
    folder, run = colour_run
    assert main(["sanity", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--n", "12", "--steps", "40",
                 "--lr", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "ln 3 = 1.0986" in out and "[PASS] overfit 12 training images" in out  # the checks count the data's 3 classes
    assert main(["visualize", str(run), "--out", str(tmp_path / "viz"), "--row", "0", "--data", str(folder),
                 "--octaves", "2", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "val row 0 (label: " in out and "DeepDream from conv1 (--layer 1)" in out
    assert Image.open(tmp_path / "viz" / "face.png").size == (32, 32) and Image.open(tmp_path / "viz" / "face.png").mode == "RGB"
    assert Image.open(tmp_path / "viz" / "dream-face.png").mode == "RGB"
    clf = load_checkpoint(run)
    w = first_layer_filters(clf.model)
    assert w.shape == (8, 3, 3, 3)
    shown = plots.plot_filters(w).axes[0].images[0].get_array()
    assert shown.shape == (3, 3, 3)  # the first filter as an RGB image
    face = demo_face(clf.spec)
    assert face.shape == (32, 32, 3) and activation_maps(clf, face)[0].shape == (8, 16, 16)
    res = build_report([run], tmp_path / "report.html", str(folder), 2, DreamSettings(octaves=1, steps=2))
    page = (tmp_path / "report.html").read_text()
    assert res["bytes"] > 0 and "(evaluated now)" in page and "happy" in page


def test_torchrun_trains_a_colour_model_on_a_class_folder(tmp_path):
    from test_distributed import _free_port

    folder = class_folder(tmp_path / "faces", n=8)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
                        "-m", "ferkit", "train", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--epochs", "1",
                        "--batch-size", "4", "--labels", "data", "--device", "cpu", "--out", str(out), "--quiet", *SPLIT],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ck = read_checkpoint(out / "last.pt")
    assert ck["world_size"] == 2 and tuple(ck["mean"].shape) == (32, 32, 3) and ck["labels"] == ["happy", "sad", "surprise"]


def test_fer_data_built_by_hand_keeps_fer2013_names():
    d = FerData(np.zeros((2, 48, 48), np.uint8), np.array([0, 1]), np.zeros(2, np.int8))
    assert d.names == FER2013


def test_a_search_study_begun_before_the_split_fields_resumes():
    from ferkit.config import TrainConfig
    from ferkit.search import _check_settings, _settings

    class Study:
        study_name = "ferkit"

        def __init__(self, settings):
            self.user_attrs = {"settings": settings}

        def get_trials(self, deepcopy=True):  # a trial completed: other settings are refused
            from types import SimpleNamespace

            from optuna.trial import TrialState

            return [SimpleNamespace(state=TrialState.COMPLETE)]

    now = _settings(TrainConfig(), [], 0)
    old = json.loads(json.dumps(now))
    for k in ("label_names", "split_seed", "val_fraction", "test_fraction"):
        del old["config"][k]
    _check_settings(Study(old), now, "sqlite:///search.db")  # the defaults it ran with: the same study
    with pytest.raises(ConfigError, match=r"was started with other settings \(differing: split_seed None -> 3\)"):
        _check_settings(Study(old), _settings(TrainConfig(split_seed=3), [], 0), "sqlite:///search.db")


def test_resume_refuses_data_whose_classes_or_training_faces_changed(tmp_path, capsys):
    """last.pt's head and mean are of the faces it trained on: a class added (or reordered) would
    shift what each output means, faces added would redraw the split (validation faces training)."""
    import shutil

    folder = class_folder(tmp_path / "faces", classes=("cat", "dog", "owl"))
    run = tmp_path / "run"
    assert main(["train", "--model", str(colour_spec(tmp_path)), "--data", str(folder), "--epochs", "1", "--batch-size", "6",
                 "--out", str(run), "--quiet", "--threads", "1", "--labels", "data", "--split-seed", "1", *SPLIT]) == 0
    kept = tmp_path / "kept"
    shutil.copytree(run, kept)
    write_images(folder / "dog", "dog", 3, start=6)  # three faces more: the split is drawn anew
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    assert "its training faces are not those the run trained on" in capsys.readouterr().err
    write_images(folder / "ant", "ant", 6)  # a fourth class, first in order
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the data's classes are now ant, cat, dog, owl; the run trained on cat, dog, owl" in err and err.count("\n") == 1
    shutil.rmtree(folder / "ant")
    for f in sorted((folder / "dog").glob("dog_*.png"))[6:]:
        f.unlink()
    folder.rename(tmp_path / "moved")  # the data as they were, in another place: --data says where
    assert main(["train", "--resume", str(kept), "--epochs", "2", "--quiet"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(kept), "--epochs", "2", "--quiet", "--data", str(tmp_path / "moved")]) == 0
    assert json.loads((kept / "config.json").read_text())["data"] == str(tmp_path / "moved")


def test_class_names_from_a_file_a_list_or_neither(tmp_path, monkeypatch):
    import os

    (tmp_path / "names.txt").write_text("# mine\nCat\n\ndog\n")
    assert fdata.read_names(str(tmp_path / "names.txt")) == ("cat", "dog")
    assert fdata.read_names("cat, dog") == ("cat", "dog")
    with pytest.raises(DataError, match="missing.txt: no such file; give a file of class names"):
        fdata.read_names(str(tmp_path / "missing.txt"))
    os.mkfifo(tmp_path / "fifo.txt")  # was "no such file"
    with pytest.raises(DataError, match=r"fifo.txt: not a regular file \(a folder, pipe or device\)"):
        fdata.read_names(str(tmp_path / "fifo.txt"))
    (tmp_path / "faces").mkdir()  # the data folder given by mistake: was one class named "faces" ("needs 2 classes")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"--label-names faces: not a regular file \(a folder, pipe or device\)"):
        fdata.read_names("faces")


def test_a_ferplus_model_is_scored_and_trained_on_a_class_folder_by_name(tmp_path, capsys):
    """FER+'s votes follow FER2013's CSV rows alone: on one's own folder the default model was refused
    ('no FER+ vote file beside it'), and a vote file given anyway was matched to the images by row."""
    folder = class_folder(tmp_path / "faces", size=(48, 48), colour=False)
    (tmp_path / "fer2013new.csv").write_text("Usage,Image name,neutral\n")  # beside the folder: not its votes
    out = tmp_path / "m.json"
    assert main(["evaluate", "ferplus-fast", "--data", str(folder), "--json", str(out), "--split", "all",
                 "--labels-file", str(tmp_path / "fer2013new.csv")]) == 0
    assert f"ferplus-fast is scored on the labels of {folder}" in capsys.readouterr().out
    m = json.loads(out.read_text())  # every image: --split all draws no split (6 a class could not be split in ten)
    assert m["n"] == 18 and m["split"] == "all" and m["labels"][-1] == "contempt"
    assert {k: v for k, v in m["support"].items() if v} == {"happy": 6, "sad": 6, "surprise": 6}
    run = tmp_path / "run"
    assert main(["train", "--model", "tiny", "--labels", "ferplus", "--data", str(folder), "--epochs", "1", "--batch-size", "6",
                 "--out", str(run), "--threads", "1", "--label-mode", "probability", *SPLIT]) == 0
    assert load_checkpoint(run).labels[-1] == "contempt"  # its classes by name; the vote flag said to be of no use there
    assert f"--label-mode are for FER+ votes of FER2013's rows (--labels ferplus); ignored with --labels ferplus on {folder}" \
        in capsys.readouterr().out


def test_a_photo_or_a_model_given_as_data_says_what_data_are(tmp_path):
    """(a photo as --data was 'line 1: not UTF-8 text'; a checkpoint 'not a CSV record')"""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "me.jpg")
    (tmp_path / "m.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"me\.jpg: is an image, not a data set; --data takes a FER2013 CSV file .* \(to name "
                                        r"the emotions in it: ferkit predict .*me\.jpg\)$"):
        load_fer(tmp_path / "me.jpg")
    with pytest.raises(DataError, match=r"m\.pt: is a model, not a data set"):
        load_fer(tmp_path / "m.pt")


def test_a_few_images_a_class_evaluate_visualize_and_report_advise_or_read_them(tiny_checkpoint, tmp_path, capsys):
    """A folder of 7 images a class cannot hold the 10% val and test split a model's training drew: evaluate, visualize
    and report said "cannot draw a stratified split with --val-fraction 0.1 ...", train's flags, which they lack."""
    folder = class_folder(tmp_path / "faces", n=7, colour=False)
    run = tiny_checkpoint.parent
    drawn = f"error: {folder}: cannot draw the stratified split the model's training drew (val fraction 0.1, test fraction 0.1) ("
    own = "or give data with splits of their own (train/ val/ test/ folders, or a split column)\n"
    evaluate = ["evaluate", str(run), "--data", str(folder), "--json", str(tmp_path / "m.json")]
    assert main(evaluate) == 2
    err = capsys.readouterr().err
    assert err.startswith(drawn) and err.endswith(f"; score every image with --split all (no split drawn), {own}")
    assert main(evaluate + ["--split", "all"]) == 0 and json.loads((tmp_path / "m.json").read_text())["n"] == 21  # what it advises
    visualize = ["visualize", str(run), "--data", str(folder), "--row", "20", "--what", "filters", "--out", str(tmp_path / "viz")]
    assert main(visualize) == 2
    err = capsys.readouterr().err
    assert err.startswith(drawn) and err.endswith(f"; take row 20 of every image with --split all (no split drawn), {own}")
    assert main(visualize + ["--split", "all"]) == 0 and "all row 20 (label: surprise)" in capsys.readouterr().out
    # report: no evaluation (it has no split to choose), a note why, and the network shown on the folder's faces
    assert main(["report", str(run), "--data", str(folder), "--faces", "0", "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert f"note: {drawn[7:]}" in out and f"not evaluated, its faces drawn from all its images; score every image with " \
                                          f"ferkit evaluate RUN_DIR --data {folder} --split all, {own}" in out
    page = (tmp_path / "r.html").read_text()
    assert "Activation maps of happy -&gt; " in page and "astronaut" not in page
    # train keeps its own flags in the message
    assert main(["train", "--model", "tiny", "--data", str(folder), "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    assert "cannot draw a stratified split with --val-fraction 0.1 and --test-fraction 0.1 (" in capsys.readouterr().err


def test_int8_calibration_on_the_runs_changed_data_advises_export_and_predict_their_own_ways(tiny_checkpoint, tmp_path,
                                                                                             monkeypatch, capsys):
    """The run's own data, now a few images a class, cannot hold the split its training drew: export --int8, predict
    and serve said "cannot draw a stratified split with --val-fraction 0.1 ...", train's flags, which they lack."""
    import ferkit.runs
    from ferkit.predict import DEMO_PHOTO, Predictor

    folder = class_folder(tmp_path / "faces", n=7, colour=False)
    monkeypatch.setattr(ferkit.runs, "trained_on", lambda config: str(folder))  # the data the run trained on, since cut
    drawn = f"{folder}: cannot draw the stratified split the model's training drew (val fraction 0.1, test fraction 0.1) ("
    own = "give data with splits of their own (train/ val/ test/ folders, or a split column)"
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {drawn}") and err.endswith(
        f"; the data have changed since it trained; calibrate on all the images of other data with --data PATH, or {own}\n")
    other = class_folder(tmp_path / "other", n=7, colour=False)  # the way it gives works
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--data", str(other)]) == 0
    assert "int8, calibrated on 21 training faces" in capsys.readouterr().out
    assert main(["predict", str(DEMO_PHOTO), "--model", str(tiny_checkpoint), "--backend", "onnx", "--precision", "int8"]) == 2
    err = capsys.readouterr().err
    assert drawn in err and "; the data have changed since it trained. Or export the int8 graph once with 'ferkit export " \
        "CHECKPOINT --onnx OUT.onnx --int8 --data FILE'" in err and "fraction" not in err.split(drawn)[1]
    # other data given to calibrate on (the API's calibration=): all of them calibrate, as export's --data
    assert Predictor(tiny_checkpoint, backend="onnx", precision="int8", calibration=other).precision == "int8"


def test_looks_like_image_folder_finds_class_folders_of_images_without_reading_them(tmp_path):
    """The cheap guess that a folder given as --model is image data (ROOT/<class>/*, ROOT/<split>/<class>/*), by the
    names of its entries alone; a folder of other files, or of images right in it, is not."""
    flat, split, other, loose = (tmp_path / n for n in ("flat", "split", "other", "loose"))
    for folder in (flat / "happy", split / "Train" / "sad", other / "notes", loose, tmp_path / "deep" / "a" / "b"):
        folder.mkdir(parents=True)
    (flat / "happy" / "1.JPG").write_bytes(b"")  # (not read: its suffix is enough)
    (split / "Train" / "sad" / "2.png").write_bytes(b"")
    (other / "notes" / "a.txt").write_bytes(b"")
    (loose / "3.png").write_bytes(b"")
    (tmp_path / "deep" / "a" / "b" / "4.png").write_bytes(b"")  # a/ is no split's name
    assert fdata.looks_like_image_folder(flat) and fdata.looks_like_image_folder(split)
    assert not any(fdata.looks_like_image_folder(f) for f in (other, loose, tmp_path / "deep", tmp_path / "nosuch"))
