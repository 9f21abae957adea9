"""The run folder of `ferkit train`: the names of its files and the functions that read them.

    config.json        the resolved TrainConfig (and the model spec)
    history.json/.csv  one row per epoch (HISTORY_FIELDS)
    iterations.csv     the training loss of every iteration (paper Figures 3, 7)
    best.pt, last.pt   checkpoints (see checkpoint.py)
    metrics-<split>.json  written by `ferkit evaluate` for best.pt (metrics-<split>-<data>.json beside a score on
                       other data; metrics-<file>-<split>.json for another file: last.pt, an exported graph)

train.py writes these files, `ferkit evaluate` the metrics; plots, the report and the CLI read
them here, so a renamed file is renamed for all of them at once.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, FerkitError, quoted
from .files import check_regular_file, same_path
from .outputs import escaped_utf8

CONFIG = "config.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
ITERATIONS = "iterations.csv"
BEST = "best.pt"
LAST = "last.pt"
METRICS_GLOB = "metrics-*.json"
TRAIN_FILES = (CONFIG, HISTORY_JSON, HISTORY_CSV, ITERATIONS, BEST, LAST)  # what `ferkit train` writes
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
ACCURACIES = ("train_acc", "val_acc")  # the HISTORY_FIELDS that are fractions of faces


def check_not_run_file(out: Path, flag: str) -> None:
    """A FerkitError when a command's output would replace a file `ferkit train` wrote in a run folder
    (plot, report and --resume read them; a metrics JSON over config.json broke the run). A link is
    judged by what it points to too: the writes go through it (a.pt -> RUN/last.pt replaced last.pt)."""
    for p in dict.fromkeys((out, Path(os.path.realpath(out)))):  # (realpath: a loop of links is no traceback)
        if p.name in TRAIN_FILES and any((p.parent / f).exists() for f in (CONFIG, LAST)):
            raise FerkitError(f"{flag} {out}: {'' if p == out else f'is {p}, '}a file of the run in {p.parent}, which "
                              "'ferkit train' wrote and plot, report and --resume read; give another file name")


def metrics_file(split: str) -> str:
    """The name `ferkit evaluate` gives a split's metrics in a run folder (see metrics_path)."""
    return f"metrics-{split}.json"


def metrics_path(folder: Path, split: str, data: str, model: str | None = None) -> Path:
    """Where `ferkit evaluate` writes a split's metrics on `data` in a run folder: metrics-<split>.json
    for the run's own checkpoint (best.pt), metrics-<model>-<split>.json for another file (model: its
    name; last.pt's score replaced best.pt's, which plot and report show as the run's); and where that
    file holds a score on other data, which stays (it was replaced too), ...-<data's name>.json beside
    it. Plot and report read them all."""
    name = f"{model}-{split}" if model else split
    plain = folder / metrics_file(name)
    try:
        earlier = json.loads(plain.read_text(encoding="utf-8-sig")).get("data")
    except FileNotFoundError:
        return plain
    except (OSError, ValueError, AttributeError, RecursionError):  # not metrics (a folder, not JSON, not a dict, nested
        earlier = None  # past Python's stack): kept all the same
    if isinstance(earlier, str) and earlier and same_path(earlier, data):
        return plain
    return folder / metrics_file(f"{name}-{Path(data).name.split('.')[0] or 'data'}")


def of_best(key: str) -> bool:
    """Whether a run's metrics by key (Run.metrics) score its best.pt: metrics-<split>[-<data>].json,
    not metrics-<file>-<split>.json of another file (metrics_path)."""
    from .data import ALL, SPLITS

    return key.partition("-")[0] in (*SPLITS, ALL)


@dataclass
class Run:
    """What a run folder holds, as data (or a checkpoint file alone: file)."""

    path: Path
    name: str
    config: dict | None  # config.json (with "spec"), or None
    history: list[dict]  # one dict per epoch (HISTORY_FIELDS)
    iterations: np.ndarray  # (T,) training loss of every iteration
    metrics: dict[str, dict] = field(default_factory=dict)  # metrics-<split>.json from `ferkit evaluate`, by split
    file: Path | None = None  # a run read from a checkpoint file (a bundled model, a best.pt kept alone): that file
    best: tuple[int, float] | None = None  # a run folder's best.pt: its epoch and score (checkpoint.weights_acc), where it reads

    @property
    def source(self) -> Path:
        """What the run was read from: its checkpoint file, else its folder."""
        return self.file or self.path

    @property
    def checkpoint(self) -> Path:
        """The checkpoint file, else best.pt, else last.pt (which may not exist either)."""
        return self.file if self.file is not None else folder_checkpoint(self.path)


def folder_checkpoint(folder: Path) -> Path:
    """The checkpoint a run folder stands for: its best.pt, else its last.pt (a run that has not
    validated yet, or whose best.pt is gone); best.pt where neither exists, for the error. A best.pt
    that is a link to no file is a FerkitError: last.pt in its place was scored (and its metrics
    written) as the run's best, silently."""
    best = folder / BEST
    if os.path.islink(best) and not os.path.exists(best):
        raise FerkitError(f"{best}: {broken_link(best)}; fix the link, or remove it to use the run's {LAST}")
    return folder / LAST if not best.exists() and (folder / LAST).exists() else best


def broken_link(link: Path) -> str:
    """What a symbolic link that leads to no file is: a loop of links, or a link to a missing file."""
    target = os.path.realpath(link)  # (Path.resolve raises on a loop in some Pythons)
    if os.path.islink(target):  # realpath stops inside a loop of links
        return "a loop of symbolic links (it leads back to itself)"
    return f"a symbolic link to {target}, which does not exist"


def read_run(run_dir: str | Path, name: str | None = None) -> Run:
    """A Run from a `ferkit train` folder; a clear error when the folder is missing or holds no run."""
    p = Path(run_dir)
    if p.exists() and not p.is_dir():  # (read_runs takes a regular file for a checkpoint)
        check_regular_file(p, "the --out folder of a `ferkit train` run (or its checkpoint, a .pt file)")
    if p.is_symlink() and not p.exists():
        raise FerkitError(f"{p}: a symbolic link to nothing (a missing target or a loop of links); fix or remove the link, "
                          "or give the --out folder of a `ferkit train` run (or its checkpoint, a .pt file)")
    if not p.is_dir():
        raise FerkitError(f"{p}: no such run folder; give the --out folder of a `ferkit train` run (or its checkpoint, a .pt file)")
    if not any((p / f).exists() for f in (CONFIG, HISTORY_JSON, HISTORY_CSV, ITERATIONS, BEST)):
        raise FerkitError(f"{p}: not a run folder (no {CONFIG}, {HISTORY_JSON}, {ITERATIONS} or {BEST}); "
                          "give the --out folder of a `ferkit train` run")
    config = check_config(_read_json(p / CONFIG), str(p / CONFIG)) if (p / CONFIG).exists() else None
    if (p / HISTORY_JSON).exists():
        history = check_history(_read_json(p / HISTORY_JSON), str(p / HISTORY_JSON))
    elif (p / HISTORY_CSV).exists():
        history = check_history(_numbers(p / HISTORY_CSV, "a history table of numbers"), str(p / HISTORY_CSV))
    else:
        history = []
    iterations = np.zeros(0)
    if (p / ITERATIONS).exists():  # only its header: a run stopped before its first step
        table = "an iteration,loss table"
        rows = _numbers(p / ITERATIONS, table)
        if rows and "loss" not in rows[0]:
            raise FerkitError(f"{p / ITERATIONS}: not {table} (no loss field); rerun the command that wrote it")
        iterations = check_iterations([r["loss"] for r in rows], str(p / ITERATIONS), table)
    metrics = {}
    for f in sorted(p.glob(METRICS_GLOB)):
        m = _read_json(f)
        if isinstance(m, dict) and "confusion_matrix" in m:
            metrics[f.stem[len("metrics-"):]] = check_metrics(m, str(f))  # by file: two files may hold one split
    return Run(p, name or shown_name(p.name), config, history, iterations, metrics)


def run_names(paths: list[str | Path]) -> list[str]:
    """Short distinct labels for run folders (and checkpoint files): the folder's name, with as many
    of its parents as it takes where two clash, and -2, -3 after a run given again (plot names its
    figures by them: a clash wrote one run's over the other's). Bytes that are not UTF-8 are escaped (shown_name)."""
    full = [Path(os.path.realpath(p)) for p in paths]  # (Path.resolve raised on a loop of links: a traceback)
    names = [p.stem if p.is_file() else p.name for p in full]
    depth = 1
    while len(set(names)) < len(set(full)) and depth < max(len(p.parts) for p in full):  # two runs, one name
        depth += 1
        names = ["/".join(p.parts[-depth:]) for p in full]
    return [shown_name(n if names[:i].count(n) == 0 else f"{n}-{names[:i].count(n) + 1}") for i, n in enumerate(names)]


def shown_name(name: str) -> str:
    """A folder's name (or path) as text to show: its bytes that are not UTF-8 (a Latin-1 'caf\\xe9', a lone
    surrogate to Python) escaped as the error messages say them, caf\\udce9. As chart text the surrogate was
    matplotlib's TypeError traceback (plot, report), in the report's page a UnicodeEncodeError; escaped, two
    such names stay distinct (U+FFFD would make them one)."""
    return escaped_utf8(name).decode("utf-8")


def check_history(history, where: str) -> list[dict]:
    """history if it is as train.py writes it (a list of per-epoch rows: a number for the epoch, one more than the row
    before's, numbers or null for the other HISTORY_FIELDS), else a FerkitError naming where it came from and the first bad row."""
    if not isinstance(history, list):
        raise FerkitError(f"{where}: not a training history (a list of per-epoch rows); got {type(history).__name__}; "
                          "rerun the command that wrote it")
    for i, row in enumerate(history, 1):
        if not is_record(row):
            raise FerkitError(f"{where}: row {i} is not an epoch's record (numbers for {', '.join(HISTORY_FIELDS)}, "
                              f"at most {MAX_RECORD:g} in size); got {str(row)[:80]}; rerun the command that wrote it")
    for i, row in enumerate(history, 1):  # (a percentage, 65.3, was drawn off the accuracy panel and tabled as 65.3000)
        bad = next((k for k in ACCURACIES if row.get(k) is not None and not (math.isnan(row[k]) or 0 <= row[k] <= 1)), None)
        if bad:
            raise FerkitError(f"{where}: row {i}'s {bad} is {row[bad]:g}, not an accuracy from 0 to 1 (a percentage?); "
                              "rerun the command that wrote it")
    for i in range(1, len(history)):  # train.py writes epochs 1, 2, ... once each (a resume rewrites it from last.pt):
        epoch, before = history[i]["epoch"], history[i - 1]["epoch"]  # rows twice or out of order drew lines back and forth
        if not epoch > before:
            raise FerkitError(f"{where}: row {i + 1}'s epoch is {epoch:g}, not after row {i}'s ({before:g}): a training history "
                              "has each epoch once, in order (two histories joined, or rows edited?); rerun the command that wrote it")
        if epoch != before + 1:  # (a resume continues the count: a gap is rows lost or edited, and plot drew over it unsaid)
            raise FerkitError(f"{where}: row {i + 1}'s epoch is {epoch:g}, not {before + 1:g}, the one after row {i}'s ({before:g}): "
                              "a training history has every epoch, none missing (rows deleted or edited?); rerun the command that wrote it")
    measured = HISTORY_FIELDS[1:5]  # (another tool's table passed the rows' check with an epoch alone: plots of nothing)
    if history and not any(row.get(k) is not None for row in history for k in measured):
        raise FerkitError(f"{where}: no {', '.join(measured)} in it, so not a ferkit training history (its fields: "
                          f"{', '.join(sorted({k for row in history for k in row}))[:120]}); give the --out folder of a "
                          "`ferkit train` run")
    return history


def check_iterations(losses, where: str, what: str) -> np.ndarray:
    """The training loss of every iteration (iterations.csv's, a last.pt's iter_loss) as floats, if it is a list
    of numbers at most MAX_RECORD in size (NaN passes, as in the history), else a FerkitError "<where>: not <what>
    (...)": a checkpoint's list of words or lists was a ValueError traceback in plot and report."""
    if not isinstance(losses, list):
        raise FerkitError(f"{where}: not {what} (a list of numbers); got {type(losses).__name__}; rerun the command that wrote it")
    bad = next((v for v in losses if not is_number(v)), None)
    if bad is not None:
        raise FerkitError(f"{where}: not {what} (a loss that is no number: {quoted(bad, 40)}); rerun the command that wrote it")
    iterations = np.array(losses, float)
    if (np.abs(iterations) > MAX_RECORD).any():
        raise FerkitError(f"{where}: not {what} (a loss over {MAX_RECORD:g}); rerun the command that wrote it")
    return iterations


def is_record(row) -> bool:
    """Whether row is one epoch's record as train.py writes it: a number for the epoch (not NaN: the summary's
    int() of the best epoch was a ValueError traceback in plot and report), numbers (at most MAX_RECORD in size)
    or null for the other HISTORY_FIELDS."""
    return isinstance(row, dict) and is_number(row.get("epoch")) and abs(row["epoch"]) <= MAX_RECORD and all(
        row.get(k) is None or (is_number(row[k]) and not abs(row[k]) > MAX_RECORD) for k in HISTORY_FIELDS)


# No loss, accuracy, rate or time a training writes comes near this; a hand-edited 1e308 broke the
# plots' axes (matplotlib's ticks overflow). NaN passes: an epoch without validation has none.
MAX_RECORD = 1e12


# The fields of a run's training config (config.json, a checkpoint's 'config') that reading its data
# anew (evaluate, visualize, export --int8, report) takes from it, and tta, which its Classifier predicts
# by (a hand-edited tta: "no" was read as true): name -> (the types it takes, what it must be)
CONFIG_READ = {"label_names": ((str, type(None)), "a text or null"), "labels_file": ((str, type(None)), "a path or null"),
               "split_seed": (int, "an integer"), "val_fraction": ((int, float), "a number"),
               "test_fraction": ((int, float), "a number"), "tta": (bool, "true or false")}


def misread_fields(config: dict, where: str = "") -> list[str]:
    """config's CONFIG_READ fields of another type, each as config.problem words it: "<where><name> must be ...; got ..."."""
    from .config import problem

    return [problem(where + k, what, config[k]) for k, (kinds, what) in CONFIG_READ.items()
            if k in config and not isinstance(config[k], kinds)]


def check_config(config, where: str) -> dict:
    """config.json's settings, with its model spec as ModelSpec reads it (every field, the defaults
    filled in), else a FerkitError naming where and the field: the report read a spec of "hello"
    or a conv without filters, and a label_names of 5, with a traceback."""
    from .config import ModelSpec

    def refuse(what: str):
        raise FerkitError(f"{where}: not the training config `ferkit train` writes ({what}); restore it, or give the "
                          f"run's {BEST} instead, which keeps a copy of it")

    if not isinstance(config, dict):
        raise FerkitError(f"{where}: not a training config (a JSON object of settings); rerun the command that wrote it")
    # (train writes finite numbers alone, as TrainConfig checks them: report tabled a hand-edited NaN or Infinity as the run's)
    odd = [f"{k} is {v!r}, which train never writes (NaN or Infinity)" for k, v in config.items()
           if is_number(v) and not math.isfinite(v)]
    if wrong := misread_fields(config) + odd:
        refuse("; ".join(wrong)[:200])
    if config.get("spec") is not None:
        try:
            config["spec"] = ModelSpec.from_dict(config["spec"]).to_dict()
        except ConfigError as e:  # (its problems one a line)
            refuse("spec: " + str(e).replace(":\n  - ", ": ").replace("\n  - ", "; "))
    return config


