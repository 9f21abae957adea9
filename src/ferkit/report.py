"""`ferkit report`: one self-contained HTML page about one or more run folders.

For each run: its configuration (config.json, model spec, parameter count), history plots, the
best checkpoint's confusion matrices and per-class accuracy on the PublicTest split (plus any
metrics-*.json written by `ferkit evaluate`), first-layer filters, activation maps and DeepDream
on a handful of faces, and the ranked trial table when the run came from `ferkit search`.
Several runs add a comparison (histories overlaid, per-class accuracy across models). Images are
embedded as base64 PNG, so the file has no external assets. Without FER2013 data the page shows
everything that needs none (and says so), using scikit-image's astronaut face for the visuals.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from . import plots
from .errors import FerkitError, first_line, shell_word
from .files import check_not_input, same_path, write_output
from .labels import FER2013, labels_of
from .metrics import per_class_rows
from .outputs import csv_value
from .runs import BEST, Run, format_summary, metrics_file, of_best, shown_name, summarize_history, trained_on

log = logging.getLogger(__name__)

N_FACES = 4  # faces shown with DeepDream (a handful keeps the page small)


def build_report(run_dirs: list[str | Path], out: str | Path, data: str | None | bool = None, n_faces: int = N_FACES,
                 dream_settings=None, data_faces: bool = True, skip_bad_rows: bool = False) -> dict:
    """Write the report to `out`; returns {"path", "bytes", "seconds", "notes"}.

    data: a FER2013 path; None = each run's own training data, else the default location; False = use no data.
    data_faces: draw activations and DeepDream on FER2013 faces; False = on the astronaut face, so
    that a report to publish holds no FER2013 image (the evaluation still uses the data).
    skip_bad_rows: skip the data's malformed rows or images (a note says how many), as a run trained with it did."""
    from .checkpoint import read_runs
    from .dream import DreamSettings

    t0 = time.time()
    notes, loaded = [], {}
    runs = read_runs(run_dirs, notes)
    dream_settings = dream_settings or DreamSettings()
    body, evaluated = [], {}
    # each run's own data, read or not (--no-data), is no place for the page: refused once, before any run's work
    check_not_input(Path(out), "--out", [trained_on(run.config) for run in runs])
    for run in runs:
        log.info(f"report: {run.source}")
        fer = _data_for(run, data, loaded, notes, skip_bad_rows)
        # (the CLI refuses --data as --out before the work; data found here, replaced by the page, were lost)
        check_not_input(Path(out), "--out", [path for path, _ in loaded])
        section, metrics = _run_section(run, fer, n_faces, dream_settings, notes, data_faces)
        body.append(section)
        if metrics is not None:
            evaluated[run.name] = metrics
    head = []
    if len(runs) > 1:
        head.append(_comparison(runs, evaluated))
    page = _page(runs, notes, head + body)
    out = write_output(out, page)
    return {"path": out, "bytes": out.stat().st_size, "seconds": time.time() - t0, "notes": notes}


# ---------------------------------------------------------------- data


def _data_for(run: Run, data, loaded: dict, notes: list, skip_bad_rows: bool = False):
    """The FerData to evaluate a run on, read as its training read it (input size and channels,
    class names, drawn split), or None (with a note saying why)."""
    from .data import OWN_SPLITS, SplitError, find_data, load_fer
    from .errors import DataError

    if data is False:
        if "no data asked for (--no-data): evaluation skipped" not in notes:
            notes.append("no data asked for (--no-data): evaluation skipped")
        return None
    path = data if data is not None else trained_on(run.config)
    try:
        key = str(find_data(path))
    except DataError as e:
        if data:  # asked for explicitly: a user error
            raise
        msg = f"no FER2013 data ({e}); evaluation skipped, visuals use scikit-image's astronaut face"
        if msg not in notes:
            notes.append(msg)
        return None
    reading = _reading(run)
    key = (key, repr(sorted(reading.items())))
    if key not in loaded:
        try:
            loaded[key] = load_fer(key[0], skip_bad_rows, **reading,
                                   split_fix=f"not evaluated, its faces drawn from all its images; score every image with "
                                             f"ferkit evaluate RUN_DIR --data {shell_word(key[0])} --split all, or {OWN_SPLITS}")
        except SplitError as e:  # a few images a class: its faces still show what the network sees
            notes.append(str(e))
            loaded[key] = e.unsplit  # (the data as read, not read again with NO_SPLIT)
        if loaded[key].skipped:
            notes.append(f"skipped {loaded[key].skipped} bad rows of {loaded[key].source}")
    return loaded[key]


