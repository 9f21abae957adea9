import json
import os

import pytest

from conftest import tiny_spec, write_fer_csv
from ferkit.cli import main


def test_models_lists_presets_and_bundled(capsys, monkeypatch, tmp_path):
    import ferkit.predict as fp

    monkeypatch.setitem(fp.BUNDLED, "ferplus", tmp_path / "ferplus.pt")  # a bundled name without its file
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "shallow" in out and "deep-hog" in out and "MACs" in out
    assert "(default)" in out and "ferplus       not in this install (ferplus.pt is missing)" in out



def test_model_help_names_every_bundled_model_from_the_manifest(capsys):
    from ferkit.bundled import DEFAULT, MODELS

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert all(name in text for name in MODELS) and f"{DEFAULT} (the default)" in text


def test_predict_help_names_every_video_extension_predict_reads(capsys):
    from ferkit.files import VIDEO_EXTS

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    words = capsys.readouterr().out.replace("(", " ").replace(")", " ").split()
    assert not VIDEO_EXTS - set(words)  # (.mts, .m2ts and the raw .h264 ... streams were left out)


def test_backend_help_names_both_default_graphs_of_a_bundled_model():
    from ferkit.predict import DEFAULT_PATH, NARROW_PATH
    from ferkit.settings import BACKEND_HELP

    # NARROW_PATH's fp32 graph runs on AMD's Zen and Zen+: the help said int8 alone
    assert all(f"{precision} ONNX graph" in BACKEND_HELP or f"{precision} graph" in BACKEND_HELP
               for _, precision in (DEFAULT_PATH, NARROW_PATH))

