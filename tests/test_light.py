"""The light install's promise: predicting (library, CLI, serve) never imports torch, the rest of
the training extra or OpenCV, and a command that needs an extra says so in one line.

Each check runs in a fresh interpreter: this test process has long since imported torch."""

import json
import subprocess
import sys

import pytest

from ferkit.cli import COMMANDS, main
from ferkit.errors import OPENCV_MODULES, TRAIN_MODULES

# tqdm aside: `ferkit predict` draws its progress bar with it where it is installed (light, 0.02 s);
# OpenCV (the [opencv] extra: videos, --detector haar) is not in the light install either
HEAVY = tuple(m for m in TRAIN_MODULES if m != "tqdm") + OPENCV_MODULES


def imports_nothing_heavy(code: str, tmp_path):
    """Run `code` in a new Python, then fail if it imported any module of the training extra."""
    check = f"\nimport sys\nheavy = [m for m in {HEAVY!r} if m in sys.modules]\nassert not heavy, f'imported {{heavy}}'\n"
    r = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_predictor_imports_no_torch(tmp_path):
    r = imports_nothing_heavy("from ferkit.predict import DEMO_PHOTO, Predictor\n"
                              "print(Predictor().predict(DEMO_PHOTO)[0]['label'])", tmp_path)
    assert r.stdout.strip() == "happy"


def test_ferkit_predict_json_imports_no_torch(tmp_path):
    imports_nothing_heavy("from ferkit.cli import main\nfrom ferkit.predict import DEMO_PHOTO\n"
                          "assert main(['predict', str(DEMO_PHOTO), '--json', 'out.json', '--csv', 'out.csv']) == 0", tmp_path)
    (res,) = json.loads((tmp_path / "out.json").read_text())
    assert res["faces"][0]["label"] == "happy"


def test_serve_app_imports_no_torch(tmp_path):
    imports_nothing_heavy("from ferkit.serve import create_app\ncreate_app()", tmp_path)


def test_demo_and_python_m_ferkit_import_no_torch(tmp_path):
    imports_nothing_heavy("from ferkit.cli import main\nassert main(['demo', '--out', 'demo.png']) == 0\n"
                          "import contextlib, runpy, sys\nsys.argv = ['ferkit', '--version']\n"
                          "with contextlib.suppress(SystemExit):\n    runpy.run_module('ferkit', run_name='__main__')", tmp_path)
    assert (tmp_path / "demo.png").stat().st_size > 0


@pytest.mark.parametrize("missing", ["torch", "sklearn.metrics"])
def test_a_command_without_the_training_extra_says_which_to_install(missing, monkeypatch, capsys):
    def run(args):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    help, add_arguments, _ = COMMANDS["plot"]
    monkeypatch.setitem(COMMANDS, "plot", (help, add_arguments, run))
    assert main(["plot", "runs/x", "--out", "figs"]) == 2
    err = capsys.readouterr().err
    top = missing.split(".")[0]
    assert err == f"error: ferkit plot needs the training extra ({top} is not installed): pip install 'ferkit[train]'\n"


def test_another_missing_module_is_a_bug_not_an_extra(monkeypatch):
    def run(args):
        raise ModuleNotFoundError("No module named 'nonesuch'", name="nonesuch")

    help, add_arguments, _ = COMMANDS["plot"]
    monkeypatch.setitem(COMMANDS, "plot", (help, add_arguments, run))
    with pytest.raises(ModuleNotFoundError, match="nonesuch"):
        main(["plot", "runs/x", "--out", "figs"])


def test_ferkit_models_lists_the_bundled_models_without_torch(tmp_path):
    # a light install: torch cannot be imported at all, as where it is not installed
    r = imports_nothing_heavy(
        "import sys\nclass NoTorch:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\nfrom ferkit.cli import main\nassert main(['models']) == 0\n", tmp_path)
    from ferkit.bundled import DEFAULT, MODELS

    lines = r.stdout.splitlines()
    assert lines[0] == "listing the presets needs the training extra (torch is not installed): pip install 'ferkit[train]'"
    for name, m in MODELS.items():
        (row,) = [line for line in lines if line.startswith(f"{name} ")]
        assert f"{m.macs:,}" in row and f"{m.accuracy['int8']:.2f}%" in row and ", ".join(m.emotions) in row
        assert row.endswith("(default)") == (name == DEFAULT)


def _without(module: str) -> str:
    """Code that makes `module` impossible to import in the new interpreter, as where it is not installed."""
    return ("import sys\nclass Missing:\n    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] == {module!r}:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Missing())\n")


def test_a_torchrun_environment_on_the_light_install_is_no_traceback(tmp_path, monkeypatch):
    """(RANK and WORLD_SIZE set, as torchrun or a cluster sets them: the light install died importing
    distributed.py, which needs torch; there is no job to join without torch, so the command just runs)"""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = imports_nothing_heavy(_without("torch") + "from ferkit.cli import main\nfrom ferkit.predict import DEMO_PHOTO\n"
                              "assert main(['predict', str(DEMO_PHOTO)]) == 0\n", tmp_path)
    assert "1 face" in r.stdout and "1 file(s) processed, 0 failed" in r.stdout


def test_without_opencv_photos_work_and_videos_and_haar_name_the_extra(tmp_path):
    """The light install has no OpenCV: photos (detection, alignment, crops, the annotated copies) run
    on Pillow and numpy; a video and --detector haar each say in one line to install [opencv]."""
    r = imports_nothing_heavy(
        _without("cv2") + "import shutil\nfrom ferkit.cli import main\nfrom ferkit.predict import DEMO_PHOTO\n"
        "shutil.copy(DEMO_PHOTO, 'a.jpg')\nopen('clip.mp4', 'wb').write(bytes(64))\n"
        "assert main(['predict', 'a.jpg', 'clip.mp4', '--json', 'out.json', '--annotate', 'ann']) == 0\n"
        "assert main(['predict', 'a.jpg', '--crops']) == 0\n"
        "assert main(['predict', 'a.jpg', '--detector', 'haar']) == 2\n"
        "assert main(['demo', '--out', 'demo.jpg']) == 0\n", tmp_path)
    extra = "needs the OpenCV extra (cv2 is not installed): pip install 'ferkit[opencv]'"
    assert r.stderr.splitlines() == [f"error: clip.mp4: reading videos {extra}",
                                     f"error: the Haar face detector (--detector haar) {extra}"]
    photo, video = json.loads((tmp_path / "out.json").read_text())
    assert [f["label"] for f in photo["faces"]] == ["happy"] and video["error"].endswith(extra)
    from PIL import Image

    for name in ("ann/a.jpg", "demo.jpg"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "JPEG" and im.size == (512, 512)
