"""Everything between uint8 faces and probabilities, in one place for training, evaluation,
prediction, ONNX export and serving:

    uint8 faces (N, H, W) grey or (N, H, W, C) colour (the model spec's in_size and channels; 48x48
    grey for FER2013) -> standardize: (pixels - mean image) / PIXEL_SCALE -> (N, C, H, W)
    -> model (channels_last, fp32 or bf16 autocast) -> softmax [-> averaged with the mirrored face (TTA)]

Precision: bf16 autocast runs convolutions and matmuls in bfloat16 and keeps the loss, softmax
and the optimizer's weights in fp32. On a CPU with AVX512-BF16 or AMX, and on CUDA GPUs with
bf16, it trains faster than fp32 at the same accuracy (figures: docs/speed.md);
elsewhere bf16 is emulated and slow, so `auto` picks fp32 there.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from .errors import ConfigError
from .precisions import TORCH as PRECISIONS

log = logging.getLogger(__name__)

PIXEL_SCALE = 128.0  # model input = (pixel - mean image) / PIXEL_SCALE, about -1..1


def standardize(faces: torch.Tensor, mean: torch.Tensor, scale: float = PIXEL_SCALE) -> torch.Tensor:
    """Faces (N, H, W) or (N, H, W, C), any dtype, and their mean image ((H, W) or (H, W, C)) ->
    float32 (N, C, H, W): (pixels - mean image) / scale. Also the first step of the ONNX graph,
    which passes scale 1 (its first conv's weights take the 1/PIXEL_SCALE)."""
    x = faces.float()
    if x.dim() == 3:  # grey: one channel
        x, mean = x.unsqueeze(-1), mean.unsqueeze(-1)
    x = x - mean
    return (x if scale == 1 else x / scale).permute(0, 3, 1, 2)


def to_tensor(images: np.ndarray, mean: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 tensor (N, C, H, W), as standardize."""
    return standardize(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.asarray(mean, np.float32)))


def prepare(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on `device` in NHWC (channels_last) layout: faster convolutions on CPU and GPU, same numbers."""
    return model.to(device).to(memory_format=torch.channels_last)


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 convolutions and matmuls natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)() or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device runs it fast, else 'fp32'; 'fp32'/'bf16' as given."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {name!r}")
    if name == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if name == "bf16" and not fast_bf16(device):  # honoured, but a user who copied it from another machine should know
        log.warning("--precision bf16: %s has no native bf16, so it is emulated here (on a CPU without AVX512-BF16 "
                    "or AMX about 10x slower than fp32); --precision auto picks fp32 on it", device)
    return name


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision ('fp32' or 'bf16') on `device`."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def probabilities(model, x: torch.Tensor, hog=None, tta: bool = False, hog_flip=None, precision: str = "fp32",
                  one_batch: bool = False) -> torch.Tensor:
    """Softmax probabilities (N, C) in fp32 for model inputs x; with tta, averaged with the mirrored
    face (whose HOG, for hybrids, is hog_flip). Works inside torch.onnx.export too.

    one_batch: the faces and their mirror images go through the model as one batch of 2N instead
    of two passes. The ONNX graph uses it (one copy of the network, which int8 quantization needs;
    as fast in onnxruntime). Torch keeps two passes: at batch 128 one batch of 256 was slower
    (cache), faster only for a single face."""
    flip_hog = hog_flip if hog_flip is not None else hog
    with autocast(x.device, precision):
        if tta and one_batch:
            both = torch.cat([x, x.flip(-1)])
            p = torch.softmax(model(both, None if hog is None else torch.cat([hog, flip_hog])).float(), 1)
            return p.reshape(2, -1, p.shape[1]).mean(0)  # reshape, not p[:N]: the graph keeps N dynamic
        p = torch.softmax(model(x, hog).float(), 1)
        if tta:
            p = (p + torch.softmax(model(x.flip(-1), flip_hog).float(), 1)) / 2
    return p