def test_train_then_evaluate_on_private_test_only(tmp_path, capsys):
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=42)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out = tmp_path / "run"
    assert main(["train", "--model", str(spec), "--data", str(csv), "--epochs", "2", "--batch-size", "21",
                 "--out", str(out), "--quiet", "--set", "fcs.0.units=24"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["spec"]["fcs"][0]["units"] == 24
    private = write_fer_csv(tmp_path / "private.csv", usages=("PrivateTest",), n=14)
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data", str(private)]) == 0
    text = capsys.readouterr().out
    assert "[test]" in text and "confusion matrix" in text and "neutral" in text
    m = json.loads((out / "metrics-test.json").read_text())
    assert m["n"] == 14 and len(m["confusion_matrix"]) == 7


def test_config_overrides_and_set_meet_cleanly(tmp_path, capsys, monkeypatch):
    """--set adds to a config file's overrides: a null one (an empty YAML key) is none, a list is one
    error naming the file (both were tracebacks); --set reaches the fields a spec file leaves to their
    defaults; a run's recorded spec in a --config is not used, and a changed one says so."""
    from ferkit.cli import build_parser, config_from_args
    from ferkit.config import TrainConfig
    from ferkit.train import model_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "partial.json").write_text('{"convs": [{"pool": 2}], "fcs": [{"batch_norm": true}]}')
    args = lambda *argv: build_parser().parse_args(["train", *argv])  # noqa: E731
    (tmp_path / "null.yaml").write_text("model: partial.json\noverrides:\n")
    cfg = config_from_args(args("--config", "null.yaml", "--set", "fcs.0.units=24", "--set", "convs.0.filters=4"))
    assert cfg.overrides == {"fcs.0.units": 24, "convs.0.filters": 4}
    (tmp_path / "list.yaml").write_text("model: partial.json\noverrides: [[fcs.0.units, 8]]\n")
    assert main(["train", "--config", "list.yaml", "--set", "fcs.0.units=24"]) == 2
    assert capsys.readouterr().err.startswith("error: list.yaml: overrides must be a mapping of dotted model spec fields")
    saved = config_from_args(args("--model", "partial.json")).to_dict()  # as a run's config.json holds it
    (tmp_path / "run.json").write_text(json.dumps({"model": "partial.json", "spec": {"convs": [{"filters": 4}], "fcs": []}}))
    config_from_args(args("--config", "run.json"))
    assert "note: run.json: its spec is the record of a run's net, not used" in capsys.readouterr().out
    recorded = model_spec(TrainConfig.from_dict(saved)).to_dict()
    (tmp_path / "run.json").write_text(json.dumps({**saved, "spec": recorded}))
    config_from_args(args("--config", "run.json"))
    assert capsys.readouterr().out == ""
    # an older ferkit's record, without the fields added since (channels, backbone, a conv's stride), is the same net
    older = {**recorded, "convs": [{k: v for k, v in c.items() if k != "stride"} for c in recorded["convs"]]}
    del older["channels"], older["backbone"]
    (tmp_path / "run.json").write_text(json.dumps({**saved, "spec": older}))
    config_from_args(args("--config", "run.json"))
    assert capsys.readouterr().out == ""


def test_a_refusal_of_several_lines_prints_as_one_block_under_its_error(tmp_path, capsys):
    """Two bad --set paths are one error of two lines, and the second was printed flush left, without "error:", as if
    a message of its own; a line that starts flush left is indented (a list's "  - " lines stay as they are)."""
    assert main(["train", "--model", "shallow", "--set", "convs.9.filters=3", "--set", "fcs.0.unitz=4",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set convs.9.filters: no layer 9; ") and "\n  --set fcs.0.unitz: no such model spec field" in err
    assert err.count("\n") == 2, err


def test_set_applies_left_to_right_after_the_config_file_s_overrides(tmp_path, monkeypatch):
    """train --set 'hog={}' --set hog.orientations=12 was refused (hog.orientations no key of the {} just set);
    a --set of a path the config file's overrides set too took the file's place, before the file's later paths."""
    from ferkit.cli import build_parser, config_from_args
    from ferkit.train import model_spec

    monkeypatch.chdir(tmp_path)
    args = lambda *argv: build_parser().parse_args(["train", *argv])  # noqa: E731
    cfg = config_from_args(args("--model", "shallow", "--set", "hog={}", "--set", "hog.orientations=12"))
    assert model_spec(cfg).hog.orientations == 12
    (tmp_path / "c.yaml").write_text("model: shallow-hog\noverrides: {hog: {orientations: 4}, hog.orientations: 5}\n")
    cfg = config_from_args(args("--config", "c.yaml", "--set", "hog={pixels_per_cell: 6}"))  # the file's, then the flag's
    assert list(cfg.overrides) == ["hog.orientations", "hog"] and model_spec(cfg).hog.orientations == 9


def test_a_config_s_path_found_beside_it_and_not_here_says_paths_are_read_from_here(tmp_path, capsys, monkeypatch):
    """A config's paths are read from the current folder (as configs/example-train.yaml's model is), so
    `model: spec.json` beside configs/c.yaml was "spec.json: cannot read (No such file or directory)" and a
    `data: faces.csv` beside it FER2013's download advice, neither naming the config nor what to write."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "spec.json").write_text(json.dumps(tiny_spec().to_dict()))
    write_fer_csv(tmp_path / "configs" / "faces.csv", n=2)
    (tmp_path / "configs" / "c.yaml").write_text("model: spec.json\ndata: faces.csv\nepochs: 1\n")
    assert main(["train", "--config", "configs/c.yaml"]) == 2
    assert capsys.readouterr().err == (
        f"error: configs/c.yaml: model spec.json: not found from the current folder ({tmp_path}), but there is "
        "configs/spec.json beside the config; a config's paths are read from the current folder, as the flags' are: "
        "write model: configs/spec.json in it, or give --model configs/spec.json\n")
    assert main(["train", "--config", "configs/c.yaml", "--model", "configs/spec.json"]) == 2  # a flag replaces it
    assert "error: configs/c.yaml: data faces.csv: not found from the current folder" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "configs")  # from the config's folder, the same paths are found
    from ferkit.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["train", "--config", "c.yaml"]))
    assert (cfg.model, cfg.data) == ("spec.json", "faces.csv")


def test_a_config_s_paths_from_the_home_folder_are_read_there(tmp_path, monkeypatch):
    """A shell makes ~ the home folder in a flag, nothing did in a config file: `data: ~/faces.csv` was
    "~/faces.csv: no such file or folder" and FER2013's download advice. A path that exists as written stays."""
    from ferkit.cli import build_parser, config_from_args

    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir(), here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    (home / "spec.json").write_text(json.dumps(tiny_spec().to_dict()))
    (tmp_path / "c.yaml").write_text("model: ~/spec.json\ndata: ~/faces.csv\nteacher: [~/a.pt, b.pt]\nlabels_file: ~/v.csv\n")
    cfg = config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml")]))
    assert (cfg.model, cfg.data, cfg.teacher, cfg.labels_file) == (
        str(home / "spec.json"), str(home / "faces.csv"), [str(home / "a.pt"), "b.pt"], str(home / "v.csv"))
    (here / "~").mkdir()  # a folder named ~ here: the path names it, as it would in a flag
    (here / "~" / "spec.json").write_text(json.dumps(tiny_spec().to_dict()))
    assert config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml")])).model == "~/spec.json"


def test_model_overrides_a_config_file_s_model_as_other_flags_do(tmp_path, monkeypatch):
    """--model with --config was dropped for the file's model (taken for resolve_config's default), while
    every other flag overrides the file: 'train --config run.json --model deep' trained run.json's net."""
    from ferkit.cli import build_parser, config_from_args

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"model": "shallow", "epochs": 3}))
    args = lambda *argv: build_parser().parse_args(["train", "--config", "run.json", *argv])  # noqa: E731
    assert config_from_args(args()).model == "shallow"
    cfg = config_from_args(args("--model", "deep"))
    assert (cfg.model, cfg.epochs, cfg.lr) == ("deep", 3, 1e-2)  # the file's epochs, the deep recipe's lr


