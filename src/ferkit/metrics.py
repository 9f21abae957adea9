"""Accuracy, per-class accuracy and the confusion matrix, and the per-class table across models
(numbers and text only; plots.py draws them).

Every function takes the model's emotion names (`labels`), so models of every label set (FER2013's
7 emotions, FER+'s 8) are measured the same way; `evaluate_split` asks the model's label set what
its faces are scored against.
"""

from __future__ import annotations

import math
import os

import numpy as np
from sklearn.metrics import confusion_matrix as _confusion_matrix

from .config import problem
from .errors import FerkitError
from .labels import for_emotions, labels_of
from .runs import is_fraction, is_number, is_whole

SUMMARY = "the dict of metrics.summarize (or evaluate_split, or a run's metrics-<split>.json)"  # what a metrics argument is


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true emotions, columns predicted."""
    # (lengths that differ were scikit-learn's "inconsistent numbers of samples", n_classes 0 its "'labels' should
    # contain at least one label"; a class past n_classes is summarize's to refuse: it knows the names)
    if not (is_whole(n_classes) and n_classes >= 1):
        raise FerkitError(problem("n_classes", "the number of classes, an integer >= 1", n_classes))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.shape != y_true.shape:
        raise FerkitError(f"y_true and y_pred must be one class number per face each, two 1-d arrays of one length; "
                          f"got arrays of shape {y_true.shape} and {y_pred.shape}")
    if not len(y_true):  # (no face scored: scikit-learn's "Found empty input array")
        return np.zeros((n_classes, n_classes), np.int64)
    return _confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (paper Table 3); NaN for a class with no samples."""
    cm = square_matrix(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)


def square_matrix(cm, labels=None, name: str = "cm") -> np.ndarray:
    """cm as a (C, C) array of numbers (C >= 1; a list of rows too), or one FerkitError naming it; labels, unless
    None, must be C names. For per_class_accuracy and plots.plot_confusion: an empty or 1-d matrix was numpy's or
    matplotlib's traceback, and a matrix that is not square, or an 8x8 FER+ one with FER2013's 7 names, was
    drawn without a word."""
    try:
        a = np.asarray(cm)
    except ValueError:  # rows of different lengths
        a = np.asarray(cm, object)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not a.size or a.dtype.kind not in "iuf":
        raise FerkitError(f"{name} must be a square (C, C) matrix of counts (rows true, columns predicted), C >= 1; "
                          f"got an array of shape {a.shape} and dtype {a.dtype}")
    if labels is not None:
        check_name_count("labels", labels, len(a), f"row of the {len(a)}x{len(a)} {name}")
    return a


def check_name_count(name: str, names, n: int, of: str) -> None:
    """One FerkitError unless names is n names (a list or tuple; a string is its letters), one per `of`."""
    if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != n:
        count = f" ({len(names)} names)" if hasattr(names, "__len__") and not isinstance(names, str) else ""
        raise FerkitError(problem(name, f"{n} names in a list, one per {of}", names) + count)


def summarize(y_true, probs, labels, top_sets: np.ndarray | None = None) -> dict:
    """Everything `ferkit evaluate` reports, as JSON-ready data.

    y_true (N,): the true label of each face, -1 for a face without one (left out of the accuracy;
    FER+: no majority emotion). top_sets (N, C) bool, for FER+: the emotions that share the most
    votes of each face; adds how often the prediction is among them (faces with none left out)."""
    labels, y_true, probs, top_sets = _checked(y_true, probs, labels, top_sets)
    y_pred = probs.argmax(1)
    scored = y_true >= 0
    yt, yp = y_true[scored], y_pred[scored]
    cm = confusion_matrix(yt, yp, len(labels))
    pca = per_class_accuracy(cm)
    m = {
        "n": int(len(yt)),
        "accuracy": float((yt == yp).mean()) if len(yt) else float("nan"),
        "per_class_accuracy": {e: (None if np.isnan(a) else float(a)) for e, a in zip(labels, pca)},
        "support": {e: int(n) for e, n in zip(labels, cm.sum(axis=1))},
        "confusion_matrix": cm.tolist(),
        "labels": labels,
    }
    if top_sets is not None:
        has = top_sets.any(1)
        m["top_vote_accuracy"] = float(top_sets[has, y_pred[has]].mean()) if has.any() else float("nan")
        m["top_vote_n"] = int(has.sum())
    return m


