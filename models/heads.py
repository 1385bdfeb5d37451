"""The classification side: mask attention module (MAM, paper eq. 3) and the GAP + FC classifier (eq. 4)."""

from __future__ import annotations

from torch import Tensor, nn

from usvid.models.base import xavier_init


class MaskAttention(nn.Module):
    """MAM: ``f_att = f4 + f4 * P``, the lesion mask broadcast over channels (a residual attention).

    With ``P = 0`` it returns ``f4`` unchanged, so the classifier then sees exactly the plain FEX output.
    """

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Args:
            features: ``(B, C, S_h, S_w)`` float, f4.
            mask: ``(B, 1, S_h, S_w)`` float in [0, 1], P.
        Returns: ``(B, C, S_h, S_w)`` float.
        """
        return features + features * mask


class ClassifierHead(nn.Module):
    """Global average pool + one FC layer with K outputs (logits; the paper's softmax lives in the loss).

    Args:
        in_channels: C of the feature map.
        num_classes: K.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        xavier_init(self)

    def forward(self, features: Tensor) -> Tensor:
        """Args: features: ``(B, C, S_h, S_w)`` float. Returns: ``(B, K)`` float logits."""
        return self.fc(features.mean(dim=(2, 3)))
