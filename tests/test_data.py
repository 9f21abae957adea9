import os

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, synthetic_faces, write_fer_csv
from ferkit import data as fdata
from ferkit.data import load_fer, mean_image, subset_rows
from ferkit.errors import DataError


def test_kaggle_csv_plain_and_gz(tmp_path):
    for gz in (False, True):
        p = write_fer_csv(tmp_path / ("f.csv.gz" if gz else "f.csv"), n=14, gz=gz)
        d = load_fer(p)
        assert d.counts() == {"train": 14, "val": 14, "test": 14}
        x, y = d.split("val")
        assert x.shape == (14, 48, 48) and x.dtype == np.uint8
        assert list(y[:7]) == list(range(7))
        np.testing.assert_array_equal(x, synthetic_faces(14, seed=1)[0])


def test_label_names_for_a_fer2013_csv_are_ignored_with_a_warning(tmp_path, caplog):
    import logging

    p = write_fer_csv(tmp_path / "fer.csv", n=14)
    with caplog.at_level(logging.WARNING, logger="ferkit.data"):
        d = load_fer(p, names=("calm", "excited"))
    assert d.names[0] == "angry" and "--label-names is ignored for it" in caplog.text  # it trained silently on FER2013's names


def test_icml_variant_with_leading_spaces(tmp_path):
    p = write_fer_csv(tmp_path / "icml_face_data.csv", n=7, header="emotion, Usage, pixels")
    # the icml file orders columns emotion, Usage, pixels: rewrite rows to match
    rows = p.read_text().splitlines()
    fixed = [rows[0]] + [",".join([r.split(",")[0], r.split(",")[2], r.split(",")[1]]) for r in rows[1:]]
    p.write_text("\n".join(fixed) + "\n")
    assert load_fer(p).counts() == {"train": 7, "val": 7, "test": 7}


def test_train_and_test_csv_variant(tmp_path):
    images, labels = synthetic_faces(7)
    (tmp_path / "train.csv").write_text("emotion,pixels\n" + "".join(f"{lab},{' '.join(map(str, i.ravel()))}\n" for i, lab in zip(images, labels)))
    (tmp_path / "test.csv").write_text("pixels\n" + "".join(f"{' '.join(map(str, i.ravel()))}\n" for i in images))
    assert load_fer(tmp_path / "train.csv").counts()["train"] == 7
    test = load_fer(tmp_path / "test.csv")
    assert test.counts()["test"] == 7 and (test.split("test")[1] == -1).all()  # unlabelled


def test_image_folder(tmp_path):
    images, labels = synthetic_faces(14)
    names = ["Training_1", "PublicTest_2", "PrivateTest_3", "plain_4"]
    for k, (img, lab) in enumerate(zip(images, labels)):
        folder = tmp_path / ("train" if k % 2 == 0 else "test") / fdata.FER2013[lab]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{names[k % 4]}_{k}.png")
    d = load_fer(tmp_path)
    # prefixes win; the plain name falls back to its folder (test -> test)
    assert sum(d.counts().values()) == 14 and d.counts()["val"] > 0 and d.counts()["test"] > 0


def test_missing_split_is_only_an_error_when_asked(tmp_path):
    d = load_fer(write_fer_csv(tmp_path / "priv.csv", usages=("PrivateTest",), n=7))
    assert d.has("test") and not d.has("train")
    with pytest.raises(DataError, match="no 'train' split .*Training"):
        d.split("train")


def test_cache_makes_second_load_skip_parsing(tmp_path, monkeypatch):
    p = write_fer_csv(tmp_path / "f.csv", n=7)
    first = load_fer(p)
    monkeypatch.setattr(fdata, "_read_csv", lambda *a: pytest.fail("parsed again despite the cache"))
    second = load_fer(p)
    np.testing.assert_array_equal(first.images, second.images)
    os.utime(p, (1, 1))  # a changed file is parsed again
    with pytest.raises(pytest.fail.Exception):
        load_fer(p)


