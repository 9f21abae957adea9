"""What ferkit reads of the CPU: /proc/cpuinfo's flags, and the summary benchmarks print."""

from ferkit.cpu import combine, cpu_info, parse_cpuinfo

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
processor\t: 1
model name\t: ignored
flags\t\t: ignored
"""
HASWELL = "model name\t: Intel(R) Xeon(R) CPU E5-2680 v3\nflags\t\t: sse2 avx avx2 fma\n"
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"


def test_flags_and_summary_per_cpu_kind():
    zen = parse_cpuinfo(ZEN4)
    assert zen.model == "AMD EPYC 9R14" and zen.int8_dot and zen.native_bf16 and not zen.amx
    assert zen.summary() == "AMD EPYC 9R14: AVX2, AVX-512, VNNI, native bf16, no AMX"
    old = parse_cpuinfo(HASWELL)
    assert not old.int8_dot and not old.native_bf16
    assert old.summary().endswith("AVX2, no AVX-512, no VNNI, no native bf16, no AMX")
    spr = parse_cpuinfo(SAPPHIRE)
    assert spr.int8_dot and spr.native_bf16 and spr.amx
    arm = parse_cpuinfo("Features\t: fp asimd asimddp\n", machine="aarch64")
    assert arm.int8_dot and arm.summary() == "unknown CPU (aarch64)"


def test_this_machine_is_read():
    info = cpu_info()
    assert info.summary().startswith(info.model or "unknown CPU")
    assert cpu_info() is info  # asked once


def test_flags_are_the_ones_this_process_sees():
    """Under qemu-user's Haswell CPU, /proc/cpuinfo still describes the host: numpy's CPUID view wins."""
    host = parse_cpuinfo(SAPPHIRE)
    haswell = {"AVX2": True, "AVX512F": False, "AVX512VNNI": False, "AVX512BF16": False}
    emulated = combine(host, haswell)
    assert not emulated.int8_dot and not emulated.amx and not emulated.native_bf16 and "avx2" in emulated.flags
    native = combine(host, {"AVX2": True, "AVX512F": True, "AVX512VNNI": True, "AVX512BF16": True})
    assert native.int8_dot and native.amx and native.native_bf16


def zen(family: int, model: int, flags: str = "sse2 avx avx2 fma", vendor: str = "AuthenticAMD"):
    return parse_cpuinfo(f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: AMD EPYC\n"
                         f"flags\t\t: {flags}\n")


def test_avx2_on_128_bit_units_is_zen_and_zen_plus_alone():
    first = zen(23, 1)  # the first EPYC (Naples), where the fp32 graph beats int8 (docs/speed.md)
    assert (first.vendor, first.family, first.model_number) == ("AuthenticAMD", 23, 1) and first.narrow_avx2
    assert zen(23, 0x18).narrow_avx2 and zen(24, 0, vendor="HygonGenuine").narrow_avx2
    assert not zen(23, 0x31).narrow_avx2  # Zen 2 (Rome): 256-bit units
    assert not zen(25, 1).narrow_avx2 and not parse_cpuinfo(HASWELL).narrow_avx2 and not parse_cpuinfo(ZEN4).narrow_avx2
    assert not zen(23, 1, flags="avx2 avx_vnni").narrow_avx2  # (with int8 dot products int8 pays)
    assert combine(first, {"AVX2": True}).narrow_avx2  # numpy's flags keep the numbers
