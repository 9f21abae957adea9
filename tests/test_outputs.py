"""predict's JSON and CSV written as the results come (outputs.ResultsWriter): the same bytes as the
whole list written at once (what predict wrote until its results stopped being kept in memory), and
only whole results in the files whatever cuts a write short. No model: a stand-in predictor."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ferkit.jobs import predict_file
from ferkit.outputs import ResultsWriter, _json_at, _json_pieces, csv_cell, csv_rows, csv_text
from ferkit.predict import record
from ferkit.video import TrackSummary, predict_video, summarize_tracks

LABELS = ("happy", "sad", "fear")


class _Faces:
    """0, 1 or 2 faces a picture by turns, far apart (two face ids in a video), random probabilities."""

    labels = LABELS

    def __init__(self):
        self.calls = 0

    def predict(self, rgb, crops=False):
        self.calls += 1
        rng = np.random.default_rng(self.calls)
        return [record((60 * k + self.calls % 2, 5, 20, 20), rng.dirichlet([1, 1, 1]), self.labels) for k in range(self.calls % 3)]


def _video(path, n: int = 8):
    cv2 = pytest.importorskip("cv2")
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((64, 96, 3), 20 * i, np.uint8))
    w.release()
    return path


def _photo(path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    return path


def _at_once(results, labels=LABELS) -> tuple[bytes, bytes]:
    """The JSON and CSV of a whole list of results, as predict wrote them at its end while it kept them all."""
    return json.dumps(results, indent=1).encode(), csv_text(csv_rows(results, labels)).encode()


def _files(js, cs) -> tuple[bytes, bytes]:
    return js.read_bytes(), cs.read_bytes()


def test_json_in_pieces_is_json_dumps():
    values = [[], {}, [1, 2, 3], list(range(7)), {"a": [{"b": list("abcdefg"), "c": {}}], "d": None, "é": 'x"\n'},
              [{"t": ["happy"] * 8}, [[]] * 4, 2.5]]
    for value in values:
        for level, depth in ((0, 4), (1, 2), (3, 1), (2, 0)):
            assert "".join(_json_pieces(value, level, depth)) == _json_at(value, level)
        assert "".join(_json_pieces(value, 0)) == json.dumps(value, indent=1)


def test_streamed_files_are_byte_for_byte_the_results_written_at_once(tmp_path):
    photo, video = _photo(tmp_path / 'a "b", ç.png'), _video(tmp_path / "clip.avi")  # quoted and escaped in both files
    error = {"file": str(tmp_path / "bad.jpg"), "error": "bad.jpg: not an image", "reason": "not_image"}
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    p = _Faces()
    with ResultsWriter(js, cs, LABELS) as w:
        first = predict_file(p, photo)
        w.add(first)
        w.add(error)
        streamed = predict_video(p, video, 1, frames=w.frames(video))  # the CLI's path: frames written as they come
        w.add(streamed)
        kept = predict_video(p, video, 2)  # a library caller's result, with its frames in a list
        w.add(kept)
        w.add(predict_file(p, photo))
    assert len(streamed["frames"]) == 8 and not isinstance(streamed["frames"], list)
    assert len(streamed["faces"]) == 2  # two face ids, and frames without a face
    p = _Faces()  # the same calls again, every result kept
    results = [predict_file(p, photo), error, predict_video(p, video, 1), predict_video(p, video, 2), predict_file(p, photo)]
    assert results[2]["faces"] == streamed["faces"]
    assert _files(js, cs) == _at_once(results)
    for some in ([], [error], results[2:3]):  # none (an empty list), errors alone, one video
        with ResultsWriter(js, cs, LABELS) as w:
            for res in some:
                w.add(res)
        assert _files(js, cs) == _at_once(some)


def test_json_alone_csv_alone_and_no_file(tmp_path):
    video, js, cs = _video(tmp_path / "clip.avi"), tmp_path / "out.json", tmp_path / "out.csv"
    for paths in ((js, None), (None, cs), (None, None)):
        with ResultsWriter(*paths, LABELS) as w:
            res = predict_video(_Faces(), video, frames=w.frames(video))
            w.add(res)
        assert len(res["frames"]) == 8 and w.count == 1
    expected = _at_once([predict_video(_Faces(), video)])
    assert _files(js, cs) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "out.csv", "out.json"]  # no temporary file left


class _CutAt:
    """A file whose writes stop halfway through the nth write with Ctrl-C (KeyboardInterrupt)."""

    def __init__(self, f, n: int):
        self.f, self.n = f, n

    def write(self, data):
        self.n -= 1
        if self.n == 0:
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt
        return self.f.write(data)

    def __getattr__(self, attr):
        return getattr(self.f, attr)


@pytest.mark.parametrize("part", ["json", "csv"])
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_a_result_cut_by_ctrl_c_is_left_out_and_the_files_stay_whole(tmp_path, part, nth):
    photo, video = _photo(tmp_path / "a.png"), _video(tmp_path / "clip.avi")
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    p = _Faces()
    done = [predict_file(p, photo), predict_file(p, photo)]
    with pytest.raises(KeyboardInterrupt), ResultsWriter(js, cs, LABELS) as w:  # closed by the Ctrl-C
        for res in done:
            w.add(res)
        getattr(w, part).f = _CutAt(getattr(w, part).f, nth)
        w.add(predict_video(p, video, frames=w.frames(video)))  # the video's rows (csv), or its JSON, cut
    assert _files(js, cs) == _at_once(done)


def test_a_frame_cut_by_ctrl_c_is_left_out_of_the_videos_result(tmp_path, monkeypatch):
    """Ctrl-C while a frame is being written: the video's result (video.Interrupted) ends with the frame before."""
    from ferkit.video import Interrupted

    video, js, cs = _video(tmp_path / "clip.avi"), tmp_path / "out.json", tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), ResultsWriter(js, cs, LABELS) as w:
        spool = w.frames(video)
        real = type(w.csv.f).write
        writes = []

        class Cut:
            def __init__(self, f):
                self.f = f

            def write(self, data):  # the 5th frame's rows: half written, then Ctrl-C
                writes.append(1)
                if len(writes) == 5:
                    real(self.f, data[:7])
                    raise KeyboardInterrupt
                return real(self.f, data)

            def __getattr__(self, attr):
                return getattr(self.f, attr)

        w.csv.f = Cut(w.csv.f)
        try:
            predict_video(_Faces(), video, frames=spool)
        except Interrupted as e:
            w.add(e.result)
            raise
    (res,) = json.loads(js.read_text())
    assert [f["frame"] for f in res["frames"]] == [0, 1, 2, 3] and res["complete"] is False
    assert _files(js, cs)[1] == _at_once([res])[1]


