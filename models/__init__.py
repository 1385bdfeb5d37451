"""LA-Net (FEX + lesion-aware network + mask attention + classifier) and its baselines (RMTL, vanilla ResNet).

Quick start::

    from usvid.models import create_model, list_models
    model = create_model("lanet_r18", num_classes=2, pretrained="resnet18-f37072fd.pth")
    out = model(x)          # x: (B, 1, H, W) float, H and W multiples of 32
    out.logits, out.mask    # (B, K), (B, 1, H/32, W/32) in [0, 1]

Every model has ``.config`` (:class:`ModelConfig`), ``.backbone``, ``.lanet`` (or None), ``.mask_branch``,
``.classifier``, ``.parameter_groups()`` and ``.gradcam_layer()``.
"""

from usvid.models import variants as _variants  # noqa: F401  (registers the named variants)
from usvid.models.backbone import FeatureMaps, ResNetBackbone
from usvid.models.base import STRIDE, ModelOutput, NetworkBase, check_input
from usvid.models.cbam import CBAM, ChannelGate, SpatialGate
from usvid.models.classifier import ResNetClassifier
from usvid.models.config import ModelConfig
from usvid.models.flops import ModelSummary, count_flops, count_parameters, summarize_config, summarize_models
from usvid.models.heads import ClassifierHead, MaskAttention
from usvid.models.lanet import LANetModel, LesionAwareNet
from usvid.models.pretrained import fold_stem, load_pretrained_backbone
from usvid.models.registry import build_model, create_model, list_models, model_config, register_model
from usvid.models.rmtl import RMTLDecoder, RMTLModel, RMTLOutput

__all__ = [
    "CBAM",
    "STRIDE",
    "ChannelGate",
    "ClassifierHead",
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
    "build_model",
    "check_input",
    "count_flops",
    "count_parameters",
    "create_model",
    "fold_stem",
    "list_models",
    "load_pretrained_backbone",
    "model_config",
    "register_model",
    "summarize_config",
    "summarize_models",
]
