"""FEX: a torchvision ResNet trunk that returns its four stage outputs f1..f4 (paper eq. 1).

Built from torchvision's own ``BasicBlock`` / ``Bottleneck`` with torchvision's parameter names, so a
torchvision ResNet state dict loads into it directly (see :mod:`usvid.models.pretrained`). The stage widths
are configurable so tests can use a very narrow ResNet-18-shaped network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from usvid.errors import ConfigError
from usvid.models.base import FeatureMaps  # re-exported: it lived here
from usvid.models.config import DEPTHS, IMAGENET_WIDTHS, ModelConfig

if TYPE_CHECKING:
    from usvid.models.efficientnet import EfficientNetLiteBackbone

_LAYOUT: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNetBackbone(nn.Module):
    """ResNet stem + four stages; ``forward`` returns :class:`FeatureMaps` (no pooling, no fc).

    Args:
        depth: 18, 34, 50 or 101.
        widths: base width of each stage (torchvision: 64, 128, 256, 512); the stem has ``widths[0]``.
        in_channels: input channels (1 for grey ultrasound).
    """

    def __init__(
        self, depth: int = 18, widths: tuple[int, ...] = IMAGENET_WIDTHS, in_channels: int = 1
    ) -> None:
        super().__init__()
        if depth not in _LAYOUT:
            raise ConfigError(f"FEX depth must be one of {DEPTHS}, got {depth}")
        block, layers = _LAYOUT[depth]
        self.depth = depth
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = widths[0]
        self.layer1 = self._make_layer(block, widths[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        #: Channels of f1..f4.
        self.channels: tuple[int, int, int, int] = tuple(w * block.expansion for w in widths)  # type: ignore[assignment]
        self._init_weights()

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int) -> nn.Sequential:
        # Same structure and names as torchvision.models.resnet.ResNet._make_layer, minus groups/dilation.
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # torchvision's initialisation: an un-pretrained FEX starts like torchvision's resnet*(weights=None).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> FeatureMaps:
        """Args: x: ``(B, C_in, H, W)`` float. Returns: the four stage outputs (strides 4, 8, 16, 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return FeatureMaps(f1, f2, f3, f4)

    def forward(self, x: Tensor) -> FeatureMaps:
        return self.forward_features(x)

    def gradcam_layer(self) -> nn.Module:
        """The last residual block; its output is f4 (after the last ReLU), Grad-CAM's usual ResNet target."""
        return self.layer4[-1]


def build_backbone(config: ModelConfig) -> ResNetBackbone | EfficientNetLiteBackbone:
    """The FEX ``config.fex`` names; every one returns :class:`FeatureMaps` at strides 4, 8, 16, 32."""
    if config.fex == "efficientnet_lite":
        from usvid.models.efficientnet import EfficientNetLiteBackbone  # imports this module

        return EfficientNetLiteBackbone(config.lite, config.in_channels)
    return ResNetBackbone(config.depth, config.widths, config.in_channels)
