import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_fer_csv
from ferkit import runs
from ferkit.errors import FerkitError


def test_read_run(tiny_run):
    run = runs.read_run(tiny_run)
    assert run.name == "run" and len(run.history) == 3 and run.config["spec"]["convs"]
    assert len(run.iterations) > 3 and np.isfinite(run.iterations).all()
    assert list(runs.column(run.history, "epoch")) == [1, 2, 3]


def test_a_resumed_run_s_history_reads_as_one(tiny_run, tmp_path):
    """A resume continues the count of epochs (1, 2, 3, then 4): no gap to refuse, in history.json, history.csv
    or last.pt's."""
    import shutil

    from ferkit.checkpoint import checkpoint_run
    from ferkit.train import fit, resolve_config, resume_config

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    fit(resolve_config(base=resume_config(run).to_dict(), epochs=4), run, resume=True, progress=False)
    assert list(runs.column(checkpoint_run(run / runs.LAST, "last").history, "epoch")) == [1, 2, 3, 4]
    assert list(runs.column(runs.read_run(run).history, "epoch")) == [1, 2, 3, 4]
    (run / runs.HISTORY_JSON).unlink()
    assert list(runs.column(runs.read_run(run).history, "epoch")) == [1, 2, 3, 4]


def test_read_run_errors(tmp_path):
    with pytest.raises(FerkitError, match="no such run folder"):
        runs.read_run(tmp_path / "missing")
    with pytest.raises(FerkitError, match="not a run folder"):
        runs.read_run(tmp_path)
    with pytest.raises(FerkitError, match=r"^/dev/null: empty \(the null device, not a file\); give the --out folder"):
        runs.read_run("/dev/null")  # (it said "no such run folder" of a path that exists)


