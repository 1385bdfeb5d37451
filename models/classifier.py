"""The vanilla classifier baseline: FEX (ResNet or EfficientNet-Lite) + GAP/FC on f4, no lesion mask."""

from __future__ import annotations

from torch import Tensor

from usvid.models.backbone import build_backbone
from usvid.models.base import ModelOutput, NetworkBase
from usvid.models.config import ModelConfig
from usvid.models.heads import ClassifierHead


class ResNetClassifier(NetworkBase):
    """A ResNet (or EfficientNet-Lite) FEX with a K-way head; ``mask`` is ``None``. Built by ``build_model``.

    Attributes: ``backbone``, ``classifier``, ``config``; ``lanet`` and ``mask_branch`` are ``None``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.lanet = None
        self.classifier = ClassifierHead(self.backbone.channels[-1], config.num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        """Args: x: ``(B, in_channels, H, W)`` float, H, W multiples of 32. Returns: logits ``(B, K)``."""
        self._check(x)
        return ModelOutput(self.classifier(self.backbone(x).f4), None)
