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

from usvid.models import variants as _variants  # noqa: F401  (registers the named variants)
from usvid.models.backbone import FeatureMaps, ResNetBackbone, build_backbone
from usvid.models.base import STRIDE, ModelOutput, NetworkBase, check_input
from usvid.models.cbam import CBAM, ChannelGate, SpatialGate
from usvid.models.classifier import ResNetClassifier
from usvid.models.config import ModelConfig, input_normalization
from usvid.models.efficientnet import EfficientNetLiteBackbone
from usvid.models.flops import (
    ModelSummary,
    count_flops,
    count_parameters,
    measure_latency,
    summarize_config,
    summarize_models,
)
from usvid.models.heads import ClassifierHead, MaskAttention
from usvid.models.lanet import LANetModel, LesionAwareNet, pool_to
from usvid.models.pretrained import (
    fold_stem,
    imagenet_lite_state_dict,
    lite_weights_file,
    load_lite_backbone,
    load_pretrained,
    load_pretrained_backbone,
)
from usvid.models.registry import build_model, create_model, list_models, model_config, register_model
from usvid.models.rmtl import RMTLDecoder, RMTLModel, RMTLOutput

__all__ = [
    "CBAM",
    "STRIDE",
    "ChannelGate",
    "ClassifierHead",
    "EfficientNetLiteBackbone",
    "FeatureMaps",
    "LANetModel",
    "LesionAwareNet",
    "MaskAttention",
    "ModelConfig",
    "ModelOutput",
    "ModelSummary",
    "NetworkBase",
    "RMTLDecoder",
    "RMTLModel",
    "RMTLOutput",
    "ResNetBackbone",
    "ResNetClassifier",
    "SpatialGate",
    "build_backbone",
    "build_model",
    "check_input",
    "count_flops",
    "count_parameters",
    "create_model",
    "fold_stem",
    "imagenet_lite_state_dict",
    "input_normalization",
    "list_models",
    "lite_weights_file",
    "load_lite_backbone",
    "load_pretrained",
    "load_pretrained_backbone",
    "measure_latency",
    "model_config",
    "pool_to",
    "register_model",
    "summarize_config",
    "summarize_models",
]
