"""Typed, serialisable configs: the model spec (paper's CNN family) and the training config.

    [Conv-(SBN)-ReLU-(Dropout)-(MaxPool)] x M - [Affine-(BN)-ReLU-(Dropout)] x N - Affine - Softmax

Each dataclass checks itself in __post_init__: every field against its type annotation (one
place, `check_fields`, which the server's settings use too; ints become floats where a float is
wanted, "1e-3" too; a Literal allows its values), then the ranges; it collects every problem and raises one ConfigError, each problem in one template,
"{field} must be {what}; got {value!r}". `from_file` reads JSON or YAML (no aliases, so a small
file cannot expand into a huge config); `to_dict` gives plain data that JSON and
`torch.load(weights_only=True)` both accept.

TrainConfig is also the `ferkit train` and `ferkit search` flags: each field's flag, type, choices
and help come from its annotation and its `option(default, help)` (cli.add_train_flags).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Literal

import yaml

from . import precisions, runs
from .data import looks_like_image_folder
from .errors import ConfigError, FerkitError, quoted, shell_word
from .files import check_regular_file, kind_of_file
from .labels import DATA, DEFAULT, LABEL_CHOICES, LABEL_MODES, LABEL_SETS, MAX_CLASSES
from .recipes import RECIPES

FACE_SIZE = 48  # FER2013 faces, and the faces ferkit crops from photos, are 48x48
MAX_CONFIG_BYTES = 1 << 20  # a config or spec file is a few hundred bytes; refuse anything over 1 MB
# Nesting of a config or spec file: a spec is 3 deep (convs, a layer, a field); JSON reads ~1000 levels,
# past what copying the spec (copy.deepcopy, override_spec) can recurse through
MAX_DEPTH = 32
# Upper bounds on a spec's numbers, far above any useful FER model (the presets: at most 512
# filters, 512 units, 8 conv layers, 9 orientations, 19 M parameters), so that a typo is a message
# rather than an allocator's traceback or a machine out of memory.
MAX_FILTERS = 4096
MAX_UNITS = 65536
MAX_LAYERS = 128  # conv layers, and FC layers
MAX_ORIENTATIONS = 180  # HOG bins over 180 degrees: one a degree
# HOG features a face (the presets: 900): FER2013's 35,887 faces and their mirror images at 10,000
# each are 2.9 GB of float32, held in memory and in the HOG cache
MAX_HOG = 10_000
MAX_MAP = 4 * FACE_SIZE  # side of a feature map: padding can grow it, and its memory grows as the square
MIN_IN_SIZE, MAX_IN_SIZE = 16, 512  # input side: ImageNet nets take 224, FER data sets come at 48-256
CHANNELS = (1, 3)  # grey or RGB input
BACKBONES = ("resnet18", "resnet34", "mobilenet_v2")  # plain-torch nets with torchvision's parameter names (model.py)
MAX_PARAMS = 200_000_000  # 0.8 GB of float32 weights; Adam keeps two more copies
MAX_SEED = 2**63 - 1  # torch's and numpy's generators take a 64-bit seed
MAX_SPLIT_SEED = 2**32 - 1  # scikit-learn's random_state (a legacy numpy RandomState) takes 32 bits
MAX_CROP_PAD = FACE_SIZE // 2  # padding a face by more than half its side crops mostly padding
MAX_THREADS = 1024  # far above any CPU's cores; torch's thread pool crashes (SIGSEGV) at 100,000
# Epochs: far above any useful run (a million passes over even a 64-face subset take days); the one-cycle
# and cosine schedules compute their steps as floats, and past ~1e308 steps crashed with an OverflowError
MAX_EPOCHS = 1_000_000
# Optimisation steps of sanity's overfit check and of each DeepDream octave (defaults 300 and 20): each is
# a forward and backward pass, up to seconds on a CPU, so 10,000 is hours; --steps 10**9 would run for years
MAX_STEPS = 10_000
MAX_RATE = 100.0  # lr, backbone_lr, l2 and --flip-consistency's weight: far above any useful value (lr 1e308 overflows the optimizer)


def problem(name: str, what: str, value) -> str:
    """The one template for a bad value (scikit-learn style). A value too long to read (--epochs 10**400, a
    pasted file) is shown by its start and its length; an int Python will not write out (over 4,300 digits: repr's
    ValueError was a traceback in place of the problem), by its count of digits, and a list or mapping holding one so."""
    try:
        shown = repr(value)
    except ValueError:
        shown = (f"an integer of about {int(abs(value).bit_length() * math.log10(2)):,} digits" if isinstance(value, int)
                 else f"a {type(value).__name__} holding an integer of over 4,300 digits")
    return f"{name} must be {what}; got {shown if len(shown) <= 60 else quoted(shown, 40)}"


def bounded(name: str, value: int, low: int, high: int, low_what: str | None = None) -> list[str]:
    """[] if low <= value <= high, else the problem: below low (low_what, default ">= low") or above high."""
    if value < low:
        return [problem(name, low_what or f">= {low}", value)]
    if value > high:
        return [problem(name, f"at most {high:,}", value)]
    return []


def check_args(*checks) -> None:
    """One FerkitError for the (name, value, what it must be, ok) checks of a library call's arguments that fail:
    a library caller's "no" (true, as a string) turned the mirror on, a batch size of 0 was range()'s error."""
    bad = [problem(name, what, value) for name, value, what, ok in checks if not ok]
    if bad:
        raise FerkitError("; ".join(bad))


@dataclass
class ConvSpec:
    filters: int = 32  # output channels
    kernel: int = 3  # square kernel size
    stride: int = 1
    padding: int | None = None  # zero-padding; None = kernel // 2 ("same" at stride 1)
    batch_norm: bool = True  # spatial batch norm after the conv
    dropout: float = 0.0  # dropout probability after ReLU
    pool: int = 0  # max-pool size and stride after dropout; 0 = no pool

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def conv_size(self, size: int) -> int:
        """Side of the conv's output (before the pool) for a size x size input: the one place for the geometry."""
        return (size + 2 * self.pad - self.kernel) // self.stride + 1

    def out_size(self, size: int) -> int:
        """Side of this layer's output (after its pool)."""
        size = self.conv_size(size)
        return size // self.pool if self.pool else size

    def problems(self, where: str) -> list[str]:
        p = bounded(f"{where}.filters", self.filters, 1, MAX_FILTERS)
        p += bounded(f"{where}.kernel", self.kernel, 1, FACE_SIZE)  # no wider than a face
        p += bounded(f"{where}.stride", self.stride, 1, FACE_SIZE)
        if self.padding is not None:
            p += bounded(f"{where}.padding", self.padding, 0, FACE_SIZE, ">= 0 (or null for kernel // 2)")
        if not 0 <= self.dropout < 1:
            p.append(problem(f"{where}.dropout", "in [0, 1)", self.dropout))
        if self.pool == 1:
            p.append(problem(f"{where}.pool", "0 (no pool) or a size >= 2", self.pool))
        else:
            p += bounded(f"{where}.pool", self.pool, 0, FACE_SIZE, "0 (no pool) or a size >= 2")
        return p


