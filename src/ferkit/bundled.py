"""The models that ship inside ferkit, from one file: weights/manifest.json.

Each entry holds a model's name, preset, label set, files (its float16 checkpoint and int8 ONNX
graph, with their SHA-256), the commands that made it, its PublicTest accuracy (float16 file / int8
graph, in %), the points its int8 graph gains from the mirror (tta_gain), its multiply-adds per
face (macs); the manifest also names the default. predict.py (BUNDLED, DEFAULT_MODEL, TTA_GAIN,
int8_file), `ferkit models`, the CLI's --model help and the README's table all come from here, and
tests/test_bundled.py ties it to the files and the README, so a re-export or a new figure cannot
leave one of them behind.

No torch: a light install lists and runs the bundled models. That a preset exists needs model.py
(torch), so the tests check it, not this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import FerkitError
from .labels import LABEL_SETS

WEIGHTS = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS / "manifest.json"
FILES = ("checkpoint", "int8")  # the files every bundled model ships: NAME.pt and NAME.int8.onnx
OPTIONAL_FILES = ("fp32",)  # and one some ship: NAME.fp32.onnx, for CPUs where int8 does not pay (predict.default_path)


@dataclass(frozen=True)
class Bundled:
    name: str
    preset: str
    labels: str  # the label set's name (labels.LABEL_SETS)
    net: str  # in words: the preset and what it was distilled from
    macs: int
    accuracy: dict  # {"float16": %, "int8": %} on PublicTest, with the label set's own labels
    tta_gain: float
    files: dict  # {"checkpoint": {"file": NAME.pt, "sha256": hex}, "int8": {...}[, "fp32": {...}]}
    made_by: tuple[str, ...]

    @property
    def emotions(self) -> tuple[str, ...]:
        return LABEL_SETS[self.labels].emotions

    def path(self, kind: str) -> Path:
        """Where the file of `kind` (checkpoint | int8 | fp32) ships."""
        return WEIGHTS / self.files[kind]["file"]


def _get(entry: dict, key: str, kind, where: str):
    """entry[key], checked to be of `kind`; else a FerkitError naming the manifest field."""
    if key not in entry:
        raise FerkitError(f"{MANIFEST.name}: {where}.{key} is missing")
    value = entry[key]
    # bool is an int to Python, never a count or a figure here
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FerkitError(f"{MANIFEST.name}: {where}.{key} must be {names}; got {value!r}")
    return value


def _entry(e, where: str) -> Bundled:
    if not isinstance(e, dict):
        raise FerkitError(f"{MANIFEST.name}: {where} must be an object; got {e!r}")
    name = _get(e, "name", str, where)
    labels = _get(e, "labels", str, where)
    if labels not in LABEL_SETS:
        raise FerkitError(f"{MANIFEST.name}: {where}.labels must be one of {', '.join(LABEL_SETS)}; got {labels!r}")
    acc = _get(e, "accuracy", dict, where)
    for k in ("float16", "int8"):
        _get(acc, k, (int, float), f"{where}.accuracy")
    files = _get(e, "files", dict, where)
    for k in FILES + tuple(k for k in OPTIONAL_FILES if k in files):
        f = _get(files, k, dict, f"{where}.files")
        file = _get(f, "file", str, f"{where}.files.{k}")
        if Path(file).name != file:  # the files live in weights/, nowhere else
            raise FerkitError(f"{MANIFEST.name}: {where}.files.{k}.file must be a file name in weights/; got {file!r}")
        sha = _get(f, "sha256", str, f"{where}.files.{k}")
        if len(sha) != 64 or set(sha) - set("0123456789abcdef"):
            raise FerkitError(f"{MANIFEST.name}: {where}.files.{k}.sha256 must be 64 lowercase hex digits; got {sha!r}")
    made_by = _get(e, "made_by", list, where)
    if not made_by or not all(isinstance(c, str) for c in made_by):
        raise FerkitError(f"{MANIFEST.name}: {where}.made_by must be a list of commands; got {made_by!r}")
    return Bundled(name, _get(e, "preset", str, where), labels, _get(e, "net", str, where), _get(e, "macs", int, where),
                   acc, float(_get(e, "tta_gain", (int, float), where)), files, tuple(made_by))


def load(path: Path = MANIFEST) -> tuple[dict[str, Bundled], str]:
    """The bundled models by name, in the manifest's order, and the default's name."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FerkitError(f"{path} is missing: this install has no bundled-model manifest") from None
    except ValueError as e:
        raise FerkitError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise FerkitError(f"{MANIFEST.name}: must be an object; got {type(doc).__name__}")
    entries = _get(doc, "models", list, "manifest")
    models = {}
    for i, e in enumerate(entries):
        m = _entry(e, f"models[{i}]")
        if m.name in models:
            raise FerkitError(f"{MANIFEST.name}: models[{i}].name {m.name!r} is listed twice")
        models[m.name] = m
    default = _get(doc, "default", str, "manifest")
    if default not in models:
        raise FerkitError(f"{MANIFEST.name}: manifest.default must name a model ({', '.join(models)}); got {default!r}")
    return models, default


MODELS, DEFAULT = load()


def file_of(value: str, kind: str) -> str:
    """A file argument (--teacher, --init-from) as a path: a bundled model's name means its `kind` file,
    "checkpoint" or "int8", as --model and evaluate's names do (./NAME for a file of that name); any other
    value stays as given."""
    if value not in MODELS:
        return value
    path = MODELS[value].path(kind)
    if not path.exists():
        raise FerkitError(f"the bundled model {value!r} is not in this install ({path} is missing); pass a file "
                          f"written by 'ferkit train' or 'ferkit export' (./{value} for a file of that name)")
    return str(path)


def summary() -> str:
    """The bundled models in a phrase, by label set, the default first (for --model's help):
    'ferplus-fast (the default), ferplus: 8 emotions, FER+; fer2013, fer2013-fast: 7 emotions, FER2013'."""
    groups = {}  # label set -> its models' names
    for n in [DEFAULT] + [n for n in MODELS if n != DEFAULT]:
        groups.setdefault(MODELS[n].labels, []).append(f"{n} (the default)" if n == DEFAULT else n)
    return "; ".join(f"{', '.join(names)}: {len(LABEL_SETS[s].emotions)} emotions, {LABEL_SETS[s].title}"
                     for s, names in groups.items())
