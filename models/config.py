"""The one typed description of a network: :class:`ModelConfig`.

A checkpoint stores ``config.to_dict()``; :func:`usvid.models.build_model` rebuilds the exact module tree from
it. ImageNet initialisation is deliberately *not* part of the config: it only matters once, before training,
and a rebuilt model loads its trained weights instead (so inference never needs the ImageNet file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from usvid.errors import ConfigError, did_you_mean

Arch = Literal["lanet", "rmtl", "cls"]
Fex = Literal["resnet", "efficientnet_lite"]
FusionPool = Literal["bilinear", "area"]
CbamMode = Literal["per_scale", "shared"]
SpatialKernel = Literal["7x7", "3x3x3"]

#: Largest network input side usvid accepts: activation memory grows with its square (the paper uses 256 and 512).
MAX_INPUT_SIZE = 2048

#: FEX depths with a torchvision definition (and ImageNet weights).
DEPTHS = (18, 34, 50, 101)
IMAGENET_WIDTHS = (64, 128, 256, 512)
#: EfficientNet-Lite sizes timm defines (``tf_efficientnet_lite0`` .. ``lite4``).
LITE_VARIANTS = (0, 1, 2, 3, 4)
#: LA-Net mask grids: input pixels per cell of P (f2's, f3's, f4's strides; 32 is the paper's).
MASK_STRIDES = (8, 16, 32)

_BOOL_FIELDS = ("use_cam", "use_sam", "use_mam")
_INT_FIELDS = ("depth", "num_classes", "in_channels", "reduction", "shared_channels")
_INT_TUPLE_FIELDS = {"widths": 4, "decoder_channels": 3}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network.

    Attributes:
        arch: ``'lanet'`` (FEX + LA-Net + MAM + classifier), ``'rmtl'`` (FEX + deconv mask decoder +
            classifier, the paper's RMTL baseline) or ``'cls'`` (vanilla ResNet classifier, no mask).
        fex: the feature extractor family: ``'resnet'`` (the paper's torchvision ResNet, sized by
            ``depth`` and ``widths``) or ``'efficientnet_lite'`` (timm's ``tf_efficientnet_lite{lite}``,
            whose ImageNet weights install offline; see :mod:`usvid.models.efficientnet`). Old configs
            without the key are ResNets. The FEX decides the input normalisation: :func:`input_normalization`.
        lite: EfficientNet-Lite size 0..4 (only with ``fex='efficientnet_lite'``; ImageNet weights for 0..2).
        depth: ResNet depth of the FEX, one of 18, 34, 50, 101 (BasicBlock for 18/34, Bottleneck for 50/101).
        widths: base widths of the four ResNet stages (torchvision: 64, 128, 256, 512). Stage ``i`` outputs
            ``widths[i] * expansion`` channels (expansion 1 for BasicBlock, 4 for Bottleneck). The tiny test
            variants use 8, 16, 32, 64.
        num_classes: K class logits (2 = benign/malignant as in the paper's experiments; 3 with normal).
        in_channels: input channels (1 for grey ultrasound).
        use_cam, use_sam: keep the channel / spatial attention of every CBAM (LA-Net ablations; ``False``
            removes the module).
        use_mam: apply the mask attention ``f4 + f4 * P`` before the classifier (``False`` removes it; the
            mask is still predicted).
        cbam_mode: ``'per_scale'`` (one CBAM per FEX stage, as the authors' code) or ``'shared'`` (each f_i
            projected by a 1x1 conv to ``shared_channels``, then one CBAM for all scales, as the paper says).
        spatial_kernel: CBAM spatial gate: ``'7x7'`` (original CBAM: one 7x7 conv) or ``'3x3x3'`` (authors'
            code: three stacked 3x3 convs 2->8->8->1).
        reduction: channel-attention MLP reduction ratio.
        shared_channels: projection width in ``'shared'`` mode.
        decoder_channels: output channels of RMTL's three upsampling blocks.
        fusion_pool: how LA-Net brings the squeezed f1..f3 maps to f4's size before fusing them:
            ``'bilinear'`` (the authors' resize; reads only 2x2 of every 8x8 f1 cell) or ``'area'`` (exact
            average over each cell, so every position contributes). Old configs without the key are bilinear.
        mask_prior: LA-Net only: the lesion probability P starts at. The fusion's closing BN starts with its
            bias at ``logit(mask_prior)`` (the prior-probability init of RetinaNet, Lin et al. 2017) instead of 0.
            That BN normalises the fused map to unit spread, so with the paper's identity start every background
            cell begins near ``sigmoid(0) = 0.5``, and Adam moves the bias only about ``lr`` per step: after
            10 epochs on BUSI + BUS-BRA (~900 steps) the shipped model's bias was -0.27 and its median background P
            0.34. ``None`` (the default, and old configs without the key) keeps the paper's init.
        mask_stride: LA-Net only: the input pixels per cell of the lesion mask P. 32 (the default, and old
            configs without the key) is the paper's: P lives on f4's ``S_n x S_n`` grid. 16 or 8 fuse on f3's or
            f2's finer grid instead (coarser squeezed maps upsampled bilinearly, finer ones brought down by
            ``fusion_pool``), and the mask attention then uses P's average over each f4 cell. At 256 px the
            paper's grid is 8 x 8, and even the exact training target on it scores mask JSI 0.48 on BUSI's test
            split (``benchmarks/mask_grid_target.py``); on 16 x 16 it scores 0.76.
    """

    arch: Arch = "lanet"
    depth: int = 18
    widths: tuple[int, ...] = IMAGENET_WIDTHS
    num_classes: int = 2
    in_channels: int = 1
    use_cam: bool = True
    use_sam: bool = True
    use_mam: bool = True
    cbam_mode: CbamMode = "per_scale"
    spatial_kernel: SpatialKernel = "3x3x3"
    reduction: int = 16
    shared_channels: int = 256
    decoder_channels: tuple[int, ...] = (256, 128, 64)
    fex: Fex = "resnet"
    lite: int = 0
    fusion_pool: FusionPool = "bilinear"
    mask_prior: float | None = None
    mask_stride: int = 32

    def __post_init__(self) -> None:
        choices = (
            ("arch", Arch),
            ("cbam_mode", CbamMode),
            ("spatial_kernel", SpatialKernel),
            ("fex", Fex),
            ("fusion_pool", FusionPool),
        )
        for name, allowed in choices:
            _check_choice(name, getattr(self, name), get_args(allowed))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model config '{name}' must be true or false, got {getattr(self, name)!r}")
        for name in _INT_FIELDS:
            _check_positive_int(name, getattr(self, name))
        for name, length in _INT_TUPLE_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != length:
                raise ConfigError(f"model config '{name}' must be {length} whole numbers, got {value!r}")
            for item in value:
                _check_positive_int(name, item)
            object.__setattr__(
                self, name, tuple(value)
            )  # lists from JSON/YAML become tuples (hashable, frozen)
        self._check_mask_prior()
        self._check_mask_stride()
        if self.depth not in DEPTHS:
            raise ConfigError(f"model config 'depth' must be one of {DEPTHS}, got {self.depth}")
        self._check_fex()
        if self.num_classes < 2:
            raise ConfigError(f"model config 'num_classes' must be at least 2, got {self.num_classes}")
        if self.arch != "lanet":
            # The authors' code silently ignored ablation flags; ours refuses flags that would have no effect.
            off = [name for name in _BOOL_FIELDS if not getattr(self, name)]
            if off:
                raise ConfigError(
                    f"model config {', '.join(off)}=false only applies to arch 'lanet' "
                    f"(got arch '{self.arch}'); "
                    "remove the override or use a lanet_* model"
                )

    def _check_mask_prior(self) -> None:
        p = self.mask_prior
        if p is None:
            return
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p < 1.0:
            raise ConfigError(f"model config 'mask_prior' must be a probability strictly between 0 and 1 "
                              f"(e.g. 0.05, a lesion's share of the image), got {p!r}")
        if self.arch != "lanet":
            raise ConfigError(f"model config mask_prior only applies to arch 'lanet' (got arch '{self.arch}'); "
                              "remove it or use a lanet_* model")

    def _check_mask_stride(self) -> None:
        stride = self.mask_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride not in MASK_STRIDES:
            raise ConfigError(f"model config 'mask_stride' must be one of {MASK_STRIDES} (input pixels per mask "
                              f"cell: f2's, f3's or f4's grid), got {stride!r}")
        if stride != 32 and self.arch != "lanet":
            raise ConfigError(f"model config mask_stride={stride} only applies to arch 'lanet' (got arch "
                              f"'{self.arch}'); remove it or use a lanet_* model")

    def _check_fex(self) -> None:
        if isinstance(self.lite, bool) or not isinstance(self.lite, int) or self.lite not in LITE_VARIANTS:
            raise ConfigError(f"model config 'lite' must be one of {LITE_VARIANTS}, got {self.lite!r}")
        if self.fex == "resnet" and self.lite != 0:
            raise ConfigError(
                f"model config lite={self.lite} only applies to fex 'efficientnet_lite' (got fex 'resnet'); "
                "remove the override or use an *_effl* model"
            )
        if self.fex == "efficientnet_lite" and (self.depth != 18 or not self.uses_imagenet_widths):
            raise ConfigError(
                f"model config depth/widths describe a ResNet FEX (got depth={self.depth}, "
                f"widths={self.widths} with fex 'efficientnet_lite'); remove them, the size is set by 'lite'"
            )

    @property
    def uses_imagenet_widths(self) -> bool:
        return self.widths == IMAGENET_WIDTHS

    @property
    def fex_name(self) -> str:
        """Human name of the FEX: ``'ResNet-18'``, ``'ResNet-18 (8-64 wide)'``, ``'EfficientNet-Lite0'``."""
        if self.fex == "efficientnet_lite":
            return f"EfficientNet-Lite{self.lite}"
        narrow = "" if self.uses_imagenet_widths else f" ({self.widths[0]}-{self.widths[-1]} wide)"
        return f"ResNet-{self.depth}{narrow}"

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied; unknown keys raise :class:`ConfigError` with a did-you-mean."""
        _reject_unknown(changes, "model override")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict (tuples become lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a mapping, got {type(data).__name__}")
        _reject_unknown(data, "model config key")
        return cls(**data)


def input_normalization(config: ModelConfig) -> tuple[float, float]:
    """``(mean, std)`` the FEX expects: inputs in [0, 1] are fed as ``(x - mean) / std``.

    ``(0.5, 0.5)`` (i.e. [-1, 1]) for EfficientNet-Lite, whose ImageNet weights were trained that way;
    ``(0.0, 1.0)`` (plain [0, 1], as in the paper) for ResNet. Build the preprocessing from it:
    ``PreprocessConfig(mean=mean, std=std, ...)``.
    """
    return (0.5, 0.5) if config.fex == "efficientnet_lite" else (0.0, 1.0)


def _field_names() -> list[str]:
    return [f.name for f in fields(ModelConfig)]


def _reject_unknown(data: dict[str, Any], kind: str) -> None:
    names = _field_names()
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown {kind} '{key}'.{did_you_mean(str(key), names)} Allowed: {', '.join(names)}"
            )


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        hint = did_you_mean(str(value), allowed)
        raise ConfigError(f"model config '{name}' must be one of {', '.join(allowed)}, got {value!r}.{hint}")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"model config '{name}' must be a positive whole number, got {value!r}")
