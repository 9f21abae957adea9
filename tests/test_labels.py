"""Label sets: their training targets and evaluation labels (hand-computed on a tiny vote array), lookup
by name and by a model's emotions, num_classes from the label set, and old checkpoints."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_spec, write_fer_csv
from ferkit.checkpoint import load_checkpoint
from ferkit.config import ModelSpec, TrainConfig
from ferkit.data import load_fer
from ferkit.errors import ConfigError, DataError, FerkitError
from ferkit.labels import FER2013, FERPLUS, LABEL_MODES, for_emotions, label_set
from ferkit.metrics import evaluate_split
from ferkit.model import create_model
from ferkit.train import fit, model_spec, resolve_config

# angry, disgust, fear, happy, sad, surprise, neutral, contempt, unknown, NF
VOTES = np.array([[6, 0, 0, 0, 4, 0, 0, 0, 0, 0],   # 6/10 angry: a majority; 6 and 4 reach 75%
                  [4, 0, 0, 0, 4, 0, 2, 0, 0, 0],   # an angry/sad tie: no majority; the tie reaches 75%, neutral's 2 stays out
                  [0, 0, 0, 0, 0, 0, 1, 0, 0, 9],   # not a face: dropped everywhere, scored nowhere
                  [3, 1, 1, 1, 1, 1, 1, 1, 0, 0],   # single votes are outliers: 3 of 3 angry
                  [0, 0, 0, 0, 0, 0, 2, 8, 0, 0]], np.float32)  # contempt, FER+'s 8th emotion
ANGRY, SAD, CONTEMPT = 0, 4, 7


def onehots(*idx, n=8):
    return np.eye(n, dtype=np.float32)[list(idx)].sum(0)


def test_ferplus_targets_for_each_label_mode():
    ferplus = label_set("ferplus")
    y, soft, keep = ferplus.targets(VOTES, "majority", "rows")
    assert keep.tolist() == [True, False, False, True, True] and y[keep].tolist() == [ANGRY, ANGRY, CONTEMPT]
    assert soft is None  # one-hot on the majority: plain labels
    for mode in ("probability", "crossentropy"):
        y, soft, keep = ferplus.targets(VOTES, mode, "rows")
        assert keep.tolist() == [True, True, False, True, True] and y[keep].tolist() == [ANGRY, ANGRY, ANGRY, CONTEMPT]
        np.testing.assert_allclose(soft[keep], [0.6 * onehots(ANGRY) + 0.4 * onehots(SAD), 0.5 * onehots(ANGRY, SAD),
                                                onehots(ANGRY), onehots(CONTEMPT)], atol=1e-6)
    y, soft, keep = ferplus.targets(VOTES, "multi_target", "rows")  # every emotion with 30% of the votes
    assert keep.tolist() == [True, True, False, True, True]
    np.testing.assert_array_equal(soft[keep], [onehots(ANGRY, SAD), onehots(ANGRY, SAD), onehots(ANGRY), onehots(CONTEMPT)])


def test_ferplus_scores_on_the_majority_emotion_and_the_top_vote_sets():
    y, top = label_set("ferplus").eval_labels(VOTES, "rows")
    assert y.tolist() == [ANGRY, -1, -1, ANGRY, CONTEMPT]  # -1: no majority emotion, left out of the accuracy
    np.testing.assert_array_equal(top, [onehots(ANGRY), onehots(ANGRY, SAD), onehots(), onehots(ANGRY), onehots(CONTEMPT)])


def test_fer2013_trains_and_scores_on_the_files_labels_in_every_mode():
    fer = label_set("fer2013")
    rows = np.array([0, 3, 6])
    for mode in LABEL_MODES:
        y, soft, keep = fer.targets(rows, mode, "rows")
        assert y.tolist() == [0, 3, 6] and soft is None and keep.all()
    y, top = fer.eval_labels(rows, "rows")
    assert y.tolist() == [0, 3, 6] and top is None
    with pytest.raises(DataError, match="x.csv: the training rows have no 'emotion' labels; train on a labelled file"):
        fer.targets(np.array([-1, -1]), "majority", "x.csv: the training rows")
    with pytest.raises(DataError, match="the val rows have no 'emotion' labels, so accuracy cannot be measured"):
        fer.eval_labels(np.array([-1, -1]), "x.csv: the val rows")


def test_rows_without_a_label_among_labelled_ones_are_counted(caplog):
    # an image list's row with an empty label: 'the test rows have no 'emotion' labels' where 22 of 23 had one
    fer = label_set("fer2013")
    with caplog.at_level(logging.WARNING, logger="ferkit.labels"):
        y, top = fer.eval_labels(np.array([2, -1, 4]), "x.csv: the test rows")
    assert y.tolist() == [2, -1, 4] and top is None  # -1: left out of the accuracy (metrics.summarize), as FER+'s no-majority faces
    assert "x.csv: the test rows: 1 of 3 have no label; they are left out of the accuracy" in caplog.text
    with pytest.raises(DataError, match="x.csv: the training rows: 1 of 2 have no label; give each a label or leave those rows out"):
        fer.targets(np.array([-1, 2]), "majority", "x.csv: the training rows")


def test_label_sets_by_name_and_by_emotions():
    assert label_set("ferplus").emotions == FERPLUS and label_set("ferplus").num_classes == 8
    assert label_set("fer2013").num_classes == 7 and for_emotions(list(FERPLUS)).name == "ferplus"
    with pytest.raises(ConfigError, match=r"^labels must be one of fer2013, ferplus, rafdb, affectnet, data; got 'sfew'$"):
        label_set("sfew")
    with pytest.raises(ConfigError, match=r"--labels must be one of fer2013, ferplus, rafdb, affectnet, data; got 'sfew'"):
        TrainConfig(labels="sfew")
    assert for_emotions(["calm", "excited"]).emotions == ("calm", "excited")  # a data-declared set
    with pytest.raises(ConfigError, match=r"a label set needs 2 to 1,000 classes; got 1"):
        for_emotions(["calm"])
    assert for_emotions(["calm", "x" * 255]).emotions[1] == "x" * 255  # (a folder name's limit)
    with pytest.raises(ConfigError, match=r"the class name 'x{40}\.\.\. \(1,000,000 characters\)' is too long; at most 255"):
        for_emotions(["calm", "x" * 1_000_000])  # (a metrics file's 1 MB name hung plot and report)


def test_class_names_a_terminal_would_act_on_are_refused_wherever_they_come_from(tmp_path):
    """Names are printed as they are (predict, evaluate's table): an escape code ("\x1b[2J" clears the terminal),
    a line break or a bidi override in --label-names, labels.txt or a data-declared set rewrote what it showed."""
    from ferkit.data import read_names

    # spaces (a no-break one too), accents, CJK and emoji joined by a zero-width joiner are shown as they are
    ok = ("calm face", "überrascht", "驚き", "tristesse à l'école", "très\u00a0triste", "\U0001f469\u200d\U0001f4bb")
    assert for_emotions(ok).emotions == ok and read_names(",".join(ok)) == ok
    for odd, shown in [("angry\x1b[0m", r"angry\\x1b\[0m"), ("a\nb", r"a\\nb"), ("\u202ehappy", r"\\u202ehappy")]:
        message = rf"the class name '{shown}' holds a control character .*; rename it"
        with pytest.raises(ConfigError, match=message) as e:
            for_emotions(["calm", odd])
        assert "\x1b" not in str(e.value) and "\u202e" not in str(e.value)  # (the message itself shows it escaped)
        with pytest.raises(DataError, match="--label-names: " + message):
            read_names(f"calm,{odd}")
    (tmp_path / "labels.txt").write_text("calm\n\u202ehappy\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels.txt: the class name '\\u202ehappy' holds a control character"):
        read_names(str(tmp_path / "labels.txt"), "labels.txt")


def test_num_classes_comes_from_the_label_set_and_a_mismatch_is_reported(tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    assert tiny_spec().num_classes is None  # a spec need not say: the label set does
    assert model_spec(resolve_config(str(spec), labels="ferplus")).num_classes == 8
    assert model_spec(resolve_config(str(spec))).num_classes == 7
    assert model_spec(resolve_config(str(spec), labels="ferplus", overrides={"num_classes": 8})).num_classes == 8
    cfg = resolve_config(str(spec), labels="ferplus", overrides={"num_classes": 7}, data=str(tmp_path / "none.csv"))
    message = r"num_classes must be 8 \(the emotions of label set ferplus\) or left out; got 7"
    with pytest.raises(ConfigError, match=message):
        model_spec(cfg)
    with pytest.raises(ConfigError, match=message):  # training refuses it before reading any data
        fit(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=message):
        create_model(ModelSpec.from_dict({**tiny_spec().to_dict(), "num_classes": 7}), label_set("ferplus"))
    assert create_model(tiny_spec(), label_set("ferplus")).classifier.out_features == 8


class FixedModel:
    """A stand-in Classifier that predicts, for each face of a split, the emotion given for it."""

    tta = False  # (as a Classifier trained without the mirror)

    def __init__(self, labels, predictions):
        self.labels, self.predictions = tuple(labels), np.asarray(predictions)

    def predict_proba(self, images, tta=None):
        assert len(images) == len(self.predictions)
        return np.eye(len(self.labels), dtype=np.float32)[self.predictions]


def test_a_ferplus_model_is_scored_on_the_vote_majority_a_fer2013_model_on_the_file(tmp_path):
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=7)
    data = load_fer(fer)
    own = data.split("val")[1]  # the file's labels 0..6
    # PublicTest votes: faces 0-2 agree with the file, 3-4 have a majority on the next emotion, 5 a
    # tie of its own emotion (surprise) with angry (no majority), 6 is not a face.
    val = np.zeros((7, 10), int)
    for j, c in enumerate(own):
        val[j, c if j < 3 else (c + 1) % 7] = 10
    val[5] = [5, 0, 0, 0, 0, 5, 0, 0, 0, 0]
    val[6] = [0] * 9 + [10]
    train = np.zeros((7, 10), int)
    train[np.arange(7), own] = 10
    columns = [4, 5, 6, 1, 3, 2, 0, 7, 8, 9]  # the file's column of each of ferkit's FER+ emotions (and unknown, NF)
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for usage, votes in (("Training", train), ("PublicTest", val)):
        for v in votes:
            row = [0] * 10
            for k, c in enumerate(columns):
                row[c] = v[k]
            lines.append(f"{usage},x.png," + ",".join(map(str, row)))
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines) + "\n")

    predicts_file_labels = own  # right on the file's labels of every face
    m = evaluate_split(FixedModel(FERPLUS, predicts_file_labels), data, "val")
    majority_right = [True, True, True, False, False]  # faces 0-4 have a majority; 3-4 is not the file's label
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(np.mean(majority_right))
    assert m["top_vote_n"] == 6  # the tie counts here: its prediction (surprise, the file's) is among its top votes
    assert m["top_vote_accuracy"] == pytest.approx(4 / 6) and m["labels"] == list(FERPLUS)
    m = evaluate_split(FixedModel(FER2013, predicts_file_labels), data, "val")
    assert m["n"] == 7 and m["accuracy"] == 1.0 and "top_vote_accuracy" not in m
    nf = lines[:1 + 7] + [f"PublicTest,x.png,{'0,' * 9}10"] * 7  # every PublicTest face "not a face"
    (tmp_path / "fer2013new.csv").write_text("\n".join(nf) + "\n")
    with pytest.raises(FerkitError, match=r"fer2013.csv: none of the 7 val faces has a label to score against for the FER\+ emotions"):
        evaluate_split(FixedModel(FERPLUS, predicts_file_labels), data, "val")  # was sklearn's "Found empty input array"
    with pytest.raises(DataError, match=r"fer2013.csv: its class\(es\) angry, disgust, fear, happy, sad, surprise, neutral are "
                                        r"not emotions of a data-declared label set \(calm, excited\); fer2013, rafdb, affectnet have them all "
                                        r"\(--labels fer2013\); rename or leave out those classes"):
        evaluate_split(FixedModel(["calm", "excited"], [0] * 7), data, "val")


def test_checkpoints_keep_loading_old_and_new(tiny_checkpoint, tmp_path):
    for bundled in sorted((Path(__file__).parents[1] / "src/ferkit/weights").glob("*.pt")):
        clf = load_checkpoint(bundled)  # written before num_classes came from the label set
        assert for_emotions(clf.labels).num_classes == clf.spec.num_classes == clf.model.classifier.out_features
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    old = {k: v for k, v in ckpt.items() if k != "labels"}  # written before label sets: a FER2013 model
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").labels == FER2013
    torch.save({**ckpt, "labels": list(FERPLUS)}, tmp_path / "disagree.pt")
    with pytest.raises(FerkitError, match="its model spec's num_classes is 7 but 'labels' names 8 emotions"):
        load_checkpoint(tmp_path / "disagree.pt")