@dataclass
class FCSpec:
    units: int = 512  # hidden units
    batch_norm: bool = False  # batch norm after the affine layer
    dropout: float = 0.0  # dropout probability after ReLU

    def problems(self, where: str) -> list[str]:
        p = bounded(f"{where}.units", self.units, 1, MAX_UNITS)
        if not 0 <= self.dropout < 1:
            p.append(problem(f"{where}.dropout", "in [0, 1)", self.dropout))
        return p


@dataclass
class HogSpec:
    """HOG features (scikit-image) joined to the conv features before the FC layers."""

    orientations: int = 9  # gradient orientation bins
    pixels_per_cell: int = 8  # square cell size in pixels
    cells_per_block: int = 2  # square block size in cells (block normalisation)

    def problems(self, where: str) -> list[str]:
        p = bounded(f"{where}.orientations", self.orientations, 1, MAX_ORIENTATIONS)
        if not 1 <= self.pixels_per_cell <= FACE_SIZE:
            p.append(problem(f"{where}.pixels_per_cell", f"in 1..{FACE_SIZE}", self.pixels_per_cell))
        elif self.cells_per_block < 1 or self.cells_per_block * self.pixels_per_cell > FACE_SIZE:
            p.append(problem(f"{where}.cells_per_block", f">= 1, with a block (cells x pixels_per_cell) that fits in {FACE_SIZE} pixels",
                             self.cells_per_block))
        return p

    def length(self, size: int = FACE_SIZE) -> int:
        """Length of the HOG vector of a size x size face, counted as scikit-image's hog lays it out."""
        blocks = size // self.pixels_per_cell - self.cells_per_block + 1
        return blocks * blocks * self.cells_per_block ** 2 * self.orientations


@dataclass
class ModelSpec:
    convs: list[ConvSpec] = field(default_factory=list)  # M conv layers, in order
    fcs: list[FCSpec] = field(default_factory=list)  # N hidden affine layers, in order
    hog: HogSpec | None = None  # join HOG features to the conv features (hybrid model)
    gap: bool = False  # global average pool of the last conv map instead of flattening it (VGG/ResNet-style head)
    in_size: int = FACE_SIZE  # input height = width: data of any size are resized to it as they are read
    num_classes: int | None = None  # outputs; None = one per emotion of the label set (see for_labels), the usual
    channels: int = 1  # input channels: 1 grey (FER2013), 3 RGB; specs and checkpoints without it are grey
    # a torchvision-named network (model.py) in place of the convs/fcs stack; None = the paper's CNN family
    backbone: Literal[BACKBONES] | None = None

    def __post_init__(self):
        p = list(check_fields(self).values())
        for name in ("convs", "fcs"):
            if not p and len(getattr(self, name)) > MAX_LAYERS:
                p.append(problem(name, f"at most {MAX_LAYERS} layers", len(getattr(self, name))))
        if not p:
            self.convs = [_part(ConvSpec, c, f"convs[{i}]", p) for i, c in enumerate(self.convs)]
            self.fcs = [_part(FCSpec, c, f"fcs[{i}]", p) for i, c in enumerate(self.fcs)]
            self.hog = _part(HogSpec, self.hog, "hog", p) if self.hog is not None else None
            p += bounded("in_size", self.in_size, MIN_IN_SIZE, MAX_IN_SIZE)
            if self.channels not in CHANNELS:
                p.append(problem("channels", "1 (grey) or 3 (RGB)", self.channels))
            elif self.hog is not None and self.channels != 1:  # scikit-image's HOG here is of one grey channel
                p.append(problem("hog", "null with channels 3 (HOG hybrids take grey faces: --set channels=1)", self.hog))
            if self.backbone is not None:
                p += [f"{name} must be empty with backbone {self.backbone} (its layers are fixed); got "
                      f"{len(getattr(self, name))} layer(s)" for name in ("convs", "fcs") if getattr(self, name)]
                if self.hog is not None:
                    p.append(problem("hog", f"null with backbone {self.backbone} (HOG hybrids are of the CNN family)",
                                     self.hog))
            if self.gap and not self.convs and self.backbone is None:  # (it trained, on the face's mean brightness)
                p.append(problem("gap", "false in a spec without conv layers (it averages the last conv layer's map; "
                                 "with none, each channel of the face itself to one number): add conv layers, or leave "
                                 "gap out", self.gap))
            if self.num_classes is not None:  # whether it fits the label set is for_labels' question
                p += bounded("num_classes", self.num_classes, 2, MAX_CLASSES, "null (the label set's count) or >= 2")
        if not p:
            size, most = self.in_size, max(MAX_MAP, 4 * self.in_size)
            for i, c in enumerate(self.convs):
                size = c.out_size(size)
                if size < 1:
                    p.append(f"convs[{i}]: the feature map shrinks to nothing; use fewer pools, more padding or a smaller stride")
                    break
                if size > most:
                    p.append(f"convs[{i}]: the feature map grows to {size}x{size}, over {most}x{most}; use less padding")
                    break
        if not p and self.hog is not None:  # scikit-image's hog needs one block in the face
            block = self.hog.cells_per_block * self.hog.pixels_per_cell
            if block > self.in_size:
                p.append(f"hog: a block of {block}x{block} pixels (cells_per_block x pixels_per_cell) does not fit in "
                         f"in_size {self.in_size}; use smaller cells or blocks")
            elif self.hog.length(self.in_size) > MAX_HOG:
                p.append(f"hog: {self.hog.length(self.in_size):,} features a face, over the {MAX_HOG:,} ferkit computes "
                         "(FER2013's faces would fill gigabytes); use larger cells or fewer orientations")
        if not p and self.parameters() > MAX_PARAMS:  # checked before anything is allocated
            n = self.parameters()
            p.append(f"the model would have ~{n:,} parameters ({n * 4 / 1e9:,.1f} GB of float32 weights), over the "
                     f"{MAX_PARAMS:,} ferkit builds; use fewer filters, units or layers, or pool more before the FC layers")
        _raise(p, "model spec")

    @property
    def face_shape(self) -> tuple[int, ...]:
        """The shape of one uint8 face this model takes: (in_size, in_size) grey, (in_size, in_size, 3) colour."""
        return (self.in_size, self.in_size) + ((self.channels,) if self.channels > 1 else ())

    def for_labels(self, labels, name: str = "num_classes") -> ModelSpec:
        """This spec with one output per emotion of a LabelSet. The label set decides the width; a
        spec that states num_classes too must agree, else the ConfigError names the mismatch (the
        field as `name`: where it was given, "--set num_classes")."""
        if self.num_classes is None:
            return replace(self, num_classes=labels.num_classes)
        if self.num_classes != labels.num_classes:
            whose = (f"the data's classes, {quoted(', '.join(labels.emotions), 80)}" if labels.name == DATA else
                     f"the emotions of label set {labels.name}")
            _raise([problem(name, f"{labels.num_classes} ({whose}) or left out", self.num_classes)], "model spec")
        return self

    def parameters(self) -> int:
        """The weights and biases of the model this spec builds (batch norm's 2 a channel in place
        of a bias, a slight overcount), counted from the spec: nothing is allocated. Without
        num_classes, counted for the default label set (as create_model builds it)."""
        classes = self.num_classes or LABEL_SETS[DEFAULT].num_classes
        if self.backbone == "mobilenet_v2":
            return _mobilenet_parameters(self.channels) + MOBILENET_LAST * classes + classes
        if self.backbone is not None:
            return _resnet_parameters(self.backbone, self.channels) + 512 * classes + classes
        n, ch = 0, self.channels
        for c in self.convs:
            n += ch * c.filters * c.kernel ** 2 + 2 * c.filters
            ch = c.filters
        size = self.feature_size()
        width = (ch if self.gap else ch * size * size) + (self.hog.length(self.in_size) if self.hog else 0)
        for f in self.fcs:
            n += width * f.units + 2 * f.units
            width = f.units
        return n + width * classes + classes

    def activations(self) -> int:
        """Floats one face's conv maps hold in training, a lower bound: each conv layer's output and its
        batch-norm or ReLU output, kept for the backward pass (pools, dropout masks and FC layers not
        counted). Zero for a backbone (its maps are of a fixed, modest size). Nothing is allocated."""
        if self.backbone is not None:
            return 0
        n, size = 0, self.in_size
        for c in self.convs:
            n += 2 * c.filters * c.conv_size(size) ** 2
            size = c.out_size(size)
        return n

    def stages(self) -> int:
        """How many layers before the head `--freeze N` can freeze (model.py's stages()): a ResNet's
        stem and 4 stages, MobileNetV2's 19 features, else one a conv and one a hidden FC layer."""
        if self.backbone == "mobilenet_v2":
            return 2 + sum(n for _, _, n, _ in MOBILENET_SETTINGS)
        if self.backbone is not None:
            return 1 + len(RESNET_BLOCKS[self.backbone])
        return len(self.convs) + len(self.fcs)

    def feature_size(self, size: int | None = None) -> int:
        """Side of the last conv layer's output for a size x size input (default in_size); < 1 = nothing left."""
        size = self.in_size if size is None else size
        if self.backbone == "mobilenet_v2":  # model.MobileNetV2: the stem (stride 2, or 1 for small inputs), 4 stride-2 blocks
            size = (size - 1) // mobilenet_stem_stride(self.in_size) + 1
            for _ in (s for _, _, _, s in MOBILENET_SETTINGS if s == 2):
                size = (size - 1) // 2 + 1
            return size
        if self.backbone is not None:  # model.ResNet: conv1 (7x7, stride 2), the max pool (large inputs only), 3 stride-2 stages
            size = (size - 1) // 2 + 1
            if resnet_maxpool(self.in_size):
                size = (size - 1) // 2 + 1
            for _ in range(3):
                size = (size - 1) // 2 + 1
            return size
        for c in self.convs:
            size = c.out_size(size)
        return size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return _build(cls, d, "model spec")


