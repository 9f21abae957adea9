import numpy as np
import pytest

from ferkit.errors import FerkitError
from ferkit.labels import FER2013
from ferkit.metrics import confusion_matrix, format_per_class, format_report, per_class_accuracy, per_class_rows, summarize


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


def test_summarize_refuses_arguments_that_do_not_fit_each_other():
    # lengths that differ were numpy's "cannot reshape array of size 14 into shape (3,newaxis)"; the rest gave a report
    # without a word (labels="fer2013" scored the letters f, e, r, ...; a class 9 of 7 counted in no confusion row)
    y, probs = np.array([0, 1, 3]), np.eye(7)[[0, 1, 3]]
    for args, why in [((y, probs[:2], FER2013), r"^probs must be .* = \(3, 7\); got an array of shape \(2, 7\)"),
                      ((y, probs[:, :5], FER2013), r"got an array of shape \(3, 5\)"),
                      ((y, probs.ravel(), FER2013), r"got an array of shape \(21,\)"),
                      ((y, probs, "fer2013"), r"^labels must be the model's emotion names in order .*; got 'fer2013'$"),
                      (([0, 1, 9], probs, FER2013), r"^y_true must hold class numbers 0\.\.6 .*; got values from 0 to 9$"),
                      (([0.5, 1, 3], probs, FER2013), r"^y_true must be one class number per face .*not all of them whole"),
                      ((["angry", "sad", "happy"], probs, FER2013), r"^y_true must be .*dtype <U5$")]:
        with pytest.raises(FerkitError, match=why):
            summarize(*args)
    with pytest.raises(FerkitError, match=r"^top_sets must be None or bool of the shape of probs, \(3, 7\)"):
        summarize(y, probs, FER2013, np.ones((2, 7), bool))
    assert summarize([0.0, 1.0, 3.0], probs, FER2013)["accuracy"] == 1.0  # whole numbers as floats (np.loadtxt's)
    for no_faces in (summarize([], [], FER2013), summarize([-1, -1], np.eye(7)[:2], FER2013)):  # were scikit-learn's errors
        assert no_faces["n"] == 0 and np.isnan(no_faces["accuracy"]) and no_faces["support"]["angry"] == 0


def test_helpers_refuse_what_they_cannot_measure():
    # were scikit-learn's ValueErrors, numpy's AttributeError/IndexError and format_report's KeyError
    for call, why in [(lambda: confusion_matrix([0, 1], [0], 7), r"^y_true and y_pred must be .*; got arrays of shape \(2,\) and \(1,\)$"),
                      (lambda: confusion_matrix([0], [0], 0), r"^n_classes must be the number of classes, an integer >= 1; got 0$"),
                      (lambda: per_class_accuracy(np.zeros((0, 0))), r"^cm must be a square \(C, C\) matrix .*; got an array of shape \(0, 0\)"),
                      (lambda: per_class_accuracy(np.ones((2, 3))), r"got an array of shape \(2, 3\) and dtype float64$"),
                      (lambda: format_report({}), r"^m must be the dict of metrics\.summarize .*; got a dict without accuracy, n, ")]:
        with pytest.raises(FerkitError, match=why):
            call()
    assert per_class_accuracy([[1, 1], [0, 2]]).tolist() == [0.5, 1.0]  # a list of rows, as a metrics JSON holds it


def test_per_class_table_refuses_what_is_no_model_s_metrics():
    # (as plots.plot_per_class: a list of metrics was an AttributeError, one model's metrics not wrapped in a dict
    # or metrics without per_class_accuracy a KeyError, {} a table of "overall" alone)
    m = summarize([0, 1, 3], np.eye(7)[[0, 1, 0]], FER2013)
    for table in (per_class_rows, format_per_class):
        for metrics, why in [([m], r"^metrics must be a dict of model name -> its metrics \(metrics\.summarize's dict\), "
                                   r"at least one; got \[\{"),
                             ({}, r"^metrics must be .*; got \{\}$"),
                             (m, r"^metrics must be a dict of model name -> .*; got one model's metrics: give \{'its name': "
                                 r"metrics\}$"),
                             ({"a": {"accuracy": 0.5}}, r"^metrics\['a'\]\['per_class_accuracy'\] must be a dict of emotion "
                                                        r"-> a number from 0 to 1 \(None: no face of it\); got None$"),
                             ({"a": {**m, "labels": "angry"}}, r"^metrics\['a'\]\['labels'\] must be a list of emotion names")]:
            with pytest.raises(FerkitError, match=why):
                table(metrics)
    assert per_class_rows({"a": m})[-1] == ["overall", 2 / 3] and "0.6667" in format_per_class({7: m})