@pytest.mark.parametrize("name,text,message", [
    (runs.HISTORY_JSON, '{"a": 1}', "history.json: not a training history (a list of per-epoch rows); got dict"),
    (runs.HISTORY_JSON, '[null, 5, "x"]', "history.json: row 1 is not an epoch's record"),
    (runs.HISTORY_JSON, '[{"epoch": 1, "val_acc": 0.5}, {"epoch": "x"}]', "history.json: row 2 is not an epoch's record"),
    (runs.HISTORY_JSON, '[{"epoch": 1, "val_acc": "high"}]', "history.json: row 1 is not an epoch's record"),
    (runs.HISTORY_CSV, "epoch,val_acc\n1,abc\n", "history.csv: not a history table of numbers"),
    # another tool's table: epochs and nothing ferkit measures (plot drew four empty figures, report empty charts)
    (runs.HISTORY_CSV, "epoch,loss\n1,2.0\n2,1.5\n", "history.csv: no train_loss, train_acc, val_loss, val_acc in it, so not a "
     "ferkit training history (its fields: epoch, loss)"),
    (runs.HISTORY_JSON, '[{"epoch": 1}]', "history.json: no train_loss, train_acc, val_loss, val_acc in it"),
    # a hand-edited 1e308 overflowed matplotlib's ticks in plot and report (NaN is an epoch without validation)
    (runs.HISTORY_JSON, '[{"epoch": 1, "train_loss": 1e308, "val_acc": NaN}]', "history.json: row 1 is not an epoch's record"),
    # a NaN epoch (an empty field of history.csv) passed, and the summary's int() of the best epoch was a ValueError
    (runs.HISTORY_JSON, '[{"epoch": NaN, "train_loss": 1, "val_acc": 0.5}]', "history.json: row 1 is not an epoch's record"),
    (runs.HISTORY_CSV, "epoch,train_loss,val_acc\n1,1,0.5\n,1,0.6\n", "history.csv: row 2 is not an epoch's record"),
    # an epoch twice or out of order, which train.py never writes (a resume rewrites the history from last.pt): plot
    # drew its lines back and forth and the summary counted the repeated epoch twice
    (runs.HISTORY_JSON, '[{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.6}, {"epoch": 2, "val_acc": 0.7}]',
     "history.json: row 3's epoch is 2, not after row 2's (2): a training history has each epoch once, in order (two "
     "histories joined, or rows edited?); rerun the command that wrote it"),
    (runs.HISTORY_CSV, "epoch,train_loss,val_acc\n2,1,0.5\n1,1,0.6\n", "history.csv: row 2's epoch is 1, not after row 1's (2)"),
    # an epoch missing, which train.py never writes either (a resume continues the count): plot drew a line over the gap
    (runs.HISTORY_CSV, "epoch,train_loss,val_acc\n1,1,0.5\n2,1,0.6\n5,1,0.7\n",
     "history.csv: row 3's epoch is 5, not 3, the one after row 2's (2): a training history has every epoch, none missing "
     "(rows deleted or edited?); rerun the command that wrote it"),
    (runs.HISTORY_JSON, '[{"epoch": 1, "val_acc": 0.5}, {"epoch": 1.5, "val_acc": 0.6}]', "history.json: row 2's epoch is 1.5, not 2,"),
    (runs.ITERATIONS, "iteration,loss\n1,0.5\n2,-1e308\n", "iterations.csv: not an iteration,loss table (a loss over 1e+12)"),
    # the line, not numpy's "row 1" counted from the first number
    (runs.ITERATIONS, "iteration,loss\n1,0.5\n2,abc\n", "iterations.csv: not an iteration,loss table (line 3: could not convert"),
    (runs.ITERATIONS, "step,value\n1,0.5\n", "iterations.csv: not an iteration,loss table (no loss field)"),
    (runs.HISTORY_CSV, "epoch,val_acc\n1,0.5\n\n3,0.6,9\n", "history.csv: not a history table of numbers (line 4: not the 2 fields"),
    (runs.CONFIG, "[1]", "config.json: not a training config (a JSON object of settings)"),
    # (report's traceback: an AttributeError in _spec_text, a TypeError in data.read_names)
    (runs.CONFIG, '{"spec": "hello"}', "config.json: not the training config `ferkit train` writes (spec: model spec must "
     "be a mapping of field names to values; got 'hello'); restore it, or give the run's best.pt instead"),
    (runs.CONFIG, '{"spec": {"convs": [{"filters": "x"}]}}', "(spec: invalid model spec: convs[0].filters must be an integer"),
    (runs.CONFIG, '{"label_names": 5}', "config.json: not the training config `ferkit train` writes (label_names must be a text or "
     "null; got 5)"),
    (runs.CONFIG, '{"tta": "no"}', "config.json: not the training config `ferkit train` writes (tta must be true or false; got 'no')"),
    # train writes finite numbers alone: report tabled these as the run's settings
    *[(runs.CONFIG, '{"' + k + '": ' + v + '}', f"config.json: not the training config `ferkit train` writes ({k} is "
       f"{v.lower().replace('infinity', 'inf')}, which train never writes (NaN or Infinity))") for k, v in (("test_fraction", "Infinity"), ("threads", "NaN"),
                                                                             ("lr", "-Infinity"))],
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]]}', "metrics-test.json: not the metrics `ferkit evaluate` "
     "writes (n: the number of faces); rerun ferkit evaluate, or delete the file"),  # plot: KeyError 'per_class_accuracy'
    ("metrics-test.json", '{"confusion_matrix": "abc", "n": 2, "accuracy": 1, "per_class_accuracy": {"a": 1, "b": null}, '
     '"labels": ["a", "b"]}', "(confusion_matrix: 2 rows of 2 counts, "),
    ("metrics-test.json", '{"confusion_matrix": [], "n": 2, "accuracy": 1, "per_class_accuracy": {}, "labels": 5}',
     "(labels: a list of emotion names)"),
    # Infinity, 1e308 and -5 counts (JSON reads them) were an OverflowError in plot and report after some PNGs were written
    *[("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, ' + v + ']], "n": 2, "accuracy": 1, "per_class_accuracy": {}, '
       '"labels": ["a", "b"]}', "(confusion_matrix: 2 rows of 2 counts, whole numbers from 0 to 1e+12)")
      for v in ("Infinity", "NaN", "1e308", "-5", "0.5")],
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": Infinity}', "(n: the number of faces)"),
    # NaN, Infinity or 5 as a score: plot drew them (numpy's warnings) and tabled "inf" as a class's accuracy
    *[("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": 2, "accuracy": ' + v + ', "per_class_accuracy": {}, '
       '"labels": ["a", "b"]}', "(accuracy: a number from 0 to 1)") for v in ("NaN", "Infinity", "5", "-0.5")],
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": 2, "accuracy": 1, "per_class_accuracy": {"a": Infinity}, '
     '"labels": ["a", "b"]}', "(per_class_accuracy: a number from 0 to 1 (or null) for each emotion)"),
    # names a checkpoint's labels may not have (labels.check_names): plot printed the escape code to the terminal as it was
    *[("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": 2, "accuracy": 1, "per_class_accuracy": {}, '
       '"labels": ' + v + '}', "(labels: " + why) for v, why in (
          ('["\\u001b[31mred", "b"]', "the class name '\\x1b[31mred' holds a control character"),
          ('["a", "a"]', "'a' and 'a' name one class"))],
    ("metrics-test.json", '{"confusion_matrix": [[1]], "n": 1, "accuracy": 1, "per_class_accuracy": {}, "labels": ["a"]}',
     "(labels: a label set needs 2 to "),
    # n or accuracy edited apart from the matrix evaluate counted them from: shown beside it as "accuracy 1.0000 on 3 faces"
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": 3, "accuracy": 1, "per_class_accuracy": {}, "labels": ["a", "b"]}',
     "(n: the number of faces its confusion_matrix counts, at least 1; it counts 2, n is 3)"),
    ("metrics-test.json", '{"confusion_matrix": [[0, 0], [0, 0]], "n": 0, "accuracy": 1, "per_class_accuracy": {}, "labels": ["a", "b"]}',
     "(n: the number of faces its confusion_matrix counts, at least 1; it counts 0, n is 0)"),
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [1, 0]], "n": 2, "accuracy": 1, "per_class_accuracy": {}, "labels": ["a", "b"]}',
     "(accuracy: the fraction of its confusion_matrix's faces on its diagonal, 0.5000; got 1)"),
    # report compared a data of 5 with its data's path: a TypeError in files.same_path
    ("metrics-test.json", '{"confusion_matrix": [[1, 0], [0, 1]], "n": 2, "accuracy": 1, "per_class_accuracy": {}, '
     '"labels": ["a", "b"], "data": 5}', "(data: the path of the data it was scored on)"),
])
def test_a_well_formed_file_of_the_wrong_shape_is_one_error(tiny_run, tmp_path, name, text, message):
    """JSON that parses but is not what train.py writes: `ferkit plot` and `report` name the file, not crash on it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    if name == runs.HISTORY_CSV:
        (run / runs.HISTORY_JSON).unlink()
    (run / name).write_text(text)
    with pytest.raises(FerkitError) as e:
        runs.read_run(run)
    assert str(e.value).startswith(str(run)) and message in str(e.value), str(e.value)


@pytest.mark.parametrize("name", [runs.CONFIG, runs.HISTORY_JSON, runs.ITERATIONS, "metrics-val.json"])
@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_a_folder_or_pipe_in_place_of_a_run_file_is_one_error(tiny_run, tmp_path, name, kind):
    """plot and report read a run's files: a folder there was a traceback, a pipe (FIFO) hung them forever."""
    import os
    import shutil
    import signal

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name) if kind == "pipe" else (run / name).mkdir()
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail(f"reading the run blocked on the {kind} {name}"))
    signal.alarm(20)
    try:
        with pytest.raises(FerkitError) as e:
            runs.read_run(run)
    finally:
        signal.alarm(0)
    what = "a folder" if kind == "folder" else "not a regular file (a device, pipe or socket)"
    assert str(e.value).startswith(f"{run / name}: {what}; give the file the run wrote"), str(e.value)


