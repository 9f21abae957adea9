import json

import pytest

from conftest import tiny_spec, write_fer_csv
from ferkit.cli import main


def test_models_lists_presets(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "shallow" in out and "deep-hog" in out and "MACs" in out


def test_train_then_evaluate_on_private_test_only(tmp_path, capsys):
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=42)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out = tmp_path / "run"
    assert main(["train", "--model", str(spec), "--data", str(csv), "--epochs", "2", "--batch-size", "21",
                 "--out", str(out), "--quiet", "--set", "fcs.0.units=24"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["spec"]["fcs"][0]["units"] == 24
    private = write_fer_csv(tmp_path / "private.csv", usages=("PrivateTest",), n=14)
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data", str(private)]) == 0
    text = capsys.readouterr().out
    assert "[test]" in text and "confusion matrix" in text and "neutral" in text
    m = json.loads((out / "metrics-test.json").read_text())
    assert m["n"] == 14 and len(m["confusion_matrix"]) == 7


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "resnet"], "unknown model 'resnet'"),
    (["train", "--lr", "-1", "--model", "shallow"], "--lr=-1.0: must be > 0"),
    (["evaluate", "missing.pt"], "missing.pt: no such checkpoint"),
    (["train", "--resume", "nowhere"], "no config.json there"),
    (["train", "--data", "nowhere.csv", "--model", "shallow"], "nowhere.csv: no such file"),
])
def test_user_errors_are_one_line_no_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_row_from_cli_names_line_and_skip_flag(tmp_path, capsys):
    p = write_fer_csv(tmp_path / "bad.csv", usages=("Training",), n=7)
    p.write_text(p.read_text() + "3,1 2 3,Training\n")
    assert main(["sanity", "--data", str(p)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, line 9: field 'pixels' has 3 values; expected 2304" in err and "--skip-bad-rows" in err