def trained_on(config: dict | None) -> str | None:
    """The data a run trained on (its config's `data`) where it still exists: what evaluate, export
    --int8 and report read by default for a run's checkpoint (a colour model's own image folder, say)."""
    own = (config or {}).get("data")
    return own if isinstance(own, str) and own and Path(own).exists() else None


def skipped_bad_rows(config: dict | None, data: str | Path | None = None) -> bool:
    """Whether `data` (None: the run's own) are read skipping bad rows where a command has no --skip-bad-rows of its own
    (int8 calibration: export without the flag, predict and serve): where they are the data the run trained on, still
    there (trained_on), and it read them with --skip-bad-rows (predict and serve stopped at the bad row training skipped;
    export skipped them for its --data given as the run's own path, predict not for its calibration= given so)."""
    own = trained_on(config)
    return (config or {}).get("skip_bad_rows") is True and own is not None and (not data or same_path(data, own))


def check_metrics(m: dict, where: str) -> dict:
    """m if it is as `ferkit evaluate` writes it (metrics.summarize), else a FerkitError naming the first
    field that is not: plots and the report read each of these fields."""
    from .labels import check_names, labels_of

    def refuse(what: str):
        raise FerkitError(f"{where}: not the metrics `ferkit evaluate` writes ({what}); rerun ferkit evaluate, or delete the file")

    names = m.get("labels")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(e, str) for e in names)):
        refuse("labels: a list of emotion names")
    if names is not None and (why := check_names(tuple(names))):  # (as a checkpoint's: plot printed an escape code as it was,
        refuse(f"labels: {why}")  # and drew one class, or two of one name, as a model's outputs)
    labels = labels_of(m)
    if not is_count(m.get("n")):
        refuse("n: the number of faces")
    if m.get("data") is not None and not isinstance(m["data"], str):  # the report compares it with the data's path
        refuse("data: the path of the data it was scored on")
    if m.get("tta") is not None and not isinstance(m["tta"], bool):  # (report compares it with the model's own)
        refuse("tta: true or false")
    if not is_fraction(m.get("accuracy")):  # (NaN, Infinity or 5 were drawn and tabled as scores)
        refuse("accuracy: a number from 0 to 1")
    pca = m.get("per_class_accuracy")
    if not (isinstance(pca, dict) and all(pca.get(e) is None or is_fraction(pca.get(e)) for e in labels)):
        refuse("per_class_accuracy: a number from 0 to 1 (or null) for each emotion")
    cm = m["confusion_matrix"]
    if not (isinstance(cm, list) and len(cm) == len(labels) and all(
            isinstance(row, list) and len(row) == len(labels) and all(is_count(v) for v in row) for row in cm)):
        refuse(f"confusion_matrix: {len(labels)} rows of {len(labels)} counts, whole numbers from 0 to {MAX_RECORD:g}")
    # evaluate counts the same faces in all three: an edited one was shown beside the matrix ("accuracy 1.0000 on 3 faces")
    faces, right = sum(map(sum, cm)), sum(cm[i][i] for i in range(len(cm)))
    if m["n"] != faces or not faces:
        refuse(f"n: the number of faces its confusion_matrix counts, at least 1; it counts {faces}, n is {m['n']}")
    if not math.isclose(m["accuracy"], right / faces, abs_tol=1e-9):
        refuse(f"accuracy: the fraction of its confusion_matrix's faces on its diagonal, {right / faces:.4f}; got {m['accuracy']:g}")
    return m


