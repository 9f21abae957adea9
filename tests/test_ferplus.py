"""FER+ votes: reading and checking the file, the four label modes, training and evaluation with 8 emotions."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_spec, write_fer_csv
from ferkit import ferplus
from ferkit.checkpoint import load_checkpoint
from ferkit.data import load_fer
from ferkit.errors import DataError
from ferkit.labels import FERPLUS
from ferkit.metrics import evaluate_split
from ferkit.train import fit, resolve_config

# The file's vote columns, and where each of ferkit's FER2013 ids (angry ... neutral) votes.
HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
COLUMN_OF_FER2013 = [4, 5, 6, 1, 3, 2, 0]


def write_votes(path, fer_csv, mix=True):
    """A FER+ vote file row-aligned with a FER2013 CSV from write_fer_csv: 8 votes for the face's own emotion and
    2 for the next one; every 10th face is 'not a face' (dropped in training), every 7th has a 5/5 tie."""
    lines = [HEADER]
    for i, row in enumerate(fer_csv.read_text().splitlines()[1:]):
        label, _, usage = row.split(",")
        votes = [0] * 10
        c = COLUMN_OF_FER2013[int(label)]
        votes[c] += 8
        votes[COLUMN_OF_FER2013[(int(label) + 1) % 7]] += 2
        if mix and i % 10 == 3:
            votes = [0] * 9 + [10]
        elif mix and i % 7 == 5:
            votes = [0] * 10
            votes[c], votes[7] = 5, 5
        lines.append(f"{usage},fer{i:07d}.png," + ",".join(map(str, votes)))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_votes_are_read_in_ferkit_order_and_checked_row_by_row(tmp_path):
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    write_votes(tmp_path / "fer2013new.csv", fer, mix=False)
    data = load_fer(fer)
    votes = ferplus.read_votes(ferplus.find_votes(fer), data.splits)
    assert votes.shape == (28, 10)
    assert (votes[:, :7].argmax(1) == data.labels).all()  # the file's columns reordered to FER2013's ids
    bad = (tmp_path / "fer2013new.csv").read_text().replace("\nTraining,fer0000003", "\nPublicTest,fer0000003")
    (tmp_path / "swapped.csv").write_text(bad)
    with pytest.raises(DataError, match=r"line 5: Usage is PublicTest but row 4 of the FER2013 data is Training; "):
        ferplus.read_votes(tmp_path / "swapped.csv", data.splits)
    (tmp_path / "short.csv").write_text("\n".join(bad.splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="has 27 rows but the FER2013 data has 28"):
        ferplus.read_votes(tmp_path / "short.csv", data.splits)
    with pytest.raises(DataError, match="--labels-file"):
        ferplus.find_votes(tmp_path / "elsewhere" / "fer2013.csv")
    # an empty file or /dev/null is empty, not missing ("no FER+ vote file" sent one looking for a file that was there)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"^.*empty.csv: the file is empty; give FER\+'s vote file \(fer2013new.csv from https"):
        ferplus.read_votes(ferplus.find_votes(fer, tmp_path / "empty.csv"), data.splits)
    with pytest.raises(DataError, match=r"^/dev/null: empty \(the null device, not a file\); give FER\+'s vote file with --labels-file PATH"):
        ferplus.find_votes(fer, os.devnull)
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"folder: a folder; give FER\+'s vote file"):
        ferplus.find_votes(fer, tmp_path / "folder")
    lines = (tmp_path / "fer2013new.csv").read_text().splitlines()
    # nan made a nan loss blamed on --lr; inf dropped the face unsaid; shares (0.8) dropped every face
    for value in ("nan", "inf", "-2", "0.8"):
        row = lines[4].split(",")
        (tmp_path / "odd.csv").write_text("\n".join(lines[:4] + [",".join(row[:3] + [value] + row[4:])] + lines[5:]) + "\n")
        with pytest.raises(DataError, match=f"line 5: a vote count is not a whole number >= 0 \\({value}\\); FER"):
            ferplus.read_votes(tmp_path / "odd.csv", data.splits)
    # 1e40 was float32's inf and said as '(inf)', after numpy's overflow warning; 1e30 was a count
    for value, said in (("1e40", "1e\\+40"), ("1e30", "1e\\+30"), ("16777217", "16777217")):
        row = lines[4].split(",")
        (tmp_path / "odd.csv").write_text("\n".join(lines[:4] + [",".join(row[:3] + [value] + row[4:])] + lines[5:]) + "\n")
        with pytest.raises(DataError, match=f"line 5: a vote count is over 16,777,216 \\({said}\\); FER"):
            ferplus.read_votes(tmp_path / "odd.csv", data.splits)
    assert ferplus.read_votes(tmp_path / "fer2013new.csv", data.splits).dtype == np.float32


def test_votes_that_add_up_to_more_than_ten_are_refused(tmp_path):
    """(a count of 80, a typo for 8, or two rows' votes added up, was read as the votes of more annotators: FER+'s
    10 gave each face 10 votes, its file's rows add up to 10, one to 9)"""
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    lines = write_votes(tmp_path / "fer2013new.csv", fer, mix=False).read_text().splitlines()
    splits = load_fer(fer).splits
    row = lines[4].split(",")  # 8 votes on one emotion, 2 on another
    one_more = row[:2] + [str(int(row[2]) + 1)] + row[3:]  # neutral's count one higher
    typo = [("80" if v == "8" else v) for v in row]  # 80 in place of 8
    for odd, total in ((one_more, 11), (typo, 82)):
        (tmp_path / "odd.csv").write_text("\n".join(lines[:4] + [",".join(odd)] + lines[5:]) + "\n")
        with pytest.raises(DataError) as e:
            ferplus.read_votes(tmp_path / "odd.csv", splits)
        assert str(e.value).startswith(f"{tmp_path / 'odd.csv'}, line 5: the vote counts add up to {total} ("), str(e.value)
        assert str(e.value).endswith(f"), more than FER+'s 10 annotators gave a face (1 such row in the file); fix the counts, "
                                     f"or get fer2013new.csv from {ferplus.SOURCE} again"), str(e.value)
    fewer = [",".join(r.split(",")[:2] + ["9"] + ["0"] * 9) if i == 4 else r for i, r in enumerate(lines)]
    (tmp_path / "nine.csv").write_text("\n".join(fewer) + "\n")  # FER+'s file has a row of 9 votes
    assert ferplus.read_votes(tmp_path / "nine.csv", splits)[3].sum() == 9


def test_label_modes_follow_the_ferplus_rules():
    # angry, disgust, fear, happy, sad, surprise, neutral, contempt, unknown, NF
    votes = np.array([[6, 0, 0, 0, 4, 0, 0, 0, 0, 0],   # clear majority
                      [4, 0, 0, 0, 4, 0, 2, 0, 0, 0],   # tie: no majority; the two top emotions
                      [0, 0, 0, 0, 0, 0, 1, 0, 0, 9],   # not a face
                      [6, 0, 0, 0, 0, 0, 0, 0, 4, 0],   # unknown second: the emotion alone
                      [3, 1, 1, 1, 1, 1, 1, 1, 0, 0]], np.float32)  # single votes are outliers
    t, keep = ferplus.targets(votes, "majority")
    assert keep.tolist() == [True, False, False, True, True] and t[0].argmax() == 0 and t[4].argmax() == 0
    t, keep = ferplus.targets(votes, "crossentropy")
    assert keep.tolist() == [True, True, False, True, True]
    np.testing.assert_allclose(t[0, [0, 4]], [0.6, 0.4])
    np.testing.assert_allclose(t[1, [0, 4, 6]], [0.5, 0.5, 0])  # 80% of the votes in: the 2 votes stay out
    np.testing.assert_allclose(t[3, 0], 1.0)
    t, keep = ferplus.targets(votes, "multi_target")
    assert t[0].tolist()[:8] == [1, 0, 0, 0, 1, 0, 0, 0] and t[1, 6] == 0  # 20% of the votes is below 30%
    assert ferplus.majority_labels(votes).tolist() == [0, -1, -1, 0, 0]
    assert ferplus.top_vote_sets(votes)[1].tolist() == [True, False, False, False, True, False, False, False]
    assert not ferplus.top_vote_sets(votes)[2].any()


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def check_step(mode, logits, y, targets, loss):
    """One training step's loss against the mode's formula (numpy), and its targets against write_votes'
    votes: 8 for the face's emotion and 2 for the next (under 30%), or a 5/5 tie with contempt; only
    the ties' targets are not one-hot, so each mode's loss differs from the majority's on them."""
    log_p = _log_softmax(logits.detach().double().numpy())
    ce_on_y = -log_p[np.arange(len(y)), y.numpy()].mean()
    if mode == "majority":  # one-hot on the majority emotion: plain labels
        assert targets is None and loss == pytest.approx(ce_on_y, rel=1e-5)
        return
    t = targets.numpy()
    assert (t.argmax(1) == y.numpy()).all()
    if mode == "multi_target":
        assert all(sorted(r[r > 0].tolist()) in ([1], [1, 1]) for r in t)
        assert loss == pytest.approx(-np.log((np.exp(log_p) * t).max(1)).mean(), rel=1e-5)
        return
    # 8/2: the 8 votes alone reach 75%, so the distribution is the face's emotion alone
    assert all(sorted(r[r > 0].astype(float).round(6).tolist()) in ([1], [0.5, 0.5]) for r in t)
    soft_ce = -(t * log_p).sum(1).mean()
    if mode == "crossentropy":
        assert loss == pytest.approx(soft_ce, rel=1e-5)
        return
    # probability: the cross-entropy on one label drawn from each face's distribution. Every sum of
    # one drawn label's loss a face; one must be the step's (a tie's two losses can be nearly equal,
    # so a single step need not tell a draw from the soft targets: the test asks it of some step).
    sums = np.zeros(1)
    for nll, row in zip(-log_p, t):
        sums = (sums[:, None] + nll[row > 0]).ravel()
    assert np.isclose(sums / len(t), loss, rtol=1e-5).any(), "the loss is no draw's cross-entropy"
    return loss != pytest.approx(soft_ce, rel=1e-4), loss != pytest.approx(ce_on_y, rel=1e-4)


# write_votes' 70 training faces: 7 are not a face (i % 10 == 3); 9 more are a 5/5 tie (i % 7 == 5),
# which has no majority but a two-emotion distribution. The 70 PublicTest faces: the same counts.
TRAINING_FACES = {"majority": 70 - 7 - 9, "probability": 70 - 7, "crossentropy": 70 - 7, "multi_target": 70 - 7}


@pytest.mark.parametrize("mode", ferplus.MODES)
def test_training_on_ferplus_votes_in_each_mode(tmp_path, mode, caplog, monkeypatch):
    import ferkit.train

    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=70)
    write_votes(tmp_path / "fer2013new.csv", fer)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    cfg = resolve_config(str(spec), data=str(fer), epochs=3, batch_size=16, lr=3e-3, labels="ferplus", label_mode=mode)
    steps, task_loss = [], ferkit.train.task_loss

    def spy(logits, y, targets, cfg, gen):
        loss = task_loss(logits, y, targets, cfg, gen)
        steps.append(check_step(mode, logits, y, targets, loss.item()))
        return loss

    monkeypatch.setattr(ferkit.train, "task_loss", spy)
    caplog.set_level("INFO")
    history = fit(cfg, tmp_path / "run", progress=False)
    assert f"FER+ labels ({mode}): {TRAINING_FACES[mode]} training faces, 54 PublicTest faces" in caplog.text
    assert len(steps) == 3 * -(-TRAINING_FACES[mode] // 16)  # every step went through the checks
    if mode == "probability":
        assert any(soft for soft, _ in steps), "every step's loss was the soft targets' cross-entropy"
        assert any(not_y for _, not_y in steps), "every step's loss was the majority label's"
    assert history[-1]["train_loss"] < history[0]["train_loss"]

    clf = load_checkpoint(tmp_path / "run")
    assert clf.labels == FERPLUS and clf.predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 8)
    data = load_fer(fer)
    m = evaluate_split(clf, data, "val")
    assert m["labels"] == list(FERPLUS) and len(m["confusion_matrix"]) == 8
    # Scored by hand: PublicTest face j is row i = 70 + j of the vote file.
    images, own = data.split("val")
    i = 70 + np.arange(70)
    not_face, tie = i % 10 == 3, (i % 7 == 5) & (i % 10 != 3)
    pred = clf.predict_proba(images).argmax(1)
    majority = ~not_face & ~tie  # ties and non-faces have no majority emotion
    in_top = (pred == own) | (tie & (pred == 7))  # a tie's top votes: its own emotion and contempt
    assert m["n"] == majority.sum() == 54 and m["top_vote_n"] == (~not_face).sum() == 63
    assert m["accuracy"] == pytest.approx((pred == own)[majority].mean())
    assert m["top_vote_accuracy"] == pytest.approx(in_top[~not_face].mean())


