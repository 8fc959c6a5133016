"""engine.precision: auto picks bf16 only where the hardware multiplies bf16; fp32 stays exact."""

from __future__ import annotations

import pytest
import torch

from longwriter.engines.precision import cpu_has_bf16_units, cpu_report, resolve_precision
from longwriter.errors import ConfigError

AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16", "avx512_bf16"})
EPYC_GENOA = frozenset({"avx2", "avx512f", "avx512_bf16"})  # AVX512-BF16 without AMX: fp32 was faster
EPYC_MILAN = frozenset({"avx2", "fma"})


@pytest.mark.parametrize("flags, expected", [(AMX, "bf16"), (EPYC_GENOA, "fp32"), (EPYC_MILAN, "fp32")])
def test_auto_follows_the_cpu_bf16_units(flags, expected) -> None:
    assert resolve_precision("auto", "cpu", flags) == expected
    assert cpu_has_bf16_units(flags) == (expected == "bf16")


def test_explicit_choices_are_honoured_on_cpu() -> None:
    assert resolve_precision("fp32", "cpu", AMX) == "fp32"
    assert resolve_precision("bf16", "cpu", EPYC_MILAN) == "bf16"  # slow there, but asked for
    assert resolve_precision(None, "cpu", EPYC_MILAN) == "fp32"


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="engine.precision='fp16' is not one of auto, bf16, fp32"):
        resolve_precision("fp16", "cpu", AMX)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU answer")
def test_cuda_without_a_gpu_resolves_auto_to_fp32() -> None:
    assert resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ConfigError, match="no bf16 support"):
        resolve_precision("bf16", "cuda")


def test_cpu_report_names_this_cpu() -> None:
    report = cpu_report()
    assert report["cpu"] and isinstance(report["flags"], list)
    assert report["bf16_matrix_units"] == cpu_has_bf16_units()
