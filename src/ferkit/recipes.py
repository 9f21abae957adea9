"""How each preset is trained: its TrainConfig defaults (model.py says what the nets are).

`recipe(name)` is what `ferkit train --model NAME` starts from; a --config file and flags
override it (train.resolve_config, which gives a spec file the shallow net's recipe).
"""

from __future__ import annotations

from .errors import ConfigError

# The paper's settings (Section 5.1): Adam, batch 128, no schedule, flips; L2 separate from dropout.
PAPER_SHALLOW = dict(epochs=30, lr=1e-3, l2=1e-6)
PAPER_DEEP = dict(epochs=35, lr=1e-2, l2=1e-7)

# ferkit's VGG nets: SGD with Nesterov momentum on a one-cycle schedule, label smoothing, flips,
# shifts, small rotations and random erasing; flip TTA at evaluation.
VGG = dict(epochs=40, lr=0.1, l2=5e-4, optimizer="sgd", schedule="onecycle", label_smoothing=0.1, crop_pad=4,
           rotate=10, erase=0.25, tta=True)

# Fine-tuning a ResNet or MobileNetV2 (usually --init-from pretrained weights): SGD on a one-cycle schedule with a
# lower peak than the VGG nets' from-scratch 0.1, fewer epochs, flips and shifts, flip TTA.
RESNET = dict(epochs=15, lr=0.01, l2=5e-4, optimizer="sgd", schedule="onecycle", label_smoothing=0.1, crop_pad=4,
              tta=True)

RECIPES: dict[str, dict] = {
    "shallow": PAPER_SHALLOW,
    "deep": PAPER_DEEP,
    "shallow-hog": PAPER_SHALLOW,
    "deep-hog": PAPER_DEEP,
    "vgg": VGG,
    "vgg-wide": VGG,
    # Time to accuracy on a 2-core CPU: a short one-cycle schedule and only the augmentations a
    # short run can use (flips, shifts); rotations and erasing pay off in long runs.
    "fast": {**VGG, "epochs": 12, "rotate": 0, "erase": 0},
    "lite": {**VGG, "epochs": 30},  # for distillation from a bigger model (--teacher), as ferplus-fast was until 2026-12-02
    "tiny": {**VGG, "epochs": 60},  # the same; ferplus-fast: 30 epochs gave 86.6%, 60 gave 87.6%
    "resnet18": RESNET,
    "resnet34": RESNET,
    "mobilenet_v2": RESNET,
}


def recipe(name: str) -> dict:
    """The TrainConfig defaults of a preset. An unknown name is an error, not the shallow net's
    recipe: a misspelt preset would otherwise train with another net's epochs and learning rate."""
    if not isinstance(name, str) or name not in RECIPES:  # (a config file's model: may be a mapping or a number)
        raise ConfigError(f"--model must be a preset ({', '.join(RECIPES)}) or a JSON/YAML model spec file "
                          f"(.json, .yaml, .yml); got {name!r}")
    return dict(RECIPES[name])
