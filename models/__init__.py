"""LA-Net (FEX + lesion-aware network + mask attention + classifier) and its baselines (RMTL, vanilla ResNet).

Quick start::

    from usvid.models import create_model, input_normalization, list_models
    model = create_model("lanet_effl0", num_classes=2, pretrained=True)  # offline ImageNet EfficientNet-Lite0
    mean, std = input_normalization(model.config)  # (0.5, 0.5) here, (0.0, 1.0) for ResNet FEXs
    out = model(x)          # x: (B, 1, H, W) float, (x01 - mean) / std, H and W multiples of 32
    out.logits, out.mask    # (B, K), (B, 1, H/32, W/32) in [0, 1]
    out.mask_logits         # pre-sigmoid mask for the loss (None for *_cls)

Every model has ``.config`` (:class:`ModelConfig`), ``.backbone``, ``.lanet`` (or None), ``.mask_branch``,
``.classifier``, ``.parameter_groups()`` and ``.gradcam_layer()``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it. Imported on first use (PEP 562): listing the variants (`usvid models`,
# list_models) then needs no torch import, which alone takes longer than the whole listing.
_EXPORTS: dict[str, str] = {
    "FeatureMaps": "usvid.models.backbone",
    "ResNetBackbone": "usvid.models.backbone",
    "build_backbone": "usvid.models.backbone",
    "STRIDE": "usvid.models.base",
    "ModelOutput": "usvid.models.base",
    "NetworkBase": "usvid.models.base",
    "check_input": "usvid.models.base",
    "CBAM": "usvid.models.cbam",
    "ChannelGate": "usvid.models.cbam",
    "SpatialGate": "usvid.models.cbam",
    "ResNetClassifier": "usvid.models.classifier",
    "ModelConfig": "usvid.models.config",
    "input_normalization": "usvid.models.config",
    "EfficientNetLiteBackbone": "usvid.models.efficientnet",
    "ModelSummary": "usvid.models.flops",
    "count_flops": "usvid.models.flops",
    "count_parameters": "usvid.models.flops",
    "measure_latency": "usvid.models.flops",
    "summarize_config": "usvid.models.flops",
    "summarize_models": "usvid.models.flops",
    "ClassifierHead": "usvid.models.heads",
    "MaskAttention": "usvid.models.heads",
    "LANetModel": "usvid.models.lanet",
    "LesionAwareNet": "usvid.models.lanet",
    "pool_to": "usvid.models.lanet",
    "fold_stem": "usvid.models.pretrained",
    "imagenet_lite_state_dict": "usvid.models.pretrained",
    "lite_weights_file": "usvid.models.pretrained",
    "load_lite_backbone": "usvid.models.pretrained",
    "load_pretrained": "usvid.models.pretrained",
    "load_pretrained_backbone": "usvid.models.pretrained",
    "build_model": "usvid.models.registry",
    "create_model": "usvid.models.registry",
    "list_models": "usvid.models.registry",
    "model_config": "usvid.models.registry",
    "register_model": "usvid.models.registry",
    "RMTLDecoder": "usvid.models.rmtl",
    "RMTLModel": "usvid.models.rmtl",
    "RMTLOutput": "usvid.models.rmtl",
}

if TYPE_CHECKING:
    from usvid.models.backbone import FeatureMaps, ResNetBackbone, build_backbone
    from usvid.models.base import STRIDE, ModelOutput, NetworkBase, check_input
    from usvid.models.cbam import CBAM, ChannelGate, SpatialGate
    from usvid.models.classifier import ResNetClassifier
    from usvid.models.config import ModelConfig, input_normalization
    from usvid.models.efficientnet import EfficientNetLiteBackbone
    from usvid.models.flops import ModelSummary, count_flops, count_parameters, measure_latency, summarize_config, summarize_models
    from usvid.models.heads import ClassifierHead, MaskAttention
    from usvid.models.lanet import LANetModel, LesionAwareNet, pool_to
    from usvid.models.pretrained import fold_stem, imagenet_lite_state_dict, lite_weights_file, load_lite_backbone, load_pretrained, load_pretrained_backbone
    from usvid.models.registry import build_model, create_model, list_models, model_config, register_model
    from usvid.models.rmtl import RMTLDecoder, RMTLModel, RMTLOutput


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'usvid.models' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
