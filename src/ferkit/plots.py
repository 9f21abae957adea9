"""Figures (matplotlib, Agg, PNG): training histories, confusion matrices, per-class accuracy,
activation maps, filters and DeepDream grids (paper Figures 3-11, Table 3).

Data in, figure out: every plot function takes numbers (and `ax=None` where one axes suffices)
and returns the matplotlib Figure; nothing is shown. `read_run` reads what a run folder holds
(config.json, history.json/csv, iterations.csv, metrics-*.json) so the CLI and the report share it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .errors import FerkitError  # noqa: E402
from .files import write_output  # noqa: E402
from .labels import colors, labels_of  # noqa: E402

RUN_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # one colour per run in comparisons

# ---------------------------------------------------------------- reading run folders


@dataclass
class Run:
    """What a run folder holds, as data."""

    path: Path
    name: str
    config: dict | None  # config.json (with "spec"), or None
    history: list[dict]  # one dict per epoch (train.HISTORY_FIELDS)
    iterations: np.ndarray  # (T,) training loss of every iteration
    metrics: dict[str, dict] = field(default_factory=dict)  # metrics-<split>.json from `ferkit evaluate`, by split


def read_run(run_dir: str | Path, name: str | None = None) -> Run:
    """A Run from a `ferkit train` folder; a clear error when the folder is missing or holds no run."""
    p = Path(run_dir)
    if not p.is_dir():
        raise FerkitError(f"{p}: no such run folder; give the --out folder of a `ferkit train` run")
    files = [p / f for f in ("config.json", "history.json", "history.csv", "iterations.csv", "best.pt")]
    if not any(f.exists() for f in files):
        raise FerkitError(f"{p}: not a run folder (no config.json, history.json, iterations.csv or best.pt); "
                          "give the --out folder of a `ferkit train` run")
    config = _read_json(p / "config.json") if (p / "config.json").exists() else None
    if (p / "history.json").exists():
        history = _read_json(p / "history.json")
    elif (p / "history.csv").exists():
        with open(p / "history.csv", newline="") as f:
            history = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in csv.DictReader(f)]
    else:
        history = []
    iterations = np.zeros(0)
    if (p / "iterations.csv").exists():
        try:
            iterations = np.loadtxt(p / "iterations.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1]
        except ValueError as e:
            raise FerkitError(f"{p / 'iterations.csv'}: not an iteration,loss table ({e})") from None
    metrics = {}
    for f in sorted(p.glob("metrics-*.json")):
        m = _read_json(f)
        if isinstance(m, dict) and "confusion_matrix" in m:
            metrics[m.get("split", f.stem[len("metrics-"):])] = m
    return Run(p, name or p.name, config, history, iterations, metrics)


def run_names(paths: list[str | Path]) -> list[str]:
    """Short distinct labels for run folders: the folder name, with its parent's where two clash."""
    names = [Path(p).resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return ["/".join(Path(p).resolve().parts[-2:]) for p in paths]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FerkitError(f"{path}: unreadable JSON ({e}); rerun the command that wrote it") from None


def column(history: list[dict], key: str) -> np.ndarray:
    """One per-epoch column as floats (NaN where missing)."""
    return np.array([float(r.get(key, np.nan)) if r.get(key) is not None else np.nan for r in history])


def summarize_history(history: list[dict]) -> dict | None:
    """A history in numbers (None when empty): epochs run, the best validation accuracy and its epoch,
    the last epoch's validation and training accuracy, and time: the median epoch's seconds, that
    times the epochs (the run's wall-clock on a quiet machine) and the epochs' sum (which also
    counts whatever slowed some epochs: other work beside it, a paused process)."""
    if not history:
        return None
    val, secs = column(history, "val_acc"), column(history, "seconds")
    best = int(np.nanargmax(val)) if np.isfinite(val).any() else len(history) - 1
    median = float(np.nanmedian(secs)) if np.isfinite(secs).any() else float("nan")
    return dict(epochs=len(history), best_epoch=int(history[best]["epoch"]), best_val_acc=float(val[best]),
                last_val_acc=float(val[-1]), last_train_acc=float(column(history, "train_acc")[-1]),
                median_epoch_seconds=median, wall_clock_seconds=median * len(history), total_seconds=float(np.nansum(secs)))


def format_summary(runs: list[Run]) -> str:
    """summarize_history of each run as a text table, one row per run."""
    w = max([4] + [len(r.name) for r in runs]) + 2
    lines = [f"{'run':<{w}}{'epochs':>7}{'best val acc (epoch)':>22}{'last val acc':>14}{'last train acc':>16}"
             f"{'median epoch':>14}{'epochs x median':>17}{'sum':>10}"]
    for r in runs:
        s = summarize_history(r.history)
        if s is None:
            lines.append(f"{r.name:<{w}}{'no history':>7}")
            continue
        lines.append(f"{r.name:<{w}}{s['epochs']:>7}{s['best_val_acc']:>16.4f} ({s['best_epoch']:>3}){s['last_val_acc']:>14.4f}"
                     f"{s['last_train_acc']:>16.4f}{s['median_epoch_seconds']:>13.1f}s"
                     f"{s['wall_clock_seconds'] / 60:>13.1f} min{s['total_seconds'] / 60:>6.1f} min")
    return "\n".join(lines)


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` values (shorter at the start); same length as x."""
    x = np.asarray(x, float)
    if window <= 1 or len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    n = np.minimum(np.arange(1, len(x) + 1), window)
    return (c[1:] - c[np.arange(1, len(x) + 1) - n]) / n


# ---------------------------------------------------------------- helpers


def _axes(ax, figsize=(6, 4)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def to_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """The figure as a PNG file (written atomically; missing folders are created); the figure is closed."""
    return write_output(path, to_png(fig, dpi))


def plot_runs(run_dirs: list[str | Path], out: str | Path) -> tuple[list[Path], str, str | None]:
    """Every figure of `ferkit plot` for run folders, saved in out: histories, losses, accuracy and,
    from their metrics-*.json, confusion matrices and per-class accuracy. Returns (files, the runs'
    summary table as text, the per-class table as text or None when no run has metrics)."""
    runs = [read_run(p, n) for p, n in zip(run_dirs, run_names(run_dirs))]
    out = Path(out)
    files = [save(plot_histories(runs), out / "history.png"),
             save(plot_iteration_loss({r.name: r.iterations for r in runs}), out / "loss-iterations.png"),
             save(plot_epoch_loss({r.name: r.history for r in runs}), out / "loss-epochs.png"),
             save(plot_accuracy({r.name: r.history for r in runs}), out / "accuracy.png")]
    best = {}
    for r in runs:
        for split, m in r.metrics.items():
            files.append(save(plot_confusion_pair(m["confusion_matrix"], f"{r.name} {split}", labels_of(m)),
                              out / f"confusion-{r.name.replace('/', '-')}-{split}.png"))
            best.setdefault(r.name if len(r.metrics) == 1 else f"{r.name} {split}", m)
    if best:
        files.append(save(plot_per_class(best), out / "per-class.png"))
    return files, format_summary(runs), format_per_class(best) if best else None


# ---------------------------------------------------------------- histories (Figures 3, 4, 7, 8)


def plot_iteration_loss(losses: dict[str, np.ndarray], ax=None, smooth: int | None = None):
    """Training loss of every iteration (Figures 3, 7), one colour per run: raw (faint) and a moving average."""
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
    return fig


def plot_epoch_loss(histories: dict[str, list[dict]], ax=None):
    """Train (solid) and validation (dashed) loss per epoch, one colour per run."""
    return _per_epoch(histories, "loss", "Loss per epoch", ax)


def plot_accuracy(histories: dict[str, list[dict]], ax=None):
    """Train (solid) and validation (dashed) accuracy per epoch (Figures 4, 8), one colour per run."""
    return _per_epoch(histories, "acc", "Accuracy", ax)


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
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
    plot_iteration_loss({r.name: r.iterations for r in runs}, axes[0])
    plot_epoch_loss({r.name: r.history for r in runs}, axes[1])
    plot_accuracy({r.name: r.history for r in runs}, axes[2])
    return fig


# ---------------------------------------------------------------- confusion matrix and per-class accuracy (Figures 5, 6; Table 3)


def plot_confusion(cm, normalize: bool = False, ax=None, title: str | None = None, labels=None):
    """The (C, C) confusion matrix (rows true, columns predicted) over `labels` (the model's emotion
    names; None: the class numbers) as counts or row-normalised fractions."""
    cm = np.asarray(cm, float)
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    plot_confusion(cm, False, axes[0], f"{title} counts".strip(), labels)
    plot_confusion(cm, True, axes[1], f"{title} row-normalised".strip(), labels)
    return fig


def emotions_of(metrics: dict[str, dict]) -> list[str]:
    """Every emotion the models in `metrics` predict, in order (FER2013's 7, then e.g. FER+'s contempt)."""
    out = []
    for m in metrics.values():
        out += [e for e in labels_of(m) if e not in out]
    return out


def per_class_rows(metrics: dict[str, dict]) -> list[list]:
    """Table 3 as rows: [emotion, accuracy of each model...] then ["overall", ...]; None where undefined."""
    rows = [[e] + [m["per_class_accuracy"].get(e) for m in metrics.values()] for e in emotions_of(metrics)]
    return rows + [["overall"] + [m["accuracy"] for m in metrics.values()]]


def format_per_class(metrics: dict[str, dict]) -> str:
    """The per-class table as text, one column per model."""
    names = list(metrics)
    w = max([10] + [len(n) + 2 for n in names])
    lines = [f"{'emotion':<10}" + "".join(f"{n:>{w}}" for n in names)]
    for row in per_class_rows(metrics):
        lines.append(f"{row[0]:<10}" + "".join(f"{'-' if v is None else f'{v:.4f}':>{w}}" for v in row[1:]))
    return "\n".join(lines)


def plot_per_class(metrics: dict[str, dict], ax=None):
    """Per-class accuracy (Table 3) as grouped bars: one group per emotion, one bar per model."""
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

    face (48, 48) uint8; maps[k] (C_k, H_k, W_k) float."""
    rows = len(maps)
    fig, axes = plt.subplots(rows, per_layer + 1, figsize=(1.3 * (per_layer + 1), 1.35 * rows + 0.3),
                             layout="constrained", squeeze=False)
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


def plot_filters(filters: np.ndarray, title: str = "First-layer filters"):
    """Figure 10: filters (C, 1, k, k) (or (C, k, k)) as a grid of grey images, each scaled to its own range."""
    w = np.asarray(filters, float).reshape(len(filters), *np.shape(filters)[-2:])
    cols = int(np.ceil(np.sqrt(len(w) * 2)))
    rows = int(np.ceil(len(w) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(0.55 * cols + 0.4, 0.55 * rows + 0.5), layout="constrained", squeeze=False)
    for i, axc in enumerate(axes.flat):
        axc.set_xticks([]), axc.set_yticks([])
        if i < len(w):
            f = w[i]
            axc.imshow((f - f.min()) / (np.ptp(f) or 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axc.axis("off")
    fig.suptitle(f"{title} ({len(w)} of {w.shape[1]}x{w.shape[2]})", fontsize=10)
    return fig


def plot_dreams(faces: np.ndarray, dreams: np.ndarray, labels: list[str] | None = None, title: str = "DeepDream"):
    """Figure 11: originals (top row) and their dreams (bottom row); uint8 (N, 48, 48) each."""
    n = len(faces)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 0.4, 3.6), layout="constrained", squeeze=False)
    for i in range(n):
        for r, img in enumerate((faces[i], dreams[i])):
            axes[r, i].imshow(img, cmap="gray", vmin=0, vmax=255)
            axes[r, i].set_xticks([]), axes[r, i].set_yticks([])
        axes[0, i].set_title(labels[i] if labels else f"face {i + 1}", fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=8)
    axes[1, 0].set_ylabel("dream", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig
