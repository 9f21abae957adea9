"""Starting a training from pretrained weights (`ferkit train --init-from FILE`).

FILE is a torchvision-style state_dict (e.g. resnet18-f37072fd.pth or mobilenet_v2-b0353104.pth, ImageNet weights that a user
downloaded; ferkit fetches nothing) or any ferkit checkpoint. Weights are copied by parameter name:
    - a tensor whose name and shape match is copied;
    - the head (FerNet's classifier, ResNet's fc, MobileNetV2's classifier.1) is left at its initialisation when its shape
      differs (another number of classes: 1000 ImageNet classes, FER2013's 7, FER+'s 8);
    - the first conv of a grey model takes colour weights summed over their 3 input channels (a grey
      image x seen as RGB (x, x, x) gives the same response); a colour model takes grey weights
      repeated over its channels, divided by 3;
    - anything else in the file (another shape, a name the model lacks) is skipped, and the model's
      tensors the file lacks keep their initialisation.
One log line counts what was loaded, skipped and missing; a file with no matching name is an error.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError, FerkitError
from .files import check_regular_file

log = logging.getLogger(__name__)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...] | None]:
    """(state_dict, what the file is, the emotions its head names: a ferkit checkpoint's, else None) of a
    ferkit checkpoint or a plain state_dict file, loaded with weights_only=True. A wrapped state_dict
    ({"state_dict": ...} or {"model": ...}) and DDP's "module." prefixes are unwrapped."""
    from .checkpoint import load_failure, read_checkpoint, tensor_problem
    from .labels import labels_of

    path = Path(path)
    if path.is_dir() or not path.exists():
        saved = [path / name for name in ("best.pt", "last.pt") if path.is_dir() and (path / name).exists()]
        if saved:  # a run folder: its best.pt, or the last.pt of a run that has not validated yet
            ckpt = read_checkpoint(saved[0])
            return ckpt["state_dict"], "ferkit checkpoint", labels_of(ckpt)
        what = "a folder without best.pt or last.pt" if path.is_dir() else "no such file"
        raise FerkitError(f"--init-from {path}: {what}; give a state_dict (.pth) or a ferkit checkpoint (.pt)")
    if path.suffix.lower() == ".onnx":
        raise FerkitError(f"--init-from {path}: an ONNX graph, whose weights torch cannot load; give the checkpoint (.pt) "
                          "it was exported from")
    check_regular_file(path, "a state_dict (.pth) or a ferkit checkpoint (.pt)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled objects, junk, truncated files
        raise FerkitError(f"--init-from {path}: not a readable weights file (a state_dict saved with torch.save, or a "
                          f"ferkit checkpoint); {load_failure(path, e)}") from None
    if isinstance(obj, dict) and "spec" in obj and "state_dict" in obj:
        ckpt = read_checkpoint(path)  # checked as every checkpoint is
        return ckpt["state_dict"], "ferkit checkpoint", labels_of(ckpt)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise FerkitError(f"--init-from {path}: holds no state_dict (a mapping of parameter names to tensors)")
    for k, v in obj.items():  # what load_state_dict cannot copy into a float model, or should not
        why = tensor_problem(v) or ("not finite (nan or inf)" if v.is_floating_point() and not torch.isfinite(v).all() else None)
        if why:
            raise FerkitError(f"--init-from {path}: tensor {k!r} is {why}; save plain, finite float weights")
    return {k.removeprefix("module."): v for k, v in obj.items()}, "state_dict", None


def _first_conv(weight: torch.Tensor, want: torch.Size) -> torch.Tensor | None:
    """The first conv's weights for another number of input channels, or None if they cannot be made."""
    if weight.ndim != 4 or weight.shape[0] != want[0] or weight.shape[2:] != want[2:]:
        return None
    if weight.shape[1] == 3 and want[1] == 1:
        return weight.sum(1, keepdim=True)
    if weight.shape[1] == 1 and want[1] == 3:
        return weight.repeat(1, 3, 1, 1) / 3
    return None


def init_from(model: nn.Module, path: str | Path, say=log.info, emotions: tuple[str, ...] | None = None) -> dict:
    """Copy the weights of FILE into model by name (see the module's notes); returns the counts
    {"loaded", "skipped", "missing"} and the names of the new head and of a converted first conv.
    emotions: the model's; a ferkit checkpoint whose head names others (or in another order) gives no head."""
    source, what, theirs = read_weights(path)
    own = model.state_dict()
    head, first = f"{model.head}.", f"{model.first_layer}.weight"  # (is_head's test)
    other_emotions = emotions is not None and theirs is not None and tuple(theirs) != tuple(emotions)
    new, loaded, skipped, head_new, converted = {}, [], [], [], None
    for name, t in source.items():
        if name not in own:
            skipped.append(name)
            continue
        if own[name].is_floating_point() and not t.is_floating_point():  # (.to() made int8 codes weights: silently wrong)
            raise FerkitError(f"--init-from {path}: tensor {name!r} is {str(t.dtype).removeprefix('torch.')} (whole numbers) "
                              "where the model has float weights (quantized values without their scale?); save float weights")
        t = t.to(own[name].dtype)
        if name.startswith(head) and other_emotions:  # same width, other classes: its outputs would mean the wrong emotions
            head_new.append(name)
            continue
        if t.shape == own[name].shape:
            new[name] = t
        elif name == first and _first_conv(t, own[name].shape) is not None:
            new[name], converted = _first_conv(t, own[name].shape), f"{tuple(t.shape)[1]} -> {own[name].shape[1]}"
        elif name.startswith(head):
            head_new.append(name)
            continue
        else:
            skipped.append(f"{name} {tuple(t.shape)} (the model's: {tuple(own[name].shape)})")
            continue
        loaded.append(name)
    # batch norm's step counters fit any net, and a head's bias any net of as many outputs: neither is a network's weights
    if not any(t.numel() > 1 and not name.startswith(head) for name, t in new.items()):
        mine, names = ", ".join(list(own)[:3]), ", ".join(list(source)[:3])
        why = (f"the names fit but no weight's shape does (first: {skipped[0]}): another network's width" if loaded
               else f"none of its {len(source)} tensor names fit this model ({names}, ...; the model has {mine}, ...)")
        raise FerkitError(f"--init-from {path}: {why}; give weights of the same network (e.g. torchvision's resnet18 "
                          f"weights for --model resnet18) or a ferkit checkpoint of it")
    model.load_state_dict({**own, **new})
    missing = [k for k in own if k not in new and not k.startswith(head)]
    head_kept = [k for k in own if k.startswith(head) and k not in new]
    say(f"--init-from {path} ({what}): loaded {len(loaded)} tensors, skipped {len(skipped) + len(head_new)} of "
             f"the file's, {len(missing)} of the model's missing (left at their initialisation)"
             + (f"; first skipped: {', '.join(skipped[:3])}" if skipped else ""))
    if head_kept:
        shape = next((tuple(source[k].shape) for k in head_new if k.endswith("weight")), None)
        if other_emotions:
            why = f"the file's outputs are {', '.join(theirs)}; this model's {', '.join(emotions)}"
        elif shape and shape[0] == model.spec.num_classes:  # as many outputs, from another width of features
            why = f"it takes {shape[1]} features in the file, {own[f'{head}weight'].shape[1]} here"
        else:
            why = f"{shape[0] if shape else 'no'} outputs in the file, {model.spec.num_classes} here"
        say(f"--init-from: a new head: {model.head} ({why}) is left at its initialisation")
    if converted:
        say(f"--init-from: {first} converted from {converted} input channels"
                 + (" (summed over the colour channels)" if converted.startswith("3") else " (repeated, divided by 3)"))
    return {"loaded": len(loaded), "skipped": len(skipped) + len(head_new), "missing": len(missing),
            "head": head_kept, "converted": converted}


# ---------------------------------------------------------------- frozen layers, the backbone's learning rate
# --freeze N: the first N of model.stages() (ResNet: stem, layer1-4; MobileNetV2: features.0-18; the CNN
# family: its conv layers, then its hidden FC layers) stop training: their parameters get
# requires_grad False and stay out of the optimizer (so no weight decay moves them either), and their
# batch norms run on their running statistics in training too (frozen_norms, set to eval after each
# model.train()), so that neither their scale and shift nor their statistics drift. Dropout in a
# frozen layer still drops: it has no weights, and it regularises what comes after.
# --backbone-lr F: every parameter but the head's trains at F x the head's learning rate (train._optimizer).


def is_head(model: nn.Module, name: str) -> bool:
    """Whether parameter `name` is of the model's head (the output layer a fine-tuning starts anew)."""
    return name.startswith(f"{model.head}.")


def freeze(model: nn.Module, n: int, say=log.info) -> list[str]:
    """Freeze the first n stages of model (-1: all but the head); returns the frozen parameters' names."""
    if not n:
        return []
    stages = model.stages()
    if n > len(stages):
        raise ConfigError(f"--freeze {n}: this model has {len(stages)} layers before its head to freeze "
                          f"({', '.join(s[0].rstrip('.') for s in stages[:3])}, ...); give 1..{len(stages)}, or -1 for all")
    prefixes = tuple(p for stage in (stages if n == -1 else stages[:n]) for p in stage)
    names = [name for name, p in model.named_parameters() if name.startswith(prefixes)]
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"--freeze {n}: {'all' if n == -1 else n} of {len(stages)} layers before the head frozen "
        f"({len(names)} tensors); {trainable:,} parameters train")
    return names


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """The batch norms whose affine parameters are all frozen: to be kept in eval mode while training."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(True for _ in m.parameters(recurse=False))
            and not any(p.requires_grad for p in m.parameters(recurse=False))]
