import base64
import json
import re
import shutil

from PIL import Image

from conftest import synthetic_faces
from ferkit.checkpoint import read_runs
from ferkit.cli import main
from ferkit.report import build_report, find_search_csv, read_ranked_csv

PNG = "data:image/png;base64,"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_report_one_run(tiny_run, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(tiny_run.parent / "fer.csv"), "--faces", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    imgs = _images(page)
    # history, confusion matrices, filters, activation maps, DeepDream
    assert len(imgs) == 5 and all(b.startswith(b"\x89PNG") for b in imgs)
    assert "class='num per-class'" in page and "<th>disgust</th>" in page and "<th>overall</th>" in page
    assert "evaluated now" in page and "on 84 faces" in page and "parameters" in page and "conv2: 16 filters 3x3" in page
    assert not re.search(r"(src|href)=['\"](https?:|//|/)", page)  # self-contained: no external assets
    assert out.stat().st_size < 2_000_000


def test_report_with_faces_0_leaves_deepdream_out(tiny_run, tmp_path, capsys):
    """(DeepDream, seconds a face, was most of a report of many runs and could not be left out)"""
    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(tiny_run.parent / "fer.csv"), "--faces", "0"]) == 0
    page = out.read_text()
    assert len(_images(page)) == 4 and "DeepDream from" not in page  # history, confusion matrices, filters, activation maps
    assert main(["report", str(tiny_run), "--out", str(out), "--faces", "-1"]) == 2
    assert "--faces -1: must be 0..32 (0: no DeepDream)" in capsys.readouterr().err
    assert main(["report", str(tiny_run), "--out", str(out), "--faces", "100000"]) == 2  # a DeepDream of every face (hours)
    assert "--faces 100000: must be 0..32" in capsys.readouterr().err


def test_report_without_data(tiny_run, tmp_path):
    res = build_report([tiny_run], tmp_path / "r.html", data=False)
    page = res["path"].read_text()
    assert "No data to evaluate on" in page and "astronaut" in page
    assert len(_images(page)) == 4  # history, filters, activations, dream: no confusion matrix
    assert "--no-data" in page


def test_report_of_a_history_without_train_acc_or_seconds_leaves_those_facts_out(tiny_run, tmp_path):
    """A history with no train_acc or seconds (another tool's, or seconds an older ferkit wrote negative) gave the
    page 'training nan' and 'nan min (3 x nan s, ...)'; plot's table shows '-' for them."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    history = json.loads((run / "history.json").read_text())
    for row in history:
        del row["train_acc"]
        row["seconds"] = -1.0
    (run / "history.json").write_text(json.dumps(history))
    (run / "history.csv").unlink()
    page = build_report([run], tmp_path / "r.html", data=False)["path"].read_text()
    assert "training nan" not in page and "nan min" not in page and "training time" not in page
    assert f"validation {history[-1]['val_acc']:.4f}</td>" in page


def test_report_run_without_checkpoint(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.json", "history.json", "iterations.csv"):
        shutil.copy(tiny_run / f, run / f)
    page = build_report([run], tmp_path / "r.html", data=False)["path"].read_text()
    assert "no best.pt or last.pt" in page and len(_images(page)) == 1 and "conv1: 8 filters 3x3" in page


def test_report_of_a_run_whose_best_pt_is_a_loop_of_links_says_so_not_last_pt(tiny_run, tmp_path):
    """(its last.pt was shown as the run's best checkpoint, silently)"""
    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.json", "history.json", "iterations.csv", "last.pt"):
        shutil.copy(tiny_run / f, run / f)
    (run / "best.pt").symlink_to("best.pt")
    page = build_report([run], tmp_path / "r.html", data=False)["path"].read_text()
    assert "best.pt: a loop of symbolic links (it leads back to itself); fix the link, or remove it to use the run" in page
    assert "only the history and configuration are shown" in page and "last.pt (epoch" not in page


def test_report_of_a_run_whose_best_pt_is_a_folder_names_it_once(tiny_run, tmp_path):
    """(the note read "RUN/best.pt/best.pt: no such checkpoint": the run's best.pt was taken for a run folder again)"""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "best.pt").unlink()
    (run / "best.pt").mkdir()
    page = build_report([run], tmp_path / "r.html", data=False)["path"].read_text()
    assert f"{run / 'best.pt'}: a folder; give a .pt file" in page and "best.pt/best.pt" not in page
    assert "only the history and configuration are shown" in page


