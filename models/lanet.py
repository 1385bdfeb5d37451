"""LA-Net, the auxiliary lesion-aware network (paper section 2.1.2), and the full LA-Net model.

Design decision, CBAM per scale vs shared (``ModelConfig.cbam_mode``):
The paper says one *shared* CBAM with the original settings, but f1..f4 have different channel counts
(64..512 for R18, 256..2048 for R50), so a literal shared CBAM cannot exist. The authors' released code
builds one CBAM per scale; we default to that (``'per_scale'``) because it is what produced the reported
numbers and needs no extra layers. ``'shared'`` follows the paper's wording by first projecting every f_i to
``shared_channels`` with a 1x1 conv + BN + ReLU, then applying one CBAM to all four.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usvid.models.backbone import FeatureMaps, ResNetBackbone
from usvid.models.base import ModelOutput, NetworkBase, xavier_init
from usvid.models.cbam import CBAM
from usvid.models.config import ModelConfig
from usvid.models.heads import ClassifierHead, MaskAttention


class LesionAwareNet(nn.Module):
    """CBAM on each f_i -> 1-channel squeeze conv -> bilinear resize to f4 size -> concat -> conv+BN+sigmoid.

    Args:
        channels: channels of f1..f4.
        use_cam, use_sam: keep CBAM's channel / spatial gate (ablations remove the module).
        cbam_mode: ``'per_scale'`` or ``'shared'`` (see the module docstring).
        spatial_kernel: ``'7x7'`` or ``'3x3x3'`` (see :mod:`usvid.models.cbam`).
        reduction: CAM reduction ratio.
        shared_channels: projection width in ``'shared'`` mode.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        *,
        use_cam: bool = True,
        use_sam: bool = True,
        cbam_mode: str = "per_scale",
        spatial_kernel: str = "3x3x3",
        reduction: int = 16,
        shared_channels: int = 256,
    ) -> None:
        super().__init__()
        gates = {
            "use_cam": use_cam,
            "use_sam": use_sam,
            "reduction": reduction,
            "spatial_kernel": spatial_kernel,
        }
        if cbam_mode == "shared":
            self.project = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(c, shared_channels, 1, bias=False),
                    nn.BatchNorm2d(shared_channels),
                    nn.ReLU(inplace=True),
                )
                for c in channels
            )
            self.cbam = nn.ModuleList([CBAM(shared_channels, **gates)])
            squeeze_in = [shared_channels] * len(channels)
        else:
            self.project = None
            self.cbam = nn.ModuleList(CBAM(c, **gates) for c in channels)
            squeeze_in = list(channels)
        self.squeeze = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=3, padding=1) for c in squeeze_in)
        self.fuse = nn.Sequential(
            nn.Conv2d(len(channels), 1, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(1)
        )
        xavier_init(self)

    def forward(self, features: FeatureMaps) -> Tensor:
        """Args: features: f1..f4 from the FEX.
        Returns: P, ``(B, 1, S_h, S_w)`` float in [0, 1] where ``S_h, S_w`` is f4's size (input / 32).
        """
        size = features.f4.shape[-2:]
        squeezed = []
        for i, f in enumerate(features):
            if self.project is not None:
                f = self.project[i](f)
            f = self.cbam[i if len(self.cbam) > 1 else 0](f)
            s = self.squeeze[i](f)
            # align_corners=False: PyTorch's, ONNX's and TensorRT's default mapping (the authors used True).
            squeezed.append(F.interpolate(s, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(squeezed, dim=1)).sigmoid()


class LANetModel(NetworkBase):
    """FEX + LA-Net + MAM + classifier (paper Fig. 1). Build it with :func:`usvid.models.build_model`.

    Attributes: ``backbone`` (FEX), ``lanet`` (:class:`LesionAwareNet`), ``mam`` (:class:`MaskAttention` or
    ``None`` when ``use_mam=False``), ``classifier`` (:class:`ClassifierHead`), ``config``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.depth, config.widths, config.in_channels)
        self.lanet = LesionAwareNet(
            self.backbone.channels,
            use_cam=config.use_cam,
            use_sam=config.use_sam,
            cbam_mode=config.cbam_mode,
            spatial_kernel=config.spatial_kernel,
            reduction=config.reduction,
            shared_channels=config.shared_channels,
        )
        self.mam = MaskAttention() if config.use_mam else None
        self.classifier = ClassifierHead(self.backbone.channels[-1], config.num_classes)

    @property
    def mask_branch(self) -> nn.Module:
        return self.lanet

    def forward(self, x: Tensor) -> ModelOutput:
        """Args: x: ``(B, in_channels, H, W)`` float, H and W multiples of 32 (see :func:`check_input`).
        Returns: logits ``(B, K)`` and mask P ``(B, 1, H/32, W/32)`` in [0, 1].
        """
        self._check(x)
        features = self.backbone(x)
        mask = self.lanet(features)
        top = features.f4 if self.mam is None else self.mam(features.f4, mask)
        return ModelOutput(self.classifier(top), mask)
