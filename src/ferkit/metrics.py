"""Accuracy, per-class accuracy and the confusion matrix (numbers only; plots.py draws them)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as _confusion_matrix

from .labels import EMOTIONS, NUM_CLASSES


def confusion_matrix(y_true, y_pred) -> np.ndarray:
    """(7, 7) counts: rows are true emotions, columns predicted."""
    return _confusion_matrix(y_true, y_pred, labels=list(range(NUM_CLASSES)))


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (paper Table 3); NaN for a class with no samples."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)


def summarize(y_true, probs) -> dict:
    """Everything `ferkit evaluate` reports, as JSON-ready data."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probs).argmax(1)
    cm = confusion_matrix(y_true, y_pred)
    pca = per_class_accuracy(cm)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "per_class_accuracy": {e: (None if np.isnan(a) else float(a)) for e, a in zip(EMOTIONS, pca)},
        "support": {e: int(n) for e, n in zip(EMOTIONS, cm.sum(axis=1))},
        "confusion_matrix": cm.tolist(),
        "labels": list(EMOTIONS),
    }


def format_report(m: dict) -> str:
    """The per-class table and the confusion matrix as text."""
    lines = [f"accuracy {m['accuracy']:.4f} on {m['n']} images", "", f"{'emotion':<10}{'accuracy':>10}{'support':>9}"]
    for e in EMOTIONS:
        a = m["per_class_accuracy"][e]
        lines.append(f"{e:<10}{'-' if a is None else f'{a:.4f}':>10}{m['support'][e]:>9}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{e[:7]:>9}" for e in EMOTIONS)]
    for e, row in zip(EMOTIONS, m["confusion_matrix"]):
        lines.append(f"{e:<10}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)