def test_evaluate_scores_on_the_votes_the_run_trained_on(tmp_path, capsys):
    """(evaluate took fer2013new.csv beside the data, or said there was none, whatever --labels-file the run had)"""
    from ferkit.cli import main

    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=21)
    (tmp_path / "votes").mkdir()
    votes = write_votes(tmp_path / "votes" / "mine.csv", fer, mix=False)
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_spec().to_dict()))
    run = tmp_path / "run"
    assert main(["train", "--model", str(tmp_path / "tiny.json"), "--data", str(fer), "--labels", "ferplus", "--labels-file",
                 str(votes), "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(fer)]) == 0
    out = capsys.readouterr().out
    assert f"FER+ votes: {votes} (the run's --labels-file)" in out
    assert json.loads((run / "metrics-val.json").read_text())["n"] == 21
    assert main(["evaluate", "fer2013-fast", "--data", str(fer), "--labels-file", str(votes), "--json", str(tmp_path / "m.json")]) == 0
    assert f"note: --labels-file {votes}: FER+'s votes score a FER+ model on FER2013's CSV rows; fer2013-fast is scored " \
           f"on the labels of {fer}" in capsys.readouterr().out  # (ignored without a word)


def test_vote_flags_without_ferplus_and_votes_without_a_majority_are_said(tmp_path, caplog):
    """(--label-mode/--labels-file with FER2013 labels were silently ignored; PublicTest faces that all
    lack a majority gave 'val acc nan' each epoch and 'no validation split')"""
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    votes = write_votes(tmp_path / "fer2013new.csv", fer, mix=False)
    lines = votes.read_text().splitlines()
    tie = [",".join(r.split(",")[:2] + ["5", "5"] + ["0"] * 8) if r.startswith("PublicTest") else r for r in lines[1:]]
    (tmp_path / "ties.csv").write_text("\n".join([lines[0]] + tie) + "\n")
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_spec().to_dict()))
    single = [",".join(r.split(",")[:2] + ["1"] * 10) for r in lines[1:]]  # every vote single: no face is kept
    (tmp_path / "single.csv").write_text("\n".join([lines[0]] + single) + "\n")
    with pytest.raises(DataError, match="0 training face.*--label-mode majority keeps the faces whose votes .single votes ignored"):
        fit(resolve_config(str(tmp_path / "tiny.json"), data=str(fer), epochs=1, labels="ferplus", label_mode="majority",
                           labels_file=str(tmp_path / "single.csv")), tmp_path / "c", progress=False)
    caplog.set_level("INFO")
    fit(resolve_config(str(tmp_path / "tiny.json"), data=str(fer), epochs=1, label_mode="majority"), tmp_path / "a", progress=False)
    assert f"--labels-file and --label-mode are for FER+ votes of FER2013's rows (--labels ferplus); ignored with --labels " \
           f"fer2013 on {fer}" in caplog.text
    caplog.clear()
    history = fit(resolve_config(str(tmp_path / "tiny.json"), data=str(fer), epochs=1, labels="ferplus",
                                 labels_file=str(tmp_path / "ties.csv")), tmp_path / "b", progress=False)
    assert "none of its 14 PublicTest faces has a FER+ label to score; the best checkpoint is the last epoch's" in caplog.text
    assert "no PublicTest (val) rows" not in caplog.text and len(history) == 1