def _checked(y_true, probs, labels, top_sets) -> tuple[list, np.ndarray, np.ndarray, np.ndarray | None]:
    """summarize's arguments as arrays, or one FerkitError naming the one that does not fit the others.
    Without it, lengths that differ were numpy's "cannot reshape array of size 14 into shape (3,newaxis)",
    and other mistakes gave a report without a word: labels="fer2013" scored the letters f, e, r, ...,
    probabilities over 5 emotions were scored against 7 names, and a class number past the names counted
    in the accuracy but in no row of the confusion matrix."""
    if isinstance(labels, str) or not hasattr(labels, "__len__"):
        raise FerkitError(problem("labels", "the model's emotion names in order (a list such as ferkit.EMOTIONS, "
                                  "or Predictor.labels)", labels))
    labels, y, p = list(labels), np.asarray(y_true), np.asarray(probs)
    if y.ndim != 1 or not (y.dtype.kind in "iu" or y.dtype.kind == "f" and np.array_equal(y, np.round(y))):
        fraction = y.dtype.kind == "f" and y.ndim == 1  # (NaN is no whole number either)
        raise FerkitError(f"y_true must be one class number per face (a 1-d array of integers, -1 for a face "
                          f"without a label); got an array of shape {y.shape} and dtype {y.dtype}"
                          + (", not all of them whole numbers" if fraction else ""))
    y = y.astype(np.int64)
    if y.size and not (-1 <= y.min() and y.max() < len(labels)):
        raise FerkitError(f"y_true must hold class numbers 0..{len(labels) - 1} of the {len(labels)} labels, or -1 "
                          f"for a face without one; got values from {y.min()} to {y.max()}")
    if not len(y) and not p.size:  # no faces ([] is numpy's (0,))
        p = np.zeros((0, len(labels)))
    if p.shape != (len(y), len(labels)) or p.dtype.kind not in "iuf":
        raise FerkitError(f"probs must be one row of probabilities per face, (len(y_true), len(labels)) = "
                          f"({len(y)}, {len(labels)}); got an array of shape {p.shape} and dtype {p.dtype}")
    if top_sets is not None:
        top_sets = np.asarray(top_sets)
        if top_sets.shape != p.shape or top_sets.dtype != bool:
            raise FerkitError(f"top_sets must be None or bool of the shape of probs, {p.shape}; got an array of "
                              f"shape {top_sets.shape} and dtype {top_sets.dtype}")
    return labels, y, p, top_sets


