"""weights/manifest.json, the one home of the bundled models: tied here to the files it names, to
the nets and labels it claims, and to the README table that quotes it, so none can drift."""

import json
import math
from pathlib import Path

import pytest

from ferkit import bundled
from ferkit.errors import FerkitError
from ferkit.files import sha256_of

ROOT = Path(__file__).resolve().parents[1]


def test_every_file_matches_its_sha256_in_the_manifest():
    # a re-export that forgets the manifest fails here
    for m in bundled.MODELS.values():
        for kind in m.files:  # the optional ones too
            assert sha256_of(m.path(kind)) == m.files[kind]["sha256"], f"{m.name}'s {kind} file: update manifest.json"


def test_every_model_file_in_weights_is_in_the_manifest():
    listed = {f["file"] for m in bundled.MODELS.values() for f in m.files.values()}
    shipped = {p.name for p in bundled.WEIGHTS.iterdir() if p.suffix in (".pt", ".onnx")} - {"yunet_s.onnx"}  # the face detector
    assert shipped == listed


def test_every_entry_is_a_real_preset_label_set_and_net():
    from ferkit.checkpoint import read_checkpoint
    from ferkit.config import ModelSpec
    from ferkit.labels import labels_of
    from ferkit.model import PRESETS, count_macs, create_model

    for m in bundled.MODELS.values():
        assert m.preset in PRESETS, m.name
        assert m.net.split(",")[0] == m.preset, m.name  # the words name the same net
        ck = read_checkpoint(m.path("checkpoint"))
        assert labels_of(ck) == m.emotions, m.name
        assert count_macs(create_model(ModelSpec.from_dict(ck["spec"]))) == m.macs, m.name
        assert math.isfinite(m.tta_gain) and abs(m.tta_gain) < 5, m.name  # points, not a fraction or a typo
        assert all(0 < a < 100 for a in m.accuracy.values()), m.name  # in %
        assert any(c.startswith("ferkit train") for c in m.made_by) and any(f"--pt src/ferkit/weights/{m.files['checkpoint']['file']}" in c
                                                                        for c in m.made_by), m.name


@pytest.mark.parametrize("doc", ["README.md", "docs/models.md"])
def test_the_docs_tables_quote_the_manifest(doc):
    text = (ROOT / doc).read_text()
    section = text[text.index("## The bundled models"):]
    table = next(b for b in section.split("\n\n") if b.startswith("| name |"))  # the section's first table
    rows = {line.split("|")[1].strip(" *`").split("`")[0]: line for line in table.splitlines()[2:]}
    assert set(rows) == set(bundled.MODELS)
    for name, m in bundled.MODELS.items():
        assert f"{m.accuracy['float16']:.2f}% / {m.accuracy['int8']:.2f}%" in rows[name], f"{doc}: {name}'s accuracy"
        assert ("(default)" in rows[name]) == (name == bundled.DEFAULT), f"{doc}: the default"


def test_predict_names_come_from_the_manifest():
    import ferkit.predict as fp

    assert list(fp.BUNDLED) == list(bundled.MODELS) and fp.DEFAULT_MODEL == bundled.DEFAULT
    for name, m in bundled.MODELS.items():
        assert (fp.BUNDLED[name], fp.int8_file(name)) == (m.path("checkpoint"), m.path("int8"))
        assert fp.TTA_GAIN[name] == m.tta_gain


def _broken(doc: dict, path: str, value):
    """doc with the field at dotted `path` set to value (None: removed)."""
    *parents, last = path.split(".")
    d = doc
    for p in parents:
        d = d[int(p)] if isinstance(d, list) else d[p]
    if value is None:
        del d[last]
    else:
        d[last] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    ("models.1.tta_gain", None, "models[1].tta_gain is missing"),
    ("models.1.tta_gain", "0.3", "models[1].tta_gain must be int or float; got '0.3'"),
    ("models.0.macs", True, "models[0].macs must be int; got True"),
    ("models.2.labels", "sfew", "models[2].labels must be one of fer2013, ferplus, rafdb, affectnet; got 'sfew'"),
    ("models.0.accuracy.int8", None, "models[0].accuracy.int8 is missing"),
    ("models.3.files.int8", None, "models[3].files.int8 is missing"),
    ("models.3.files.checkpoint.sha256", "abc", "models[3].files.checkpoint.sha256 must be 64 lowercase hex digits"),
    ("models.0.files.checkpoint.file", "../x.pt", "models[0].files.checkpoint.file must be a file name in weights/"),
    ("models.0.made_by", [], "models[0].made_by must be a list of commands"),
    ("models.1.name", "fer2013", "models[1].name 'fer2013' is listed twice"),
    ("default", "ferplus-huge", "manifest.default must name a model"),
])
def test_a_malformed_entry_names_its_field(path, value, message, tmp_path):
    doc = _broken(json.loads(bundled.MANIFEST.read_text()), path, value)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(FerkitError, match="manifest.json: " + message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        bundled.load(tmp_path / "manifest.json")


def test_a_missing_or_broken_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(FerkitError, match="is missing: this install has no bundled-model manifest"):
        bundled.load(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(FerkitError, match="is not valid JSON"):
        bundled.load(tmp_path / "manifest.json")
