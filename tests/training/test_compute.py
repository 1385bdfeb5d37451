"""The compute path a run takes on each kind of CPU, and what it records."""

from __future__ import annotations

import pytest
import torch

from usvid import cpu
from usvid.training import compute
from usvid.training.compute import compute_settings
from usvid.training.config import TrainConfig

ZEN4 = """processor\t: 0
model name\t: AMD EPYC 9454 48-Core Processor
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
processor\t: 1
model name\t: AMD EPYC 9454 48-Core Processor
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
"""
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"
ZEN2 = "model name\t: AMD EPYC 7B12\nflags\t\t: avx2 fma\n"
SKYLAKE = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: avx2 avx512f avx512bw\n"


def _info(text: str) -> cpu.CpuInfo:
    model, flags = cpu._parse_cpuinfo(text)
    return cpu.CpuInfo(model=model, flags=flags, logical_cpus=2)


def test_cpuinfo_parsing():
    info = _info(ZEN4)
    assert info.model == "AMD EPYC 9454 48-Core Processor"
    assert info.bf16 and info.int8_dot and not info.amx
    amx = _info(SAPPHIRE)
    assert amx.bf16 and amx.amx and amx.int8_dot
    # Plain AVX-512 (Skylake) has no bf16 units: torch would emulate bf16, slower than fp32.
    assert not _info(SKYLAKE).bf16
    assert not _info(ZEN2).bf16 and not _info(ZEN2).int8_dot
    assert _info("").model  # no /proc/cpuinfo: some name, no flags


@pytest.mark.parametrize(("text", "dtype"), [(ZEN4, torch.bfloat16), (SAPPHIRE, torch.bfloat16),
                                             (ZEN2, None), (SKYLAKE, None)])
def test_cpu_precision_follows_the_bf16_units(monkeypatch, text, dtype):
    monkeypatch.setattr(compute, "cpu_info", lambda: _info(text))
    settings = compute_settings(TrainConfig(), torch.device("cpu"))
    assert settings.amp_dtype == dtype
    assert not settings.grad_scaler
    assert settings.precision == ("bf16" if dtype else "fp32")
    assert ("bf16 autocast" in settings.reason) == (dtype is not None)
    recorded = settings.to_dict()
    assert recorded["precision"] == settings.precision and recorded["channels_last"] is True


def test_amp_off_is_fp32_everywhere(monkeypatch):
    monkeypatch.setattr(compute, "cpu_info", lambda: _info(ZEN4))
    settings = compute_settings(TrainConfig(amp=False), torch.device("cpu"))
    assert settings.amp_dtype is None and settings.reason.startswith("amp off")


def test_run_config_records_the_compute_path(tmp_path, tiny_store, config_factory):
    """config.json says which precision the run took on this machine, and why."""
    import json

    from usvid.training.loop import fit

    fit(config_factory(stage1_epochs=0, epochs=1), tiny_store, tmp_path / "run")
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    expected = "bf16" if cpu.cpu_info().bf16 else "fp32"
    assert resolved["compute"]["precision"] == expected
    assert resolved["cpu"]["model"] == cpu.cpu_info().model
