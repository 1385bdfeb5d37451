"""What every network returns (:class:`ModelOutput`), the input guard, and the helpers all networks share."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from usvid.errors import InputError

#: Total stride of the FEX: the mask is ``H / STRIDE x W / STRIDE``.
STRIDE = 32


class ModelOutput(NamedTuple):
    """The result of ``model(x)``. No loss is computed inside the model.

    Attributes:
        logits: ``(B, K)`` float32 class logits (apply softmax for probabilities).
        mask: ``(B, 1, H/s, W/s)`` float32 in [0, 1], lesion probability per cell, ``s`` = 32 except for
            LA-Net built with ``mask_stride`` 16 or 8 (after the sigmoid, taken
            in float32 even under autocast: in bf16, ``sigmoid(8) == 1`` exactly); ``None`` for the vanilla
            classifier. Evaluation, export and inference read this.
        mask_logits: float32 pre-sigmoid mask at the resolution the localisation loss should supervise, for a
            numerically sound ``binary_cross_entropy_with_logits``: LA-Net ``(B, 1, H/s, W/s)`` (the fused
            map, ``mask == sigmoid(mask_logits)``); RMTL ``(B, 1, H/4, W/4)`` (its decoder's own output, while
            ``mask`` is the H/32 average of its probabilities); ``None`` for the vanilla classifier.
    """

    logits: Tensor
    mask: Tensor | None
    mask_logits: Tensor | None = None


def check_input(x: Tensor, in_channels: int) -> None:
    """Raise :class:`InputError` unless ``x`` is ``(B, in_channels, H, W)`` float with H, W multiples of 32.

    Only static shape ints are read, never values. Models call it at the top of ``forward`` except while
    ``torch.compile`` / ``torch.export`` (and so ONNX export) trace, so exported graphs carry no checks and
    may use symbolic H, W; call it yourself at the boundary of an exported engine.

    Args:
        x: ``(B, C, H, W)`` float network input (see :func:`usvid.preprocess.preprocess`).
    """
    if x.ndim != 4:
        raise InputError(
            f"model input must be (B, C, H, W), got shape {tuple(x.shape)}; add a batch dimension"
        )
    if not x.is_floating_point():
        raise InputError(f"model input must be float (use usvid.preprocess.preprocess), got dtype {x.dtype}")
    _, c, h, w = x.shape
    if c != in_channels:
        raise InputError(f"model expects {in_channels} input channel(s), got {c} (shape {tuple(x.shape)})")
    if h % STRIDE or w % STRIDE or h == 0 or w == 0:
        raise InputError(
            f"model input height and width must be positive multiples of {STRIDE} (the FEX stride), "
            f"got {h}x{w}; resize to e.g. {max(STRIDE, round(h / STRIDE) * STRIDE)}x"
            f"{max(STRIDE, round(w / STRIDE) * STRIDE)} (PreprocessConfig.size)"
        )


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


class NetworkBase(nn.Module):
    """Shared surface of every network: ``config``, ``backbone``, ``lanet``, ``classifier``.

    Subclasses set ``config``, ``backbone`` (:func:`~usvid.models.backbone.build_backbone`), ``classifier``
    (:class:`~usvid.models.heads.ClassifierHead`) and ``lanet`` (the LA-Net branch or ``None``), and override
    ``mask_branch`` when they predict a mask.
    """

    @property
    def mask_branch(self) -> nn.Module | None:
        """The module that predicts the mask (LA-Net, RMTL's decoder) or ``None``; not a second registration,
        so state dicts hold each parameter once."""
        return None

    def _check(self, x: Tensor) -> None:
        if not _tracing():
            check_input(x, self.config.in_channels)

    def gradcam_layer(self) -> nn.Module:
        """The module whose output is f4, the last FEX map (Grad-CAM target): ResNet ``backbone.layer4[-1]``,
        EfficientNet-Lite ``backbone.bn2``."""
        return self.backbone.gradcam_layer()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: ``backbone`` (FEX), ``mask_branch`` (LA-Net or RMTL decoder), ``classifier``.

        Stage 1 of the paper's training optimises ``backbone`` + ``mask_branch`` only.
        """
        branch = list(self.mask_branch.parameters()) if self.mask_branch is not None else []
        return {
            "backbone": list(self.backbone.parameters()),
            "mask_branch": branch,
            "classifier": list(self.classifier.parameters()),
        }


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights, zero biases for conv / linear layers; BN to identity (paper section 3.3)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FeatureMaps(NamedTuple):
    """FEX outputs for an input ``(B, C_in, H, W)``; ``C_i`` = the backbone's ``channels``.

    Attributes:
        f1: ``(B, C_1, H/4, W/4)``
        f2: ``(B, C_2, H/8, W/8)``
        f3: ``(B, C_3, H/16, W/16)``
        f4: ``(B, C_4, H/32, W/32)`` the top feature map (classifier input, mask resolution).
    """

    f1: Tensor
    f2: Tensor
    f3: Tensor
    f4: Tensor