def test_majority_labels_follow_the_ferplus_rule_for_all_faces_at_once(monkeypatch):
    """(majority_labels ran _process face by face: check_aligned took ~1 s on every load of FER+'s 32,298 rows)"""
    rng = np.random.default_rng(0)
    votes = np.stack([rng.multinomial(10, rng.dirichlet(np.full(10, 0.3))) for _ in range(2000)]).astype(np.float32)
    votes[:4] = [[5, 5, 0, 0, 0, 0, 0, 0, 0, 0], [1] * 10, [0] * 8 + [6, 4], [0] * 10]  # a tie, singles, NF, none

    def majority(v):  # FER+'s reference rule, one face: more than half of the votes left once single votes are dropped
        v = np.where(v <= 1, 0, v)
        return int(v.argmax()) if v.max() > v.sum() / 2 and v.argmax() < 8 else -1

    expected = [majority(v) for v in votes]
    assert set(expected) == {-1, *range(8)} and expected[:4] == [-1] * 4
    monkeypatch.setattr(ferplus, "_process", None)  # the whole array at once, not face by face
    got = ferplus.majority_labels(votes)
    assert got.dtype == np.int64 and got.tolist() == expected
    t, keep = ferplus.targets(votes, "majority")  # the majority mode's one-hot targets are these labels
    assert keep.tolist() == (got >= 0).tolist() and (t.argmax(1)[keep] == got[keep]).all() and (t[~keep] == 0).all()
    assert t.dtype == np.float32 and (t.sum(1)[keep] == 1).all()


