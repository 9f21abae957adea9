import json
import subprocess
import sys

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

from ferkit import metrics, plots, runs
from ferkit.cli import main
from ferkit.labels import EMOTIONS


def _metrics(acc_by_class, n=10):
    cm = np.zeros((7, 7), int)
    for i, a in enumerate(acc_by_class):
        cm[i, i] = round(a * n)
        cm[i, (i + 1) % 7] = n - cm[i, i]
    from ferkit.metrics import summarize

    y = np.repeat(np.arange(7), n)
    pred = np.concatenate([[i] * cm[i, i] + [(i + 1) % 7] * (n - cm[i, i]) for i in range(7)])
    return summarize(y, np.eye(7)[pred], EMOTIONS)


def test_moving_average():
    assert np.allclose(plots.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert np.allclose(plots.moving_average([1, 2, 3], 1), [1, 2, 3])


def test_history_plots(tiny_run):
    run = runs.read_run(tiny_run)
    fig = plots.plot_iteration_loss({"a": run.iterations, "b": run.iterations[:5]}, smooth=2)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4  # raw + smoothed per run
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), run.iterations)
    fig = plots.plot_accuracy({"a": run.history, "b": run.history})
    lines = fig.axes[0].lines
    assert len(lines) == 4 and np.allclose(lines[1].get_ydata(), runs.column(run.history, "val_acc"))
    assert len(plots.plot_epoch_loss({"a": run.history}).axes[0].lines) == 2
    fig = plots.plot_histories([run, run])
    assert len(fig.axes) == 3 and all(ax.lines for ax in fig.axes)
    png = plots.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_diverged_run_s_loss_panels_say_so(tiny_run, tmp_path):
    """(a run whose losses are all NaN drew empty loss panels, with no word of why)"""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes((tiny_run / "config.json").read_bytes())
    (run / "history.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
                                     "1,nan,0.1,nan,0.1,0.01,1.0\n2,nan,0.1,nan,0.1,0.01,1.0\n")
    (run / "iterations.csv").write_text("iteration,loss\n1,nan\n2,nan\n")
    fig = plots.plot_histories([runs.read_run(run)])
    said = "all losses NaN:\nthe run diverged; lower --lr"
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes] == [[said], [said], []]  # not accuracy's: it has numbers
    both = plots.plot_epoch_loss({"ok": runs.read_run(tiny_run).history, "nan": runs.read_run(run).history})
    assert [t.get_text() for t in both.axes[0].texts] == ["nan: " + said]
    assert not plots.plot_histories([runs.read_run(tiny_run)]).axes[0].texts


def test_plot_into_given_axes():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plots.plot_confusion(np.eye(7), ax=ax) is fig


def test_confusion_counts_and_normalised():
    cm = np.arange(49).reshape(7, 7)
    fig = plots.plot_confusion(cm, normalize=True)
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown, cm / cm.sum(1, keepdims=True))
    assert len(fig.axes[0].texts) == 49
    fig = plots.plot_confusion(cm, labels=EMOTIONS)
    assert np.allclose(fig.axes[0].images[0].get_array(), cm) and fig.axes[0].texts[8].get_text() == "8"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(EMOTIONS)
    fig = plots.plot_confusion(np.eye(8))  # no emotion names given: the class numbers, whatever the label set
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(i) for i in range(8)]
    assert len(plots.plot_confusion_pair(cm).axes) == 4  # two matrices + two colour bars


def test_names_with_dollar_signs_are_drawn_as_written():
    # class and run names are the user's: matplotlib read them as mathtext ('$x_$' was a ValueError traceback)
    names = ["$x_$", "$\\frac$", "$x^2$"]
    fig = plots.plot_confusion_pair(np.eye(3), "$val", names)
    assert plots.to_png(fig).startswith(b"\x89PNG")
    assert all(not t.get_parse_math() for t in fig.findobj(Text))  # '$x^2$' shown as typed, not as a formula
    hist = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    assert plots.to_png(plots.plot_accuracy({"$run_$": hist})).startswith(b"\x89PNG")


def test_per_class_table_and_bars():
    m = {"shallow": _metrics([0.5, 0.0, 0.3, 0.9, 0.4, 0.7, 0.6]), "deep": _metrics([0.6, 0.1, 0.4, 0.9, 0.5, 0.8, 0.7])}
    rows = metrics.per_class_rows(m)
    assert rows[0] == ["angry", 0.5, 0.6] and rows[-1][0] == "overall" and len(rows) == 8
    text = metrics.format_per_class(m)
    assert "shallow" in text and "0.9000" in text
    fig = plots.plot_per_class(m)
    bars = fig.axes[0].patches
    assert len(bars) == 14 and np.isclose(bars[3].get_height(), 0.9) and np.isclose(bars[7 + 3].get_height(), 0.9)