def full_spec(spec):
    """A recorded spec dict (a run's config.json, a checkpoint's) with the defaults it leaves out (a ferkit before a
    field recorded none), to compare; one this ferkit cannot read, as it is (so it differs)."""
    try:
        return ModelSpec.from_dict(spec).to_dict()
    except (ConfigError, TypeError):
        return spec


RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}  # basic blocks per stage


def resnet_maxpool(in_size: int) -> bool:
    """Whether a ResNet keeps torchvision's stem max pool: for inputs of 112 and more. A smaller face
    (48x48) keeps more resolution without it (the pool has no weights, so the names are unchanged)."""
    return in_size >= 112


# torchvision's mobilenet_v2 (width 1.0): expansion t, output channels c, blocks n, first block's stride s
MOBILENET_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
MOBILENET_STEM, MOBILENET_LAST = 32, 1280  # the first conv's and the last 1x1 conv's channels


def mobilenet_stem_stride(in_size: int) -> int:
    """The stride of MobileNetV2's first conv: torchvision's 2 for inputs of 112 and more, 1 for a
    smaller face (48x48 ends at 3x3 instead of 2x2), as a small-input ResNet drops its stem pool.
    A stride has no weights, so the names and shapes are the same either way."""
    return 2 if resnet_maxpool(in_size) else 1


def _mobilenet_parameters(channels: int) -> int:
    """Weights of torchvision's MobileNetV2 without its classifier (batch norm: 2 a channel)."""
    n, inp = channels * MOBILENET_STEM * 9 + 2 * MOBILENET_STEM, MOBILENET_STEM
    for t, c, blocks, _ in MOBILENET_SETTINGS:
        for _ in range(blocks):
            hidden = inp * t
            if t != 1:
                n += inp * hidden + 2 * hidden  # 1x1 expansion
            n += hidden * 9 + 2 * hidden + hidden * c + 2 * c  # 3x3 depthwise, 1x1 projection
            inp = c
    return n + inp * MOBILENET_LAST + 2 * MOBILENET_LAST


def _resnet_parameters(name: str, channels: int) -> int:
    """Weights of a torchvision-style ResNet without its fc layer (batch norm: 2 a channel)."""
    n, inplanes = channels * 64 * 49 + 2 * 64, 64
    for stage, blocks in enumerate(RESNET_BLOCKS[name]):
        planes = 64 * 2 ** stage
        for b in range(blocks):
            n += inplanes * planes * 9 + planes * planes * 9 + 4 * planes
            if b == 0 and (stage > 0 or inplanes != planes):
                n += inplanes * planes + 2 * planes
            inplanes = planes
    return n


# Fields with a fixed set of values: the config checks them and `ferkit train` offers them as the
# flags' choices, both from these annotations.
Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["none", "cosine", "onecycle", "step"]
TorchPrecision = Literal[precisions.TORCH]
LabelSetName = Literal[LABEL_CHOICES]
LabelMode = Literal[LABEL_MODES]