def test_run_files_with_a_byte_order_mark_are_read(tiny_run, tmp_path):
    """A run's JSON and CSV files saved again by a Windows editor start with a BOM: `train --config` reads such a
    config.json; plot and report said "unreadable JSON ...; rerun the command that wrote it" (the training) and
    took history.csv's first field for "\ufeffepoch"."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for name in (runs.CONFIG, runs.HISTORY_JSON, runs.ITERATIONS):
        (run / name).write_bytes(b"\xef\xbb\xbf" + (run / name).read_bytes())
    read = runs.read_run(run)
    assert read.config["spec"] and len(read.history) == 3 and len(read.iterations) > 3
    (run / runs.HISTORY_JSON).unlink()
    (run / runs.HISTORY_CSV).write_bytes(b"\xef\xbb\xbf" + (run / runs.HISTORY_CSV).read_bytes())
    assert runs.read_run(run).history == read.history


def test_json_nested_past_pythons_stack_is_one_error(tiny_run, tmp_path):
    """json's parser recurses once a level: a run's JSON of thousands of '[' was a RecursionError traceback in plot
    and report, and in evaluate, whose look at an earlier metrics file decides the new one's name."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    deep = "[" * 100_000
    (run / "metrics-val.json").write_text(deep)  # not metrics: kept, the new score beside it
    assert runs.metrics_path(run, "val", str(tmp_path / "other.csv")) == run / "metrics-val-other.json"
    for name in (runs.CONFIG, runs.HISTORY_JSON, "metrics-val.json"):
        kept = (run / name).read_text()
        (run / name).write_text(deep)
        with pytest.raises(FerkitError, match=f"^{run / name}: unreadable JSON \\(maximum recursion depth"):
            runs.read_run(run)
        (run / name).write_text(kept)