def test_train_subset_of_ferplus_votes_is_stratified_by_the_most_voted_emotion(tmp_path):
    """FER+'s targets are the votes, not the CSV's FER2013 emotions: --train-subset keeps each most-voted emotion's share."""
    from ferkit.config import TrainConfig
    from ferkit.labels import label_set
    from ferkit.train import split_batches

    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=70)
    # without its emotion column: FER2013's emotions would be out of line with these votes (check_aligned)
    fer.write_text("".join(line.split(",", 1)[1] for line in fer.read_text().splitlines(keepends=True)))
    lines = [HEADER]
    for i, usage in enumerate(["Training"] * 70 + ["PublicTest"] * 70):
        votes = [0] * 10
        votes[i % 70 // 10] = 10  # the training rows 10 by 10 for 7 emotions, whatever their FER2013 label
        lines.append(f"{usage},fer{i:07d}.png," + ",".join(map(str, votes)))
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    data, labels = load_fer(fer), label_set("ferplus")
    cfg = TrainConfig(labels="ferplus", label_mode="majority", train_subset=35)
    train, _, _ = split_batches(data, cfg, tiny_spec().for_labels(labels), None, labels, labels.annotations(data))
    assert np.bincount(train.y.numpy(), minlength=8).tolist() == [5] * 7 + [0]


def test_a_row_with_a_field_too_many_is_refused(tmp_path):
    """(a row 'Training,fer0000000.png,0,4,...' with a field inserted before the votes was read with every vote
    a column to the right: another emotion's labels, without a word)"""
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    lines = write_votes(tmp_path / "fer2013new.csv", fer, mix=False).read_text().splitlines()
    row = lines[3].split(",")
    (tmp_path / "shifted.csv").write_text("\n".join(lines[:3] + [",".join(row[:2] + ["0"] + row[2:])] + lines[4:]) + "\n")
    with pytest.raises(DataError, match=r"shifted.csv, line 4: 13 fields, more than the header's 12; got 'Training,fer0000002.png,0,"):
        ferplus.read_votes(tmp_path / "shifted.csv", load_fer(fer).splits)


def test_votes_out_of_line_with_the_fer2013_rows_are_refused(tmp_path):
    """(rows reordered within their split keep every Usage: each face trained on another face's votes, without a word)"""
    from ferkit.labels import label_set

    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=60)
    lines = write_votes(tmp_path / "fer2013new.csv", fer, mix=False).read_text().splitlines()
    data = load_fer(fer)
    assert label_set("ferplus").annotations(data).shape == (120, 10)
    rng = np.random.default_rng(0)
    rows = [lines[1 + i] for i in np.concatenate([rng.permutation(60), 60 + rng.permutation(60)])]
    (tmp_path / "fer2013new.csv").write_text("\n".join([lines[0], *rows]) + "\n")  # sorted by anything, as by chance
    with pytest.raises(DataError, match=r"fer2013new.csv, lines 2-121: the votes' majority emotion is the FER2013 file's "
                                        r"emotion for \d+% of these 120 faces, as by chance .* original row order"):
        label_set("ferplus").annotations(data)
    assert ferplus.read_votes(tmp_path / "fer2013new.csv", data.splits).shape == (120, 10)  # (the Usage check alone)


