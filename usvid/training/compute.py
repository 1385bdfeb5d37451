"""How a training run computes: precision, memory format, threads and loader workers, chosen per device.

Chosen once at start and written into the run's ``config.json`` (``compute``), so a run says which path it took
and why. Measured on 2 cores of an AMD EPYC (Zen 4, ``avx512_bf16``), forward + backward + AdamW at batch 8-16
(``benchmarks/train_bench.py``): bf16 autocast + channels-last trains LA-Net-R18 at 256 px 1.7x and
LA-Net-EffL0 2.0x faster than fp32 NCHW; channels-last alone helps fp32 too (EffL0 1.7x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from usvid.cpu import cpu_info
from usvid.training.config import TrainConfig


@dataclass(frozen=True)
class ComputeSettings:
    """The resolved compute path of a training run."""

    #: Autocast dtype, or None for fp32.
    amp_dtype: torch.dtype | None
    #: fp16 needs a gradient scaler; bf16 (same exponent range as fp32) does not.
    grad_scaler: bool
    channels_last: bool
    #: Intra-op threads of the training process.
    threads: int
    num_workers: int
    #: Why this precision (what the device offers).
    reason: str

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def to_dict(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last, "threads": self.threads,
                "num_workers": self.num_workers, "reason": self.reason}


def _cpu_precision(config: TrainConfig) -> tuple[torch.dtype | None, str]:
    if not config.amp:
        return None, "amp off: fp32"
    info = cpu_info()
    if info.bf16:
        units = ", ".join(f for f in info.matrix_flags() if "bf16" in f)
        return torch.bfloat16, f"bf16 autocast on {info.model} ({units})"
    # Emulated bf16 (plain AVX-512 or AVX2) runs slower than fp32: stay in fp32.
    return None, f"fp32: {info.model} has no native bf16 units (avx512_bf16 / amx_bf16)"


def _cuda_precision(config: TrainConfig) -> tuple[torch.dtype | None, str]:
    if not config.amp:
        return None, "amp off: fp32"
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, "bf16 autocast (CUDA)"
    return torch.float16, "fp16 autocast with a gradient scaler (CUDA without bf16)"


def compute_settings(config: TrainConfig, device: torch.device) -> ComputeSettings:
    """Precision, memory format, threads and workers for ``config`` on ``device``.

    The mask loss stays fp32 from logits under any autocast (see ``loop._loss_mask``).
    """
    if device.type == "cuda":
        dtype, reason = _cuda_precision(config)
    elif device.type == "cpu":
        dtype, reason = _cpu_precision(config)
    else:
        dtype, reason = None, f"fp32 on {device.type}"
    workers = config.num_workers if config.num_workers is not None else (2 if device.type == "cuda" else 0)
    return ComputeSettings(amp_dtype=dtype, grad_scaler=dtype == torch.float16, channels_last=config.channels_last,
                           threads=torch.get_num_threads(), num_workers=workers, reason=reason)