def test_grids():
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    maps = [rng.random((8, 24, 24)), rng.random((16, 12, 12))]
    fig = plots.plot_activations(face, maps, ["conv1 8@3x3", "conv2 16@3x3"], per_layer=4)
    assert len(fig.axes) == 2 * 5 and sum(len(a.images) for a in fig.axes) == 1 + 2 * 4
    fig = plots.plot_filters(rng.random((8, 1, 3, 3)))
    assert sum(len(a.images) for a in fig.axes) == 8
    fig = plots.plot_dreams(np.stack([face] * 3), np.stack([face] * 3))
    assert len(fig.axes) == 6


def test_cli_plot(tiny_run, tmp_path, capsys):
    out = tmp_path / "png"
    assert main(["plot", str(tiny_run), str(tiny_run), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"history.png", "loss-iterations.png", "loss-epochs.png", "accuracy.png"}
    out_text = capsys.readouterr().out
    assert "ferkit evaluate" in out_text and "best val acc (epoch)" in out_text
    # with metrics from `ferkit evaluate`: confusion matrices and the per-class chart too
    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.json", "history.json", "iterations.csv"):
        (run / f).write_bytes((tiny_run / f).read_bytes())
    (run / "metrics-val.json").write_text(json.dumps({**_metrics([0.5] * 7), "split": "val"}))
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert (out / "confusion-run-val.png").stat().st_size > 1000 and (out / "per-class.png").exists()
    assert "overall" in capsys.readouterr().out


def test_cli_plot_never_writes_into_the_image_folder_a_run_trained_on(tiny_run, tmp_path, capsys):
    """(as visualize's: --out DATA/figures made the figures a class of the next training, --out DATA bad entries)"""
    import shutil

    from conftest import write_image_folder

    data = write_image_folder(tmp_path / "faces")
    faces = sorted(data.rglob("*"))
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "config.json").write_text(json.dumps({**json.loads((run / "config.json").read_text()), "data": str(data)}))
    for out in (data / "figures", data):
        assert main(["plot", str(run), "--out", str(out)]) == 2
        assert f"error: --out {out}: {'is' if out == data else 'lies inside'} the data folder {data}, " in capsys.readouterr().err
    assert sorted(data.rglob("*")) == faces
    assert main(["plot", str(run), "--out", str(run)]) == 0  # beside the run's files: none of them is a figure's name


def test_confusion_figures_of_runs_named_alike_get_files_of_their_own(tmp_path):
    """(plot col/a-b/r col/a/b-r: run_names' a-b/r and a/b-r both became confusion-a-b-r-val.png, one over the other)"""
    m = _metrics([0.5] * 7)
    runs_ = [runs.Run(tmp_path, name, None, [], np.zeros(0), {"val": m}) for name in ("a-b/r", "a/b-r", "A-b/r", "a-b/r-val")]
    names = [name for name, _ in plots.run_figures(runs_, {})]
    assert names[4:] == ["confusion-a-b-r-val.png", "confusion-a-b-r-val-2.png", "confusion-A-b-r-val-3.png",
                         "confusion-a-b-r-val-val.png"]


