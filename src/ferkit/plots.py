"""Figures (matplotlib, PNG): training histories, confusion matrices, per-class accuracy,
activation maps, filters and DeepDream grids (paper Figures 3-11, Table 3).

Data in, figure out: every plot function takes numbers (and `ax=None` where one axes suffices)
and returns the matplotlib Figure; nothing is shown and nothing is read here (runs.py reads run
folders, metrics.py computes the per-class table). Figures are matplotlib Figure objects, not
pyplot's: importing ferkit leaves the user's backend and pyplot's open figures alone, and PNGs
are rendered by Agg whatever the backend.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from .config import problem
from .errors import FerkitError
from .files import write_output
from .labels import colors, labels_of
from .metrics import check_name_count, check_per_class, emotions_of, square_matrix
from .runs import HISTORY_FIELDS, Run, column, diverged, is_record, is_whole

RUN_COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]  # one colour per run in comparisons


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` values (shorter at the start); same length as x."""
    x = np.asarray(x, float)
    if window <= 1 or len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    n = np.minimum(np.arange(1, len(x) + 1), window)
    return (c[1:] - c[np.arange(1, len(x) + 1) - n]) / n


# ---------------------------------------------------------------- helpers


def _subplots(rows: int = 1, cols: int = 1, figsize=(6, 4), squeeze: bool = True):
    """(figure, axes) as pyplot.subplots makes them, without pyplot's state (see the module docstring)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def _axes(ax, figsize=(6, 4)):
    return _subplots(figsize=figsize) if ax is None else (ax.figure, ax)


def _note(ax, text: str) -> None:
    """A grey note in the middle of the panel, for what it cannot draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _note_diverged(ax, losses: dict[str, np.ndarray]) -> None:
    """Name the runs whose losses are all NaN (runs.diverged) in the panel: their curves are empty."""
    names = [name for name, y in losses.items() if diverged(y)]
    if names:
        who = "" if len(losses) == 1 else f"{', '.join(names)}: "
        _note(ax, f"{who}all losses NaN:\nthe run{'s' if len(names) > 1 else ''} diverged; lower --lr")


