"""`engine.precision: auto | bf16 | fp32`: which number format the training loop computes in.

bf16 is a large win only where the hardware has bf16 matrix units: on CPU, Intel AMX-BF16 (oneDNN
uses its tiles; AVX512-BF16's dot-product instructions alone did not pay: on a 2-core Xeon with
AVX512-BF16 but no AMX a 16-completion GRPO step updated in 20-30 s in bf16 against 10-24 s in fp32,
generation equal; elsewhere torch emulates bf16 and it is slower still); on
CUDA, Ampere or newer. `auto` therefore reads the CPU's feature flags (or asks CUDA) and picks bf16
only where it pays. Master weights, gradients and optimiser state stay fp32 in every mode; bf16
means mixed precision (autocast for the update, a bf16 copy of the weights for generation).
TRL reads the resolved value from `resolve_precision`; verl maps the setting onto its own keys
(`engines/verl/precision.py`).
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path

from longwriter.engine_settings import PRECISIONS
from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

# CPU flags (as /proc/cpuinfo and lscpu name them) that give bf16 matrix units worth using (module doc).
BF16_CPU_FLAGS = ("amx_bf16",)
# Flags worth printing next to timings: they explain why a machine is fast or slow.
REPORTED_CPU_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_fp16", "avx512f", "avx512_vnni",
                      "avx2", "fma")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16_units(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU multiplies bf16 matrices in hardware fast enough to beat fp32 (AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def cpu_report() -> dict[str, object]:
    """The CPU's name and the reported flags it has (for benchmark output)."""
    flags = cpu_flags()
    return {"cpu": cpu_model_name(), "flags": [f for f in REPORTED_CPU_FLAGS if f in flags],
            "bf16_matrix_units": cpu_has_bf16_units(flags)}


def cpu_summary() -> str:
    report = cpu_report()
    return f"{report['cpu']}; bf16 matrix units: {'yes' if report['bf16_matrix_units'] else 'no'}"


def checked_setting(setting: str | None) -> str:
    """`engine.precision` as one of PRECISIONS (null is auto); anything else is a ConfigError."""
    setting = "auto" if setting is None else str(setting).lower()
    if setting not in PRECISIONS:
        raise ConfigError(f"engine.precision={setting!r} is not one of {', '.join(PRECISIONS)}")
    return setting


def resolve_precision(setting: str | None, device: str | None = None, flags: frozenset[str] | None = None) -> str:
    """`bf16` or `fp32` for `engine.precision` on `device` ("cpu" or "cuda"; detected when None).

    auto: bf16 on CUDA devices that support it and on CPUs with bf16 matrix units, fp32 otherwise.
    An explicit bf16 is honoured (with a warning on a CPU without bf16 units: it runs, slowly).
    """
    setting = checked_setting(setting)
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if setting == "auto":
            return "bf16" if supported else "fp32"
        if setting == "bf16" and not supported:
            raise ConfigError("engine.precision=bf16 but this GPU has no bf16 support; use auto or fp32")
        return setting
    has_units = cpu_has_bf16_units(flags)
    if setting == "auto":
        return "bf16" if has_units else "fp32"
    if setting == "bf16" and not has_units:
        logger.warning("engine.precision=bf16 on a CPU without AMX-BF16/AVX512-BF16: torch emulates bf16 there, "
                       "which is slower than fp32 (engine.precision=auto picks fp32 on this CPU)")
    return setting