def test_problems_in_config_and_spec_files_name_the_file_and_key(tmp_path, capsys, monkeypatch):
    """A bad value from a --config file is named as its key in that file, a flag's as the flag; an
    unknown key says which field was meant; a spec file's problems name it (they named flags alone)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "y.yaml").write_text('model: shallow\nflip: "true"\nlr: -1\n')
    assert main(["train", "--config", "y.yaml", "--epochs", "0", "--lr", "2"]) == 2
    assert capsys.readouterr().err == ("error: invalid training config:\n  - y.yaml: flip must be true or false; got 'true'\n"
                                       "  - --epochs must be >= 1; got 0\n")
    (tmp_path / "y.yaml").write_text("model: shallow\nbatch-size: 8\n")
    assert main(["train", "--config", "y.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: y.yaml: unknown field(s) batch-size (did you mean batch_size for "
                                              "batch-size?); known fields are ")
    (tmp_path / "spec.json").write_text('{"convs": [{"filters": "8"}]}')
    assert main(["train", "--model", "spec.json"]) == 2
    assert capsys.readouterr().err == "error: spec.json: invalid model spec:\n  - convs[0].filters must be an integer; got '8'\n"


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "resnet"], "--model must be a preset (shallow, deep, "),
    (["train", "--model", "tiny.txt"], "or a JSON/YAML model spec file (.json, .yaml, .yml); got 'tiny.txt'"),
    (["train", "--lr", "-1", "--model", "shallow"], "--lr must be > 0 and at most 100; got -1.0"),
    (["train", "--threads", "100000", "--model", "shallow"], "--threads must be in 0..1024 (0: torch's default); got 100000"),
    (["search", "--model", "shallow", "--timeout", "-1"], "--timeout -1: must be > 0 seconds"),
    (["train", "--lr", "nan", "--model", "shallow"], "--lr must be a finite number or null; got nan"),
    (["train", "--device", "xpu", "--model", "shallow"], "--device must be auto, cpu, cuda, cuda:N or mps; got 'xpu'"),
    (["train", "--set", "hog=true", "--model", "shallow"], "hog must be a mapping of HogSpec fields (e.g. {} for the defaults) or null; got True"),
    (["train", "--set", "convs.0.filters=8.5", "--model", "shallow"], "convs[0].filters must be an integer; got 8.5"),
    (["train", "--set", "=1", "--model", "shallow"], "--set '=1': expected FIELD=VALUE"),  # was "unknown field(s) ;"
    (["train", "--set", "channels=3", "--model", "shallow-hog"], "hog must be null with channels 3 (HOG hybrids take grey faces"),
    (["train", "--val-fraction", "0.5", "--test-fraction", "0.5"], "--val-fraction plus --test-fraction must be < 1"),
    (["train", "--out", "/proc/ferkit-run", "--model", "shallow"], "--out /proc/ferkit-run: cannot write in /proc"),
    (["evaluate", "missing.pt"], "missing.pt: no such checkpoint"),
    (["train", "--resume", "nowhere"], "--resume nowhere: no such folder"),
    (["train", "--data", "nowhere.csv", "--model", "shallow"], "nowhere.csv: no such file"),
])
def test_user_errors_are_one_line_no_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_row_from_cli_names_line_and_skip_flag(tmp_path, capsys):
    p = write_fer_csv(tmp_path / "bad.csv", usages=("Training",), n=7)
    p.write_text(p.read_text() + "3,1 2 3,Training\n")
    assert main(["sanity", "--data", str(p)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, line 9: field 'pixels' has 3 values; expected 2304" in err and "--skip-bad-rows" in err


def test_sanity_checks_its_flags_and_labels_as_train_does(tmp_path, capsys):
    p = write_fer_csv(tmp_path / "fer.csv", usages=("Training",), n=14)
    for argv, message in [(["--lr", "-1"], "--lr must be > 0 and at most 100; got -1.0"), (["--lr", "nan"], "--lr must be a finite number"),
                          (["--n", "0"], "--n 0: need --n in 2..1000"), (["--n", "1001"], "--n 1001: need --n in 2..1000"),
                          (["--steps", "0"], "error: --steps must be >= 1; got 0\n"),
                          # (a huge --steps was taken, after the data were read, and ran for years)
                          (["--steps", "10001"], "error: --steps must be at most 10,000; got 10001\n")]:
        assert main(["sanity", "--data", str(p), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text(p.read_text().replace("emotion,pixels,Usage", "id,pixels,Usage"))  # (a "label" column is refused)
    assert main(["sanity", "--data", str(unlabelled)]) == 2  # was torch's "Target -1 is out of bounds"
    assert "its training rows have no 'emotion' labels" in capsys.readouterr().err
    for n, usages in [(0, ("PublicTest",)), (1, ("Training", "PublicTest"))]:  # was nan or batch norm's traceback
        few = write_fer_csv(tmp_path / f"few{n}.csv", usages=usages, n=max(n, 1))
        assert main(["sanity", "--data", str(few)]) == 2
        assert f"{n} training image(s) with a label; the checks need at least 2" in capsys.readouterr().err


def test_evaluate_of_a_run_folder_it_cannot_write_says_to_give_json(tiny_run, tmp_path, monkeypatch, capsys):
    """The default metrics file beside a run's best.pt, in a folder that refuses writes: the message was
    "--json RUN/metrics.json: cannot write in RUN", of a flag not given and a file it would not have written.
    (As root a read-only folder is writable, so the write itself is refused.)"""
    import shutil

    from ferkit import files

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "TemporaryFile", refused)
    for checkpoint in (run, run / "best.pt"):
        assert main(["evaluate", str(checkpoint)]) == 2
        out = capsys.readouterr()
        assert out.err == (f"error: {run}: cannot write the metrics in this folder (Permission denied); make the folder "
                           "writable, or choose another place with --json FILE\n")
        assert "evaluating" not in out.out  # before the data are read
    assert main(["evaluate", str(run), "--json", str(run / "m.json")]) == 2  # given: named as given
    assert capsys.readouterr().err == (f"error: --json {run / 'm.json'}: cannot write in {run} (Permission denied); make the "
                                       "folder writable, or choose another location\n")


def test_a_full_disk_is_refused_before_the_work(tiny_run, tmp_path, monkeypatch, capsys):
    """The check made an empty temporary file, which a full disk still gives: evaluate (an export, a search) did all
    its work, then failed to write. It writes a block now, and says to free some space. A file-size limit under a
    block (ulimit -f, EFBIG) is no full disk: the command's files may fit, and it goes on."""
    import errno
    import shutil

    from conftest import FullDisk
    from ferkit import files
    from ferkit.files import check_output

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    real = files.tempfile.TemporaryFile
    monkeypatch.setattr(files.tempfile, "TemporaryFile", lambda *a, **k: FullDisk(real(*a, **k), room=0))
    assert main(["evaluate", str(run), "--json", str(tmp_path / "new" / "m.json")]) == 2
    out = capsys.readouterr()
    assert out.err == (f"error: --json {tmp_path / 'new' / 'm.json'}: cannot write in {tmp_path / 'new'} (No space left on "
                       "device); free some space, or choose another location\n")
    assert "evaluating" not in out.out and not (tmp_path / "new").exists()  # before the data are read; no folder left
    assert main(["evaluate", str(run)]) == 2  # the metrics' default place, beside the checkpoint
    assert capsys.readouterr().err == (f"error: {run}: cannot write the metrics in this folder (No space left on device); "
                                       "free some space, or choose another place with --json FILE\n")

    class Limited(FullDisk):  # ulimit -f under a block
        def write(self, data):
            raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(files.tempfile, "TemporaryFile", lambda *a, **k: Limited(real(*a, **k)))
    assert check_output(tmp_path / "m.json", "--json") == tmp_path / "m.json"


