"""The one deterministic preprocessing step shared by validation, export, prediction and streaming.

Training augments on top of it; everything else calls :func:`preprocess` so the network always sees
frames prepared the same way. A checkpoint stores the :class:`PreprocessConfig` it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from usvid.errors import ConfigError


@dataclass(frozen=True)
class PreprocessConfig:
    """Resize to ``size x size`` (bilinear), scale to [0, 1], then ``(x - mean) / std``.

    The paper feeds [0, 1] values (mean 0, std 1), which is the default.
    """

    size: int = 256
    mean: float = 0.0
    std: float = 1.0
    in_channels: int = 1

    def __post_init__(self) -> None:
        if self.size <= 0 or self.size % 32:
            raise ConfigError(f"input size must be a positive multiple of 32 (the network's stride), got {self.size}")
        if self.std <= 0:
            raise ConfigError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(**data)


def preprocess(frames: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Turn stored frames into network input.

    Args:
        frames: ``(B, C, H, W)`` uint8 (or float already in [0, 255]), any H, W.
    Returns:
        ``(B, C, size, size)`` float32, normalised.
    """
    if frames.ndim != 4:
        raise ConfigError(f"frames must be (B, C, H, W), got shape {tuple(frames.shape)}")
    x = frames.float() / 255.0
    if x.shape[-2:] != (config.size, config.size):
        x = F.interpolate(x, size=(config.size, config.size), mode="bilinear", align_corners=False, antialias=False)
    if config.mean != 0.0 or config.std != 1.0:
        x = (x - config.mean) / config.std
    return x