def test_a_run_folder_that_is_a_loop_of_links_is_one_line(tmp_path, capsys):
    """plot and report named their runs with Path.resolve, which raised on a loop of links: a traceback."""
    import os

    from ferkit.cli import main

    os.symlink(tmp_path / "loop", tmp_path / "loop")
    for command in (["plot", str(tmp_path / "loop"), "--out", str(tmp_path / "plots")],
                    ["report", str(tmp_path / "loop"), "--out", str(tmp_path / "r.html"), "--no-data"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {tmp_path / 'loop'}: a symbolic link to nothing (a missing target or a loop of links); fix or "
                       "remove the link, or give the --out folder of a `ferkit train` run (or its checkpoint, a .pt file)\n")


def test_an_iterations_table_without_rows_is_no_iterations(tiny_run, tmp_path):
    """A run that trained no step (stopped before it) has only the header: plot and report draw no curve."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / runs.ITERATIONS).write_text("iteration,loss\n")
    assert runs.read_run(run).iterations.shape == (0,)
    (run / runs.ITERATIONS).write_text("iteration,loss\n1\n2\n")
    with pytest.raises(FerkitError, match="iterations.csv: not an iteration,loss table"):
        runs.read_run(run)


def test_summarize_history():
    rows = [dict(epoch=1, train_acc=0.3, val_acc=0.40, seconds=100.0), dict(epoch=2, train_acc=0.5, val_acc=0.55, seconds=500.0),
            dict(epoch=3, train_acc=0.7, val_acc=0.50, seconds=110.0)]
    s = runs.summarize_history(rows)
    assert (s["epochs"], s["best_epoch"], s["best_val_acc"], s["last_val_acc"], s["last_train_acc"]) == (3, 2, 0.55, 0.50, 0.7)
    assert s["median_epoch_seconds"] == 110.0 and s["wall_clock_seconds"] == 330.0 and s["total_seconds"] == 710.0  # the slow epoch moves the sum, not the median
    assert runs.summarize_history([]) is None
    no_val = runs.summarize_history([{**r, "val_acc": float("nan")} for r in rows])
    assert no_val["best_epoch"] == 3  # without validation the last epoch is the best, as in training
    row = runs.format_summary([runs.Run(Path("c"), "c", None, [{**r, "val_acc": float("nan")} for r in rows], np.zeros(0))]).splitlines()[1]
    assert row.split()[:5] == ["c", "3", "no", "validation", "-"] and "nan" not in row  # (was 'nan (  3)  nan')
    text = runs.format_summary([runs.Run(Path("a"), "a", None, rows, np.zeros(0)), runs.Run(Path("b"), "b", None, [], np.zeros(0))])
    assert "0.5500 (  2)" in text and "5.5 min" in text and "no history" in text.splitlines()[2]
    bare = [{"epoch": r["epoch"], "val_acc": r["val_acc"]} for r in rows]  # no train_acc, no seconds: was 'nan  nans  nan min'
    row = runs.format_summary([runs.Run(Path("d"), "d", None, bare, np.zeros(0))]).splitlines()[1]
    assert row.split() == ["d", "3", "0.5500", "(", "2)", "0.5000", "-", "-", "-", "-"], row


def test_a_negative_epochs_seconds_is_unknown_in_the_summary():
    """Histories from before epochs were timed with a monotonic clock may hold a negative `seconds` (the wall clock set
    back mid-epoch): it was added into the sum and counted in the median that plot's and report's times print."""
    rows = [dict(epoch=1, val_acc=0.4, seconds=100.0), dict(epoch=2, val_acc=0.5, seconds=-3500.0),
            dict(epoch=3, val_acc=0.5, seconds=120.0), dict(epoch=4, val_acc=0.5, seconds=float("nan"))]
    s = runs.summarize_history(rows)
    assert s["total_seconds"] == 220.0 and s["median_epoch_seconds"] == 110.0 and s["wall_clock_seconds"] == 440.0, s
    assert rows[1]["seconds"] == -3500.0  # (the history itself is left as it is)
    s = runs.summarize_history([dict(epoch=1, val_acc=0.4, seconds=-5.0)])  # no epoch's time known: none said
    assert np.isnan(s["median_epoch_seconds"]) and s["total_seconds"] == 0.0, s


def test_the_summary_gives_what_best_pt_holds_and_the_history_best_whose_weights_are_gone(tiny_run, tmp_path):
    """After a resume that found best.pt deleted (and wrote it from last.pt's epoch), the table of plot and report gave
    the history's best epoch as the run's best, whose weights were gone, while best.pt held another."""
    import shutil

    from ferkit.checkpoint import read_checkpoint, read_runs, save_checkpoint, weights_acc

    run = shutil.copytree(tiny_run, tmp_path / "run")
    best = read_checkpoint(run / runs.BEST)
    best["best_acc"] = 0.5  # (the tiny run scores 1.0 in every epoch: best.pt's is made lower than another's)
    save_checkpoint(best, run / runs.BEST)
    history = json.loads((run / runs.HISTORY_JSON).read_text())
    next(r for r in history if r["epoch"] == best["epoch"])["val_acc"] = 0.5
    (run / runs.HISTORY_JSON).write_text(json.dumps(history))
    gone = max(history, key=lambda r: r["val_acc"])
    text = runs.format_summary(read_runs([run]))
    assert f"{weights_acc(best):>16.4f} ({best['epoch']:>3})" in text.splitlines()[1]
    assert text.splitlines()[2] == (f"run: best val acc is best.pt's, epoch {best['epoch']}; epoch {gone['epoch']} scored 1.0000; "
                                    "its best.pt was deleted or damaged")
    assert len(runs.format_summary(read_runs([tiny_run])).splitlines()) == 2  # best.pt holds the history's best: no note


def test_train_writes_the_layout_that_runs_reads(tiny_run):
    """train.py names its files by runs.py: every file of the layout is there after a run."""
    for name in (runs.CONFIG, runs.HISTORY_JSON, runs.HISTORY_CSV, runs.ITERATIONS, runs.BEST, runs.LAST):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / runs.HISTORY_CSV).read_text().splitlines()[0].split(",") == list(runs.HISTORY_FIELDS)
    run = runs.read_run(tiny_run)
    assert run.checkpoint == tiny_run / runs.BEST and run.history == json.loads((tiny_run / runs.HISTORY_JSON).read_text())


def test_checkpoint_falls_back_to_last_and_metrics_by_split(tmp_path):
    (tmp_path / runs.CONFIG).write_text("{}")
    (tmp_path / runs.LAST).write_bytes(b"")
    from ferkit.metrics import summarize

    m = {**summarize([0, 1], [[1.0, 0.0], [0.0, 1.0]], ["happy", "sad"]), "split": "val"}
    (tmp_path / runs.metrics_file("val")).write_text(json.dumps(m))
    (tmp_path / runs.metrics_file("test")).write_text(json.dumps({**m, "split": "test"}))
    run = runs.read_run(tmp_path)
    assert run.checkpoint == tmp_path / runs.LAST and set(run.metrics) == {"val", "test"}
    assert list(runs.best_metrics([run])) == [f"{tmp_path.name} test", f"{tmp_path.name} val"]
    (tmp_path / runs.metrics_file("test")).unlink()
    assert list(runs.best_metrics([runs.read_run(tmp_path)])) == [tmp_path.name]


def test_a_score_on_other_data_keeps_the_runs_own(tiny_run, tmp_path):
    """(evaluate --data other.csv wrote the run's metrics-val.json over its score on its own data)"""
    import shutil

    from ferkit.cli import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["evaluate", str(run), "--split", "val", "--device", "cpu"]) == 0
    own = json.loads((run / "metrics-val.json").read_text())
    other = write_fer_csv(tmp_path / "other.csv", n=35)
    assert main(["evaluate", str(run), "--data", str(other), "--split", "val", "--device", "cpu"]) == 0
    assert json.loads((run / "metrics-val.json").read_text()) == own
    assert json.loads((run / "metrics-val-other.json").read_text())["data"] == str(other)
    assert set(runs.read_run(run).metrics) == {"val", "val-other"}


def test_metrics_name_their_data_by_an_absolute_path(tiny_run, tmp_path, monkeypatch):
    """(evaluate --data fer.csv recorded "data": "fer.csv", relative to the folder it ran in: the same data scored
    from another folder were taken for other data and written to metrics-val-fer.json beside it, and report,
    run elsewhere, scored the run again and showed that file's score once more as one on other data)"""
    import shutil

    from ferkit.cli import main
    from ferkit.dream import DreamSettings
    from ferkit.report import _data_for, _run_section

    run = shutil.copytree(tiny_run, tmp_path / "run")
    csv = tiny_run.parent / "fer.csv"
    monkeypatch.chdir(csv.parent)
    assert main(["evaluate", os.path.relpath(run), "--data", csv.name, "--split", "val", "--device", "cpu"]) == 0
    saved = json.loads((run / "metrics-val.json").read_text())
    assert (saved["data"], saved["checkpoint"]) == (str(csv), str(run))  # the model too, from anywhere
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run), "--data", str(csv), "--split", "val", "--device", "cpu"]) == 0
    assert [f.name for f in run.glob("metrics-*.json")] == ["metrics-val.json"]
    read = runs.read_run(run)
    page = _run_section(read, _data_for(read, str(csv), {}, []), 0, DreamSettings(), [])[0]
    assert page.count("<h4>val") == 1 and "(from metrics-*.json)" in page