BAD_ROWS = [
    ("1,{pix},Training", lambda pix: pix.rsplit(" ", 1)[0], "line 3: field 'pixels' has 2303 values; expected 2304"),
    ("1,{pix},Training", lambda pix: pix.replace("0", "x", 1) if "0" in pix else "x" + pix[1:], "line 3: field 'pixels' has a non-numeric value"),
    ("9,{pix},Training", lambda pix: pix, "line 3: field 'emotion' is '9'; expected an integer 0..6"),
    ("1,{pix},Validation", lambda pix: pix, "line 3: field 'Usage' is 'Validation'"),
    ("1,{pix}", lambda pix: pix, "line 3: expected 3 fields, found 2"),
    # numbers int() or int32 refuse, though isdigit() passes them (were StopIteration and OverflowError tracebacks)
    ("1,{pix},Training", lambda pix: "99999999999999999999 " + pix.split(" ", 1)[1], "line 3: field 'pixels' has a value outside 0..255"),
    ("1,{pix},Training", lambda pix: "\u00b2 " + pix.split(" ", 1)[1], "line 3: field 'pixels' has a non-numeric value '\u00b2'"),
    ("\u00b2,{pix},Training", lambda pix: pix, "line 3: field 'emotion' is '\u00b2'; expected an integer 0..6"),
]


@pytest.mark.parametrize("template,mangle,message", BAD_ROWS)
def test_bad_rows_name_file_line_and_field(tmp_path, template, mangle, message):
    p = write_fer_csv(tmp_path / "bad.csv", usages=("Training",), n=3)
    pix = " ".join(["10"] * 2304)
    lines = p.read_text().splitlines()
    lines.insert(2, template.format(pix=mangle(pix)))
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_fer(p)
    assert "bad.csv" in str(e.value) and message in str(e.value) and "--skip-bad-rows" in str(e.value)
    d = load_fer(p, skip_bad_rows=True)
    assert d.skipped == 1 and d.counts()["train"] == 3
    again = load_fer(p, skip_bad_rows=True)  # from the cache: what was skipped, still said
    assert again.skipped == 1 and again.problems == d.problems and message in again.problems[0]


def test_missing_column_and_empty_inputs(tmp_path):
    (tmp_path / "nocol.csv").write_text("emotion,Usage\n1,Training\n")
    with pytest.raises(DataError, match="line 1: missing column 'pixels'"):
        load_fer(tmp_path / "nocol.csv")
    face = " ".join(["9"] * 2304)
    (tmp_path / "twice.csv").write_text(f"emotion,pixels,Pixels,Usage\n1,{face},{face},Training\n")  # was: the first, unsaid
    with pytest.raises(DataError, match=r"twice.csv, line 1: column\(s\) pixels appear more than once"):
        load_fer(tmp_path / "twice.csv")
    (tmp_path / "label.csv").write_text(f"label,pixels,Usage\n1,{face},Training\n")  # read unlabelled: "train on a labelled file"
    with pytest.raises(DataError, match=r"label.csv, line 1: no column 'emotion', but a column 'label' .*: if 'label' holds "
                                        r"those ids, rename it 'emotion'"):
        load_fer(tmp_path / "label.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_fer(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file.*Kaggle"):
        load_fer(tmp_path / "nothing.csv")
    bad = tmp_path / "imgs" / "train" / "happy"
    bad.mkdir(parents=True)
    (bad / "Training_1.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="Training_1.jpg"):
        load_fer(tmp_path / "imgs")


def test_mean_image():
    x = np.stack([np.zeros((48, 48), np.uint8), np.full((48, 48), 100, np.uint8)])
    assert mean_image(x).shape == (48, 48) and np.allclose(mean_image(x), 50)


@pytest.mark.skipif(not SHARED.exists(), reason=f"FER2013 not found at {SHARED}")
def test_real_fer2013(monkeypatch):
    monkeypatch.delenv("FERKIT_CACHE")  # use the user cache: parsed once, reused by later runs
    d = load_fer(SHARED)
    assert d.counts() == {"train": 28709, "val": 3589, "test": 0}
    assert np.bincount(d.split("train")[1]).tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]


