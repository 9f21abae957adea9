import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from conftest import tiny_spec, write_fer_csv
from ferkit.cli import main
from ferkit.config import TrainConfig, read_file
from ferkit.search import cv_folds, fold_data, parse_param, run_search, search_space, storage_url
from ferkit.train import resolve_config


@pytest.fixture
def files(tmp_path):
    csv_file = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=42)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    return csv_file, spec


def _argv(files, out, *extra):
    csv_file, spec = files
    return ["search", "--model", str(spec), "--data", str(csv_file), "--epochs", "1", "--batch-size", "21",
            "--threads", "1", "--quiet", "--out", str(out), *extra]


def _study(out, name="ferkit"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'search.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request):
    """(extra search flags, study(out)) for a fresh study: in OUT/search.db, or on the PostgreSQL
    server of $FERKIT_TEST_POSTGRES (.ci/run starts one) under a new study name, deleted afterwards."""
    if request.param == "sqlite":
        yield [], _study
        return
    url = os.environ.get("FERKIT_TEST_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server: set FERKIT_TEST_POSTGRES=postgresql://user:pass@host/db (.ci/run starts one)")
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield ["--storage", url, "--study-name", name], lambda out: optuna.load_study(study_name=name, storage=storage_url(url))
    optuna.delete_study(study_name=name, storage=storage_url(url))


def test_parse_param_kinds():
    p = parse_param("lr=loguniform:1e-4:1e-2")
    assert (p.name, p.kind, p.args) == ("lr", "loguniform", (1e-4, 1e-2))
    assert parse_param("batch_size=int:16:64").args == (16, 64)
    assert parse_param("fcs.0.units=categorical:256,512").args == (256, 512)
    assert parse_param("flip=categorical:true,false").args == (True, False)
    assert parse_param("optimizer=categorical:adam,sgd").args == ("adam", "sgd")


def test_search_given_a_run_or_a_checkpoint_as_model_gives_search_s_ways_on(files, tiny_run, tmp_path, capsys):
    """search --model RUN_DIR (or its best.pt, or a config file's model naming one) gave train's advice as if train had
    been run ("train builds a new model ...; to continue that run: ferkit train --resume ..."): what search takes, and
    what it can do with the weights (--init-from each trial), come first, training on only as what to do instead."""
    csv_file, _ = files
    takes = "search builds each trial's model from a preset name (shallow, "
    way = (f"to search with every trial starting from its weights: ferkit search --config {tiny_run / 'config.json'} "
           f"--init-from {tiny_run / 'best.pt'} (a layer whose size a trial changes starts new)")
    (tmp_path / "c.yaml").write_text(f"model: {tiny_run}\n")
    for argv, named, what in ((["--model", str(tiny_run)], f"--model {tiny_run}", "a run folder"),
                              (["--model", str(tiny_run / "best.pt")], f"--model {tiny_run / 'best.pt'}", "a checkpoint"),
                              (["--config", str(tmp_path / "c.yaml")], f"{tmp_path / 'c.yaml'}: model {tiny_run}", "a run folder")):
        assert main(["search", *argv, "--data", str(csv_file), "--out", str(tmp_path / "s")]) == 2
        err = capsys.readouterr().err
        run = "that" if what == "a run folder" else "its"
        assert err.startswith(f"error: {named}: is {what}; {takes}") and "train builds" not in err, err
        assert err.endswith(f"or a JSON/YAML spec file; {way}; to continue {run} run instead: ferkit train --resume {tiny_run}\n")
    assert not (tmp_path / "s").exists()


def test_number_strings_are_numbers_as_config_files_take_them(files):
    # YAML 1.1 reads 1e-3 as a string: 'lr takes float values, not '1e-3'' refused what --set and configs take
    cfg = resolve_config(str(files[1]))
    assert search_space(cfg, ["lr=categorical:1e-3,1e-4"], defaults=False)[0].args == (0.001, 0.0001)
    assert search_space(cfg, ["convs.0.dropout=categorical:0,5e-1"], defaults=False)[0].args == (0.0, 0.5)


def test_an_unknown_param_s_hint_names_paths_of_this_model_only():
    """The hint suggested hog.orientations for every model: on one without HOG that --param was refused in turn
    (and fcs.0.units for a backbone, which has no FC layers of its own)."""
    from ferkit.errors import ConfigError

    for model, paths, has in [
        ("shallow", "such as convs.0.dropout or fcs.0.units", "2 conv and 1 FC layers, and no hog section"),
        ("shallow-hog", "such as convs.0.dropout, fcs.0.units or hog.orientations", "2 conv and 1 FC layers, and HOG features"),
        ("resnet18", "", "resnet18's fixed layers (a backbone)"),
    ]:
        with pytest.raises(ConfigError) as e:
            search_space(resolve_config(model), ["nonsense=uniform:0:1"], defaults=False)
        assert str(e.value).endswith(f"nor a model spec path{' ' * bool(paths)}{paths} (this model has {has})"), str(e.value)
    cfg = resolve_config("shallow", overrides={"hog": {}})  # a section --set adds is one of the model's
    with pytest.raises(ConfigError, match=r"or hog.orientations \(this model has 2 conv and 1 FC layers, and HOG features\)$"):
        search_space(cfg, ["nonsense=uniform:0:1"], defaults=False)


def test_search_space_defaults_are_the_papers(files):
    cfg = resolve_config(str(files[1]))
    names = [p.name for p in search_space(cfg, ["convs.0.dropout=uniform:0:0.5", "lr=loguniform:1e-3:1e-1"])]
    assert names == ["lr", "l2", "fcs.0.units", "convs.0.dropout"]
    assert [p.name for p in search_space(cfg, ["label_smoothing=uniform:0:0.2"], defaults=False)] == ["label_smoothing"]


@pytest.mark.parametrize("param,message", [
    ("lr", "expected NAME=KIND:ARGS"),
    ("lr=normal:1:2", "unknown kind 'normal'"),
    ("lr=loguniform:0:1", "loguniform needs LO > 0"),
    ("lr=uniform:0.1:0.01", "LO (0.1) must be below HI (0.01)"),
    ("lr=uniform:a:b", "uniform takes two numbers LO:HI"),
    ("fcs.3.units=categorical:256,512", "--param fcs.3.units: no layer 3; fcs has 1 layer(s), numbered from 0: fcs.0;"),
    ("nonsense=uniform:0:1", "neither a training field"),
    ("batch_size=uniform:8:64", "batch_size takes int values"),
    ("model=categorical:shallow,deep", "model cannot be tuned"),
    ("overrides=categorical:1,2", "set it with --set FIELD=VALUE instead"),  # said --overrides, no such flag
    ("convs.0.dropout=uniform:0:1.5", "the value 1.5 gives an invalid config"),
    ("optimizer=categorical:adam,lbfgs", "--optimizer must be one of adam, adamw, sgd; got 'lbfgs'"),
    ("fcs.0.units=categorical:[256,512]", "choices must be numbers, true/false, null or words"),  # was yaml's traceback
    ("fcs.0.units=categorical:" + "[" * 3000, "choices must be numbers, true/false, null or words"),  # was a RecursionError
    # numbers and dates PyYAML reads but Python cannot hold: ValueError tracebacks
    ("fcs.0.units=categorical:256," + "1" * 5000, "choices must be numbers, true/false, null or words"),
    ("fcs.0.units=categorical:256,2001-13-01", "choices must be numbers, true/false, null or words"),
    ("lr=categorical:1e-3,abc", "lr takes float values, not 'abc'"),
    ("in_size=categorical:48,64", "in_size cannot be tuned (the faces are read once"),  # every trial at 64 failed
    ("convs.0.pool=int:0:2", "the value 1 gives an invalid config"),  # valid ends; TPE drew the 1 until 3 trials failed
    ("convs.-1.filters=int:8:16", "--param convs.-1.filters: layers count from the first, not from the end; convs has 2"),  # named --param, not --set
    # the tiny model has 3 layers before its head: trials of 4..9 failed one by one
    ("freeze=int:0:9", "the value 4 gives an invalid config: --freeze 4: "),
    ("freeze=int:2:9", "tiny.json has 3 layers before its head to freeze; give 1..3, or -1 for all"),
    ("init_from=categorical:nowhere.pt", "the value 'nowhere.pt' gives an invalid config: --init-from nowhere.pt: no such file"),
])
def test_bad_param_is_a_clear_error(files, tmp_path, capsys, param, message):
    assert main(_argv(files, tmp_path / "s", "--param", param)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # checked before anything is written


def test_a_fixed_freeze_or_init_from_that_fits_no_trial_is_refused_before_any(files, tmp_path, capsys):
    """Each was refused by each trial in turn, after the data were read, until 3 in a row had failed."""
    assert main(_argv(files, tmp_path / "s", "--freeze", "9")) == 2
    err = capsys.readouterr().err
    assert err == f"error: --freeze 9: {files[1]} has 3 layers before its head to freeze; give 1..3, or -1 for all\n", err
    assert not (tmp_path / "s").exists()
    assert main(_argv(files, tmp_path / "s", "--init-from", str(tmp_path / "none.pt"))) == 2
    err = capsys.readouterr().err
    assert err == f"error: --init-from {tmp_path / 'none.pt'}: no such file; give a state_dict (.pth) or a ferkit checkpoint (.pt)\n", err
    assert not (tmp_path / "s").exists()


def test_search_table_and_best_yaml_round_trip(files, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(_argv(files, out, "--trials", "3", "--param", "lr=loguniform:1e-5:1e-2")) == 0
    printed = capsys.readouterr().out
    assert "rank  trial  val acc" in printed and "fcs.0.units" in printed
    rows = list(csv.DictReader(open(out / "search.csv")))
    assert list(rows[0]) == ["trial", "value", "state", "lr", "l2", "fcs.0.units"]
    assert sorted(int(r["trial"]) for r in rows) == [0, 1, 2] and {r["state"] for r in rows} == {"COMPLETE"}
    values = [float(r["value"]) for r in rows]
    assert values == sorted(values, reverse=True)
    for r in rows:  # each trial's score is the best val acc of its run folder
        history = json.loads((out / "trials" / r["trial"] / "history.json").read_text())
        assert float(r["value"]) == pytest.approx(max(h["val_acc"] for h in history))
        saved = json.loads((out / "trials" / r["trial"] / "config.json").read_text())
        assert saved["lr"] == pytest.approx(float(r["lr"])) and saved["spec"]["fcs"][0]["units"] == int(r["fcs.0.units"])
    assert json.loads((out / "search.json").read_text())["trials"][0]["trial"] == int(rows[0]["trial"])

    best = TrainConfig.from_file(out / "best.yaml")
    assert best.lr == pytest.approx(float(rows[0]["lr"])) and best.overrides == {"fcs.0.units": int(rows[0]["fcs.0.units"])}
    assert not {"epochs", "train_subset"} & set(read_file(out / "best.yaml"))  # a full run: all images, the preset's epochs
    run = tmp_path / "best-run"
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["lr"] == pytest.approx(best.lr) and saved["l2"] == pytest.approx(best.l2)
    assert saved["spec"]["fcs"][0]["units"] == int(rows[0]["fcs.0.units"]) and saved["epochs"] == 1

    # rerun: the study has its 3 trials, so nothing more runs; other settings are refused
    assert main(_argv(files, out, "--trials", "3", "--param", "lr=loguniform:1e-5:1e-2")) == 0
    assert len(_study(out).trials) == 3
    capsys.readouterr()
    assert main(_argv(files, out, "--trials", "3")) == 2
    err = capsys.readouterr().err
    assert "was started with other settings (differing: params {'lr': 'lr=loguniform:1e-5:1e-2'" in err
    assert "-> {'lr': 'lr=loguniform:1e-4:1e-2'" in err  # what it was and what it is now
    # a new study in the same folder: its trial 0 would land in the first study's trials/0
    assert main(_argv(files, out, "--trials", "1", "--study-name", "other")) == 2
    assert "trials: holds the trials of an earlier search, and study 'other'" in capsys.readouterr().err


def test_cv_score_is_mean_of_folds(files, tmp_path, caplog):
    csv_file, spec = files
    cfg = resolve_config(str(spec), data=str(csv_file), epochs=2, batch_size=14, threads=1)
    folds = cv_folds(np.arange(42) % 7, 3)
    assert [len(va) for _, va in folds] == [14, 14, 14]
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(42))
    with caplog.at_level(logging.WARNING):  # a class with fewer images than folds: folds without it, said
        cv_folds(np.array([0] * 6 + [1] * 2), 3, names=("happy", "fear"))
    assert "--cv 3: fear (2) has fewer than 3 training images, so some folds train without them" in caplog.text
    images = np.arange(42 * 48 * 48, dtype=np.uint8).reshape(42, 48, 48)
    fd = fold_data(images, np.arange(42) % 7, *folds[0])
    assert fd.counts() == {"train": 28, "val": 14, "test": 0} and np.array_equal(fd.split("val")[0], images[folds[0][1]])

    study = run_search(cfg, search_space(cfg, ["lr=loguniform:1e-3:1e-2"], defaults=False), tmp_path / "cv", 1, cv=3)
    t = study.best_trial
    curves = [[h["val_acc"] for h in json.loads((tmp_path / "cv" / "trials" / "0" / f"fold{k}" / "history.json").read_text())]
              for k in range(3)]
    mean = np.mean(curves, axis=0)
    assert t.value == pytest.approx(mean.max()) and t.user_attrs["epoch"] == int(np.argmax(mean)) + 1
    assert t.user_attrs["fold_acc"] == pytest.approx([c[int(np.argmax(mean))] for c in curves], abs=1e-5)
    assert len(json.loads((tmp_path / "cv" / "trials" / "0" / "fold0" / "history.json").read_text())) == 2


def test_cv_needs_two_folds(files, tmp_path, capsys):
    """--cv 0 was a hold-out search on PublicTest, said as nothing but the table's 'val acc'."""
    for k in ("1", "0", "-3"):
        assert main(_argv(files, tmp_path / "s", "--cv", k, "--trials", "1")) == 2, k
        assert f"--cv {k}: needs at least 2 folds" in capsys.readouterr().err, k
        assert not (tmp_path / "s").exists(), k


def _cli(*argv):
    return [sys.executable, "-m", "ferkit.cli", *argv]


def test_resume_after_sigkill(tmp_path, storage):
    flags, study = storage
    csv_file = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=280)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out = tmp_path / "s"
    argv = _cli("search", "--model", str(spec), "--data", str(csv_file), "--epochs", "4", "--batch-size", "16", "--threads", "1",
                "--trials", "3", "--out", str(out), "--heartbeat", "1", "--no-default-params", "--param", "lr=loguniform:1e-3:3e-3", *flags)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "trials" / "1" / "last.pt").exists():  # trial 0 done, trial 1 mid-way
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    states = {t.number: t.state for t in study(out).trials}
    assert states[0] == TrialState.COMPLETE and states[1] == TrialState.RUNNING  # killed mid-trial

    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    trials = study(out).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert trials[1].state == TrialState.FAIL  # the killed trial, found by its stale heartbeat...
    retry = next(t for t in trials if t.system_attrs.get("retry_history") == [1])  # ...ran again with its parameters
    assert retry.state == TrialState.COMPLETE and retry.params == trials[1].params
    assert "(retry of trial 1)" in r.stdout and "resuming" in r.stdout  # from the killed trial's checkpoint
    history = json.loads((out / "trials" / str(retry.number) / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    rows = list(csv.DictReader(open(out / "search.csv")))
    assert [r["state"] for r in rows].count("COMPLETE") == 3 and "FAIL" in [r["state"] for r in rows]


def test_interrupted_search_goes_on_with_its_trial(tmp_path):
    write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=280)
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_spec().to_dict()))
    argv = _cli("search", "--model", "tiny.json", "--data", "fer.csv", "--epochs", "4", "--batch-size", "16", "--threads", "1",
                "--trials", "1", "--out", "s", "--no-default-params", "--param", "lr=loguniform:1e-3:3e-3")  # paths as typed
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out, deadline = tmp_path / "s", time.time() + 120
    while time.time() < deadline and not (out / "trials" / "0" / "last.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # as Ctrl-C
    assert proc.wait(timeout=60) == 130
    assert "rerun the same command to go on" in proc.stderr.read()
    assert [r["state"] for r in csv.DictReader(open(out / "search.csv"))] == ["FAIL"]  # the table so far

    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, retry = _study(out).trials
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert "(retry of trial 0)" in r.stdout and "resuming" in r.stdout  # from the interrupted trial's checkpoint
    history = json.loads((out / "trials" / "1" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_two_workers_share_one_study(files, tmp_path, storage):
    flags, study = storage
    out = tmp_path / "s"
    argv = _cli(*_argv(files, out, "--trials", "5", "--heartbeat", "2", *flags))
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    ran = [{int(line.split()[1].rstrip(":")) for line in o.splitlines() if " acc " in line and line.startswith("trial ")}
           for o, _ in outs]
    assert (out / "search.db").exists() == (not flags)  # the study lives where --storage says
    trials = [t for t in study(out).trials if not t.user_attrs.get("surplus")]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5
    assert all(ran) and not ran[0] & ran[1]  # both worked, on different trials...
    assert ran[0] | ran[1] == {t.number for t in trials}  # ...of one study: total = sum


def test_postgres_without_its_driver_is_a_clear_error(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if ferkit[postgres] were not installed
    assert main(_argv(files, tmp_path / "s", "--trials", "1", "--storage", "postgresql://me:secret@db.example/ferkit")) == 2
    err = capsys.readouterr().err
    assert "--storage postgresql://me:***@db.example/ferkit: PostgreSQL needs the psycopg driver: pip install 'ferkit[postgres]'" in err
    assert "secret" not in err and "Traceback" not in err


def test_storage_that_cannot_hold_the_study_is_one_line(files, tmp_path, capsys):
    import sqlite3

    foreign = tmp_path / "foreign.db"  # a SQLite file of another program, with a table of optuna's name
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE studies (x INTEGER)")
    other = tmp_path / "other.db"  # one whose tables Optuna's do not clash with: it added its dozen to them
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (x INTEGER)")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    for argv, message in [(["--storage", "sqlite://"], "an in-memory database keeps no study"),
                          (["--storage", "sqlite:///"], "an in-memory database keeps no study"),
                          (["--heartbeat", "100000000000"], "--heartbeat 100000000000: must be 1..3600 seconds"),
                          (["--storage", f"sqlite:///{foreign}"], f"{foreign} is an SQLite database of another program (its tables: studies)"),
                          (["--storage", f"sqlite:///{other}"], f"{other} is an SQLite database of another program (its tables: notes)"),
                          (["--storage", f"sqlite:///{junk}"], "cannot open (")]:
        assert main(_argv(files, tmp_path / "s", "--trials", "0", *argv)) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (tmp_path / "s").exists(), argv  # a refused search leaves no empty folder
    for db in (foreign, other):  # left as they were
        with sqlite3.connect(db) as con:
            assert len(con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()) == 1, db


def test_a_storage_locked_by_another_process_is_waited_for_said_and_refused_by_name(tmp_path, monkeypatch, caplog):
    """An open sqlite3 shell's transaction on search.db kept the search waiting a minute or more in silence,
    then failed; the wait (workers take turns writing) is kept, said once, and ends in one error naming the file."""
    from ferkit import search
    from ferkit.errors import FerkitError

    db = tmp_path / "search.db"
    storage = f"sqlite:///{db}"
    search.open_study(storage, "ferkit")
    monkeypatch.setattr(search, "LOCK_NOTICE", 0.5)

    def hold(seconds):
        code = (f"import sqlite3, time; con = sqlite3.connect({str(db)!r}, isolation_level=None); con.execute('BEGIN EXCLUSIVE'); "
                f"print('locked', flush=True); time.sleep({seconds})")
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline() == "locked\n"
        return holder

    notice = f"{db}: another process holds a lock on the search's database; waiting up to "
    monkeypatch.setattr(search, "LOCK_WAIT", 2)
    holder = hold(60)
    try:
        start = time.monotonic()
        with caplog.at_level(logging.INFO, "ferkit"), pytest.raises(FerkitError) as e:
            search.open_study(storage, "ferkit")
        assert time.monotonic() - start < 10
        assert str(e.value) == (f"--storage {storage}: {db} stayed locked by another process for 2s (an open sqlite3 shell's "
                                "transaction, a program reading or writing it); end that process, or commit or roll back its "
                                "transaction, and rerun the search (it goes on where it stopped)")
        assert caplog.text.count(notice) == 1
        with monkeypatch.context() as m:  # locked again after that look: the same error, the wait not retried
            m.setattr(search, "_wait_for_lock", lambda db, storage: None)
            start = time.monotonic()
            with pytest.raises(FerkitError) as again:
                search.open_study(storage, "ferkit")
            assert time.monotonic() - start < 10 and str(again.value) == str(e.value)
    finally:
        holder.kill()
        holder.wait()
    caplog.clear()
    monkeypatch.setattr(search, "LOCK_WAIT", 30)
    holder = hold(2)  # a lock given back within the wait: the study opens
    try:
        with caplog.at_level(logging.INFO, "ferkit"):
            assert search.open_study(storage, "ferkit").study_name == "ferkit"
        assert caplog.text.count(notice) == 1
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock: no lock on Windows")
def test_a_search_waits_for_another_opening_the_study_before_it_opens_it(files, tmp_path, monkeypatch, capsys, caplog):
    """A search opened and checked the study while another held the database, waiting in silence; now it waits
    for its turn first, says so after LOCK_NOTICE, and is refused by name after LOCK_WAIT, having created nothing."""
    from ferkit import search

    out = tmp_path / "s"
    out.mkdir()
    code = (f"import fcntl, os, time; fd = os.open({str(out)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(60)")  # as a search between its opening and its first trial
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        monkeypatch.setattr(search, "LOCK_NOTICE", 0.5)
        monkeypatch.setattr(search, "LOCK_WAIT", 2)
        with caplog.at_level(logging.INFO, "ferkit"):
            assert main(_argv(files, out, "--trials", "1")) == 2
    finally:
        holder.kill()
        holder.wait()
    db = out / "search.db"
    assert caplog.text.count(f"{db}: another search is opening the study in it; waiting up to 2s for it") == 1
    assert capsys.readouterr().err == (f"error: --storage sqlite:///{db}: another search kept {db} to itself for 2s while "
                                       "opening its study (it may wait for another program's lock on it); rerun once that "
                                       "search has started its trials, or stop it\n")
    assert list(out.iterdir()) == []  # not opened: no search.db


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock: no lock on Windows")
def test_two_searches_started_together_on_other_data_the_second_is_refused(files, tmp_path, monkeypatch, capsys):
    """Two searches on one --out with other data each found no data recorded, or the first's record and none of
    its trials begun, which a corrected rerun takes over: the last to record won and both ran their trials in one
    study. The second now waits until the first's trial runs, and is refused for its data."""
    from ferkit import search

    csv_file, spec = files
    out = tmp_path / "s"
    other = write_fer_csv(tmp_path / "other.csv", usages=("Training", "PublicTest"), n=21)
    log_file = tmp_path / "second.log"
    real, second = search._trials_until_done, []

    def start_the_second_then_trials(study, *args):
        # the first's data recorded, its first trial not begun
        with open(log_file, "w") as f:
            second.append(subprocess.Popen(_cli(*_argv((other, spec), out, "--trials", "1")), stdout=f, stderr=f, text=True))
        deadline = time.time() + 120
        while time.time() < deadline and second[0].poll() is None and "waiting up to" not in log_file.read_text():
            time.sleep(0.1)  # until it waits for this search's turn (or, unguarded, ran its own search)
        real(study, *args)

    monkeypatch.setattr(search, "_trials_until_done", start_the_second_then_trials)
    assert main(_argv(files, out, "--trials", "1")) == 0
    assert second[0].wait(timeout=120) == 2
    text = log_file.read_text()
    assert f"{out / 'search.db'}: another search is opening the study in it; waiting up to 60s for it" in text
    assert (f"scored its trials on other data ({csv_file}: 42 training and 42 PublicTest faces; now {other}: 21 training "
            "and 21 PublicTest faces); rerun with the data it began with") in text, text
    study = _study(out)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] and study.user_attrs["data"]["source"] == str(csv_file)


@pytest.mark.parametrize("error", ["sqlite", "oserror"])
def test_a_full_disk_leaves_no_database_of_the_search_and_an_earlier_one_stays(files, tmp_path, monkeypatch, capsys, error):
    """On a disk with room for check_output's block but not for the study, the search left a 0-byte search.db in
    the folders it made (or an OSError's traceback); now one line that says to free space. A database that was
    there before is another worker's (or an earlier run's), and stays."""
    import errno
    import sqlite3

    def full(url, **kwargs):  # as SQLite on a full disk: the file created, the schema not written
        Path(url.removeprefix("sqlite:///")).touch()
        if error == "sqlite":
            raise sqlite3.OperationalError("database or disk is full")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(optuna.storages, "RDBStorage", full)
    out = tmp_path / "new" / "s"
    assert main(_argv(files, out, "--trials", "1")) == 2
    why = "OperationalError: database or disk is full" if error == "sqlite" else "OSError: [Errno 28] No space left on device"
    assert capsys.readouterr().err == (f"error: --storage sqlite:///{out / 'search.db'}: cannot write the study, the disk is "
                                       f"full ({why}); free some space, or give the search another --out (or --storage) "
                                       "on another disk\n")
    assert not (tmp_path / "new").exists()  # nor the folders it made
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "search.db").touch()
    assert main(_argv(files, tmp_path / "s", "--trials", "1")) == 2
    assert "the disk is full" in capsys.readouterr().err and (tmp_path / "s" / "search.db").is_file()


def test_search_refused_for_its_data_leaves_no_folder(files, tmp_path, capsys):
    csv_file, spec = files
    train_only = write_fer_csv(tmp_path / "train_only.csv", usages=("Training",), n=14)
    assert main(_argv((train_only, spec), tmp_path / "s")) == 2
    assert "no PublicTest rows" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_a_search_inside_the_image_folder_it_reads_is_refused_before_a_trial(files, tmp_path, capsys):
    """(as train's --out: its trials' run folders, and their figures later, were written among the faces)"""
    from conftest import write_image_folder

    data = write_image_folder(tmp_path / "faces")
    faces = sorted(data.rglob("*"))
    argv = _argv(files, data / "s", "--trials", "0")
    argv[argv.index("--data") + 1] = str(data)
    assert main(argv) == 2
    assert f"error: --out {data / 's'}: lies inside the data folder {data}, " in capsys.readouterr().err
    assert sorted(data.rglob("*")) == faces


def test_a_search_whose_trials_all_failed_is_taken_over_by_the_corrected_rerun(files, tmp_path, tiny_run, capsys):
    """A mistyped fixed flag fails every trial; the rerun without it was refused for 'other settings'
    in that --out for good. A training run's folder is no search's --out."""
    out = tmp_path / "s"
    assert main(_argv(files, out, "--trials", "1", "--teacher", str(tmp_path / "none.pt"))) == 2
    err = capsys.readouterr().err
    assert "3 trials in a row failed (last: " in err and "a rerun with them corrected goes on in this --out" in err, err
    assert main(_argv(files, out, "--trials", "1")) == 0
    states = [t.state for t in _study(out).trials]
    assert states.count(TrialState.FAIL) == 3 and states.count(TrialState.COMPLETE) == 1
    assert main(_argv(files, out, "--trials", "2", "--teacher", str(tmp_path / "none.pt"))) == 2  # a trial completed: refused
    assert "was started with other settings (differing: teacher [] -> [" in capsys.readouterr().err
    assert main(_argv(files, tiny_run, "--trials", "1")) == 2
    assert capsys.readouterr().err == f"error: --out {tiny_run}: holds a training run (its last.pt); give the search a folder of its own\n"
    (tmp_path / "s2" / "best.yaml").mkdir(parents=True)  # refused before the first trial, not after the last
    assert main(_argv(files, tmp_path / "s2", "--trials", "1")) == 2
    assert "s2: its best.yaml is a folder, and the search writes its results there" in capsys.readouterr().err
    assert not (tmp_path / "s2" / "trials").exists()
    (tmp_path / "s2" / "best.yaml").rmdir()
    (tmp_path / "s2" / "trials").write_text("notes")  # each trial failed on it, and 3 in a row stopped the search
    assert main(_argv(files, tmp_path / "s2", "--trials", "1")) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 's2'}: its trials is not a folder, and the search trains "
                                       "each trial in trials/<n>/ there; move it away or give another --out\n")
    assert not (tmp_path / "s2" / "search.db").exists()