def test_metrics_say_whether_the_mirror_was_averaged_in(tiny_run, tmp_path, capsys):
    """(evaluate --tta of a run trained without the mirror wrote metrics-val.json with nothing to tell it from the
    model's own score, and report showed it as the run's best checkpoint's)"""
    import shutil

    from ferkit.cli import main
    from ferkit.dream import DreamSettings
    from ferkit.report import _data_for, _run_section

    run = shutil.copytree(tiny_run, tmp_path / "run")
    csv = str(tiny_run.parent / "fer.csv")
    assert main(["evaluate", str(run), "--data", csv, "--split", "val", "--device", "cpu", "--tta"]) == 0
    assert "averaged with its mirror image (tta)" in capsys.readouterr().out
    assert json.loads((run / "metrics-val.json").read_text())["tta"] is True
    read = runs.read_run(run)
    shown = _run_section(read, _data_for(read, csv, {}, []), 0, DreamSettings(), [])[1]
    assert shown["tta"] is False  # the run's score is the model's own, scored now; the file's is kept beside it
    assert "<h4>val (tta on)" in _run_section(read, _data_for(read, csv, {}, []), 0, DreamSettings(), [])[0]
    (run / "metrics-val.json").write_text(json.dumps({**shown, "tta": "no"}))
    with pytest.raises(FerkitError, match="metrics-val.json: not the metrics .* \\(tta: true or false\\)"):
        runs.read_run(run)


