import numpy as np

from ferkit.labels import FER2013
from ferkit.metrics import confusion_matrix, format_report, per_class_accuracy, summarize


def test_summarize_counts_and_per_class():
    y = np.array([0, 0, 1, 3, 3, 3])
    probs = np.eye(7)[[0, 3, 1, 3, 3, 0]]
    m = summarize(y, probs, FER2013)
    assert m["accuracy"] == 4 / 6
    assert m["per_class_accuracy"]["angry"] == 0.5 and m["per_class_accuracy"]["happy"] == 2 / 3
    assert m["per_class_accuracy"]["fear"] is None  # no samples
    assert m["confusion_matrix"][0][3] == 1 and np.array(m["confusion_matrix"]).sum() == 6
    text = format_report(m)
    assert "accuracy 0.6667 on 6 images" in text and "confusion matrix" in text


def test_per_class_accuracy_is_recall():
    cm = confusion_matrix([0, 1, 1], [0, 1, 0], 2)
    assert per_class_accuracy(cm)[1] == 0.5