def test_utf8_bom_is_accepted(tmp_path):
    p = write_fer_csv(tmp_path / "bom.csv", n=7)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())  # Excel and Notepad write one
    d = load_fer(p, cache=False)
    assert d.counts() == {"train": 7, "val": 7, "test": 7}
    assert (d.split("train")[1] >= 0).all()  # the header's first column, 'emotion', is read (not '\ufeffemotion')


@pytest.mark.parametrize("bad,message", [
    (b"3,1 2 3\xff 4,Training\n", "line 5: not UTF-8 text (byte 0xff at column 8)"),
    (b"3," + b"1 " * 70000 + b",Training\n", "line 5: not a CSV record (field larger than field limit (131072))"),
])
def test_undecodable_and_huge_rows_name_their_line(tmp_path, bad, message):
    p = write_fer_csv(tmp_path / "f.csv", usages=("Training",), n=7)
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:4] + [bad] + lines[4:]))
    with pytest.raises(DataError) as e:
        load_fer(p, cache=False)
    assert f"{p}, {message}" in str(e.value) and "--skip-bad-rows" in str(e.value)
    d = load_fer(p, skip_bad_rows=True, cache=False)  # the other rows are read
    assert d.counts()["train"] == 7 and d.skipped == 1 and message in d.problems[0]


def test_truncated_gz_names_the_line_and_keeps_the_rows_before_with_skip(tmp_path):
    p = write_fer_csv(tmp_path / "f.csv.gz", usages=("Training",), n=70, gz=True)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # an interrupted download
    with pytest.raises(DataError) as e:
        load_fer(p, cache=False)
    msg = str(e.value)
    assert f"{p}, line " in msg and "damaged or ends early" in msg and "Download the file again" in msg
    d = load_fer(p, skip_bad_rows=True, cache=False)
    assert 0 < d.counts()["train"] < 70 and "ends early" in d.problems[-1]


def test_fifo_and_devices_are_refused_at_once(tmp_path):
    """A named pipe would block (or stream forever) and /dev/zero never ends: both are refused unread."""
    import threading

    fifo = tmp_path / "fer.csv"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_fer(fifo)
        except DataError as e:
            outcome.append(str(e))

    t = threading.Thread(target=load, daemon=True)  # broken, it would wait for a writer forever
    t.start()
    t.join(10)
    assert outcome == [f"{fifo}: is a named pipe; --data must be a FER2013 CSV file (.csv, .csv.gz) or an image folder"]
    with pytest.raises(DataError, match=r"^/dev/zero: is a character device; --data must be"):
        load_fer("/dev/zero")


def test_overlong_line_is_a_bad_row_read_past_in_bounded_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(fdata, "MAX_LINE_BYTES", 12_000)  # a FER row (~9 KB) fits; the next line does not
    p = write_fer_csv(tmp_path / "f.csv.gz", usages=("Training",), n=7, gz=True)
    import gzip

    lines = gzip.decompress(p.read_bytes()).splitlines(keepends=True)
    p.write_bytes(gzip.compress(b"".join(lines[:4] + [b"0" * 50_000 + b"\n"] + lines[4:])))
    with pytest.raises(DataError, match=r"line 5: the line is longer than 12,000 bytes .*--skip-bad-rows"):
        load_fer(p, cache=False)
    d = load_fer(p, skip_bad_rows=True, cache=False)  # the rows after it are read as before
    assert d.counts()["train"] == 7 and d.skipped == 1