def _reading(run: Run) -> dict:
    """load_fer's keyword arguments to read data as the run's training did (reading_for; {}: load_fer's defaults)."""
    from .config import ModelSpec
    from .data import reading_for

    config = dict(run.config or {})
    return reading_for(ModelSpec.from_dict(config.pop("spec")), config) if config.get("spec") else {}


def _no_val(run: Run, fer) -> str | None:
    """Why fer holds no val faces to score run on, in the terms of the data's kind ("no PublicTest rows" was said
    of an image folder too, and of a run trained with --val-fraction 0); None where _data_for's note said it: a
    val fraction over 0 draws some val faces or is refused (SplitError), and the refusal is a note already."""
    from .data import VAL_FRACTION

    if fer.kind == "pixels":
        return f"{fer.source} has no PublicTest rows"
    if fer.own_split:
        return f"{fer.source} has no val/ folder" if fer.kind == "folder" else f"{fer.source} has no val rows in its split column"
    if _reading(run).get("val_fraction", VAL_FRACTION):
        return None
    own = "no train/ val/ test/ folders" if fer.kind == "folder" else "no split column"
    return f"{fer.source} gives no split of its own ({own}) and the run's training drew none (--val-fraction 0)"


# ---------------------------------------------------------------- one run


def _run_section(run: Run, fer, n_faces: int, dream_settings, notes: list, data_faces: bool = True) -> tuple[str, dict | None]:
    """The HTML of one run and the metrics of its best checkpoint on PublicTest (or None)."""
    from .checkpoint import load_checkpoint
    from .dream import check_layer, deep_dream
    from .metrics import evaluate_split
    from .model import count_macs, count_params
    from .visualize import activation_maps, demo_face, first_layer_filters, layer_name, layer_names, sample_faces

    parts = [f"<h2 id='{_id(run.name)}'>{_e(run.name)}</h2><p class='path'>{_e(str(run.source.resolve()))}</p>"]
    ckpt, clf = run.path / BEST, None
    try:  # one damaged file (or a best.pt that links to none) must not cost the page of the other runs
        ckpt = run.checkpoint
        if not ckpt.exists():
            notes.append(f"{run.name}: no best.pt or last.pt; only the history and configuration are shown")
        else:
            clf = load_checkpoint(run.source)  # (a run's folder: a damaged best.pt's message offers its last.pt)
    except FerkitError as e:
        notes.append(f"{run.name}: {e}; only the history and configuration are shown")
    cfg = dict(run.config or (clf.meta.get("config") if clf else {}) or {})
    spec = cfg.pop("spec", None) or (clf.spec.to_dict() if clf else None)
    facts = {}
    if clf is not None:
        facts.update({"checkpoint": f"{ckpt.name} (epoch {clf.meta.get('epoch')})", "parameters": f"{count_params(clf.model):,}",
                      "multiply-adds per image": f"{count_macs(clf.model):,}"})
    s = summarize_history(run.history, run.best)  # best.pt's, which a resume may have written from a later epoch
    if s is not None:
        facts["epochs run"] = str(s["epochs"])
        if math.isfinite(s["best_val_acc"]):
            lost = f", {BEST}'s; {s['lost']}" if s["lost"] else ""
            facts["best validation accuracy"] = f"{s['best_val_acc']:.4f} (epoch {s['best_epoch']}{lost})"
        else:  # (was 'nan (epoch 3)')
            facts["best validation accuracy"] = f"none: no validation split; best.pt is the last epoch, {s['best_epoch']}"
        # a history without some figure (another tool's, a hand-made one; seconds an older ferkit wrote negative) leaves
        # its fact out, as plot's table shows '-': the page said 'training nan' and 'nan min (3 x nan s ...)'
        said = [f"{k} {s[f'last_{key}_acc']:.4f}" for k, key in (("validation", "val"), ("training", "train"))
                if math.isfinite(s[f"last_{key}_acc"])]
        if said:
            facts["last epoch's accuracy"] = ", ".join(said)
        if math.isfinite(s["median_epoch_seconds"]):
            facts["training time"] = (f"{s['wall_clock_seconds'] / 60:.1f} min ({s['epochs']} x {s['median_epoch_seconds']:.0f} s, "
                                      f"the median epoch; the epochs' sum {s['total_seconds'] / 60:.1f} min)")
    parts.append("<h3>Configuration</h3><div class='cols'>" + _kv_table(facts) + _kv_table(cfg) +
                 (f"<pre>{_e(_spec_text(spec))}</pre>" if spec else "") + "</div>")

    if run.history or len(run.iterations):
        parts.append("<h3>Training history</h3>" + _img(plots.plot_histories([run])))

    # evaluation: the best checkpoint on PublicTest now, plus metrics-*.json from `ferkit evaluate`
    metrics, fresh = dict(run.metrics), None
    saved = metrics.get("val")
    # a score with the mirror (evaluate --tta) of a model that predicts without it is not the model's: scored anew
    own_tta = clf is None or saved is None or saved.get("tta", clf.tta) == clf.tta  # (older files: not recorded)
    if saved is not None and fer is not None and same_path(saved.get("data"), fer.source) and _newer(run.path / metrics_file("val"), ckpt) \
            and own_tta:
        fresh = saved  # `ferkit evaluate` already scored this checkpoint on this data
    elif clf is not None and fer is not None and fer.has("val"):
        images, labels = fer.split("val")
        if (labels >= 0).all():
            log.info(f"  evaluating {ckpt.name} on {len(images)} PublicTest faces")
            try:
                # fix "": report has no --labels or --label-names to advise
                fresh = evaluate_split(clf, fer, "val", (run.config or {}).get("labels_file"), fix="")
            except FerkitError as e:  # this model cannot be scored on these data (other classes, no vote file): the others still are
                notes.append(f"{run.name}: not evaluated on {fer.source}: {e}")
            else:
                if saved is not None and not same_path(saved.get("data"), fer.source):  # keep a score on other data
                    metrics[f"val ({saved.get('data')})"] = saved
                elif not own_tta:  # and one with the mirror set otherwise
                    metrics[f"val (tta {'on' if saved['tta'] else 'off'})"] = saved
                metrics["val"] = fresh
    elif clf is not None and fer is not None and (why := _no_val(run, fer)):
        notes.append(f"{run.name}: {why}; no evaluation")
    if metrics:
        parts.append("<h3>Evaluation</h3>")
        for split, m in metrics.items():
            label = f"{split}: {m.get('data', '?')}" + (" (evaluated now)" if m is fresh and m is not saved else " (from metrics-*.json)")
            parts.append(f"<h4>{_e(label)} &mdash; accuracy {m['accuracy']:.4f} on {m['n']} faces</h4>")
            parts.append(_img(plots.plot_confusion_pair(m["confusion_matrix"], split, labels_of(m))))
        parts.append("<h4>Per-class accuracy</h4>" + _per_class_html(metrics))
    elif clf is not None:
        parts.append("<h3>Evaluation</h3><p class='note'>No data to evaluate on and no metrics-*.json in the run folder "
                     "(write one with <code>ferkit evaluate RUN_DIR</code>).</p>")

    if clf is not None and not len(clf.model.features):
        parts.append("<h3>What the network sees</h3><p>No conv layers: no filters, activation maps or DeepDream.</p>")
    elif clf is not None:
        # the val faces; where no split was drawn (too few images, or a training with none), any of them
        split = "val" if fer is not None and fer.has("val") else "all" if fer is not None and not fer.own_split else None
        if split and data_faces:
            faces, labels = sample_faces(fer, split, max(n_faces, 1))  # (0: one face for the activation maps)
            names = [("?" if y < 0 else f"{fer.names[y]}" if fer.names else f"label {y}") for y in labels]  # the data's own labels
            names = [f"FER2013 {n}" if fer.names == FER2013 else n for n in names]
        else:
            faces, names = demo_face(clf.spec)[None], ["astronaut"]
        pred = clf.predict_proba(faces).argmax(1)
        names = [f"{n} -> {clf.labels[p]}" for n, p in zip(names, pred)]
        parts.append("<h3>What the network sees</h3>" + _img(plots.plot_filters(first_layer_filters(clf.model))))
        parts.append(f"<h4>Activation maps of {_e(names[0])}</h4>" +
                     _img(plots.plot_activations(faces[0], activation_maps(clf, faces[0]), layer_names(clf.model)), dpi=70))
        if n_faces:  # DeepDream is most of a run's section (seconds a face on a CPU): --faces 0 leaves it out
            layer = check_layer(clf, dream_settings.layer)
            log.info(f"  DeepDream on {len(faces)} face(s)")
            dreams = np.stack([deep_dream(clf, f, dream_settings) for f in faces])
            s = dream_settings
            parts.append(_img(plots.plot_dreams(faces, dreams, names, f"DeepDream from {layer_name(clf.model, layer)} ({s.objective} "
                                                f"objective, {s.octaves} octaves x{s.octave_scale}, {s.steps} steps of {s.step_size})")))

    try:
        search = find_search_csv(run.path)
        if search is not None:
            parts.append(f"<h3>Hyper-parameter search</h3><p class='path'>{_e(str(search))}</p>" + _search_html(search))
    except FerkitError as e:  # a damaged table costs its section, not the report
        if str(e) not in notes:  # (the trials of one search share it)
            notes.append(str(e))
    # what the comparison shows as the run's: best.pt's scores, never another file's (runs.of_best)
    return "<section>" + "\n".join(parts) + "</section>", fresh or run.metrics.get("val") or next(
        (m for split, m in run.metrics.items() if of_best(split)), None)