@pytest.mark.parametrize("code, why", [("ENOSPC", "No space left on device"), ("EDQUOT", "Disk quota exceeded")])
def test_the_full_disk_check_leaves_an_existing_output_and_its_folder_as_they_were(tmp_path, monkeypatch, code, why):
    """The check's block is written to a temporary file beside the output, never to the output: on a full disk or
    over quota an earlier file there keeps its bytes and time, and no probe is left in its folder."""
    import errno

    from conftest import FullDisk
    from ferkit import files
    from ferkit.errors import FerkitError
    from ferkit.files import check_output

    old = tmp_path / "m.json"
    old.write_text("earlier results")
    os.utime(old, (1_000_000_000, 1_000_000_000))

    class Full(FullDisk):
        def write(self, data):
            raise OSError(getattr(errno, code), why)

    real = files.tempfile.TemporaryFile
    monkeypatch.setattr(files.tempfile, "TemporaryFile", lambda *a, **k: Full(real(*a, **k)))
    with pytest.raises(FerkitError) as e:
        check_output(old, "--json")
    assert str(e.value) == f"--json {old}: cannot write in {tmp_path} ({why}); free some space, or choose another location"
    assert os.listdir(tmp_path) == ["m.json"] and old.read_text() == "earlier results" and old.stat().st_mtime == 1e9


def test_bad_outputs_fail_before_the_work(tiny_run, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "run")
    for argv, message in [
        (["train", "--model", "shallow", "--out", str(tmp_path / "loop1")], "a symbolic link to nothing (a missing target or a loop"),
        (["train", "--model", "shallow", "--out", str(tmp_path / "dangling")], "a symbolic link to nothing"),
        # "-" is stdout to a Unix user: a file named "-" was written, a second flag's over the first's
        (["evaluate", str(tiny_run), "--json", "-"], "--json -: ferkit writes files, not standard output"),
        (["predict", str(tmp_path), "--model", str(tiny_run), "--csv", "-"], "--csv -: ferkit writes files"),
        (["train", "--model", "shallow", "--out", str(tmp_path / ("x" * 300))], "cannot use it (File name too long)"),
        (["evaluate", str(tiny_run), "--json", str(tmp_path / ("x" * 300) / "m.json")], "cannot use it (File name too long)"),
        (["evaluate", str(tiny_run), "--json", str(tmp_path / "afile" / "m.json")], "is a file, not a folder"),
        (["evaluate", str(tiny_run), "--json", str(tmp_path)], "is a folder; give a file name"),
        # a trailing slash names a folder that is not there yet: a file took the folder's name
        (["evaluate", str(tiny_run), "--json", str(tmp_path / "new") + "/"], "new/: names a folder; give a file name, e.g."),
        (["report", str(tiny_run), "--out", str(tmp_path / "new") + "/"], "new/: names a folder; give a file name"),
        (["export", str(tiny_run), "--onnx", "/proc/x/m.onnx"], "--onnx /proc/x/m.onnx: cannot write in /proc"),
        # a graph named otherwise (or a folder: the slash is dropped) is then taken for a checkpoint
        (["export", str(tiny_run), "--onnx", str(tmp_path / "m.pt")], "m.pt: name the graph NAME.onnx"),
        (["export", str(tiny_run), "--onnx", str(tmp_path / "graphs") + "/"], "graphs/: name the graph NAME.onnx"),
        (["export", str(tiny_run), "--pt", str(tmp_path / "m.onnx")], "m.onnx: name the checkpoint NAME.pt"),
        (["export", str(tiny_run), "--pt", str(tmp_path / "new") + "/"], "new/: name the checkpoint NAME.pt (or .pth)"),
        (["export", str(tiny_run), "--pt", str(tmp_path / "m.pt"), "--onnx", str(tmp_path / "m.onnx")], ", not both"),
        (["plot", str(tiny_run), "--out", str(tmp_path / "afile")], "is a file, not a folder"),
        (["visualize", str(tiny_run), "--out", str(tmp_path / "afile" / "v")], "is a file, not a folder"),
        (["report", str(tiny_run), "--no-data", "--out", "/proc/r.html"], "cannot write in /proc"),
        (["train", "--model", "shallow", "--out", str(tmp_path / "afile" / "run")], "is a file, not a folder"),
        (["search", "--model", "shallow", "--out", str(tmp_path / "afile")], "is a file, not a folder"),
    ]:
        assert main(argv) == 2, argv
        out = capsys.readouterr()
        assert message in out.err and "Traceback" not in out.err, (argv, out.err)
        assert "evaluating" not in out.out  # refused before the work
    # a missing folder is created when the output is written
    assert main(["evaluate", str(tiny_run), "--json", str(tmp_path / "new" / "dir" / "m.json"), "--data", str(tiny_run.parent / "fer.csv")]) == 0
    assert json.loads((tmp_path / "new" / "dir" / "m.json").read_text())["split"] == "test"