def test_row_and_image_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(fdata, "MAX_ROWS", 10)
    p = write_fer_csv(tmp_path / "f.csv", usages=("Training",), n=11)
    with pytest.raises(DataError, match=r"holds more than 10 rows or images, the most ferkit reads"):
        load_fer(p, cache=False)
    assert load_fer(write_fer_csv(tmp_path / "g.csv", usages=("Training",), n=10), cache=False).counts()["train"] == 10
    folder = tmp_path / "faces" / "train" / "happy"
    folder.mkdir(parents=True)
    for k, img in enumerate(synthetic_faces(11)[0]):
        Image.fromarray(img).save(folder / f"{k}.png")
    with pytest.raises(DataError, match=r"faces: holds more than 10 rows or images"):
        load_fer(tmp_path / "faces", cache=False)


def test_a_missing_split_names_the_fix_that_exists(tmp_path):
    """(train on data without Training rows said "pick another split", which train cannot)"""
    d = load_fer(write_fer_csv(tmp_path / "val.csv", usages=("PublicTest",), n=10))
    with pytest.raises(DataError, match=r"has no 'train' split .*Training needs data with Training rows \(or a train/ folder\)\.$"):
        d.split("train")
    with pytest.raises(DataError, match=r"has no 'test' split .*Pick another split \(--split\) or data that have PrivateTest rows"):
        d.split("test")


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:]])
def test_a_damaged_cache_file_is_read_again_from_the_data(tmp_path, damage):
    p = write_fer_csv(tmp_path / "f.csv", n=7)
    first = load_fer(p)
    (cache,) = fdata.cache_dir().glob("f.csv-*.npz")
    cache.write_bytes(damage(cache.read_bytes()))  # cut short, empty, a bad CRC: not a traceback on every later read
    np.testing.assert_array_equal(load_fer(p).images, first.images)


@pytest.mark.parametrize("newline", [b"\r", b"\r\n"])
def test_old_mac_and_windows_line_endings_are_read(tmp_path, newline):
    """A CSV saved with an old Mac's bare "\r" line endings was one line to the reader, which csv refused
    ("new-line character seen in unquoted field"); it reads as the same rows, and so does an image list."""
    p = write_fer_csv(tmp_path / "mac.csv", n=7)
    p.write_bytes(p.read_bytes().replace(b"\n", newline))
    d = load_fer(p, cache=False)
    assert d.counts() == {"train": 7, "val": 7, "test": 7}
    assert (d.images == load_fer(write_fer_csv(tmp_path / "unix.csv", n=7), cache=False).images).all()
    images, _ = synthetic_faces(2)
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "list.csv").write_bytes(newline.join([b"path,label", b"0.png,happy", b"1.png,sad", b""]))
    assert load_fer(tmp_path / "list.csv", cache=False, val_fraction=0, test_fraction=0).names == ("happy", "sad")


def test_subset_rows_is_a_seeded_stratified_sample():
    labels = np.repeat([0, 1, 2], [50, 30, 20])  # class by class, as an image folder lists them
    rows = subset_rows(labels, 10, seed=7)
    assert np.bincount(labels[rows]).tolist() == [5, 3, 2] and (np.diff(rows) > 0).all()  # each class's share, in order
    assert (subset_rows(labels, 10, seed=7) == rows).all() and not (subset_rows(labels, 10, seed=8) == rows).all()
    assert (subset_rows(labels, 10, seed=2**63 - 1) >= 0).all()  # any --seed (sklearn's own takes 32 bits)
    for n in (0, 100, 500):  # 0, or as many as there are or more: all
        assert (subset_rows(labels, n, seed=7) == np.arange(100)).all()


@pytest.mark.parametrize("labels,n", [(np.array([0] * 9 + [1]), 5),  # a class of one image
                                      (np.repeat([0, 1, 2], 4), 2)])  # fewer drawn than classes
def test_subset_rows_too_small_to_stratify_is_a_plain_seeded_sample(labels, n):
    rows = subset_rows(labels, n, seed=1)
    assert len(set(rows.tolist())) == n and (subset_rows(labels, n, seed=1) == rows).all()
