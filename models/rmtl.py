"""RMTL baseline (Rasaei & Rivaz; paper section 3.4): a deconv mask decoder and a classifier on the same f4.

Three upsampling blocks (ConvTranspose2d k4 s2 + BN + ReLU) take f4 from stride 32 to stride 4, then a 1x1
conv gives one mask-logit channel. A ReLU cannot end the decoder (sigmoid of a ReLU output is never below
0.5), hence the extra 1x1 conv after the three blocks. The authors' code upsampled by bilinear resizes
instead of deconvolutions; we follow the paper's text.

Mask resolution: the decoder predicts ``(B, 1, H/4, W/4)``. Training and evaluation compare every model's
mask at the LA-Net resolution ``H/32 x W/32``, so ``forward`` returns the high-resolution probabilities
average-pooled by 8 (exact: H/4 is a multiple of 8); the average of per-pixel probabilities in a cell is the
same quantity as an area-downsampled ground-truth mask. :meth:`RMTLModel.forward_full` also returns the
high-resolution mask. ``ModelOutput.mask_logits`` is the decoder's own ``(B, 1, H/4, W/4)`` output: the loss
should supervise RMTL at its native resolution (the pooled probability has no logit).
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from usvid.models.backbone import build_backbone
from usvid.models.base import ModelOutput, NetworkBase, xavier_init
from usvid.models.config import ModelConfig
from usvid.models.heads import ClassifierHead

#: Upsampling factor of the decoder (three stride-2 deconvs).
DECODER_SCALE = 8


class RMTLOutput(NamedTuple):
    """:class:`ModelOutput` plus the decoder's own resolution.

    Attributes:
        logits: ``(B, K)`` float.
        mask: ``(B, 1, H/32, W/32)`` float in [0, 1] (``mask_full`` average-pooled by 8).
        mask_full: ``(B, 1, H/4, W/4)`` float32 in [0, 1].
        mask_logits: ``(B, 1, H/4, W/4)`` float32, ``mask_full`` before its sigmoid.
    """

    logits: Tensor
    mask: Tensor
    mask_full: Tensor
    mask_logits: Tensor


class RMTLDecoder(nn.Module):
    """f4 -> three (deconv + BN + ReLU) blocks -> 1x1 conv -> mask logits at 8x f4's size.

    Args:
        in_channels: C of f4.
        channels: output channels of the three blocks.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...] = (256, 128, 64)) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for cin, cout in zip((in_channels, *channels[:-1]), channels, strict=True):
            blocks += [
                nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels[-1], 1, kernel_size=1)
        xavier_init(self)

    def forward(self, features: Tensor) -> Tensor:
        """Args: features: ``(B, C, S_h, S_w)`` float, f4. Returns: ``(B, 1, 8 S_h, 8 S_w)`` mask logits."""
        return self.head(self.blocks(features))


class RMTLModel(NetworkBase):
    """FEX + RMTL decoder + GAP/FC classifier, trained jointly. Build with :func:`usvid.models.build_model`.

    Attributes: ``backbone``, ``decoder`` (:class:`RMTLDecoder`, also ``mask_branch``), ``classifier``,
    ``config``; ``lanet`` is ``None`` (there is no lesion-aware branch).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.lanet = None
        self.decoder = RMTLDecoder(self.backbone.channels[-1], config.decoder_channels)
        self.classifier = ClassifierHead(self.backbone.channels[-1], config.num_classes)

    @property
    def mask_branch(self) -> nn.Module:
        return self.decoder

    def forward_full(self, x: Tensor) -> RMTLOutput:
        """Like :meth:`forward`, plus the ``(B, 1, H/4, W/4)`` mask."""
        self._check(x)
        top = self.backbone(x).f4
        mask_logits = self.decoder(top).float()  # fp32 sigmoid even under autocast (bf16 saturates at 1)
        mask_full = mask_logits.sigmoid()
        mask = F.avg_pool2d(mask_full, kernel_size=DECODER_SCALE)
        return RMTLOutput(self.classifier(top), mask, mask_full, mask_logits)

    def forward(self, x: Tensor) -> ModelOutput:
        """Args: x: ``(B, in_channels, H, W)`` float, H and W multiples of 32.
        Returns: logits ``(B, K)``, mask ``(B, 1, H/32, W/32)`` float32 in [0, 1] and mask logits
        ``(B, 1, H/4, W/4)`` float32 (see the module docstring).
        """
        out = self.forward_full(x)
        return ModelOutput(out.logits, out.mask, out.mask_logits)