@pytest.mark.parametrize("epoch", [2, 1])
def test_a_full_disk_stops_the_search_and_its_rerun_goes_on_with_the_trial(files, tmp_path, monkeypatch, capsys, caplog, epoch):
    """A trial that could not save its last.pt (a full disk) failed, its epochs lost for good, and the search went
    on to trial after trial, each to fail after its first epoch's work; and the message said to resume it with
    `ferkit train --resume`, which a search never reads. Now the search stops, and its rerun goes on with the trial.
    In its first epoch (a best.pt saved, no last.pt) the retry starts the trial over: it failed, refused a new run
    over that best.pt."""
    import errno

    import ferkit.train

    real, full = ferkit.train.save_checkpoint, []

    def save(ckpt, path):
        if path.name == "last.pt" and ckpt["epoch"] == epoch and not full:
            full.append(path)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(ckpt, path)

    monkeypatch.setattr(ferkit.train, "save_checkpoint", save)
    out, argv = tmp_path / "s", _argv(files, tmp_path / "s", "--trials", "1", "--epochs", "3")
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"error: {out / 'trials' / '0' / 'last.pt'}: cannot write it (No space left on device); "
                                       "free some space, then rerun the same ferkit search command: it goes on with trial 0 "
                                       "(from its last whole epoch, where it saved one)\n")
    first, queued = _study(out).trials
    assert first.state == TrialState.FAIL and queued.state == TrialState.WAITING and queued.params == first.params
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, "ferkit.search"):
        assert main(argv) == 0
    assert "trial 1: lr=" in caplog.text and "(retry of trial 0)" in caplog.text and "failed" not in caplog.text, caplog.text
    # in trial 0's folder, from the epoch its last.pt held
    assert not (out / "trials" / "0").exists() and read_file(out / "trials" / "1" / "config.json")["epochs"] == 3
    assert _study(out).trials[1].state == TrialState.COMPLETE
    assert [h["epoch"] for h in json.loads((out / "trials" / "1" / "history.json").read_text())] == [1, 2, 3]