def option(default=None, help: str = "", factory=None):
    """A TrainConfig field and its help: the one text for the config's readers and the field's
    `ferkit train` flag (cli.add_train_flags, which adds the default)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


# TrainConfig's fields that name files: model (a spec file), data, label_names (a names file), labels_file,
# init_from and each teacher (see path_text)
PATH_FIELDS = ("model", "data", "label_names", "labels_file", "init_from")


def path_text(value):
    """A file given as an os.PathLike (a pathlib.Path, what Python code hands) as its string, as a flag or config
    file gives it, so config.json stays the same; one under ~ (~user) in the home folder, as a shell makes a flag's
    (a config file's `data: ~/fer2013.csv` was "no such file or folder" and FER2013's download advice), unless it
    exists as written (a folder named ~ here); anything else as it is, for the field's own check.
    (TrainConfig(data=Path(...)) was "--data must be a string or null; got PosixPath(...)".)"""
    value = os.fspath(value) if isinstance(value, os.PathLike) else value
    if isinstance(value, str) and value.startswith("~") and not os.path.exists(value):
        return os.path.expanduser(value)
    return value


SPEC_SUFFIXES = (".json", ".yaml", ".yml")  # a --model str that ends so names a spec file, any other a preset


def is_spec_file(name) -> bool:
    """Whether a --model value names a JSON/YAML model spec file (a str by its suffix) rather than a preset.
    A Path always names a file, whatever its suffix: Path("lite") is a file called lite, not the preset."""
    return isinstance(name, os.PathLike) or isinstance(name, str) and Path(name).suffix.lower() in SPEC_SUFFIXES


def model_path_problem(model) -> str | None:
    """None unless TrainConfig's model is a Path (an os.PathLike) that names no spec file the field's str reads as
    one, else its problem. A Path always names a file (create_model, load_model, Predictor: predict.bundled_name), but the
    field keeps path_text's str, which names a preset unless it ends in SPEC_SUFFIXES: TrainConfig(model=Path("lite"))
    trained the lite preset, whether or not ./lite was a spec file."""
    text = path_text(model) if isinstance(model, os.PathLike) else None
    if not isinstance(text, str):  # (not a Path; a Path of bytes is check_fields' to refuse)
        return None
    preset = f"pass the preset as a str, {text!r}" if text in RECIPES else f"pass a preset's name as a str ({', '.join(RECIPES)})"
    if not os.path.isfile(text):
        what = "a folder" if os.path.isdir(text) else "no such file"
        return (f"--model {quoted(text)}: {what}; a Path is taken as a file path, a JSON or YAML model spec: check the "
                f"path, or {preset}")
    if not is_spec_file(text):
        return (f"--model {quoted(text)}: a Path is taken as a file path, but a model spec file's name must end "
                f"{', '.join(SPEC_SUFFIXES)} (the config keeps model as a str, and one without names a preset): rename "
                f"the file, or {preset}")
    return None


def trained_model_kind(model) -> str | None:
    """What a --model str names where it is neither a preset nor a spec file but a folder or a trained model: "a run
    folder" (best.pt or last.pt in it), "a folder", "a checkpoint" (.pt, .pth) or "an ONNX graph"; else None (no such
    name or file: resolve_spec's or recipe's "unknown model" says so). A run's models are what a user who wants to
    go on with one gives, and "unknown model 'runs/x'" said neither what it was nor what works."""
    if not isinstance(model, str) or not model.strip() or model in RECIPES or is_spec_file(model):
        return None  # ("" is no folder: Path("") is the current one)
    path = Path(model)
    # os.path's tests, not Path's: a name over 255 bytes (ENAMETOOLONG) or one in a folder ferkit may not read (EACCES)
    # is no folder here (recipe's "must be a preset" follows), where Path.is_dir raised the OSError as a traceback
    if os.path.isdir(path):
        return "a run folder" if os.path.exists(path / runs.BEST) or os.path.exists(path / runs.LAST) else "a folder"
    if kind_of_file(path) == "a model":
        return "an ONNX graph" if path.suffix.lower() == ".onnx" else "a checkpoint"
    return None


def not_a_spec(model: str, what: str, why: str) -> str:
    """The start of the problem of a --model that names `what` (trained_model_kind) where a command builds a new model
    (`why`); each command adds its own way to use a trained one. A folder of images in class folders is likely the
    data, given to the wrong flag (train, sanity and search all take --data). (--model is named once: a config
    file's problems name its key in place of the flag, named_in_file.)"""
    data = (f"; it holds images in class folders, as image data do: give it with --data {shell_word(model)}"
            if what == "a folder" and looks_like_image_folder(model) else "")
    return f"--model {model}: is {what}; {why} from a preset name ({', '.join(RECIPES)}) or a JSON/YAML spec file{data}"


BUILDS = {"train": "train builds a new model", "search": "search builds each trial's model"}  # model_problem's commands


def _trained_model_problem(model: str, what: str, command: str) -> str:
    """The problem of a TrainConfig model that names a trained model (`what`, trained_model_kind's, not "a folder"),
    with the ways to go on from one that fit `command`: train's, --resume its run (where it has last.pt) or a new run
    --init-from its weights; search's (which has no --resume), trials --init-from its weights, else train's way
    instead. (search was told train's ways alone, as if it had been train.)"""
    path = Path(model)
    run = path if what == "a run folder" else path.parent
    its = "that" if run == path else "its"
    # os.path.exists, not Path's: a folder name too long (ENAMETOOLONG) was Path.exists' OSError, a traceback
    resume = (f"ferkit train --resume {shell_word(run)}"  # (what --resume needs)
              if os.path.exists(run / runs.LAST) and os.path.exists(run / runs.CONFIG) else None)
    net = (f"--config {shell_word(run / runs.CONFIG)}" if os.path.exists(run / runs.CONFIG) else
           "--model (the preset or spec it trained)")
    if what == "an ONNX graph":  # (finetune.py: torch cannot load an ONNX graph's weights)
        weights, exported = "CHECKPOINT", ", with the checkpoint (.pt) it was exported from"
    else:
        weights = path if what == "a checkpoint" else run / (runs.BEST if os.path.exists(run / runs.BEST) else runs.LAST)
        weights, exported = shell_word(weights), ""
    new_run = f"ferkit train {net} --init-from {weights} --out NEW_FOLDER{exported}"
    if command == "search":
        ways = [f"to search with every trial starting from its weights: ferkit search {net} --init-from {weights}{exported} "
                "(a layer whose size a trial changes starts new)",
                f"to continue {its} run instead: {resume}" if resume else f"to train a new run from them instead: {new_run}"]
    else:
        ways = ([f"to continue {its} run: {resume}"] if resume else []) + [f"to start a new run from its weights: {new_run}"]
    return f"{not_a_spec(model, what, BUILDS[command])}; {'; '.join(ways)}"


def model_problem(model, command: str = "train") -> str | None:
    """The problem of TrainConfig's model as `command` (train or search) builds it, or None: a run, checkpoint or ONNX
    graph given as the net to build gets the command's ways on from it (_trained_model_problem), over a Path's problem
    (which has a checkpoint renamed .json); a Path to another folder keeps its own (model_path_problem)."""
    text = path_text(model)
    what = trained_model_kind(text)
    if what and what != "a folder":
        return _trained_model_problem(text, what, command)
    return model_path_problem(model) or (not_a_spec(text, what, BUILDS[command]) if what else None)


def teacher_list(value):
    """A config's teacher field as a list: an older config's one path (or null) means [path] (or [])."""
    value = path_text(value)
    if value is None or isinstance(value, str):
        return [value] if value else []
    return [path_text(t) for t in value] if isinstance(value, list) else value


def flag(name: str) -> str:
    """The flag of a TrainConfig field: batch_size -> --batch-size. Problems name fields by it."""
    return "--" + name.replace("_", "-")


def named_in_file(message: str, source: str, names) -> str:
    """A TrainConfig problem with the fields `names`, set by the config file `source`, named as its
    keys rather than as flags: "--flip must be ..." -> "y.yaml: flip must be ..."; a key that is no
    string (YAML's `1:`, `null:`) is an unknown field, named as it is. Only each problem's subject, the start of
    its line up to its first ": " or " must ", is renamed: the flags of a way on that it gives are typed as flags
    (train's "ferkit train --model (the preset or spec it trained) --init-from ..." read "ferkit train y.yaml: model
    (the preset ...)" where the file set model)."""
    def rename(subject: re.Match) -> str:
        text = subject.group()
        for name in map(str, names):
            text = re.sub(rf"(?<![\w-]){re.escape(flag(name))}(?![\w-])", f"{source}: {name}", text)
        return text

    message = re.sub(r"^.*?(?=: | must |$)", rename, message, flags=re.MULTILINE)
    return message.replace("training config: unknown", f"{source}: unknown", 1)


@dataclass
class TrainConfig:
    model: str = option("shallow", "preset name (see `ferkit models`) or a JSON/YAML model spec file")
    data: str | None = option(None, "FER2013 CSV (.csv/.csv.gz), an image folder (ROOT/<class>/*.jpg or "
                                    "ROOT/{train,val,test}/<class>/*.jpg) or an image list (CSV/TSV of path,label[,split]); "
                                    "default $FERKIT_DATA or ../shared/data/fer2013/fer2013.csv.gz")
    skip_bad_rows: bool = option(False, "skip malformed rows/images (and report how many) instead of stopping")
    # --set FIELD=VALUE, one field at a time, each parsed as YAML (cli._parse_set)
    overrides: dict = option(help="model spec fields to change, e.g. {\"fcs.0.units\": 1024}", factory=dict)
    epochs: int | None = option(None, "epochs (the paper: 30 shallow, 35 deep)")
    batch_size: int = option(128, "batch size")
    lr: float | None = option(None, "learning rate (the paper: 1e-3 shallow, 1e-2 deep)")
    l2: float | None = option(None, "L2 weight decay (the paper: 1e-6 shallow, 1e-7 deep)")
    optimizer: Optimizer = option("adam", "optimizer; sgd has Nesterov momentum 0.9")
    schedule: Schedule = option("none", "learning-rate schedule; step: x0.1 at 50% and 75% of training")
    label_smoothing: float = option(0.0, "label smoothing; 0 = off")
    # Polyak averaging (timm's ModelEma): the average of the last ~1/(1-D) steps' weights sits nearer the
    # middle of the minimum the noisy steps circle; it costs a copy of the weights and an update a step.
    ema: float = option(0.0, "keep an exponential moving average of the weights and batch-norm statistics with "
                             "decay D a step (e.g. 0.999), and validate and save the average; 0 = off")
    flip: bool = option(True, "random horizontal flips (the paper)")
    crop_pad: int = option(0, "random shift of up to N pixels (random crop of the zero-padded face); 0 = off")
    rotate: float = option(0.0, "random rotation up to +-degrees; 0 = off")
    # photos' crops vary in margin and scale around the detector's box; FER2013's faces are framed alike
    zoom: float = option(0.0, "random zoom in or out by a factor up to 1+Z (e.g. 0.15); 0 = off")
    erase: float = option(0.0, "probability of random erasing of a patch; 0 = off")
    photo_aug: float = option(0.0, "probability a face is degraded as photos are: JPEG (quality 30-90), blur, "
                                   "downscale-upscale, brightness/contrast/gamma; 0 = off")
    mixup: float = option(0.0, "mixup (Zhang et al. 2018): blend faces (and their targets) in pairs by weights "
                               "~ Beta(ALPHA, ALPHA); 0 = off (e.g. 0.2)")
    cutmix: float = option(0.0, "CutMix (Yun et al. 2019): paste a box of another face, targets mixed by area "
                                "~ Beta(ALPHA, ALPHA); 0 = off (e.g. 1.0)")
    mixup_prob: float = option(0.5, "with mixup and CutMix both on: the probability that a batch is mixed up, else CutMixed")
    # A net whose answer for a face and its mirror image differ gains from averaging the two at prediction
    # (the mirror), which doubles a face's time; this term teaches the one view what the two agree on.
    flip_consistency: float = option(0.0, "weight of a term pulling the net's predictions for each face and its mirror "
                                          "image together (symmetric KL); costs a second pass of the net a batch; 0 = off")
    tta: bool = option(False, "evaluate with the mirrored face too (test-time augmentation)")
    seed: int = option(0, "random seed")
    # not a Literal: cuda:N takes any N (checked in __post_init__)
    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps")
    precision: TorchPrecision = option("auto", "fp32, or bf16 autocast; auto = bf16 where the device runs it fast")
    threads: int = option(0, "CPU threads for torch; 0 = torch's default")
    train_subset: int = option(0, "train on a random sample of N training images, stratified by class and drawn with "
                                  "--seed; 0 = all (quick runs)")
    labels: LabelSetName = option(DEFAULT, "label set (the model's outputs): " + "; ".join(
        f"{s.name}: {s.about}" for s in LABEL_SETS.values()) + "; data: the data's own classes (folder names, or "
        "labels.txt / --label-names, in that order)")
    # A text, not a list: a file name or a comma list, read by data.read_names (also --label-names of evaluate etc.)
    label_names: str | None = option(None, "the data's class names in label order: a text file (one name a line) or a "
                                           "comma list; integer labels of an image list count from 0 in it; default: "
                                           "labels.txt in the image folder or beside the list, else the class folders' names")
    split_seed: int = option(0, "seed of the stratified train/val/test split drawn for data that have none (a folder "
                                "without train/ val/ test/, a list without a split column)")
    val_fraction: float = option(0.1, "share of the faces the drawn split puts in val")
    test_fraction: float = option(0.1, "share of the faces the drawn split puts in test")
    labels_file: str | None = option(None, "FER+ vote file; default fer2013new.csv beside the data")
    label_mode: LabelMode = option("crossentropy", "how FER+ votes become training targets")
    # A single path (or null), as configs written before ensembles of teachers have it, means [path] (or []).
    teacher: list[str] = option(help="checkpoint, or .onnx graph from 'ferkit export', to distil from (knowledge distillation); repeat it or give a comma "
                                     "list to distil from the average of several teachers' softened probabilities",
                                factory=list)
    distill: float = option(0.5, "with a teacher: weight of the distillation loss (1 - it: the labels' loss)")
    distill_temp: float = option(2.0, "with a teacher: softmax temperature of the distillation loss")
    # The teachers' own test-time augmentation: their targets get what the mirror buys them at
    # prediction (0.4-0.9 points for the bundled vgg-wide models), and are the same for a face and its mirror image.
    teacher_tta: bool = option(False, "with a teacher: distil from the average of each teacher's view of the face "
                                      "and of its mirror image (twice the teachers' work)")
    init_from: str | None = option(None, "start from these weights: a state_dict file (.pth, e.g. torchvision's "
                                         "ImageNet resnet18/34 weights) or a ferkit checkpoint, copied by parameter name; "
                                         "a head of another size is left new, colour first-conv weights are summed for grey")
    freeze: int = option(0, "freeze the first N layers before the head (left out of training, their batch norms on "
                            "their running statistics): a ResNet's stem and layer1-4 (5), mobilenet_v2's features.0-18 "
                            "(19), the CNN family's conv layers then hidden FC layers; -1 = all but the head; 0 = none")
    backbone_lr: float | None = option(None, "learning rate of everything but the head as a fraction of --lr (its "
                                             "schedule alike), e.g. 0.1 for pretrained layers under a new head; "
                                             "default: the head's")

    def __post_init__(self):
        model = model_problem(self.model)  # (of the Path itself: as path_text's str, Path("lite") is the preset)
        for name in PATH_FIELDS:
            setattr(self, name, path_text(getattr(self, name)))
        self.teacher = teacher_list(self.teacher)
        bad = check_fields(self, flag)
        if model and "model" not in bad:
            bad["model"] = model
        if "label_names" in bad:  # a YAML config's list or mapping of names: show it as the text that works
            bad["label_names"] = problem("--label-names", names_text(self.label_names), self.label_names)
        if "teacher" not in bad and not all(isinstance(t, str) and t for t in self.teacher):
            bad["teacher"] = problem("--teacher", "a list of checkpoint or .onnx paths", self.teacher)
        p = list(bad.values())
        # ranges, of the fields whose type is right (a range check of a string would crash); all
        # problems are reported at once
        for name, (fits, what) in TRAIN_RANGES.items():
            value = getattr(self, name)
            if name not in bad and value is not None and not fits(value):
                p.append(problem(flag(name), what, value))
        if "init_from" not in bad and self.init_from is not None and not self.init_from.strip():
            p.append(problem("--init-from", "a weights file (or left out)", self.init_from))
        if "device" not in bad and not re.fullmatch(precisions.DEVICE, self.device):
            p.append(problem("--device", precisions.DEVICE_TEXT, self.device))
        if "epochs" not in bad and self.epochs is not None:  # (None: the preset's)
            p += bounded("--epochs", self.epochs, 1, MAX_EPOCHS)
        if "crop_pad" not in bad:
            p += bounded("--crop-pad", self.crop_pad, 0, MAX_CROP_PAD)
        if "seed" not in bad:
            p += bounded("--seed", self.seed, 0, MAX_SEED)
        if "split_seed" not in bad:
            p += bounded("--split-seed", self.split_seed, 0, MAX_SPLIT_SEED)
        if not {"val_fraction", "test_fraction"} & set(bad) and self.val_fraction + self.test_fraction >= 1:
            p.append(problem("--val-fraction plus --test-fraction", "< 1 (some faces must train)",
                             self.val_fraction + self.test_fraction))
        if "label_names" not in bad and self.label_names is not None and not self.label_names.strip():
            p.append(problem("--label-names", "a file of names or a comma list (or left out)", self.label_names))
        _raise(p, "training config")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _build(cls, d, "training config")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_file(path))


