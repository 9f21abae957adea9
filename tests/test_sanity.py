import pytest

from conftest import synthetic_faces, tiny_spec
from ferkit.model import resolve_spec
from ferkit.sanity import LN7, initial_loss, overfit


@pytest.mark.parametrize("name", ["shallow", "deep"])
def test_initial_loss_is_close_to_ln7(name):
    x, y = synthetic_faces(64)
    assert abs(initial_loss(resolve_spec(name), x, y) - LN7) < 0.25


def test_overfit_small_subset_tiny():
    x, y = synthetic_faces(100, seed=3)
    r = overfit(tiny_spec(), x, y, steps=300, lr=3e-3)
    assert r["train_acc"] >= 0.99


def test_overfit_shallow_preset():
    x, y = synthetic_faces(28, seed=4)
    x[:, :4] = (x[:, :4] + (y[:, None, None] * 37)).astype(x.dtype)  # more per-image signal to memorise
    r = overfit(resolve_spec("shallow"), x, y, steps=60)
    assert r["train_acc"] >= 0.99


def test_checks_pass_at_most_a_batch_of_faces_through_the_model(monkeypatch):
    # --n 2 of resnet18 at in_size 224 scored 1000 faces as one batch of 3.2 GB; overfit trained --n as one
    import torch
    import torch.nn.functional as F

    import ferkit.sanity as sanity
    from ferkit.data import mean_image
    from ferkit.model import create_model
    from ferkit.train import make_batches

    sizes = []

    def recorded(*args, **kwargs):
        model = create_model(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inputs: sizes.append(len(inputs[0])))
        return model

    monkeypatch.setattr(sanity, "create_model", recorded)
    x, y = synthetic_faces(201)
    loss = initial_loss(tiny_spec(), x, y)
    torch.manual_seed(0)  # initial_loss's model
    model = create_model(tiny_spec(), sanity.FILE_LABELS).eval()
    b = make_batches(x, y, mean_image(x), tiny_spec())
    assert abs(loss - F.cross_entropy(model(b.x), b.y).item()) < 1e-4  # the same loss as in one batch
    assert sizes == [100, 100, 1]  # (in eval mode batch norm takes one face)
    sizes.clear()
    overfit(tiny_spec(), x, y, steps=1)
    assert sizes == [67, 67, 67, 100, 100, 1]  # trained in equal parts (batch norm trains on 2 faces or more), then scored


def test_sanity_out_of_memory_is_one_line(fer_csv, monkeypatch, capsys):
    import ferkit.sanity as sanity
    from ferkit.cli import main

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 3211264000 bytes. Error code 12")

    monkeypatch.setattr(sanity, "initial_loss", out_of_memory)
    assert main(["sanity", "--data", str(fer_csv), "--n", "8", "--steps", "1"]) == 2
    assert capsys.readouterr().err == ("error: out of memory in the sanity checks (DefaultCPUAllocator: can't allocate memory: "
                                       "you tried to allocate 3211264000 bytes. Error code 12): lower the model's size "
                                       "(--set in_size=..., filters)\n")


def test_sanity_overfits_faces_of_every_class_of_a_folder(tmp_path, monkeypatch):
    """A folder's images are read class by class, and the overfit check took the first --n: --n 100 of a folder of
    thousands a class were all one class, learnt in a step, and the check passed whatever the model (PASS, accuracy 1.0)."""
    import numpy as np
    from PIL import Image

    import ferkit.sanity as sanity
    from ferkit.cli import main

    for cls in ("angry", "happy", "sad"):
        (tmp_path / "faces" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).save(tmp_path / "faces" / cls / f"{i}.png")
    seen = []
    monkeypatch.setattr(sanity, "overfit", lambda spec, x, y, **kw: seen.append(y) or {"train_acc": 1.0, "loss": 0.0, "steps": 1})
    assert main(["sanity", "--model", "tiny", "--data", str(tmp_path / "faces"), "--n", "6", "--steps", "1"]) == 0
    assert len(seen[0]) == 6 and len(set(seen[0].tolist())) > 1  # not the first class's 6


def test_sanity_given_a_run_folder_or_a_checkpoint_says_what_model_takes(tiny_run, tmp_path, capsys):
    """sanity --model RUN_DIR (or its best.pt, or any folder) said only "unknown model 'runs/x'; choose one of ...":
    not what it was given, nor that sanity checks an untrained model."""
    from ferkit.cli import main

    takes = "sanity checks an untrained model, built from a preset name (shallow, "
    (tmp_path / "m.onnx").write_bytes(b"")
    for model, what in ((tiny_run, "a run folder"), (tiny_run / "best.pt", "a checkpoint"), (tmp_path / "m.onnx", "an ONNX graph"),
                        (tmp_path, "a folder")):
        assert main(["sanity", "--model", str(model), "--steps", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --model {model}: is {what}; {takes}") and "or a JSON/YAML spec file" in err
        assert ("ferkit evaluate" in err) == (what != "a folder")  # a trained model: where it is scored
    assert main(["sanity", "--model", "nosuch", "--steps", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nosuch'; choose one of shallow")  # (as it was)


def test_sanity_given_image_data_as_model_says_to_give_it_with_data(tmp_path, capsys):
    """sanity --model FACES (a folder of class folders of images: the data, given to the wrong flag) said only that it
    is a folder, not that --data takes it."""
    from ferkit.cli import main

    (tmp_path / "faces" / "happy").mkdir(parents=True)
    (tmp_path / "faces" / "happy" / "1.png").write_bytes(b"")
    assert main(["sanity", "--model", str(tmp_path / "faces"), "--steps", "1"]) == 2
    assert capsys.readouterr().err.endswith(f"or a JSON/YAML spec file; it holds images in class folders, as image data "
                                            f"do: give it with --data {tmp_path / 'faces'}\n")


def test_sanity_given_ids_beyond_fer2013s_advises_naming_the_classes_not_labels(tmp_path, capsys):
    """An image list of integer labels beyond FER2013's 0..6 advised "... or pick the label set its ids belong to
    (--labels)", training's way: sanity has no --labels (it checks on the data's own classes), and naming them works."""
    from PIL import Image

    from ferkit.cli import main

    rows = []
    for i in range(8):
        Image.new("L", (48, 48), 30 * i).save(tmp_path / f"{i}.png")
        rows.append(f"{tmp_path / f'{i}.png'},{9 if i == 0 else i % 3}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    assert main(["sanity", "--model", "tiny", "--data", str(tmp_path / "list.csv"), "--n", "4", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "label 9 is not an id of FER2013" in err and "--labels" not in err, err
    assert err.endswith("; name the data's classes (--label-names, or a labels.txt beside the data, one name a line)\n")