def test_no_output_goes_into_the_image_folder_a_command_reads(tiny_run, tmp_path, capsys, monkeypatch):
    """An output inside an image-folder data set was written among its faces: a run (train, search) or a metrics
    file (evaluate --json), a graph (export --onnx --int8, calibrated on the folder) put files there that each
    later reading left out with a warning, and a run's folder there became a class once plot or visualize wrote
    into it. Each is refused before the work, with the same message; outside the folder all is as ever."""
    from conftest import write_image_folder

    data = write_image_folder(tmp_path / "faces")
    faces = sorted(data.rglob("*"))
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    monkeypatch.setenv("FERKIT_DATA", str(data))  # the default data: read where --data is not given
    for argv, flag, out in [(["train", "--model", str(spec), "--data", str(data)], "--out", data / "run"),
                            (["train", "--model", str(spec), "--epochs", "1"], "--out", data),
                            (["evaluate", str(tiny_run), "--data", str(data), "--split", "all"], "--json", data / "happy" / "m.json"),
                            (["export", str(tiny_run), "--int8", "--data", str(data)], "--onnx", data / "m.onnx")]:
        assert main([*argv, flag, str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} {out}: {'is' if out == data else 'lies inside'} the data folder {data}, and what "
                              f"it writes there would be read with the data (an image as a face); choose another {flag} "
                              "outside it"), err
        assert sorted(data.rglob("*")) == faces, argv
    assert main(["export", str(tiny_run), "--onnx", str(data / "m.onnx")]) == 0  # no --int8: the folder is not read


def test_evaluate_never_writes_over_the_data_its_run_trained_on(tiny_run, tmp_path, capsys):
    """Scored on other data, --json naming the run's own FER2013 file (a .csv name, which is no model, photo or
    video) replaced it with the metrics."""
    import shutil

    from ferkit.checkpoint import read_checkpoint, save_checkpoint

    own, other = tmp_path / "own.csv", tmp_path / "other.csv"
    shutil.copy(tiny_run.parent / "fer.csv", own)
    shutil.copy(tiny_run.parent / "fer.csv", other)
    before = own.read_bytes()
    run = shutil.copytree(tiny_run, tmp_path / "run")
    best = read_checkpoint(run / "best.pt")
    best["config"]["data"] = str(own)
    save_checkpoint(best, run / "best.pt")
    assert main(["evaluate", str(run), "--data", str(other), "--json", str(own)]) == 2
    assert f"error: --json {own}: is the command's own input" in capsys.readouterr().err and own.read_bytes() == before


