"""tools/lent_gpu.py: FER2013 goes to a lent GPU in two halves and comes back row for row."""

import importlib.util
import json
import os
import tarfile
from pathlib import Path

import pytest

from conftest import write_fer_csv
from ferkit.data import load_fer

spec = importlib.util.spec_from_file_location("lent_gpu", Path(__file__).resolve().parents[1] / "tools" / "lent_gpu.py")
lent_gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lent_gpu)


def test_the_two_halves_rebuild_the_csv_row_for_row(tmp_path, monkeypatch):
    csv = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=21)  # noisy faces: differences wrap
    votes = tmp_path / "fer2013new.csv"
    votes.write_bytes(b"Usage,Image name,neutral\nTraining,fer0000000.png,10\n")
    monkeypatch.setattr(lent_gpu, "HALF", 25)  # part a: 21 Training rows and 4 PublicTest ones
    parts = lent_gpu.pack(str(csv), str(votes), tmp_path / "packed")

    rebuilt = lent_gpu.unpack(parts, tmp_path / "device")
    before, after = load_fer(csv, cache=False), load_fer(rebuilt, cache=False)
    assert (after.images == before.images).all() and (after.labels == before.labels).all()
    assert (after.splits == before.splits).all()
    assert (tmp_path / "device" / "fer2013new.csv").read_bytes() == votes.read_bytes()

    monkeypatch.setattr(lent_gpu, "PUBLIC_TEST_ROWS", 5)  # calibration: part a alone, its last rows validate
    calib = load_fer(lent_gpu.unpack(parts[:1], tmp_path / "calib", calibration=True), cache=False)
    assert calib.counts() == {"train": 20, "val": 5, "test": 0}
    assert (calib.images == before.images[:25]).all()


def write_votes(path: Path, fer) -> Path:
    """A FER+ vote file row for row with fer's rows: 8 votes on each face's own emotion, 2 on neutral."""
    from ferkit.ferplus import COLUMNS

    column = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness", 5: "surprise", 6: "neutral"}
    lines = [f"Usage,Image name,{','.join(COLUMNS)}"]
    for i, (y, s) in enumerate(zip(fer.labels, fer.splits)):
        votes = {c: 0 for c in COLUMNS}
        votes[column[int(y)]] += 8
        votes["neutral"] += 2
        lines.append(f"{('Training', 'PublicTest')[s]},fer{i:07d}.png,{','.join(str(votes[c]) for c in COLUMNS)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_calibrate_then_train_on_a_cpu_bring_back_checkpoints_and_runs(tmp_path, monkeypatch):
    """The two device calls end to end on tiny data and a tiny model (one FER+ job: calibration swaps its
    labels for FER2013's, training reads the votes unpacked beside the CSV): the length comes from the
    calibrated epoch, and $OUT gets a checkpoint that loads safely and each run's files."""
    from ferkit.checkpoint import read_checkpoint

    csv = write_fer_csv(tmp_path / "fer2013.csv", usages=("Training", "PublicTest"), n=21)
    votes = write_votes(tmp_path / "fer2013new.csv", load_fer(csv, cache=False))
    for name, value in dict(PACKED=tmp_path / "packed", WORK=tmp_path / "work", HALF=21, PUBLIC_TEST_ROWS=7,
                            TRAINING_ROWS=28, OVERHEAD_S=0, MIN_EPOCHS=2, MAX_EPOCHS=3).items():
        monkeypatch.setattr(lent_gpu, name, value)
    name = "ferplus-wide-s11"
    monkeypatch.setattr(lent_gpu, "JOBS", {name: lent_gpu.JOBS[name]})
    site = tmp_path / "site"  # a PYTHONPATH already set, as carried wheels on the device have
    monkeypatch.setenv("PYTHONPATH", str(site))  # (monkeypatch puts back what main changes)
    monkeypatch.setenv("FERKIT_CACHE", "")
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    lent_gpu.pack(str(csv), str(votes), lent_gpu.PACKED)
    extra = ["--extra", "--model", "tiny", "--batch-size", "16"]

    lent_gpu.main(["calibrate", *extra])
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(lent_gpu.ROOT / "src"), str(site)]  # the jobs' path
    calib = tmp_path / "work" / "calib-runs" / name
    assert json.loads((calib / "config.json").read_text())["labels"] == "fer2013"
    epoch_s = json.loads((tmp_path / "work" / "epoch.json").read_text())["epoch_s"]
    assert epoch_s == pytest.approx(lent_gpu.history(calib)[1]["seconds"] * 28 / 14)  # scaled to all of Training

    with pytest.raises(SystemExit, match="not worth a run"):  # under MIN_EPOCHS fit
        lent_gpu.main(["train", "--budget", "0", *extra])
    (tmp_path / "work" / "runs" / name).mkdir(parents=True)
    (tmp_path / "work" / "runs" / name / "stale.txt").write_text("a former try on this warm machine")
    lent_gpu.main(["train", "--budget", "600", *extra])  # 600 s fit more than MAX_EPOCHS: 3

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [f"{name}.pt", "runs.tar.gz"]
    ckpt = read_checkpoint(out / f"{name}.pt")
    assert ckpt["config"]["labels"] == "ferplus" and ckpt["config"]["epochs"] == 3
    with tarfile.open(out / "runs.tar.gz") as tar:
        assert sorted(tar.getnames()) == [f"{name}/{f}" for f in ("config.json", "history.csv", "history.json", "train.log")]
        assert len(json.load(tar.extractfile(f"{name}/history.json"))) == 3
    assert not (tmp_path / "work" / "runs" / name / "stale.txt").exists()