def format_report(m: dict) -> str:
    """The per-class table and the confusion matrix as text."""
    missing = [k for k in ("accuracy", "n", "per_class_accuracy", "support", "confusion_matrix")
               if not isinstance(m, dict) or k not in m]
    if missing:  # (was a KeyError naming one of them)
        got = f"a {type(m).__name__}" if not isinstance(m, dict) else f"a dict without {', '.join(missing)}"
        raise FerkitError(f"m must be {SUMMARY}; got {got}")
    labels = labels_of(m)
    lines = [f"accuracy {m['accuracy']:.4f} on {m['n']} images" + (", each averaged with its mirror image (tta)" if m.get("tta") else "")]
    if "top_vote_accuracy" in m:
        lines.append(f"prediction among the most-voted emotions: {m['top_vote_accuracy']:.4f} on {m['top_vote_n']} images")
    lines += ["", f"{'emotion':<10}{'accuracy':>10}{'support':>9}"]
    for e in labels:
        a = m["per_class_accuracy"][e]
        lines.append(f"{e:<10}{'-' if a is None else f'{a:.4f}':>10}{m['support'][e]:>9}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{e[:8]:>9}" for e in labels)]
    for e, row in zip(labels, m["confusion_matrix"]):
        lines.append(f"{e:<10}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)


def evaluate_split(clf, data, split: str, labels_file=None, tta: bool | None = None, fix: str | None = None) -> dict:
    """summarize() for a Classifier on one split of FerData, scored on what the model's label set
    says (labels.py): a FER2013 model on the file's labels; a FER+ model on each face's FER+ majority
    emotion, read from the vote file (labels_file, default fer2013new.csv beside the data), plus
    the most-voted-emotions measure. fix: what to do about data classes the model lacks (labels.class_ids)."""
    images, _ = data.split(split)
    y, top = split_labels(clf.labels, data, split, labels_file, fix)
    if len(y) and not (y >= 0).any():  # (FER+: every face's votes NF, unknown or tied)
        raise FerkitError(f"{data.source}: none of the {len(y)} {split} faces has a label to score against for the "
                          f"{for_emotions(clf.labels).title} emotions; check the data (and its vote file)")
    m = summarize(y, clf.predict_proba(images, tta=tta), for_emotions(clf.labels).emotions, top)
    # absolute: report and evaluate compare it with the data they read, from whatever folder they run in (a path
    # relative to evaluate's folder named other data there: one file's score shown twice, once as other data's)
    m.update(data=os.path.abspath(data.source), split=split)
    m["tta"] = bool(clf.tta if tta is None else tta)  # a score with the mirror is not one without: said, not silent
    return m


def split_labels(emotions, data, split: str, labels_file=None, fix: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """What the faces of one split are scored against for a model predicting `emotions` (its label
    set's eval_labels): labels (N,), -1 = left out, and the top-vote sets or None."""
    labels = for_emotions(emotions)
    rows = labels.annotations(data, labels_file, fix)[data.in_split(split)]
    return labels.eval_labels(rows, f"{data.source}: {'its' if split == 'all' else f'the {split}'} rows")


def emotions_of(metrics: dict[str, dict]) -> list[str]:
    """Every emotion the models in `metrics` predict, in order (FER2013's 7, then e.g. FER+'s contempt)."""
    out = []
    for m in metrics.values():
        out += [e for e in labels_of(m) if e not in out]
    return out


def check_per_class(metrics) -> None:
    """One FerkitError naming what of the per-class table's metrics (model name -> its metrics) does not fit, for
    per_class_rows, format_per_class and plots.plot_per_class: a list, or one model's metrics not wrapped in a
    dict, was an AttributeError, metrics without per_class_accuracy a KeyError, a score over 1 a bar past the
    chart's top, {} an empty table or chart."""
    what = "model name -> its metrics (metrics.summarize's dict)"
    if isinstance(metrics, dict) and "per_class_accuracy" in metrics:
        raise FerkitError(f"metrics must be a dict of {what}; got one model's metrics: give {{'its name': metrics}}")
    if not isinstance(metrics, dict) or not metrics:
        raise FerkitError(problem("metrics", f"a dict of {what}, at least one", metrics))
    for name, m in metrics.items():
        where = f"metrics[{name!r}]"
        if not isinstance(m, dict):
            raise FerkitError(problem(where, SUMMARY, m))
        names, acc, pca = m.get("labels"), m.get("accuracy"), m.get("per_class_accuracy")
        if names is not None and not (isinstance(names, (list, tuple)) and names and all(isinstance(e, str) for e in names)):
            raise FerkitError(problem(f"{where}['labels']", "a list of emotion names (or left out: FER2013's)", names))
        if not (is_fraction(acc) or is_number(acc) and math.isnan(acc)):
            raise FerkitError(problem(f"{where}['accuracy']", "a number from 0 to 1 (NaN: no face scored)", acc))
        if not (isinstance(pca, dict) and all(a is None or is_fraction(a) for a in pca.values())):
            raise FerkitError(problem(f"{where}['per_class_accuracy']", "a dict of emotion -> a number from 0 to 1 "
                                      "(None: no face of it)", pca))


def per_class_rows(metrics: dict[str, dict]) -> list[list]:
    """Table 3 as rows: [emotion, accuracy of each model...] then ["overall", ...]; None where undefined."""
    check_per_class(metrics)
    rows = [[e] + [m["per_class_accuracy"].get(e) for m in metrics.values()] for e in emotions_of(metrics)]
    return rows + [["overall"] + [m["accuracy"] for m in metrics.values()]]


def format_per_class(metrics: dict[str, dict]) -> str:
    """The per-class table as text, one column per model."""
    rows = per_class_rows(metrics)  # (its check before the names' widths: a list's items have none)
    names = list(metrics)
    w = max([10] + [len(str(n)) + 2 for n in names])
    lines = [f"{'emotion':<10}" + "".join(f"{n:>{w}}" for n in names)]
    for row in rows:
        lines.append(f"{row[0]:<10}" + "".join(f"{'-' if v is None else f'{v:.4f}':>{w}}" for v in row[1:]))
    return "\n".join(lines)
