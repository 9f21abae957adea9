import json
import re

import pytest

from ferkit.config import ConvSpec, ModelSpec, TrainConfig, override_spec
from ferkit.errors import ConfigError


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as e:
        TrainConfig(batch_size=0, lr=-1, optimizer="rmsprop", label_smoothing=2)
    msg = str(e.value)
    for text in ("--batch-size must be >= 2 (training skips one-face batches: batch norm needs two); got 0", "--lr must be > 0 and at most 100; got -1.0",
                 "--optimizer must be one of adam, adamw, sgd; got 'rmsprop'", "--label-smoothing must be in [0, 1); got 2.0"):
        assert text in msg


def test_spec_problems_name_the_layer_and_field():
    with pytest.raises(ConfigError) as e:
        ModelSpec(convs=[{"filters": 0}, {"dropout": 1.5, "pool": 1}], fcs=[{"units": 0}])
    msg = str(e.value)
    for text in ("convs[0].filters must be >= 1; got 0", "convs[1].dropout must be in [0, 1); got 1.5",
                 "convs[1].pool must be 0 (no pool) or a size >= 2; got 1", "fcs[0].units must be >= 1; got 0"):
        assert text in msg


def test_spec_that_shrinks_to_nothing():
    with pytest.raises(ConfigError, match="shrinks to nothing"):
        ModelSpec(convs=[ConvSpec(8, 3, pool=2)] * 7)


def test_unknown_field_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown field.*filterz.*known fields"):
        ModelSpec.from_dict({"convs": [{"filterz": 3}]})


def test_a_spec_given_as_a_config_or_a_config_as_a_spec_says_which_flag_takes_it(tmp_path):
    """A model spec given to --config (or a search's best.yaml, a run's config.json given to --model) was
    'unknown field(s)' and the other kind's 43 or 8 field names, never that the file went to the wrong flag."""
    from ferkit.model import resolve_spec
    from ferkit.train import resolve_config

    (tmp_path / "spec.yaml").write_text("convs:\n- filters: 8\nfcs: []\n")
    with pytest.raises(ConfigError, match=r"spec.yaml: unknown field\(s\) convs, fcs; those are a model spec's fields: "
                                          r"give the file with --model \(a --config file holds"):
        resolve_config(base={"convs": [{"filters": 8}], "fcs": []}, source=tmp_path / "spec.yaml")
    (tmp_path / "config.json").write_text(json.dumps({**TrainConfig().to_dict(), "spec": {}}))
    with pytest.raises(ConfigError, match=r"config.json: model spec: unknown field\(s\) backbone_lr, batch_size, crop_pad, "
                                          r"cutmix, data and \d+ more; those are a training config's fields: give the "
                                          r"file with --config \(a model spec holds the net's layers: backbone, channels"):
        resolve_spec(tmp_path / "config.json")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) conv, epochs \(did you mean convs for conv\?\); known fields are backbone"):  # a mix: a typo
        ModelSpec.from_dict({"conv": [], "epochs": 3})