def test_report_gives_what_best_pt_holds_and_the_history_best_whose_weights_are_gone(tiny_run, tmp_path):
    """After a resume that found best.pt deleted (and wrote it from last.pt's epoch), the page's "best validation
    accuracy" was the history's best epoch, whose weights were gone, while best.pt held another."""
    import json

    from ferkit.checkpoint import read_checkpoint, save_checkpoint, weights_acc

    run = shutil.copytree(tiny_run, tmp_path / "run")
    best = read_checkpoint(run / "best.pt")
    best["best_acc"] = 0.5  # (the tiny run scores 1.0 in every epoch: best.pt's is made lower than another's)
    save_checkpoint(best, run / "best.pt")
    history = json.loads((run / "history.json").read_text())
    next(r for r in history if r["epoch"] == best["epoch"])["val_acc"] = 0.5
    (run / "history.json").write_text(json.dumps(history))
    gone = max(history, key=lambda r: r["val_acc"])
    page = build_report([run], tmp_path / "r.html", data=False)["path"].read_text()
    assert re.search(rf"{weights_acc(best):.4f} \(epoch {best['epoch']}, best\.pt(&#x27;|')s; epoch {gone['epoch']} scored 1\.0000; "
                     r"its best\.pt was deleted or damaged\)", page)


def test_report_skips_bad_rows_as_its_message_says(tiny_run, tmp_path, capsys):
    """A bad row said 'pass --skip-bad-rows', which report had not: a run trained with it on data with a bad
    image could not be reported ('unrecognized arguments: --skip-bad-rows')."""
    from conftest import write_fer_csv

    csv = write_fer_csv(tmp_path / "fer.csv", n=21)
    with open(csv, "a") as f:
        f.write("3,1 2 3,PublicTest\n")  # 3 pixels, not 48x48
    out = tmp_path / "r.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(csv), "--faces", "0"]) == 2
    assert "--skip-bad-rows" in capsys.readouterr().err and not out.exists()
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(csv), "--faces", "0", "--skip-bad-rows"]) == 0
    assert f"note: skipped 1 bad rows of {csv}" in capsys.readouterr().out and "evaluated now" in out.read_text()


def test_report_never_writes_over_the_data_it_reads(tiny_run, tmp_path, capsys):
    """--out naming the data (--data's, or the run's own that report reads by default) replaced that FER2013
    file with the HTML page: the data were lost."""
    import json

    csv = tmp_path / "fer.csv"
    shutil.copy(tiny_run.parent / "fer.csv", csv)
    before = csv.read_bytes()
    assert main(["report", str(tiny_run), "--data", str(csv), "--out", str(csv), "--faces", "0"]) == 2
    assert "is the command's own input" in capsys.readouterr().err and csv.read_bytes() == before
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": str(csv)}))
    assert main(["report", str(run), "--out", str(csv), "--faces", "0"]) == 2  # found and read as the work went
    assert "is the command's own input" in capsys.readouterr().err and csv.read_bytes() == before


def test_report_with_no_data_never_writes_over_or_into_a_run_s_own_data(tiny_run, tmp_path, capsys):
    """--no-data read no data, so the check of the data it reads passed: --out naming the run's own FER2013 file
    replaced it with the page, and --out in its own image folder put the page among its faces."""
    import json

    from conftest import write_image_folder

    csv, folder = tmp_path / "fer.csv", write_image_folder(tmp_path / "faces")
    shutil.copy(tiny_run.parent / "fer.csv", csv)
    before, faces = csv.read_bytes(), sorted(folder.rglob("*"))
    for data, out, message in [(csv, csv, "is the command's own input"),
                               (folder, folder / "happy" / "r.html", "lies inside the data folder")]:
        run = tmp_path / f"run-{data.name}"
        shutil.copytree(tiny_run, run)
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "data": str(data)}))
        assert main(["report", str(run), "--no-data", "--out", str(out), "--faces", "0"]) == 2, out
        err = capsys.readouterr().err
        assert f"--out {out}: " in err and message in err, err
    assert csv.read_bytes() == before and sorted(folder.rglob("*")) == faces


