import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ferkit import plots
from ferkit.cli import main
from ferkit.errors import FerkitError
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


def test_read_run(tiny_run):
    run = plots.read_run(tiny_run)
    assert run.name == "run" and len(run.history) == 3 and run.config["spec"]["convs"]
    assert len(run.iterations) > 3 and np.isfinite(run.iterations).all()
    assert list(plots.column(run.history, "epoch")) == [1, 2, 3]


def test_read_run_errors(tmp_path):
    with pytest.raises(FerkitError, match="no such run folder"):
        plots.read_run(tmp_path / "missing")
    with pytest.raises(FerkitError, match="not a run folder"):
        plots.read_run(tmp_path)


def test_summarize_history():
    rows = [dict(epoch=1, train_acc=0.3, val_acc=0.40, seconds=100.0), dict(epoch=2, train_acc=0.5, val_acc=0.55, seconds=500.0),
            dict(epoch=3, train_acc=0.7, val_acc=0.50, seconds=110.0)]
    s = plots.summarize_history(rows)
    assert (s["epochs"], s["best_epoch"], s["best_val_acc"], s["last_val_acc"], s["last_train_acc"]) == (3, 2, 0.55, 0.50, 0.7)
    assert s["median_epoch_seconds"] == 110.0 and s["wall_clock_seconds"] == 330.0 and s["total_seconds"] == 710.0  # the slow epoch moves the sum, not the median
    assert plots.summarize_history([]) is None
    no_val = plots.summarize_history([{**r, "val_acc": float("nan")} for r in rows])
    assert no_val["best_epoch"] == 3  # without validation the last epoch is the best, as in training
    text = plots.format_summary([plots.Run(Path("a"), "a", None, rows, np.zeros(0)), plots.Run(Path("b"), "b", None, [], np.zeros(0))])
    assert "0.5500 (  2)" in text and "5.5 min" in text and "no history" in text.splitlines()[2]


def test_moving_average():
    assert np.allclose(plots.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert np.allclose(plots.moving_average([1, 2, 3], 1), [1, 2, 3])


def test_history_plots(tiny_run):
    run = plots.read_run(tiny_run)
    fig = plots.plot_iteration_loss({"a": run.iterations, "b": run.iterations[:5]}, smooth=2)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4  # raw + smoothed per run
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), run.iterations)
    fig = plots.plot_accuracy({"a": run.history, "b": run.history})
    lines = fig.axes[0].lines
    assert len(lines) == 4 and np.allclose(lines[1].get_ydata(), plots.column(run.history, "val_acc"))
    assert len(plots.plot_epoch_loss({"a": run.history}).axes[0].lines) == 2
    fig = plots.plot_histories([run, run])
    assert len(fig.axes) == 3 and all(ax.lines for ax in fig.axes)
    png = plots.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_per_class_table_and_bars():
    m = {"shallow": _metrics([0.5, 0.0, 0.3, 0.9, 0.4, 0.7, 0.6]), "deep": _metrics([0.6, 0.1, 0.4, 0.9, 0.5, 0.8, 0.7])}
    rows = plots.per_class_rows(m)
    assert rows[0] == ["angry", 0.5, 0.6] and rows[-1][0] == "overall" and len(rows) == 8
    text = plots.format_per_class(m)
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


def test_cli_plot_missing_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such run folder" in capsys.readouterr().err