def test_from_file_json_and_yaml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"model": "deep", "epochs": 3}))
    (tmp_path / "c.yaml").write_text("model: deep\nepochs: 3\n")
    assert TrainConfig.from_file(tmp_path / "c.json") == TrainConfig.from_file(tmp_path / "c.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        TrainConfig.from_file(tmp_path / "bad.yaml")


def test_from_file_of_no_path_is_a_config_error_naming_path(tmp_path):
    """(TrainConfig.from_file(None) or of an open file was Path's 'expected str, bytes or os.PathLike object'
    TypeError, a bytes path 'argument should be a str object', a NUL in the name stat's bare 'embedded null byte')"""
    (tmp_path / "c.yaml").write_text("epochs: 3\n")
    with open(tmp_path / "c.yaml") as f:
        for value, got in ((None, "got None$"), (f, r"got <_io.TextIOWrapper .*; give its name \(f.name\)$")):
            with pytest.raises(ConfigError, match=r"^path must be the path \(str or Path\) of a JSON or YAML file; " + got):
                TrainConfig.from_file(value)
    assert TrainConfig.from_file(str(tmp_path / "c.yaml").encode()).epochs == 3
    with pytest.raises(ConfigError, match=r"^'c\\x00.yaml': not a path \(embedded null byte\); check the path$"):
        TrainConfig.from_file("c\0.yaml")


def test_spec_round_trip_and_overrides():
    spec = ModelSpec(convs=[ConvSpec(8)], fcs=[{"units": 16}])
    d = override_spec(spec.to_dict(), {"fcs.0.units": 64, "convs.0.dropout": 0.3})
    again = ModelSpec.from_dict(d)
    assert again.fcs[0].units == 64 and again.convs[0].dropout == 0.3
    with pytest.raises(ConfigError, match="--set fcs.3.units"):
        override_spec(spec.to_dict(), {"fcs.3.units": 1})


def test_overrides_that_are_no_mapping_are_one_error_naming_them():
    """(a library caller's list of pairs or a string of overrides was AttributeError: no attribute 'items')"""
    from ferkit.errors import FerkitError
    from ferkit.model import resolve_spec

    for overrides in ([("fcs.0.units", 64)], "fcs.0.units=64"):
        with pytest.raises(FerkitError, match=re.escape("overrides must be a mapping of dotted model spec fields to values")):
            resolve_spec("tiny", overrides)


def test_set_applies_left_to_right_into_sections_earlier_ones_made():
    """(--set 'hog={}' --set hog.orientations=12 was refused: hog.orientations was no key of the {} just set;
    a path set twice kept its first place, so --set hog.orientations=5 --set 'hog={}' --set hog.orientations=7
    set 7, then the section whole, and trained 9 orientations)"""
    from ferkit.cli import _parse_set

    spec = ModelSpec(convs=[ConvSpec(8)], fcs=[{"units": 16}]).to_dict()
    sets = ["hog={}", "hog.orientations=12", "fcs=[{}]", "fcs.0.dropout=0.25", "convs.0={filters: 4}", "convs.0.pool=2"]
    got = ModelSpec.from_dict(override_spec(spec, _parse_set(sets)))
    assert (got.hog.orientations, got.hog.pixels_per_cell, got.fcs[0].dropout, got.fcs[0].units) == (12, 8, 0.25, 512)
    assert (got.convs[0].filters, got.convs[0].pool) == (4, 2)
    hybrid = {**spec, "hog": {"orientations": 4}}
    assert override_spec(hybrid, _parse_set(["hog.orientations=5", "hog={}", "hog.orientations=7"]))["hog"] == {"orientations": 7}
    with pytest.raises(ConfigError, match="^--set hog.orientatons: no such model spec field"):  # a typo is still one
        override_spec(spec, _parse_set(["hog={}", "hog.orientatons=12"]))


@pytest.mark.parametrize("key,message", [
    ("convs.-1.filters", "--set convs.-1.filters: layers count from the first, not from the end; convs has 2 layer(s), "
                         "numbered from 0: convs.0 to convs.1 (the last)"),
    ("fcs.-1", "--set fcs.-1: layers count from the first, not from the end; fcs has 1 layer(s), numbered from 0: fcs.0"),
    ("convs.2.filters", "--set convs.2.filters: no layer 2; convs has 2 layer(s), numbered from 0: convs.0 to convs.1 (the "
                        "last); to add or remove layers, give the list whole: --set 'convs=[...]'"),
    ("fcs.last.units", "--set fcs.last.units: 'last' is no layer number; fcs has 1 layer(s), numbered from 0: fcs.0; to add "
                       "or remove layers, give the list whole: --set 'fcs=[...]'"),
])
def test_a_layer_number_out_of_the_list_is_told_its_length(key, message):
    """(convs.-1 and convs.5 were 'no such model spec field', with a hint of paths such as convs.0.filters that
    did not say why; -1 is refused, not taken as Python's last: a second name for a layer)"""
    spec = ModelSpec(convs=[ConvSpec(8), ConvSpec(8)], fcs=[{"units": 16}]).to_dict()
    with pytest.raises(ConfigError) as e:
        override_spec(spec, {key: 4})
    assert str(e.value) == message
    with pytest.raises(ConfigError, match=r"^--set convs.0.filters: convs has no layers; to add some, give the list whole: "
                                          r"--set 'convs=\[{}\]'$"):
        override_spec({**spec, "convs": []}, {"convs.0.filters": 4})
    with pytest.raises(ConfigError, match=r"^--set convs.0.filters: convs has no layers: backbone resnet18's layers are fixed$"):
        override_spec(ModelSpec(backbone="resnet18").to_dict(), {"convs.0.filters": 4})


def test_a_path_into_what_is_no_list_or_section_says_so_and_every_bad_path_is_told():
    """(--set convs=5 --set convs.0.filters=1 was 'no such model spec field ... (the spec has 0 conv ... layers)';
    of several bad paths only the first was told, the next once that one was fixed)"""
    from ferkit.cli import _parse_set

    spec = ModelSpec(convs=[ConvSpec(8), ConvSpec(8)], fcs=[{"units": 16}]).to_dict()
    with pytest.raises(ConfigError) as e:
        override_spec(spec, _parse_set(["convs=5", "convs.0.filters=1"]))
    assert str(e.value) == "--set convs.0.filters: convs is not a list of layers (got 5); give the layers as a list: --set 'convs=[...]'"
    with pytest.raises(ConfigError) as e:
        override_spec(spec, _parse_set(["fcs=[5]", "fcs.0.units=3", "hog=8", "hog.orientations=3", "convs.7.filters=2", "convs.0.filterz=2"]))
    assert str(e.value).split("\n") == [
        "--set fcs.0.units: fcs.0 is not a section of fields (got 5); give its fields as a mapping: --set 'fcs.0={...}'",
        "--set hog.orientations: hog is not a section of fields (got 8); give its fields as a mapping: --set 'hog={...}'",
        "--set convs.7.filters: no layer 7; convs has 2 layer(s), numbered from 0: convs.0 to convs.1 (the last); to add or "
        "remove layers, give the list whole: --set 'convs=[...]'",
        "--set convs.0.filterz: no such model spec field; use a dotted path such as convs.0.filters or fcs.0.units (the "
        "spec has 2 conv and 1 FC layers, and no hog section: --set 'hog={pixels_per_cell: 8}' adds one)"]
    assert override_spec(spec, _parse_set(["convs=[{}]", "convs.0.filters=3"]))["convs"] == [{"filters": 3}]


def test_a_field_of_a_missing_hog_section_is_told_the_form_that_works():
    """(--set hog.pixels_per_cell=12 on a spec without HOG was refused with a hint of paths such as
    hog.pixels_per_cell: the very path refused; the section given whole works)"""
    from ferkit.cli import _parse_set

    spec = ModelSpec(convs=[ConvSpec(8)], fcs=[{"units": 16}]).to_dict()
    with pytest.raises(ConfigError) as e:
        override_spec(spec, _parse_set(["hog.pixels_per_cell=12"]))
    assert "hog.pixels_per_cell (" not in str(e.value) and str(e.value).endswith("--set 'hog={pixels_per_cell: 12}'")
    advised = str(e.value).rpartition("--set ")[2].strip("'")
    assert ModelSpec.from_dict(override_spec(spec, _parse_set([advised]))).hog.pixels_per_cell == 12  # it works
    with pytest.raises(ConfigError) as e:  # another bad path on such a spec: the hint names no hog path either
        override_spec(spec, {"conv.0.filters": 4})
    assert "hog.pixels_per_cell" not in str(e.value) and "--set 'hog={pixels_per_cell: 8}' adds one" in str(e.value)
    # a value YAML reads as no JSON (a date, !!binary's bytes) is shown as text (json.dumps' TypeError, a traceback)
    for given, shown in [("2001-12-14", '"2001-12-14"'), ("!!binary aGk=", "\"b'hi'\"")]:
        with pytest.raises(ConfigError, match=re.escape(f"--set 'hog={{orientations: {shown}}}'")):
            override_spec(spec, _parse_set([f"hog.orientations={given}"]))
    with pytest.raises(ConfigError, match=re.escape("--set 'hog={orientations: VALUE}'")):  # (json.dumps' ValueError)
        override_spec(spec, {"hog.orientations": 10**5000})


@pytest.mark.parametrize("spec,message", [
    ({"convs": [{"batch_norm": "no"}]}, "convs[0].batch_norm must be true or false; got 'no'"),
    ({"convs": [{"filters": 32.5}]}, "convs[0].filters must be an integer; got 32.5"),
    ({"convs": [{"filters": True}]}, "convs[0].filters must be an integer; got True"),
    ({"convs": [{"dropout": "lots"}]}, "convs[0].dropout must be a finite number; got 'lots'"),
    ({"convs": [7]}, "convs[0] must be a mapping of ConvSpec fields; got 7"),
    ({"convs": 3}, "convs must be a list; got 3"),
    ({"hog": True}, "hog must be a mapping of HogSpec fields (e.g. {} for the defaults) or null; got True"),
    ({"hog": {"pixels_per_cell": "8"}}, "hog.pixels_per_cell must be an integer; got '8'"),
    ({"num_classes": 1}, "num_classes must be null (the label set's count) or >= 2; got 1"),
    ({"num_classes": 1001}, "num_classes must be at most 1,000; got 1001"),
    ({"channels": 3, "hog": {}}, "hog must be null with channels 3 (HOG hybrids take grey faces: --set channels=1)"),
    ({"in_size": 8}, "in_size must be >= 16; got 8"),
    ({"in_size": 1024}, "in_size must be at most 512; got 1024"),
    ({"channels": 2}, "channels must be 1 (grey) or 3 (RGB); got 2"),
    ({"backbone": "resnet50"}, "backbone must be one of resnet18, resnet34, mobilenet_v2 or null; got 'resnet50'"),
    ({"backbone": "resnet18", "convs": [{}]}, "convs must be empty with backbone resnet18 (its layers are fixed); got 1 layer(s)"),
    ({"backbone": "resnet18", "hog": {}}, "hog must be null with backbone resnet18"),
    ({"gap": 1}, "gap must be true or false; got 1"),
    ({"fcs": [{"dropout": 10**400}]}, "fcs[0].dropout must be a finite number; got 1000000000"),  # (an OverflowError)
    ({"in_size": 17, "hog": {"pixels_per_cell": 12}}, "hog: a block of 24x24 pixels (cells_per_block x pixels_per_cell) does "
                                                      "not fit in in_size 17"),
    ({"in_size": 512, "hog": {"orientations": 180, "pixels_per_cell": 3}}, "hog: 20,563,920 features a face, over the 10,000"),
])
def test_spec_field_types_are_checked(spec, message):
    with pytest.raises(ConfigError) as e:
        ModelSpec.from_dict(spec)
    assert message in str(e.value)


def test_train_config_types_coerce_numbers_and_refuse_the_rest():
    cfg = TrainConfig.from_dict({"lr": "1e-3", "l2": 0, "rotate": 5, "epochs": 3})  # YAML 1.1 reads 1e-3 as a string
    assert cfg.lr == 1e-3 and isinstance(cfg.l2, float) and isinstance(cfg.rotate, float)
    for fields, message in [({"lr": float("nan")}, "--lr must be a finite number or null; got nan"),
                            ({"device": "xpu"}, "--device must be auto, cpu, cuda, cuda:N or mps; got 'xpu'"),
                            ({"epochs": "3"}, "--epochs must be an integer or null; got '3'"),
                            ({"flip": "no"}, "--flip must be true or false; got 'no'"),
                            ({"overrides": [1]}, "--overrides must be a mapping; got [1]"),
                            # an int past float's range (math.isfinite's OverflowError)
                            ({"lr": 10**400}, "--lr must be a finite number or null; got 1000000000"),
                            ({"erase": -10**400}, "--erase must be a finite number; got -1000000000")]:
        with pytest.raises(ConfigError) as e:
            TrainConfig.from_dict(fields)
        assert message in str(e.value)


def test_label_names_in_another_form_are_told_the_text_that_works(tmp_path):
    """A YAML config's natural list (or mapping of label to name) for label_names was "label_names must be a
    string or null; got ['calm', 'excited']": the field is one text, a comma list or a file, and the message
    now shows those names in that form."""
    from ferkit.config import read_file
    from ferkit.data import read_names
    from ferkit.train import resolve_config

    works = "the class names in label order as a comma list (\"calm,excited\" for those names) or the path of a text file"
    for text, shown in [("[calm, excited]", "['calm', 'excited']"), ("{1: excited, 0: calm}", "{1: 'excited', 0: 'calm'}")]:
        (tmp_path / "c.yaml").write_text(f"label_names: {text}\n")
        with pytest.raises(ConfigError) as e:
            resolve_config(base=read_file(tmp_path / "c.yaml"), source=tmp_path / "c.yaml")
        assert str(e.value) == (f"invalid training config:\n  - {tmp_path / 'c.yaml'}: label_names must be one string, {works} "
                                f"of them, one a line; got {shown}")
    (tmp_path / "c.yaml").write_text('label_names: "calm,excited"\n')  # as told
    cfg = resolve_config(base=read_file(tmp_path / "c.yaml"), source=tmp_path / "c.yaml")
    assert read_names(cfg.label_names) == ("calm", "excited")
    with pytest.raises(ConfigError, match=r'--label-names must be one string, .* comma list \(e.g. "angry,happy,sad"\) .*; got 3$'):
        TrainConfig(label_names=3)


def test_a_global_average_pool_without_conv_layers_is_refused():
    """gap averages the last conv layer's map: a spec without conv layers trained silently on one number a face
    (its mean brightness), and HOG beside it. The nets without conv layers that make sense still build."""
    for spec in ({"gap": True}, {"gap": True, "fcs": [{"units": 16}]}, {"gap": True, "hog": {}}):
        with pytest.raises(ConfigError, match=r"^invalid model spec:\n  - gap must be false in a spec without conv layers "
                                              r"\(.*\): add conv layers, or leave gap out; got True$"):
            ModelSpec.from_dict(spec)
    # a linear classifier of the pixels (and of HOG), FC layers alone, a backbone (which pools anyway), a VGG-style head
    for spec in ({}, {"hog": {}}, {"fcs": [{"units": 16}]}, {"backbone": "resnet18", "gap": True}, {"convs": [{}], "gap": True}):
        ModelSpec.from_dict(spec)


def test_a_num_classes_that_disagrees_with_the_datas_classes_names_them():
    from ferkit.labels import for_emotions

    spec = ModelSpec(convs=[ConvSpec(8)], num_classes=2)
    with pytest.raises(ConfigError, match=r"^invalid model spec:\n  - num_classes must be 3 \(the data's classes, calm, "
                                          r"excited, bored\) or left out; got 2$"):
        spec.for_labels(for_emotions(["calm", "excited", "bored"]))
    assert spec.for_labels(for_emotions(["calm", "excited"])) is spec


def test_path_fields_take_a_pathlib_path_stored_as_its_string(tmp_path):
    # (each was "--data must be a string or null; got PosixPath(...)")
    (tmp_path / "spec.yaml").write_text("fcs: []\n")  # (a Path of the model must name a file: the test below)
    given = {"model": tmp_path / "spec.yaml", "data": tmp_path / "fer.csv", "label_names": tmp_path / "names.txt",
             "labels_file": tmp_path / "new.csv", "init_from": tmp_path / "w.pth"}
    cfg = TrainConfig(**given, teacher=[tmp_path / "t.pt", str(tmp_path / "u.pt")])
    assert cfg.to_dict() == TrainConfig(**{k: str(v) for k, v in given.items()},
                                        teacher=[str(tmp_path / "t.pt"), str(tmp_path / "u.pt")]).to_dict()
    assert json.loads(json.dumps(cfg.to_dict()))["data"] == str(tmp_path / "fer.csv")
    assert TrainConfig(teacher=tmp_path / "t.pt").teacher == [str(tmp_path / "t.pt")]  # one path, as a string is
    with pytest.raises(ConfigError, match=r"--teacher must be a list of checkpoint or \.onnx paths; got \[3\]"):
        TrainConfig(teacher=[3])


def test_a_path_of_the_model_is_a_spec_file_never_a_preset(tmp_path, monkeypatch):
    """(TrainConfig(model=Path("lite")) trained the lite preset, as its str names it, file or no file; create_model,
    load_model and Predictor take a Path for a file always)"""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    for model, said in [(Path("lite"), "--model lite: no such file; a Path is taken as a file path, a JSON or YAML model "
                                       "spec: check the path, or pass the preset as a str, 'lite'"),
                        (tmp_path / "spec.json", f"--model {tmp_path / 'spec.json'}: no such file; a Path is taken as a "
                                                 "file path, a JSON or YAML model spec: check the path, or pass a "
                                                 "preset's name as a str (shallow, deep, "),
                        (tmp_path, f"--model {tmp_path}: a folder; a Path")]:
        with pytest.raises(ConfigError, match=re.escape(said)):
            TrainConfig(model=model)
    Path("lite").write_text('{"fcs": []}')  # a spec file called lite: the str would read the preset
    with pytest.raises(ConfigError, match=re.escape("--model lite: a Path is taken as a file path, but a model spec "
                                                    "file's name must end .json, .yaml, .yml (the config keeps model as a "
                                                    "str, and one without names a preset): rename the file, or pass the "
                                                    "preset as a str, 'lite'")):
        TrainConfig(model=Path("lite"))
    Path("lite.json").write_text('{"fcs": []}')
    assert TrainConfig(model=Path("lite.json")).model == "lite.json" and TrainConfig(model="lite").model == "lite"
    assert TrainConfig(model="missing.yaml").model == "missing.yaml"  # a str: as before (read when training starts)


def test_a_model_name_too_long_for_a_file_is_no_preset_not_an_os_error():
    """(a --model of a name over 255 bytes, or a checkpoint's path in such a folder, was Path.is_dir's or Path.exists'
    OSError: File name too long, a traceback, from the check for a run folder or checkpoint given as the net to build)"""
    from ferkit.config import model_problem
    from ferkit.train import resolve_config

    long = "a" * 300
    with pytest.raises(ConfigError, match=re.escape("--model must be a preset (shallow, ") + ".*" + re.escape("got 'aaaa")):
        resolve_config(long)
    assert model_problem(long, "search") is None  # a name, not a folder or trained model: recipe says what works
    for command in ("train", "search"):
        assert model_problem(f"{long}/x.pt", command).startswith(f"--model {long}/x.pt: is a checkpoint; ")


def test_yaml_aliases_binary_and_huge_files_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
                    "model: shallow\noverrides: {convs.0.batch_norm: [*b, *b, *b]}\n")
    with pytest.raises(ConfigError, match="bomb.yaml: not valid YAML.*aliases"):
        TrainConfig.from_file(bomb)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="bin.yaml: not a text file"):
        TrainConfig.from_file(binary)
    big = tmp_path / "big.yaml"
    big.write_text("model: shallow\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="too big for a config"):
        TrainConfig.from_file(big)
    # a device (or a FIFO) reads as size 0: /dev/zero never ended, a FIFO waited forever; /dev/null
    # stands in for them here, as reading it ends (it was "not valid JSON")
    bom = tmp_path / "bom.json"  # as Windows editors save it: read as the YAML and CSV readers read it
    bom.write_text('\ufeff{"epochs": 3}', encoding="utf-8")
    assert TrainConfig.from_file(bom).epochs == 3
    (tmp_path / "null.json").symlink_to("/dev/null")
    with pytest.raises(ConfigError, match=r"null.json: empty \(the null device, not a file\); give a JSON or YAML file"):
        TrainConfig.from_file(tmp_path / "null.json")
    (tmp_path / "dir.yaml").mkdir()  # (it said "cannot read (Is a directory)")
    with pytest.raises(ConfigError, match=r"dir.yaml: a folder; give a JSON or YAML file"):
        TrainConfig.from_file(tmp_path / "dir.yaml")
    # an empty file (or one of YAML comments) is said to be empty, not "not valid JSON (Expecting value...)" or
    # "expected a mapping" of a file that holds none
    for name, text in (("empty.json", ""), ("empty.yaml", "\n"), ("comments.yaml", "# epochs: 3\n  # lr: 0.1\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=f"{name}: the file is empty; give a (JSON|YAML) mapping of field names to values"):
            TrainConfig.from_file(tmp_path / name)


def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path):
    """json and PyYAML keep the last of a repeated key: a second `lr` would win unseen."""
    (tmp_path / "twice.json").write_text('{"epochs": 3, "lr": 0.1, "lr": 0.2}')
    with pytest.raises(ConfigError, match="twice.json: not valid JSON .*'lr' appears twice"):
        TrainConfig.from_file(tmp_path / "twice.json")
    (tmp_path / "twice.yaml").write_text("epochs: 3\nlr: 0.1\noverrides:\n  hog: null\n  hog: null\n")
    with pytest.raises(ConfigError, match="twice.yaml: not valid YAML .line 5, column 3: the key 'hog' appears twice"):
        TrainConfig.from_file(tmp_path / "twice.yaml")
    (tmp_path / "once.yaml").write_text("epochs: 3\nlr: 0.1\noverrides: {hog: null}\n")
    assert TrainConfig.from_file(tmp_path / "once.yaml").lr == 0.1


def test_spec_numbers_have_upper_bounds_all_reported_at_once():
    """Oversized numbers are messages naming the field, not allocator tracebacks."""
    with pytest.raises(ConfigError) as e:
        ModelSpec.from_dict({"convs": [{"filters": 10**6, "kernel": 99, "stride": 49, "padding": 10**5, "pool": 49}],
                             "fcs": [{"units": 10**12}], "hog": {"orientations": 10**9}})
    msg = str(e.value)
    for text in ("convs[0].filters must be at most 4,096; got 1000000", "convs[0].kernel must be at most 48; got 99",
                 "convs[0].stride must be at most 48; got 49", "convs[0].padding must be at most 48; got 100000",
                 "convs[0].pool must be at most 48; got 49", "fcs[0].units must be at most 65,536; got 1000000000000",
                 "hog.orientations must be at most 180; got 1000000000"):
        assert text in msg, msg


def test_too_many_layers_is_one_message_not_one_per_layer():
    with pytest.raises(ConfigError) as e:
        ModelSpec.from_dict({"convs": [{"filters": 8}] * 20_000})
    assert str(e.value) == "invalid model spec:\n  - convs must be at most 128 layers; got 20000"


def test_feature_maps_that_grow_without_bound_are_refused():
    with pytest.raises(ConfigError, match=r"convs\[1\]: the feature map grows to 240x240, over 192x192; use less padding"):
        ModelSpec(convs=[ConvSpec(8, 1, padding=48)] * 2)


def test_total_size_is_estimated_before_anything_is_allocated(monkeypatch):
    """Each layer within its bounds, the whole too big: refused from the spec's count, which is exact."""
    from ferkit.model import PRESETS, count_params, create_model

    for name in ("shallow", "deep-hog", "vgg"):
        assert PRESETS[name].spec.parameters() == count_params(create_model(name))
    big = {"convs": [{"filters": 4096}, {"filters": 4096}], "fcs": [{"units": 65536}]}
    monkeypatch.setattr("torch.nn.Linear.__init__", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(ConfigError, match=r"the model would have ~618,626,928,647 parameters \(2,474.5 GB of float32 "
                                          r"weights\), over the 200,000,000 ferkit builds; use fewer filters"):
        ModelSpec.from_dict(big)


def test_seed_and_crop_pad_bounds():
    with pytest.raises(ConfigError) as e:
        TrainConfig(seed=1180591620717411303424, crop_pad=100_000)
    assert "--seed must be at most 9,223,372,036,854,775,807; got 1180591620717411303424" in str(e.value)
    assert "--crop-pad must be at most 24; got 100000" in str(e.value)
    with pytest.raises(ConfigError, match="--seed must be >= 0; got -1"):
        TrainConfig(seed=-1)


def test_type_and_range_problems_are_reported_together():
    """A field of the wrong type does not hide the range problems of the others (nor crash their checks)."""
    with pytest.raises(ConfigError) as e:
        TrainConfig(epochs="ten", batch_size=0, schedule="linear", rotate=-5)
    for text in ("--epochs must be an integer or null; got 'ten'", "--batch-size must be >= 2 (training skips one-face batches: batch norm needs two); got 0",
                 "--schedule must be one of none, cosine, onecycle, step; got 'linear'", "--rotate must be in [0, 180] (degrees either way); got -5.0"):
        assert text in str(e.value)


def test_threads_lr_and_l2_have_upper_bounds():
    """Far past any use, torch crashes instead: 100,000 threads is a SIGSEGV, lr 1e308 an overflow in the optimizer
    (and backbone_lr 1e308, a fraction of lr, blew the weights up alike: the run ended with an unusable best.pt)."""
    with pytest.raises(ConfigError) as e:
        TrainConfig(threads=100_000, lr=1e308, l2=1e300, backbone_lr=1e308)
    for text in ("--threads must be in 0..1024 (0: torch's default); got 100000", "--lr must be > 0 and at most 100; got 1e+308",
                 "--l2 must be >= 0 and at most 100; got 1e+300",
                 "--backbone-lr must be > 0 and at most 100 (a fraction of --lr; to keep layers fixed, --freeze them); got 1e+308"):
        assert text in str(e.value)
    TrainConfig(threads=1024, lr=100.0, l2=0.0, rotate=180, backbone_lr=100.0)
    with pytest.raises(ConfigError, match=r"--rotate must be in \[0, 180\] \(degrees either way\); got 1e\+308"):
        TrainConfig(rotate=1e308)  # was a NaN loss blamed on --lr
    with pytest.raises(ConfigError) as e:  # a one-face batch is skipped: batch size 1 trained nothing, silently
        TrainConfig(batch_size=1, flip_consistency=1e9)
    assert "--batch-size must be >= 2" in str(e.value) and "--flip-consistency must be >= 0 and at most 100" in str(e.value)


def test_epochs_have_an_upper_bound():
    """--epochs 10**12 trained (at an honest, absurd ETA), but past ~1e308 steps the one-cycle and cosine
    schedules' float arithmetic was an OverflowError traceback; a million epochs is far past any use."""
    with pytest.raises(ConfigError, match="--epochs must be at most 1,000,000; got 1000001$"):
        TrainConfig(epochs=1_000_001)
    with pytest.raises(ConfigError, match=r"--epochs must be at most 1,000,000; got 1000000000000000000000000000000000000000\.\.\. \(401 characters\)$"):
        TrainConfig(epochs=10**400, schedule="onecycle")  # (its 401 digits, once printed whole)
    with pytest.raises(ConfigError, match="--epochs must be at most 1,000,000; got an integer of about 5,000 digits$"):
        TrainConfig(epochs=10**5000)  # (past the 4,300 digits repr writes: its ValueError)
    with pytest.raises(ConfigError, match="--lr must be a finite number or null; got an integer of about 5,000 digits$"):
        TrainConfig(lr=-10**5000)
    with pytest.raises(ConfigError, match=re.escape("convs must be a list; got a tuple holding an integer of over 4,300")):
        ModelSpec(convs=({"filters": 10**5000},))  # (one inside a value: abs() of the tuple, a TypeError)
    with pytest.raises(ConfigError, match="--epochs must be >= 1; got 0"):
        TrainConfig(epochs=0)
    assert TrainConfig(epochs=1_000_000).epochs == 1_000_000 and TrainConfig().epochs is None  # (None: the preset's)


def test_config_keys_that_are_not_strings_are_unknown_fields(tmp_path):
    """YAML's `1:` or `null:` keys: naming them for the file crashed in flag() (an AttributeError traceback)."""
    from ferkit.config import read_file
    from ferkit.train import resolve_config

    (tmp_path / "keys.yaml").write_text("epochs: 1\n1: 2\nnull: 3\n")
    with pytest.raises(ConfigError, match=r"keys.yaml: unknown field\(s\) 1, None"):
        resolve_config(base=read_file(tmp_path / "keys.yaml"), source=tmp_path / "keys.yaml")


def test_deeply_nested_spec_file_is_refused_not_a_recursion_error(tmp_path):
    """JSON reads ~1000 levels of '['; copying such a spec (override_spec's deepcopy) was a RecursionError."""
    from ferkit.model import resolve_spec

    deep = tmp_path / "deep.json"
    deep.write_text('{"convs": ' + "[" * 900 + "]" * 900 + "}")
    with pytest.raises(ConfigError, match="deep.json: nested more than 32 levels deep"):
        resolve_spec(str(deep))


def test_text_values_nested_past_yamls_recursion_are_text():
    """from_text (the server's $FERKIT_SERVE_* variables): thousands of '[' were a RecursionError traceback."""
    from ferkit.config import from_text

    assert from_text(TrainConfig, "epochs", "[" * 5000) == "[" * 5000



def test_yaml_numbers_and_dates_python_cannot_hold_are_one_error(tmp_path):
    """PyYAML reads 5,000 digits as an int and 2001-13-01 as a date, and Python refuses both with a ValueError, which
    went past the callers that catch YAMLError: the $FERKIT_SERVE_* variables (from_text) and search --param."""
    import re

    import yaml

    from ferkit.config import from_text, load_yaml, read_file
    from ferkit.errors import FerkitError
    from ferkit.settings import Settings

    for text, why in [("1" * 5000, "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits)"),
                      ("2001-13-01", "month must be in 1..12)")]:
        with pytest.raises(yaml.YAMLError, match=f"^a number or date Python cannot hold \\({re.escape(why)}$"):
            load_yaml(text)
        assert from_text(TrainConfig, "data", text) == text  # text, for check_fields to take or name
        (tmp_path / "c.yaml").write_text(f"epochs: {text}\n")
        with pytest.raises(ConfigError, match="c.yaml: not valid YAML \\(a number or date Python cannot hold"):
            read_file(tmp_path / "c.yaml")
    with pytest.raises(FerkitError, match="^\\$FERKIT_SERVE_MAX_UPLOAD_MB must be a finite number; got inf$"):
        Settings.from_env({"FERKIT_SERVE_MAX_UPLOAD_MB": "1" * 5000})