def to_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes. Every text is drawn as written: class and run names are the user's,
    and matplotlib read '$x_$' as mathtext (a ValueError traceback; '$x^2$' came out as a formula)."""
    for t in fig.findobj(Text):
        t.set_parse_math(False)
    buf = io.BytesIO()
    with matplotlib.rc_context({"text.parse_math": False}):  # (tick labels made while drawing)
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """The figure as a PNG file (written atomically; missing folders are created)."""
    return write_output(path, to_png(fig, dpi))


def run_figures(runs: list[Run], metrics: dict[str, dict]) -> list[tuple[str, Figure]]:
    """Every figure of `ferkit plot`, as (file name, figure): histories, losses and accuracy of the runs, a
    confusion matrix per run and split of their metrics, and per-class accuracy of `metrics`
    (runs.best_metrics) when there are any."""
    figs = [("history.png", plot_histories(runs)),
            ("loss-iterations.png", plot_iteration_loss({r.name: r.iterations for r in runs})),
            ("loss-epochs.png", plot_epoch_loss({r.name: r.history for r in runs})),
            ("accuracy.png", plot_accuracy({r.name: r.history for r in runs}))]
    taken = set()
    for r in runs:
        for split, m in r.metrics.items():
            # run_names' names are distinct, but not once '/' is '-': a-b/r and a/b-r wrote one file
            stem = name = f"confusion-{r.name.replace('/', '-')}-{split}"
            k = 1
            while name.lower() in taken:  # (lower: macOS's and Windows' file systems ignore case)
                k += 1
                name = f"{stem}-{k}"
            taken.add(name.lower())
            figs.append((f"{name}.png", plot_confusion_pair(m["confusion_matrix"], f"{r.name} {split}", labels_of(m))))
    if metrics:
        figs.append(("per-class.png", plot_per_class(metrics)))
    return figs


# ---------------------------------------------------------------- histories (Figures 3, 4, 7, 8)


def plot_iteration_loss(losses: dict[str, np.ndarray], ax=None, smooth: int | None = None):
    """Training loss of every iteration (Figures 3, 7), one colour per run: raw (faint) and a moving average."""
    _check_losses(losses)
    fig, ax = _axes(ax)
    for i, (name, y) in enumerate(losses.items()):
        y = np.asarray(y, float)
        if len(y) == 0:
            continue
        c = RUN_COLORS[i % len(RUN_COLORS)]
        w = smooth if smooth is not None else max(1, len(y) // 50)
        x = np.arange(1, len(y) + 1)
        ax.plot(x, y, color=c, alpha=0.25, lw=0.7)
        ax.plot(x, moving_average(y, w), color=c, lw=1.5, label=name if w <= 1 else f"{name} (mean of {w})")
    ax.set(xlabel="iteration", ylabel="training loss", title="Loss history")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:  # a run folder without iterations.csv, or a checkpoint exported for inference (best.pt keeps none)
        _note(ax, "no per-iteration losses kept")
    _note_diverged(ax, losses)
    return fig


def plot_epoch_loss(histories: dict[str, list[dict]], ax=None):
    """Train (solid) and validation (dashed) loss per epoch, one colour per run."""
    _check_histories(histories)
    fig, ax = _axes(ax)
    _per_epoch(histories, "loss", "Loss per epoch", ax)
    _note_diverged(ax, {name: column(h, "train_loss") for name, h in histories.items()})
    return fig


def plot_accuracy(histories: dict[str, list[dict]], ax=None):
    """Train (solid) and validation (dashed) accuracy per epoch (Figures 4, 8), one colour per run."""
    _check_histories(histories)
    return _per_epoch(histories, "acc", "Accuracy", ax)


def _check_by_run(values, name: str, what: str) -> None:
    """One FerkitError unless values is a dict of at least one run (or model) name -> `what` (a list was an
    AttributeError, {} an empty figure)."""
    if not isinstance(values, dict) or not values:
        raise FerkitError(problem(name, f"a dict of {what}, at least one", values))


def _check_losses(losses) -> None:
    """One FerkitError naming what of plot_iteration_loss's losses does not fit: words were numpy's "could not
    convert string to float", a 2-d array silently one run's curve for each column."""
    _check_by_run(losses, "losses", "run name -> its training loss of each iteration (Run.iterations)")
    for name, y in losses.items():
        try:
            a = np.asarray(y, float)
        except (TypeError, ValueError):
            a = None
        if a is None or a.ndim != 1:
            raise FerkitError(problem(f"losses[{name!r}]", "a 1-d array of numbers, one per iteration", y))


def _check_histories(histories) -> None:
    """One FerkitError naming what of plot_epoch_loss's or plot_accuracy's histories does not fit (a list, or a
    run's row that is no epoch's record, was an AttributeError or numpy's "truth value ... is ambiguous")."""
    _check_by_run(histories, "histories", "run name -> its list of per-epoch records (Run.history)")
    for name, h in histories.items():
        if not isinstance(h, (list, tuple)):
            raise FerkitError(problem(f"histories[{name!r}]", "a list of per-epoch records (Run.history)", h))
        bad = next((i for i, row in enumerate(h) if not is_record(row)), None)
        if bad is not None:
            raise FerkitError(problem(f"histories[{name!r}][{bad}]", f"an epoch's record: a dict of a number for epoch "
                                      f"and numbers (or None) for {', '.join(HISTORY_FIELDS[1:])}", h[bad]))


