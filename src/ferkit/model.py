"""The paper's CNN family and torchvision-named ResNets and MobileNetV2, built from a ModelSpec, and a registry of named presets.

    x (B, channels, in_size, in_size) -> forward_features -> (B, C, H, W) -> flatten or pool (+ HOG)
      -> forward_head -> logits (B, num_classes)

`create_model("deep")` builds a preset by name; `list_models()` lists them. Softmax is left to
the loss / the predictor, so the model returns logits.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import (
    MOBILENET_LAST,
    MOBILENET_SETTINGS,
    MOBILENET_STEM,
    RESNET_BLOCKS,
    ConvSpec,
    FCSpec,
    HogSpec,
    ModelSpec,
    is_spec_file,
    mobilenet_stem_stride,
    override_spec,
    problem,
    read_file,
    resnet_maxpool,
)
from .errors import ConfigError
from .labels import DEFAULT, LABEL_CHOICES, LabelSet, label_set


class FerNet(nn.Module):
    head = "classifier"  # the output layer (a new one when fine-tuning to another label set)

    def __init__(self, spec: ModelSpec, hog_dim: int = 0):
        super().__init__()
        self.spec = spec
        layers, ch = [], spec.channels
        for c in spec.convs:
            block = [nn.Conv2d(ch, c.filters, c.kernel, c.stride, c.pad, bias=not c.batch_norm)]
            if c.batch_norm:
                block.append(nn.BatchNorm2d(c.filters))
            block.append(nn.ReLU(inplace=True))
            if c.dropout:
                block.append(nn.Dropout(c.dropout))
            if c.pool:
                block.append(nn.MaxPool2d(c.pool))
            layers.append(nn.Sequential(*block))
            ch = c.filters
        self.features = nn.Sequential(*layers)  # one Sequential per conv layer, for activation maps
        size = spec.feature_size()
        self.feature_shape = (ch, size, size)
        self.hog_dim = hog_dim
        n_in = (ch if spec.gap else ch * size * size) + hog_dim
        fc = []
        for f in spec.fcs:
            fc.append(nn.Linear(n_in, f.units, bias=not f.batch_norm))
            if f.batch_norm:
                fc.append(nn.BatchNorm1d(f.units))
            fc.append(nn.ReLU(inplace=True))
            if f.dropout:
                fc.append(nn.Dropout(f.dropout))
            n_in = f.units
        self.fc = nn.Sequential(*fc)
        self.classifier = nn.Linear(n_in, spec.num_classes)
        # the layer that sees the image's pixels: the first conv, else (a net of FC layers alone) the first linear
        self.first_layer = "features.0.0" if spec.convs else "fc.0" if spec.fcs else "classifier"

    def stages(self) -> list[tuple[str, ...]]:
        """The layers before the head in order, as module-name prefixes (what --freeze N counts):
        one a conv layer (features.i), one a hidden FC layer (its linear and batch norm)."""
        convs = [(f"features.{i}.",) for i in range(len(self.features))]
        fcs, i = [], 0
        for f in self.spec.fcs:
            fcs.append((f"fc.{i}.", f"fc.{i + 1}.") if f.batch_norm else (f"fc.{i}.",))
            i += 2 + f.batch_norm + bool(f.dropout)  # linear, [batch norm], ReLU, [dropout]
        return convs + fcs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, in_size, in_size) -> the last conv layer's output (B, C, H, W)."""
        return self.features(x)

    def forward_head(self, feats: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) conv features [+ (B, hog_dim) HOG] -> logits (B, num_classes)."""
        z = feats.mean((2, 3)) if self.spec.gap else feats.flatten(1)
        if self.hog_dim:
            if hog is None:
                raise ValueError("this is a HOG hybrid model: pass hog features (B, hog_dim) as well")
            z = torch.cat([z, hog.to(z.dtype)], dim=1)
        return self.classifier(self.fc(z))

    def forward(self, x: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), hog)


# ---------------------------------------------------------------- ResNets
# Written in plain torch (torchvision cannot be imported beside the CPU build of torch here), with
# torchvision's module names and layout (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ..., fc),
# so that torchvision's published resnet18/resnet34 state_dicts load by name (train --init-from).


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet-18/34 with FerNet's interface (spec, hog_dim, feature_shape, features,
    forward_features, forward_head, forward(x, hog=None)). The stem's 7x7 stride-2 conv is kept, so
    that ImageNet's conv1 weights fit; for small inputs (under 112 px, e.g. 48x48 faces) the max pool
    after it is an identity, which keeps a 48x48 face at 24x24 in layer1 (and 3x3 after layer4)
    instead of 12x12 (and 2x2). The pool has no weights: the parameter names are torchvision's either way."""

    head = "fc"
    first_layer = "conv1"  # the layer that sees the image's pixels

    def __init__(self, spec: ModelSpec, hog_dim: int = 0):
        super().__init__()
        if hog_dim:
            raise ValueError("a ResNet takes no HOG features")
        self.spec, self.hog_dim = spec, 0
        self.conv1 = nn.Conv2d(spec.channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if resnet_maxpool(spec.in_size) else nn.Identity()
        inplanes = 64
        for i, blocks in enumerate(RESNET_BLOCKS[spec.backbone]):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            layer = [BasicBlock(inplanes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, spec.num_classes)
        size = spec.feature_size()
        self.feature_shape = (512, size, size)
        # torchvision's initialisation: He-normal convs, unit batch norms (the fc keeps torch's default)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stages(self) -> list[tuple[str, ...]]:
        """The stem (conv1, bn1) and layer1-4, as module-name prefixes (what --freeze N counts)."""
        return [("conv1.", "bn1.")] + [(f"layer{i}.",) for i in range(1, 5)]

    @property
    def features(self) -> nn.Sequential:
        """The stem and the 4 stages as one Sequential (for activation maps and DeepDream); built
        on each call, not registered, so the state_dict keeps torchvision's names only."""
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return nn.Sequential(stem, self.layer1, self.layer2, self.layer3, self.layer4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, in_size, in_size) -> layer4's output (B, 512, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, feats: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(feats), 1))

    def forward(self, x: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), hog)


# ---------------------------------------------------------------- MobileNetV2
# torchvision's mobilenet_v2 (width 1.0) in plain torch, with its module names: features.0 (conv,
# batch norm, ReLU6), features.1-17 (inverted residuals, each `.conv`), features.18 (1x1 conv to
# 1280), classifier (dropout 0.2, linear), so that its published ImageNet weights load by name.


def _conv_bn(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), batch norm, ReLU6 (names .0, .1)."""
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers = [_conv_bn(inp, hidden, 1)] if expand != 1 else []  # 1x1 expansion
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),  # 3x3 depthwise
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]  # 1x1 linear projection
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 with FerNet's interface. For small inputs (under 112 px) the first
    conv has stride 1 instead of 2 (the weights are the same), so a 48x48 face reaches the last
    block at 3x3 instead of 2x2, as a small-input ResNet drops its stem pool."""

    head = "classifier.1"
    first_layer = "features.0.0"  # the layer that sees the image's pixels

    def __init__(self, spec: ModelSpec, hog_dim: int = 0):
        super().__init__()
        if hog_dim:
            raise ValueError("a MobileNetV2 takes no HOG features")
        self.spec, self.hog_dim = spec, 0
        layers, inp = [_conv_bn(spec.channels, MOBILENET_STEM, 3, mobilenet_stem_stride(spec.in_size))], MOBILENET_STEM
        for t, c, n, s in MOBILENET_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(_conv_bn(inp, MOBILENET_LAST, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(MOBILENET_LAST, spec.num_classes))
        size = spec.feature_size()
        self.feature_shape = (MOBILENET_LAST, size, size)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[tuple[str, ...]]:
        """features.0-18 (the stem, 17 inverted residuals, the last 1x1 conv), as module-name
        prefixes (what --freeze N counts)."""
        return [(f"features.{i}.",) for i in range(len(self.features))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, in_size, in_size) -> features.18's output (B, 1280, H, W)."""
        return self.features(x)

    def forward_head(self, feats: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(feats.mean((2, 3)))

    def forward(self, x: torch.Tensor, hog: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), hog)


BACKBONE_NETS = {"resnet18": ResNet, "resnet34": ResNet, "mobilenet_v2": MobileNetV2}


# ---------------------------------------------------------------- presets


@dataclass
class Preset:
    spec: ModelSpec
    about: str = ""  # one line for `ferkit models`; how each preset is trained lives in recipes.py


def _shallow(hog: bool = False) -> ModelSpec:
    # Section 5.1: conv 32 3x3 (BN, dropout, no pool) - conv 64 3x3 (BN, dropout, 2x2 pool) - FC 512
    return ModelSpec(
        convs=[ConvSpec(32, 3, dropout=0.2), ConvSpec(64, 3, dropout=0.2, pool=2)],
        fcs=[FCSpec(512, batch_norm=True, dropout=0.5)],
        hog=HogSpec() if hog else None,
    )


def _deep(hog: bool = False) -> ModelSpec:
    # Section 5.1: conv 64 3x3, 128 5x5, 512 3x3, 512 3x3 (each stride 1, BN, dropout, 2x2 pool); FC 256, 512
    return ModelSpec(
        convs=[ConvSpec(64, 3, dropout=0.2, pool=2), ConvSpec(128, 5, dropout=0.2, pool=2),
               ConvSpec(512, 3, dropout=0.2, pool=2), ConvSpec(512, 3, dropout=0.2, pool=2)],
        fcs=[FCSpec(256, batch_norm=True, dropout=0.5), FCSpec(512, batch_norm=True, dropout=0.5)],
        hog=HogSpec() if hog else None,
    )


def _vgg(width: int = 32) -> ModelSpec:
    # VGG-style pairs of 3x3 convs in the same family, doubling the width at each 2x2 pool
    # (48 -> 24 -> 12 -> 6 -> 3), then a global-average-pool head: few parameters, and the
    # classifier sees every position alike. No dropout: shifts, rotations, erasing and label
    # smoothing regularise enough, and conv dropout costs ~30% of a CPU step.
    def block(n):
        return [ConvSpec(n, 3), ConvSpec(n, 3, pool=2)]

    return ModelSpec(convs=block(width) + block(2 * width) + block(4 * width) + block(8 * width), gap=True)


def _lite() -> ModelSpec:
    # fast with one conv at 48x48 instead of two: on int8 onnxruntime the second 48x48 conv took
    # 14% of a face's time (the most of any layer but the first) for 18% of the MACs.
    return _without_second_full_size_conv(_vgg(24))


def _tiny() -> ModelSpec:
    # lite at two thirds of its width, the net of the default model (ferplus-fast): 2.2x fewer MACs
    # (24 M; the peer's mini-Xception does 10 M, in depthwise convs), for CPUs whose int8 runs
    # without dot-product instructions (AVX2 alone) at about half speed, where lite with the mirror
    # ran at 0.6x the peer's crops/s (2026-12-01). Distilled for 60 epochs it matches lite's
    # accuracy (87.3% FER+, docs/models.md).
    return _without_second_full_size_conv(_vgg(16))


def _without_second_full_size_conv(spec: ModelSpec) -> ModelSpec:
    del spec.convs[0]
    return spec


PRESETS: dict[str, Preset] = {
    "shallow": Preset(_shallow(), "paper 5.1: 2 conv + 1 FC"),
    "deep": Preset(_deep(), "paper 5.1: 4 conv + 2 FC"),
    "shallow-hog": Preset(_shallow(True), "shallow + HOG features (paper 5.2)"),
    "deep-hog": Preset(_deep(True), "deep + HOG features (paper 5.2)"),
    "vgg": Preset(_vgg(32), "8 conv (VGG pairs, 32-256 filters) + global average pool"),
    "vgg-wide": Preset(_vgg(48), "8 conv (VGG pairs, 48-384 filters) + global average pool"),
    "fast": Preset(_vgg(24), "8 conv (VGG pairs, 24-192 filters) + global average pool, short recipe"),
    "lite": Preset(_lite(), "7 conv (fast without its second 48x48 conv) + global average pool"),
    "tiny": Preset(_tiny(), "7 conv (lite at 2/3 width, 16-128 filters) + global average pool"),
    "resnet18": Preset(ModelSpec(backbone="resnet18"), "ResNet-18 (torchvision's names: --init-from its ImageNet weights)"),
    "resnet34": Preset(ModelSpec(backbone="resnet34"), "ResNet-34 (torchvision's names: --init-from its ImageNet weights)"),
    "mobilenet_v2": Preset(ModelSpec(backbone="mobilenet_v2"),
                           "MobileNetV2 (torchvision's names: --init-from its ImageNet weights)"),
}


def list_models() -> list[str]:
    return list(PRESETS)


def resolve_spec(name_or_path: str | os.PathLike | ModelSpec, overrides: dict | None = None) -> ModelSpec:
    """A ModelSpec from a preset name, a JSON/YAML spec file (a str by its suffix, or any Path) or a
    ModelSpec, with dotted-path overrides applied (e.g. {"fcs.0.units": 1024})."""
    is_file = is_spec_file(name_or_path)  # (asked of the Path itself: as a str, Path("lite") was read as the preset)
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if isinstance(name_or_path, ModelSpec):
        d = name_or_path.to_dict()
    elif not is_file and isinstance(name_or_path, str) and name_or_path in PRESETS:  # (a list was dict's TypeError: unhashable type)
        d = PRESETS[name_or_path].spec.to_dict()
    elif is_file:
        try:
            d = read_file(name_or_path)
        except ConfigError as e:  # read_file's error, as `train --model missing.json` gets; Path("lite") most likely meant the preset
            if name_or_path in PRESETS and not Path(name_or_path).is_file():
                raise ConfigError(f"{e}; a Path names a spec file: give the preset as a str, {name_or_path!r}") from None
            raise
        if overrides:  # with the defaults the file leaves out, which --set may change too
            with contextlib.suppress(ConfigError):  # (the file's own problems are reported below, after the overrides)
                d = ModelSpec.from_dict(d).to_dict()
    else:
        d = None
    if d is not None:
        d = override_spec(d, overrides or {})
        try:
            return ModelSpec.from_dict(d)
        except ConfigError as e:  # a spec file's problems name it
            raise ConfigError(f"{name_or_path}: {e}" if is_file else str(e)) from None
    raise ConfigError(
        f"unknown model {name_or_path!r}; choose one of {', '.join(PRESETS)} or give a JSON/YAML spec file"
    )


def create_model(name_or_spec: str | os.PathLike | ModelSpec, labels: LabelSet | str | None = None) -> FerNet | ResNet | MobileNetV2:
    """Build a model by preset name (`create_model("deep")`), spec file (a str ending .json/.yaml/.yml,
    or a Path, which is always a file) or ModelSpec, with one output
    per emotion of `labels` (a LabelSet or its name, "ferplus"; a spec's num_classes must agree).
    Without labels: the spec's num_classes, else the default label set's (a model built outside
    training, e.g. in a test)."""
    if isinstance(labels, str):  # (was AttributeError: 'str' object has no attribute 'num_classes')
        labels = label_set(labels)
    elif labels is not None and not isinstance(labels, LabelSet):  # (an int or a list of names: the same AttributeError)
        raise ConfigError(problem("labels", f"None, a label set's name ({', '.join(LABEL_CHOICES)}) or a LabelSet", labels))
    spec = resolve_spec(name_or_spec)
    if labels is not None or spec.num_classes is None:
        spec = spec.for_labels(labels or label_set(DEFAULT))
    if spec.backbone is not None:
        return BACKBONE_NETS[spec.backbone](spec)
    hog_dim = 0
    if spec.hog is not None:
        from .hog import hog_dim as _hog_dim

        hog_dim = _hog_dim(spec.hog, spec.in_size)
    return FerNet(spec, hog_dim)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: FerNet) -> int:
    """Multiply-adds for one image, counted on conv and linear layers."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        size = model.spec.in_size
        hog = torch.zeros(1, model.hog_dim) if model.hog_dim else None
        model(torch.zeros(1, model.spec.channels, size, size), hog)
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
