"""Numeric precision: fp32, or bf16 autocast where the hardware runs it fast.

bf16 autocast runs convolutions and matmuls in bfloat16 and keeps the loss, softmax and the
optimizer's weights in fp32. On a CPU with AVX512-BF16 or AMX (and on CUDA GPUs with bf16) it
trains about 2x faster than fp32 at the same accuracy; elsewhere bf16 is emulated and slower.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls/convs natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)() or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device runs it fast, else 'fp32'; 'fp32'/'bf16' as given."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return name


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision ('fp32' or 'bf16') on `device`."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