def names_text(value) -> str:
    """What --label-names must be, with value (a list of names, or a mapping of label to name, as a YAML or
    JSON config writes them naturally) as that text where it holds names: "got ['calm', 'excited']" alone
    did not say that the field is one string."""
    names = value
    if isinstance(value, dict):  # {0: calm, 1: excited}: in label order where the labels sort
        try:
            names = [name for _, name in sorted(value.items())]
        except TypeError:
            names = list(value.values())
    given = isinstance(names, (list, tuple)) and names and all(isinstance(n, str) and n.strip() for n in names)
    example = quoted(json.dumps(",".join(names)), 80) + " for those names" if given else 'e.g. "angry,happy,sad"'
    return f"one string, the class names in label order as a comma list ({example}) or the path of a text file of them, one a line"


# lr and backbone_lr (a fraction of lr: backbone_lr 1e308 overflowed the optimizer as lr 1e308 did)
RATE = (lambda v: 0 < v <= MAX_RATE, f"> 0 and at most {MAX_RATE:g}")

# TrainConfig field -> (fits(value), what it must be); a None value (the preset's) is not checked.
TRAIN_RANGES = {
    "batch_size": (lambda v: v >= 2, ">= 2 (training skips one-face batches: batch norm needs two)"),
    "lr": RATE,
    "l2": (lambda v: 0 <= v <= MAX_RATE, f">= 0 and at most {MAX_RATE:g}"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "ema": (lambda v: 0 <= v < 1, "in [0, 1) (e.g. 0.999; 0: off)"),
    "erase": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "photo_aug": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "zoom": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "mixup_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "distill": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "distill_temp": (lambda v: v > 0, "> 0"),
    "freeze": (lambda v: v >= -1, ">= -1 (-1: all but the head)"),
    "backbone_lr": (RATE[0], f"{RATE[1]} (a fraction of --lr; to keep layers fixed, --freeze them)"),
    "val_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "test_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "threads": (lambda v: 0 <= v <= MAX_THREADS, f"in 0..{MAX_THREADS} (0: torch's default)"),
    "flip_consistency": (lambda v: 0 <= v <= MAX_RATE, f">= 0 and at most {MAX_RATE:g} (its weight against the labels' loss)"),
    "rotate": (lambda v: 0 <= v <= 180, "in [0, 180] (degrees either way)"),
    **{name: (lambda v: v >= 0, ">= 0") for name in ("train_subset", "mixup", "cutmix")},
}


def _index(part: str, node: list, path: str, spec: dict, flag: str, key: str) -> int:
    """A layer's number in a dotted path, counted from 0, as the layers of node (the list at path) go.
    Python's -1 for the last is refused: a second name for a layer, which a run's overrides would record
    as given. A bad number is told the list's length (the hint of paths such as convs.0.filters did not
    say why convs.-1 or convs.5 named no field)."""
    if part.isascii() and part.isdigit() and int(part) < len(node):
        return int(part)
    where = f"{flag} {key}"
    if not node and spec.get("backbone") is not None:
        raise ConfigError(f"{where}: {path} has no layers: backbone {spec['backbone']}'s layers are fixed")
    if not node:
        raise ConfigError(f"{where}: {path} has no layers; to add some, give the list whole: {flag} '{path}=[{{}}]'")
    last = len(node) - 1
    has = f"{path} has {len(node)} layer(s), numbered from 0: {path}.0" + (f" to {path}.{last} (the last)" if last else "")
    if part.startswith("-"):
        raise ConfigError(f"{where}: layers count from the first, not from the end; {has}")
    why = f"no layer {part}" if part.isdigit() else f"{part!r} is no layer number"
    raise ConfigError(f"{where}: {why}; {has}; to add or remove layers, give the list whole: {flag} '{path}=[...]'")


def _fields(parts: list[str]) -> set[str]:
    """The field names of the section a spec path leads to (hog, convs.N, fcs.N), whatever that section's
    mapping holds now: one an earlier --set gave (hog={}) leaves out the fields it keeps at their defaults."""
    kind = HogSpec if parts == ["hog"] else {"convs": ConvSpec, "fcs": FCSpec}.get(parts[0]) if len(parts) == 2 else None
    return {f.name for f in fields(kind)} if kind else set()


def override_spec(spec: dict, overrides: dict, flag: str = "--set") -> dict:
    """Apply dotted-path overrides to a spec dict, in their order (left to right, as --set gives them): a later
    path may go into a section an earlier one set, {"hog": {}, "hog.orientations": 12}. Layers are numbered
    from 0: {"convs.1.dropout": 0.3, "hog": None, "fcs.0.units": 1024}. Every path that names no field is one
    line of one error (it was the first alone, the next told only once that one was fixed)."""
    import copy

    # (resolve_spec("tiny", [("fcs.0.units", 64)]) was AttributeError: 'list' object has no attribute 'items')
    check_args(("overrides", overrides, "a mapping of dotted model spec fields to values, such as {'fcs.0.units': 1024}",
                isinstance(overrides, dict)))
    spec = copy.deepcopy(spec)
    bad = []
    for key, value in overrides.items():
        try:
            _set_path(spec, str(key), value, flag)
        except ConfigError as e:
            bad.append(str(e))
    if bad:
        raise ConfigError("\n".join(bad))
    return spec


def _set_path(spec: dict, key: str, value, flag: str) -> None:
    """override_spec's one path, set in spec, or its ConfigError."""
    node, parts = spec, key.split(".")
    try:
        for i, part in enumerate(parts[:-1]):
            _check_section(node, parts[:i], key, flag)
            node = node[_index(part, node, ".".join(parts[:i]), spec, flag, key)] if isinstance(node, list) else node[part]
        _check_section(node, parts[:-1], key, flag)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(last, node, ".".join(parts[:-1]), spec, flag, key)] = value
        elif last in node or node is spec or last in _fields(parts[:-1]):
            node[last] = value
        else:
            raise KeyError(last)
    except (KeyError, IndexError, ValueError, TypeError):
        raise ConfigError(_no_field(spec, key, value, flag)) from None


