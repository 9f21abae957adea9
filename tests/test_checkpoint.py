"""Checkpoints that load but are wrong are refused with one message naming the file and the problem."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.cli import main
from ferkit.errors import FerkitError


def _variant(tiny_checkpoint, tmp_path, change) -> str:
    ck = torch.load(tiny_checkpoint, weights_only=True)
    change(ck)
    path = tmp_path / "changed.pt"
    torch.save(ck, path)
    return str(path)


def _set(key, value):
    return lambda ck: ck.__setitem__(key, value)


def _set_tta(value):
    return lambda ck: ck["config"].__setitem__("tta", value)


def _nan_weight(ck):
    k = next(k for k in ck["state_dict"] if k.endswith("weight"))
    ck["state_dict"][k][0] = float("nan")


@pytest.mark.parametrize("change,message", [
    (lambda ck: ck.pop("mean"), "no 'mean'"),
    (_set("state_dict", {}), "'state_dict' is not a non-empty mapping of tensors"),
    (_set("mean", torch.zeros(32, 32)), "'mean' must be a 48x48 image; got (32, 32)"),
    (_set("mean", torch.full((48, 48), 1e9)), "'mean' must hold pixel values in 0..255"),
    (lambda ck: ck["spec"]["convs"][0].__setitem__("filters", "8"), "convs[0].filters must be an integer; got '8'"),
    (lambda ck: ck["spec"].__setitem__("hog", True), "hog must be a mapping"),
    (lambda ck: ck["spec"]["convs"][0].__setitem__("filters", 9), "the weights do not fit its model spec (features.0.0.weight has shape"),
    (lambda ck: ck["state_dict"].pop("classifier.bias"), "missing classifier.bias"),
    (_nan_weight, "hold NaN, infinite or impossible values"),
    (_set("spec", "shallow"), "model spec must be a mapping"),
    (_set("config", "x"), "'config' is not a mapping"),
    (_set("labels", 5), "'labels' must be a list of emotion names; got int 5"),
    (_set("labels", "abcdefg"), "'labels' must be a list of emotion names; got str abcdefg"),
    (_set("labels", list(range(7))), "'labels' must be a list of emotion names; got list [0, 1, 2"),
    # (printed as they are by predict: the escape code cleared the terminal)
    (_set("labels", ["angry\x1b[2J", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
     "its 'labels' cannot name the model's outputs: the class name 'angry\\x1b[2J' holds a control character"),
    # tensors no float model takes, and config fields its data are read by (tracebacks from deep in torch before)
    (lambda ck: ck["state_dict"].__setitem__("classifier.weight", ck["state_dict"]["classifier.weight"].to_sparse()),
     "classifier.weight is sparse (to_dense() it)"),
    (lambda ck: ck["state_dict"].__setitem__("classifier.weight", torch.quantize_per_tensor(
        ck["state_dict"]["classifier.weight"].float(), 0.1, 0, torch.qint8)), "classifier.weight is quantized"),
    (_set("mean", torch.zeros(48, 48, dtype=torch.complex64)), "'mean' must hold pixel values in 0..255"),
    (lambda ck: ck["config"].__setitem__("label_names", 5), "config.label_names must be a text or null; got 5 (a damaged file?)"),
    # a tta that is not a bool: "no" and 0.5 were read as true, and the model predicted with the mirror
    *[(_set_tta(v), f"config.tta must be true or false; got {v!r}") for v in ("no", 0.5, 1, None)],
    # integer weights were copied into the float model, cut to whole numbers (mostly 0): silently wrong predictions
    (lambda ck: ck["state_dict"].__setitem__("classifier.weight", ck["state_dict"]["classifier.weight"].long()),
     "classifier.weight holds torch.int64 values, the spec needs floating-point weights"),
])
def test_wrong_checkpoints_are_refused_by_name(tiny_checkpoint, tmp_path, change, message):
    path = _variant(tiny_checkpoint, tmp_path, change)
    with pytest.raises(FerkitError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(path) and message in str(e.value)


def test_report_and_plot_refuse_a_checkpoint_history_of_the_wrong_shape(tiny_checkpoint, tmp_path):
    from ferkit.checkpoint import checkpoint_run

    assert len(checkpoint_run(tiny_checkpoint, "run").history) >= 1
    path = _variant(tiny_checkpoint, tmp_path, _set("history", "x"))
    with pytest.raises(FerkitError, match=r"changed.pt: its 'history': not a training history .* got str"):
        checkpoint_run(path, "run")
    path = _variant(tiny_checkpoint, tmp_path, _set("history", torch.ones(3)))  # (its truth was a RuntimeError)
    with pytest.raises(FerkitError, match=r"changed.pt: its 'history': not a training history .* got Tensor"):
        checkpoint_run(path, "run")


@pytest.mark.parametrize("losses, message", [
    (["a", "b"], "(a loss that is no number: a)"), ([[1.0, 2.0], [3.0]], "(a loss that is no number: [1.0, 2.0])"),
    ({"a": 1.0}, "(a list of numbers); got dict"), ([0.5, 1e308], "(a loss over 1e+12)"),
    (torch.ones(3), "(a list of numbers); got Tensor")])
def test_report_and_plot_refuse_a_checkpoint_iter_loss_of_the_wrong_shape(tiny_checkpoint, tmp_path, losses, message):
    """A last.pt's iter_loss of words or lists was a ValueError traceback in `ferkit plot` and `report` (numpy's
    float conversion), and 1e308 passed where iterations.csv refuses it (matplotlib's ticks overflow)."""
    from ferkit.checkpoint import checkpoint_run

    path = _variant(tiny_checkpoint, tmp_path, _set("iter_loss", losses))
    with pytest.raises(FerkitError) as e:
        checkpoint_run(path, "run")
    assert str(e.value).startswith(f"{path}: its 'iter_loss': not the training loss of each iteration ") and message in str(e.value)
    assert len(checkpoint_run(_variant(tiny_checkpoint, tmp_path, _set("iter_loss", [0.5, float("nan")])), "run").iterations) == 2


def test_quoted_library_messages_are_cut_at_a_sentence():
    """A library's message in ours: its first line, cut at a sentence's end (torch's truncated-file
    message ran 200 characters into a sentence), else at 200 characters with an ellipsis."""
    from ferkit.errors import first_line

    assert first_line("short\nsecond line") == "short" and first_line("") == ""
    assert first_line("First sentence. " + "x" * 300) == "First sentence."
    assert first_line("y" * 300) == "y" * 200 + "..."


def test_a_path_in_an_advised_command_is_one_shell_word():
    """A path or value inside a command a message advises ('ferkit train --resume RUN') is one argument when pasted into
    a shell: "runs/my run" was two, and a quote, $ or ; in it broke the command or ran something else. A plain path
    is left as it is (the messages and docs of plain paths are unchanged), and a relative one in "-..." gets "./"."""
    import shlex

    from ferkit.errors import shell_word

    for plain in ("runs/shallow-2024", "/tmp/a_b.c/best.pt", "fer2013.csv.gz", "angry,happy,sad"):
        assert shell_word(plain) == plain and shell_word(Path(plain)) == plain
    for odd in ("runs/my run", "/tmp/it's", 'a"b', "$HOME/x", "a;rm -rf b", "`id`", "x\\y", "é ü", "*.pt", ""):
        assert shlex.split(f"ferkit train --resume {shell_word(odd)}") == ["ferkit", "train", "--resume", odd], odd
    assert shell_word("-run") == "./-run" and shell_word(Path("-my run")) == "'./-my run'"


def test_flipped_bytes_are_refused(tiny_checkpoint, tmp_path, capsys):
    """torch.load does not check the zip checksums torch.save writes; ferkit does: no NaN predictions, no 500s."""
    raw = tiny_checkpoint.read_bytes()
    for seed in range(5):
        rng = np.random.default_rng(seed)
        b = bytearray(raw)
        for i in rng.choice(len(b), 200, replace=False):
            b[i] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"flipped{seed}.pt"
        path.write_bytes(bytes(b))
        with pytest.raises(FerkitError, match="damaged"):
            load_checkpoint(path)
    # the bytes of one tensor set to NaN (0xff...), the zip checksum of that tensor then fails
    ck = torch.load(tiny_checkpoint, weights_only=True)
    w = ck["state_dict"]["classifier.weight"].numpy().tobytes()
    start = raw.index(w)
    path = tmp_path / "nan.pt"
    path.write_bytes(raw[:start] + b"\xff" * 200 + raw[start + 200:])
    assert main(["export", str(path), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "damaged (the checksum of" in err and "Traceback" not in err and not (tmp_path / "x.onnx").exists()


def test_a_run_whose_best_pt_is_damaged_offers_its_last_pt(tiny_run, tmp_path, capsys):
    """Commands given a run folder said its best.pt was damaged, not that its whole last.pt could stand in, nor that
    a resume writes best.pt again from it."""
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    whole = (run / "best.pt").read_bytes()
    way = f"; or give {run / 'last.pt'} (epoch 3's weights), or write best.pt again from it with 'ferkit train --resume {run}'"
    for damage in (whole[: len(whole) // 2], b"garbage", b""):  # cut off, not a checkpoint, empty
        (run / "best.pt").write_bytes(damage)
        with pytest.raises(FerkitError) as e:
            read_checkpoint(run)
        assert str(e.value).startswith(f"{run / 'best.pt'}: ") and str(e.value).endswith(way), str(e.value)
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.rstrip().endswith(way)
    with pytest.raises(FerkitError) as e:  # the file given itself (train's own reads of it): no run to speak of
        read_checkpoint(run / "best.pt")
    assert "last.pt" not in str(e.value)
    (run / "last.pt").write_bytes(b"garbage")  # no way on where last.pt does not read either
    with pytest.raises(FerkitError) as e:
        read_checkpoint(run)
    assert "last.pt" not in str(e.value)


def test_a_best_pt_that_is_a_folder_is_named_once(tiny_run, tmp_path):
    """A run's best.pt given (report gives it so) that is a folder was taken for a run folder: "RUN/best.pt/best.pt:
    no such checkpoint"."""
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "best.pt").unlink()
    (run / "best.pt").mkdir()
    for given in (run, run / "best.pt"):
        with pytest.raises(FerkitError) as e:
            read_checkpoint(given)
        assert str(e.value) == f"{run / 'best.pt'}: a folder; give a .pt file written by 'ferkit train'"


def test_unsafe_pickle_is_refused_without_pytorchs_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "evil.pt"
    torch.save({"spec": {}, "state_dict": {}, "x": Evil()}, path)
    with pytest.raises(FerkitError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert "holds pickled Python objects" in msg and "only load checkpoints you trust" in msg.lower()
    assert "weights_only" not in msg and "ferkit loads only weights" in msg and "state_dict" in msg


def test_a_pickled_whole_model_gets_ferkits_own_message(tmp_path, recwarn):
    """torch.save of a whole module, and a plain pickle: PyTorch's message advises weights_only=False
    (which would run the file's code) and its first line was cut mid-sentence."""
    import pickle

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    torch.save(model, tmp_path / "whole.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(model, protocol=4))
    for name, what in [("whole.pt", "holds pickled Python objects (torch.nn.modules.container.Sequential)"),
                       ("plain.pkl", "holds pickled Python objects, not a ferkit checkpoint")]:
        with pytest.raises(FerkitError) as e:
            read_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / name}: {what}") and "\n" not in msg, msg
        assert "weights_only" not in msg and "save a dict of plain tensors" in msg and msg.endswith("'ferkit train'")
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]  # torch's warning on the plain pickle
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")  # the unpickler chokes on it too: not called a pickle
    with pytest.raises(FerkitError, match="junk.pt: not a readable ferkit checkpoint; .*not a PyTorch file") as e:
        read_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(e.value)
    for text in (b"abc", b"i"):  # torch's own errors on these were internal: "IndexError: pop from empty list", "KeyError: 105"
        (tmp_path / "short.pt").write_bytes(text)
        with pytest.raises(FerkitError) as e:
            read_checkpoint(tmp_path / "short.pt")
        assert str(e.value).endswith("the file is damaged or not one (not a PyTorch file)"), str(e.value)


def test_a_checkpoint_without_training_state_cannot_resume(tiny_checkpoint, tmp_path):
    path = _variant(tiny_checkpoint, tmp_path, lambda ck: ck.pop("optimizer"))
    with pytest.raises(FerkitError, match="cannot resume from it: no optimizer"):
        read_checkpoint(path, resume=True)


def test_checkpoints_record_the_input_and_old_ones_load_as_48_grey(tiny_checkpoint, tmp_path):
    spec = torch.load(tiny_checkpoint, weights_only=True)["spec"]
    assert (spec["in_size"], spec["channels"], spec["backbone"]) == (48, 1, None)
    # a checkpoint written before channels and backbone were in the spec
    old = _variant(tiny_checkpoint, tmp_path, lambda ck: [ck["spec"].pop(k) for k in ("channels", "backbone")])
    clf = load_checkpoint(old)
    assert (clf.spec.channels, clf.spec.in_size, clf.spec.backbone) == (1, 48, None)
    assert clf.model.features[0][0].in_channels == 1
    assert clf.predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    # a spec that says RGB does not fit grey weights: refused by name
    rgb = _variant(tiny_checkpoint, tmp_path, lambda ck: ck["spec"].__setitem__("channels", 3))
    with pytest.raises(FerkitError, match="features.0.0.weight has shape"):
        load_checkpoint(rgb)


def test_a_pipe_given_as_weights_is_one_line_not_a_reader_blocked_forever(tmp_path):
    """zipfile, torch.load and onnxruntime open what they are given: a FIFO with no writer never ends."""
    import signal

    from ferkit.finetune import read_weights
    from ferkit.runtime import onnx_session

    def hung(*_):
        raise RuntimeError("blocked reading a FIFO")  # (not an OSError: zipfile.is_zipfile swallows those)

    old = signal.signal(signal.SIGALRM, hung)
    try:
        for name, load in (("w.pt", read_checkpoint), ("w.pth", read_weights), ("w.onnx", onnx_session)):
            os.mkfifo(tmp_path / name)
            signal.alarm(10)  # the broken behaviour fails the test instead of hanging the suite
            with pytest.raises(FerkitError, match=f"{name}: not a regular file .a device, pipe or socket.; give "):
                load(tmp_path / name)
            signal.alarm(0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_file_ferkits_user_may_not_read_is_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    """A checkpoint or run file of another user's (chmod 000) was a PermissionError traceback (evaluate, export,
    visualize, predict, report, --init-from) or 'unreadable JSON; rerun the command that wrote it'. Tests run as
    root, whom chmod does not stop: os.open refuses the files as it would another user."""
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    locked = {run / "best.pt", run / "config.json"}
    real_open = os.open

    def refusing(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(FerkitError, match=r"best.pt: cannot read it \(Permission denied\); give ferkit's user read access to it"):
        read_checkpoint(run / "best.pt")
    assert main(["export", str(run / "best.pt"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "best.pt: cannot read it (Permission denied); give ferkit's user read access" in capsys.readouterr().err
    from ferkit.runs import read_run

    with pytest.raises(FerkitError, match=r"config.json: cannot read it \(Permission denied\)"):
        read_run(run)


def test_a_checkpoints_tta_is_its_configs_bool_and_false_without_one(tiny_checkpoint, tmp_path):
    from ferkit.checkpoint import Classifier

    for value in (True, False):
        assert load_checkpoint(_variant(tiny_checkpoint, tmp_path, _set_tta(value))).tta is value
    assert load_checkpoint(_variant(tiny_checkpoint, tmp_path, lambda ck: ck["config"].pop("tta", None))).tta is False
    clf = load_checkpoint(tiny_checkpoint)
    with pytest.raises(FerkitError, match=r"^the checkpoint's config.tta must be true or false; got 'no'$"):
        Classifier(clf.model, clf.mean, {"config": {"tta": "no"}})  # a meta of one's own, not read from a file


def _last_epoch_worse(ck):
    """A last.pt whose last epoch scored less than the run's best (best_acc: best.pt's)."""
    ck["history"][-1]["val_acc"], ck["best_acc"] = 0.5, 0.75


def test_exports_of_a_last_pt_report_its_epochs_accuracy_not_the_runs_best(tiny_run, tmp_path):
    """export carried best_acc, best.pt's, into the slim .pt and the ONNX metadata (serve's /version) of last.pt's weights."""
    from ferkit.runtime import onnx_session, onnx_training

    last = _variant(tiny_run / "last.pt", tmp_path, _last_epoch_worse)
    assert load_checkpoint(last).training["val_acc"] == 0.5  # served as it is
    assert main(["export", last, "--pt", str(tmp_path / "slim.pt")]) == 0
    assert torch.load(tmp_path / "slim.pt", weights_only=True)["val_acc"] == 0.5  # said, as the copy cannot tell last from best
    assert load_checkpoint(tmp_path / "slim.pt").training["val_acc"] == 0.5
    assert main(["export", last, "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert onnx_training(onnx_session(tmp_path / "m.onnx"))["val_acc"] == 0.5
    best = torch.load(tiny_run / "best.pt", weights_only=True)["best_acc"]
    assert isinstance(best, float) and load_checkpoint(tiny_run / "best.pt").training["val_acc"] == best


def _row(epoch, acc):
    return {"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": acc, "lr": 0.1, "seconds": 1.0}


LAST = {"epoch": 2, "config": {}, "optimizer": {"state": {}}, "best_acc": 0.75, "history": [_row(1, 0.75), _row(2, 0.5)]}


@pytest.mark.parametrize("ckpt,acc", [
    (LAST, 0.5),
    ({**LAST, "history": [_row(1, 0.5), _row(2, 0.75)]}, 0.75),  # its last epoch was the best
    ({**LAST, "optimizer": {}, "epoch": 1, "history": LAST["history"][:1]}, 0.75),  # best.pt
    ({**LAST, "config": {"ema": 0.99}}, None),  # --ema: the average was validated, last.pt's weights never were
    ({**LAST, "optimizer": {}, "config": {"ema": 0.99}}, 0.75),  # best.pt holds the average
    ({k: v for k, v in LAST.items() if k != "optimizer"}, 0.5),  # an older ferkit's slim copy of last.pt
    ({**LAST, "best_acc": None, "history": [_row(1, float("nan")), _row(2, float("nan"))]}, None),  # no validation split
    ({**LAST, "optimizer": {}, "best_acc": 2}, None),  # an older ferkit's epoch number, not an accuracy
    ({**LAST, "val_acc": None}, None),  # a slim copy's own word
])
def test_a_checkpoint_reports_what_its_own_weights_scored(ckpt, acc):
    from ferkit.checkpoint import weights_acc

    assert weights_acc(ckpt) == acc


def test_a_slim_copys_accuracy_is_checked(tiny_checkpoint, tmp_path):
    path = _variant(tiny_checkpoint, tmp_path, _set("val_acc", float("nan")))
    with pytest.raises(FerkitError, match=r"changed.pt: not a usable ferkit checkpoint: 'val_acc' must be a validation "
                                          r"accuracy in 0..1 or None; got nan \(a damaged file\? export it again\)"):
        load_checkpoint(path)
