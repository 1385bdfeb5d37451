"""LA-Net, the auxiliary lesion-aware network (paper section 2.1.2), and the full LA-Net model.

Design decision, CBAM per scale vs shared (``ModelConfig.cbam_mode``):
The paper says one *shared* CBAM with the original settings, but f1..f4 have different channel counts
(64..512 for R18, 256..2048 for R50), so a literal shared CBAM cannot exist. The authors' released code
builds one CBAM per scale; we default to that (``'per_scale'``) because it is what produced the reported
numbers and needs no extra layers. ``'shared'`` follows the paper's wording by first projecting every f_i to
``shared_channels`` with a 1x1 conv + BN + ReLU, then applying one CBAM to all four.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usvid.models.backbone import FeatureMaps, build_backbone
from usvid.models.base import STRIDE, ModelOutput, NetworkBase, xavier_init
from usvid.models.cbam import CBAM
from usvid.models.config import ModelConfig
from usvid.models.heads import ClassifierHead, MaskAttention


class LesionAwareNet(nn.Module):
    """CBAM on each f_i -> 1-channel squeeze conv -> resize to P's grid -> concat -> conv+BN (mask logits).

    P's grid is f4's (the paper's, ``mask_stride=32``) or a finer stage's (16: f3's, 8: f2's).

    Args:
        channels: channels of f1..f4.
        use_cam, use_sam: keep CBAM's channel / spatial gate (ablations remove the module).
        cbam_mode: ``'per_scale'`` or ``'shared'`` (see the module docstring).
        spatial_kernel: ``'7x7'`` or ``'3x3x3'`` (see :mod:`usvid.models.cbam`).
        reduction: CAM reduction ratio.
        shared_channels: projection width in ``'shared'`` mode.
        fusion_pool: ``'bilinear'`` (authors) or ``'area'`` (exact cell average), see :func:`pool_to`.
        mask_prior: the fusion BN's bias starts at ``logit(mask_prior)``; None = 0, the paper's
            (see :class:`~usvid.models.config.ModelConfig`).
        mask_stride: input pixels per cell of P: 32 (f4's grid, the paper's), 16 (f3's) or 8 (f2's).
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
        fusion_pool: str = "bilinear",
        mask_prior: float | None = None,
        mask_stride: int = 32,
    ) -> None:
        super().__init__()
        self.fusion_pool = fusion_pool
        #: f_i whose grid P takes (f1..f4 have strides 4, 8, 16, 32).
        self.grid_index = (4, 8, 16, 32).index(mask_stride)
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
        if mask_prior is not None:
            nn.init.constant_(self.fuse[1].bias, math.log(mask_prior / (1.0 - mask_prior)))

    def forward(self, features: FeatureMaps) -> Tensor:
        """Args: features: f1..f4 from the FEX.
        Returns: the mask logits (P before its sigmoid), ``(B, 1, S_h, S_w)`` float where ``S_h, S_w`` is
        the input's size over ``mask_stride`` (f4's size, input / 32, by default).
        """
        size = features[self.grid_index].shape[-2:]
        squeezed = []
        for i, f in enumerate(features):
            if self.project is not None:
                f = self.project[i](f)
            f = self.cbam[i if len(self.cbam) > 1 else 0](f)
            s = self.squeeze[i](f)
            if i > self.grid_index:  # a coarser stage: upsample, as the paper's resize does
                squeezed.append(F.interpolate(s, size=size, mode="bilinear", align_corners=False))
            else:
                squeezed.append(pool_to(s, size, self.fusion_pool, factor=2 ** (self.grid_index - i)))
        return self.fuse(torch.cat(squeezed, dim=1))


def pool_to(s: Tensor, size: tuple[int, int] | torch.Size, mode: str, factor: int) -> Tensor:
    """Bring a squeezed map down to P's grid.

    Args:
        s: ``(B, 1, factor * S_h, factor * S_w)`` float, a squeezed f_i (on f4's grid ``factor`` = 8, 4, 2, 1
            for f1..f4).
        size: ``(S_h, S_w)``.
        mode: ``'bilinear'``: ``F.interpolate`` with ``align_corners=False`` (PyTorch's, ONNX's and TensorRT's
            default mapping; the authors used True); at factor 8 each output reads only 2x2 of its 8x8 cell.
            ``'area'``: the mean of each ``factor x factor`` cell, equal to ``F.adaptive_avg_pool2d(s, size)``
            because f_i is exactly ``factor`` times f4's size; a fixed-kernel average pool, so it exports to
            ONNX / TensorRT with dynamic H, W.
    Returns: ``(B, 1, S_h, S_w)`` float.
    """
    if factor == 1:
        return s
    if mode == "area":
        return F.avg_pool2d(s, kernel_size=factor)
    return F.interpolate(s, size=size, mode="bilinear", align_corners=False)


class LANetModel(NetworkBase):
    """FEX + LA-Net + MAM + classifier (paper Fig. 1). Build it with :func:`usvid.models.build_model`.

    Attributes: ``backbone`` (FEX), ``lanet`` (:class:`LesionAwareNet`), ``mam`` (:class:`MaskAttention` or
    ``None`` when ``use_mam=False``), ``classifier`` (:class:`ClassifierHead`), ``config``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.lanet = LesionAwareNet(
            self.backbone.channels,
            use_cam=config.use_cam,
            use_sam=config.use_sam,
            cbam_mode=config.cbam_mode,
            spatial_kernel=config.spatial_kernel,
            reduction=config.reduction,
            shared_channels=config.shared_channels,
            fusion_pool=config.fusion_pool,
            mask_prior=config.mask_prior,
            mask_stride=config.mask_stride,
        )
        self.mam = MaskAttention() if config.use_mam else None
        self.classifier = ClassifierHead(self.backbone.channels[-1], config.num_classes)

    @property
    def mask_branch(self) -> nn.Module:
        return self.lanet

    def forward(self, x: Tensor) -> ModelOutput:
        """Args: x: ``(B, in_channels, H, W)`` float, H and W multiples of 32 (see :func:`check_input`).
        Returns: logits ``(B, K)``, mask P ``(B, 1, H/s, W/s)`` float32 in [0, 1] and its float32 logits, where
        ``s`` is ``config.mask_stride`` (32 by default).
        """
        self._check(x)
        features = self.backbone(x)
        # fp32 sigmoid even under autocast / a half-precision model: a bf16 sigmoid saturates to exactly 1.
        mask_logits = self.lanet(features).float()
        mask = mask_logits.sigmoid()
        top = features.f4 if self.mam is None else self.mam(features.f4, self._on_f4_grid(mask).to(features.f4.dtype))
        return ModelOutput(self.classifier(top), mask, mask_logits)

    def _on_f4_grid(self, mask: Tensor) -> Tensor:
        """P averaged over each f4 cell (the lesion share of the cell), for the mask attention on f4."""
        factor = STRIDE // self.config.mask_stride
        return mask if factor == 1 else F.avg_pool2d(mask, kernel_size=factor)
