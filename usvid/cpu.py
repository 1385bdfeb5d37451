"""What this CPU's matrix units can do, read once, and the CPU settings usvid derives from it.

oneDNN runs bf16 at full speed only on CPUs with native bf16 instructions (x86 ``avx512_bf16`` or
``amx_bf16``, Arm ``bf16``); elsewhere torch emulates bf16 in fp32 and is *slower* than fp32, so bf16 is chosen
from the CPU's flags, not from ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` (which says yes to any AVX-512).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and the flags that decide which matrix kernels run fast."""

    model: str
    flags: frozenset[str]
    logical_cpus: int

    @property
    def bf16(self) -> bool:
        """Native bf16 matrix instructions (AVX-512 BF16, AMX-BF16 or Arm BF16)."""
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    @property
    def int8_dot(self) -> bool:
        """Native int8 dot products (VNNI, AMX-INT8, Arm dot product)."""
        return any(f in self.flags for f in INT8_FLAGS)

    def matrix_flags(self) -> list[str]:
        wanted = ("avx2", "fma", "avx512f", *BF16_FLAGS, "amx_tile", *INT8_FLAGS)
        return [f for f in wanted if f in self.flags]

    def describe(self) -> dict:
        """What a results file or a run's config records about the machine."""
        return {"model": self.model, "matrix_flags": self.matrix_flags(), "logical_cpus": self.logical_cpus,
                "bf16": self.bf16, "amx": self.amx, "int8_dot": self.int8_dot}


def _parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return model or platform.processor() or "unknown", frozenset(flags)


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU (``/proc/cpuinfo``; no flags where it is absent, so nothing reduced is chosen)."""
    path = Path("/proc/cpuinfo")
    text = path.read_text() if path.exists() else ""
    model, flags = _parse_cpuinfo(text)
    return CpuInfo(model=model, flags=flags, logical_cpus=os.cpu_count() or 1)
