"""Which numeric precision ``train.precision: auto`` trains in, from the hardware and the model's width."""
from __future__ import annotations

from pathlib import Path

import torch

# CPU feature flags (Linux /proc/cpuinfo) of native bf16 arithmetic: AVX512-BF16 and AMX-BF16 on x86, the
# BF16 extension on Arm. A CPU without them runs bf16 autocast through slow conversions.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

# The narrowest transformer for which bf16 autocast pays on a CPU with bf16 units. Measured on an Intel Xeon
# with AMX (1 thread, process CPU time, the precisions in alternating rounds, benchmarks/throughput.py) on the
# I-JEPA step (batch 64, 64 tokens): bf16 / fp32 is 1.78x at 192 wide x 12 deep (ViT-Tiny), 1.36x at 128 x 6
# (the quick start's encoder size), 1.25x at 96 x 6 and 0.96x at 64 x 4, where the matrix products are too
# small for the bf16 units to pay back the casts that autocast adds.
BF16_MIN_WIDTH = 96


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags the CPU reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AVX512-BF16, AMX or Arm BF16).

    torch's own CPU capability queries decide where they exist; otherwise the CPU's feature flags.
    (oneDNN's ``_is_mkldnn_bf16_supported`` is not used: it is also true on AVX-512 CPUs that only
    emulate bf16.)
    """
    cpu = getattr(torch, "cpu", None)
    for query in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, query, None)
        if fn is not None:
            try:
                if fn():
                    return True
            except RuntimeError:
                pass
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def transformer_width(module: torch.nn.Module) -> int | None:
    """The width of the widest transformer stack in ``module`` (None when it holds none)."""
    from ..models.encoder import TransformerEncoder

    widths = [m.dim for m in module.modules() if isinstance(m, TransformerEncoder)]
    return max(widths) if widths else None


def gpu_has_bf16() -> bool:
    """Whether the GPU computes in bf16 natively (compute capability 8.0 and later)."""
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the emulation flag: ask the compute capability
        return torch.cuda.get_device_capability()[0] >= 8


def uses_gpu(accelerator: str) -> bool:
    return accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())


def auto_precision(accelerator: str, width: int | None) -> str:
    """The Fabric precision of ``train.precision: auto``.

    bf16 autocast on a GPU that computes in bf16 (fp32 on older ones, e.g. V100 or T4, where
    ``train.precision=16-mixed`` is the fast choice to make explicitly); on a CPU with native bf16 units when the model's transformer is at least
    ``BF16_MIN_WIDTH`` wide (narrower ones trained slower in bf16 there); fp32 everywhere else (bf16
    autocast is many times slower on a CPU without bf16 units).
    """
    if uses_gpu(accelerator):
        return "bf16-mixed" if gpu_has_bf16() else "32-true"
    if accelerator in ("auto", "cpu") and width is not None and width >= BF16_MIN_WIDTH and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def resolve_precision(precision: str, accelerator: str, build=None, width: int | None = None) -> str:
    """``precision`` itself, or for ``auto`` the choice of :func:`auto_precision`. On a CPU with bf16 units the
    model's transformer width decides: ``width`` when given, else read from ``build()`` (called only then)."""
    if precision != "auto":
        return precision
    if uses_gpu(accelerator) or not cpu_has_native_bf16():
        return auto_precision(accelerator, None)
    if width is None and build is not None:
        width = transformer_width(build())
    return auto_precision(accelerator, width)