def test_messages_name_the_line_of_the_file_past_blank_lines(tmp_path):
    """(a row's line was its row number + 2: past a blank line or a quoted line break, the line before the row's)"""
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    lines = write_votes(tmp_path / "fer2013new.csv", fer, mix=False).read_text().splitlines()
    splits = load_fer(fer).splits
    top = [lines[0], lines[1].replace("fer0000000.png", '"fer00\n00000.png"'), "", lines[2], ""]  # rows on lines 2-3 and 5
    for row, said in ((lines[3].replace("Training", "PublicTest"), "line 7: Usage is PublicTest but row 3 of the FER2013 data is Training"),
                      (lines[3].replace(",0,", ",-1,", 1), r"line 7: a vote count is not a whole number >= 0 \(-1\)"),
                      (lines[3].replace(",0,", ",1e40,", 1), r"line 7: a vote count is over 16,777,216 \(1e\+40\)")):
        (tmp_path / "odd.csv").write_text("\n".join(top + [row] + lines[4:]) + "\n")
        with pytest.raises(DataError, match=said):
            ferplus.read_votes(tmp_path / "odd.csv", splits)


def test_a_gzipped_vote_file_is_read(tmp_path):
    """(a gzipped copy, as FER2013's file may be, was 'cannot read as a FER+ vote file ('utf-8' codec can't decode
    byte 0x8b in position 1 ...)', and fer2013new.csv.gz beside the data was 'no FER+ vote file')"""
    import gzip

    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    plain = write_votes(tmp_path / "plain.csv", fer, mix=False)
    splits = load_fer(fer).splits
    expected = ferplus.read_votes(plain, splits)
    packed = gzip.compress(plain.read_bytes())
    (tmp_path / "fer2013new.csv.gz").write_bytes(packed)
    assert ferplus.find_votes(fer) == tmp_path / "fer2013new.csv.gz"
    (tmp_path / "votes.csv").write_bytes(packed)  # whatever its name
    for path in (ferplus.find_votes(fer), ferplus.find_votes(fer, tmp_path / "votes.csv")):
        np.testing.assert_array_equal(ferplus.read_votes(path, splits), expected)
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut.csv.gz: a cut or damaged gzip file \(.*\); get FER\+'s vote file again$"):
        ferplus.read_votes(tmp_path / "cut.csv.gz", splits)
    (tmp_path / "utf16.csv").write_bytes(plain.read_text().encode("utf-16"))  # a spreadsheet's 'Unicode text'
    with pytest.raises(DataError, match=r"utf16.csv: not UTF-8 text \(.*\); save FER\+'s vote file as a UTF-8 CSV$"):
        ferplus.read_votes(tmp_path / "utf16.csv", splits)