def test_a_file_other_than_best_pt_keeps_its_own_metrics(tiny_run, tmp_path, monkeypatch):
    """(evaluate RUN/last.pt wrote metrics-val.json over best.pt's, which report then showed as best.pt's; an .onnx
    file in the run folder, and a bundled model scored on two data files, replaced the one before alike)"""
    import shutil

    import ferkit.predict as fp
    from ferkit.cli import main
    from ferkit.dream import DreamSettings
    from ferkit.report import _run_section

    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["export", str(run), "--onnx", str(run / "m.onnx")]) == 0
    for model in (run, run / "last.pt", run / "m.onnx", run / "best.pt"):
        assert main(["evaluate", str(model), "--data", str(tiny_run.parent / "fer.csv"), "--split", "val", "--device", "cpu",
                     "--precision", "fp32"]) == 0
    scored = {f.name: json.loads(f.read_text())["checkpoint"] for f in run.glob("metrics-*.json")}
    assert scored == {"metrics-val.json": str(run / "best.pt"), "metrics-last.pt-val.json": str(run / "last.pt"),
                      "metrics-m.onnx-val.json": str(run / "m.onnx")}
    assert list(runs.best_metrics([runs.read_run(run)])) == ["run last.pt-val", "run m.onnx-val", "run val"]
    shown = _run_section(runs.read_run(run), None, 0, DreamSettings(), [])[1]  # the run's score in report's comparison
    assert shown["checkpoint"] == str(run / "best.pt")
    for f in ("metrics-val.json", "metrics-m.onnx-val.json"):  # only another file's score: not shown as the run's
        (run / f).unlink()
    assert list(runs.best_metrics([runs.read_run(run)])) == ["run last.pt-val"]
    assert _run_section(runs.read_run(run), None, 0, DreamSettings(), [])[1] is None
    # a bundled model (here the tiny one) on two data files, in the current folder: both scores stay
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(run / "best.pt", weights / "fer2013.pt")
    monkeypatch.setattr(fp, "WEIGHTS", weights)
    monkeypatch.setitem(fp.BUNDLED, "fer2013", weights / "fer2013.pt")
    monkeypatch.chdir(tmp_path)
    for n in (35, 42):
        data = write_fer_csv(tmp_path / f"d{n}.csv", n=n)
        assert main(["evaluate", "fer2013", "--data", str(data), "--split", "val", "--device", "cpu"]) == 0
    assert [json.loads((tmp_path / f).read_text())["n"] for f in ("metrics-fer2013.pt-val.json", "metrics-fer2013.pt-val-d42.json")] == [35, 42]