def _check_section(node, parts: list[str], key: str, flag: str) -> None:
    """A ConfigError where a path goes into what is no list of layers or mapping of fields (an earlier --set convs=5):
    convs.0.filters was told "no such model spec field", and that the spec had 0 conv layers. (hog: null is
    _no_field's, which says how to give the section.)"""
    if isinstance(node, (dict, list)) or node is None and parts == ["hog"]:
        return
    path = ".".join(parts)
    if parts in (["convs"], ["fcs"]):
        raise ConfigError(f"{flag} {key}: {path} is not a list of layers (got {quoted(repr(node), 60)}); give the layers "
                          f"as a list: {flag} '{path}=[...]'")
    raise ConfigError(f"{flag} {key}: {path} is not a section of fields (got {quoted(repr(node), 60)}); give its fields "
                      f"as a mapping: {flag} '{path}={{...}}'")


def spec_paths(spec: dict, conv: str = "filters", fc: str = "units", hog: str = "pixels_per_cell") -> str:
    """Dotted paths for a hint, one into each kind of section the spec dict has (its first conv and FC layer,
    its HOG section), "convs.0.filters, fcs.0.units or hog.pixels_per_cell"; "" for none: a path into a section
    it lacks (hog.orientations without HOG) would be refused in turn."""
    has = {name: isinstance(spec.get(name), list) and len(spec[name]) > 0 for name in ("convs", "fcs")}
    paths = ([f"convs.0.{conv}"] if has["convs"] else []) + ([f"fcs.0.{fc}"] if has["fcs"] else []) + (
        [f"hog.{hog}"] if isinstance(spec.get("hog"), dict) else [])
    return " or ".join(filter(None, (", ".join(paths[:-1]), *paths[-1:])))