def test_report_reuses_evaluate_metrics(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    csv = tiny_run.parent / "fer.csv"
    assert main(["evaluate", str(run), "--data", str(csv), "--split", "val"]) == 0
    page = build_report([run], tmp_path / "r.html", data=str(csv))["path"].read_text()
    assert "from metrics-*.json" in page and "evaluated now" not in page


def test_report_comparison_and_search_table(tiny_run, tmp_path):
    search = tmp_path / "search"
    (search / "trials").mkdir(parents=True)
    trial = search / "trials" / "1"
    shutil.copytree(tiny_run, trial)
    (search / "search.csv").write_text("trial,value,state,lr,act\n0,0.41,COMPLETE,0.001,'-x\n2,,FAIL,0.1,'x\n1,0.52,COMPLETE,0.003,-1\n")
    assert find_search_csv(trial) == search / "search.csv" and find_search_csv(tiny_run) is None
    cols, rows = read_ranked_csv(search / "search.csv")
    assert cols == ["trial", "value", "state", "lr", "act"] and [r["trial"] for r in rows] == ["1", "0", "2"]
    assert [r["act"] for r in rows] == ["-1", "-x", "'x"]  # as the search had them: csv_cell's quote taken off
    res = build_report([tiny_run, trial], tmp_path / "cmp.html", data=str(tiny_run.parent / "fer.csv"), n_faces=2)
    page = res["path"].read_text()
    assert "<h2>Comparison</h2>" in page and "Hyper-parameter search" in page
    assert "best val acc (epoch)" in page and "the median epoch" in page  # the runs' summary, and each run's time
    table = page[page.index("Hyper-parameter search"):]
    assert table.index("<td>0.52</td>") < table.index("<td>0.41</td>") < table.index("<td>FAIL</td>")
    # the per-class table across models: one column per run
    table = page[page.index("class='num per-class'"):]
    assert "<th>run</th><th>1</th>" in table[: table.index("</tr>")]


def test_report_bad_inputs(tiny_run, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(tiny_run), "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r.html")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    # (the folders its --out check made stayed, empty, as they did for export: predict's cleanup, shared now)
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "nd1" / "a" / "b" / "r.html")]) == 2
    assert main(["export", str(tmp_path / "nope.pt"), "--onnx", str(tmp_path / "nd2" / "x" / "m.onnx")]) == 2
    assert main(["export", str(tmp_path / "nope.pt"), "--pt", str(tmp_path / "nd3" / "m.pt")]) == 2
    assert main(["evaluate", str(tmp_path / "nope.pt"), "--json", str(tmp_path / "nd4" / "m.json")]) == 2
    assert "nope.pt" in capsys.readouterr().err and not any(tmp_path.glob("nd*"))
    assert main(["report", str(tiny_run), "--out", str(tmp_path / ("a" * 300) / "r.html")]) == 2  # (not an OSError in the cleanup)
    assert "cannot use it (File name too long)" in capsys.readouterr().err


def test_report_with_demo_faces_evaluates_but_shows_no_data_face(tiny_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(tiny_run.parent / "fer.csv"), "--demo-faces"]) == 0
    page = out.read_text()
    assert "on 84 faces" in page and "astronaut" in page


def test_a_run_that_cannot_be_scored_on_the_data_is_a_note_not_the_end_of_the_report(tiny_run, tmp_path, capsys, monkeypatch):
    """One model of other classes among several (evaluate_split's one-line error for it) must not
    cost the page of the others: that run gets a note, the page is written."""
    import ferkit.metrics
    from ferkit.errors import FerkitError

    def cannot(*a, **k):
        raise FerkitError("its classes are not the data's")

    monkeypatch.setattr(ferkit.metrics, "evaluate_split", cannot)
    out = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--out", str(out), "--data", str(tiny_run.parent / "fer.csv"), "--faces", "1"]) == 0
    assert "run: not evaluated on" in capsys.readouterr().out and "What the network sees" in out.read_text()