def test_a_vote_column_given_twice_is_refused(tmp_path):
    """(the first of two 'neutral' columns was read, the other left out unsaid; FER2013's CSV refuses the same)"""
    fer = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=14)
    lines = write_votes(tmp_path / "fer2013new.csv", fer, mix=False).read_text().splitlines()
    (tmp_path / "twice.csv").write_text("\n".join([lines[0] + ",neutral"] + [line + ",9" for line in lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"twice.csv, line 1: column\(s\) neutral appear more than once \(header is "
                                        r"'Usage,Image name,neutral,.*,NF,neutral'\); keep one of each"):
        ferplus.read_votes(tmp_path / "twice.csv", load_fer(fer).splits)


def _targets_face_by_face(votes, mode):
    """ferplus.targets as it was, one face at a time (FER+'s reference code): the rule the whole-array one keeps."""
    def one(raw):
        raw = np.where(raw <= 1, 0, raw).astype(np.float64)
        total, out = raw.sum(), np.zeros(10)
        unknown = np.zeros(10)
        unknown[8] = 1
        if mode == "multi_target":
            out = np.where(raw >= 0.3 * total, raw, 0)
            return unknown if out.sum() <= 0.5 * total else out / out.sum()
        taken, count, valid = 0.0, 0, True
        while taken < 0.75 * total and count < 3 and valid:
            top = raw.max()
            for i in range(10):
                if raw[i] == top:
                    out[i], raw[i] = top, 0
                    taken += top
                    count += 1
                    if i >= 8:
                        valid = False
                        if out.sum() > top:
                            out[i] = 0
                            count -= 1
                        break
        return unknown if out.sum() <= 0.5 * total or count > 3 else out / out.sum()

    w = np.stack([one(v) for v in votes])
    keep = w.argmax(1) < 8
    t = np.where(keep[:, None], w[:, :8], 0)
    t = (t > 0).astype(np.float32) if mode == "multi_target" else t / np.maximum(t.sum(1, keepdims=True), 1e-12)
    return t.astype(np.float32), keep


def test_targets_follow_the_ferplus_rules_for_all_faces_at_once(monkeypatch):
    """(targets ran _process face by face in Python for the probability, crossentropy and multi_target modes)"""
    rng = np.random.default_rng(1)
    votes = np.concatenate([  # 10 annotators as FER+ has them; small counts in every column (ties of all kinds)
        np.stack([rng.multinomial(10, rng.dirichlet(np.full(10, 0.3))) for _ in range(2000)]),
        rng.integers(0, 5, (2000, 10)), rng.integers(0, 3, (1000, 10)) * 2,
        np.pad(rng.integers(0, 4, (500, 4)), ((0, 0), (0, 6)))[:, [0, 1, 8, 9, 2, 3, 4, 5, 6, 7]],  # with unknown/NF
    ]).astype(np.float32)
    votes[:12] = [[4, 0, 0, 0, 0, 0, 0, 0, 4, 2], [0] * 8 + [5, 5], [3, 3, 0, 0, 0, 0, 0, 0, 3, 1],  # ties with unknown/NF
                  [5, 3, 0, 0, 0, 0, 0, 0, 0, 3], [4, 2, 2, 2, 0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 2, 0, 0, 0, 0, 0],
                  [1] * 10, [0] * 10, [0, 0, 0, 0, 0, 0, 0, 0, 6, 4], [7, 0, 0, 0, 0, 0, 0, 0, 3, 0],
                  [300, 200, 0, 0, 0, 0, 0, 0, 200, 0], [2, 0, 0, 0, 0, 0, 0, 0, 0, 8]]
    calls = []
    process = ferplus._process
    monkeypatch.setattr(ferplus, "_process", lambda v, mode: calls.append(len(v)) or process(v, mode))
    for mode in ("probability", "crossentropy", "multi_target"):
        t, keep = ferplus.targets(votes, mode)
        want_t, want_keep = _targets_face_by_face(votes, mode)
        assert t.dtype == np.float32 and np.array_equal(keep, want_keep) and np.array_equal(t, want_t), mode
        assert 0 < keep.sum() < len(votes) and (t[~keep] == 0).all()
        t, keep = ferplus.targets(votes[:0], mode)
        assert t.shape == (0, 8) and t.dtype == np.float32 and keep.shape == (0,)
    assert calls == [len(votes)] * 3, "face by face"