def test_evaluate_refuses_a_bad_model_before_loading_the_data(tiny_run, tmp_path, capsys, monkeypatch):
    import ferkit.data

    assert main(["export", str(tiny_run), "--onnx", str(tmp_path / "m.onnx"), "--tta"]) == 0  # the mirror inside
    monkeypatch.setattr(ferkit.data, "load_fer", lambda *a, **k: pytest.fail("the data was loaded before the model was checked"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for argv, message in [
        (["evaluate", str(tmp_path / "junk.pt")], "junk.pt: not a readable ferkit checkpoint"),
        (["evaluate", str(tmp_path / "m.onnx"), "--no-tta"], str(tmp_path / "m.onnx") + " has TTA built in at export"),
        # int8 is a graph: a checkpoint names the export that makes one, a bundled model its shipped graph
        (["evaluate", str(tiny_run), "--precision", "int8"], f"export one (ferkit export {tiny_run} --onnx model.int8.onnx --int8)"),
        (["evaluate", "fer2013", "--precision", "int8"], "evaluate its shipped graph: ferkit evaluate "),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_a_hog_model_is_refused_for_onnx_and_int8_with_a_way_that_works(tiny_hog_run, tmp_path, capsys, monkeypatch):
    """evaluate --precision int8 advised an export that refuses HOG hybrids; export --int8 read (and warned about)
    its calibration faces before refusing the model."""
    import numpy as np
    from PIL import Image

    import ferkit.data
    import ferkit.onnx_export

    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "face.png")
    monkeypatch.setattr(ferkit.data, "load_fer", lambda *a, **k: pytest.fail("the data was read before the model was refused"))
    monkeypatch.setattr(ferkit.onnx_export, "calibration_faces", lambda *a, **k: pytest.fail("calibration faces read for a HOG model"))
    hog = f"{tiny_hog_run} is a HOG hybrid model, whose HOG features scikit-image computes outside the network: no ONNX graph can hold it"
    for argv, message in [
        (["evaluate", str(tiny_hog_run), "--precision", "int8"],
         f"int8 models are exported ONNX graphs, and {hog}; evaluate it on torch with --precision fp32 or bf16 (or leave --precision out)"),
        (["export", str(tiny_hog_run), "--onnx", str(tmp_path / "m.onnx"), "--int8"], f"{hog}; run it on torch as it is (fp32 or bf16)"),
        (["predict", str(tmp_path / "face.png"), "--crops", "--model", str(tiny_hog_run), "--backend", "onnx"],
         f"{hog}, and the onnx backend runs ONNX graphs; run it on torch: backend='torch' (--backend torch, or leave --backend onnx out)"),
        (["predict", str(tmp_path / "face.png"), "--crops", "--model", str(tiny_hog_run), "--precision", "int8"],  # was: --backend onnx
         f"{hog}, and int8 models are ONNX graphs; run it on torch in fp32 or bf16: precision='fp32' (--precision fp32 or bf16, "
         "or leave --precision out)"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "ferkit export" not in err and "warning" not in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_flags_are_never_abbreviated_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epoch", "1"])
    assert e.value.code == 2 and "unrecognized arguments: --epoch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("ferkit 0.")


def _flag_actions(command: str) -> dict:
    from ferkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {s: a for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("command", ["train", "search"])
def test_each_fixed_set_of_a_train_config_field_is_its_flags_choices(command):
    """A field with Literal values (config.py) offers exactly those on its flag: one list for both."""
    import typing
    from dataclasses import fields

    from ferkit.config import TrainConfig, choices, flag
    from ferkit.precisions import TORCH

    hints, actions = typing.get_type_hints(TrainConfig), _flag_actions(command)
    fixed = {f.name: choices(hints[f.name]) for f in fields(TrainConfig) if choices(hints[f.name])}
    assert set(fixed) == {"optimizer", "schedule", "precision", "labels", "label_mode"}  # none lost its Literal
    assert fixed["precision"] == TORCH
    for name, values in fixed.items():
        assert tuple(actions[flag(name)].choices or ()) == values, flag(name)
    assert actions["--device"].choices is None  # cuda:N takes any N: checked by the config


def test_inference_flags_offer_both_backends_precisions():
    from ferkit.precisions import ANY, ONNX, TORCH

    assert set(ANY) == set(TORCH) | set(ONNX)
    for command in ("predict", "demo", "serve"):
        assert tuple(_flag_actions(command)["--precision"].choices) == ANY, command


@pytest.mark.parametrize("argv", [["train", "--optimizer", "rmsprop"], ["train", "--precision", "int8"],
                                  ["search", "--labels", "sfew"], ["train", "--label-mode", "vote"]])
def test_a_bad_choice_is_one_argparse_line_naming_the_flag(argv, capsys):
    with pytest.raises(SystemExit) as e:  # refused while parsing: before any config, data or model is read
        main(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert e.value.code == 2 and errors == [f"ferkit {argv[0]}: error: argument {argv[1]}: invalid choice: {argv[2]!r} "
                                            f"(choose from {', '.join(map(repr, _flag_actions(argv[0])[argv[1]].choices))})"]


@pytest.mark.parametrize("argv", [["train", "--resume", ""], ["train", "--out", ""], ["train", "--data", ""], ["train", "--config", ""],
                                  ["predict", ""], ["predict", "a.jpg", "", "b.jpg"], ["predict", "a.jpg", "--model", ""],
                                  ["predict", "a.jpg", "--json", ""], ["predict", "a.jpg", "--annotate", ""],
                                  ["evaluate", "ferplus-fast", "--labels-file", ""], ["evaluate", ""], ["export", "x.pt", "--onnx", ""],
                                  ["serve", "--host", ""], ["train", "--teacher", ""], ["search", "--out", ""]])
def test_an_empty_value_is_refused_not_taken_for_a_value_not_given(argv, capsys):
    """The commands read "" as not given (`args.out or DEFAULT`): `train --resume "$RUN"` with RUN unset
    started a new 30-epoch run, `--model ""` ran the default model, `predict ""` searched the current
    folder, `--json ""` wrote nothing. Every text flag and positional refuses it while parsing (parsed
    only here: without the check, `train --resume ""` would start that run)."""
    from ferkit.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    name = next((a for a in argv[1:] if a.startswith("--")), None)
    assert e.value.code == 2 and len(errors) == 1, errors
    assert f"error: argument {name or 'PATH' if argv[0] == 'predict' else name or 'checkpoint'}: an empty value; give one" in errors[0], errors


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": "shallow", "train_subset": 500}))
    assert main(["train", "--resume", str(tmp_path / "run"), "--train-subset", "10"]) == 2
    err = capsys.readouterr().err
    assert "no last.pt there, so nothing to resume" in err and str(tmp_path / "run") in err


def test_resume_of_a_file_a_missing_folder_or_an_empty_last_pt_says_which(tmp_path, capsys):
    """(each said "no config.json there", or for an empty last.pt torch's "EOFError: ")"""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "shallow"}))
    (run / "last.pt").write_bytes(b"")
    for given, message in [(run / "last.pt", f"--resume {run / 'last.pt'}: a file, not a run folder; give the --out folder "
                                             f"of a ferkit train run (here {run})"),
                           (tmp_path / "nope", f"--resume {tmp_path / 'nope'}: no such folder; give the --out folder"),
                           (run, f"{run / 'last.pt'}: the file is empty (a copy or a save cut off at its start)")]:
        assert main(["train", "--resume", str(given)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {message}")


def test_export_writes_into_a_new_folder_and_checks_the_file(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), "--onnx", str(tmp_path / "new" / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "new" / "m.onnx").stat().st_size > 0 and "max |diff|" in out and "nan" not in out


def test_evaluate_a_bundled_model_by_name_writes_metrics_here(tiny_run, tmp_path, monkeypatch, capsys):
    import shutil

    import ferkit.predict as fp

    weights = tmp_path / "weights"  # stands in for ferkit's own folder, which is not the user's
    weights.mkdir()
    shutil.copy(tiny_run / "best.pt", weights / "fer2013.pt")
    monkeypatch.setattr(fp, "WEIGHTS", weights)
    monkeypatch.setitem(fp.BUNDLED, "fer2013", weights / "fer2013.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "fer2013", "--data", str(tiny_run.parent / "fer.csv"), "--split", "val"]) == 0
    assert "fer2013 on" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics-fer2013.pt-val.json").read_text())
    assert metrics["n"] > 0 and metrics["checkpoint"] == "fer2013"
    # by a path into ferkit's folder: here too, named by its absolute path (it was the relative one typed)
    assert main(["evaluate", "weights/fer2013.pt", "--data", str(tiny_run.parent / "fer.csv"), "--split", "val"]) == 0
    assert json.loads((tmp_path / "metrics-fer2013.pt-val.json").read_text())["checkpoint"] == str(weights / "fer2013.pt")
    assert list(weights.iterdir()) == [weights / "fer2013.pt"]


# One flag per TrainConfig field, each with a value none of the defaults has. A new field fails the
# test until it gets a flag here (or a reason to have none).
TRAIN_FLAG_VALUES = {
    "model": (["--model", "deep"], "deep"),
    "data": (["--data", "faces.csv"], "faces.csv"),
    "skip_bad_rows": (["--skip-bad-rows"], True),
    "overrides": (["--set", "fcs.0.units=24"], {"fcs.0.units": 24}),  # --set FIELD=VALUE, dest 'set'
    "epochs": (["--epochs", "3"], 3),
    "batch_size": (["--batch-size", "16"], 16),
    "lr": (["--lr", "0.05"], 0.05),
    "l2": (["--l2", "0.001"], 0.001),
    "optimizer": (["--optimizer", "sgd"], "sgd"),
    "schedule": (["--schedule", "cosine"], "cosine"),
    "label_smoothing": (["--label-smoothing", "0.2"], 0.2),
    "ema": (["--ema", "0.99"], 0.99),
    "flip": (["--no-flip"], False),
    "crop_pad": (["--crop-pad", "3"], 3),
    "rotate": (["--rotate", "7.5"], 7.5),
    "zoom": (["--zoom", "0.2"], 0.2),
    "erase": (["--erase", "0.4"], 0.4),
    "photo_aug": (["--photo-aug", "0.3"], 0.3),
    "mixup": (["--mixup", "0.2"], 0.2),
    "cutmix": (["--cutmix", "1"], 1.0),
    "mixup_prob": (["--mixup-prob", "0.3"], 0.3),
    "tta": (["--tta"], True),
    "seed": (["--seed", "9"], 9),
    "device": (["--device", "cpu"], "cpu"),
    "precision": (["--precision", "bf16"], "bf16"),
    "threads": (["--threads", "2"], 2),
    "train_subset": (["--train-subset", "100"], 100),
    "labels": (["--labels", "ferplus"], "ferplus"),
    "labels_file": (["--labels-file", "votes.csv"], "votes.csv"),
    "label_mode": (["--label-mode", "multi_target"], "multi_target"),
    "label_names": (["--label-names", "cat,dog"], "cat,dog"),
    "split_seed": (["--split-seed", "5"], 5),
    "val_fraction": (["--val-fraction", "0.2"], 0.2),
    "test_fraction": (["--test-fraction", "0.15"], 0.15),
    "teacher": (["--teacher", "a.pt,b.pt", "--teacher", "c.pt"], ["a.pt", "b.pt", "c.pt"]),
    "init_from": (["--init-from", "resnet18.pth"], "resnet18.pth"),
    "distill": (["--distill", "0.8"], 0.8),
    "distill_temp": (["--distill-temp", "4"], 4.0),
    "teacher_tta": (["--teacher-tta"], True),
    "flip_consistency": (["--flip-consistency", "0.5"], 0.5),
    "freeze": (["--freeze", "-1"], -1),
    "backbone_lr": (["--backbone-lr", "0.1"], 0.1),
}
TRAIN_FIELDS_WITHOUT_FLAGS = {}  # field: why it has no flag


def test_every_train_config_field_has_a_train_flag_that_reaches_it():
    from dataclasses import fields

    from ferkit.cli import build_parser, config_from_args
    from ferkit.config import TrainConfig
    from ferkit.train import resolve_config

    names = [f.name for f in fields(TrainConfig)]
    assert sorted(TRAIN_FLAG_VALUES) == sorted(set(names) - set(TRAIN_FIELDS_WITHOUT_FLAGS))
    argv = ["train"] + [a for flags, _ in TRAIN_FLAG_VALUES.values() for a in flags]
    cfg = config_from_args(build_parser().parse_args(argv))
    default = resolve_config()  # what `ferkit train` gives each field without its flag
    for name, (flags, value) in TRAIN_FLAG_VALUES.items():
        assert getattr(default, name) != value, f"{flags} sets {name} to its default: the test could not see it ignored"
        assert getattr(cfg, name) == value, f"{' '.join(flags)} did not reach TrainConfig.{name}"


# One `ferkit serve` flag per Settings field, each with a value its default does not have.
SERVE_FLAG_VALUES = {
    "model": (["--model", "m.onnx"], "m.onnx"),
    "backend": (["--backend", "torch"], "torch"),
    "max_upload_mb": (["--max-upload-mb", "2.5"], 2.5),
    "max_upload_pixels": (["--max-upload-pixels", "1000"], 1000),
    "max_concurrent": (["--max-concurrent", "3"], 3),
    "upload_timeout": (["--upload-timeout", "4"], 4.0),
    "queue_timeout": (["--queue-timeout", "5"], 5.0),
    "max_queue": (["--max-queue", "7"], 7),
    "threads": (["--threads", "2"], 2),
    "precision": (["--precision", "int8"], "int8"),
    "max_connections": (["--max-connections", "50"], 50),
    "header_timeout": (["--header-timeout", "3"], 3.0),
    "tta": (["--tta"], True),
}


def test_every_server_setting_has_a_serve_flag_that_reaches_it(monkeypatch):
    """Flags made from Settings' fields (settings.py): each reaches its field, and without flags the
    server gets Settings' own defaults (no second copy of them in the CLI)."""
    from dataclasses import fields

    import ferkit.serve
    from ferkit.settings import Settings

    got = []
    monkeypatch.setattr(ferkit.serve, "serve", lambda host, port, settings, workers, log_level: got.append(settings))
    assert sorted(SERVE_FLAG_VALUES) == sorted(f.name for f in fields(Settings))
    main(["serve"])
    main(["serve"] + [a for flags, _ in SERVE_FLAG_VALUES.values() for a in flags])
    assert got[0] == Settings()
    for name, (flags, value) in SERVE_FLAG_VALUES.items():
        assert getattr(got[0], name) != value, f"{flags} gives {name} its default: the test could not see it ignored"
        assert getattr(got[1], name) == value, f"{' '.join(flags)} did not reach Settings.{name}"


def test_a_run_folder_without_best_pt_means_its_last_pt_everywhere(tiny_run, tmp_path, capsys):
    """report fell back to last.pt; export and evaluate said 'best.pt: no such checkpoint'."""
    import shutil

    from ferkit.checkpoint import load_checkpoint

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "best.pt").unlink()
    assert main(["export", str(run), "--pt", str(tmp_path / "slim.pt")]) == 0
    assert load_checkpoint(run).meta["epoch"] == 3 == load_checkpoint(tmp_path / "slim.pt").meta["epoch"]
    (run / "last.pt").unlink()
    assert main(["export", str(run), "--pt", str(tmp_path / "none.pt")]) == 2
    assert "best.pt: no such checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("link, why", [("best.pt", "a loop of symbolic links (it leads back to itself)"),
                                       ("gone.pt", "a symbolic link to {run}/gone.pt, which does not exist")])
def test_a_best_pt_that_links_to_no_file_is_an_error_not_last_pt(tiny_run, tmp_path, capsys, link, why):
    """(evaluate RUN scored last.pt in its place, silently, and wrote its metrics as best.pt's)"""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "best.pt").unlink()
    (run / "best.pt").symlink_to(link)  # ln -s best.pt best.pt: a loop; ln -s gone.pt best.pt: dangling
    assert main(["evaluate", str(run), "--data", str(tiny_run.parent / "fer.csv")]) == 2
    assert capsys.readouterr().err == (f"error: {run / 'best.pt'}: {why.format(run=os.path.realpath(run))}; fix the link, "
                                       "or remove it to use the run's last.pt\n")
    assert not list(run.glob("metrics-*.json"))


@pytest.mark.parametrize("given", [",", "a.pt,,b.pt", "a.pt,"])
def test_an_empty_name_in_a_teacher_list_is_refused(given, capsys):
    """(`--teacher ,` trained without a teacher, silently)"""
    from ferkit.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--teacher", given])
    assert f"--teacher {given!r}: an empty name in the list" in capsys.readouterr().err


def test_a_file_name_that_is_not_utf8_prints_on_a_strict_stdout(tiny_checkpoint, tmp_path, monkeypatch):
    """Under en_US.UTF-8 (any locale but C and POSIX) Python's stdout is strict: predict's line naming a photo
    named in Latin-1 ('caf\\xe9.png', a lone surrogate to Python) was a UnicodeEncodeError traceback."""
    import io

    import numpy as np
    from PIL import Image

    photo = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(photo)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdout", out)
    assert main(["predict", photo, "--crops", "--model", str(tiny_checkpoint)]) == 0
    out.seek(0)
    assert out.read().startswith(str(tmp_path / "caf\\udce9.png") + "  48x48, 1 face")  # as stderr's messages say it