def _comparison(runs: list[Run], evaluated: dict) -> str:
    parts = ["<section><h2>Comparison</h2>", f"<pre>{_e(format_summary(runs))}</pre>", _img(plots.plot_histories(runs))]
    if evaluated:
        parts.append("<h3>Per-class accuracy (best checkpoints)</h3>" + _per_class_html(evaluated))
        parts.append(_img(plots.plot_per_class(evaluated)))
    return "\n".join(parts) + "</section>"


def _newer(path: Path, than: Path) -> bool:
    return path.exists() and than.exists() and path.stat().st_mtime >= than.stat().st_mtime


# ---------------------------------------------------------------- search table


def find_search_csv(run_dir: Path) -> Path | None:
    """`ferkit search`'s search.csv in the run folder, its parent or grandparent (search/trials/<n>/): one
    whose header starts as search.write_results writes it (another tool's search.csv was shown as the
    trials). Only the first line is read here: another tool's file may be large."""
    from .search import SEARCH_COLUMNS

    for d in (run_dir, run_dir.parent, run_dir.parent.parent):
        path = d / "search.csv"
        try:
            if path.is_file():
                with open(path, encoding="utf-8", errors="replace") as f:
                    if [c.strip() for c in f.readline(200).split(",")[:len(SEARCH_COLUMNS)]] == list(SEARCH_COLUMNS):
                        return path
        except OSError as e:
            raise FerkitError(f"{path}: cannot read it ({e.strerror or e}); its table of trials is left out of the report") from None
    return None