def test_report_and_plot_of_a_checkpoint_alone_show_the_run_it_carries(tiny_run, tmp_path, capsys):
    """A run folder that is gone leaves its best.pt (the bundled models): config and history come from it."""
    alone = tmp_path / "kept" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(tiny_run / "last.pt", alone)  # 3 epochs of history
    out = tmp_path / "r.html"
    assert main(["report", str(alone), "--out", str(out), "--faces", "1"]) == 0  # the data: the run's own, from its config
    page = out.read_text()
    assert len(_images(page)) == 5  # history, confusion matrix, filters, activation maps, DeepDream
    assert "Training history" in page and "<th>epochs run</th><td>3</td>" in page and "on 84 faces" in page
    assert str(alone.resolve()) in page and ">model<" in page
    alone_run, folder_run = read_runs([alone, tiny_run])
    assert alone_run.history == folder_run.history and len(alone_run.iterations) == len(folder_run.iterations) > 0
    assert main(["plot", str(alone), "--out", str(tmp_path / "figs")]) == 0  # plot reads runs the same way
    assert (tmp_path / "figs" / "history.png").exists() and "model" in capsys.readouterr().out
    assert main(["report", "ferplus-fast", "--no-data", "--out", str(out), "--faces", "1"]) == 0  # a bundled model by name
    page = out.read_text()
    assert "ferplus-fast.pt (epoch" in page and "Training history" in page and "tiny" in page