def is_number(v) -> bool:
    """A real number, numpy's included (a float32 of one's own metrics plots as a float does); not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_whole(v) -> bool:
    """A whole number, numpy's included (an np.int64 taken from an array); not a bool (True is no count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_fraction(v) -> bool:
    """An accuracy as evaluate writes it: a number from 0 to 1 (not NaN)."""
    return is_number(v) and 0 <= v <= 1


def is_count(v) -> bool:
    """A whole number of faces as evaluate writes it: Infinity, 1e308 or -5 (JSON reads them) overflowed the plots."""
    return is_whole(v) and 0 <= v <= MAX_RECORD


def _written(path: Path) -> Path:
    """path, unless it is a folder, pipe or device where a run's file should be (a FIFO would block
    its reader forever)."""
    check_regular_file(path, "the file the run wrote; rerun the command that wrote it")
    return path


def _numbers(path: Path, what: str) -> list[dict[str, float]]:
    """One of a run's CSV tables (history.csv, iterations.csv) as rows of numbers by field (an empty
    field: NaN); a row that is not what train.py wrote is named by its line."""
    reader = None
    try:
        with open(_written(path), newline="", encoding="utf-8-sig") as f:  # (a byte-order mark, as Windows editors write, is no field)
            reader = csv.DictReader(f)
            rows = []
            for row in reader:
                if None in row or None in row.values():  # more or fewer fields than the header has
                    raise ValueError(f"not the {len(reader.fieldnames)} fields of the header")
                rows.append({k: float(v) if v != "" else float("nan") for k, v in row.items()})
    except (OSError, ValueError, csv.Error) as e:
        line = f"line {reader.line_num}: " if reader is not None and reader.line_num else ""
        raise FerkitError(f"{path}: not {what} ({line}{e}); rerun the command that wrote it") from None
    return rows


def _read_json(path: Path):
    try:
        return json.loads(_written(path).read_text(encoding="utf-8-sig"))  # (as config.read_file reads --config)
    except (OSError, ValueError, RecursionError) as e:  # (RecursionError: thousands of '[', json recursing once a level)
        raise FerkitError(f"{path}: unreadable JSON ({e}); rerun the command that wrote it") from None


def best_metrics(runs: list[Run]) -> dict[str, dict]:
    """The metrics to compare across runs, by model: each run's only split of its best.pt under its
    name, or every split as "<run> <split>" when it has several (or its only one is another file's)."""
    best = {}
    for r in runs:
        for split, m in r.metrics.items():
            best.setdefault(r.name if len(r.metrics) == 1 and of_best(split) else f"{r.name} {split}", m)
    return best


def column(history: list[dict], key: str) -> np.ndarray:
    """One per-epoch column as floats (NaN where missing)."""
    return np.array([float(r.get(key, np.nan)) if r.get(key) is not None else np.nan for r in history])


def diverged(losses) -> bool:
    """Whether a run's losses (iterations, or a history column such as train_loss) are there and all
    NaN: a run that diverged, whose loss curves draw nothing."""
    y = np.asarray(losses, float)
    return y.size > 0 and bool(np.isnan(y).all())