def read_ranked_csv(path: Path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a search.csv, ranked by `value` (best first, trials without a value last);
    a FerkitError when it cannot be read (a field over csv's limit, bytes that are not UTF-8)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows, cols = [{k: csv_value(v) if isinstance(v, str) else v for k, v in r.items()} for r in reader], list(reader.fieldnames or [])
    except (OSError, ValueError, csv.Error) as e:  # (a UnicodeDecodeError is a ValueError)
        raise FerkitError(f"{path}: not a readable search table ({first_line(e)}); its table of trials is left out of the "
                          "report") from None

    def key(r):
        try:
            return (0, -float(r.get("value", "")))
        except ValueError:
            return (1, 0.0)

    return cols, sorted(rows, key=key)


def _search_html(path: Path, limit: int = 100) -> str:
    cols, rows = read_ranked_csv(path)
    head = "".join(f"<th>{_e(c)}</th>" for c in ["rank"] + cols)
    body = []
    for i, r in enumerate(rows[:limit], 1):
        rank = i if r.get("value") not in ("", None) else ""
        body.append("<tr>" + f"<td>{rank}</td>" + "".join(f"<td>{_e(_short(r.get(c, '')))}</td>" for c in cols) + "</tr>")
    more = f"<p class='note'>{len(rows) - limit} more trials in the file.</p>" if len(rows) > limit else ""
    return f"<table class='num'><tr>{head}</tr>{''.join(body)}</table>{more}"


def _short(v: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return v if f.is_integer() and "." not in v else (f"{f:.4g}" if 1e-3 <= abs(f) < 1e4 else f"{f:.2e}")


# ---------------------------------------------------------------- HTML pieces


def _e(s) -> str:
    """Text for the page, HTML-escaped; a path's bytes that are not UTF-8 escaped too (the page is UTF-8)."""
    return html.escape(shown_name(str(s)))


def _id(s: str) -> str:
    return "run-" + "".join(c if c.isalnum() else "-" for c in s)


def _img(fig, dpi: int = 80) -> str:
    b64 = base64.b64encode(plots.to_png(fig, dpi)).decode()
    return f"<img src='data:image/png;base64,{b64}'>"


def _kv_table(d: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}</td></tr>" for k, v in d.items())
    return f"<table class='kv'>{rows}</table>" if d else ""


def _spec_text(spec: dict) -> str:
    lines = ["model spec"]
    for k, c in enumerate(spec.get("convs", []), 1):
        extra = ["BN" if c.get("batch_norm") else "", f"dropout {c['dropout']}" if c.get("dropout") else "",
                 f"pool {c['pool']}" if c.get("pool") else "", f"stride {c['stride']}" if c.get("stride", 1) != 1 else ""]
        lines.append(f"conv{k}: {c['filters']} filters {c['kernel']}x{c['kernel']} " + ", ".join(x for x in extra if x))
    for k, f in enumerate(spec.get("fcs", []), 1):
        extra = ["BN" if f.get("batch_norm") else "", f"dropout {f['dropout']}" if f.get("dropout") else ""]
        lines.append(f"fc{k}: {f['units']} units " + ", ".join(x for x in extra if x))
    if spec.get("hog"):
        lines.append(f"HOG: {spec['hog']}")
    return "\n".join(lines)


def _per_class_html(metrics: dict[str, dict]) -> str:
    """Table 3: one row per emotion (+ overall), one column per model or split; the best of each row in bold."""
    names = list(metrics)
    head = "<tr><th>emotion</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
    rows = []
    for row in per_class_rows(metrics):
        vals = [v for v in row[1:] if v is not None]
        best = max(vals) if len(vals) > 1 else None
        cells = "".join("<td>-</td>" if v is None else (f"<td><b>{v:.4f}</b></td>" if v == best else f"<td>{v:.4f}</td>")
                        for v in row[1:])
        rows.append(f"<tr><th>{_e(row[0])}</th>{cells}</tr>")
    return f"<table class='num per-class'>{head}{''.join(rows)}</table>"


CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em} img{max-width:100%;display:block;margin:.5em 0}
table{border-collapse:collapse;margin:.5em 1em .5em 0;font-size:.9em} td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}
table.num td{text-align:right;font-variant-numeric:tabular-nums} .cols{display:flex;flex-wrap:wrap;align-items:flex-start}
pre{background:#f6f6f6;padding:.5em;font-size:.85em} .path{color:#777;font-size:.85em} .note{background:#fff6d6;padding:.4em .6em}
"""


def _page(runs: list[Run], notes: list[str], sections: list[str]) -> str:
    from . import __version__

    title = "ferkit report: " + ", ".join(r.name for r in runs)
    toc = " | ".join(f"<a href='#{_id(r.name)}'>{_e(r.name)}</a>" for r in runs)
    note_html = "".join(f"<p class='note'>{_e(n)}</p>" for n in notes)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body><h1>{_e(title)}</h1><p class='path'>ferkit {_e(__version__)}, {time.strftime('%Y-%m-%d %H:%M')}</p>"
            f"<p>{toc}</p>{note_html}\n" + "\n".join(sections) + "</body></html>\n")