def spec_layers(spec: dict) -> str:
    """What a spec dict has, for a hint: "2 conv and 1 FC layers, and HOG features", "resnet18's fixed layers (a backbone)"."""
    if spec.get("backbone") is not None:
        return f"{spec['backbone']}'s fixed layers (a backbone)"
    count = {name: len(spec[name]) if isinstance(spec.get(name), list) else 0 for name in ("convs", "fcs")}
    return (f"{count['convs']} conv and {count['fcs']} FC layers, and "
            + ("HOG features" if isinstance(spec.get("hog"), dict) else "no hog section"))


def _no_field(spec: dict, key: str, value, flag: str) -> str:
    """override_spec's error for a path that names no field. Where the spec has no HOG section (hog: null), a
    path into it is told the form that works, the section whole: the hint of dotted paths such as
    hog.pixels_per_cell sent the user back to the very path just refused."""
    section, _, name = key.partition(".")
    has_hog = isinstance(spec.get("hog"), dict)
    if section == "hog" and not has_hog and name and "." not in name:
        # default=str: YAML reads 2001-12-14 as a date, !!binary as bytes, which json.dumps refused with a TypeError
        try:
            shown = quoted(json.dumps(value, default=str), 80)
        except ValueError:  # an int of over 4,300 digits (a library caller's), which Python will not write out
            shown = "VALUE"
        return (f"{flag} {key}: the spec has no hog section to set a field of; give the section whole with the fields "
                f"to change (the others keep their defaults): {flag} 'hog={{{name}: {shown}}}'")
    paths = spec_paths(spec)
    adds = "" if has_hog or spec.get("backbone") is not None else f": {flag} 'hog={{pixels_per_cell: 8}}' adds one"
    return (f"{flag} {key}: no such model spec field"
            + (f"; use a dotted path such as {paths}" if paths else "")
            + f" (the spec has {spec_layers(spec)}{adds})")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a few aliased lines can expand into gigabytes ("billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in ferkit configs; write the values out",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        # PyYAML keeps the last of a repeated key: a config's second `lr:` would silently win
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # refused by SafeLoader itself, naming the line
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} appears twice in one mapping; keep one",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """YAML as plain data, refusing aliases; used for config files and --set values alike.
    A YAMLError comes back as one line: 'line L, column C: problem'; so does a scalar that PyYAML reads
    as a number or date Python cannot hold, whose ValueError went past its callers (search --param's
    categorical:2001-13-01, a FERKIT_SERVE_* variable of 5,000 digits: tracebacks)."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise yaml.YAMLError(where + " ".join(x for x in (e.context, e.problem) if x)) from None
    except ValueError as e:  # (an integer over 4,300 digits: its advice after ';' is for programmers)
        raise yaml.YAMLError(f"a number or date Python cannot hold ({str(e).split(';')[0]})") from None


