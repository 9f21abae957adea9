"""What this CPU offers for inference and training, asked once (no torch): named by `ferkit
--version`, `ferkit models` and every benchmark's header, and used to pick the prediction path.

    cpu_info() -> CpuInfo(model="AMD EPYC", flags={"avx2", "avx512f", "avx512_vnni", ...})
    cpu_info().summary() -> "AMD EPYC: AVX2, AVX-512, VNNI, native bf16, no AMX"

The flags that matter here: int8 dot products (AVX-512 VNNI, AVX-VNNI or AMX) decide how fast
int8 inference is (without them onnxruntime adds int8 products in 16 bits: slower, and the
reason ferkit's int8 weights are 7-bit, onnx_export.SAFE_INT8); native bf16 (AVX-512 BF16 or
AMX) decides whether bf16 training is ~2x faster than fp32 or emulated and slower. And one CPU
family: the first AMD EPYCs (Zen and Zen+) run AVX2 on 128-bit units, where int8 without dot
products is slower than fp32 (narrow_avx2).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass, replace
from pathlib import Path

# /proc/cpuinfo flag names, and numpy's names for the same features (numpy has no AMX)
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16 = ("avx512_bf16", "amx_bf16")
AMX = ("amx_tile",)
NUMPY_NAMES = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16"}


@dataclass(frozen=True)
class CpuInfo:
    model: str  # the CPU's name as the OS reports it ("" when it does not)
    flags: frozenset[str]  # lower-case feature flags, as Linux names them in /proc/cpuinfo
    machine: str = "x86_64"  # platform.machine(): the flags above are x86's
    vendor: str = ""  # /proc/cpuinfo's vendor_id ("AuthenticAMD", "GenuineIntel"; "" when unknown)
    family: int = -1  # its "cpu family" and "model" numbers (-1 when unknown)
    model_number: int = -1

    @property
    def x86(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64", "i386", "i686")

    @property
    def int8_dot(self) -> bool:
        """Int8 dot-product instructions: int8 inference at full speed and full range. Non-x86 CPUs
        (ARM's sdot/udot) have no 16-bit intermediate either."""
        return not self.x86 or any(f in self.flags for f in VNNI)

    @property
    def narrow_avx2(self) -> bool:
        """AVX2 run on 128-bit units: AMD's Zen and Zen+ (family 23 below model 0x30, Hygon's family 24),
        where the default's fp32 graph beats its int8 one on every figure (docs/speed.md: one face 0.65
        against 0.77 ms on an EPYC of family 23 model 1). Zen 2 onwards (model 0x30 up) is 256 bits wide."""
        return (self.vendor == "AuthenticAMD" and self.family == 23 and 0 <= self.model_number < 0x30
                or self.vendor == "HygonGenuine" and self.family == 24) and not self.int8_dot

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in BF16)

    @property
    def amx(self) -> bool:
        return any(f in self.flags for f in AMX)

    def summary(self) -> str:
        """The model and the flags that matter to ferkit, e.g. 'AMD EPYC: AVX2, AVX-512, VNNI, native bf16, no AMX'."""
        if not self.x86:
            return f"{self.model or 'unknown CPU'} ({self.machine})"
        has = [("AVX2", "avx2" in self.flags), ("AVX-512", "avx512f" in self.flags), ("VNNI", self.int8_dot),
               ("native bf16", self.native_bf16), ("AMX", self.amx)]
        return f"{self.model or 'unknown CPU'}: " + ", ".join(n if ok else f"no {n}" for n, ok in has)


def parse_cpuinfo(text: str, machine: str = "x86_64") -> CpuInfo:
    """CpuInfo from the text of /proc/cpuinfo (its first processor's model name, flags, vendor and numbers)."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())  # (the first processor's)

    def number(key: str) -> int:
        value = fields.get(key, "")
        return int(value) if value.isdecimal() else -1

    flags = fields.get("flags", fields.get("features", ""))
    return CpuInfo(fields.get("model name", ""), frozenset(flags.lower().split()), machine, fields.get("vendor_id", ""),
                   number("cpu family"), number("model"))


def combine(proc: CpuInfo, features: dict) -> CpuInfo:
    """The flags this process can use: numpy's, which come from CPUID as onnxruntime's kernel choice
    does, for the features numpy knows; /proc/cpuinfo's for the rest (AMX, AVX-VNNI), only when it
    agrees with numpy on AVX-512 (under an emulator such as qemu-user, /proc describes the host)."""
    if not proc.x86 or not features:
        return proc
    ours = {name for theirs, name in NUMPY_NAMES.items() if features.get(theirs)}
    if ("avx512f" in proc.flags) == bool(features.get("AVX512F")):
        ours |= {f for f in proc.flags if f.startswith("amx") or f == "avx_vnni"}
    return replace(proc, flags=frozenset(ours))


def numpy_features() -> dict:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return dict(features)


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CpuInfo: the model from /proc/cpuinfo (Linux) or the platform, the flags as
    this process sees them (combine)."""
    machine = platform.machine() or "x86_64"
    proc = CpuInfo(platform.processor(), frozenset(), machine)
    path = Path("/proc/cpuinfo")
    if path.is_file():
        try:
            proc = parse_cpuinfo(path.read_text(errors="replace"), machine)
        except OSError:
            pass
    return combine(proc, numpy_features())


def available_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of memory free for a new allocation (Linux's MemAvailable); None where the OS does not say."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None
