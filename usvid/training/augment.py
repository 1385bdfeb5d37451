"""Training augmentation: Kornia ops per batch on the training device, image and mask in step.

The input is first prepared by exactly :func:`usvid.preprocess.preprocess` ([0, 1] scaling and the
bilinear resize to M x M), so training and validation/export see the same pixels before augmentation;
normalisation (mean/std) is applied last. An optional random resized crop (``rrc_scale``, the authors'
augmentation) comes first, on image and mask together. Brightness and contrast only: Kornia's saturation/hue jitter
fails on one-channel input.
"""

from __future__ import annotations

from dataclasses import replace

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from usvid.preprocess import PreprocessConfig, preprocess
from usvid.training.config import TrainConfig


class TrainAugment(nn.Module):
    """Turns a uint8 batch into augmented network input and a matching full-resolution mask."""

    def __init__(self, config: TrainConfig, preprocess_config: PreprocessConfig) -> None:
        super().__init__()
        self.preprocess_config = preprocess_config
        # Scale + resize only; mean/std are applied after the photometric jitter, which expects [0, 1].
        self._scale_resize = replace(preprocess_config, mean=0.0, std=1.0)
        ops: list[nn.Module] = []
        if config.rrc_scale is not None:
            size = preprocess_config.size
            ops.append(K.RandomResizedCrop((size, size), scale=config.rrc_scale, ratio=config.rrc_ratio, p=1.0))
        if config.rotation_degrees > 0:
            ops.append(K.RandomRotation(degrees=config.rotation_degrees, p=1.0))
        if config.hflip_p > 0:
            ops.append(K.RandomHorizontalFlip(p=config.hflip_p))
        if config.vflip_p > 0:
            ops.append(K.RandomVerticalFlip(p=config.vflip_p))
        if config.brightness > 0:
            ops.append(K.RandomBrightness(brightness=(1 - config.brightness, 1 + config.brightness), p=1.0))
        if config.contrast > 0:
            ops.append(K.RandomContrast(contrast=(1 - config.contrast, 1 + config.contrast), p=1.0))
        # Masks follow geometric ops with nearest resampling and ignore the photometric ones.
        self.ops = K.AugmentationSequential(*ops, data_keys=["input", "mask"]) if ops else None

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            images: ``(B, C, S, S)`` uint8 frames on the training device.
            masks: ``(B, 1, S, S)`` uint8 in {0, 255}.
        Returns:
            ``x``: ``(B, C, M, M)`` float32, normalised as the checkpoint's preprocessing says;
            ``mask``: ``(B, 1, M, M)`` float32 in {0, 1}.
        """
        x = preprocess(images, self._scale_resize)
        size = self.preprocess_config.size
        m = (masks > 127).float()
        if m.shape[-2:] != (size, size):
            m = F.interpolate(m, size=(size, size), mode="nearest")
        if self.ops is not None:
            x, m = self.ops(x, m)
            x = x.clamp_(0.0, 1.0)
        cfg = self.preprocess_config
        if cfg.mean != 0.0 or cfg.std != 1.0:
            x = (x - cfg.mean) / cfg.std
        return x, m