def _per_epoch(histories, what, title, ax):
    fig, ax = _axes(ax)
    for i, (name, h) in enumerate(histories.items()):
        if not h:
            continue
        c = RUN_COLORS[i % len(RUN_COLORS)]
        ep = column(h, "epoch")
        ax.plot(ep, column(h, f"train_{what}"), color=c, marker=".", label=f"{name} train")
        val = column(h, f"val_{what}")
        if not np.isnan(val).all():
            ax.plot(ep, val, color=c, ls="--", marker=".", label=f"{name} validation")
    ax.set(xlabel="epoch", ylabel="accuracy" if what == "acc" else "loss", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    return fig


def plot_histories(runs: list[Run]):
    """Three panels side by side: loss per iteration, loss per epoch, accuracy per epoch; runs overlaid."""
    if not (isinstance(runs, (list, tuple)) and runs and all(isinstance(r, Run) for r in runs)):  # ([]: 3 empty panels)
        raise FerkitError(problem("runs", "a list of at least one Run (runs.read_run)", runs))
    fig, axes = _subplots(1, 3, figsize=(16, 4.2))
    plot_iteration_loss({r.name: r.iterations for r in runs}, axes[0])
    plot_epoch_loss({r.name: r.history for r in runs}, axes[1])
    plot_accuracy({r.name: r.history for r in runs}, axes[2])
    return fig


# ---------------------------------------------------------------- confusion matrix and per-class accuracy (Figures 5, 6; Table 3)


def plot_confusion(cm, normalize: bool = False, ax=None, title: str | None = None, labels=None):
    """The (C, C) confusion matrix (rows true, columns predicted) over `labels` (the model's emotion
    names; None: the class numbers) as counts or row-normalised fractions."""
    cm = square_matrix(cm, labels).astype(float)
    labels = [str(i) for i in range(len(cm))] if labels is None else labels
    fig, ax = _axes(ax, (5.2, 4.6))
    with np.errstate(invalid="ignore", divide="ignore"):
        shown = cm / cm.sum(1, keepdims=True) if normalize else cm
    shown = np.nan_to_num(shown)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    top = shown.max() if shown.size else 1
    for (i, j), v in np.ndenumerate(shown):
        ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                color="white" if v > 0.6 * (1 if normalize else top) else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    return fig


def plot_confusion_pair(cm, title: str = "", labels=None):
    """Counts and row-normalised side by side."""
    fig, axes = _subplots(1, 2, figsize=(11, 4.6))
    plot_confusion(cm, False, axes[0], f"{title} counts".strip(), labels)
    plot_confusion(cm, True, axes[1], f"{title} row-normalised".strip(), labels)
    return fig


def plot_per_class(metrics: dict[str, dict], ax=None):
    """Per-class accuracy (Table 3) as grouped bars: one group per emotion, one bar per model."""
    check_per_class(metrics)
    fig, ax = _axes(ax, (8, 4))
    names = list(metrics)
    width = 0.8 / max(1, len(names))
    emotions = emotions_of(metrics)
    x = np.arange(len(emotions))
    for i, (name, m) in enumerate(metrics.items()):
        acc = [m["per_class_accuracy"].get(e) for e in emotions]
        acc = [np.nan if a is None else a for a in acc]
        colours = colors(emotions) if len(names) == 1 else RUN_COLORS[i % len(RUN_COLORS)]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, acc, width, color=colours, label=f"{name} (overall {m['accuracy']:.3f})")
    ax.set_xticks(x, emotions)
    ax.set(ylim=(0, 1), ylabel="accuracy (recall)", title="Per-class accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- activation maps, filters, DeepDream (Figures 9-11)


def plot_activations(face: np.ndarray, maps: list[np.ndarray], names: list[str] | None = None, per_layer: int = 8):
    """Figure 9: the face, then one row per conv layer with its `per_layer` most active channels.

    face (H, W) grey or (H, W, 3) RGB uint8; maps[k] (C_k, H_k, W_k) float."""
    _check_activations(maps, names, per_layer)
    rows = len(maps)
    fig, axes = _subplots(rows, per_layer + 1, figsize=(1.3 * (per_layer + 1), 1.35 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=8)
    for k, a in enumerate(maps):
        if k:
            axes[k, 0].axis("off")
        top = np.argsort(-a.reshape(len(a), -1).mean(1))[:per_layer]  # most active channels first
        for j, axc in enumerate(axes[k, 1:]):
            if j < len(top):
                axc.imshow(a[top[j]], cmap="viridis")
                axc.set_title(f"ch {top[j]}", fontsize=7)
            else:
                axc.axis("off")
        axes[k, 1].set_ylabel(names[k].replace(" ", "\n", 1) if names else f"conv{k + 1}", fontsize=8)
    fig.suptitle("Activation maps (most active channels of each conv layer)", fontsize=10)
    return fig


def _check_activations(maps, names, per_layer) -> None:
    """One FerkitError naming the argument of plot_activations that does not fit (maps=[] was matplotlib's
    "Number of rows must be a positive integer"; too few names or per_layer 0 an IndexError)."""
    if not (is_whole(per_layer) and per_layer >= 1):
        raise FerkitError(problem("per_layer", "the number of channels to show of each layer, an integer >= 1", per_layer))
    shapes = [np.shape(a) for a in maps] if isinstance(maps, (list, tuple)) else None
    if not shapes or any(len(s) != 3 or 0 in s for s in shapes):
        got = f"a {type(maps).__name__}" if shapes is None else f"arrays of shapes {shapes}" if shapes else "none"
        raise FerkitError(f"maps must be a list of one (C_k, H_k, W_k) array per conv layer, at least one "
                          f"(visualize.activation_maps); got {got}")
    if names is not None:
        check_name_count("names", names, len(maps), "layer of maps (or None: conv1, conv2, ...)")


def plot_filters(filters: np.ndarray, title: str = "First-layer filters"):
    """Figure 10: filters (C, 1, k, k) (or (C, k, k)) as a grid of grey images, those of a colour net
    (C, 3, k, k) as RGB images; each scaled to its own range (over its 3 channels together, so the
    colour a filter responds to shows)."""
    f = np.asarray(filters, float)
    if not (f.ndim == 3 or f.ndim == 4 and f.shape[1] in (1, 3)) or not f.size:  # (were reshape errors, empty a ZeroDivisionError)
        raise FerkitError(f"filters must be the first conv layer's weights, (C, 1, k, k), (C, 3, k, k) or (C, k, k) "
                          f"with C >= 1 (visualize.first_layer_filters); got an array of shape {f.shape}")
    colour = f.ndim == 4 and f.shape[1] == 3
    w = f.transpose(0, 2, 3, 1) if colour else f.reshape(len(f), *f.shape[-2:])  # (C, k, k[, 3])
    cols = int(np.ceil(np.sqrt(len(w) * 2)))
    rows = int(np.ceil(len(w) / cols))
    fig, axes = _subplots(rows, cols, figsize=(0.55 * cols + 0.4, 0.55 * rows + 0.5), squeeze=False)
    for i, axc in enumerate(axes.flat):
        axc.set_xticks([]), axc.set_yticks([])
        if i < len(w):
            f = w[i]
            axc.imshow((f - f.min()) / (np.ptp(f) or 1), cmap=None if colour else "gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axc.axis("off")
    fig.suptitle(f"{title} ({len(w)} of {w.shape[1]}x{w.shape[2]})", fontsize=10)
    return fig


def plot_dreams(faces: np.ndarray, dreams: np.ndarray, labels: list[str] | None = None, title: str = "DeepDream"):
    """Figure 11: originals (top row) and their dreams (bottom row); uint8 (N, H, W) grey or (N, H, W, 3) RGB each."""
    n = _check_dreams(faces, dreams, labels)
    fig, axes = _subplots(2, n, figsize=(1.6 * n + 0.4, 3.6), squeeze=False)
    for i in range(n):
        for r, img in enumerate((faces[i], dreams[i])):
            axes[r, i].imshow(img, cmap="gray", vmin=0, vmax=255)
            axes[r, i].set_xticks([]), axes[r, i].set_yticks([])
        axes[0, i].set_title(labels[i] if labels else f"face {i + 1}", fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=8)
    axes[1, 0].set_ylabel("dream", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _check_dreams(faces, dreams, labels) -> int:
    """The number of faces of plot_dreams, or one FerkitError naming the argument that does not fit (none was
    matplotlib's "Number of columns must be a positive integer"; fewer dreams or labels than faces an IndexError)."""
    n, m = len(faces), len(dreams)
    if not n or m != n:
        raise FerkitError(f"faces and dreams must be one image each per face, at least one, as many dreams as faces; "
                          f"got {n} faces and {m} dreams")
    if labels is not None:
        check_name_count("labels", labels, n, "face (or None: face 1, face 2, ...)")
    return n