def test_a_video_that_fails_after_some_frames_leaves_none_of_its_rows(tmp_path):
    photo, video = _photo(tmp_path / "a.png"), _video(tmp_path / "clip.avi")
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    p = _Faces()
    done = [predict_file(p, photo), {"file": str(video), "error": "clip.avi: damaged", "reason": "corrupt"}]
    with ResultsWriter(js, cs, LABELS) as w:
        w.add(done[0])
        spool = w.frames(video)
        for i in range(3):  # three frames written out, then the video fails
            spool.append({"frame": i, "time": i / 10, "faces": [dict(r, face_id=1) for r in p.predict(None)]})
        w.add(done[1])
    assert _files(js, cs) == _at_once(done)


def _summaries_as_numpy_gave_them(frames):
    """video.summarize_tracks as it was with every frame kept: the mean by numpy over the sightings."""
    by_id = {}
    for fr in frames:
        for r in fr["faces"]:
            by_id.setdefault(r["face_id"], []).append((fr["frame"], r))
    out = []
    for fid, seen in sorted(by_id.items()):
        emotions = list(seen[0][1]["probs"])
        mean = np.mean([[r["probs"][e] for e in emotions] for _, r in seen], axis=0)
        labels = {}
        for _, r in seen:
            labels[r["label"]] = labels.get(r["label"], 0) + 1
        out.append({"face_id": fid, "first_frame": seen[0][0], "last_frame": seen[-1][0], "count": len(seen),
                    "labels": labels, "mean_probs": {e: float(p) for e, p in zip(emotions, mean)},
                    "label": emotions[int(np.argmax(mean))], "timeline": [r["label"] for _, r in seen]})
    return out