def _no_repeats(pairs: list) -> dict:
    """A JSON object, refusing a repeated key (json keeps the last one, silently)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object; keep one")
        seen.add(key)
    return dict(pairs)


def read_file(path: str | Path) -> dict:
    """Read a JSON or YAML mapping, with a clear error naming the file."""
    if not isinstance(path, (str, bytes, os.PathLike)):  # (TrainConfig.from_file(None) or of an open file was Path's TypeError)
        fix = "; give its name (f.name)" if hasattr(path, "read") else ""
        raise ConfigError(problem("path", "the path (str or Path) of a JSON or YAML file", path) + fix)
    p = Path(os.fsdecode(path))
    is_yaml = p.suffix.lower() in (".yaml", ".yml")
    try:
        check_regular_file(p, "a JSON or YAML file", ConfigError)  # a FIFO would wait forever, /dev/zero never end
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size:,} bytes is too big for a config (at most {MAX_CONFIG_BYTES:,})")
        text = p.read_text(encoding="utf-8-sig")  # (a byte-order mark, as Windows editors write, is not JSON)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:  # (a ValueError: before the ValueError below)
        raise ConfigError(f"{p}: not a text file (byte {e.start} is not UTF-8); give a JSON or YAML config") from None
    except ValueError as e:  # a NUL character in the name: stat's bare 'embedded null byte'
        raise ConfigError(f"{quoted(repr(str(p)))}: not a path ({e}); check the path") from None
    if not (re.sub(r"(?m)^\s*#.*$", "", text) if is_yaml else text).strip():  # (YAML: or comments only)
        raise ConfigError(f"{p}: the file is empty; give a {'YAML' if is_yaml else 'JSON'} mapping of field names to values")
    try:
        d = load_yaml(text) if is_yaml else json.loads(text, object_pairs_hook=_no_repeats)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{p}: not valid {'YAML' if is_yaml else 'JSON'} ({e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping of field names to values at the top level")
    if _depth(d) > MAX_DEPTH:
        raise ConfigError(f"{p}: nested more than {MAX_DEPTH} levels deep; a config or spec is a mapping of fields "
                          "to values, lists of layers and their fields")
    return d


def _depth(value) -> int:
    """How deeply lists and mappings nest in value (a scalar: 0), counted without recursion."""
    most, todo = 0, [(value, 0)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            most = max(most, d + 1)
            if d + 1 <= MAX_DEPTH:  # (deeper is refused anyway)
                todo += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return most


def _build(cls, d, where):
    """A ModelSpec or TrainConfig (which check themselves) from a mapping."""
    if not isinstance(d, dict):
        raise ConfigError(problem(where, "a mapping of field names to values", d))
    unknown = _unknown(cls, d, where)
    if unknown:
        raise ConfigError(unknown)
    return cls(**d)


def _unknown(cls, d: dict, where: str) -> str | None:
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(map(str, set(d) - set(known)))
    if unknown and (other := _other_kind(cls, unknown)):
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        return f"{where}: unknown field(s) {shown}; {other}"
    if unknown:
        close = {u: difflib.get_close_matches(u.replace("-", "_"), known, n=1) for u in unknown}  # batch-size, epoch
        meant = [f"{m[0]} for {u}" for u, m in close.items() if m]
        return (f"{where}: unknown field(s) {', '.join(unknown)}" + (f" (did you mean {', '.join(meant)}?)" if meant else "")
                + f"; known fields are {', '.join(known)}")
    return None


def _other_kind(cls, unknown: list[str]) -> str | None:
    """Where the fields `unknown` of a file read as cls are all the other kind of file's (a model spec given to
    --config, a training config such as a search's best.yaml or a run's config.json given to --model), the flag
    that takes it; else None. The list of known fields alone did not say the file went to the wrong flag."""
    spec, train = {f.name for f in fields(ModelSpec)}, {f.name for f in fields(TrainConfig)} | {"spec"}  # (a run's record)
    if cls is TrainConfig and set(unknown) <= spec:
        return ("those are a model spec's fields: give the file with --model (a --config file holds training settings "
                "such as epochs and lr, and its model: a preset or the path of a spec file)")
    if cls is ModelSpec and set(unknown) <= train:
        return ("those are a training config's fields: give the file with --config (a model spec holds the net's "
                f"layers: {', '.join(sorted(spec))})")
    return None


def _part(cls, value, where: str, p: list[str]):
    """A layer spec (ConvSpec, FCSpec, HogSpec) from a mapping (or as it is), checked: problems go to p."""
    if not isinstance(value, (cls, dict)):
        p.append(problem(where, f"a mapping of {cls.__name__} fields", value))
        return None
    if isinstance(value, dict):
        unknown = _unknown(cls, value, where)
        if unknown:
            p.append(unknown)
            return None
        value = cls(**value)
    p += list(check_fields(value, lambda f: f"{where}.{f}").values()) or value.problems(where)
    return value


def check_fields(obj, name=str) -> dict[str, str]:
    """Check (and coerce in place) every field of a dataclass against its type annotation:
    {field: problem} of those that do not fit, each problem naming its field as name(field)
    (a flag, a dotted path, an environment variable)."""
    hints = typing.get_type_hints(type(obj))
    bad = {}
    for f in fields(obj):
        ok, value = coerce(getattr(obj, f.name), hints[f.name])
        if ok:
            setattr(obj, f.name, value)
        else:
            bad[f.name] = problem(name(f.name), _what(hints[f.name]), value)
    return bad


def from_text(cls, name: str, text: str):
    """Field `name` of dataclass cls from text (an environment variable): the text read as YAML
    where that fits the field's annotation ("8" -> 8, "1e-3" -> 0.001, "null" -> None), else the
    text itself, for check_fields to accept (a string field) or report in its usual words."""
    try:
        ok, value = coerce(load_yaml(text), typing.get_type_hints(cls)[name])
    except (yaml.YAMLError, RecursionError):  # (RecursionError: thousands of '[', past PyYAML's recursion)
        return text
    return value if ok else text


def choices(tp) -> tuple | None:
    """The values a Literal annotation (or an optional one) allows; None for any other."""
    args = _union(tp)
    if args is not None:
        return next((c for c in map(choices, args) if c is not None), None)
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def base_type(tp):
    """The type a value of annotation tp has: int for int | None, str for a Literal of strings, list for list[str]."""
    args = _union(tp)
    if args is not None:
        return base_type(next(a for a in args if a is not type(None)))
    if typing.get_origin(tp) is Literal:
        return type(typing.get_args(tp)[0])
    return typing.get_origin(tp) or tp


def _union(tp) -> tuple | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else None


def coerce(value, tp) -> tuple[bool, object]:
    """(fits, value): ints become floats where a float is wanted, and so do numeric strings
    such as "1e-3" (YAML 1.1 reads those as strings); floats must be finite; bools are not numbers."""
    args = _union(tp)
    if args is not None:
        if value is None:
            return type(None) in args, value
        for a in args:
            if a is not type(None):
                ok, v = coerce(value, a)
                if ok:
                    return True, v
        return False, value
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp), value
    tp = typing.get_origin(tp) or tp
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False, value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
        return ok, float(value) if ok else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if is_dataclass(tp):  # built (and checked) by the parent, see ModelSpec.__post_init__
        return isinstance(value, (dict, tp)), value
    return isinstance(value, tp), value


def _finite(value: int | float) -> bool:
    """Whether a number is a finite float: an int past float's range (a config's `lr: ` and 310 digits) is not.
    (math.isfinite raised its OverflowError, a traceback in place of the field's problem.)"""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _what(tp) -> str:
    """What a value of annotation tp must be, in words."""
    args = _union(tp)
    if args is not None:
        return " or ".join([_what(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else []))
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    tp = typing.get_origin(tp) or tp
    if is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields (e.g. {{}} for the defaults)"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", dict: "a mapping",
            list: "a list"}.get(tp, tp.__name__)


def _raise(problems: list[str], what: str):
    if problems:
        raise ConfigError(f"invalid {what}:\n  - " + "\n  - ".join(problems))