def test_a_rerun_on_other_data_is_refused_once_a_trial_has_completed(files, tmp_path, capsys):
    """--data is each worker's own path, so no setting the study compares: a rerun given other data went on,
    and ranked the scores of two data sets in one table (and best.yaml)."""
    csv_file, spec = files
    out = tmp_path / "s"
    assert main(_argv(files, out, "--trials", "1")) == 0
    other = write_fer_csv(tmp_path / "other.csv", usages=("Training", "PublicTest"), n=21)
    assert main(_argv((other, spec), out, "--trials", "2")) == 2
    err = capsys.readouterr().err
    assert (f"scored its trials on other data ({csv_file}: 42 training and 42 PublicTest faces; now {other}: 21 training "
            "and 21 PublicTest faces); rerun with the data it began with") in err, err
    assert len(_study(out).trials) == 1
    copy = tmp_path / "copy" / "fer.csv"  # the same faces elsewhere (another worker's machine): the same study
    copy.parent.mkdir()
    copy.write_bytes(csv_file.read_bytes())
    assert main(_argv((copy, spec), out, "--trials", "1")) == 0


def test_cross_validation_of_ferplus_votes_is_refused_up_front(files, tmp_path, capsys):
    """The folds reorder FER2013's rows, which FER+'s votes follow: every trial failed on a vote file
    looked for beside 'fer.csv [fold 1/2]'."""
    assert main(_argv(files, tmp_path / "s", "--labels", "ferplus", "--cv", "2", "--trials", "1")) == 2
    assert "--cv 2 with --labels ferplus: FER+'s votes follow FER2013's rows" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value_json", ['"x"', "[1", '{"params": {}}'])
def test_a_study_whose_recorded_settings_are_damaged_is_one_error(tmp_path, value_json):
    """A search resumed on a study whose settings attribute was edited: a TypeError in the comparison (a string),
    or optuna's JSONDecodeError (not JSON), as a traceback."""
    import sqlite3

    from ferkit.errors import ConfigError
    from ferkit.search import _check_settings, open_study

    storage = f"sqlite:///{tmp_path / 'search.db'}"
    open_study(storage, "ferkit").set_user_attr("settings", {"config": {}})
    with sqlite3.connect(tmp_path / "search.db") as db:
        db.execute("update study_user_attributes set value_json = ? where key = 'settings'", (value_json,))
    with pytest.raises(ConfigError, match=r"study 'ferkit' in sqlite:///.*search.db: its recorded settings are not what "
                                          "ferkit writes"):
        _check_settings(open_study(storage, "ferkit"), {"params": {}, "cv": 0, "spec": {}, "config": {}}, storage)
