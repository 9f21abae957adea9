"""Typed, serialisable configs: the model spec (paper's CNN family) and the training config.

    [Conv-(SBN)-ReLU-(Dropout)-(MaxPool)] x M - [Affine-(BN)-ReLU-(Dropout)] x N - Affine - Softmax

Each dataclass checks itself in __post_init__, collects every problem and raises one
ConfigError naming each field and the fix. `from_file` reads JSON or YAML; `to_dict` gives
plain data that JSON and `torch.load(weights_only=True)` both accept.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import ConfigError


@dataclass
class ConvSpec:
    filters: int = 32  # output channels
    kernel: int = 3  # square kernel size
    stride: int = 1
    padding: int | None = None  # zero-padding; None = kernel // 2 ("same" at stride 1)
    batch_norm: bool = True  # spatial batch norm after the conv
    dropout: float = 0.0  # dropout probability after ReLU
    pool: int = 0  # max-pool size and stride after dropout; 0 = no pool

    def problems(self, where: str) -> list[str]:
        p = []
        for name in ("filters", "kernel", "stride"):
            if getattr(self, name) < 1:
                p.append(f"{where}.{name}={getattr(self, name)}: must be >= 1")
        if self.padding is not None and self.padding < 0:
            p.append(f"{where}.padding={self.padding}: must be >= 0 (or null for kernel//2)")
        if not 0 <= self.dropout < 1:
            p.append(f"{where}.dropout={self.dropout}: must be in [0, 1)")
        if self.pool < 0 or self.pool == 1:
            p.append(f"{where}.pool={self.pool}: use 0 (no pool) or a size >= 2")
        return p


@dataclass
class FCSpec:
    units: int = 512  # hidden units
    batch_norm: bool = False  # batch norm after the affine layer
    dropout: float = 0.0  # dropout probability after ReLU

    def problems(self, where: str) -> list[str]:
        p = [] if self.units >= 1 else [f"{where}.units={self.units}: must be >= 1"]
        if not 0 <= self.dropout < 1:
            p.append(f"{where}.dropout={self.dropout}: must be in [0, 1)")
        return p


@dataclass
class HogSpec:
    """HOG features (scikit-image) joined to the conv features before the FC layers."""

    orientations: int = 9  # gradient orientation bins
    pixels_per_cell: int = 8  # square cell size in pixels
    cells_per_block: int = 2  # square block size in cells (block normalisation)

    def problems(self, where: str) -> list[str]:
        p = []
        if self.orientations < 1:
            p.append(f"{where}.orientations={self.orientations}: must be >= 1")
        if not 1 <= self.pixels_per_cell <= 48:
            p.append(f"{where}.pixels_per_cell={self.pixels_per_cell}: must be in 1..48")
        if self.cells_per_block < 1 or self.cells_per_block * self.pixels_per_cell > 48:
            p.append(f"{where}.cells_per_block={self.cells_per_block}: a block must fit in 48 pixels")
        return p


@dataclass
class ModelSpec:
    convs: list[ConvSpec] = field(default_factory=list)  # M conv layers, in order
    fcs: list[FCSpec] = field(default_factory=list)  # N hidden affine layers, in order
    hog: HogSpec | None = None  # join HOG features to the conv features (hybrid model)
    gap: bool = False  # global average pool of the last conv map instead of flattening it (VGG/ResNet-style head)
    in_size: int = 48  # input height = width
    num_classes: int = 7

    def __post_init__(self):
        self.convs = [c if isinstance(c, ConvSpec) else _build(ConvSpec, c, "conv") for c in self.convs]
        self.fcs = [c if isinstance(c, FCSpec) else _build(FCSpec, c, "fc") for c in self.fcs]
        if isinstance(self.hog, dict):
            self.hog = _build(HogSpec, self.hog, "hog")
        p = []
        for i, c in enumerate(self.convs):
            p += c.problems(f"convs[{i}]")
        for i, c in enumerate(self.fcs):
            p += c.problems(f"fcs[{i}]")
        if self.hog is not None:
            p += self.hog.problems("hog")
        if not p:
            size = self.in_size
            for i, c in enumerate(self.convs):
                pad = c.kernel // 2 if c.padding is None else c.padding
                size = (size + 2 * pad - c.kernel) // c.stride + 1
                if c.pool:
                    size //= c.pool
                if size < 1:
                    p.append(f"convs[{i}]: the feature map shrinks to nothing; use fewer pools, more padding or a smaller stride")
                    break
        _raise(p, "model spec")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return _build(cls, d, "model spec")


@dataclass
class TrainConfig:
    model: str = "shallow"  # preset name or path to a JSON/YAML model spec
    data: str | None = None  # FER2013 CSV or image folder; None = $FERKIT_DATA or the shared copy
    skip_bad_rows: bool = False  # skip malformed rows/images (reported) instead of stopping
    overrides: dict = field(default_factory=dict)  # model spec fields to change, e.g. {"fcs.0.units": 1024}
    epochs: int | None = None  # None = the preset's default (paper: 30 shallow, 35 deep)
    batch_size: int = 128
    lr: float | None = None  # None = the preset's default (paper: 1e-3 shallow, 1e-2 deep)
    l2: float | None = None  # L2 weight decay; None = the preset's (paper: 1e-6 shallow, 1e-7 deep)
    optimizer: str = "adam"  # adam | adamw | sgd (Nesterov momentum 0.9)
    schedule: str = "none"  # none | cosine | onecycle | step (x0.1 at 50% and 75% of training)
    label_smoothing: float = 0.0
    flip: bool = True  # random horizontal flip (paper)
    crop_pad: int = 0  # random crop after zero-padding by this many pixels; 0 = off
    rotate: float = 0.0  # random rotation up to +-degrees; 0 = off
    erase: float = 0.0  # probability of random erasing of a patch; 0 = off
    tta: bool = False  # test-time augmentation (average with the flipped image) in evaluation
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); auto = bf16 where the device runs it fast
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    train_subset: int = 0  # train on the first N training images only; 0 = all (quick runs)
    labels: str = "fer2013"  # label set: fer2013 (7 emotions, the file's labels) | ferplus (8, from FER+ votes)
    labels_file: str | None = None  # FER+ votes; None = fer2013new.csv beside the data file
    label_mode: str = "crossentropy"  # FER+ training targets: majority | probability | crossentropy | multi_target
    teacher: str | None = None  # checkpoint whose predictions the model also learns from (distillation)
    distill: float = 0.5  # with a teacher: weight of the distillation loss (1 - it: the labels' loss)
    distill_temp: float = 2.0  # with a teacher: softmax temperature of the distillation loss

    def __post_init__(self):
        p = []
        if self.batch_size < 1:
            p.append(f"--batch-size={self.batch_size}: must be >= 1")
        if self.epochs is not None and self.epochs < 1:
            p.append(f"--epochs={self.epochs}: must be >= 1")
        if self.lr is not None and self.lr <= 0:
            p.append(f"--lr={self.lr}: must be > 0")
        if self.l2 is not None and self.l2 < 0:
            p.append(f"--l2={self.l2}: must be >= 0")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            p.append(f"--optimizer={self.optimizer!r}: choose adam, adamw or sgd")
        if self.schedule not in ("none", "cosine", "onecycle", "step"):
            p.append(f"--schedule={self.schedule!r}: choose none, cosine, onecycle or step")
        if self.precision not in ("auto", "fp32", "bf16"):
            p.append(f"--precision={self.precision!r}: choose auto, fp32 or bf16")
        if not 0 <= self.label_smoothing < 1:
            p.append(f"--label-smoothing={self.label_smoothing}: must be in [0, 1)")
        if not 0 <= self.erase <= 1:
            p.append(f"--erase={self.erase}: must be in [0, 1]")
        if self.labels not in ("fer2013", "ferplus"):
            p.append(f"--labels must be fer2013 or ferplus; got {self.labels!r}")
        if self.label_mode not in ("majority", "probability", "crossentropy", "multi_target"):
            p.append(f"--label-mode must be majority, probability, crossentropy or multi_target; got {self.label_mode!r}")
        if not 0 <= self.distill <= 1:
            p.append(f"--distill must be in [0, 1]; got {self.distill!r}")
        if not self.distill_temp > 0:
            p.append(f"--distill-temp must be > 0; got {self.distill_temp!r}")
        for name in ("crop_pad", "rotate", "train_subset", "threads"):
            if getattr(self, name) < 0:
                p.append(f"--{name.replace('_', '-')}={getattr(self, name)}: must be >= 0")
        _raise(p, "training config")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return _build(cls, d, "training config")

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_file(path))


def override_spec(spec: dict, overrides: dict) -> dict:
    """Apply dotted-path overrides to a spec dict: {"convs.1.dropout": 0.3, "hog": None, "fcs.0.units": 1024}."""
    import copy

    spec = copy.deepcopy(spec)
    for key, value in overrides.items():
        node, parts = spec, str(key).split(".")
        try:
            for part in parts[:-1]:
                node = node[int(part)] if isinstance(node, list) else node[part]
            last = parts[-1]
            if isinstance(node, list):
                node[int(last)] = value
            elif last in node or node is spec:
                node[last] = value
            else:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError(
                f"--set {key}: no such model spec field; use a dotted path such as convs.0.filters, "
                f"fcs.0.units or hog.pixels_per_cell (the spec has {len(spec.get('convs', []))} conv and "
                f"{len(spec.get('fcs', []))} FC layers)"
            ) from None
    return spec


def read_file(path: str | Path) -> dict:
    """Read a JSON or YAML mapping, with a clear error naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror or e})") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{p}: not valid {'YAML' if p.suffix.lower() in ('.yaml', '.yml') else 'JSON'} ({e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping of field names to values at the top level")
    return d


def _build(cls, d, where):
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known fields are {', '.join(sorted(known))}")
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def _raise(problems: list[str], what: str):
    if problems:
        raise ConfigError(f"invalid {what}:\n  - " + "\n  - ".join(problems))