def test_a_model_without_conv_layers_is_a_note_in_report_and_one_line_in_visualize(tmp_path, capsys):
    """(filters, activation maps and DeepDream were an IndexError / matplotlib's "rows must be positive")"""
    from conftest import write_fer_csv

    (tmp_path / "mlp.json").write_text('{"convs": [], "fcs": [{"units": 16}]}')
    csv = write_fer_csv(tmp_path / "fer.csv", usages=("Training", "PublicTest"), n=14)
    run = tmp_path / "run"
    assert main(["train", "--model", str(tmp_path / "mlp.json"), "--data", str(csv), "--epochs", "1", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["report", str(run), "--no-data", "--out", str(tmp_path / "r.html")]) == 0
    assert "No conv layers: no filters, activation maps or DeepDream." in (tmp_path / "r.html").read_text()
    capsys.readouterr()
    assert main(["visualize", str(run), "--out", str(tmp_path / "v")]) == 2
    assert "its model has no conv layers, so no activation maps, filters or DeepDream to draw" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_a_note_and_the_other_runs_still_get_their_page(tiny_run, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run, damaged)
    (damaged / "best.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "r.html"
    assert main(["report", str(tiny_run), str(damaged), "--out", str(out), "--no-data", "--faces", "0"]) == 0
    printed = capsys.readouterr().out
    assert "damaged: " in printed  # the run's last.pt reads: it and the resume that writes best.pt again are the way on
    assert f"; or give {damaged / 'last.pt'} (epoch 3's weights), or write best.pt again from it with 'ferkit train --resume {damaged}'" in printed
    page = out.read_text()
    assert "<h2>Comparison</h2>" in page and ">damaged</h2>" in page and "only the history and configuration" in page


def test_a_damaged_config_is_one_line_alone_and_a_note_beside_other_runs(tiny_run, tmp_path, capsys):
    """(a spec of "hello", a conv without filters and a label_names of 5 in config.json were tracebacks)"""
    import json

    cfg = json.loads((tiny_run / "config.json").read_text())
    partial, damaged = shutil.copytree(tiny_run, tmp_path / "partial"), shutil.copytree(tiny_run, tmp_path / "damaged")
    (partial / "config.json").write_text(json.dumps({**cfg, "spec": {"convs": [{}]}}))
    (damaged / "config.json").write_text(json.dumps({**cfg, "label_names": 5}))
    out = tmp_path / "r.html"
    assert main(["report", str(partial), "--out", str(out), "--no-data", "--faces", "0"]) == 0
    assert "conv1: 32 filters 3x3" in out.read_text()  # a field left out is its default, as the model reads it
    assert main(["report", str(damaged), "--out", str(tmp_path / "d.html"), "--no-data", "--faces", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged / 'config.json'}: not the training config `ferkit train` writes (label_names must be a text or null; got 5)")
    assert len(err.splitlines()) == 1 and not (tmp_path / "d.html").exists()
    assert main(["report", str(tiny_run), str(damaged), "--out", str(out), "--no-data", "--faces", "0"]) == 0
    page = out.read_text()  # one damaged run must not cost the other its page
    assert ">run</h2>" in page and ">damaged</h2>" not in page and "(label_names must be a text or null; got 5)" in page and "left out of the report" in page


def test_only_a_ferkit_search_table_is_shown_and_a_damaged_one_is_a_note(tiny_run, tmp_path, capsys):
    """(another tool's search.csv beside a run was shown as its trials; one with a 200 kB field or bytes that
    are not UTF-8 was a _csv.Error or UnicodeDecodeError traceback)"""
    search = tmp_path / "search"
    trial = shutil.copytree(tiny_run, search / "trials" / "1")
    (trial / "search.csv").write_text("name,email,value\nann,ann@example.com,1\n")
    assert find_search_csv(trial) is None
    (search / "search.csv").write_text("trial,value,state,lr\n0,0.41,COMPLETE,0.001\n")
    assert find_search_csv(trial) == search / "search.csv"  # the search's own, past the other tool's
    out = tmp_path / "r.html"
    for row in (b"0,0.41,COMPLETE," + b"x" * 200_000, b"0,\xff\xfe,COMPLETE,0.1"):
        (search / "search.csv").write_bytes(b"trial,value,state,lr\r\n" + row + b"\r\n")
        assert main(["report", str(trial), "--out", str(out), "--no-data", "--faces", "0"]) == 0
        said = capsys.readouterr().out
        assert f"note: {search / 'search.csv'}: not a readable search table (" in said, said
        assert "Hyper-parameter search" not in out.read_text() and "What the network sees" in out.read_text()


def _faces_folder(root, n: int):
    """root/<FER2013 emotion>/*.png: n synthetic faces of each of 3 classes."""
    from ferkit.labels import FER2013

    faces, labels = synthetic_faces(7 * n)
    for i, (face, y) in enumerate(zip(faces, labels)):
        if y < 3:
            (root / FER2013[y]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(face).save(root / FER2013[y] / f"{i}.png")
    return root


def test_report_on_data_without_val_faces_says_what_they_lack_in_their_own_terms_once(tiny_run, tmp_path, capsys):
    """report --data FOLDER noted "FOLDER has no PublicTest rows; no evaluation", FER2013's words, of an image folder
    without val/, of one a run trained with --val-fraction 0 drew no val split from, and (again) of one whose split
    could not be drawn, which _data_for's note had said already."""
    def notes(run, data):
        assert main(["report", str(run), "--data", str(data), "--faces", "0", "--out", str(tmp_path / "r.html")]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]

    own = _faces_folder(tmp_path / "own" / "train", 4).parent  # train/ alone: its own split, no val/
    assert notes(tiny_run, own) == [f"note: run: {own} has no val/ folder; no evaluation"]
    none = tmp_path / "none-drawn"  # a run trained with --val-fraction 0 on a folder without a split
    shutil.copytree(tiny_run, none)
    config = json.loads((none / "config.json").read_text())
    (none / "config.json").write_text(json.dumps({**config, "val_fraction": 0}))
    folder = _faces_folder(tmp_path / "faces", 10)
    assert notes(none, folder) == [f"note: none-drawn: {folder} gives no split of its own (no train/ val/ test/ folders) "
                                   "and the run's training drew none (--val-fraction 0); no evaluation"]
    few = _faces_folder(tmp_path / "few", 2)  # too few to draw the run's val and test split: one note says so
    said = notes(tiny_run, few)
    assert len(said) == 1 and said[0].startswith(f"note: {few}: cannot draw the stratified split") and "not evaluated" in said[0]


def test_a_folder_too_small_to_split_is_read_once(tiny_run, tmp_path, capsys, monkeypatch):
    """(report read such a folder twice: for the run's split, then again, whole, with no split drawn)"""
    import ferkit.data

    read, load_fer = [], ferkit.data.load_fer
    monkeypatch.setattr(ferkit.data, "load_fer", lambda path, *a, **k: read.append(path) or load_fer(path, *a, **k))
    few = _faces_folder(tmp_path / "few", 2)
    assert main(["report", str(tiny_run), "--data", str(few), "--faces", "1", "--out", str(tmp_path / "r.html")]) == 0
    assert read == [str(few)]
    assert f"note: {few}: cannot draw the stratified split" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()  # its faces, all 6 of them training ones, still show what the network sees
    assert "Activation maps of angry -&gt; " in page and "astronaut" not in page