def test_cli_plot_on_a_full_disk_leaves_no_empty_folder(tiny_run, tmp_path, capsys, monkeypatch):
    """The first figure's write makes --out (and its missing parents): a full disk failed it, and plot left
    the new folders behind, empty. A folder that was there already stays."""
    import errno

    from ferkit import files

    def full(path, data):  # a full disk: the folder and the temporary file are made, the bytes cannot be written
        with files.atomic_file(path):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "atomic_write", full)
    out = tmp_path / "new" / "png"
    assert main(["plot", str(tiny_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: {out / 'history.png'}: cannot write it (No space left on device); free some "
                                       "space or choose another location and run again (an earlier file there is left as it was)\n")
    assert list(tmp_path.iterdir()) == []
    assert main(["plot", str(tiny_run), "--out", str(tmp_path)]) == 2
    assert tmp_path.is_dir()


def test_cli_plot_missing_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_cli_plot_refuses_a_history_whose_accuracies_are_no_fractions(tmp_path, capsys):
    """Another tool's percentages (65.3) were drawn off the accuracy panel and tabled as 65.3000, unsaid."""
    run = tmp_path / "run"
    run.mkdir()
    head = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
    (run / "history.csv").write_text(head + "1,1.4,0.6,1.8,,0.001,0.1\n2,1.3,0.7,1.7,65.3,0.001,0.1\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {run / 'history.csv'}: row 2's val_acc is 65.3, not an accuracy from 0 to 1 (a percentage?); "
                   "rerun the command that wrote it\n"), err
    (run / "history.csv").write_text(head + "1,1.4,0.6,1.8,,0.001,0.1\n2,1.3,0.7,1.7,0.65,0.001,0.1\n")  # (no val: NaN)
    assert main(["plot", str(run), "--out", str(tmp_path / "fig")]) == 0


def test_import_leaves_the_backend_and_pyplot_alone():
    """A library must not choose the user's backend: importing ferkit's plotting and the modules
    that use it keeps the backend the user set, and drawing adds no figure to pyplot's state."""
    code = ("import sys, matplotlib; matplotlib.use('svg'); import ferkit.plots, ferkit.report, ferkit.cli\n"
            "import numpy as np; ferkit.plots.to_png(ferkit.plots.plot_confusion(np.eye(3)))\n"
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
            "assert 'matplotlib.pyplot' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_plot_and_report_of_a_run_folder_named_in_latin1_show_its_byte_escaped(tiny_run, tmp_path, capsys):
    """A run folder whose name is not UTF-8 ('caf\\xe9', a lone surrogate to Python) was a matplotlib TypeError
    traceback in plot and report (the name is chart text); it is shown as the error messages say it, caf\\udce9."""
    import os
    import shutil

    run = tmp_path / os.fsdecode(b"caf\xe9")
    shutil.copytree(tiny_run, run)
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert "caf\\udce9" in capsys.readouterr().out
    assert main(["report", str(run), "--no-data", "--faces", "0", "--out", str(tmp_path / "r.html")]) == 0
    assert "caf\\udce9" in (tmp_path / "r.html").read_text(encoding="utf-8")



def _refused(cases):
    import pytest

    from ferkit.errors import FerkitError

    for call, why in cases:
        with pytest.raises(FerkitError, match=why):
            call()


FACE, MAPS = np.zeros((48, 48), np.uint8), [np.ones((4, 6, 6))]


def test_confusion_refuses_a_matrix_that_is_not_square_or_names_that_do_not_fit():
    # an empty cm was "zero-size array to reduction operation maximum", a 1-d one matplotlib's "Invalid shape";
    # a non-square one, or FER+'s 8x8 with FER2013's 7 names, was drawn without a word
    _refused([(lambda: plots.plot_confusion([]), r"^cm must be a square \(C, C\) matrix .*; got an array of shape \(0,\)"),
              (lambda: plots.plot_confusion(np.ones(7)), r"got an array of shape \(7,\)"),
              (lambda: plots.plot_confusion(np.ones((7, 8))), r"got an array of shape \(7, 8\)"),
              (lambda: plots.plot_confusion_pair(np.eye(8), labels=EMOTIONS),
               r"^labels must be 8 names in a list, one per row of the 8x8 cm; got \('angry', .* \(7 names\)$")])


def test_filters_refuse_an_array_that_is_no_conv_layer_s_weights():
    # empty filters were a ZeroDivisionError, 1-d/2-d/5-d ones reshape errors
    _refused([(lambda: plots.plot_filters(np.zeros((0, 1, 3, 3))), r"^filters must be .*; got an array of shape \(0, 1, 3, 3\)$"),
              (lambda: plots.plot_filters(np.ones(3)), r"got an array of shape \(3,\)$"),
              (lambda: plots.plot_filters(np.ones((3, 3))), r"got an array of shape \(3, 3\)$"),
              (lambda: plots.plot_filters(np.ones((2, 2, 1, 3, 3))), r"got an array of shape \(2, 2, 1, 3, 3\)$")])
    assert len(plots.plot_filters(np.ones((4, 3, 3))).axes[0].images) == 1  # (C, k, k) as before


def test_dreams_refuse_faces_dreams_and_labels_that_do_not_pair():
    # none was "Number of columns must be a positive integer", a length that differs an IndexError
    faces = np.stack([FACE] * 2)
    _refused([(lambda: plots.plot_dreams(faces[:0], faces[:0]), r"^faces and dreams must be .*; got 0 faces and 0 dreams$"),
              (lambda: plots.plot_dreams(faces, faces[:1]), r"got 2 faces and 1 dreams$"),
              (lambda: plots.plot_dreams(faces, faces, ["a"]), r"^labels must be 2 names .*\(1 names\)$")])


def test_activations_refuse_no_maps_too_few_names_and_no_channels():
    # maps=[] was "Number of rows must be a positive integer", too few names or per_layer 0 an IndexError
    _refused([(lambda: plots.plot_activations(FACE, []), r"^maps must be a list of one \(C_k, H_k, W_k\) array .*; got none$"),
              (lambda: plots.plot_activations(FACE, MAPS * 2, ["conv1"]), r"^names must be 2 names .*\(1 names\)$"),
              (lambda: plots.plot_activations(FACE, MAPS, per_layer=0), r"^per_layer must be .* an integer >= 1; got 0$")])


def test_history_plots_refuse_what_is_no_run_s_losses_or_history(tiny_run):
    # a list was an AttributeError ('list' object has no attribute 'items'), words numpy's "could not convert string to
    # float", a 2-d array silently a curve for each column, a row that is no epoch's record an AttributeError or numpy's "truth
    # value of an array ... is ambiguous", {} an empty figure
    hist = runs.read_run(tiny_run).history
    _refused([(lambda: plots.plot_iteration_loss([1.0, 2.0]), r"^losses must be a dict of run name -> its training loss "
                                                               r"of each iteration \(Run\.iterations\), at least one; got \[1\.0, 2\.0\]$"),
              (lambda: plots.plot_iteration_loss({}), r"^losses must be .*; got \{\}$"),
              (lambda: plots.plot_iteration_loss({"a": ["x"]}), r"^losses\['a'\] must be a 1-d array of numbers, one per "
                                                                 r"iteration; got \['x'\]$"),
              (lambda: plots.plot_iteration_loss({"a": np.ones((3, 2))}), r"^losses\['a'\] must be a 1-d array .*; got array"),
              (lambda: plots.plot_accuracy(hist), r"^histories must be a dict of run name -> its list of per-epoch "
                                                  r"records \(Run\.history\), at least one; got \[\{'epoch'"),
              (lambda: plots.plot_epoch_loss({}), r"^histories must be .*; got \{\}$"),
              (lambda: plots.plot_accuracy({"a": hist[0]}), r"^histories\['a'\] must be a list of per-epoch records "
                                                            r"\(Run\.history\); got \{'epoch'"),
              (lambda: plots.plot_epoch_loss({"a": np.ones(3)}), r"^histories\['a'\] must be a list .*; got array"),
              (lambda: plots.plot_accuracy({"a": [*hist, {"epoch": 3, "val_acc": "0.5"}]}),
               rf"^histories\['a'\]\[{len(hist)}\] must be an epoch's record: a dict of a number for epoch and numbers "
               r"\(or None\) for train_loss, .*; got \{'epoch': 3, 'val_acc': '0\.5'\}$"),
              (lambda: plots.plot_histories([]), r"^runs must be a list of at least one Run \(runs\.read_run\); got \[\]$")])
    assert len(plots.plot_iteration_loss({"a": np.array([1.0, np.nan, 2.0])}).axes[0].lines) == 2  # NaN: as before
    assert len(plots.plot_accuracy({"a": tuple(hist), "b": []}).axes[0].lines) == 2  # a run without epochs: no line


def test_per_class_refuses_what_is_no_model_s_metrics():
    # a list, or one model's metrics not wrapped, was an AttributeError, metrics without per_class_accuracy a
    # KeyError, a score of 5 a bar past the chart's top, {} an empty chart
    m = _metrics([0.5] * 7)
    _refused([(lambda: plots.plot_per_class([m]), r"^metrics must be a dict of model name -> its metrics "
                                                  r"\(metrics\.summarize's dict\), at least one; got \[\{"),
              (lambda: plots.plot_per_class({}), r"^metrics must be .*; got \{\}$"),
              (lambda: plots.plot_per_class(m), r"^metrics must be a dict of model name -> .*; got one model's metrics: "
                                                r"give \{'its name': metrics\}$"),
              (lambda: plots.plot_per_class({"a": 0.5}), r"^metrics\['a'\] must be the dict of metrics\.summarize \(or "
                                                         r"evaluate_split, or a run's metrics-<split>\.json\); got 0\.5$"),
              (lambda: plots.plot_per_class({"a": {"accuracy": 0.5}}),
               r"^metrics\['a'\]\['per_class_accuracy'\] must be a dict of emotion -> a number from 0 to 1 \(None: no "
               r"face of it\); got None$"),
              (lambda: plots.plot_per_class({"a": {**m, "accuracy": 5}}), r"^metrics\['a'\]\['accuracy'\] must be a number "
                                                                          r"from 0 to 1 \(NaN: no face scored\); got 5$"),
              (lambda: plots.plot_per_class({"a": {**m, "per_class_accuracy": {"angry": "0.5"}}}), r"got \{'angry': '0\.5'\}$"),
              (lambda: plots.plot_per_class({"a": {**m, "labels": "angry"}}), r"^metrics\['a'\]\['labels'\] must be a list "
                                                                              r"of emotion names .*; got 'angry'$")])
    empty = {"accuracy": float("nan"), "per_class_accuracy": {e: None for e in EMOTIONS}}  # summarize of no face
    assert len(plots.plot_per_class({"a": empty}).axes[0].patches) == 7
    ours = {"accuracy": np.float32(0.5), "per_class_accuracy": {e: np.float32(0.5) for e in EMOTIONS}}  # numpy's own
    assert len(plots.plot_per_class({"a": ours}).axes[0].patches) == 7
