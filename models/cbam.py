"""CBAM (Woo et al. 2018): channel attention (CAM) then spatial attention (SAM), as used inside LA-Net.

The spatial gate comes in two forms (``ModelConfig.spatial_kernel``):

* ``'7x7'``: the original CBAM, one 7x7 conv (2 -> 1) + BN.
* ``'3x3x3'`` (default): the authors' released code, three stacked 3x3 convs 2 -> 8 -> 8 -> 1, BN after each,
  ReLU after the first two. The paper reports the trained models of that code, and at the LA-Net scales the
  stack sees the same 7x7 receptive field with more capacity, so it is our default.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usvid.errors import ConfigError


class ChannelGate(nn.Module):
    """CAM: a shared MLP over the average- and max-pooled channel vectors, summed, then sigmoid.

    Args:
        channels: C, the feature channels.
        reduction: hidden width is ``max(1, C // reduction)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        # 1x1 convs rather than Linear: the same MLP without flattening, so it exports as plain Conv nodes.
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, C, H, W)`` float. Returns: the gate ``(B, C, 1, 1)`` float in (0, 1)."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return (avg + peak).sigmoid()


class SpatialGate(nn.Module):
    """SAM: channel-wise max and mean -> conv stack -> sigmoid.

    Args:
        kernel: ``'7x7'`` or ``'3x3x3'`` (see the module docstring).
    """

    def __init__(self, kernel: str = "3x3x3") -> None:
        super().__init__()
        if kernel == "7x7":
            layers: list[nn.Module] = [nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1)]
        elif kernel == "3x3x3":
            layers = []
            for cin, cout in ((2, 8), (8, 8)):
                layers += [
                    nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True),
                ]
            layers += [nn.Conv2d(8, 1, 3, padding=1, bias=False), nn.BatchNorm2d(1)]
        else:
            raise ConfigError(f"spatial_kernel must be '7x7' or '3x3x3', got {kernel!r}")
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, C, H, W)`` float. Returns: the gate ``(B, 1, H, W)`` float in (0, 1)."""
        pooled = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)
        return self.conv(pooled).sigmoid()


class CBAM(nn.Module):
    """``x * Mc(x)`` then ``x' * Ms(x')``. A disabled gate is absent (``None``), not bypassed by a flag.

    Args:
        channels: C of the input feature map.
        use_cam, use_sam: build the channel / spatial gate.
        reduction: CAM reduction ratio.
        spatial_kernel: ``'7x7'`` or ``'3x3x3'``.
    """

    def __init__(
        self,
        channels: int,
        *,
        use_cam: bool = True,
        use_sam: bool = True,
        reduction: int = 16,
        spatial_kernel: str = "3x3x3",
    ) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction) if use_cam else None
        self.spatial_gate = SpatialGate(spatial_kernel) if use_sam else None

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, C, H, W)`` float. Returns: the refined map, same shape."""
        if self.channel_gate is not None:
            x = x * self.channel_gate(x)
        if self.spatial_gate is not None:
            x = x * self.spatial_gate(x)
        return x