def test_run_names_stay_distinct_however_the_runs_clash(tmp_path):
    """(p1/a/run and p2/a/run, or one run given twice, got one name: plot wrote one's figures over the other's)"""
    from ferkit.runs import run_names

    for p in ("p1/a/run", "p2/a/run", "p1/b"):
        (tmp_path / p).mkdir(parents=True)
    assert run_names([tmp_path / "p1/a/run", tmp_path / "p1/b"]) == ["run", "b"]
    assert run_names([tmp_path / "p1/a/run", tmp_path / "p2/a/run"]) == ["p1/a/run", "p2/a/run"]
    assert run_names([tmp_path / "p1/b", tmp_path / "p1/b", tmp_path / "p1/b"]) == ["b", "b-2", "b-3"]


def test_the_run_file_check_takes_a_loop_of_links(tmp_path):
    """(Path.resolve raised RuntimeError on a loop of links: where a link points is os.path.realpath's)"""
    from ferkit.runs import check_not_run_file

    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    check_not_run_file(tmp_path / "a.json", "--json")  # no run's file: the output check says what is wrong with it


def test_a_count_is_a_whole_number_numpys_included():
    """(is_count repeated is_whole's test for plain ints only: an np.int64 from a confusion matrix was no count)"""
    assert runs.is_count(np.int64(3)) and runs.is_count(np.uint8(0)) and runs.is_count(7)
    for v in (True, 2.0, -1, np.int64(-1), 1e308, float("inf"), "3"):
        assert not runs.is_count(v), v
