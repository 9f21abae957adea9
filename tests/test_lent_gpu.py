"""tools/lent_gpu.py: FER2013 goes to a lent GPU in two halves and comes back row for row."""

import importlib.util
from pathlib import Path

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