def test_track_summary_kept_frame_by_frame_is_numpys_to_the_last_bit():
    rng = np.random.default_rng(0)
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
    frames = []
    for i in range(3000):  # face 1 always, 2 and 3 now and then
        ids = [1] + [k for k in (2, 3) if rng.random() < 0.4]
        faces = [dict(record((0, 0, 9, 9), rng.dirichlet(np.full(8, 0.3)).astype(np.float32), labels), face_id=k) for k in ids]
        frames.append({"frame": 2 * i, "time": None, "faces": faces})
    summary = TrackSummary()
    for fr in frames:
        summary.add(fr)
    assert summary.tracks() == summarize_tracks(frames) == _summaries_as_numpy_gave_them(frames)
    assert json.dumps(summary.tracks()) == json.dumps(_summaries_as_numpy_gave_them(frames))  # (== is no bit test for floats' repr)


class _Signed(_Faces):
    """_Faces whose labels start as formulas do and whose boxes start left of the picture (x = -3)."""

    labels = ("happy", "-sad", "=fear")

    def predict(self, rgb, crops=False):
        return [record((-3, 5, 20, 20), np.array([0.5, 0.3, 0.2]), self.labels)]


FORMULAS = ['=HYPERLINK("evil.example","y")', "+cmd|' -C calc'!A0", "-2+3", "@SUM(1)", "\tx", "\rx"]


def test_csv_text_cells_a_spreadsheet_would_run_get_a_quote_and_numbers_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the file cell is the path as given: `ferkit predict '=HYPERLINK(...).png'`
    names = [_photo(tmp_path / f"{f}.png").name for f in FORMULAS + ["plain"]]
    cs, p = tmp_path / "out.csv", _Signed()
    with ResultsWriter(None, cs, p.labels) as w:
        for name in names:
            w.add(predict_file(p, Path(name)))
    header, *rows = list(csv.reader(open(cs, newline="")))
    assert header[-3:] == ["happy", "'-sad", "'=fear"]
    assert [r[0] for r in rows] == [f"'{f}.png" for f in FORMULAS] + ["plain.png"]
    assert {r[4] for r in rows} == {"-3"} and {r[8] for r in rows} == {"happy"}  # x stays a number


def test_a_photo_named_in_latin1_is_written_as_the_json_escapes_it(tmp_path):
    # bytes that are not UTF-8 in a file name: the CSV row was a UnicodeEncodeError traceback (the results lost)
    import os

    photo = _photo(Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")))
    js, cs = tmp_path / "out.json", tmp_path / "out.csv"
    with ResultsWriter(js, cs, LABELS) as w:
        w.add(predict_file(_Faces(), photo))
    assert json.loads(js.read_text(encoding="utf-8"))[0]["file"] == str(photo)  # (json escapes it: '\udce9')
    rows = list(csv.reader(open(cs, newline="", encoding="utf-8")))  # the CSV is UTF-8 text still
    assert rows[1][0] == str(tmp_path / "caf\\udce9.png") and len(rows) == 2


def test_csv_cell_quotes_text_only():
    assert [csv_cell(v) for v in (-3, -0.5, None, "-0.5", "+1e-05", "", "happy", "a=b")] == \
        [-3, -0.5, None, "-0.5", "+1e-05", "", "happy", "a=b"]  # numbers, and text that is one number, stay
    assert [csv_cell(f) for f in FORMULAS] == ["'" + f for f in FORMULAS]


@pytest.mark.parametrize("code, fix", [("ENOSPC", "free some space"), ("EDQUOT", "free some space"),
                                       ("EFBIG", "raise the file-size limit (ulimit -f)"),
                                       ("EACCES", "make the folder writable"), ("EROFS", "write to a file system that is not read-only")])
def test_a_failed_write_is_told_the_fix_for_its_cause(tmp_path, code, fix):
    """A file-size limit (EFBIG) was told to free some space, which frees nothing a limit counts."""
    import errno

    from ferkit.errors import OutputError
    from ferkit.files import output_errors

    with pytest.raises(OutputError) as e, output_errors(tmp_path / "out.json"):
        raise OSError(getattr(errno, code), "cannot")
    assert f"cannot write it (cannot); {fix}" in str(e.value)