def summarize_history(history: list[dict], best: tuple[int, float] | None = None) -> dict | None:
    """A history in numbers (None when empty): epochs run, the best validation accuracy and its epoch,
    the last epoch's validation and training accuracy, and time: the median epoch's seconds, that
    times the epochs (the run's wall-clock on a quiet machine) and the epochs' sum (which also
    counts whatever slowed some epochs: other work beside it, a paused process). With `best` (Run.best) the best
    is best.pt's, and `lost` says the history's where it scored higher (lost_best), else None. A negative epoch's seconds
    (an older ferkit timed epochs with the wall clock, which a clock set back turns negative) is unknown, as a missing one
    is: it took from the sum and the median."""
    if not history:
        return None
    secs, top = column(history, "seconds"), best_row(history)
    secs[secs < 0] = np.nan
    median = float(np.nanmedian(secs)) if np.isfinite(secs).any() else float("nan")
    best_epoch, best_acc, lost = int((top or history[-1])["epoch"]), float(top["val_acc"]) if top else float("nan"), None
    if best is not None and top:  # (without validation best.pt is the last epoch's: as the history says)
        (best_epoch, best_acc), lost = best, lost_best(top, *best)
    return dict(epochs=len(history), best_epoch=best_epoch, best_val_acc=best_acc, lost=lost,
                last_val_acc=float(column(history, "val_acc")[-1]), last_train_acc=float(column(history, "train_acc")[-1]),
                median_epoch_seconds=median, wall_clock_seconds=median * len(history), total_seconds=float(np.nansum(secs)))


def best_row(history: list[dict]) -> dict | None:
    """The history's row of its best validation accuracy (the first of a tie), or None without validation."""
    val = column(history, "val_acc")
    return history[int(np.nanargmax(val))] if np.isfinite(val).any() else None


def lost_best(top: dict, epoch, acc: float | None) -> str | None:
    """"epoch N scored X; its best.pt was deleted or damaged" where the history's best epoch (`top`: best_row's) scored
    higher than best.pt (its `epoch` and score `acc`: checkpoint.weights_acc): a resume that found best.pt gone wrote it
    again from last.pt's epoch, and the weights that scored best are gone. Else None (a tie at the history's 5 places is none)."""
    if top["epoch"] == epoch or (acc is not None and top["val_acc"] <= round(acc, 5)):
        return None
    return f"epoch {top['epoch']} scored {top['val_acc']:.4f}; its {BEST} was deleted or damaged"


def format_summary(runs: list[Run]) -> str:
    """summarize_history of each run as a text table, one row per run; below it a line for each run whose best.pt is
    not the history's best epoch (lost_best)."""
    w = max([4] + [len(r.name) for r in runs]) + 2
    lines = [f"{'run':<{w}}{'epochs':>7}{'best val acc (epoch)':>22}{'last val acc':>14}{'last train acc':>16}"
             f"{'median epoch':>14}{'epochs x median':>17}{'sum':>10}"]
    lost = []  # (below the table: a note does not fit its column)
    for r in runs:
        s = summarize_history(r.history, r.best)
        if s is None:
            lines.append(f"{r.name:<{w}}{'no history':>7}")
            continue
        # a run without validation (no val split) keeps its last epoch as best: said, not 'nan (  3)'
        best = f"{s['best_val_acc']:>16.4f} ({s['best_epoch']:>3})" if math.isfinite(s["best_val_acc"]) else f"{'no validation':>22}"
        last = f"{s['last_val_acc']:>14.4f}" if math.isfinite(s["last_val_acc"]) else f"{'-':>14}"
        train = f"{s['last_train_acc']:>16.4f}" if math.isfinite(s["last_train_acc"]) else f"{'-':>16}"
        # a history without seconds (another tool's, a hand-made one) has no times: said '-', not 'nans' and 'nan min'
        times = (f"{s['median_epoch_seconds']:>13.1f}s{s['wall_clock_seconds'] / 60:>13.1f} min{s['total_seconds'] / 60:>6.1f} min"
                 if math.isfinite(s["median_epoch_seconds"]) else f"{'-':>14}{'-':>17}{'-':>10}")
        lines.append(f"{r.name:<{w}}{s['epochs']:>7}{best}{last}{train}{times}")
        if s["lost"]:
            lost.append(f"{r.name}: best val acc is {BEST}'s, epoch {s['best_epoch']}; {s['lost']}")
    return "\n".join(lines + lost)
